"""The three algorithms' losses as top-level functions, against values computed by hand, and the
shared rollout's step record."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.agents.config import TrainConfig
from semcom_jax.agents.dqn import dqn_loss
from semcom_jax.agents.ppo import ppo_loss
from semcom_jax.agents.rollout import Samples, Transition, collect, rollout_metrics
from semcom_jax.agents.sac import actor_loss, critic_loss
from semcom_jax.env import Observation, SemComEnv, VecEnv

MASK = jnp.array([[True, True, False], [True, False, True]])


def _obs(features):
    f = jnp.asarray(features, jnp.float32)
    n = f.shape[0]
    return Observation(features=f, rb_features=jnp.zeros((n, 1, 3)), action_mask=MASK,
                       user_features=jnp.zeros((n, 1, 3)), user_status=jnp.zeros((n, 1), jnp.int32),
                       context=jnp.zeros((n, 3)))


def _batch(**kw):
    n = 2
    base = dict(obs=_obs([[1.0], [2.0]]), action=jnp.array([1, 2]), reward=jnp.array([1.0, -1.0]),
                done=jnp.array([False, True]), delay_violation=jnp.zeros(n, bool),
                energy_violation=jnp.zeros(n, bool), encoder=jnp.zeros(n, jnp.int32),
                invalid_action=jnp.zeros(n, bool))
    return Transition(**{**base, **kw})


def _log_softmax_legal(logits, mask):
    z = np.where(mask, logits, -np.inf)
    z = z - z.max()
    return np.where(mask, z - np.log(np.exp(z[mask]).sum()), -np.inf)


def test_ppo_clip_loss_by_hand():
    logits = np.array([0.5, -0.2, 3.0], np.float32)  # the same logits for every state
    params = {"logits": jnp.asarray(logits), "value": jnp.array([0.3, -0.4])}
    apply = lambda p, obs: (jnp.broadcast_to(p["logits"], (2, 3)), p["value"])  # noqa: E731
    old_logp = jnp.array([-1.5, -0.1])
    adv, targets = jnp.array([1.0, 3.0]), jnp.array([1.0, -1.0])
    cfg = TrainConfig.of(clip_eps=0.2, vf_coef=0.5, ent_coef=0.01)
    mb = Samples(traj=_batch(log_prob=old_logp), advantages=adv, targets=targets)
    loss, aux = ppo_loss(params, apply, mb, cfg.agent, 0.0)

    lp = [_log_softmax_legal(logits, np.asarray(MASK[i])) for i in range(2)]
    ratio = np.exp([lp[0][1] - (-1.5), lp[1][2] - (-0.1)])
    a = np.array([1.0, 3.0])
    a = (a - a.mean()) / (a.std() + 1e-8)  # [-1, 1]
    pg = -np.mean(np.minimum(ratio * a, np.clip(ratio, 0.8, 1.2) * a))
    v = 0.5 * np.mean((np.array([0.3, -0.4]) - np.array([1.0, -1.0])) ** 2)
    ent = np.mean([-(np.exp(lpr[np.isfinite(lpr)]) * lpr[np.isfinite(lpr)]).sum() for lpr in lp])
    np.testing.assert_allclose(float(aux["pg_loss"]), pg, rtol=1e-5)
    np.testing.assert_allclose(float(aux["value_loss"]), v, rtol=1e-5)
    np.testing.assert_allclose(float(aux["entropy"]), ent, rtol=1e-5)
    np.testing.assert_allclose(float(loss), pg + 0.5 * v - 0.01 * ent, rtol=1e-5)


def test_dqn_loss_by_hand():
    # Q(s) = w * features: state 0 -> [1, 2, 3] w-scaled; the target net uses other weights.
    q_fn = lambda w, obs: obs.features * w  # noqa: E731  (B, 1) * (3,) -> (B, 3)
    online, target = jnp.array([1.0, 2.0, 3.0]), jnp.array([10.0, 20.0, 30.0])
    nxt = _obs([[1.0], [5.0]])
    batch = _batch(next_obs=nxt)
    loss, q_mean = dqn_loss(online, target, q_fn, batch, gamma=0.5)
    # Row 0: legal next actions {0, 1}; online arg-max 1 (2 > 1) valued by the target: 20.
    # y0 = 1 + 0.5 * 20 = 11; Q(s0, a=1) = 1 * 2 = 2; error 9 -> Huber(delta 1) = 8.5.
    # Row 1: done, y1 = -1; Q(s1, a=2) = 2 * 3 = 6; error 7 -> Huber 6.5.
    np.testing.assert_allclose(float(loss), (8.5 + 6.5) / 2, rtol=1e-6)
    np.testing.assert_allclose(float(q_mean), (2.0 + 6.0) / 2, rtol=1e-6)


def test_sac_critic_and_actor_losses_by_hand():
    q_fn = lambda w, obs: obs.features * w  # noqa: E731
    critic = jnp.array([[1.0, 2.0, 3.0], [2.0, 1.0, 0.0]])  # two critics
    target = jnp.array([[0.0, 1.0, 5.0], [1.0, 0.0, 4.0]])
    actor = jnp.array([0.0, 0.0, 0.0])  # uniform over legal actions
    log_alpha = jnp.log(jnp.float32(0.5))
    nxt = _obs([[1.0], [1.0]])
    batch = _batch(next_obs=nxt)
    loss, q = critic_loss(critic, target, actor, log_alpha, q_fn, batch, gamma=0.9)
    # Next state 0: legal {0, 1}, pi = 1/2 each; min target Q = [0, 0]; soft value
    # = sum pi (q - alpha log pi) = 0.5 log 2. Row 1 is done.
    y = np.array([1.0 + 0.9 * 0.5 * math.log(2.0), -1.0])
    q_a = np.array([[1.0 * 2.0, 2.0 * 3.0], [1.0 * 1.0, 2.0 * 0.0]])  # (critic, row)
    np.testing.assert_allclose(float(loss), 0.5 * np.mean(((q_a - y) ** 2).sum(0)), rtol=1e-6)
    q_min = jnp.min(q, axis=0)
    a_loss, ent = actor_loss(actor, q_min, log_alpha, q_fn, batch.obs)
    # Row 0: q_min = [1, 1, .] on legal {0, 1}; row 1: q_min = [2, ., 0] on legal {0, 2}.
    # sum pi (alpha log pi - q) with pi = 1/2: alpha log(1/2) - mean of the legal q.
    per_row = np.array([0.5 * math.log(0.5) - 1.0, 0.5 * math.log(0.5) - 1.0])
    np.testing.assert_allclose(float(a_loss), per_row.mean(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(ent), [math.log(2.0)] * 2, rtol=1e-6)


def test_rollout_records_invalid_actions():
    env = SemComEnv(3, 4, reward="dense")
    venv, p = VecEnv(env, 8), env.default_params
    obs, vs = venv.reset(jax.random.PRNGKey(0), p)

    def always_zero(key, obs):  # RB 0 again and again: invalid from the second user on
        return jnp.zeros(obs.action_mask.shape[0], jnp.int32), {}

    def legal(key, obs):
        return env.actions.uniform_legal(key, obs.action_mask), {}

    _, _, _, bad = collect(venv, always_zero, obs, vs, jax.random.PRNGKey(1), p, 6)
    _, _, _, good = collect(venv, legal, obs, vs, jax.random.PRNGKey(1), p, 6)
    np.testing.assert_allclose(float(rollout_metrics(bad, 3)["invalid_action_rate"]), 2 / 3)
    assert float(rollout_metrics(good, 3)["invalid_action_rate"]) == 0.0
    assert bad.next_obs is None and good.log_prob is None  # unused fields stay empty
