"""``pcct``: build, query and benchmark covertreex from the shell (also ``python -m covertreex``).

Every flag maps onto one thing the library already has: datasets from :mod:`covertreex.datasets`, the
residual problem, the engine registry, presets and the knobs of :data:`covertreex.config.KNOBS` (one
flag per knob, same name). Errors a user can cause end in one line on stderr and a non-zero exit.
Modules that load Numba or SciPy are imported inside the commands that use them, so ``pcct --help`` and
argument errors stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import TYPE_CHECKING

import numpy as np

from covertreex import __version__, datasets, progress
from covertreex.config import KNOBS
from covertreex.counters import QueryCounter
from covertreex.engines import engine_names
from covertreex.errors import CovertreexError, InvalidInputError
from covertreex.kinds import KERNELS, METRICS
from covertreex.presets import ENV_VAR, PRESETS, get_preset

if TYPE_CHECKING:
    from covertreex.api import CoverTree

RECALL_AUTO_PAIRS = 1 << 26
"""Recall against the brute oracle is computed by default up to this many query x point pairs."""
RESIDUAL_DEFAULTS = {"kernel": "rbf", "lengthscale": 1.0, "variance": 1.0, "m": 512, "inducing_seed": 42}
EXIT_USAGE, EXIT_ERROR = 2, 1


class UsageError(Exception):
    """A command-line mistake argparse found; printed as one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def _count(minimum: int):
    """argparse type: an integer >= minimum, with a message naming the bound."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    return parse


def _lengthscale(text: str):
    """argparse type: one float, or one per dimension separated by commas."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number or comma-separated numbers, got {text!r}") from None
    return values[0] if len(values) == 1 else values


# ---------------------------------------------------------------------------------------------- parser


def _add_workload(parser: argparse.ArgumentParser) -> None:
    """Data, metric, engine, preset and knob flags shared by `query` and `build`."""
    data = parser.add_argument_group("data (covertreex.datasets; defaults give the gold workload)")
    data.add_argument("--dataset", choices=sorted(datasets.GENERATORS), default="gaussian",
                      help="point generator (default: %(default)s)")
    data.add_argument("--n", type=_count(1), default=32768, metavar="N",
                      help="number of points (default: %(default)s)")
    data.add_argument("--dims", type=_count(1), default=3, metavar="D",
                      help="dimensions per point (default: %(default)s)")
    data.add_argument("--seed", type=_count(0), default=42, metavar="S",
                      help="dataset seed: gaussian is default_rng(S).normal(size=(N, D)) "
                           "(default: %(default)s)")

    metric = parser.add_argument_group("metric (residual flags need --metric residual)")
    metric.add_argument("--metric", choices=METRICS, default=None,
                        help="distance: euclidean, or the residual correlation of a low-rank GP "
                             "(default: the preset's metric, else euclidean)")
    metric.add_argument("--kernel", choices=KERNELS, default=None,
                        help=f"residual kernel (default: {RESIDUAL_DEFAULTS['kernel']})")
    metric.add_argument("--lengthscale", type=_lengthscale, default=None, metavar="L[,L...]",
                        help="kernel lengthscale, one value or one per dimension "
                             f"(default: {RESIDUAL_DEFAULTS['lengthscale']})")
    metric.add_argument("--variance", type=float, default=None, metavar="S2",
                        help=f"kernel variance (default: {RESIDUAL_DEFAULTS['variance']})")
    metric.add_argument("--m", type=_count(1), default=None, metavar="M",
                        help=f"inducing points (default: {RESIDUAL_DEFAULTS['m']}; all points if M >= N)")
    metric.add_argument("--inducing-seed", type=_count(0), default=None, metavar="S",
                        help="seed of the inducing-point choice "
                             f"(default: {RESIDUAL_DEFAULTS['inducing_seed']})")

    engine = parser.add_argument_group(
        "engine and configuration (explicit flags override the preset)")
    engine.add_argument("--engine", default=None, metavar="NAME",
                        help=f"engine from the registry: {', '.join(engine_names())} "
                             "(default: %(default)s)")
    engine.add_argument("--preset", default=None, metavar="NAME",
                        help=f"named configuration: {', '.join(PRESETS)} "
                             f"(default: ${ENV_VAR} if set; see 'pcct presets')")
    for name, knob in KNOBS.items():
        if name == "telemetry":
            continue  # `query` exposes it as --telemetry FILE / --no-telemetry
        flag, dest = "--" + name.replace("_", "-"), f"knob_{name}"
        text = f"{knob.doc} (default: {knob.default})"
        if knob.choices is not None:
            engine.add_argument(flag, dest=dest, choices=knob.choices, default=None, help=text)
        elif knob.kind is bool:
            engine.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                                help=text)
        elif knob.kind is int:
            engine.add_argument(flag, dest=dest, type=_count(knob.minimum or 0), default=None,
                                metavar="N", help=text)
        else:
            engine.add_argument(flag, dest=dest, default=None, metavar="VALUE", help=text)
    parser.add_argument("--json", action="store_true",
                        help="print a machine-readable JSON summary on stdout (the human summary "
                             "lines then go to stderr)")


