"""The `pcct` command line, run as a subprocess (`python -m covertreex`) on tiny workloads."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

import covertreex as ct
from covertreex import datasets, telemetry
from covertreex.cli import build_parser
from covertreex.presets import ENV_VAR, PRESETS

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--n", "300", "--dims", "2", "--k", "5", "--queries", "20"]
TINY_RESIDUAL = [*TINY, "--metric", "residual", "--m", "16"]


def pcct(*args, env=None, **kwargs) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if key != ENV_VAR}
    environ.update(env or {})
    kwargs.setdefault("capture_output", True)
    return subprocess.run([sys.executable, "-m", "covertreex", *map(str, args)], text=True, env=environ,
                          timeout=300, **kwargs)


def pcct_many(cases, cwd) -> list[subprocess.CompletedProcess]:
    """Run (args, env) cases concurrently: each is its own process, so only the wall time is shared."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda case: pcct(*case[0], env=case[1], cwd=cwd), cases))


def ok(*args, **kwargs) -> subprocess.CompletedProcess:
    done = pcct(*args, **kwargs)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def tiny_problem(n=300, dims=2, m=16):
    """What TINY_RESIDUAL describes, built in-process from the documented seeds."""
    points = datasets.make("gaussian", n, dims, 42).points
    return ct.residual_problem(points, m=m, seed=42)


def tiny_queries(n=300, count=20):
    return np.random.default_rng(43).integers(0, n, count)


# ------------------------------------------------------------------------------------------- query


def test_query_human_summary_has_one_line_per_phase():
    out = ok("query", *TINY).stdout.splitlines()
    # The default is the fastest exact configuration: rust (mode perf), path auto.
    assert out[0].startswith("pcct query: rust engine, preset none, euclidean; gaussian n=300 dims=2")
    assert [line.split()[0] for line in out[1:]] == ["build", "query", "recall"]
    assert "q/s" in out[2] and "distance evaluations/query" in out[2] and "path dense" in out[2]
    assert out[3].startswith("recall  1.000000 vs brute oracle; identical neighbours and distances: yes")


def test_query_runs_the_described_workload(tmp_path):
    """--json, --out, --save-tree and --telemetry agree with the same workload run through the API."""
    out, tree_file, log = tmp_path / "nb.npz", tmp_path / "tree.npz", tmp_path / "t.jsonl"
    done = ok("query", *TINY_RESIDUAL, "--json", "--out", out, "--save-tree", tree_file,
              "--telemetry", log)
    summary = json.loads(done.stdout)
    assert done.stderr.splitlines()[1].startswith("data    V construction")  # human lines on stderr

    model = ct.CoverTree(metric="residual").fit(tiny_problem())  # the CLI's defaults
    expected = model.query(indices=tiny_queries(), k=5)
    assert summary["path"] == expected.telemetry["path"] == "dense"
    with np.load(out) as saved:
        assert np.array_equal(saved["indices"], expected.indices)
        assert np.array_equal(saved["distances"], expected.distances)
        assert np.array_equal(saved["query_indices"], tiny_queries())
    assert ct.load(tree_file).same_as(model.tree)
    assert summary["evaluations_per_query"] == pytest.approx(expected.counters.per_query[:, 0].mean())
    assert summary["tree_digest"] == telemetry.tree_digest(model.tree)
    assert summary["recall"] == 1.0 and summary["identical_to_oracle"] is True
    assert summary["residual"] == {"kernel": "rbf", "lengthscale": 1.0, "variance": 1.0, "m": 16,
                                   "inducing_seed": 42}
    timings = summary["timings"]
    assert timings["build_with_v_seconds"]["best"] >= timings["build_seconds"]["best"]
    [record] = telemetry.read_jsonl(log)
    assert record["counters"] == expected.telemetry["counters"]
    assert record["n_queries"] == 20 and record["k"] == 5
    assert ok("telemetry", "validate", log, log).stdout.splitlines() == [
        f"{log}: 1 records valid against covertreex.query_telemetry v5"] * 2
    older = tmp_path / "v4.jsonl"  # read against its own version's schema, and named so
    older.write_text(json.dumps({**{k: v for k, v in record.items() if k != "query_digest"},
                                 "schema_version": 4}) + "\n" + log.read_text())
    assert ok("telemetry", "validate", older).stdout.splitlines() == [
        f"{older}: 2 records valid against covertreex.query_telemetry v4, v5"]


