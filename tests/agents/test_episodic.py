"""Rollouts stored by episode (agents/episodic.py): rebuilt observations equal the env's, the
per-episode tables give the network's own outputs, the chunked gradient equals the plain
PPO gradient on the stored observations, and the storage does not grow with U x (U + Q)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.agents import episodic
from semcom_jax.agents import networks as nets
from semcom_jax.agents.config import TrainConfig
from semcom_jax.agents.rollout import Samples, merge_time_batch
from semcom_jax.agents.ppo import normalise, ppo_loss, ppo_objective
from semcom_jax.env import SemComEnv
from semcom_jax.env.padded import PaddedSemComEnv
from semcom_jax.training.experiment import make_env, make_trainer

FIELDS = ("rb_features", "action_mask", "user_features", "user_status", "context")


def _assert_obs_equal(a, b, where=""):
    """Integer and bool fields exactly; floats to float32 rounding (programs compiled
    differently may round a log10 differently in the last place)."""
    for f in FIELDS:
        x, y = np.asarray(getattr(a, f)), np.asarray(getattr(b, f))
        if x.dtype.kind == "f":
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7, err_msg=f"{f} {where}")
        else:
            np.testing.assert_array_equal(x, y, err_msg=f"{f} {where}")


@pytest.mark.parametrize("padded", [False, True])
def test_state_at_rebuilds_every_step(padded):
    if padded:
        env = PaddedSemComEnv(5, 4, obs_mode="full", flat_features=False)
        params = env.default_params.replace(active_users=3, active_rbs=3)
    else:
        env = SemComEnv(5, 4, obs_mode="full", flat_features=False)
        params = env.default_params
    c = env.actions
    # Served, "no RB", a used RB (invalid: unserved), out of range (invalid), served.
    actions = [c.encode(2, 1), c.no_rb_action, c.encode(0, 1), 10**6, c.encode(1, 0)]
    obs, state = env.reset(jax.random.PRNGKey(7), params)
    start, seen, encoder, rb = state, [obs], [], []
    for i, a in enumerate(actions):
        obs, state, _, _, info = env.step_env(jax.random.PRNGKey(i), state, a, params)
        seen.append(obs)
        encoder.append(int(info["encoder"]))
        rb.append(int(c.decode(a).rb) if bool(info["served"]) else -1)
    assert encoder[:4] == [2, -1, -1, -1] and rb[:4] == [1, -1, -1, -1]
    encoder, rb = jnp.array(encoder), jnp.array(rb)
    for t, want in enumerate(seen[:-1]):
        st = env.state_at(start, encoder, rb, t)
        _assert_obs_equal(env.observation(st, params), want, f"step {t}")
    # After the last step: the finished episode's state, as the env has it.
    final = env.state_at(start, encoder, rb, len(actions))
    for f in ("step", "rb_used", "encoder", "rb"):
        np.testing.assert_array_equal(np.asarray(getattr(final, f)), np.asarray(getattr(state, f)))


def _trainer(**kw):
    cfg = TrainConfig.of(**{"num_users": 4, "num_rbs": 3, "num_envs": 4, "episodes_per_rollout": 2,
                         "network": "set", "obs_mode": "full", "reward": "dense",
                         "hidden": (16,), "rb_hidden": 8, "num_minibatches": 2,
                         "total_env_steps": 10**5, **kw})
    env = make_env(cfg)
    return cfg, env, make_trainer(cfg, env, env.default_params)


def _replay(tr, state, traj):
    """The env's observations along the stored actions, and the network's outputs on them
    (one scan, in the rollout's key order)."""

    def step(carry, action):
        obs, vstate, key = carry
        key, _, k_env = jax.random.split(key, 3)
        logits, value = tr.network.apply(state.params, obs)
        lp = nets.masked_log_probs(logits, obs.action_mask)
        logp = jnp.take_along_axis(lp, action[:, None], axis=-1)[:, 0]
        next_obs, vstate, *_ = tr.venv.step(k_env, vstate, action, state.env_params)
        return (next_obs, vstate, key), (obs, logits, logp, value)

    _, (seen, logits, logp, value) = jax.jit(lambda: jax.lax.scan(
        step, (state.obs, state.vstate, state.key), traj.action))()
    return seen, logits, logp, value


@pytest.mark.slow  # compiles a whole episode collection and its replay (~15 s each)
@pytest.mark.parametrize("sizes", [{}, {"train_users": (2, 4), "train_rbs": (2, 5),
                                        "rb_candidates": 3, "rb_candidate_rule": "spread"}])
def test_collected_episodes_rebuild_observations_and_outputs(sizes):
    cfg, env, tr = _trainer(**sizes)
    state = tr.init(jax.random.PRNGKey(0))
    _, _, _, traj, eps = jax.jit(lambda s: tr.experience.collect(s.params, s))(state)
    assert traj.obs is None and traj.action.shape == (2 * env.num_users, cfg.run.num_envs)
    seen, ref_logits, logp, value = _replay(tr, state, traj)  # leaves (T, B, ...)
    # Acting from per-episode tables and running sums = the network on the observation.
    np.testing.assert_allclose(np.asarray(traj.log_prob), np.asarray(logp), atol=2e-5)
    np.testing.assert_allclose(np.asarray(traj.value), np.asarray(value), rtol=1e-5, atol=2e-5)

    @jax.jit
    def rebuild(s, eps):
        x = tr.experience
        data = x.episode_data(s.env_params, eps)
        steps = jnp.arange(env.num_users)
        rebuilt = x.observations_at(s.env_params, data, steps)  # (E*B, U, ...)
        tables = x.episode_tables(s.params, data)
        logits, v_tab, _ = x.decide_at(s.params, s.env_params, data, tables, steps)
        return rebuilt, logits, v_tab

    rebuilt, logits, v_tab = rebuild(state, eps)
    # Time-major (T = E x U, B) to the episodes' layout (E x B, U), as the update reads them.
    seen, ref_logits, value, action = episodic.by_episode((seen, ref_logits, value, traj.action),
                                                         2)
    _assert_obs_equal(rebuilt, seen)
    np.testing.assert_allclose(np.asarray(v_tab), np.asarray(value), rtol=1e-5, atol=2e-5)
    if not tr.network.has_view(env.num_rbs):
        # Tables over the recorded decisions (prefix sums) = the network's masked means.
        np.testing.assert_allclose(np.asarray(logits), np.asarray(ref_logits), rtol=1e-5,
                                   atol=2e-5)
        assert eps.views is None
        return
    # The stored views are those of the env's observations; the update's log-probabilities
    # over each view are the full network's on the observation, which gives every action
    # outside the view probability zero; the stored place in the view is the action taken.
    net, k = tr.network, env.num_encoders
    data = tr.experience.episode_data(state.env_params, eps)
    want = nets.decision_view(seen.rb_sinr, seen.action_mask, seen.context,
                              nets.value_count(seen.user_status, net.value_scale),
                              net.candidates, net.candidate_rule, k)
    for f in ("idx", "ok", "sinr", "no_rb", "context", "count"):
        np.testing.assert_allclose(np.asarray(getattr(data.views, f)),
                                   np.asarray(getattr(want, f)), rtol=1e-6, err_msg=f)
    acts = data.views.actions(env.actions)  # (N, U, M K + 1)
    np.testing.assert_array_equal(np.take_along_axis(np.asarray(acts),
                                                     np.asarray(data.choice)[..., None], -1)[..., 0],
                                  np.asarray(action))
    mask = data.views.mask(k)
    lp_view = np.asarray(nets.masked_log_probs(logits, mask))
    lp_full = np.asarray(nets.masked_log_probs(ref_logits, seen.action_mask))
    lp_full_at = np.take_along_axis(lp_full, np.asarray(acts), -1)
    m = np.asarray(mask)
    np.testing.assert_allclose(lp_view[m], lp_full_at[m], rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(np.where(m, np.exp(lp_full_at), 0).sum(-1), 1.0, rtol=1e-5)


@pytest.mark.slow  # compiles the update at each chunk size
@pytest.mark.parametrize("extra,chunks", [({}, (4, 2, 1)), ({"rb_candidates": 3}, (4, 1))])
def test_chunked_gradient_equals_the_plain_ppo_gradient(extra, chunks):
    cfg, env, tr = _trainer(num_users=4, num_rbs=5, **extra)
    state = tr.init(jax.random.PRNGKey(1))
    _, _, _, traj, eps = jax.jit(lambda s: tr.experience.collect(s.params, s))(state)
    x = tr.experience
    data = jax.jit(x.episode_data)(state.env_params, eps)
    adv = jax.random.normal(jax.random.PRNGKey(2), traj.reward.shape)
    targets = jax.random.normal(jax.random.PRNGKey(3), traj.reward.shape)
    batch, adv_e, targets_e = episodic.by_episode((traj, adv, targets), 2)
    ids = jnp.array([5, 0, 3])  # a minibatch of three of the eight episodes
    mb_data = jax.tree.map(lambda x: x[ids], data)
    mb = Samples(*jax.tree.map(lambda x: x[ids], (batch, adv_e, targets_e)))
    kl = jnp.float32(0.7)

    def objective(logits, value, mask, m):
        return ppo_objective(logits, value, mask, m, cfg.agent, kl)

    grads = {}
    # With views, the update's logits are over each step's view: actions by their place in it.
    viewed = (mb if mb_data.choice is None
              else mb.replace(traj=mb.traj.replace(action=mb_data.choice)))
    for chunk in chunks:
        grads[chunk], _ = jax.jit(lambda p, d, m, c=chunk: x.minibatch_grads(
            p, state.env_params, d, m.replace(advantages=normalise(m.advantages)), objective,
            c))(state.params, mb_data, viewed)
    # PPO's own minibatch gradient (its chunk from the config).
    grads_of = x.grads_fn(eps, state.env_params, objective)
    grads["ppo"], _ = jax.jit(lambda p, m: grads_of(
        p, m.replace(advantages=normalise(m.advantages), ids=ids)))(state.params, mb)
    # Independent: the plain PPO loss on the observations, through the network's own call.
    steps = jnp.arange(env.num_users)
    obs = jax.jit(x.observations_at)(state.env_params, mb_data, steps)
    flat = merge_time_batch(mb.replace(traj=mb.traj.replace(obs=obs)))
    want = jax.jit(jax.grad(lambda p: ppo_loss(p, tr.network.apply, flat, cfg.agent, kl)[0]))(
        state.params)
    for chunk, g in grads.items():
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(want)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=2e-4, atol=1e-6,
                                       err_msg=f"chunk {chunk}")
    assert any(float(jnp.abs(x).max()) > 1e-4 for x in jax.tree.leaves(want))


def test_rollout_storage_grows_with_u_plus_q_per_episode():
    """Stored elements per episode: O(U + Q) (instance, decisions, per-step scalars), not the
    O(U x (U + Q)) of one observation per step. Shapes only (eval_shape)."""
    sizes = {}
    for u in (40, 80):
        cfg, env, tr = _trainer(num_users=u, num_rbs=2 * u, num_envs=2, episodes_per_rollout=1)
        state = jax.eval_shape(tr.init, jax.random.PRNGKey(0))
        out = jax.eval_shape(lambda s: tr.experience.collect(s.params, s), state)
        stored = sum(x.size for x in jax.tree.leaves((out[3], out[4])))
        sizes[u] = stored / cfg.run.num_envs
        assert sizes[u] <= 30 * (u + 2 * u), (u, sizes[u])
    assert sizes[80] < 2.2 * sizes[40]  # linear in U + Q, not quadratic


def test_config_needs_whole_episodes_per_minibatch():
    with pytest.raises(ValueError, match="num_minibatches"):
        TrainConfig.of(network="set", num_envs=3, episodes_per_rollout=1).validate()
    TrainConfig.of(network="set", num_envs=4, episodes_per_rollout=1).validate()
    TrainConfig.of(network="per_rb", num_users=4, num_envs=3, episodes_per_rollout=1).validate()


def test_chunk_size_respects_the_activation_budget():
    assert episodic.chunk_size(512, 5, 10, 32) == 5  # small: whole episodes
    c = episodic.chunk_size(2, 1000, 2000, 32)
    assert 1000 % c == 0 and 2 * c * 2000 * 32 <= episodic.MICRO_FLOATS
    assert episodic.chunk_size(10**6, 7, 10**4, 32) == 1  # never below one step
