"""Query sets and the Vecchia job on a Dask cluster (``pip install covertreex[dask]``).

The client prepares one :class:`Index` -- the metric space, the query set, the engine, its configuration,
the path and (on the tree path only) the tree -- and scatters it to every worker once. The queries are cut
into contiguous ranges of about equal cost (:func:`cost_balanced_ranges`: a predecessor row i may return
any of i points, so it costs about i) and each range is one task running :func:`answer_range`, the same
function a single process runs on the whole range. Every answer is exact with canonical distance bits,
whatever range it was computed in, so the gathered result is byte-identical to the single-process one.

Every worker gets a copy of the index of its own, sent to all of them at once, and runs the ranges given
to its copy. A worker that dies takes its copy and its ranges with it; those ranges run again on the
copies left, and a fresh scatter is made only when no copy is left (at most :data:`SCATTERS` in all), as
when a worker dies during the copies (:func:`_scatter`). The ranges are gathered in order, each once, so
nothing is lost or duplicated. A range lost with more workers than Dask allows a task to kill
(``distributed.scheduler.allowed-failures`` in this process's Dask configuration) is a
:class:`~covertreex.errors.ClusterError` naming it: each run of a lost range is a new Dask task, so Dask's
own count (its KilledWorker error) never sees them add up.

The copies go from this process straight to the workers (Dask's direct scatter), all at once: Dask's
broadcast sends one copy to one worker, which then copies it to the others, one hop after the other
(0.27-0.32 s against 0.20 s for two local workers at N = 32,768, whose single-process job takes 2 s).
The client's link carries one copy per worker, where the broadcast's first worker sent all but one.
Through the scheduler (Dask's default) each copy would travel one hop more: 1.6-2.4 s against 0.3-0.8 s
of wall for a 128 MB V to 2 local workers (docs/vecchia.md). A client that cannot reach the workers is
made with ``Client(..., direct_to_workers=False)`` and keeps the scheduler's route, and Dask's broadcast:
its link, likely the slowest, then carries one copy.

Workers on this process's machine (a LocalCluster's) get no copy through a socket: the index's arrays are
written once into a memory file that each of them maps (:mod:`covertreex.host_shared`); the others
get theirs as described here.

An array of the index larger than Dask's 64 MiB shards travels in pieces of at most 2 MiB
(:mod:`covertreex.small_frames`): a worker receives each into a buffer too small for NumPy to ask for
transparent huge pages, and joins them in plain pages. Sent whole, a 128 MB V reached each worker in two
64 MiB shards plus their merged copy, all in fresh huge pages, which fault in slowly on this project's
virtual machine (docs/vecchia.md, "On a Dask cluster"). Smaller arrays travel whole, received without a
copy.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import threading
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from covertreex import host_shared, malloc_thresholds, small_frames
from covertreex.api import CoverTree
from covertreex.config import Config
from covertreex.counters import QueryCounter
from covertreex.engines import get_engine
from covertreex.engines.rust import _extension, dense_screen_for
from covertreex.errors import ClusterError, InputTypeError, InvalidInputError
from covertreex.metrics import MetricSpace, QuerySet
from covertreex.residual import ResidualProblem, residual_problem
from covertreex.resources import available_cpus, require_answer_memory
from covertreex.scalars import as_bool, as_int
from covertreex.tree import Tree
from covertreex.validation import as_points, check_k, dataset_indices

RANGES_PER_WORKER = 2
"""Ranges per worker: enough to even out cost estimates and to spread a lost worker's share, few enough that
each range's fixed cost stays small (on the split screen, the queries the split declines take one f64 call
over all their predecessors per range, whose rows' norms read V once more). benchmarks/dask_overhead.py at
N = 32,768 (Intel Xeon, 2 cores): 2 against 4 on 2026-12-06 06:24-06:27 UTC, alternating one run each:
2.32, 2.56, 2.47 s (1.18x, 1.35x, 1.27x the single process) against 2.54, 2.91, 2.62 s (1.34x, 1.48x,
1.34x); after the split's packing and V's proof left the calls (08:44 UTC, a /tmp script alternating 1, 2
and 4 in five rounds): medians 1.15x, 1.14x and 1.21x."""

PAIRS_PER_NEIGHBOUR = 40
"""What one returned neighbour costs, in eligible pairs screened: a query's answer is k canonical
re-checks (scalar m-term sums) while a screened pair is one cell of a GEMM tile. Measured on the dense path
(N = 32,768, m = 512, k = 50, 8 ranges on 2 one-thread workers): with k counted as k pairs, the first range
(11,554 rows) took 1.34-1.42 s against 1.04-1.11 s for the last (2,119 rows) of the same pair count, about
33 us more per row at 15 ns per pair: 2,200 pairs per row, 44 per neighbour."""


SPLIT_PAIRS_PER_NEIGHBOUR = 400
""":data:`PAIRS_PER_NEIGHBOUR` on the split screen, where a pair costs a fraction of a GEMM cell (an int8
product and a bound) and a query its probes and pairs let through, ~100 canonical evaluations at m = 512.
Measured (2026-12-06, N = 32,768, k = 50, two one-thread processes at once, each answering one of the two
ranges the f64 model gives): 22,626 rows with 256 M pairs took 2.57 CPU-s, 10,142 rows with 281 M pairs
1.73: 74 us per row and 3.5 ns per pair, 21,000 pairs per row, 430 per neighbour (rounded down here: a
cost model, not a measurement to three digits)."""


@dataclass(frozen=True, eq=False)
class Index:
    """Everything a worker needs to answer any range of the query set; scattered once per job."""

    engine: str
    config: Config
    space: MetricSpace = field(repr=False)
    queries: QuerySet = field(repr=False)
    k: int
    path: str
    tree: Tree | None = field(default=None, repr=False)

    @property
    def takes_split(self) -> bool:
        """Whether every range takes the split screen (the rust dense path, the job's screen resolved)."""
        return self.path == "dense" and self.engine == "rust" and self.config.dense_screen == "split"

    @property
    def pairs_per_neighbour(self) -> float:
        """What one returned neighbour costs in eligible pairs, on this index's screen."""
        return SPLIT_PAIRS_PER_NEIGHBOUR if self.takes_split else PAIRS_PER_NEIGHBOUR

    @property
    def takes_boxes(self) -> bool:
        """Whether every range takes the box screen (the rust dense path, the job's screen resolved)."""
        return self.path == "dense" and self.engine == "rust" and self.config.dense_screen == "boxes"

    @property
    def costed_limits(self) -> np.ndarray:
        """Each query's eligible points as the ranges' balance counts them: none on the box screen, whose
        work per query does not grow with them (covertreex.paths.box_evaluations), so that its ranges hold
        equal numbers of queries (with the f64 model, the first of two predecessor ranges held 70%)."""
        eligible = self.queries.eligible(self.space.n_points)
        return np.zeros_like(eligible) if self.takes_boxes else eligible

    def __reduce_ex__(self, protocol):
        """Travel in pieces that land in plain pages (:mod:`covertreex.small_frames`), with the problem's
        split screen where the ranges take it: a pickled problem leaves it out, and each worker building
        its own cost a core-second at N = 32,768 (the 2-worker LocalCluster took 1.8-2.5x the single
        process, 2026-12-06, benchmarks/dask_overhead.py). It travels with the problem it was built for."""
        return small_frames.reduce_in_pieces(*self.reduction(), protocol)

    def reduction(self) -> tuple:
        """(constructor, args) that rebuild this index, as a pickle's reduction gives them
        (:meth:`__reduce_ex__` and :mod:`covertreex.host_shared` send them their own ways)."""
        fields = tuple(getattr(self, f.name) for f in dataclasses.fields(self))
        split = vars(self.space.problem).get("split_screen") if self.takes_split else None
        on_space = all(mine is theirs
                       for mine, theirs in zip(self.queries.data, self.space.data, strict=True))
        return _rebuilt, (split, on_space, *fields)


def _rebuilt(split, on_space: bool, *fields) -> Index:
    """The Index of `fields`, its problem given `split` (its own split screen, sent with it), and its
    queries, when they were the space's own points (`on_space`), on the space's data again: the space is
    made anew when unpickled (MetricSpace.__setstate__), and its copy of X beside the query set's held X
    twice on each worker and made every call check all of it (the extension skips that for the indexed
    data's own arrays)."""
    index = Index(*fields)
    if on_space:
        index = dataclasses.replace(index, queries=dataclasses.replace(index.queries, data=index.space.data))
    if split is not None:
        index.space.problem.adopt_split_screen(split)
    return index


def prepare(data, k: int, *, metric: str, engine: str = "auto", indices=None, predecessor: bool = False,
            **options) -> Index:
    """Fit `data` (points, or a ResidualProblem for metric='residual') and fix the query set (the
    dataset `indices`, or every point among its predecessors), k and the path; the tree is built only
    when the path walks one. `options` are CoverTree knobs and, for raw points under the residual
    metric, :func:`~covertreex.residual_problem`'s parameters (kernel, lengthscale, variance, m, seed)."""
    predecessor = _predecessor_or_indices(predecessor, indices)
    residual = {name: options.pop(name) for name in _RESIDUAL_PARAMETERS if name in options}
    model = CoverTree(engine=None if engine == "auto" else engine, metric=metric, telemetry=False,
                      **options).fit(data, **residual)
    space = model.space
    k = check_k(k, space.n_points, allow_padding=predecessor)
    queries = space.all_points(predecessor=True) if predecessor else space.indexed_queries(indices)
    require_answer_memory(queries.n_queries, k)
    path = model.choose_path(space, False, queries, k)
    tree = model.tree if path == "tree" else None
    config = model.config
    if path == "dense" and model.engine.name == "rust":
        # dense_screen='auto' chooses per batch, and a worker's range is a smaller batch than the job:
        # the job's choice is made here, once, so that every range screens alike.
        config = dataclasses.replace(config, dense_screen=dense_screen_for(space, queries, k, config))
    return Index(model.engine.name, config, space, queries, k, path, tree)


def _predecessor_or_indices(predecessor, indices) -> bool:
    """`predecessor` as a bool, given exactly when `indices` is not."""
    predecessor = as_bool(predecessor, "predecessor")
    if (indices is None) == (not predecessor):
        raise InvalidInputError("pass exactly one of indices=... or predecessor=True")
    return predecessor


_RESIDUAL_PARAMETERS = tuple(
    name for name, parameter in inspect.signature(residual_problem).parameters.items()
    if parameter.kind is parameter.KEYWORD_ONLY
)


def cost_balanced_ranges(limits: np.ndarray, k: int, n_ranges: int,
                         per_neighbour: float = PAIRS_PER_NEIGHBOUR) -> list[tuple[int, int]]:
    """Contiguous (start, stop) ranges covering every query once, each of about equal cost, a query
    costing the points it may return (`limits`) plus its answer (`per_neighbour` pairs per neighbour,
    :attr:`Index.pairs_per_neighbour`); never an empty range."""
    limits = np.asarray(limits)
    if limits.ndim != 1 or not (np.issubdtype(limits.dtype, np.integer) or limits.size == 0):
        raise InvalidInputError(f"limits must be a 1-d array of integers (the points each query may return), "
                                f"got {limits.dtype} with shape {limits.shape}")
    n = limits.shape[0]
    if n == 0:
        raise InvalidInputError("limits must hold one entry per query, got none (a job has at least one)")
    k, n_ranges = as_int(k, "k"), as_int(n_ranges, "n_ranges")
    if k < 0 or n_ranges < 1 or np.any(limits < 0):
        raise InvalidInputError(f"k must be >= 0, n_ranges >= 1 and every limit >= 0, got k = {k}, n_ranges "
                                f"= {n_ranges} and the least limit {limits.min()}")
    n_ranges = min(n_ranges, n)
    cumulative = np.cumsum(np.asarray(limits, dtype=np.float64) + per_neighbour * k)
    targets = cumulative[-1] * np.arange(1, n_ranges) / n_ranges
    cuts = np.searchsorted(cumulative, targets, side="left") + 1
    edges = np.unique(np.concatenate([[0], np.clip(cuts, 1, n), [n]]))
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def answer_range(index: Index, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """(indices, distances) of queries start..stop-1 of the index's query set -- on a worker, or in this
    process on the whole range; 0 <= start < stop <= n_queries (a slice's rules answered other queries than
    those asked for, or none)."""
    _require_index(index)
    start, stop = as_int(start, "start"), as_int(stop, "stop")
    if not 0 <= start < stop <= index.queries.n_queries:
        raise InvalidInputError(f"start and stop must satisfy 0 <= start < stop <= {index.queries.n_queries} "
                                f"(the queries), got {start} and {stop}")
    idx, dist, _ = _answered(index, index.queries.part(slice(start, stop)))
    return idx, dist


def answer_positions(index: Index, at: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(indices, distances, canonical distance evaluations) of the queries at positions `at` (distinct,
    ascending int64) of the index's query set, in this process: the rows of a Vecchia job that its fused
    maximin pass left unproven."""
    _require_index(index)
    at = np.asarray(at)
    n = index.queries.n_queries
    if at.ndim != 1 or at.dtype != np.int64:
        raise InvalidInputError(f"at must be distinct ascending int64 positions within [0, {n}), got "
                                f"{at.dtype} of shape {at.shape}")
    wrong = np.flatnonzero((at < 0) | (at >= n) | np.concatenate([[False], np.diff(at) <= 0]))
    if wrong.size:
        raise InvalidInputError(f"at must be distinct ascending int64 positions within [0, {n}), got "
                                f"{at[wrong[0]]} at entry {wrong[0]}")
    idx, dist, counters = _answered(index, index.queries.part(at))
    return idx, dist, int(counters.per_query[:, QueryCounter.DISTANCE_EVALUATIONS].sum())


def _require_index(index) -> None:
    if not isinstance(index, Index):
        raise InputTypeError(f"index must be what covertreex.distributed.prepare returns, got "
                             f"{type(index).__name__}")


def _answered(index: Index, part):
    """(indices, distances, counters) of the queries `part` of the index's query set, on its engine and
    path."""
    engine = get_engine(index.engine)
    if index.path == "dense":
        return engine.dense(index.space, part, index.k, index.config)
    return engine.query(index.tree, index.space, part, index.k, index.config)


def _answer_on_worker(index: Index, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    """answer_range on a worker, with as many engine threads as the worker has (not one per core:
    worker processes sharing a machine would each start a thread per core and compete for them), and
    freed memory kept for reuse meanwhile (:mod:`covertreex.malloc_thresholds`: Dask's workers return it
    at once, which made the engine's tile buffers page-fault on every tile). The index arrives rebuilt by
    :mod:`covertreex.small_frames` or mapped by :mod:`covertreex.host_shared`, each array contiguous and
    aligned, so the engine copies none of them."""
    from distributed import get_worker

    threads = min(get_worker().state.nthreads, available_cpus())
    own = dataclasses.replace(index, config=dataclasses.replace(index.config, threads=threads))
    with malloc_thresholds.retained():
        return answer_range(own, start, stop)


@contextmanager
def connected(scheduler):
    """A dask Client for `scheduler`: a Client is used as is; an address is connected to for the block."""
    try:
        from distributed import Client
    except ImportError:
        raise InvalidInputError("a Dask scheduler needs dask.distributed: pip install 'covertreex[dask]'") \
            from None

    if isinstance(scheduler, Client):
        _require_usable(scheduler)
        yield scheduler
        return
    if not isinstance(scheduler, str):
        raise InputTypeError("scheduler must be a dask.distributed Client or an address string, got "
                             f"{type(scheduler).__name__}")
    _check_address(scheduler)
    with _connect(Client, scheduler) as client:
        yield client


def _require_usable(client, reconnecting: bool = False) -> None:
    """Refuse a Client that is closed (Dask failed late, with a KeyError or a closed loop) or asynchronous
    (covertreex's calls block: its event loop waited 90 s for copies, then a false "no worker was
    running"). `reconnecting`: one whose connection dropped is left to :func:`_require_scheduler`."""
    if client.status != "running" and not (reconnecting and client.status == "connecting"):
        raise InvalidInputError(f"scheduler: the Dask Client is not running (status {client.status!r}); "
                                "pass an open Client or a scheduler address")
    if client.asynchronous:
        raise InvalidInputError("scheduler: an asynchronous Dask Client cannot wait for covertreex's "
                                "blocking calls; pass a synchronous Client or an address")


CONNECT_SECONDS = 10
"""How long Dask keeps trying to reach a scheduler: one still starting refuses connections until it has
bound its port, so a refusal is retried too, as Dask does."""

HANDSHAKE_SECONDS = 5
"""How long, after Dask's own connect timeout, a connection may wait for the scheduler's reply. Dask's
timeout covers reaching the port, not the reply: a server there that is not a Dask scheduler (an HTTP
server, the scheduler's dashboard) accepts the connection and never answers."""


HANDSHAKE_TRIES = 3
"""Connections tried when Dask's own handshake check fails: a `cancelled-keys` message the scheduler
sends to every client while a new one registers can share that client's first batch, and Dask then
fails the handshake with a bare AssertionError (`assert len(msg) == 1`; seen once in CI, distributed
2026.8.0, while another client of the same scheduler cancelled ranges)."""


def _connect(client_class, address: str):
    """A Client for `address`, or an InvalidInputError naming it: when it cannot be reached, when what
    answers there is no Dask scheduler (no reply in :data:`CONNECT_SECONDS` + :data:`HANDSHAKE_SECONDS`,
    or a reply Dask cannot read: a server that speaks first made Dask ask for exabytes), or when Dask
    refuses the address (an unknown scheme, TLS without its security settings). The attempt runs on a
    thread of its own so that it can be given up (:func:`_within`)."""

    def attempt():
        for remaining in reversed(range(HANDSHAKE_TRIES)):
            try:
                return client_class(address, timeout=f"{CONNECT_SECONDS}s")
            except AssertionError:  # Dask's handshake race (HANDSHAKE_TRIES): connect again
                if not remaining:
                    raise

    outcome = _within(CONNECT_SECONDS + HANDSHAKE_SECONDS, attempt, "connect")
    where = f"the Dask scheduler at {address!r}"
    if outcome is None:
        raise InvalidInputError(
            f"no reply from {where} within {CONNECT_SECONDS + HANDSHAKE_SECONDS} s: what listens there "
            "accepts connections but does not speak Dask's protocol (is it the dashboard's port?)")
    client, error = outcome
    if isinstance(error, MemoryError):
        raise InvalidInputError(f"{where} sent a reply Dask cannot read: what listens there is not a Dask "
                                "scheduler") from None
    reason = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, OSError):
        raise InvalidInputError(f"cannot reach {where} ({reason})") from None
    if isinstance(error, (ValueError, TypeError)):
        raise InvalidInputError(f"Dask cannot use the scheduler address {address!r} ({reason})") from None
    if error is not None:
        raise error
    return client


def _within(seconds: float, call, name: str):
    """(call's result, None) or (None, the exception it raised), or None when it has not ended within
    `seconds`: :func:`_all_within` of the one call."""
    return _all_within(seconds, [call], name)[0]


def _all_within(seconds: float, calls: list, name: str) -> list:
    """Each call's outcome, as :func:`_within` gives it, the calls running at once, each on a daemon thread
    of its own, all given up `seconds` after they started (left to end on their own then: Dask offers no
    way to abandon a connection or a scatter it is waiting on)."""
    outcomes: list[list] = [[] for _ in calls]

    def run(call, outcome):
        try:
            outcome.append((call(), None))
        except Exception as exc:  # noqa: BLE001 -- handed to the caller, which sorts it by kind
            outcome.append((None, exc))

    threads = [threading.Thread(target=run, args=(call, outcome), name=f"covertreex-dask-{name}", daemon=True)
               for call, outcome in zip(calls, outcomes, strict=True)]
    deadline = time.monotonic() + seconds
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return [outcome[0] if outcome else None for outcome in outcomes]


def _check_address(address: str) -> None:
    """An InvalidInputError for a tcp:// address (Dask's default protocol) without a host, or without a port
    number in 1..65535, which Dask would wait 10 s for, reject with a ValueError or send to another port;
    other protocols are left to Dask."""
    from distributed.comm import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme != "tcp":
            return
        host, port = parse_host_port(location)
        if not host:
            raise ValueError("no host")
        if not 1 <= port <= 65535:
            raise ValueError(f"port {port} is outside 1..65535")
    except ValueError as exc:
        raise InvalidInputError(
            f"scheduler must be an address like 'tcp://host:8786', got {address!r} ({exc})") from None


SCATTERS = 3
"""Scatters of the index one job may make: a fresh one when no copy of the last one is left (its workers
died) or none of its copies landed. Any other cancellation is raised at once."""


def run(index: Index, client, *, ranges_per_worker: int = RANGES_PER_WORKER):
    """Answer the whole query set of `index` on the cluster of `client` (a dask.distributed Client, or a
    scheduler address connected to for the job, as :func:`connected` takes it): (indices, distances), rows
    in query order."""
    _require_index(index)
    ranges_per_worker = _checked_ranges_per_worker(ranges_per_worker)
    if not _is_client(client):  # an address, connected to for this job (anything else refused, named)
        with connected(client) as connection:
            return run(index, connection, ranges_per_worker=ranges_per_worker)
    _require_usable(client, reconnecting=True)  # as connected() does: run() takes a Client directly too
    _SCHEDULER_OF[client] = getattr(client.scheduler, "address", None)  # Dask forgets it on losing it
    _require_scheduler(client)  # lost before the job: Dask's reconnect would hold every call below
    workers = max(1, len(client.scheduler_info()["workers"]))
    ranges = cost_balanced_ranges(index.costed_limits, index.k, workers * ranges_per_worker,
                                  index.pairs_per_neighbour)
    try:
        return _run_ranges(index, client, ranges)
    except Exception as exc:
        if client.status == "running" or isinstance(exc, ClusterError):
            raise
        raise _lost_scheduler(client) from exc


RECONNECT_GRACE_SECONDS = 2.0
"""How long a job waits for a client whose connection dropped (status 'connecting') to run again before it
calls the scheduler lost. A dropped connection to a live scheduler comes back within it (0.05 s measured);
past it, Dask would hold every call for its whole reconnect window (the client's timeout: 10 s for the
connections covertreex makes) and then fail anyway."""


def _is_client(obj) -> bool:
    try:
        from distributed import Client
    except ImportError:
        return False
    return isinstance(obj, Client)


def _require_scheduler(client) -> None:
    """Return while `client` runs (after a dropped connection came back); else the lost-scheduler error."""
    deadline = time.monotonic() + RECONNECT_GRACE_SECONDS
    while client.status == "connecting" and time.monotonic() < deadline:
        time.sleep(0.05)
    if client.status != "running":
        raise _lost_scheduler(client)


_SCHEDULER_OF: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
"""The scheduler address each client's job began with: once Dask has closed a client that lost its
scheduler, the client no longer knows it (a job given an address string named none)."""


def _lost_scheduler(client) -> ClusterError:
    """The one error for a job whose client lost its scheduler (Dask's own is an OSError or a
    cancellation naming a closed TCP connection, or a failed copy that looks like a dead worker)."""
    return ClusterError(f"lost the Dask scheduler{_at(client)} during the job (Dask client status: "
                        f"{client.status})")


def _run_ranges(index: Index, client, ranges: list[tuple[int, int]]):
    parts: list = [None] * len(ranges)
    lost, losses, allowed = list(range(len(ranges))), [0] * len(ranges), None
    for scatter in range(1, SCATTERS + 1):
        _require_scheduler(client)  # after lost ranges: a copy would wait out Dask's reconnect window
        copies = _scatter(client, index)
        if not copies:  # every worker died during its copy, or the scheduler did
            _require_scheduler(client)
            if scatter == SCATTERS:
                raise ClusterError(f"could not copy the index to any worker in {SCATTERS} tries: each worker "
                                   "died during its copy")
            continue
        while copies:
            futures, given = _submit(client, copies, ranges, lost)
            cancelled = _gather_as_they_finish(client, futures, parts)
            if not cancelled:
                return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            for r, error in cancelled.items():
                if not given[r].cancelled():  # cancelled with its copy intact: not ours
                    raise error
            lost = list(cancelled)
            if allowed is None:  # asked at the job's first loss: a job without one asks nothing
                allowed = _allowed_failures(client)
            _count_losses(losses, lost, ranges, allowed)
            copies = {worker: copy for worker, copy in copies.items() if not copy.cancelled()}
            del futures, given  # the lost copies' futures go before the ranges run again
        if scatter == SCATTERS:  # Dask's cancellation said neither that nor which queries
            start, stop = ranges[lost[0]]
            more = f" and {len(lost) - 1} more ranges" if len(lost) > 1 else ""
            raise ClusterError(f"the queries {start}..{stop - 1}{more} were not answered: the last copies of "
                               f"the index died with their workers, and the job had made the {SCATTERS} "
                               "scatters it may make") from cancelled[lost[0]]


def _allowed_failures(client) -> int:
    """How many workers Dask lets a task kill, as the scheduler enforces it (a remote scheduler may be
    configured otherwise than this process); this process's config where the scheduler cannot say."""
    import dask

    try:
        return int(client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures))
    except Exception:  # noqa: BLE001 -- a scheduler without the attribute, or one that cannot run it
        return int(dask.config.get("distributed.scheduler.allowed-failures", 3))


def _count_losses(losses: list[int], lost: list[int], ranges: list[tuple[int, int]], allowed: int) -> None:
    """Count one more loss of each range at slots `lost` (its worker died with its copy), and raise a
    ClusterError for a range lost more than `allowed` times (as often as Dask lets a task kill workers):
    such a range kills whatever worker runs it, and without the count every copy and every scatter would go
    the same way."""
    for r in lost:
        losses[r] += 1
        if losses[r] > allowed:
            start, stop = ranges[r]
            raise ClusterError(f"the queries {start}..{stop - 1} were lost with {losses[r]} workers that "
                               f"died holding them (distributed.scheduler.allowed-failures is {allowed}): "
                               "they kill the workers that run them")


def _submit(client, copies: dict, ranges: list[tuple[int, int]], at: list[int]) -> tuple[dict, dict]:
    """The ranges at slots `at` submitted to the workers holding `copies` (worker address: the future of
    its copy of the index), in turn: ({future: its range's slot}, {slot: the copy it was given}). The
    restriction is loose so that Dask need not hold a range for a worker gone (it cancels the range with
    that worker's copy, and the range runs again on a copy left)."""
    workers = sorted(copies)
    futures, given = {}, {}
    for turn, r in enumerate(at):
        worker = workers[turn % len(workers)]
        given[r] = copies[worker]
        future = client.submit(_answer_on_worker, given[r], *ranges[r], pure=False, retries=2,
                               workers=[worker], allow_other_workers=True)
        futures[future] = r
    return futures, given


SCATTER_SECONDS = 30.0
"""How long the copies of the index to the workers may take, beyond their bytes at
:data:`SCATTER_BYTES_PER_SECOND`, before those not landed are given up."""
SCATTER_BYTES_PER_SECOND = 20e6


def _scatter(client, index: Index) -> dict:
    """A copy of the index on each running worker, sent to all of them at once: {worker address: the
    copy's future}, for the copies that landed; none when every one died during its copy. No worker
    running within :data:`SCATTER_SECONDS` (a restarted worker, a cluster scaling up) is a ClusterError,
    and so is a worker that runs another covertreex (:func:`_require_same_covertreex`). A worker that dies
    during its copy makes Dask fail with a KeyError naming it, or retry the copy every 30 s for good: such
    a copy is given up after :data:`SCATTER_SECONDS` plus the copies' bytes' time (:func:`_all_within`).
    Through the scheduler (``direct_to_workers=False``), Dask's broadcast makes one copy and the scheduler
    replicates it, so the client's link carries it once: every worker's range is given that one."""
    workers = _running_workers(client)
    if not workers:  # scattering again would wait as long again (three scatters waited 90 s)
        _require_scheduler(client)
        raise ClusterError(f"no worker of the Dask cluster{_at(client)} was running for "
                           f"{SCATTER_SECONDS:g} s (none started, or every one paused or closing)")
    workers = _require_same_covertreex(client, workers)
    if not workers:  # each died since it was listed: as when each dies during its copy
        return {}
    seconds = SCATTER_SECONDS + len(workers) * _nbytes(index) / SCATTER_BYTES_PER_SECOND
    if client.direct_to_workers is False:
        [copy] = _landed(_all_within(seconds, [lambda: client.scatter(
            [index], broadcast=True, hash=False, direct=False)], "scatter"))
        return {} if copy is None else dict.fromkeys(workers, copy)

    def copy_to(worker, value):
        return lambda: client.scatter([value], workers=[worker], hash=False, direct=True)

    with host_shared.sharing(client, workers, index, *index.reduction()) as values:
        copies = _landed(_all_within(seconds, [copy_to(w, values[w]) for w in workers], "scatter"))
    return {worker: copy for worker, copy in zip(workers, copies, strict=True) if copy is not None}


def _at(client) -> str:
    """' at ADDRESS' of the client's scheduler (the one its job began with, once Dask has closed the
    client), or nothing where neither is known."""
    address = getattr(client.scheduler, "address", None) or _SCHEDULER_OF.get(client)
    return f" at {address}" if address else ""


@functools.cache
def source_fingerprint() -> str:
    """covertreex's version and a digest of its Python sources and shipped schemas, as this process finds
    them on disk when first asked: a worker that answers a job must run the same code (one 36 commits older
    answered, and one older still failed with an AttributeError naming none of this, in an outside trial).
    The compiled extension enters by the digest of the Rust sources it was built from (its bytes differ by
    platform between equal installs), or as absent."""
    import covertreex

    digest = hashlib.sha256(covertreex.__version__.encode())
    root = Path(covertreex.__file__).parent
    for path in sorted([*root.rglob("*.py"), *root.rglob("*.json")]):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    extension = _extension()
    built = None if extension is None else getattr(extension, "SOURCE_DIGEST", "no digest")
    digest.update(b"no extension" if built is None else built.encode())
    return f"{covertreex.__version__}+{digest.hexdigest()[:16]}"


WORKER_GONE = (OSError, TimeoutError, KeyError)
"""What a call to a worker that died or went out of reach raises (Dask's CommClosedError is an OSError; a
worker the scheduler has dropped is a KeyError naming it): such a worker is left out, as :func:`_landed`
leaves out one that died during its copy."""


def _require_same_covertreex(client, workers: list[str]) -> list[str]:
    """The workers of `workers` still there, each checked to run this process's covertreex
    (:func:`source_fingerprint`): one that runs another, or cannot run it (not installed, say), is a
    ClusterError naming it; one that died meanwhile is left out (the job runs on the others)."""
    theirs = client.run(source_fingerprint, workers=workers, on_error="return")
    failed = {worker: outcome for worker, outcome in theirs.items()
              if isinstance(outcome, BaseException) and not isinstance(outcome, WORKER_GONE)}
    if failed:
        worker, exc = min(failed.items())
        raise ClusterError(f"covertreex cannot run on {len(failed)} of the {len(workers)} workers of the "
                           f"Dask cluster{_at(client)} ({type(exc).__name__} at {worker}: {exc}); install "
                           "this covertreex there, with its dask extra") from exc
    ours = source_fingerprint()
    other = sorted(worker for worker, outcome in theirs.items()
                   if isinstance(outcome, str) and outcome != ours)
    if other:
        raise ClusterError(f"{len(other)} of the {len(workers)} workers of the Dask cluster{_at(client)} run "
                           f"another covertreex than this process ({theirs[other[0]]} at {other[0]}, "
                           f"{ours} here); install the same one on every worker")
    return sorted(worker for worker, outcome in theirs.items() if isinstance(outcome, str))


def _landed(outcomes: list) -> list:
    """Each scatter's future, or None where its worker died during the copy (Dask's KeyError naming it,
    an OSError) or the copy was given up (:func:`_all_within`); any other error is raised."""
    copies = []
    for outcome in outcomes:
        if outcome is None or isinstance(outcome[1], (KeyError, OSError)):
            copies.append(None)
            continue
        shared, error = outcome
        if error is not None:
            raise error
        copies.extend(shared)
    return copies


def _running_workers(client) -> list[str]:
    """The addresses of the workers running now (a paused or closing worker would hold its copy until the
    client's timeout), waiting up to :data:`SCATTER_SECONDS` for one: [] when none came."""
    deadline = time.monotonic() + SCATTER_SECONDS
    while True:
        workers = sorted(address for address, worker in client.scheduler_info()["workers"].items()
                         if worker.get("status", "running") == "running")
        if workers or time.monotonic() > deadline:
            return workers
        _require_scheduler(client)
        time.sleep(0.1)


def _nbytes(index: Index) -> int:
    """The bytes of the index's arrays (its size on the wire, near enough)."""
    q = index.queries
    arrays = [*index.space.data, q.rows, q.dataset_index, q.limit]
    if index.tree is not None:
        arrays += list(index.tree.arrays())
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


def _gather_as_they_finish(client, futures: dict, parts: list) -> dict:
    """Put each future's result in `parts` at its range's slot as soon as it finishes, so the transfers
    overlap the ranges still running (``Client.gather`` fetches them all after the last one finishes:
    from the last range's end to the answer took 0.05-0.10 s that way, 0.02-0.07 s this way; N = 32,768,
    2 workers, 6 and 10 runs, 2026-12-03). Return {slot: its cancellation} for the ranges Dask cancelled,
    in slot order; a range that fails raises its own error and cancels the others."""
    from distributed import CancelledError, as_completed

    cancelled = {}
    try:
        for future in as_completed(futures, loop=client.loop):
            try:
                parts[futures[future]] = future.result()
            except CancelledError as exc:
                cancelled[futures[future]] = exc
    except BaseException:
        client.cancel(list(futures))
        raise
    return dict(sorted(cancelled.items()))


def _checked_ranges_per_worker(value) -> int:
    value = as_int(value, "ranges_per_worker")
    if value < 1:
        raise InvalidInputError(f"ranges_per_worker must be >= 1, got {value}")
    return value


def kneighbors(data, k: int, scheduler, *, metric: str = "euclidean", engine: str = "auto", indices=None,
               predecessor: bool = False, ranges_per_worker: int = RANGES_PER_WORKER, **options):
    """Exact k-NN of dataset `indices` (or of every point among its predecessors) on a Dask cluster
    (`scheduler`: a Client or an address); (distances, indices), the order of ``CoverTree.kneighbors`` and
    scikit-learn's. k, the query set and ranges_per_worker are checked before the scheduler is reached (a
    wrong k waited for an unreachable scheduler's timeout, then went unnamed); the fit, which may take long,
    after: a wrong address fails first."""
    predecessor = _predecessor_or_indices(predecessor, indices)
    if not isinstance(data, ResidualProblem):
        data = as_points(data, "data")  # converted once: prepare fits these
    n_points = data.n_points if isinstance(data, ResidualProblem) else data.shape[0]
    check_k(k, n_points, allow_padding=predecessor)
    if indices is not None:
        dataset_indices(indices, n_points)
    _checked_ranges_per_worker(ranges_per_worker)
    with connected(scheduler) as client:
        index = prepare(data, k, metric=metric, engine=engine, indices=indices, predecessor=predecessor,
                        **options)
        indices_out, distances = run(index, client, ranges_per_worker=ranges_per_worker)
        return distances, indices_out