def test_query_repeat_reports_every_run_and_loaded_tree_is_not_rebuilt(tmp_path):
    tree_file, log = tmp_path / "tree.npz", tmp_path / "t.jsonl"
    ok("build", "--n", 300, "--dims", 2, "--metric", "residual", "--m", 16, "--out", tree_file)
    done = ok("query", *TINY_RESIDUAL, "--repeat", 3, "--tree", tree_file, "--telemetry", log, "--json")
    summary = json.loads(done.stdout)
    assert summary["tree_source"] == "loaded" and summary["timings"]["build_seconds"] is None
    assert len(summary["timings"]["query_seconds"]["runs"]) == 3 and summary["runs_identical"]
    assert len(telemetry.read_jsonl(log)) == 3
    assert "tree loaded from" in done.stderr and "best of 3" in done.stderr


def test_query_predecessor_mode_matches_the_api(tmp_path):
    out = tmp_path / "nb.npz"
    summary = json.loads(ok("query", "--n", 200, "--dims", 2, "--k", 4, "--predecessor", "--out", out,
                            "--json").stdout)
    points = datasets.make("gaussian", 200, 2, 42).points
    expected = ct.CoverTree().fit(points).kneighbors(k=4, predecessor=True)
    with np.load(out) as saved:
        assert np.array_equal(saved["indices"], expected[1])
    assert summary["predecessor"] and summary["n_queries"] == 200 and summary["recall"] == 1.0


def test_query_skips_recall_on_large_runs_unless_asked():
    done = ok("query", "--n", 300, "--dims", 2, "--k", 3, "--queries", 10, "--no-recall")
    assert "recall  not computed (--no-recall)" in done.stdout.splitlines()  # gave the size as the reason


def test_query_summary_prints_on_an_ascii_stdout():
    """The spread of repeated runs was printed with '±': a UnicodeEncodeError where stdout is ASCII."""
    done = ok("query", *TINY, "--repeat", 2, env={"PYTHONIOENCODING": "ascii"})
    assert "best of 2 (mean " in done.stdout and " +/- " in done.stdout


