"""``pcct vecchia``: the Vecchia job from the shell -- points from a file in, ordering and neighbours out.

It is :func:`covertreex.vecchia_neighbors` behind flags of the same names (the parser is in
:mod:`covertreex.cli`); the .npz it writes holds ``ordering``, ``neighbors`` and ``distances`` with the
shape conventions of :mod:`covertreex.vecchia`.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np

from covertreex import progress, vecchia_orderings
from covertreex.cli import RESIDUAL_DEFAULTS, naming, refuse_same_file, say, usage_error
from covertreex.config import KNOBS
from covertreex.csv_numbers import CsvNumbers, read_csv
from covertreex.errors import (
    ClusterError,
    CovertreexError,
    InputTypeError,
    InvalidInputError,
    NonFiniteError,
)
from covertreex.npz import read_npy, write_arrays
from covertreex.validation import as_points

SUFFIXES = (".npy", ".csv")


def read_array(path, what: str, *, points: bool = False) -> np.ndarray:
    """The array in a .npy or .csv file (`what` names it in errors; a .csv entry that is not finite, or an
    integer beyond float64's, is refused by its line and column, see :func:`_refuse_rounded_integers`);
    problems end in one line, a file that cannot be read included (its OSError names the file and
    `what`). `points`: a .csv's rows are points (:func:`covertreex.csv_numbers.read_csv`)."""
    if not str(path):  # Path("") is "." and was named as a directory
        raise InvalidInputError(f"the path of {what} is empty")
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir():
        raise InvalidInputError(f"{path}: {what} must be a .npy or .csv file, got a directory")
    if suffix not in SUFFIXES:
        raise InvalidInputError(f"{path}: {what} must be a .npy or .csv file, got {suffix or 'no suffix'!r}")
    with naming(path, what):
        if suffix == ".npy":
            return read_npy(path, what)
        numbers = read_csv(path, what, points=points)
    _refuse_rounded_integers(path, numbers, what)  # first: an integer of 309 digits reads as inf
    _refuse_underflow(path, numbers, what)
    not_finite = next(numbers.written(~np.isfinite(numbers.values)), None)
    if not_finite is not None:  # by line and column here: the points' own check counts rows from 0
        row, column, token = not_finite
        raise NonFiniteError(f"{path}: {what} must be finite; {numbers.place(row, column)} is {token}")
    return numbers.values


WITH_ORDERING = "with the ordering"
"""Where the summary says a fused maximin pass found the neighbours (else "here" or "on the cluster")."""


def _where_found(result, scheduler) -> str:
    """Where the neighbours were found: a --scheduler job whose maximin pass found them with the ordering
    never used the cluster, which its summary's address alone did not say (an outside trial)."""
    from covertreex.vecchia import FUSED_ORDERINGS

    if result.ordering_name in FUSED_ORDERINGS[result.metric] and result.neighbor_seconds == 0.0:
        return WITH_ORDERING
    return "here" if scheduler is None else "on the cluster"


def _refuse_rounded_integers(path: Path, numbers: CsvNumbers, what: str) -> None:
    """An integer written in the file that float64 cannot hold (beyond 2**53: nanosecond timestamps, ids)
    is refused, as the same integers in an int64 array are, instead of rounded (two points 1 apart became
    duplicates). Only values of 2**53 or more are looked at again, as text, compared as Decimals: int()
    refuses more than 4,300 digits, and the infinity float64 reads for an integer of 309 digits."""
    with np.errstate(invalid="ignore"):
        large = np.abs(numbers.values) >= 2.0**53
    for row, column, token in numbers.written(large):
        if INTEGER.fullmatch(token) and Decimal(token) != Decimal(numbers.values[row, column]):
            raise InvalidInputError(
                f"{path}: {what} hold the integer {token} ({numbers.place(row, column)}), which float64 "
                "cannot represent exactly; write the values as decimals if that rounding is acceptable")


INTEGER = re.compile(r"[+-]?[0-9]+")


def _refuse_underflow(path: Path, numbers: CsvNumbers, what: str) -> None:
    """A nonzero number written in the file that float64 reads as 0 (1e-400) is refused, as a nonzero
    coordinate closer to 0 than 2**-450 is (covertreex.metrics.space), instead of silently becoming 0: the
    larger 1e-300 was refused while 1e-400 passed (an outside trial). Only a file with a negative exponent
    or a run of 300 zeros can hold one (without, a number read as 0 is written as 0), and only its rows
    holding a 0 are read again."""
    if not UNDERFLOW_POSSIBLE.search(numbers.content):
        return
    for row, column, token in numbers.written(numbers.values == 0):
        if not ZERO.fullmatch(token):
            raise InvalidInputError(
                f"{path}: {what} hold {token} ({numbers.place(row, column)}), which float64 reads as 0 (it "
                "underflows); write 0 if that is meant, or scale the data up")


UNDERFLOW_POSSIBLE = re.compile(r"[eE][^\S\n]*-|0{300}")
ZERO = re.compile(r"[+-]?(?:0+\.?0*|\.0+)(?:[eE][+-]?[0-9]+)?")


def _ordering_file(path, n: int) -> np.ndarray:
    """The permutation in a .npy file (an integer array) or a .csv file (one column or one row of whole
    numbers, see :func:`_whole_numbers`)."""
    path = Path(path)
    numbers = None
    if path.suffix.lower() == ".csv":
        with naming(path, "the ordering"):
            numbers = read_csv(path, "the ordering")
        values = numbers.values
    else:
        values = read_array(path, "the ordering")
        if values.dtype.kind not in "iuf":  # a file holds no ordering name; floats are judged entry by entry
            raise InputTypeError(f"{path}: the ordering must hold integers, a permutation of 0..{n - 1}, "
                                 f"got dtype {values.dtype}")
    if values.ndim == 0 or (values.ndim == 2 and 1 in values.shape):  # one .csv column or row
        values = values.ravel()
    if values.ndim != 1:
        raise InvalidInputError(f"{path}: the ordering must be one column or one row (a permutation of "
                                f"0..{n - 1}), got shape {values.shape}")
    return values if numbers is None else _whole_numbers(path, numbers, n)


def _whole_numbers(path: Path, numbers: CsvNumbers, n: int) -> np.ndarray:
    """The entries of an ordering .csv (one column or row, as float64 read them) as integers: text has no
    dtype, so a whole number in any notation ('0.0e+00') is one, but only if written so
    ('4.99999999999999999' was taken for the 5 float64 rounds it to); the first entry that is no whole
    number or lies outside 0..n-1 is refused as such, with its line and column (a huge one was called an
    integer float64 cannot hold). Float64's rounding keeps the range test exact: n and every whole number
    below it are floats."""
    values, tokens = numbers.values.ravel(), numbers.tokens().ravel()
    whole = np.fromiter(map(_written_whole, tokens), dtype=bool, count=tokens.size)
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~whole | ~((values >= 0) & (values < n)))
    if bad.size:
        i = int(bad[0])
        where = f"entry {i} ({numbers.place(*divmod(i, numbers.values.shape[1]))})"
        if not whole[i]:
            raise InputTypeError(f"{path}: the ordering must hold integers, a permutation of 0..{n - 1}; "
                                 f"{where} is {tokens[i]}")
        raise InvalidInputError(f"{path}: the ordering must be a permutation of 0..{n - 1}; {where} is "
                                f"{tokens[i]}, out of range{vecchia_orderings.one_based_hint(values, n)}")
    return values.astype(np.int64)


