"""The size-free policy: the set observation (by hand), training across sizes (RandomSizeEnv),
the set network (shapes across sizes, equivariance, per-episode caching) and zero-shot
evaluation at a size never trained on."""

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.agents import networks as nets
from semcom_jax.agents.config import NetworkConfig
from semcom_jax.agents.config import TrainConfig
from semcom_jax.env import SemComEnv
from semcom_jax.env.padded import PaddedSemComEnv, RandomSizeEnv
from semcom_jax.env.types import ABSENT, CURRENT, PENDING, SERVED, UNSERVED


def test_set_observation_by_hand():
    env = SemComEnv(3, 4, flat_features=False)
    p = env.default_params
    obs, st = env.reset(jax.random.PRNGKey(0), p)
    inst = st.instance
    r = p.cell_radius_m
    want = np.concatenate([np.asarray(inst.user_xy_m) / r, np.asarray(inst.distance_m)[:, None] / r],
                          axis=1)
    np.testing.assert_allclose(np.asarray(obs.user_features), want, rtol=1e-6)
    assert obs.features.shape == (0,) and env.observation_size == 0
    assert obs.user_status.tolist() == [CURRENT, PENDING, PENDING]
    np.testing.assert_allclose(np.asarray(obs.context), [0.0, math.log(4 / 5), 1.0], rtol=1e-6)
    obs, st, *_ = env.step_env(jax.random.PRNGKey(1), st, env.actions.encode(0, 1), p)
    obs, st, *_ = env.step_env(jax.random.PRNGKey(2), st, env.no_rb_action, p)
    assert obs.user_status.tolist() == [SERVED, UNSERVED, CURRENT]
    # 2 of 3 decided; 1 user left, 3 RBs free; 3 of 4 free.
    np.testing.assert_allclose(np.asarray(obs.context), [2 / 3, math.log(2 / 4), 0.75], rtol=1e-6)
    full = SemComEnv(3, 4, obs_mode="full")
    o_full, s_full = full.reset(jax.random.PRNGKey(0), full.default_params)
    assert o_full.user_features.shape == (3, 7) and o_full.context.shape == (5,)
    np.testing.assert_allclose(np.asarray(o_full.user_features[:, 3]),
                               np.log10(np.asarray(s_full.instance.fading)), rtol=1e-5)


def test_padded_sets_match_the_unpadded_env():
    small = SemComEnv(3, 4)
    big = PaddedSemComEnv(5, 6)
    bp = big.default_params.replace(active_users=3, active_rbs=4)
    inst = small.sample_instances(jax.random.PRNGKey(3), 1, small.default_params)
    inst = jax.tree.map(lambda x: x[0], inst)
    from semcom_jax.env.padded import pad_instance
    o_s, s_s = small.reset_to(inst, small.default_params)
    o_b, s_b = big.reset_to(pad_instance(inst, 5, 6), bp)
    for a in (small.actions.encode(2, 3), small.no_rb_action):
        o_s, s_s, *_ = small.step_env(jax.random.PRNGKey(0), s_s, a, small.default_params)
        k, q = (2, 3) if a != small.no_rb_action else (None, None)
        ab = big.actions.encode(k, q) if k is not None else big.no_rb_action
        o_b, s_b, *_ = big.step_env(jax.random.PRNGKey(0), s_b, ab, bp)
    assert o_b.user_status.tolist() == o_s.user_status.tolist() + [ABSENT, ABSENT]
    np.testing.assert_allclose(np.asarray(o_b.context), np.asarray(o_s.context), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(o_b.user_features[:3]), np.asarray(o_s.user_features))


def test_random_size_env_draws_sizes_in_range():
    env = RandomSizeEnv((2, 4), (3, 6))
    p = env.default_params
    states = jax.vmap(lambda k: env.reset_state(k, p))(jax.random.split(jax.random.PRNGKey(0), 400))
    nu, nq = np.asarray(states.active_users), np.asarray(states.active_rbs)
    assert set(nu.tolist()) == {2, 3, 4} and set(nq.tolist()) == {3, 4, 5, 6}
    used = np.asarray(states.rb_used)
    assert all(used[i].tolist() == [False] * nq[i] + [True] * (6 - nq[i]) for i in range(20))
    with pytest.raises(ValueError, match="users_range"):
        RandomSizeEnv((3, 2), (1, 2))