def test_a_reader_that_leaves_does_not_lose_the_files(tmp_path):
    """`pcct query ... --out a.npz | true`: the first summary line's BrokenPipeError ended the run before
    the answers (or the tree) were written. The run finishes, writes them and exits with status 1."""
    command = [sys.executable, "-m", "covertreex", "query", *TINY, "--no-recall", "--path", "tree",
               "--out", str(tmp_path / "a.npz"), "--save-tree", str(tmp_path / "t.npz")]
    with subprocess.Popen(command,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
        child.stdout.close()  # before the child can print: its start-up alone takes longer
        assert child.wait(timeout=300) == 1 and child.stderr.read() == ""
    points = datasets.make("gaussian", 300, 2, 42).points
    with np.load(tmp_path / "a.npz") as saved:
        expected = ct.CoverTree().fit(points).kneighbors(points[saved["query_indices"]], k=5)
        assert np.array_equal(saved["indices"], expected[1])
    assert ct.load(tmp_path / "t.npz").n_points == 300


def test_environment_preset_and_explicit_override():
    env = {ENV_VAR: "residual_parity"}
    summary = json.loads(ok("query", *TINY, "--m", 16, "--json", "--brute-variant", "auto",
                            env=env).stdout)
    assert summary["preset"] == "residual_parity" and summary["metric"] == "residual"
    expected = {**PRESETS["residual_parity"].config().as_dict(), "brute_variant": "auto"}
    assert summary["config"] == expected


def test_query_with_rust_engine_or_the_registry_error():
    done = pcct("query", *TINY_RESIDUAL, "--engine", "rust", "--preset", "residual_parity")
    if done.returncode == 0:
        assert "identical neighbours and distances: yes" in done.stdout
    else:
        assert done.stderr.strip() == "pcct: error: engine 'rust' is registered but not available here"


# -------------------------------------------------------------------------------- build, presets


def test_build_checks_and_saves_the_tree(tmp_path):
    out = tmp_path / "tree.npz"
    done = ok("build", "--n", 300, "--dims", 2, "--order", "hilbert", "--check", "--out", out)
    assert "check   the four cover-tree invariants hold" in done.stdout
    points = datasets.make("gaussian", 300, 2, 42).points
    assert ct.load(out).same_as(ct.CoverTree(order="hilbert").fit(points).tree)


def test_presets_prints_each_resolved_setting():
    out = ok("presets", env={ENV_VAR: "residual_perf"}).stdout
    assert "residual_perf  (active: COVERTREEX_PRESET=residual_perf)" in out
    for name, preset in PRESETS.items():
        assert name in out
        for knob, value in preset.config().as_dict().items():
            assert re.search(rf"^  {knob} +{re.escape(str(value))} +\((preset|default)\)$", out, re.M), knob
    shown = json.loads(ok("presets", "residual_parity", "--json").stdout)
    assert list(shown) == ["residual_parity"]
    assert shown["residual_parity"]["options"] == PRESETS["residual_parity"].config().as_dict()


# ------------------------------------------------------------------------------------- telemetry


@pytest.fixture(scope="module")
def record_line() -> str:
    """One valid telemetry record as a JSONL line."""
    model = ct.CoverTree().fit(datasets.make("gaussian", 50, 2, 0).points)
    return json.dumps(model.query(indices=[0, 1], k=3).telemetry, sort_keys=True)


@pytest.mark.parametrize("damage, where", [
    (lambda line: line + "\n{not json", 2),
    (lambda line: line.replace(f'"schema_version": {telemetry.SCHEMA_VERSION}', '"schema_version": 7'), 1),
    (lambda line: "\n", None),
])
def test_telemetry_validate_names_the_bad_line(tmp_path, record_line, damage, where):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(damage(record_line) + "\n")
    done = pcct("telemetry", "validate", bad)
    assert done.returncode == 1 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"pcct: error: {bad}:{where}:" if where else f"pcct: error: {bad}: no ")


# ---------------------------------------------------------------------------------- error paths


