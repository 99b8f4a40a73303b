"""``pcct query`` and ``pcct build``: generate the workload, build, query and report.

The parser of these commands is :mod:`covertreex.cli`; this module (NumPy, and the engines on first use)
loads only when one of them runs.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import numpy as np

from covertreex import datasets, progress
from covertreex.cli import (
    EXIT_ERROR,
    RECALL_AUTO_PAIRS,
    RESIDUAL_DEFAULTS,
    naming,
    refuse_same_file,
    say,
    usage_error,
)
from covertreex.config import KNOBS
from covertreex.counters import QueryCounter
from covertreex.errors import InvalidInputError
from covertreex.npz import write_arrays
from covertreex.resources import thread_limit

if TYPE_CHECKING:
    from covertreex.api import CoverTree


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
        raise usage_error(args.command, f"{flags}: only for the residual metric (the metric is "
                                        f"{model.metric})")
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
    with progress.phase("V construction"), thread_limit(model.config.threads):
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

        with naming(tree_file, "--tree"):
            tree = load_tree(tree_file)
        model.use_tree(tree, data)
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
        "residual": _used_residual_params(args, dataset.n) if model.metric == "residual" else None,
    }


def _used_residual_params(args, n_points: int) -> dict:
    """The residual options as the run used them: m is the number of inducing points taken."""
    from covertreex.residual import inducing_count

    params = _residual_params(args)
    return {**params, "m": inducing_count(n_points, params["m"])}


def _stats(values, best=min) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    return {"best": float(best(arr)), "mean": float(arr.mean()), "std": float(arr.std()),
            "runs": [float(v) for v in arr]}


def _seconds(stat: dict) -> str:
    """The timing as a summary line shows it, in ASCII: a '±' ended the run with a UnicodeEncodeError on
    a stdout that cannot encode it (PYTHONIOENCODING=ascii, a C locale)."""
    if len(stat["runs"]) == 1:
        return f"{stat['best']:.3f} s"
    return (f"{stat['best']:.3f} s best of {len(stat['runs'])} "
            f"(mean {stat['mean']:.3f} +/- {stat['std']:.3f} s)")


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
        say(args, f"data    V construction {_seconds(timings['v_seconds'])}")
    if tree_file and not model.engine.uses_tree:
        say(args, f"build   tree from {tree_file} checked against the data ({model.engine.name} queries no "
                  "tree)")
    elif tree_file:
        say(args, f"build   tree loaded from {tree_file} (not built); {_tree_facts(model)}")
    elif model.built_tree is None:
        say(args, f"build   {_tree_facts(model)}")
    else:
        with_v = (f"; with V {_seconds(timings['build_with_v_seconds'])}"
                  if model.metric == "residual" else "")
        who = " by gold (shared tree)" if model.config.shared_tree and model.engine.name != "gold" else ""
        say(args, f"build   {_seconds(timings['build_seconds'])}{with_v}{who}; {_tree_facts(model)}")


def _query_target(args, n: int) -> tuple[dict, int, int, str]:
    """CoverTree.query arguments, number of queries, query x point pairs and a description."""
    if args.predecessor:
        return {"predecessor": True}, n, n * (n - 1) // 2, f"every point vs its predecessors ({n})"
    count = 1024 if args.queries is None else args.queries
    idx = np.random.default_rng(args.query_seed).integers(0, n, count)
    return {"indices": idx}, count, count * n, f"{count} queries (seed {args.query_seed})"


def _tree_source(model: CoverTree, tree_file) -> str | None:
    """Where the queried tree came from: 'loaded' (--tree), 'built', or 'checked' for an exhaustive engine
    given --tree (the file is loaded and checked against the data as on any engine, then not queried);
    None for an exhaustive engine without one."""
    if not model.engine.uses_tree:
        return "checked" if tree_file else None
    return "loaded" if tree_file else "built"


def _output_targets(args):
    """The file --out writes (None without it), once every file the run reads or writes has been checked
    before the work: each output writable, no two options naming one file."""
    from covertreex.tree import file_target, npz_target

    answers = None if args.out is None else npz_target(args.out, "answers")
    tree = None if args.save_tree is None else npz_target(args.save_tree, "tree")
    records = None if args.telemetry is None else file_target(args.telemetry, "telemetry", ".jsonl")
    refuse_same_file({"--out": answers, "--save-tree": tree, "--telemetry": records}, {"--tree": args.tree})
    return answers


def run_query(args) -> int:
    from covertreex import telemetry

    model = _model(args)
    if args.save_tree is not None and not model.engine.uses_tree:
        raise InvalidInputError(f"--save-tree: engine {model.engine.name!r} builds no tree")
    answers_file = _output_targets(args)  # a bad or clashing path fails before any work
    dataset = datasets.make(args.dataset, args.n, args.dims, args.seed)
    query_kwargs, n_queries, pairs, what = _query_target(args, dataset.n)
    tree_file = args.tree
    summary = {"command": "query", **_describe(args, model, dataset), "k": args.k,
               "n_queries": n_queries, "query_seed": None if args.predecessor else args.query_seed,
               "predecessor": args.predecessor, "tree_file": tree_file,
               "tree_source": _tree_source(model, tree_file)}
    say(args, "pcct query: " + _header(summary, f"; k={args.k}, {what}"))

    runs, first, differing, saved = [], None, [], {}
    for run in range(1, args.repeat + 1):
        label = f" [run {run}/{args.repeat}]" if args.repeat > 1 else ""
        data, v_seconds = _make_data(args, model, dataset)
        _build(model, data, tree_file)
        if args.save_tree is not None and tree_file is None and run == 1:
            with progress.phase("build (for --save-tree)"):
                model.tree  # noqa: B018 -- built now, so that its seconds are the build's, not uncounted
        with progress.phase(f"query ({model.engine.name}){label}"):
            result = model.query(k=args.k, **query_kwargs)
        build_seconds = None if tree_file else model.build_seconds  # a lazy build happens in query()
        runs.append({"v_seconds": v_seconds, "build_seconds": build_seconds,
                     "query_seconds": result.seconds})
        if args.telemetry:
            telemetry.write_jsonl(args.telemetry, [result.telemetry])
        if first is None:
            first = result
            if args.save_tree is not None:
                saved["tree"] = str(model.tree.save(args.save_tree))
            if answers_file is not None:
                write_arrays(answers_file, {"indices": result.indices, "distances": result.distances,
                                            "query_indices": query_kwargs.get("indices", np.arange(0))})
                saved["answers"] = str(answers_file)
        elif not (np.array_equal(first.indices, result.indices)
                  and np.array_equal(first.distances, result.distances)):
            differing.append(run)

    if summary["tree_source"] == "built" and model.built_tree is None:
        summary["tree_source"] = None  # the query took the dense path: no tree was built
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
    say(args, f"query   {_seconds(timings['query_seconds'])}; "
               f"{timings['queries_per_second']['best']:.1f} q/s; {work}")
    for what, where in saved.items():
        say(args, f"saved   {what} {where}")
    if differing:
        say(args, f"repeat  runs {differing} returned different neighbours than run 1: the engine "
                   "is not deterministic")

    if args.recall or (args.recall is None and pairs <= RECALL_AUTO_PAIRS):
        summary.update(_oracle_check(model, data, query_kwargs, args.k, first))
        same = "yes" if summary["identical_to_oracle"] else "NO"
        say(args, f"recall  {summary['recall']:.6f} vs brute oracle; identical neighbours and "
                   f"distances: {same} (oracle {summary['oracle_seconds']:.3f} s)")
    elif args.recall is False:
        say(args, "recall  not computed (--no-recall)")
    else:
        say(args, f"recall  not computed ({pairs} query x point pairs > {RECALL_AUTO_PAIRS}; "
                   "pass --recall)")
    if args.json:
        print(json.dumps(summary, indent=2))
    return EXIT_ERROR if differing else 0


def run_build(args) -> int:
    from covertreex import telemetry
    from covertreex.tree import npz_target
    from covertreex.tree import validate as validate_tree

    model = _model(args)
    if not model.engine.uses_tree:
        raise InvalidInputError(f"engine {model.engine.name!r} builds no tree (it scans exhaustively)")
    if args.out is not None:
        npz_target(args.out, "tree")  # a bad path fails before any work
    dataset = datasets.make(args.dataset, args.n, args.dims, args.seed)
    summary = {"command": "build", **_describe(args, model, dataset)}
    say(args, "pcct build: " + _header(summary, ""))
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
        say(args, "check   the four cover-tree invariants hold")
    if args.out is not None:
        summary["out"] = str(tree.save(args.out))
        say(args, f"saved   {summary['out']}")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0
