"""Discrete soft actor-critic (Christodoulou 2019) over the masked ``K x Q (+1)`` actions.

Actor: a masked categorical (PPO's policy network without its value head). Twin critics give
per-action Q-values (the same network again, two parameter sets stacked on a leading axis), with
Polyak-averaged targets. With ``pi`` the policy restricted to legal actions:

- critic target ``y = r + gamma (1 - done) sum_{a' legal} pi(a'|s') [min_i Qt_i(s', a')
  - alpha log pi(a'|s')]``;
- actor loss ``sum_{a legal} pi(a|s) [alpha log pi(a|s) - min_i Q_i(s, a)]``;
- temperature loss ``log alpha * (H(pi(.|s)) - H_target(s))``: alpha falls while the policy is
  more random than the target and rises when it is less. The target entropy is
  ``target_entropy_scale * log(number of legal actions in s)``, so it follows the mask.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from semcom_jax.agents import networks as nets
from semcom_jax.agents.config import need
from semcom_jax.agents.offpolicy import Learner, OffPolicy, OffPolicyConfig, polyak
from semcom_jax.agents.rollout import Transition
from semcom_jax.env.types import Observation


@dataclasses.dataclass(frozen=True)
class SACConfig(OffPolicyConfig):
    alpha_init: float = 0.1  # initial entropy temperature
    target_entropy_scale: float = 0.3  # target entropy = scale * log(number of legal actions)

    def validate(self, config) -> "SACConfig":
        super().validate(config)
        need(self, math.isfinite(self.alpha_init) and self.alpha_init > 0, "alpha_init",
             "must be finite and > 0")
        need(self, 0.0 <= self.target_entropy_scale <= 1.0, "target_entropy_scale",
             "must lie in [0, 1]")
        return self


@struct.dataclass
class SACParams:
    """SAC's learnt quantities; its optimiser state has the same structure (one state each)."""

    actor: Any  # policy network
    critic: Any  # twin critics, stacked on a leading axis of 2
    log_alpha: Any  # () float32, log of the entropy temperature


def target_entropy(mask, scale: float):
    return scale * jnp.log(jnp.maximum(jnp.sum(mask, axis=-1), 1).astype(jnp.float32))


def temperature_loss(log_alpha, entropy, target):
    return log_alpha * jnp.mean(jax.lax.stop_gradient(entropy - target))


def soft_value(logits, q, mask, alpha):
    """``sum_{a legal} pi(a) [q(a) - alpha log pi(a)]`` per row."""
    logp = nets.masked_log_probs(logits, mask)
    return jnp.sum(jnp.where(mask, jnp.exp(logp) * (q - alpha * logp), 0.0), axis=-1)


def twin_q(q_fn, critic, obs: Observation):
    """(2, B, A) per-action values of both critics."""
    return jax.vmap(lambda p: q_fn(p, obs))(critic)


def critic_loss(critic, target_critic, actor, log_alpha, q_fn, batch: Transition,
                gamma: float):
    """Soft Bellman error of both critics; the target's soft value sums over legal actions
    only. Returns ``(loss, (2, B, A) values of the batch's states)``."""
    alpha = jnp.exp(log_alpha)
    next_logits = q_fn(actor, batch.next_obs)
    q_next = jnp.min(twin_q(q_fn, target_critic, batch.next_obs), 0)
    y = batch.reward + gamma * (1.0 - batch.done.astype(jnp.float32)) * soft_value(
        next_logits, q_next, batch.next_obs.action_mask, alpha)
    y = jax.lax.stop_gradient(y)
    q = twin_q(q_fn, critic, batch.obs)
    q_a = jnp.take_along_axis(q, batch.action[None, :, None], axis=-1)[..., 0]  # (2, B)
    return 0.5 * jnp.mean(jnp.sum((q_a - y[None]) ** 2, axis=0)), q


def actor_loss(actor, q_min, log_alpha, q_fn, obs: Observation):
    """``E_s sum_{a legal} pi(a|s) [alpha log pi(a|s) - min_i Q_i(s, a)]``; ``q_min`` is held
    fixed. Returns ``(loss, per-state entropy)``."""
    alpha = jnp.exp(log_alpha)
    logp = nets.masked_log_probs(q_fn(actor, obs), obs.action_mask)
    loss = jnp.sum(jnp.where(obs.action_mask, jnp.exp(logp) * (alpha * logp - q_min), 0.0), -1)
    return jnp.mean(loss), nets.entropy(logp, obs.action_mask)


class SAC(OffPolicy):
    def init_learner(self, key):
        k_actor, k_q1, k_q2 = jax.random.split(key, 3)
        actor = self.init_network(k_actor)
        critic = jax.tree.map(lambda a, b: jnp.stack([a, b]), self.init_network(k_q1),
                              self.init_network(k_q2))
        params = SACParams(actor=actor, critic=critic,
                           log_alpha=jnp.log(jnp.float32(self.config.agent.alpha_init)))
        opt_state = SACParams(actor=self.optimizer.init(actor),
                              critic=self.optimizer.init(critic),
                              log_alpha=self.optimizer.init(params.log_alpha))
        return Learner(params=params, target_params=critic, opt_state=opt_state)

    def policy_logits(self, params: SACParams, obs: Observation):
        return self.q_values(params.actor, obs)

    def act(self, params: SACParams, key, obs: Observation, env_steps):
        return nets.sample(key, nets.masked_log_probs(self.policy_logits(params, obs),
                                                      obs.action_mask))

    def learn(self, learner: Learner, batch: Transition, key, env_steps):
        cfg = self.config.agent
        p = learner.params
        (q_loss, q_all), g_critic = jax.value_and_grad(critic_loss, has_aux=True)(
            p.critic, learner.target_params, p.actor, p.log_alpha, self.q_values, batch,
            cfg.gamma)
        q_min = jax.lax.stop_gradient(jnp.min(q_all, axis=0))
        (pi_loss, ent), g_actor = jax.value_and_grad(actor_loss, has_aux=True)(
            p.actor, q_min, p.log_alpha, self.q_values, batch.obs)
        h_target = target_entropy(batch.obs.action_mask, cfg.target_entropy_scale)
        a_loss, g_alpha = jax.value_and_grad(temperature_loss)(p.log_alpha, ent, h_target)
        grads = SACParams(actor=g_actor, critic=g_critic, log_alpha=g_alpha)
        parts = {}
        for name in ("actor", "critic", "log_alpha"):
            upd, opt = self.optimizer.update(getattr(grads, name),
                                             getattr(learner.opt_state, name), getattr(p, name))
            parts[name] = (optax.apply_updates(getattr(p, name), upd), opt)
        params = SACParams(**{k: v[0] for k, v in parts.items()})
        opt_state = SACParams(**{k: v[1] for k, v in parts.items()})
        target_critic = polyak(params.critic, learner.target_params, cfg.tau)
        return Learner(params=params, target_params=target_critic, opt_state=opt_state), {
            "q_loss": q_loss, "actor_loss": pi_loss, "alpha_loss": a_loss,
            "entropy": jnp.mean(ent), "target_entropy": jnp.mean(h_target),
            "q_mean": jnp.mean(q_min)}

    def schedule_metrics(self, params: SACParams, env_steps) -> dict:
        return {"alpha": jnp.exp(params.log_alpha)}
