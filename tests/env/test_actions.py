"""The action layout: layout, masks, random legal actions (including Q = 1), and every user of the
layout agreeing with it."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.agents import networks as nets
from semcom_jax.agents.config import NetworkConfig
from semcom_jax.env import ActionLayout, PaddedSemComEnv, SemComEnv


def test_encode_decode_round_trip_and_no_rb():
    c = ActionLayout(3, 4, has_no_rb=True)
    assert c.num_actions == 13 and c.no_rb_action == 12
    k, q = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    a = np.asarray(c.encode(k, q))
    assert sorted(a.ravel().tolist()) == list(range(12))  # a bijection onto 0..K*Q-1
    d = c.decode(jnp.asarray(a))
    np.testing.assert_array_equal(np.asarray(d.encoder), k)
    np.testing.assert_array_equal(np.asarray(d.rb), q)
    assert not bool(jnp.any(d.no_rb)) and bool(jnp.all(d.in_range))
    d = c.decode(jnp.array([12, 13, -1]))
    assert np.asarray(d.no_rb).tolist() == [True, False, False]
    assert np.asarray(d.in_range).tolist() == [True, False, False]
    plain = ActionLayout(3, 4, has_no_rb=False)
    assert plain.num_actions == 12 and plain.no_rb_action is None
    assert not bool(plain.decode(12).in_range) and not bool(plain.decode(12).no_rb)


def test_mask_layout_and_flat_logits_follow_encode():
    c = ActionLayout(2, 3, has_no_rb=True)
    free = jnp.array([True, False, True])
    m = np.asarray(c.mask(free, no_rb_legal=False))
    for k in range(2):
        for q in range(3):
            assert m[int(c.encode(k, q))] == bool(free[q])
    assert not m[c.no_rb_action]
    per_rb = jnp.arange(6.0).reshape(3, 2)  # (Q, K): value 2q + k
    flat = np.asarray(c.flat_logits(per_rb, jnp.array([99.0])))
    for k in range(2):
        for q in range(3):
            assert flat[int(c.encode(k, q))] == 2 * q + k
    assert flat[c.no_rb_action] == 99.0
    with pytest.raises(ValueError, match="no RB"):
        c.flat_logits(per_rb)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="num_rbs"):
        ActionLayout(3, 0, has_no_rb=False)


@pytest.mark.parametrize("u,q", [(5, 10), (6, 4), (3, 1)])
def test_uniform_legal_is_legal_and_uniform(u, q):
    env = SemComEnv(u, q)
    taken = jnp.zeros(q, bool).at[0].set(True)
    mask = env.actions.mask(~taken)
    acts = jax.vmap(lambda k: env.actions.uniform_legal(k, mask))(
        jax.random.split(jax.random.PRNGKey(0), 20000))
    counts = np.bincount(np.asarray(acts), minlength=env.num_actions)
    legal = np.asarray(mask)
    assert counts[~legal].sum() == 0 and counts.sum() == 20000
    expected = 20000 / legal.sum()
    assert np.all(np.abs(counts[legal] - expected) < 5 * math.sqrt(expected))


def test_q1_random_play_is_always_legal():
    # The old layout inference (mask length % Q == 1) was wrong for Q = 1: once the only RB was
    # taken, the random legal action came out as -1.
    env = SemComEnv(3, 1)
    p = env.default_params
    obs, state = env.reset(jax.random.PRNGKey(0), p)
    for t in range(3):
        a = env.actions.uniform_legal(jax.random.PRNGKey(t), obs.action_mask)
        assert bool(obs.action_mask[a]), (t, int(a))
        obs, state, _, _, info = env.step_env(jax.random.PRNGKey(9), state, a, p)
        assert not bool(info["invalid_action"])


def test_no_rb_is_never_drawn_when_a_mask_forbids_it():
    c = ActionLayout(3, 6, has_no_rb=True)
    mask = c.mask(jnp.arange(6) < 3, no_rb_legal=False)
    acts = jax.vmap(lambda k: c.uniform_legal(k, mask))(
        jax.random.split(jax.random.PRNGKey(1), 5000))
    assert bool(jnp.all(mask[acts])) and not bool(jnp.any(acts == c.no_rb_action))


def test_padded_env_keeps_padded_rbs_illegal():
    env = PaddedSemComEnv(4, 6)
    p = env.default_params.replace(active_users=2, active_rbs=3)
    obs, _ = env.reset(jax.random.PRNGKey(0), p)
    free = np.asarray(env.actions.free_rbs(obs.action_mask))
    assert free.tolist() == [True] * 3 + [False] * 3 and bool(obs.action_mask[env.no_rb_action])


@pytest.mark.parametrize("k,q,no_rb", [(3, 10, True), (2, 70, True), (3, 5, False)])
def test_uniform_legal_picks_the_rth_legal_action(k, q, no_rb):
    """Against a numpy reference from the same uniform draw: the r-th legal action in layout
    order, r = floor(u * legal count); both the unrolled (Q <= 64) and the scanned counts."""
    c = ActionLayout(k, q, has_no_rb=no_rb)
    rng = np.random.default_rng(0)
    free = rng.random((512, q)) < rng.random((512, 1))  # from nearly empty to nearly full
    mask = np.asarray(c.mask(jnp.asarray(free), no_rb_legal=jnp.asarray(rng.random(512) < 0.7)))
    key = jax.random.PRNGKey(3)
    got = np.asarray(jax.jit(c.uniform_legal)(key, jnp.asarray(mask)))
    u = np.asarray(jax.random.uniform(key, (512,)))
    for i in range(512):
        # Layout order of the legal actions: encoder-major over free RBs, then "no RB".
        legal = np.flatnonzero(mask[i])
        if legal.size == 0:
            assert got[i] == 0
            continue
        r = min(int(np.floor(u[i] * legal.size)), legal.size - 1)
        assert got[i] == legal[r], (i, got[i], legal[r])


def test_no_legal_action_gives_zero_not_garbage():
    c = ActionLayout(2, 2, has_no_rb=False)
    assert int(c.uniform_legal(jax.random.PRNGKey(0), c.mask(jnp.zeros(2, bool)))) == 0


@pytest.mark.parametrize("u,q", [(2, 3), (4, 2)])
def test_per_rb_network_logits_follow_the_codec(u, q):
    # Logit of action encode(k, q) must depend on RB q's own features: perturb one RB's
    # features and only that RB's K logits may move.
    env = SemComEnv(u, q)
    net = nets.make_network(NetworkConfig("per_rb", (8,), 8), env)
    obs = env.example_observation(1)
    params = net.init(jax.random.PRNGKey(0), obs)
    base, _ = net.apply(params, obs)
    moved, _ = net.apply(params, obs.replace(rb_features=obs.rb_features.at[0, 1].add(1.0)))
    changed = np.flatnonzero(np.abs(np.asarray(moved - base)[0]) > 0)
    assert sorted(changed.tolist()) == sorted(int(env.actions.encode(k, 1))
                                              for k in range(env.num_encoders))
