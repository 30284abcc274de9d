import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from semcom_jax.env.gym_adapter import ENV_ID, SemComGymEnv, SemComVectorEnv, action_masks


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


@pytest.mark.parametrize("flatten", [False, True])
def test_check_env_through_gym_make_wrappers(flatten):
    env = gym.make(ENV_ID, num_users=3, num_rbs=4, flatten=flatten)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # Gymnasium's checker itself advises checking the unwrapped env; everything else errors.
        warnings.filterwarnings("ignore", message=".*different from the unwrapped version")
        check_env(env)
    obs, info = env.reset(seed=3)
    mask = action_masks(env)  # through OrderEnforcing / PassiveEnvChecker
    assert mask.dtype == bool and mask.shape == (env.action_space.n,)
    if flatten:
        assert obs.shape == env.observation_space.shape
        np.testing.assert_array_equal(info["action_mask"], mask)
    else:
        np.testing.assert_array_equal(obs["action_mask"].astype(bool), mask)
    a = int(np.flatnonzero(mask)[0])
    env.step(a)
    assert not action_masks(env)[a]  # its RB is taken now


def test_make_vec_entry_point_masks_and_final_info():
    venv = gym.make_vec(ENV_ID, num_envs=5, vectorization_mode="vector_entry_point",
                        num_users=2, num_rbs=3, flatten=True)
    assert isinstance(venv, SemComVectorEnv) and venv.num_envs == 5
    obs, info = venv.reset(seed=0)
    assert obs.shape == (5, venv.single_observation_space.shape[0])
    assert venv.action_masks().shape == (5, venv.single_action_space.n)
    venv.step(np.zeros(5, np.int64))
    masks = venv.action_masks()
    assert not masks[:, 0].any() and masks[:, 1].all()  # RB 0 taken in every env
    obs, r, term, trunc, info = venv.step(np.ones(5, np.int64))
    assert term.all() and info["_final_info"].all() and info["_final_obs"].all()
    np.testing.assert_array_equal(info["final_info"]["served"], np.ones(5, bool))
    assert venv.action_masks().all() and venv.observation_space.contains(obs)


def test_an_agent_ignoring_the_mask_is_warned_once():
    env = SemComGymEnv(num_users=3, num_rbs=4)
    env.reset(seed=0)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        for _ in range(3000):  # action 0 every step: illegal from the second user on
            _, _, term, _, _ = env.step(0)
            if term:
                env.reset()
    hits = [w for w in rec if "illegal" in str(w.message)]
    assert len(hits) == 1 and "action_mask" in str(hits[0].message)
    quiet = SemComGymEnv(num_users=3, num_rbs=4)
    quiet.reset(seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # legal play never warns
        for _ in range(1500):
            _, _, term, _, _ = quiet.step(int(np.flatnonzero(quiet.action_masks())[-1]))
            if term:
                quiet.reset()


def test_a_step_after_the_episode_ended_is_refused_in_strict_mode():
    strict = SemComGymEnv(num_users=2, num_rbs=3, strict=True)
    strict.reset(seed=0)
    for _ in range(2):
        _, _, term, _, _ = strict.step(int(np.flatnonzero(strict.action_masks())[0]))
    assert term
    with pytest.raises(RuntimeError, match="episode has ended.*reset"):
        strict.step(int(np.flatnonzero(strict.action_masks())[-1]))
    strict.reset()  # and a reset makes stepping legal again
    strict.step(0)
    lenient = SemComGymEnv(num_users=2, num_rbs=3)
    lenient.reset(seed=0)
    lenient.step(0)
    lenient.step(1)
    with pytest.warns(RuntimeWarning, match="after the episode ended"):
        _, r, term, _, _ = lenient.step(2)
    assert r == 0.0 and term
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        lenient.step(2)
