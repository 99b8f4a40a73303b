"""``pcct``: build, query and benchmark covertreex from the shell (also ``python -m covertreex``).

Every flag maps onto one thing the library already has: datasets from :mod:`covertreex.datasets`, the
residual problem, the engine registry, presets and the knobs of :data:`covertreex.config.KNOBS` (one
flag per knob, same name). Errors a user can cause end in one line on stderr and a non-zero exit.
This module is only the command-line surface (parser, dispatch, errors) and imports no NumPy; each command
runs in a module loaded when it is chosen (:mod:`covertreex.cli_workload` for query and build,
:mod:`covertreex.cli_vecchia`), so ``pcct --help`` and argument errors stay fast.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from contextlib import contextmanager
from importlib import import_module

from covertreex import __version__
from covertreex.config import KNOBS
from covertreex.engines import engine_names
from covertreex.errors import CovertreexError, InvalidInputError
from covertreex.kinds import DATASETS, KERNELS, METRICS, ORDERINGS
from covertreex.presets import ENV_VAR, PRESETS, get_preset
from covertreex.resources import require_importable_numba_threads

RECALL_AUTO_PAIRS = 1 << 26
"""Recall against the brute oracle is computed by default up to this many query x point pairs."""
RESIDUAL_DEFAULTS = {"kernel": "rbf", "lengthscale": 1.0, "variance": 1.0, "m": 512, "inducing_seed": 42}
EXIT_USAGE, EXIT_ERROR = 2, 1
MAX_REPEAT = 1000
"""Most --repeat runs: a statistic needs tens; 10**12 was accepted and ran until killed."""
SHOWN_DEFAULTS = {"mode": "parity; perf without --engine", "threads": "all available cores"}
"""What --help says a knob's default is, where the knob's own default is not what a run uses or reads."""
PYTHON_NONE = re.compile(r" \(None: [^)]*\)")
"""A knob doc's note of what None means, left out of --help: no flag takes None (its default says it)."""


class UsageError(Exception):
    """A command-line mistake argparse found; printed as one line."""


def usage_error(command: str, message: str) -> UsageError:
    """A command-line mistake found after parsing (a flag the chosen options make meaningless), worded and
    exiting (2) as argparse's own: such refusals exited 1, as errors of the data do (an outside review)."""
    return UsageError(f"pcct {command}: error: {message} (see 'pcct {command} --help')")


class Parser(argparse.ArgumentParser):
    """Errors are one line; options are never abbreviated (``pcct build --k 3`` was taken for --kernel,
    an option of another meaning, and refused as "invalid choice: '3'")."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **{"allow_abbrev": False, **kwargs})

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


MAX_ROWS = 2**36
MAX_DIMS = 2**16
"""Caps on generated sizes, far beyond any machine's memory (N x D doubles stay below 2**55 bytes), so a
too-large size is the one-line out-of-memory error and never NumPy's 'Maximum allowed dimension exceeded'
traceback."""


def count(minimum: int, maximum: int | None = None):
    """argparse type: an integer >= minimum (and <= maximum), with a message naming the bound; written in
    ASCII digits (int() also takes '1_0' and other scripts' digits, which a typo could produce)."""

    def parse(text: str) -> int:
        if not re.fullmatch(r"\s*[+-]?[0-9]+\s*", text):
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}")
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"must be <= {maximum}, got {value}")
        return value

    return parse


