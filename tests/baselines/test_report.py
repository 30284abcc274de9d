"""One report row: a policy's evaluation and a baseline's report carry the same keys and, for
the same assignment, the same values."""

import jax
import numpy as np

from semcom_jax.baselines import report, solvers
from semcom_jax.baselines.evaluate import Evaluator
from semcom_jax.env import SemComEnv


def test_a_policy_playing_the_optimum_reports_the_optimum_row():
    env = SemComEnv(4, 3)
    ev = Evaluator(env, env.default_params, num_episodes=32, seed=5, ceiling_draws=0)
    encoders, rbs = solvers.optimum(solvers.batched_action_tables(
        ev.instances, ev.env_params, ev.env.table.data))
    metrics = jax.jit(ev.score)(np.asarray(encoders), np.asarray(rbs))
    assert set(metrics) == {report.METRIC_PREFIX + k for k in report.ROW_KEYS}
    # Two seeds of the same policy: their row is the mean, with both seeds' scores.
    got = report.policy_row(jax.tree.map(lambda x: np.stack([x, x]), metrics))
    want = ev.baselines["optimum"]
    assert set(got) == set(report.ROW_KEYS) | {"normalised_per_seed"}
    # a solved baseline's row also carries its certificate: 0, solved exactly at this size
    assert set(want) == set(report.ROW_KEYS) | {"gap", "certified_gap"}
    assert want["gap"] == want["certified_gap"] == 0.0
    for k in report.ROW_KEYS:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(got["normalised_per_seed"], [1.0, 1.0], rtol=1e-5)