ERROR_CASES = [
    (["query", "--k", "0"], {}, "argument --k: must be >= 1, got 0"),
    (["query", "--k", "five"], {}, "argument --k: expected an integer, got 'five'"),
    (["query", "--k", "1_0"], {}, "argument --k: expected an integer, got '1_0'"),  # int() took it as 10
    (["query", "--k", "\uff15"], {}, "argument --k: expected an integer, got '\uff15'"),  # a full-width 5
    (["query", "--n", "0"], {}, "argument --n: must be >= 1, got 0"),
    (["query", "--seed", "-1"], {}, "argument --seed: must be >= 0, got -1"),
    (["query", "--threads", "0"], {}, "argument --threads: must be >= 1, got 0"),
    (["query", "--metric", "cosine"], {}, "argument --metric: invalid choice: 'cosine'"),
    (["query", "--lengthscale", "wide"], {}, "argument --lengthscale: expected a number"),
    (["query", "--variance", "2_5"], {}, "argument --variance: expected a number, got '2_5'"),  # was 25.0
    (["query", "--variance", "\uff12"], {}, "argument --variance: expected a number, got '\uff12'"),
    (["query", "--lengthscale", "1,2_5"], {}, "argument --lengthscale: expected a number or comma-"),
    (["query", "--queries", "5", "--predecessor"], {}, "not allowed with argument --queries"),
    (["query", "--telemetry", "x.jsonl", "--no-telemetry"], {}, "not allowed with argument"),
    (["query", "--bogus"], {}, "unrecognized arguments: --bogus"),
    (["frobnicate"], {}, "argument COMMAND: invalid choice: 'frobnicate'"),
    ([], {}, "the following arguments are required: COMMAND"),
    (["telemetry"], {}, "the following arguments are required: ACTION"),
    (["query", "--engine", "nope"], {}, "argument --engine: invalid choice: 'nope'"),
    (["query", "--preset", "nope"], {}, "unknown preset 'nope'; known presets: residual_parity, "),
    (["query"], {ENV_VAR: "nope"}, "unknown preset 'nope'; known presets: residual_parity, "),
    (["presets", "nope"], {}, "unknown preset 'nope'"),
    (["query", *TINY, "--kernel", "matern52"], {}, "pcct query: error: --kernel: only for the residual"),
    (["query", *TINY_RESIDUAL, "--variance", "-1"], {}, "argument --variance: must be positive and finite"),
    (["query", *TINY_RESIDUAL, "--lengthscale", "1,2,3"], {}, "one entry per dimension (2)"),
    (["query", "--n", "10", "--k", "20"], {}, "k must be <= the number of indexed points (10)"),
    (["query", *TINY, "--tree", "missing.npz"], {}, "No such file or directory (--tree): 'missing.npz'"),
    (["query", *TINY, "--engine", "brute", "--save-tree", "t.npz"], {}, "engine 'brute' builds no tree"),
    (["build", "--engine", "brute"], {}, "engine 'brute' builds no tree"),
    (["telemetry", "validate", "missing.jsonl"], {}, "No such file or directory: 'missing.jsonl'"),
]


@pytest.fixture(scope="module")
def error_runs(tmp_path_factory):
    return pcct_many([(args, env) for args, env, _ in ERROR_CASES], tmp_path_factory.mktemp("errors"))


@pytest.mark.parametrize("case", range(len(ERROR_CASES)), ids=[c[2] for c in ERROR_CASES])
def test_bad_input_is_one_line_and_a_nonzero_exit(error_runs, case):
    message, done = ERROR_CASES[case][2], error_runs[case]
    assert done.returncode in (1, 2)
    assert "Traceback" not in done.stderr + done.stdout
    [line] = done.stderr.splitlines()
    assert line.startswith("pcct") and message in line


# ------------------------------------------------------------------------------- help, progress


HELP_COMMANDS = [[], ["query"], ["build"], ["telemetry"], ["telemetry", "validate"], ["presets"], ["vecchia"]]


@pytest.fixture(scope="module")
def help_runs(tmp_path_factory):
    return pcct_many([([*command, "--help"], {}) for command in HELP_COMMANDS],
                     tmp_path_factory.mktemp("help"))


@pytest.mark.parametrize("case", range(len(HELP_COMMANDS)), ids=[" ".join(c) for c in HELP_COMMANDS])
def test_help_lists_every_option_with_a_description(help_runs, case):
    command, done = HELP_COMMANDS[case], help_runs[case]
    assert done.returncode == 0 and done.stderr == ""
    text = done.stdout
    parser = build_parser()
    for name in command:
        parser = next(a for a in parser._actions if a.dest in ("command", "action")).choices[name]
    for action in parser._actions:
        assert action.help, f"{action.option_strings or action.dest} has no help"
        for flag in action.option_strings:
            assert flag in text


def _stderr_of(args, tty: bool) -> str:
    if not tty:
        return ok(*args).stderr
    leader, follower = pty.openpty()
    try:
        done = pcct(*args, stderr=follower, stdout=subprocess.PIPE, capture_output=False)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    assert done.returncode == 0
    return b"".join(chunks).decode()


def test_progress_only_on_a_terminal():
    args = ["query", *TINY_RESIDUAL]
    shown = _stderr_of(args, tty=True)
    assert "V construction ..." in shown and "fit (rust) ..." in shown and "query (rust) ..." in shown
    assert _stderr_of(args, tty=False) == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [False, True])