def number(text: str) -> float:
    """argparse type: a float, written in ASCII without underscores (float() also takes '2_5' as 25.0 and
    other scripts' digits, as int() does for :func:`count`)."""
    try:
        if text.isascii() and "_" not in text:
            return float(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")


def positive_number(text: str) -> float:
    """argparse type: a positive finite float (a kernel's variance or lengthscale), so the flag is named."""
    return _positive(number(text), text)


def _positive(value: float, text: str) -> float:
    if not 0.0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be positive and finite, got {text!r}")
    return value


def lengthscale(text: str):
    """argparse type: one positive float, or one per dimension separated by commas."""
    parts = text.split(",")
    try:
        values = [number(part) for part in parts]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a number or comma-separated numbers, got {text!r}") from None
    values = [_positive(value, part) for value, part in zip(values, parts, strict=True)]
    return values[0] if len(values) == 1 else values


# ---------------------------------------------------------------------------------------------- parser


def _add_workload(parser: argparse.ArgumentParser) -> None:
    """Data, metric, engine, preset and knob flags shared by `query` and `build`."""
    data = parser.add_argument_group("data (covertreex.datasets; defaults give the gold workload)")
    data.add_argument("--dataset", choices=sorted(DATASETS), default="gaussian",
                      help="point generator (default: %(default)s)")
    data.add_argument("--n", type=count(1, MAX_ROWS), default=32768, metavar="N",
                      help="number of points (default: %(default)s)")
    data.add_argument("--dims", type=count(1, MAX_DIMS), default=3, metavar="D",
                      help="dimensions per point (default: %(default)s)")
    data.add_argument("--seed", type=count(0), default=42, metavar="S",
                      help="dataset seed: gaussian is default_rng(S).normal(size=(N, D)) "
                           "(default: %(default)s)")

    metric = parser.add_argument_group("metric (residual flags need --metric residual)")
    metric.add_argument("--metric", choices=METRICS, default=None,
                        help="distance: euclidean, or the residual correlation of a low-rank GP "
                             "(default: the preset's metric, else euclidean)")
    _add_kernel_options(metric)
    metric.add_argument("--inducing-seed", type=count(0), default=None, metavar="S",
                        help="seed of the inducing-point choice (default: "
                             f"{RESIDUAL_DEFAULTS['inducing_seed']}, the gold workload's; the library's "
                             "residual_problem and pcct vecchia default to 0)")

    engine = parser.add_argument_group(
        "engine and configuration (explicit flags override the preset)")
    engine.add_argument("--engine", default=None, metavar="NAME", choices=engine_names(),
                        help=f"engine from the registry: {', '.join(engine_names())} (default: the "
                             "fastest exact configuration: rust in mode perf, gold where the extension is "
                             "not built)")
    engine.add_argument("--preset", default=None, metavar="NAME",
                        help=f"named configuration: {', '.join(PRESETS)} "
                             f"(default: ${ENV_VAR} if set; see 'pcct presets')")
    for name, knob in KNOBS.items():
        if name == "telemetry":
            continue  # `query` exposes it as --telemetry FILE / --no-telemetry
        flag, dest = "--" + name.replace("_", "-"), f"knob_{name}"
        text = f"{PYTHON_NONE.sub('', knob.doc)} (default: {SHOWN_DEFAULTS.get(name, knob.default)})"
        if knob.choices is not None:
            engine.add_argument(flag, dest=dest, choices=knob.choices, default=None, help=text)
        elif knob.kind is bool:
            engine.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                                help=text)
        elif knob.kind is int:
            engine.add_argument(flag, dest=dest, type=count(knob.minimum or 0), default=None,
                                metavar="N", help=text)
        else:
            engine.add_argument(flag, dest=dest, default=None, metavar="VALUE", help=text)
    parser.add_argument("--json", action="store_true",
                        help="print a machine-readable JSON summary on stdout (the human summary "
                             "lines then go to stderr)")


def _add_query(parser: argparse.ArgumentParser) -> None:
    q = parser.add_argument_group("queries")
    q.add_argument("--k", type=count(1), default=50, metavar="K",
                   help="neighbours per query (default: %(default)s)")
    which = q.add_mutually_exclusive_group()
    which.add_argument("--queries", type=count(1, MAX_ROWS), default=None, metavar="Q",
                       help="query the dataset indices default_rng(QUERY_SEED).integers(0, N, Q) "
                            "(default: 1024)")
    which.add_argument("--predecessor", action="store_true",
                       help="Vecchia mode: query every point i against the points j < i "
                            "(rows padded with -1/inf)")
    q.add_argument("--query-seed", type=count(0), default=43, metavar="S",
                   help="seed of the query indices (default: %(default)s)")

    run = parser.add_argument_group("run and report")
    run.add_argument("--repeat", type=count(1, MAX_REPEAT), default=1, metavar="R",
                     help="run data+V, build and query R times in this process and report best, mean "
                          f"and std, at most {MAX_REPEAT} (default: %(default)s)")
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