def _written_whole(token: str) -> bool:
    """Whether `token` (an entry the float64 reader took) is written as a whole number, judged on the
    decimal text itself (Decimal keeps the exponent: '1e-999999999' is not expanded)."""
    if INTEGER.fullmatch(token):
        return True
    try:
        number = Decimal(token)
        return number.is_finite() and number == number.to_integral_value()
    except InvalidOperation:  # an exponent beyond Decimal's range ('1e-99999999999999999999')
        return False


def _engine_ran(engine: str) -> str:
    """The engine a job asked to run on `engine` ran on ('auto': the fastest exact one built here)."""
    from covertreex.api import CoverTree

    return CoverTree(engine=None if engine == "auto" else engine).engine.name


RESIDUAL_OPTIONS = ("kernel", "lengthscale", "variance", "m")


def residual_options(args) -> dict | None:
    """The residual problem's options (defaults filled in), or None for a job that builds none; such a job
    given one of them is an error rather than a run that silently ignores it."""
    given = [name for name in RESIDUAL_OPTIONS if getattr(args, name) is not None]
    if vecchia_orderings.needs_residual_problem(args.metric, args.ordering):
        return {name: RESIDUAL_DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
                for name in RESIDUAL_OPTIONS}
    if given:
        flags = ", ".join(f"--{name}" for name in given)
        ordering = args.ordering_file or args.ordering
        raise usage_error("vecchia", f"{flags}: only for the residual metric or --ordering maximin-residual "
                                     f"(the metric is {args.metric}, the ordering {ordering})")
    return None


def seed_option(args) -> int:
    """--seed (default 0); given to a job that draws nothing at random (neither inducing points nor a
    random ordering), an error rather than a run that silently ignores it, as the residual options are."""
    ordering = args.ordering_file or args.ordering
    if args.seed is not None and not vecchia_orderings.uses_seed(
            args.metric, "given" if args.ordering_file else args.ordering):
        raise usage_error("vecchia", f"--seed: only for --ordering random or a residual problem's inducing "
                                     f"points (the metric is {args.metric}, the ordering {ordering})")
    return 0 if args.seed is None else args.seed


