"""The Gymnasium adapters refuse actions that are not integers in range."""


import numpy as np
import pytest



# ----------------------------------------------------------------------------- Gymnasium

gym_adapter = pytest.importorskip("semcom_jax.env.gym_adapter")


@pytest.mark.parametrize("action,error,culprit", [
    (2.7, TypeError, "2.7"),
    ("3", TypeError, "'3'"),
    (None, TypeError, "None"),
    (float("nan"), TypeError, "nan"),
    (np.float32(1.0), TypeError, "float32"),
    (True, TypeError, "True"),
    (np.array([1, 2]), ValueError, "shape"),
    (2**40, ValueError, str(2**40)),
    (-1, ValueError, "-1"),
    (31, ValueError, "31"),
])
def test_gym_refuses_actions_that_are_not_integers_in_range(action, error, culprit):
    env = gym_adapter.SemComGymEnv(num_users=2, num_rbs=10)
    env.reset(seed=0)
    with pytest.raises(error, match=culprit):
        env.step(action)
    # Integers of any flavour are served.
    for a in (3, np.int64(4), np.array(5)):
        env.reset(seed=0)
        env.step(a)


@pytest.mark.parametrize("actions,error,culprit", [
    (np.array([1.0, 2.0, 3.0]), TypeError, "float64"),
    (np.array([1, 2]), ValueError, "shape"),
    (np.array([1, 2, 99]), ValueError, "99"),
    (["1", "2", "3"], TypeError, "actions"),
])
def test_gym_vector_refuses_bad_actions(actions, error, culprit):
    env = gym_adapter.SemComVectorEnv(3, num_users=2, num_rbs=10)
    env.reset(seed=0)
    with pytest.raises(error, match=culprit):
        env.step(actions)
    env.step(np.array([1, 2, 3]))