def _add_kernel_options(group) -> None:
    """--kernel, --lengthscale, --variance and --m of the residual problem (None when not given, so a
    command can refuse them where no residual problem is built)."""
    group.add_argument("--kernel", choices=KERNELS, default=None,
                       help="residual kernel: rbf, S2 exp(-r^2/2), or matern52, S2 (1 + a + a^2/3) exp(-a) "
                            "with a = sqrt(5) r, r the distance in lengthscales "
                            f"(default: {RESIDUAL_DEFAULTS['kernel']})")
    group.add_argument("--lengthscale", type=lengthscale, default=None, metavar="L[,L...]",
                       help="kernel lengthscale, one value or one per dimension "
                            f"(default: {RESIDUAL_DEFAULTS['lengthscale']})")
    group.add_argument("--variance", type=positive_number, default=None, metavar="S2",
                       help=f"kernel variance (default: {RESIDUAL_DEFAULTS['variance']}; the residual "
                            "variance has an absolute floor of 1e-9, so far below 1 it changes the "
                            "correlations, which do not depend on S2 otherwise)")
    group.add_argument("--m", type=count(1), default=None, metavar="M",
                       help=f"inducing points (default: {RESIDUAL_DEFAULTS['m']}; all points if M >= N)")


def _add_vecchia(sub) -> None:
    """`pcct vecchia`: the Vecchia job from a points file (run by :mod:`covertreex.cli_vecchia`)."""
    parser = sub.add_parser(
        "vecchia", help="order points and find each one's k nearest predecessors (the Vecchia job)",
        description="Read points from a .npy or .csv file, order them (natural, random, a given "
                    "permutation, or exact maximin) and find every point's k nearest predecessors in "
                    "that ordering, exactly. Writes ordering (N,), neighbors (N, k) as positions in the "
                    "ordering with -1 padding, and distances (N, k) with +inf padding to --out. A bar "
                    "shows progress on stderr when it is a terminal.",
    )
    parser.add_argument("points", metavar="POINTS", help="points file: .npy (N, d) or .csv (comma-separated, "
                                                          "one row per point; a first line naming the "
                                                          "columns is skipped)")
    parser.add_argument("--k", type=count(1), default=50, metavar="K",
                        help="neighbours per point (default: %(default)s)")
    parser.add_argument("--metric", choices=METRICS, default="residual",
                        help="neighbour distance (default: %(default)s)")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--ordering", choices=ORDERINGS, default="maximin",
                       help="'maximin' is exact maximin in --metric (default: %(default)s)")
    order.add_argument("--ordering-file", default=None, metavar="FILE",
                       help="use this permutation of 0..N-1 (.npy or .csv) as the ordering")
    residual = parser.add_argument_group(
        "residual metric or --ordering maximin-residual (as covertreex.residual_problem; an error otherwise)")
    _add_kernel_options(residual)
    parser.add_argument("--seed", type=count(0), default=None, metavar="S",
                        help="seed of the inducing points and of --ordering random (default: 0)")
    parser.add_argument("--engine", default="auto", metavar="NAME", choices=("auto", *engine_names()),
                        help=f"auto (the fastest exact engine) or one of {', '.join(engine_names())} "
                             "(default: %(default)s)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="find the neighbours on the Dask cluster at this scheduler address, e.g. "
                             "tcp://host:8786 (needs covertreex[dask]; the ordering is computed here, and "
                             "a maximin ordering in --metric that the engine fuses with the neighbours "
                             "finds them itself, with no cluster)")
    parser.add_argument("--threads", type=count(1), default=None, metavar="T",
                        help="threads the job runs on here, at most the CPUs this process may use (default: "
                             "all of them; never changes the answer)")
    parser.add_argument("--out", default=None, metavar="FILE.npz",
                        help="write ordering, neighbors, distances and the JSON summary here (.npz "
                             "appended if missing; an existing file is replaced)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary on stdout (the summary lines then go to stderr)")
    parser.set_defaults(run="covertreex.cli_vecchia:run")


