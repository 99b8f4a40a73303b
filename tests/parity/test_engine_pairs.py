"""Cross-engine parity on the parity fixture (DESIGN section 6): 1,000 points, 64 queries, k = 1..10,
dimensions 1, 2, 3 and 8, several seeds, Euclidean and residual (m = 32), lattices and duplicates; and
predecessor (Vecchia) recipes, where all 1,000 points are queries and rows i < k are padded with (-1, inf).

``pytest`` (the ini default: gold,rust,rust-dense,gold-dense) or ``--pcct-engines=gold,brute`` compares
each pair of the selection bit for bit, and the work counters field by field where both engines share a
telemetry group (gold and rust in parity mode). ``--pcct-seed=N`` shifts every dataset seed.
"""

import pytest

from pytest_pcct.parity.assertions import assert_k_safe

N_POINTS, N_QUERIES, KS = 1000, 64, range(1, 11)

DATASETS = [  # metric, kind, dimensions, seed offset, further make_problem arguments
    ("euclidean", "gaussian", 1, 0, {}),
    ("euclidean", "gaussian", 2, 1, {}),
    ("euclidean", "gaussian", 3, 2, {"queries": "indices"}),
    ("euclidean", "gaussian", 8, 3, {}),
    ("euclidean", "clustered", 3, 4, {}),
    ("euclidean", "lattice", 2, 5, {"side": 6}),  # 36 sites for 1,000 points: ties and repeats everywhere
    ("euclidean", "lattice", 3, 6, {"side": 5}),
    ("euclidean", "duplicates", 3, 7, {"queries": "indices"}),
    ("euclidean", "duplicates", 8, 8, {}),
    ("residual", "gaussian", 2, 9, {}),
    ("residual", "gaussian", 3, 10, {"kernel": "matern52", "lengthscale": 0.5}),
    ("residual", "gaussian", 8, 11, {"variance": 2.0}),
    ("residual", "lattice", 2, 12, {"side": 10}),
    ("residual", "duplicates", 3, 13, {"queries": "points"}),
    ("euclidean", "gaussian", 3, 14, {"predecessor": True}),
    ("euclidean", "lattice", 2, 15, {"side": 6, "predecessor": True}),
    ("euclidean", "duplicates", 3, 16, {"predecessor": True}),
    ("residual", "gaussian", 3, 17, {"predecessor": True}),
    ("residual", "lattice", 2, 18, {"side": 10, "predecessor": True}),
    ("residual", "duplicates", 8, 19, {"predecessor": True}),
]


def recipe_id(recipe) -> str:
    metric, kind, dims, offset, params = recipe
    return f"{metric}-{kind}-d{dims}-s{offset}{'-pred' if params.get('predecessor') else ''}"


@pytest.fixture
def fixture_problem(pcct_dataset, pcct_seed, recipe):
    """The parity-fixture problem of `recipe`, seeded from the run's base seed."""
    metric, kind, dims, offset, params = recipe
    extra = {"m": 32, **params} if metric == "residual" else dict(params)
    if not params.get("predecessor"):  # a predecessor problem queries every point
        extra["n_queries"] = N_QUERIES
    return pcct_dataset(kind, n=N_POINTS, d=dims, seed=pcct_seed + offset, metric=metric, **extra)


@pytest.mark.parametrize("k", KS)
@pytest.mark.parametrize("recipe", DATASETS, ids=recipe_id)
def test_engine_pair_agrees_exactly(pcct_engine_pair, fixture_problem, k):
    pcct_engine_pair.check(fixture_problem, k)


@pytest.mark.parametrize("recipe", DATASETS, ids=recipe_id)
def test_engine_is_k_safe(pcct_engine, pcct_oracle, fixture_problem):
    k = max(KS)
    assert_k_safe(
        pcct_engine.knn(fixture_problem, k), pcct_oracle.knn(fixture_problem, k),
        labels=(pcct_engine.name, pcct_oracle.name),
    )