def test_the_vecchia_command_asks_for_progress_only_where_it_draws_a_bar(tmp_path, monkeypatch, terminal):
    """Heard of, the neighbours of an ordering found first run in ranges (covertreex.vecchia.PROGRESS_RANGES),
    a cost no one should pay for a bar that is not drawn; where it is drawn, the job reports to it."""
    from covertreex import vecchia
    from covertreex.cli import main

    np.save(tmp_path / "x.npy", np.random.default_rng(0).uniform(size=(500, 2)))
    asked, job = [], vecchia.vecchia_neighbors
    monkeypatch.setattr(vecchia, "vecchia_neighbors", lambda *args, **kw: asked.append(kw["progress"]) or job(
        *args, **kw))
    monkeypatch.setattr(sys, "stderr", _Terminal() if terminal else io.StringIO())
    assert main(["vecchia", str(tmp_path / "x.npy"), "--k", "3", "--metric", "euclidean"]) == 0
    assert (asked[0] is not None) == terminal


def test_pcct_console_script_is_the_cli_main():
    [script] = [ep for ep in entry_points(group="console_scripts") if ep.name == "pcct"]
    assert script.value == "covertreex.cli:main"


# --------------------------------------------------------------------------- benchmark script


@pytest.mark.parametrize("comp, preset", [("brute", "residual_parity"), ("none", "")])
def test_gold_standard_script_small(tmp_path, comp, preset):
    env = {**os.environ, "N": "256", "QUERIES": "16", "M": "8", "K": "4", "RUNS": "2",
           "COMP_ENGINE": comp, "PRESET": preset, "OUT_DIR": str(tmp_path), "PYTHON": sys.executable}
    env.pop(ENV_VAR, None)
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "run_residual_gold_standard.sh")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = (tmp_path / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| engine | build s | build+V s | query s | q/s | evaluations/query")
    assert rows[1].startswith("| gold |") and "| 1.000000 | (reference) |" in rows[1]
    gold = json.loads((tmp_path / "gold.json").read_text())
    assert len(gold["timings"]["query_seconds"]["runs"]) == 2
    assert gold["preset"] == (preset or None)
    if comp == "none":
        assert len(rows) == 2
    else:
        assert len(rows) == 3 and rows[2].startswith("| brute | no tree | no tree |")
        assert "| 1.000000 | yes (16/16 rows) | no | no tree |" in rows[2]  # same answer, other work
    assert "nproc: " in summary and "--engine gold" in summary


def test_vecchia_progress_bar_only_on_a_terminal(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(100, 2)))
    args = ["vecchia", tmp_path / "x.npy", "--k", "3", "--m", "8"]
    assert "\rordering:" in _stderr_of(args, tty=True)  # the bar: "ordering:  0%|..."
    assert "\r" not in _stderr_of([*args, "--json"], tty=False)


def test_the_summary_reports_the_inducing_points_taken():
    """--m above N takes every point (DESIGN section 3): the summary says 300, not the 5000 asked for."""
    done = ok("build", "--n", 300, "--dims", 2, "--metric", "residual", "--m", 5000, "--json")
    assert json.loads(done.stdout)["residual"]["m"] == 300
    assert "m 300," in done.stderr


def test_a_tree_built_only_to_be_saved_is_timed_and_a_dense_run_has_no_tree(tmp_path):
    """The dense path answers without a tree; --save-tree then built one after the timings (build 0.000 s
    next to a million build evaluations), and a run without a tree said tree_source 'built'."""
    saved = json.loads(ok("query", *TINY_RESIDUAL, "--engine", "gold", "--path", "dense", "--save-tree",
                          tmp_path / "t", "--json").stdout)
    assert saved["tree_source"] == "built" and saved["build_evaluations"] > 0
    assert saved["timings"]["build_seconds"]["best"] > 0
    dense = json.loads(ok("query", *TINY_RESIDUAL, "--engine", "gold", "--path", "dense", "--json").stdout)
    assert dense["path"] == "dense" and dense["tree_source"] is None and dense["tree_digest"] is None
