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

import jax
import jax.numpy as jnp
import optax

from semcom_jax.agents import networks as nets
from semcom_jax.agents.offpolicy import OffPolicy, Replay, polyak
from semcom_jax.types import Observation


def target_entropy(mask, scale: float):
    return scale * jnp.log(jnp.maximum(jnp.sum(mask, axis=-1), 1).astype(jnp.float32))


def temperature_loss(log_alpha, entropy, target):
    return log_alpha * jnp.mean(jax.lax.stop_gradient(entropy - target))


def soft_value(logits, q, mask, alpha):
    """``sum_{a legal} pi(a) [q(a) - alpha log pi(a)]`` per row."""
    logp = nets.masked_log_probs(logits, mask)
    return jnp.sum(jnp.where(mask, jnp.exp(logp) * (q - alpha * logp), 0.0), axis=-1)


class SAC(OffPolicy):
    def _init_learner(self, key):
        k_actor, k_q1, k_q2 = jax.random.split(key, 3)
        x = (jnp.zeros((1, self.env.observation_size)), jnp.zeros((1, self.env.num_rbs, 3)))
        actor = self.network.init(k_actor, *x)
        critic = jax.tree.map(lambda a, b: jnp.stack([a, b]), self.network.init(k_q1, *x),
                              self.network.init(k_q2, *x))
        params = {"actor": actor, "critic": critic,
                  "log_alpha": jnp.log(jnp.float32(self.config.alpha_init))}
        opt_state = {k: self.optimizer.init(v) for k, v in params.items()}
        return params, critic, opt_state

    def policy_logits(self, params, obs: Observation):
        return self.network.apply(params["actor"], obs.features, obs.rb_features)[0]

    def _twin_q(self, critic, features, rb_features):
        return jax.vmap(lambda p: self._q_values(p, features, rb_features))(critic)  # (2, B, A)

    def _act(self, params, key, obs: Observation, env_steps):
        return nets.sample(key, nets.masked_log_probs(self.policy_logits(params, obs),
                                                      obs.action_mask))

    def _learn(self, params, target_critic, opt_state, b: Replay, key, env_steps):
        cfg = self.config
        alpha = jnp.exp(params["log_alpha"])
        next_logits = self.network.apply(params["actor"], b.next_features, b.next_rb_features)[0]
        q_next = jnp.min(self._twin_q(target_critic, b.next_features, b.next_rb_features), 0)
        y = b.reward + cfg.gamma * (1.0 - b.done.astype(jnp.float32)) * soft_value(
            next_logits, q_next, b.next_mask, alpha)
        y = jax.lax.stop_gradient(y)

        def critic_loss(critic):
            q = self._twin_q(critic, b.features, b.rb_features)
            q_a = jnp.take_along_axis(q, b.action[None, :, None], axis=-1)[..., 0]  # (2, B)
            return 0.5 * jnp.mean(jnp.sum((q_a - y[None]) ** 2, axis=0)), q

        (q_loss, q_all), g_critic = jax.value_and_grad(critic_loss, has_aux=True)(
            params["critic"])
        q_min = jax.lax.stop_gradient(jnp.min(q_all, axis=0))

        def actor_loss(actor):
            logits = self.network.apply(actor, b.features, b.rb_features)[0]
            logp = nets.masked_log_probs(logits, b.mask)
            loss = jnp.sum(jnp.where(b.mask, jnp.exp(logp) * (alpha * logp - q_min), 0.0), -1)
            return jnp.mean(loss), nets.entropy(logp, b.mask)

        (pi_loss, ent), g_actor = jax.value_and_grad(actor_loss, has_aux=True)(params["actor"])
        h_target = target_entropy(b.mask, cfg.target_entropy_scale)
        a_loss, g_alpha = jax.value_and_grad(temperature_loss)(params["log_alpha"], ent,
                                                                h_target)
        grads = {"actor": g_actor, "critic": g_critic, "log_alpha": g_alpha}
        new_params, new_opt = {}, {}
        for k in params:
            upd, new_opt[k] = self.optimizer.update(grads[k], opt_state[k], params[k])
            new_params[k] = optax.apply_updates(params[k], upd)
        target_critic = polyak(new_params["critic"], target_critic, cfg.tau)
        return (new_params, target_critic, new_opt), {
            "q_loss": q_loss, "actor_loss": pi_loss, "alpha_loss": a_loss,
            "entropy": jnp.mean(ent), "target_entropy": jnp.mean(h_target),
            "q_mean": jnp.mean(q_min)}

    def _schedule_metrics(self, params, env_steps) -> dict:
        return {"alpha": jnp.exp(params["log_alpha"])}
