"""Hypothesis properties over generated k-NN problems (tie-heavy lattices, duplicates, clusters, near-ties,
arbitrary floats; Euclidean and residual): every selected engine is k-safe against the oracle, and every
engine pair agrees exactly. Quick by default (profile ``pcct``, 30 examples, at most 80 points, tie-heavy
test up to 300); ``--hypothesis-profile=pcct-thorough`` runs 1,000 examples per property.
"""

from hypothesis import given
from hypothesis import strategies as st

from pytest_pcct.parity.assertions import assert_k_safe
from pytest_pcct.parity.profiles import suite_settings
from pytest_pcct.parity.strategies import knn_cases

TIE_HEAVY = knn_cases(family=st.sampled_from(["lattice", "duplicates", "near_ties"]), n=st.integers(100, 300))


@suite_settings()
@given(case=knn_cases())
def test_engine_is_k_safe(pcct_engine, pcct_oracle, case):
    answer, truth = pcct_engine.knn(case.problem, case.k), pcct_oracle.knn(case.problem, case.k)
    assert_k_safe(answer, truth, labels=(pcct_engine.name, pcct_oracle.name))


@suite_settings()
@given(case=knn_cases())
def test_engine_pair_agrees_exactly(pcct_engine_pair, case):
    pcct_engine_pair.check(case.problem, case.k)


@suite_settings()
@given(case=TIE_HEAVY)
def test_engine_pair_agrees_on_tie_heavy_data(pcct_engine_pair, case):
    pcct_engine_pair.check(case.problem, case.k)
