import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from semcom_jax.env.gym_adapter import ENV_ID, SemComGymEnv, SemComVectorEnv


@pytest.mark.parametrize("kwargs", [{}, {"num_users": 6, "num_rbs": 4, "obs_mode": "full"}])
def test_gymnasium_env_checker_passes_without_warnings(kwargs):
    env = gym.make(ENV_ID, **kwargs).unwrapped
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env)


def test_single_env_episode_and_strict_mode():
    env = SemComGymEnv(num_users=3, num_rbs=4)
    obs, _ = env.reset(seed=0)
    total = 0.0
    for t in range(3):
        a = int(np.flatnonzero(env.action_masks())[0])
        obs, r, term, trunc, info = env.step(a)
        total += r
        assert term == (t == 2) and not trunc and not info["invalid_action"]
    assert total < 0
    strict = SemComGymEnv(num_users=3, num_rbs=4, strict=True)
    strict.reset(seed=0)
    strict.step(0)
    with pytest.raises(ValueError, match="not legal"):
        strict.step(0)  # RB 0 is taken


def test_vector_env_steps_and_autoresets():
    venv = SemComVectorEnv(4, num_users=2, num_rbs=3)
    obs, _ = venv.reset(seed=1)
    assert obs["features"].shape == (4, venv.single_observation_space["features"].shape[0])
    assert venv.observation_space.contains(obs)
    obs, r, term, trunc, info = venv.step(np.zeros(4, np.int64))
    assert not term.any() and r.shape == (4,)
    obs, r, term, trunc, info = venv.step(np.ones(4, np.int64))
    assert term.all() and "final_obs" in info
    assert obs["action_mask"].all()  # fresh episodes
