"""``pcct vecchia``: the Vecchia job from the shell -- points from a file in, ordering and neighbours out.

It is :func:`covertreex.vecchia_neighbors` behind flags of the same names; the .npz it writes holds
``ordering``, ``neighbors`` and ``distances`` with the shape conventions of :mod:`covertreex.vecchia`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from covertreex import progress, vecchia_orderings
from covertreex.cli import RESIDUAL_DEFAULTS, _count, _lengthscale, _say
from covertreex.engines import engine_names
from covertreex.errors import CovertreexError, InvalidInputError
from covertreex.kinds import KERNELS, METRICS

READERS = {".npy": "NumPy array", ".csv": "comma-separated numbers, one row per point"}


def read_array(path, what: str, dtype=float) -> np.ndarray:
    """The array in a .npy or .csv file (`what` names it in errors; `dtype` is the .csv's); problems end
    in one line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise InvalidInputError(f"{path}: {what} must be a .npy or .csv file, got {suffix or 'no suffix'!r}")
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        return np.loadtxt(path, delimiter=",", ndmin=2, comments="#", dtype=dtype)
    except ValueError as exc:
        reason = " ".join(str(exc).split())
        raise InvalidInputError(
            f"{path}: cannot read {what} as {READERS[suffix]} ({reason}); a header line must start "
            "with '#'" if suffix == ".csv" else f"{path}: cannot read {what} ({reason})"
        ) from None


def add_parser(sub) -> None:
    parser = sub.add_parser(
        "vecchia", help="order points and find each one's k nearest predecessors (the Vecchia job)",
        description="Read points from a .npy or .csv file, order them (natural, random, a given "
                    "permutation, or exact maximin) and find every point's k nearest predecessors in "
                    "that ordering, exactly. Writes ordering (N,), neighbors (N, k) as positions in the "
                    "ordering with -1 padding, and distances (N, k) with +inf padding to --out. A bar "
                    "shows progress on stderr when it is a terminal.",
    )
    parser.add_argument("points", metavar="POINTS", help="points file: .npy (N, d) or .csv (one row per "
                                                          "point)")
    parser.add_argument("--k", type=_count(1), default=50, metavar="K",
                        help="neighbours per point (default: %(default)s)")
    parser.add_argument("--metric", choices=METRICS, default="residual",
                        help="neighbour distance (default: %(default)s)")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--ordering", choices=vecchia_orderings.NAMED, default="maximin",
                       help="'maximin' is exact maximin in --metric (default: %(default)s)")
    order.add_argument("--ordering-file", default=None, metavar="FILE",
                       help="use this permutation of 0..N-1 (.npy or .csv) as the ordering")
    residual = parser.add_argument_group("residual metric (as covertreex.residual_problem)")
    residual.add_argument("--kernel", choices=KERNELS, default=RESIDUAL_DEFAULTS["kernel"],
                          help="kernel (default: %(default)s)")
    residual.add_argument("--lengthscale", type=_lengthscale, default=RESIDUAL_DEFAULTS["lengthscale"],
                          metavar="L[,L...]", help="one lengthscale or one per dimension "
                                                   "(default: %(default)s)")
    residual.add_argument("--variance", type=float, default=RESIDUAL_DEFAULTS["variance"], metavar="S2",
                          help="kernel variance (default: %(default)s)")
    residual.add_argument("--m", type=_count(1), default=RESIDUAL_DEFAULTS["m"], metavar="M",
                          help="inducing points (default: %(default)s)")
    parser.add_argument("--seed", type=_count(0), default=0, metavar="S",
                        help="seed of the inducing points and of --ordering random (default: %(default)s)")
    parser.add_argument("--engine", default="auto", metavar="NAME",
                        help=f"auto (the fastest exact engine) or one of {', '.join(engine_names())} "
                             "(default: %(default)s)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="find the neighbours on the Dask cluster at this scheduler address, e.g. "
                             "tcp://host:8786 (needs covertreex[dask]; the ordering is computed here)")
    parser.add_argument("--out", default=None, metavar="FILE.npz",
                        help="write ordering, neighbors and distances here (.npz appended if missing)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON summary on stdout (the summary lines then go to stderr)")
    parser.set_defaults(run=run)


def run(args) -> int:
    from covertreex.tree import npz_target  # Numba and SciPy load only when the command runs
    from covertreex.vecchia import FUSED_ORDERINGS, vecchia_neighbors

    out = npz_target(args.out, "neighbours") if args.out else None  # a bad path fails before any work
    X = read_array(args.points, "the points")
    ordering = args.ordering
    if args.ordering_file:
        ordering = read_array(args.ordering_file, "the ordering", dtype=np.int64)
        if ordering.ndim == 2 and 1 in ordering.shape:  # one .csv column or row
            ordering = ordering.ravel()
        try:
            vecchia_orderings.resolve(ordering, len(X) if X.ndim else 0)
        except CovertreexError as exc:
            raise type(exc)(f"{args.ordering_file}: {exc}") from None
    n = len(X) if X.ndim else 0
    with progress.phase("ordering", total=2 * n or None) as done:  # N points ordered, then N answered
        def show(stage: str, finished: int) -> None:
            done(finished + (n if stage == "neighbours" else 0), stage)

        result = vecchia_neighbors(
            X, args.k, metric=args.metric, ordering=ordering, kernel=args.kernel,
            lengthscale=args.lengthscale, variance=args.variance, m=args.m, seed=args.seed,
            engine=args.engine, progress=show, scheduler=args.scheduler,
        )
    summary = {
        "command": "vecchia", "points": str(args.points), "n": int(X.shape[0]), "dims": int(X.shape[1]),
        "metric": args.metric, "k": args.k, "engine": args.engine, "ordering": result.ordering_name,
        "residual": {"kernel": args.kernel, "lengthscale": args.lengthscale, "variance": args.variance,
                     "m": args.m, "seed": args.seed} if args.metric == "residual" else None,
        "ordering_seconds": result.ordering_seconds, "neighbor_seconds": result.neighbor_seconds,
        "maximin_evaluations": result.maximin_evaluations, "out": str(out) if out else None,
        "scheduler": args.scheduler,
    }
    _say(args, f"pcct vecchia: {summary['n']} points x {summary['dims']} dims from {args.points}; "
               f"{args.metric} metric, {result.ordering_name} ordering, k={args.k}")
    work = ("" if result.maximin_evaluations is None
            else f" ({result.maximin_evaluations / max(summary['n'], 1):.1f} distance evaluations/point)")
    _say(args, f"order   {result.ordering_seconds:.3f} s{work}")
    fused = result.ordering_name in FUSED_ORDERINGS and result.neighbor_seconds == 0.0
    _say(args, "nbrs    found in the same pass as the ordering" if fused
         else f"nbrs    {result.neighbor_seconds:.3f} s")
    if out:
        np.savez(out, ordering=result.ordering, neighbors=result.neighbors, distances=result.distances)
        _say(args, f"saved   {out}")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0