def _random_obs(env, key, batch=2):
    """An observation with random features and a legal mix of statuses."""
    obs, st = jax.jit(env.reset)(key, env.default_params)
    k1, k2, k3 = jax.random.split(key, 3)
    u = env.num_users
    status = jnp.array([SERVED, UNSERVED, CURRENT] + [PENDING] * (u - 3))
    obs = obs.replace(user_features=jax.random.normal(k1, obs.user_features.shape),
                      rb_features=jax.random.normal(k2, obs.rb_features.shape)
                      .at[:, 1].set(jax.random.bernoulli(k3, 0.3, (env.num_rbs,))),
                      user_status=status)
    return jax.tree.map(lambda x: jnp.stack([x] * batch), obs)


def test_set_network_parameters_do_not_depend_on_size():
    shapes = []
    for u, q in ((3, 4), (7, 11)):
        env = SemComEnv(u, q, obs_mode="full", flat_features=False)
        net = nets.make_network(NetworkConfig("set", (16, 16), 8), env)
        params = jax.jit(net.init)(jax.random.PRNGKey(0), env.example_observation())
        shapes.append(jax.tree.map(lambda x: x.shape, params))
        logits, value = jax.jit(net.apply)(params, _random_obs(env, jax.random.PRNGKey(1)))
        assert logits.shape == (2, env.num_actions) and value.shape == (2,)
    assert shapes[0] == shapes[1]
    with pytest.raises(ValueError, match="flat features"):
        nets.make_network(NetworkConfig("per_rb", (8,), 8),
                          SemComEnv(3, 4, flat_features=False))


def test_set_network_is_equivariant_to_users_and_rbs():
    env = SemComEnv(6, 5, obs_mode="full", flat_features=False)
    net = nets.make_network(NetworkConfig("set", (16,), 8), env)
    obs = _random_obs(env, jax.random.PRNGKey(4))
    params = net.init(jax.random.PRNGKey(0), obs)
    logits, value = net.apply(params, obs)
    k_count, q_count = env.num_encoders, env.num_rbs
    perm_u = np.array([4, 2, 0, 5, 1, 3])
    perm_q = np.array([3, 0, 4, 1, 2])
    moved = obs.replace(user_features=obs.user_features[:, perm_u],
                        user_status=obs.user_status[:, perm_u],
                        rb_features=obs.rb_features[:, perm_q])
    l2, v2 = net.apply(params, moved)
    np.testing.assert_allclose(np.asarray(v2), np.asarray(value), rtol=1e-5, atol=1e-6)
    per_rb = np.asarray(logits[:, :k_count * q_count]).reshape(2, k_count, q_count)
    per_rb2 = np.asarray(l2[:, :k_count * q_count]).reshape(2, k_count, q_count)
    np.testing.assert_allclose(per_rb2, per_rb[:, :, perm_q], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(l2[:, -1]), np.asarray(logits[:, -1]), rtol=1e-5,
                               atol=1e-6)
    # Not trivially so: the logits do depend on the RBs' features.
    l3, _ = net.apply(params, obs.replace(rb_features=obs.rb_features.at[:, 0, 2].add(3.0)))
    assert not np.allclose(np.asarray(l3), np.asarray(logits))


def test_cached_episode_embedding_gives_the_same_logits():
    env = SemComEnv(5, 7, flat_features=False)
    net = nets.make_network(NetworkConfig("set", (16,), 8), env)
    obs = _random_obs(env, jax.random.PRNGKey(2))
    params = net.init(jax.random.PRNGKey(0), obs)
    emb = net.apply(params, obs.user_features, obs.rb_interference,
                    method=net.embed_episode)
    a = net.apply(params, obs)
    b = net.apply(params, obs, embedding=emb)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # The embedding passed in is the one used: another one changes the logits.
    c = net.apply(params, obs, embedding=emb.replace(users=emb.users + 1.0))
    assert not np.allclose(np.asarray(c[0]), np.asarray(a[0]))
    d = net.apply(params, obs, embedding=emb.replace(rb_head=emb.rb_head + 1.0))
    assert not np.allclose(np.asarray(d[0]), np.asarray(a[0]))


def _candidate_case(q=12, used=(1, 4, 5, 9, 10), batch=2):
    env = SemComEnv(4, q, flat_features=False)
    obs = _random_obs(env, jax.random.PRNGKey(8), batch=batch)
    free = ~np.isin(np.arange(q), used)
    return env, obs.replace(action_mask=jnp.broadcast_to(env.actions.mask(jnp.asarray(free)),
                                                          obs.action_mask.shape)), free


