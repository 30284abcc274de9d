"""The gymnax surface: the env is a gymnax ``Environment`` with gymnax spaces, ``params=None``,
``make`` and the registry, the flat observation, both step APIs, gymnax's own wrappers on it,
copies and pickles, and the PureJaxRL-style example agent that uses only these."""

import copy
import importlib.util
import os
import pickle

import chex
import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.baselines.evaluate import Evaluator
import semcom_jax
from semcom_jax.env import LogWrapper, Observation, SemComEnv, VecEnv, flatten_observation
from semcom_jax.env.padded import PaddedSemComEnv

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "purejaxrl_ppo.py")


@pytest.mark.parametrize("make", [lambda: SemComEnv(3, 4, obs_mode="full"),
                                  lambda: SemComEnv(3, 4, flat_features=False),
                                  lambda: PaddedSemComEnv(4, 5)])
def test_spaces_describe_every_observation_and_action(make):
    env = make()
    space, act = env.observation_space(), env.action_space(env.default_params)
    assert act.n == env.num_actions
    obs, state = env.reset(jax.random.PRNGKey(0))  # params=None: the defaults
    for t in range(env.num_users):
        assert bool(space.contains(obs))
        for name, sub in space.spaces.items():
            x = getattr(obs, name)
            assert x.shape == sub.shape and x.dtype == sub.dtype, name
        a = env.actions.uniform_legal(jax.random.PRNGKey(t), obs.action_mask)
        assert bool(act.contains(a))
        obs, state, *_ = env.step(jax.random.PRNGKey(10 + t), state, a)
    assert not bool(act.contains(env.num_actions)) and not bool(act.contains(-1))
    sample = Observation(**space.sample(jax.random.PRNGKey(1)))
    assert bool(space.contains(sample))
    wrong = sample.replace(features=jnp.full(space.spaces["features"].shape, 1e3))
    assert space.spaces["features"].shape == (0,) or not bool(space.contains(wrong))
    assert isinstance(env, gymnax.environments.environment.Environment)
    assert isinstance(act, gymnax.environments.spaces.Discrete)
    assert isinstance(space, gymnax.environments.spaces.Dict)


def test_params_none_means_the_defaults():
    env = SemComEnv(3, 4)
    key = jax.random.PRNGKey(5)
    o1, s1 = env.reset(key)
    o2, s2 = env.reset(key, env.default_params)
    r1 = env.step(key, s1, 2)[2]
    r2 = env.step(key, s2, 2, env.default_params)[2]
    for a, b in zip(jax.tree.leaves((o1, s1, r1)), jax.tree.leaves((o2, s2, r2))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_flatten_observation_holds_every_field():
    flat_env, set_env = SemComEnv(3, 4, obs_mode="full"), SemComEnv(3, 4, obs_mode="full",
                                                                    flat_features=False)
    key = jax.random.PRNGKey(2)
    o_flat, _ = flat_env.reset(key)
    o_set, _ = set_env.reset(key)
    x, mask = flatten_observation(o_flat)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(o_flat.features))
    y, _ = flatten_observation(o_set)
    q, u = 4, 3
    assert y.shape == (q * 3 + u * 7 + u * 5 + 5,)
    np.testing.assert_array_equal(np.asarray(y[:q * 3]), np.asarray(o_set.rb_features).ravel())
    status = np.asarray(y[q * 3 + u * 7:q * 3 + u * 7 + u * 5]).reshape(u, 5)
    np.testing.assert_array_equal(status.argmax(-1), np.asarray(o_set.user_status))
    batch = jax.tree.map(lambda a: jnp.stack([a, a]), o_set)  # leading batch axes work too
    np.testing.assert_array_equal(np.asarray(flatten_observation(batch)[0][1]), np.asarray(y))
    assert mask.shape == (flat_env.num_actions,)


def test_log_wrapper_reports_each_finished_episode():
    env = SemComEnv(3, 4, reward="dense")
    logged = LogWrapper(env)
    key = jax.random.PRNGKey(0)
    obs, state = logged.reset(key)
    step = jax.jit(logged.step)
    returns, running, finished = [], 0.0, 0
    for t in range(3 * 4):
        a = env.actions.uniform_legal(jax.random.fold_in(key, t), obs.action_mask)
        obs, state, r, done, info = step(jax.random.fold_in(key, 100 + t), state, a)
        running += float(r)
        if bool(done):
            finished += 1
            returns.append(running)
            running = 0.0
            assert bool(info["returned_episode"]) and int(info["returned_episode_lengths"]) == 3
        else:
            assert not bool(info["returned_episode"])
        if returns:
            np.testing.assert_allclose(float(info["returned_episode_returns"]), returns[-1],
                                       rtol=1e-6)
    assert finished == 4 and logged.num_actions == env.num_actions


