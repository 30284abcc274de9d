"""The auction and its certificate: within the stated gap of the exact optimum, and the bound is
an upper bound for any prices (weak duality), checked against the Hungarian solution."""

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from semcom_jax.baselines.auction import auction, dual_bound


def exact(g):
    r, c = linear_sum_assignment(g.astype(np.float64), maximize=True)
    return float(g.astype(np.float64)[r, c].sum())


@pytest.mark.parametrize("n,kind", [(1, "random"), (2, "random"), (7, "random"),
                                    (60, "random"), (60, "ranked"), (40, "ties"),
                                    (50, "sparse")])
@pytest.mark.parametrize("rtol", [1e-2, 1e-5])
def test_the_auction_is_within_its_certificate(n, kind, rtol):
    rng = np.random.default_rng(n)
    g = rng.uniform(0, 3, size=(n, n)).astype(np.float32)
    if kind == "ranked":  # every row ranks the columns alike, the env's structure (price wars)
        g = np.sort(g, axis=1)[:, ::-1].copy()
    elif kind == "ties":  # identical rows
        g = np.repeat(g[:1], n, axis=0)
    elif kind == "sparse":  # mostly zero gains: users not worth serving on most RBs
        g = np.where(rng.uniform(size=g.shape) < 0.8, 0.0, g).astype(np.float32)
    cols, value, bound = auction(g, rtol)
    assert sorted(cols.tolist()) == list(range(n))  # a permutation
    assert value == pytest.approx(float(g.astype(np.float64)[np.arange(n), cols].sum()))
    opt = exact(g)
    assert value <= opt + 1e-6 <= bound + 2e-6
    assert bound - value <= rtol * bound + 1e-6


def test_any_prices_bound_the_optimum():
    rng = np.random.default_rng(0)
    g = rng.uniform(0, 1, size=(12, 12))
    opt = exact(g)
    for _ in range(50):
        assert dual_bound(g, rng.normal(0, 2, size=12)) >= opt - 1e-9
    # zero prices: every person at its best object, the crudest bound
    assert dual_bound(g, np.zeros(12)) == pytest.approx(g.max(axis=1).sum())


def test_degenerate_and_bad_inputs():
    cols, value, bound = auction(np.zeros((4, 4), np.float32))
    assert sorted(cols.tolist()) == [0, 1, 2, 3] and value == bound == 0.0
    with pytest.raises(ValueError, match="square"):
        auction(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="non-finite"):
        auction(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="rtol"):
        auction(np.eye(2), rtol=-1.0)