def test_rb_candidates_change_nothing_when_every_free_rb_is_in_view():
    env, obs, free = _candidate_case()  # 7 free RBs
    full = nets.make_network(NetworkConfig("set", (16,), 8), env)
    params = full.init(jax.random.PRNGKey(0), obs)
    seen = nets.make_network(NetworkConfig("set", (16,), 8, rb_candidates=8), env)
    a, b = full.apply(params, obs), seen.apply(params, obs)  # same parameters: shapes agree
    legal = np.asarray(obs.action_mask)
    np.testing.assert_allclose(np.asarray(b[0])[legal], np.asarray(a[0])[legal], rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(b[1]), np.asarray(a[1]), rtol=1e-5, atol=1e-6)


def _view_by_hand(sinr, free, m, rule):
    ranked = sorted(np.flatnonzero(free), key=lambda r: -sinr[r])  # free RBs, best first
    if rule == "top":
        return ranked[:m]
    top, rest = m // 2, m - m // 2
    best = ranked[:top]
    size = -(-len(sinr) // rest)
    sampled = []
    for b in range(rest):
        block = [r for r in range(b * size, min((b + 1) * size, len(sinr)))
                 if free[r] and r not in best]
        if block:
            sampled.append(block[0])
    return best + sampled


def test_spread_candidates_by_hand():
    from semcom_jax.agents.networks import _candidate_rbs
    sinr = jnp.array([0.5, 3.0, 2.0, -1.0, 4.0, 1.0, 0.0, 2.5, -2.0, 1.5])
    free = jnp.array([True, True, False, True, True, True, True, True, True, False])
    # Free RBs by SINR, best first: 4, 1, 7, 5, 0, 6, 3, 8.
    idx, ok = _candidate_rbs(sinr, free, 4, "spread")
    # 2 best (4, 1), then the first free RB not among them in blocks [0, 5) and [5, 10).
    assert np.asarray(idx).tolist() == [4, 1, 0, 5] and bool(ok.all())
    idx, ok = _candidate_rbs(sinr, free, 6, "spread")
    # 3 best (4, 1, 7); blocks of 4: [0, 4) -> 0, [4, 8) -> 5, [8, 12) -> 8.
    assert np.asarray(idx).tolist() == [4, 1, 7, 0, 5, 8] and bool(ok.all())
    # A block without a free RB leaves its slot out of view.
    idx, ok = _candidate_rbs(sinr, free.at[5:].set(False), 4, "spread")
    assert np.asarray(ok).tolist() == [True, True, True, False]
    idx, ok = _candidate_rbs(sinr, free, 4, "top")
    assert np.asarray(idx).tolist() == [4, 1, 7, 5] and bool(ok.all())


@pytest.mark.parametrize("rule", ["top", "spread"])
def test_rb_candidates_score_only_the_rbs_in_view(rule):
    """With M = 3 (M = 4 spread), only the RBs in view can be chosen, and their logits are the
    full network's on the same observation with only those RBs free (its RB summary and head
    then see exactly them)."""
    env, obs, free = _candidate_case()
    m, k_count, q = (3 if rule == "top" else 4), env.num_encoders, env.num_rbs
    net = nets.make_network(NetworkConfig("set", (16,), 8, rb_candidates=m,
                                          rb_candidate_rule=rule), env)
    params = net.init(jax.random.PRNGKey(0), obs)
    logits, value = net.apply(params, obs)
    logp = np.asarray(nets.masked_log_probs(logits, obs.action_mask))
    full = nets.make_network(NetworkConfig("set", (16,), 8), env)
    for b in range(2):
        sinr = np.asarray(obs.rb_features[b, :, 2])
        want = _view_by_hand(sinr, free, m, rule)
        view = np.isin(np.arange(q), want)
        assert view.sum() == len(want) == m
        per_rb = np.exp(logp[b, :k_count * q]).reshape(k_count, q)
        assert np.all(per_rb[:, ~view] == 0) and np.all(per_rb[:, view] > 0)
        assert np.exp(logp[b, -1]) > 0  # "no RB" stays possible
        only = obs.replace(action_mask=jnp.broadcast_to(env.actions.mask(jnp.asarray(view)),
                                                         obs.action_mask.shape))
        ref_logits, ref_value = full.apply(params, only)
        legal = np.asarray(only.action_mask[b])
        np.testing.assert_allclose(np.asarray(logits[b])[legal],
                                   np.asarray(ref_logits[b])[legal], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(float(value[b]), float(ref_value[b]), rtol=1e-5, atol=1e-6)


def test_rb_candidates_config_rules():
    with pytest.raises(ValueError, match="rb_candidates"):
        TrainConfig.of(rb_candidates=8).validate()  # per_rb network
    with pytest.raises(ValueError, match="rb_candidates"):
        TrainConfig.of(network="set", rb_candidates=-1).validate()
    with pytest.raises(ValueError, match="rb_candidates"):
        nets.make_network(NetworkConfig("per_rb", (8,), 8, rb_candidates=2), SemComEnv(3, 4))
    with pytest.raises(ValueError, match="rb_candidate_rule"):
        TrainConfig.of(network="set", rb_candidates=8, rb_candidate_rule="best").validate()
    with pytest.raises(ValueError, match="candidate_rule"):
        nets.make_network(NetworkConfig("set", (8,), 8, rb_candidates=2,
                                        rb_candidate_rule="best"),
                          SemComEnv(3, 4, flat_features=False))
    TrainConfig.of(network="set", rb_candidates=8, rb_candidate_rule="spread").validate()


def test_value_counts_the_users_it_stands_for():
    env = SemComEnv(4, 4, reward="dense", flat_features=False)
    net = nets.make_network(NetworkConfig("set", (8,), 8), env)
    obs = _random_obs(env, jax.random.PRNGKey(5), batch=1)
    params = net.init(jax.random.PRNGKey(0), obs)
    done = obs.replace(user_status=jnp.full_like(obs.user_status, SERVED))
    assert float(net.apply(params, done)[1][0]) == 0.0  # nobody left: nothing to come
    assert float(net.apply(params, obs)[1][0]) != 0.0


def test_config_refuses_sizes_without_the_set_network():
    with pytest.raises(ValueError, match="network"):
        TrainConfig.of(train_users=(2, 5)).validate()
    with pytest.raises(ValueError, match="train_users"):
        TrainConfig.of(network="set", train_users=(5, 2)).validate()
    cfg = TrainConfig.of(network="set", train_users=(2, 6), train_rbs=(2, 9))
    assert cfg.env.episode_length == 6 and cfg.num_steps == 2 * 6
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg


@pytest.mark.slow
def test_zero_shot_eval_at_a_size_never_trained_on(tmp_path, capsys):
    from semcom_jax.cli.main import main

    run = str(tmp_path / "run")
    assert main(["train", "--network", "set", "--train-users", "2", "4", "--train-rbs", "2", "6",
                 "--users", "3", "--rbs", "5", "--num-envs", "16", "--total-steps", "640",
                 "--chunk-updates", "2", "--eval-episodes", "8", "--reward", "dense",
                 "--set", "ceiling_draws=0", "--no-progress", "--out", run]) == 0
    capsys.readouterr()
    assert main(["eval", run, "--users", "9", "--rbs", "13", "--episodes", "4"]) == 0
    out = capsys.readouterr().out
    assert "U=9 Q=13" in out and "policy (PPO)" in out and "optimum" in out
    line = next(x for x in out.splitlines() if x.startswith("policy (PPO)"))
    assert math.isfinite(float(line.split()[2]))  # the return is a number
    # A network whose parameters depend on the size cannot be evaluated at another one: refused
    # from the run's config, before any checkpoint is read.
    from semcom_jax.agents.config import TrainConfig
    from semcom_jax.training import files

    other = str(tmp_path / "per_rb")
    files.start_run(other, TrainConfig.of(num_users=2, num_rbs=3, num_envs=8, eval_episodes=4))
    assert main(["eval", other, "--users", "4"]) == 2
    assert "size-free" in capsys.readouterr().err


def test_scaling_study_per_size_configs_are_valid():
    """Every per-size point of experiments/scaling_users.py builds a config that validates
    (a step budget beyond int32 once made every such point fail at start)."""
    import argparse
    import importlib.util
    import os
    import sys

    root = os.path.join(os.path.dirname(__file__), "..", "..")
    sys.path.insert(0, os.path.join(root, "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "scaling_users", os.path.join(root, "experiments", "scaling_users.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = argparse.Namespace(obs="full", seeds=3, rb_candidates=32, rb_candidate_rule="spread")
    for u in mod.USERS:
        for r in (1, 2):
            cfg = mod.size_config(args, u, r * u)
            cfg.validate()
            assert cfg.num_updates >= 1000  # the time budget, not the step budget, ends it