def _add_query(parser: argparse.ArgumentParser) -> None:
    q = parser.add_argument_group("queries")
    q.add_argument("--k", type=_count(1), default=50, metavar="K",
                   help="neighbours per query (default: %(default)s)")
    which = q.add_mutually_exclusive_group()
    which.add_argument("--queries", type=_count(1), default=None, metavar="Q",
                       help="query the dataset indices default_rng(QUERY_SEED).integers(0, N, Q) "
                            "(default: 1024)")
    which.add_argument("--predecessor", action="store_true",
                       help="Vecchia mode: query every point i against the points j < i "
                            "(rows padded with -1/inf)")
    q.add_argument("--query-seed", type=_count(0), default=43, metavar="S",
                   help="seed of the query indices (default: %(default)s)")

    run = parser.add_argument_group("run and report")
    run.add_argument("--repeat", type=_count(1), default=1, metavar="R",
                     help="run data+V, build and query R times in this process and report best, mean "
                          "and std (default: %(default)s)")
    run.add_argument("--recall", action=argparse.BooleanOptionalAction, default=None,
                     help="compare with the brute oracle (recall, identical neighbours); default: "
                          f"only when queries x points <= {RECALL_AUTO_PAIRS}")
    run.add_argument("--tree", default=None, metavar="FILE.npz",
                     help="query this saved tree (from 'pcct build --out' or --save-tree) instead of "
                          "building one; it must match the data and metric")
    run.add_argument("--save-tree", default=None, metavar="FILE.npz",
                     help="save the tree of the first run")
    run.add_argument("--out", default=None, metavar="FILE.npz",
                     help="save the neighbours of the first run: indices, distances, query_indices")
    tel = run.add_mutually_exclusive_group()
    tel.add_argument("--telemetry", default=None, metavar="FILE.jsonl",
                     help="append one telemetry record per run to FILE (turns the telemetry "
                          "option on)")
    tel.add_argument("--no-telemetry", action="store_true",
                     help="turn the telemetry option off (no record is built)")