def _warnings_told(caught, ours: type[Warning]) -> list[str]:
    """Each warning of the job: ours as one line on stderr (returned, for the JSON summary), any other as
    Python shows it."""
    notes = []
    for warning in caught:
        if issubclass(warning.category, ours):
            notes.append(str(warning.message))
            print(f"pcct vecchia: warning: {warning.message}", file=sys.stderr, flush=True)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    return notes


def run(args) -> int:
    from covertreex.residual import inducing_count
    from covertreex.tree import npz_target  # Numba and SciPy load only when the command runs
    from covertreex.vecchia import VecchiaJobWarning, vecchia_neighbors

    out = None if args.out is None else npz_target(args.out, "neighbours")  # a bad path fails before work
    refuse_same_file({"--out": out}, {"POINTS": args.points, "--ordering-file": args.ordering_file})
    residual = residual_options(args)
    seed = seed_option(args)
    if args.threads is not None:  # above the CPUs: named as the flag, before the points are read
        KNOBS["threads"].check("--threads", args.threads)
    X = as_points(read_array(args.points, "the points", points=True), f"{args.points} (the points)")
    ordering = args.ordering
    if args.ordering_file:
        ordering = _ordering_file(args.ordering_file, len(X))
        try:
            vecchia_orderings.resolve(ordering, len(X))
        except CovertreexError as exc:
            raise type(exc)(f"{args.ordering_file}: {exc}") from None
    n = len(X)
    finished = {"ordering": 0, "neighbours": 0}
    with progress.phase("ordering", total=2 * n) as done:  # N ordered and N answered (a fused pass: at once)
        def show(stage: str, count: int) -> None:
            finished[stage] = count
            both = finished["ordering"] < n and (stage == "neighbours" or finished["neighbours"] > 0)
            done(sum(finished.values()), "ordering and neighbours" if both else stage)

        caught = []
        try:
            with warnings.catch_warnings(record=True) as caught:  # the filters as set (-W) still apply
                result = vecchia_neighbors(
                    X, args.k, metric=args.metric, ordering=ordering, **(residual or {}),
                    **({} if args.seed is None else {"seed": args.seed}),
                    engine=args.engine, progress=show if done.shown else None, scheduler=args.scheduler,
                    threads=args.threads,
                )
        except NonFiniteError as exc:  # the range checks name the points "X"; the variance's is not theirs
            if str(exc).startswith("X"):
                scaled = " with --lengthscale" if "lengthscale" in str(exc) and args.lengthscale else ""
                raise type(exc)(f"{args.points} (the points){scaled}: {exc}") from None
            raise
        except (CovertreexError, OSError):
            raise
        except Exception as exc:
            if args.scheduler is None:
                raise
            reason = " ".join(str(exc).split())
            raise ClusterError(f"the Dask cluster at {args.scheduler} failed the job: "
                               f"{type(exc).__name__}: {reason}") from exc
        finally:  # told also when the job fails
            notes = _warnings_told(caught, VecchiaJobWarning)
    summary = {
        "command": "vecchia", "points": str(args.points), "n": int(X.shape[0]), "dims": int(X.shape[1]),
        "metric": args.metric, "k": args.k, "engine": args.engine, "engine_ran": _engine_ran(args.engine),
        "ordering": result.ordering_name,
        "residual": None if residual is None else {**residual, "m": inducing_count(n, residual["m"]),
                                                   "seed": seed},
        "ordering_seconds": result.ordering_seconds, "neighbor_seconds": result.neighbor_seconds,
        "maximin_evaluations": result.maximin_evaluations, "out": str(out) if out else None,
        "scheduler": args.scheduler, "neighbours_found": _where_found(result, args.scheduler),
        "threads": args.threads, "warnings": notes,
    }
    if out:  # before the summary lines (a reader that leaves, `| head`, once ended the run at the first one)
        write_arrays(out, {"ordering": result.ordering, "neighbors": result.neighbors,
                           "distances": result.distances,
                           "summary": np.array(json.dumps(summary))})  # how they were made: a JSON string
    points, dims = (f"{count} {name}{'s' if count != 1 else ''}"
                    for count, name in ((summary["n"], "point"), (summary["dims"], "dim")))
    say(args, f"pcct vecchia: {points} x {dims} from {args.points}; "
               f"{args.metric} metric, {result.ordering_name} ordering, k={args.k}")
    work = ("" if result.maximin_evaluations is None
            else f" ({result.maximin_evaluations / max(summary['n'], 1):.1f} distance evaluations/point)")
    say(args, f"order   {result.ordering_seconds:.3f} s{work}")
    say(args, "nbrs    found in the same pass as the ordering" if summary["neighbours_found"] == WITH_ORDERING
         else f"nbrs    {result.neighbor_seconds:.3f} s")
    say(args, f"saved   {out}" if out else "saved   nothing (pass --out FILE.npz to keep the result)")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0
