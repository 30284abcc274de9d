"""Double DQN (van Hasselt et al. 2016) over the masked ``K x Q (+1)`` actions.

The Q-network is the policy network of PPO without its value head (same sizes). Acting is
epsilon-greedy among *legal* actions (the random branch draws a uniform legal action), the
bootstrap target picks the next action by the online network's arg-max over the next state's
legal actions and values it with the target network, which follows by Polyak averaging. Epsilon
falls linearly from ``eps_start`` to ``eps_end`` over ``eps_fraction * total_env_steps``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from semcom_jax.agents import networks as nets
from semcom_jax.agents.offpolicy import OffPolicy, Replay, polyak
from semcom_jax.env import uniform_legal_action
from semcom_jax.types import Observation


def linear_epsilon(env_steps, start: float, end: float, decay_steps: float):
    frac = jnp.clip(env_steps / jnp.maximum(decay_steps, 1.0), 0.0, 1.0)
    return start + frac * (end - start)


def double_q_target(q_next_online, q_next_target, next_mask, reward, done, gamma: float):
    """``r + gamma (1 - done) Q_target(s', argmax_{a' legal} Q_online(s', a'))``."""
    a_star = jnp.argmax(nets.mask_logits(q_next_online, next_mask), axis=-1)
    q_next = jnp.take_along_axis(q_next_target, a_star[:, None], axis=-1)[:, 0]
    return reward + gamma * (1.0 - done.astype(jnp.float32)) * q_next


class DQN(OffPolicy):
    def _init_learner(self, key):
        params = self.network.init(key, jnp.zeros((1, self.env.observation_size)),
                                   jnp.zeros((1, self.env.num_rbs, 3)))
        return params, params, self.optimizer.init(params)

    def epsilon(self, env_steps):
        cfg = self.config
        return linear_epsilon(env_steps, cfg.eps_start, cfg.eps_end,
                              cfg.eps_fraction * cfg.total_env_steps)

    def policy_logits(self, params, obs: Observation):
        return self._q_values(params, obs.features, obs.rb_features)

    def _act(self, params, key, obs: Observation, env_steps):
        k_explore, k_random = jax.random.split(key)
        q = self.policy_logits(params, obs)
        greedy = jnp.argmax(nets.mask_logits(q, obs.action_mask), axis=-1).astype(jnp.int32)
        random = uniform_legal_action(k_random, obs.action_mask, self.env.num_rbs)
        explore = jax.random.uniform(k_explore, greedy.shape) < self.epsilon(env_steps)
        return jnp.where(explore, random, greedy)

    def _learn(self, params, target_params, opt_state, b: Replay, key, env_steps):
        cfg = self.config
        q_next_online = self._q_values(params, b.next_features, b.next_rb_features)
        q_next_target = self._q_values(target_params, b.next_features, b.next_rb_features)
        y = jax.lax.stop_gradient(double_q_target(q_next_online, q_next_target, b.next_mask,
                                                  b.reward, b.done, cfg.gamma))

        def loss_fn(p):
            q = self._q_values(p, b.features, b.rb_features)
            q_a = jnp.take_along_axis(q, b.action[:, None], axis=-1)[:, 0]
            return jnp.mean(optax.huber_loss(q_a, y)), jnp.mean(q_a)

        (loss, q_mean), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = self.optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        target_params = polyak(params, target_params, cfg.tau)
        return (params, target_params, opt_state), {"q_loss": loss, "q_mean": q_mean}

    def _schedule_metrics(self, params, env_steps) -> dict:
        return {"epsilon": self.epsilon(env_steps)}