def build_parser() -> Parser:
    parser = Parser(
        prog="pcct",
        description="Exact k-NN with compressed cover trees: build trees, run and benchmark queries, "
                    "check telemetry files, list presets, order points and find their Vecchia neighbours.",
        epilog="The gold workload (the reference residual benchmark, docs/benchmarks.md): pcct query "
               "--metric residual --n 32768 --dims 3 --m 512 --k 50 --queries 1024. Exit status: 0 done; "
               "1 an error (one line on stderr), a run whose repeats differ, or a reader that left (stdout, "
               "or stderr under --json: the files are still written); 2 a bad command line; 130 interrupted.",
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
    query.set_defaults(run="covertreex.cli_workload:run_query")

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
    build.set_defaults(run="covertreex.cli_workload:run_build")

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
    validate.set_defaults(run="covertreex.cli:run_telemetry_validate")

    presets = sub.add_parser(
        "presets", help="show each preset's resolved settings",
        description=f"Print every preset (or the NAMEs given) with the metric and every option "
                    f"value it resolves to. Select one with --preset or ${ENV_VAR}.",
    )
    presets.add_argument("names", nargs="*", metavar="NAME", help="presets to show (default: all)")
    presets.add_argument("--json", action="store_true", help="print JSON instead of text")
    presets.set_defaults(run="covertreex.cli:run_presets")

    _add_vecchia(sub)
    return parser


# ------------------------------------------------------------------------------------------ commands


def say(args, line: str) -> None:
    """One summary line: on stdout, or on stderr when --json keeps stdout for the JSON. A reader that left
    (`| head -1`) does not end the run: the work goes on and its files are written (the run then exits
    with EXIT_ERROR, see :func:`main`), where the BrokenPipeError of the first line lost them."""
    stream = sys.stderr if args.json else sys.stdout
    try:
        print(line, file=stream, flush=True)
    except BrokenPipeError:
        _silence(stream)
        args.reader_left = True


def _silence(stream) -> None:
    """Send what is still written to `stream`, whose reader left, nowhere (so no flush at exit fails)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


@contextmanager
def naming(path, what: str):
    """An OSError while reading `path` names the file and `what` it holds (EIO mid-read named no file; a
    missing .csv was worded otherwise than a missing .npy; a --tree that was a directory named no option)."""
    try:
        yield
    except OSError as exc:
        raise type(exc)(exc.errno, f"{exc.strerror or exc} ({what})", str(path)) from None


def refuse_same_file(outputs: dict, inputs: dict) -> None:
    """Refuse, before any work, an output file that another option also names (`--out T.npz --save-tree
    T.npz`, or `--out` over the `--tree` every run reads): one was written over the other and both
    reported. Each dict maps an option to its path as the command uses it (.npz suffix added; None: not
    given); two inputs may be one file. A symlink or a hard link to the same file counts."""
    seen = [(option, path) for option, path in inputs.items() if path is not None]
    for option, path in outputs.items():
        if path is None:
            continue
        for earlier, earlier_path in seen:
            if _same_file(earlier_path, path):
                raise InvalidInputError(f"{earlier} {earlier_path} and {option} {path} name the same file; "
                                        "give each its own")
        seen.append((option, path))


def _same_file(a, b) -> bool:
    """One file: the same inode when both exist, else the same path once symlinks are resolved."""
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def run_telemetry_validate(args) -> int:
    from covertreex import telemetry

    for path in args.files:
        records = telemetry.read_jsonl(path)
        if not records:
            raise InvalidInputError(f"{path}: no telemetry records")
        # each record is checked against its own version's schema: name those (it said v5 of v4 records)
        versions = ", ".join(f"v{v}" for v in sorted({record["schema_version"] for record in records}))
        print(f"{path}: {len(records)} records valid against {telemetry.SCHEMA_NAME} {versions}")
    return 0


def run_presets(args) -> int:
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
        width = max(len("metric"), *map(len, info["options"])) + 2  # the longest knob name, then a gap
        print(f"  {'metric':<{width}}{info['metric']}")
        for knob, value in info["options"].items():
            source = "preset" if knob in info["set_by_preset"] else "default"
            print(f"  {knob:<{width}}{value!s:<10}({source})")
    return 0


def _command(target: str):
    """The command function named 'module:function'; its module (NumPy, engines) loads only when it
    runs."""
    module, function = target.split(":")
    return getattr(import_module(module), function)


def main(argv=None) -> int:
    """Entry point of the `pcct` console script; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if sys.stdout is None:  # started with it closed (`>&-`): every line would be dropped unseen
            raise OSError("standard output is closed: pcct writes its results there")
        require_importable_numba_threads()
        status = _command(args.run)(args)
        return EXIT_ERROR if getattr(args, "reader_left", False) else status
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # e.g. `pcct presets | head -1`: the reader left; say nothing more
        _silence(sys.stdout)
        return EXIT_ERROR
    except (CovertreexError, OSError) as exc:
        print(f"pcct: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except MemoryError:
        print("pcct: error: out of memory (try a smaller problem: fewer points, inducing points, queries or "
              "neighbours)", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("pcct: interrupted", file=sys.stderr)
        return 130