@pytest.mark.slow
def test_purejaxrl_style_example_learns():
    spec = importlib.util.spec_from_file_location("purejaxrl_ppo", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    returns = np.asarray(jax.jit(example.make_train(total_steps=200_000))(jax.random.PRNGKey(0)))
    env = SemComEnv(3, 4, obs_mode="full", reward="dense")
    ev = Evaluator(env, env.default_params, 512, 7, ceiling_draws=0)
    norm = lambda r: (r - ev.r_random) / (ev.r_opt - ev.r_random)  # noqa: E731
    # Sampled (not greedy) actions, yet well above random after 200 k steps (0.94 measured).
    assert norm(returns[0]) < 0.3 and norm(returns[-len(returns) // 4:].mean()) > 0.7


def test_make_returns_env_and_params_for_every_registered_id():
    ids = semcom_jax.registered_envs()
    assert list(ids)[0] == "SemCom-v0"
    for env_id, fixed in ids.items():
        env, params = semcom_jax.make(env_id, num_users=3, num_rbs=4)
        assert (env.obs_mode, env.reward_name, env.score_name) == (
            fixed["obs_mode"], fixed["reward"], fixed["score"])
        assert env.obs_format == "flat" and params.max_steps_in_episode == 3
        # gymnax's own make finds the same variants once semcom_jax is imported.
        g_env, g_params = gymnax.make(env_id, num_users=3, num_rbs=4)
        assert type(g_env) is type(env) and g_params == params
    with pytest.raises(ValueError, match="unknown env id 'SemCom-v9'.*SemCom-v0"):
        semcom_jax.make("SemCom-v9")
    with pytest.raises(ValueError, match="fixes \\['obs_mode'\\].*choose the id"):
        semcom_jax.make("SemCom-v0", obs_mode="full")
    env, _ = semcom_jax.make("SemCom-v0", table="fashion-mnist")
    assert "ViT-T/7" in env.encoder_names[0]


def test_flat_observation_is_one_box_ending_with_the_mask():
    env, params = semcom_jax.make("SemCom-full-v0", num_users=3, num_rbs=4)
    structured = SemComEnv(3, 4, obs_mode="full")
    space = env.observation_space(params)
    assert isinstance(space, gymnax.environments.spaces.Box)
    key = jax.random.PRNGKey(3)
    obs, state = env.reset(key, params)
    ref, ref_state = structured.reset(key, params)
    assert obs.shape == space.shape and obs.dtype == space.dtype
    features, mask = flatten_observation(ref)
    np.testing.assert_array_equal(np.asarray(obs[:features.shape[0]]), np.asarray(features))
    np.testing.assert_array_equal(np.asarray(env.action_mask_of(obs)), np.asarray(mask))
    for t in range(3):  # the same episode in both formats
        a = env.actions.uniform_legal(jax.random.PRNGKey(t), env.action_mask_of(obs))
        obs, state, r, *_ = env.step_env(key, state, a, params)
        ref, ref_state, r_ref, *_ = structured.step_env(key, ref_state, a, params)
        np.testing.assert_array_equal(np.asarray(env.action_mask_of(obs)),
                                      np.asarray(ref.action_mask))
        assert float(r) == float(r_ref)
    batch = jnp.stack([obs, obs])
    assert env.action_mask_of(batch).shape == (2, env.num_actions)


def test_terminated_truncated_api_matches_the_done_api():
    five = SemComEnv(2, 3, reward="dense")
    six = SemComEnv(2, 3, reward="dense", step_api="terminated_truncated")
    p = five.default_params
    o5, s5 = five.reset(jax.random.PRNGKey(0), p)
    o6, s6 = six.reset(jax.random.PRNGKey(0), p)
    for t in range(4):
        a = jnp.int32(t % 2)
        out5 = five.step(jax.random.PRNGKey(t), s5, a, p)
        out6 = six.step(jax.random.PRNGKey(t), s6, a, p)
        assert len(out5) == 5 and len(out6) == 6
        o5, s5, r5, d5, i5 = out5
        o6, s6, r6, term, trunc, i6 = out6
        chex.assert_trees_all_equal((o5, s5, r5, d5), (o6, s6, r6, term))
        assert not bool(trunc) and bool(i6["terminated"]) == bool(term)
        if bool(term):  # the last observation of the ended episode, before the reset
            assert int(i6["final_observation"].user_status[-1]) != 0
    with pytest.raises(ValueError, match="step_api"):
        SemComEnv(step_api="gymnasium")
    with pytest.raises(ValueError, match="obs_format"):
        SemComEnv(obs_format="dict")


def test_gymnax_own_wrappers_run_on_the_env():
    from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper as GymnaxLog
    env, params = semcom_jax.make("SemCom-dense-v0", num_users=3, num_rbs=4,
                                  step_api="terminated_truncated")
    wrapped = GymnaxLog(FlattenObservationWrapper(env))
    assert wrapped.observation_space(params).shape == env.observation_space(params).shape
    obs, state = jax.vmap(wrapped.reset, (0, None))(jax.random.split(jax.random.PRNGKey(0), 4),
                                                    params)
    step = jax.jit(jax.vmap(wrapped.step, (0, 0, 0, None)))
    total = 0.0
    for t in range(6):
        a = jax.vmap(env.actions.uniform_legal)(jax.random.split(jax.random.PRNGKey(t), 4),
                                                env.action_mask_of(obs))
        obs, state, r, term, trunc, info = step(jax.random.split(jax.random.PRNGKey(9 + t), 4),
                                                state, a, params)
        total += float(r[0])
        if t == 2:
            assert bool(jnp.all(info["returned_episode"]))
            np.testing.assert_allclose(float(info["returned_episode_returns"][0]), total,
                                       rtol=1e-5)
    # gymnax 1.x's adapter to the five-value API also applies.
    legacy = gymnax.wrappers.LegacyStepAPIWrapper(env)
    _, s = legacy.reset(jax.random.PRNGKey(0), params)
    assert len(legacy.step(jax.random.PRNGKey(1), s, 0, params)) == 5


def test_env_and_wrappers_copy_deepcopy_and_pickle():
    env, params = semcom_jax.make("SemCom-v0", num_users=3, num_rbs=4)
    env.sample_instances(jax.random.PRNGKey(0), 2, params)  # builds the cached sampler
    for obj in (env, LogWrapper(env), VecEnv(env, 4), LogWrapper(LogWrapper(env))):
        for clone in (copy.copy(obj), copy.deepcopy(obj), pickle.loads(pickle.dumps(obj))):
            assert type(clone) is type(obj)
            inner = clone
            while not isinstance(inner, SemComEnv):
                inner = inner.env
            obs, _ = inner.reset(jax.random.PRNGKey(1), params)
            ref, _ = env.reset(jax.random.PRNGKey(1), params)
            np.testing.assert_array_equal(np.asarray(obs), np.asarray(ref))
    # Attribute look-ups on a half-built wrapper fail plainly (no recursion).
    bare = LogWrapper.__new__(LogWrapper)
    with pytest.raises(AttributeError):
        bare.env


def test_importing_the_package_does_not_start_jax():
    """gymnax's import runs JAX computations; the package and the command line's parser must
    stay usable before ``jax.distributed.initialize`` or the compilation cache's set-up, so the
    env (and gymnax) load only when asked for."""
    import subprocess
    import sys
    code = ("import importlib, semcom_jax, semcom_jax.cli\n"
            "importlib.import_module('semcom_jax.cli.main')._parser().parse_args(['train'])\n"
            "from jax._src import xla_bridge as xb\n"
            "assert not xb._backends, list(xb._backends)\n"
            "env, _ = semcom_jax.make('SemCom-v0')\n"
            "assert xb._backends and env.num_users == 5\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_policy_is_scored_only_on_episodes_of_its_own_size():
    ev = Evaluator(SemComEnv(3, 4), SemComEnv(3, 4).default_params, 8, seed=1, ceiling_draws=0)
    flat, _ = semcom_jax.make("SemCom-v0", num_users=3, num_rbs=4)
    no_rb = lambda obs, key: flat.no_rb_action  # noqa: E731
    encoders, rbs = ev.policy_assignment(no_rb, flat)
    assert (rbs == -1).all()  # every user left unserved, as asked
    assert float(ev.score(encoders, rbs)["eval_unserved_rate"]) == 1.0
    other, _ = semcom_jax.make("SemCom-v0", num_users=4, num_rbs=4)
    with pytest.raises(ValueError, match="U=4, Q=4.*U=3, Q=4"):
        ev.policy_assignment(no_rb, other)