def build_parser() -> Parser:
    parser = Parser(
        prog="pcct",
        description="Exact k-NN with compressed cover trees: build trees, run and benchmark queries, "
                    "check telemetry files, list presets, order points and find their Vecchia neighbours.",
        epilog="The gold workload (DESIGN section 6): pcct query --metric residual --n 32768 "
               "--dims 3 --m 512 --k 50 --queries 1024",
    )
    parser.add_argument("--version", action="version", version=f"pcct (covertreex) {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                help="run 'pcct COMMAND --help' for its options")

    query = sub.add_parser(
        "query", help="build a tree and run k-NN queries; print timings, work and recall",
        description="Generate a dataset, build the tree with an engine and query it. One summary "
                    "line per phase: V construction (residual), build seconds with and without V, "
                    "query seconds, queries/second, distance evaluations per query and recall against "
                    "the brute oracle. Progress is shown on stderr when it is a terminal.",
    )
    _add_workload(query)
    _add_query(query)
    query.set_defaults(run=_cmd_query)

    build = sub.add_parser(
        "build", help="build a tree; report it and optionally save it",
        description="Generate a dataset, build the cover tree and report build seconds (with and "
                    "without V for the residual metric), size and levels.",
    )
    _add_workload(build)
    build.add_argument("--out", default=None, metavar="FILE.npz",
                       help="save the tree to this file (.npz is appended when missing; the path "
                            "written is reported; load it later with 'pcct query --tree')")
    build.add_argument("--check", action="store_true",
                       help="also verify the four cover-tree invariants (covertreex.validate; it "
                            "checks every pair of points, so it is slow beyond a few thousand)")
    build.set_defaults(run=_cmd_build)

    tel = sub.add_parser("telemetry", help="work with telemetry JSONL files",
                         description="Work with telemetry JSONL files written by 'pcct query "
                                     "--telemetry' or covertreex.telemetry.write_jsonl.")
    tel_sub = tel.add_subparsers(dest="action", metavar="ACTION", required=True,
                                 help="run 'pcct telemetry ACTION --help' for its options")
    validate = tel_sub.add_parser(
        "validate", help="check every record against the shipped JSON Schema",
        description="Validate every record of each FILE against the telemetry schema; the first "
                    "bad record is reported as FILE:LINE and the exit status is 1.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="telemetry JSONL file")
    validate.set_defaults(run=_cmd_telemetry_validate)

    presets = sub.add_parser(
        "presets", help="show each preset's resolved settings",
        description=f"Print every preset (or the NAMEs given) with the metric and every option "
                    f"value it resolves to. Select one with --preset or ${ENV_VAR}.",
    )
    presets.add_argument("names", nargs="*", metavar="NAME", help="presets to show (default: all)")
    presets.add_argument("--json", action="store_true", help="print JSON instead of text")
    presets.set_defaults(run=_cmd_presets)

    from covertreex import cli_vecchia  # it builds on this module's helpers

    cli_vecchia.add_parser(sub)
    return parser


# ------------------------------------------------------------------------------------------ workload


def _options(args) -> dict:
    """The knob values given explicitly on the command line."""
    options = {name: getattr(args, f"knob_{name}") for name in KNOBS if hasattr(args, f"knob_{name}")}
    options = {name: value for name, value in options.items() if value is not None}
    if getattr(args, "telemetry", None) is not None:
        options["telemetry"] = True
    if getattr(args, "no_telemetry", False):
        options["telemetry"] = False
    return options


def _model(args) -> CoverTree:
    from covertreex.api import CoverTree

    model = CoverTree(engine=args.engine, metric=args.metric, preset=args.preset, **_options(args))
    given = [k for k in RESIDUAL_DEFAULTS if getattr(args, k) is not None]
    if model.metric != "residual" and given:
        flags = ", ".join("--" + k.replace("_", "-") for k in given)
        raise InvalidInputError(f"{flags}: only for the residual metric (the metric is {model.metric})")
    return model


def _residual_params(args) -> dict:
    return {k: default if getattr(args, k) is None else getattr(args, k)
            for k, default in RESIDUAL_DEFAULTS.items()}


def _make_data(args, model: CoverTree, dataset) -> tuple[object, float]:
    """The data to index (points, or the residual problem) and the seconds spent building V."""
    if model.metric != "residual":
        return dataset.points, 0.0
    from covertreex.residual import residual_problem

    params = _residual_params(args)
    start = time.perf_counter()
    with progress.phase("V construction"):
        problem = residual_problem(
            dataset.points, kernel=params["kernel"], lengthscale=params["lengthscale"],
            variance=params["variance"], m=params["m"], seed=params["inducing_seed"],
        )
    return problem, time.perf_counter() - start


def _build(model: CoverTree, data, tree_file) -> float | None:
    """Fit (building the tree now only on the tree path) or attach the saved tree; return the build
    seconds so far (None when loaded)."""
    if tree_file is not None:
        from covertreex.tree import load as load_tree

        model.use_tree(load_tree(tree_file), data)
        return None
    shared = model.config.shared_tree and model.engine.uses_tree
    with progress.phase(f"fit ({'gold, shared tree' if shared else model.engine.name})"):
        model.fit(data)
    return model.build_seconds


def _describe(args, model: CoverTree, dataset) -> dict:
    """The workload as the JSON summary and the header line report it."""
    return {
        "engine": model.engine.name,
        "preset": model.preset,
        "metric": model.metric,
        "config": model.config.as_dict(),
        "dataset": {"kind": dataset.kind, "n": dataset.n, "dims": dataset.d, "seed": dataset.seed,
                    "digest": dataset.digest},
        "residual": _residual_params(args) if model.metric == "residual" else None,
    }


def _stats(values, best=min) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"best": float(best(arr)), "mean": float(arr.mean()), "std": float(arr.std()),
            "runs": [float(v) for v in arr]}


def _seconds(stat: dict) -> str:
    if len(stat["runs"]) == 1:
        return f"{stat['best']:.3f} s"
    return f"{stat['best']:.3f} s best of {len(stat['runs'])} (mean {stat['mean']:.3f} ± {stat['std']:.3f} s)"


def _tree_facts(model: CoverTree) -> str:
    tree = model.built_tree
    if tree is None:
        if model.engine.uses_tree:
            return "no tree built (no query took the tree path)"
        return f"{model.engine.name} builds no tree (exhaustive scan)"
    top, bottom = tree.level_range
    work = "" if tree.build_evaluations is None else f", {tree.build_evaluations} distance evaluations"
    return f"{tree.n_points} nodes, levels {top}..{bottom}, root {tree.root}{work}"


def _header(summary: dict, tail: str) -> str:
    data = summary["dataset"]
    metric = summary["metric"]
    if summary["residual"]:
        r = summary["residual"]
        metric += (f" ({r['kernel']}, lengthscale {r['lengthscale']}, variance {r['variance']}, "
                   f"m {r['m']}, inducing seed {r['inducing_seed']})")
    return (f"{summary['engine']} engine, preset {summary['preset'] or 'none'}, {metric}; "
            f"{data['kind']} n={data['n']} dims={data['dims']} seed {data['seed']}{tail}")


# ------------------------------------------------------------------------------------------- recall


def _recall(found: np.ndarray, oracle: np.ndarray) -> float:
    """Fraction of the oracle's neighbours (padding excluded) that `found` contains, over all rows."""
    hits = total = 0
    for got, ref in zip(found, oracle, strict=True):
        ref = ref[ref >= 0]
        total += ref.size
        hits += np.intersect1d(got[got >= 0], ref, assume_unique=False).size
    return hits / total if total else 1.0


def _oracle_check(model: CoverTree, data, query_kwargs: dict, k: int, result) -> dict:
    from covertreex.api import CoverTree

    oracle = CoverTree(engine="brute", metric=model.metric, preset=model.preset, brute_variant="auto",
                       telemetry=False, threads=model.config.threads).fit(data)
    start = time.perf_counter()
    with progress.phase("oracle (brute)"):
        ref = oracle.query(k=k, **query_kwargs)
    identical = bool(np.array_equal(ref.indices, result.indices)
                     and np.array_equal(ref.distances.view(np.int64), result.distances.view(np.int64)))
    return {"recall": _recall(result.indices, ref.indices), "identical_to_oracle": identical,
            "oracle_seconds": time.perf_counter() - start}


# ------------------------------------------------------------------------------------------ commands


def _say(args, line: str) -> None:
    print(line, file=sys.stderr if args.json else sys.stdout, flush=True)


def _timings(runs: list[dict], n_queries: int | None = None) -> dict:
    """best/mean/std of every timing over the runs (build timings are None when the tree was loaded)."""
    built = runs[0]["build_seconds"] is not None
    timings = {
        "v_seconds": _stats([r["v_seconds"] for r in runs]),
        "build_seconds": _stats([r["build_seconds"] for r in runs]) if built else None,
        "build_with_v_seconds": _stats([r["build_seconds"] + r["v_seconds"] for r in runs])
        if built else None,
    }
    if n_queries is not None:
        timings["query_seconds"] = _stats([r["query_seconds"] for r in runs])
        timings["queries_per_second"] = _stats(
            [n_queries / max(r["query_seconds"], 1e-12) for r in runs], best=max)
    return timings


def _report_build(args, model: CoverTree, timings: dict, tree_file) -> None:
    """The 'data' (residual only) and 'build' summary lines."""
    if model.metric == "residual":
        _say(args, f"data    V construction {_seconds(timings['v_seconds'])}")
    if tree_file:
        _say(args, f"build   tree loaded from {tree_file} (not built); {_tree_facts(model)}")
    elif model.built_tree is None:
        _say(args, f"build   {_tree_facts(model)}")
    else:
        with_v = (f"; with V {_seconds(timings['build_with_v_seconds'])}"
                  if model.metric == "residual" else "")
        who = " by gold (shared tree)" if model.config.shared_tree and model.engine.name != "gold" else ""
        _say(args, f"build   {_seconds(timings['build_seconds'])}{with_v}{who}; {_tree_facts(model)}")


def _query_target(args, n: int) -> tuple[dict, int, int, str]:
    """CoverTree.query arguments, number of queries, query x point pairs and a description."""
    if args.predecessor:
        return {"predecessor": True}, n, n * (n - 1) // 2, f"every point vs its predecessors ({n})"
    count = 1024 if args.queries is None else args.queries
    idx = np.random.default_rng(args.query_seed).integers(0, n, count)
    return {"indices": idx}, count, count * n, f"{count} queries (seed {args.query_seed})"


def _cmd_query(args) -> int:
    from covertreex import telemetry
    from covertreex.tree import npz_target

    model = _model(args)
    if args.save_tree and not model.engine.uses_tree:
        raise InvalidInputError(f"--save-tree: engine {model.engine.name!r} builds no tree")
    dataset = datasets.make(args.dataset, args.n, args.dims, args.seed)
    query_kwargs, n_queries, pairs, what = _query_target(args, dataset.n)
    tree_file = args.tree if model.engine.uses_tree else None  # an exhaustive engine has no use for it
    summary = {"command": "query", **_describe(args, model, dataset), "k": args.k,
               "n_queries": n_queries, "query_seed": None if args.predecessor else args.query_seed,
               "predecessor": args.predecessor, "tree_file": tree_file,
               "tree_source": ("loaded" if tree_file else "built") if model.engine.uses_tree else None}
    _say(args, "pcct query: " + _header(summary, f"; k={args.k}, {what}"))

    answers_file = npz_target(args.out, "answers") if args.out else None  # a bad path fails before work
    if args.save_tree:
        npz_target(args.save_tree, "tree")
    runs, first, differing, saved = [], None, [], {}
    for run in range(1, args.repeat + 1):
        label = f" [run {run}/{args.repeat}]" if args.repeat > 1 else ""
        data, v_seconds = _make_data(args, model, dataset)
        _build(model, data, tree_file)
        with progress.phase(f"query ({model.engine.name}){label}"):
            result = model.query(k=args.k, **query_kwargs)
        build_seconds = None if tree_file else model.build_seconds  # a lazy build happens in query()
        runs.append({"v_seconds": v_seconds, "build_seconds": build_seconds,
                     "query_seconds": result.seconds})
        if args.telemetry:
            telemetry.write_jsonl(args.telemetry, [result.telemetry])
        if first is None:
            first = result
            if args.save_tree:
                saved["tree"] = str(model.tree.save(args.save_tree))
            if args.out:
                saved["answers"] = str(answers_file)
                np.savez(saved["answers"], indices=result.indices, distances=result.distances,
                         query_indices=query_kwargs.get("indices", np.arange(0)))
        elif not (np.array_equal(first.indices, result.indices)
                  and np.array_equal(first.distances, result.distances)):
            differing.append(run)

    timings = _timings(runs, n_queries)
    evaluations = float(first.counters.per_query[:, QueryCounter.DISTANCE_EVALUATIONS].mean())
    summary.update(timings=timings, tree_digest=telemetry.tree_digest(model.built_tree),
                   build_evaluations=getattr(model.built_tree, "build_evaluations", None),
                   path=first.counters.extra.get("path"), saved=saved,
                   evaluations_per_query=evaluations, runs_identical=not differing,
                   recall=None, identical_to_oracle=None, oracle_seconds=None)
    _report_build(args, model, timings, tree_file)
    screened = first.telemetry["per_query"]["pairs_screened"]["mean"] if first.telemetry else None
    work = (f"path {summary['path']}" + ("" if not screened else f", {screened:.1f} pairs screened/query")
            + f", {evaluations:.1f} canonical distance evaluations/query")
    _say(args, f"query   {_seconds(timings['query_seconds'])}; "
               f"{timings['queries_per_second']['best']:.1f} q/s; {work}")
    for what, where in saved.items():
        _say(args, f"saved   {what} {where}")
    if differing:
        _say(args, f"repeat  runs {differing} returned different neighbours than run 1: the engine "
                   "is not deterministic")

    if args.recall or (args.recall is None and pairs <= RECALL_AUTO_PAIRS):
        summary.update(_oracle_check(model, data, query_kwargs, args.k, first))
        same = "yes" if summary["identical_to_oracle"] else "NO"
        _say(args, f"recall  {summary['recall']:.6f} vs brute oracle; identical neighbours and "
                   f"distances: {same} (oracle {summary['oracle_seconds']:.3f} s)")
    else:
        _say(args, f"recall  not computed ({pairs} query x point pairs > {RECALL_AUTO_PAIRS}; "
                   "pass --recall)")
    if args.json:
        print(json.dumps(summary, indent=2))
    return EXIT_ERROR if differing else 0


def _cmd_build(args) -> int:
    from covertreex import telemetry
    from covertreex.tree import validate as validate_tree

    model = _model(args)
    if not model.engine.uses_tree:
        raise InvalidInputError(f"engine {model.engine.name!r} builds no tree (it scans exhaustively)")
    dataset = datasets.make(args.dataset, args.n, args.dims, args.seed)
    summary = {"command": "build", **_describe(args, model, dataset)}
    _say(args, "pcct build: " + _header(summary, ""))
    data, v_seconds = _make_data(args, model, dataset)
    _build(model, data, None)
    tree = model.tree  # builds it now unless the path knob already did in fit()
    timings = _timings([{"v_seconds": v_seconds, "build_seconds": model.build_seconds}])
    summary.update(timings=timings, root=tree.root, levels=list(tree.level_range),
                   build_evaluations=tree.build_evaluations,
                   tree_digest=telemetry.tree_digest(tree), out=args.out, checked=args.check)
    _report_build(args, model, timings, None)
    if args.check:
        with progress.phase("checking invariants"):
            validate_tree(tree, model.space)
        _say(args, "check   the four cover-tree invariants hold")
    if args.out:
        summary["out"] = str(tree.save(args.out))
        _say(args, f"saved   {summary['out']}")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def _cmd_telemetry_validate(args) -> int:
    from covertreex import telemetry

    for path in args.files:
        records = telemetry.read_jsonl(path)
        if not records:
            raise InvalidInputError(f"{path}: no telemetry records")
        print(f"{path}: {len(records)} records valid against {telemetry.SCHEMA_NAME} "
              f"v{telemetry.SCHEMA_VERSION}")
    return 0


def _cmd_presets(args) -> int:
    names = args.names or list(PRESETS)
    active = os.environ.get(ENV_VAR) or None
    shown = {}
    for name in names:
        preset = get_preset(name)
        shown[name] = {"description": preset.description, "metric": preset.metric,
                       "options": preset.config().as_dict(), "set_by_preset": sorted(preset.options)}
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    for name, info in shown.items():
        mark = f"  (active: {ENV_VAR}={name})" if name == active else ""
        print(f"{name}{mark}\n  {info['description']}")
        print(f"  {'metric':<16}{info['metric']}")
        for knob, value in info["options"].items():
            source = "preset" if knob in info["set_by_preset"] else "default"
            print(f"  {knob:<16}{value!s:<10}({source})")
    return 0


def main(argv=None) -> int:
    """Entry point of the `pcct` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        return args.run(args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `pcct presets | head -1`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
    except (CovertreexError, OSError) as exc:
        print(f"pcct: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        print("pcct: error: out of memory (try a smaller --n, --m or --queries)", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("pcct: interrupted", file=sys.stderr)
        return 130
