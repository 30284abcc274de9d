"""Double DQN (van Hasselt et al. 2016) over the masked ``K x Q (+1)`` actions.

The Q-network is the policy network of PPO without its value head (same sizes). Acting is
epsilon-greedy among *legal* actions (the random branch draws a uniform legal action), the
bootstrap target picks the next action by the online network's arg-max over the next state's
legal actions and values it with the target network, which follows by Polyak averaging. Epsilon
falls linearly from ``eps_start`` to ``eps_end`` over ``eps_fraction * total_env_steps``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import optax

from semcom_jax.agents import networks as nets
from semcom_jax.agents.config import need
from semcom_jax.agents.offpolicy import Learner, OffPolicy, OffPolicyConfig, polyak
from semcom_jax.agents.rollout import Transition
from semcom_jax.env.types import Observation


@dataclasses.dataclass(frozen=True)
class DQNConfig(OffPolicyConfig):
    eps_start: float = 1.0  # epsilon-greedy, linear from eps_start to eps_end ...
    eps_end: float = 0.05
    eps_fraction: float = 0.2  # ... over this fraction of total_env_steps

    def validate(self, config) -> "DQNConfig":
        super().validate(config)
        for name in ("eps_start", "eps_end", "eps_fraction"):
            need(self, 0.0 <= getattr(self, name) <= 1.0, name, "must lie in [0, 1]")
        need(self, self.eps_end <= self.eps_start, "eps_end", "must be <= eps_start")
        return self


def linear_epsilon(env_steps, start: float, end: float, decay_steps: float):
    frac = jnp.clip(env_steps / jnp.maximum(decay_steps, 1.0), 0.0, 1.0)
    return start + frac * (end - start)


def double_q_target(q_next_online, q_next_target, next_mask, reward, done, gamma: float):
    """``r + gamma (1 - done) Q_target(s', argmax_{a' legal} Q_online(s', a'))``."""
    a_star = jnp.argmax(nets.mask_logits(q_next_online, next_mask), axis=-1)
    q_next = jnp.take_along_axis(q_next_target, a_star[:, None], axis=-1)[:, 0]
    return reward + gamma * (1.0 - done.astype(jnp.float32)) * q_next


def dqn_loss(params, target_params, q_fn, batch: Transition, gamma: float):
    """Huber loss of ``Q(s, a)`` against the double-Q target (no gradient through the target).
    ``q_fn(params, obs)`` gives per-action values. Returns ``(loss, mean Q(s, a))``."""
    y = jax.lax.stop_gradient(double_q_target(
        q_fn(params, batch.next_obs), q_fn(target_params, batch.next_obs),
        batch.next_obs.action_mask, batch.reward, batch.done, gamma))
    q_a = jnp.take_along_axis(q_fn(params, batch.obs), batch.action[:, None], axis=-1)[:, 0]
    return jnp.mean(optax.huber_loss(q_a, y)), jnp.mean(q_a)


class DQN(OffPolicy):
    def init_learner(self, key):
        params = self.init_network(key)
        return Learner(params=params, target_params=params,
                       opt_state=self.optimizer.init(params))

    def epsilon(self, env_steps):
        cfg = self.config.agent
        return linear_epsilon(env_steps, cfg.eps_start, cfg.eps_end,
                              cfg.eps_fraction * self.config.run.total_env_steps)

    def policy_logits(self, params, obs: Observation):
        return self.q_values(params, obs)

    def act(self, params, key, obs: Observation, env_steps):
        k_explore, k_random = jax.random.split(key)
        q = self.policy_logits(params, obs)
        greedy = jnp.argmax(nets.mask_logits(q, obs.action_mask), axis=-1).astype(jnp.int32)
        random = self.env.actions.uniform_legal(k_random, obs.action_mask)
        explore = jax.random.uniform(k_explore, greedy.shape) < self.epsilon(env_steps)
        return jnp.where(explore, random, greedy)

    def learn(self, learner: Learner, batch: Transition, key, env_steps):
        cfg = self.config.agent
        (loss, q_mean), grads = jax.value_and_grad(dqn_loss, has_aux=True)(
            learner.params, learner.target_params, self.q_values, batch, cfg.gamma)
        updates, opt_state = self.optimizer.update(grads, learner.opt_state, learner.params)
        params = optax.apply_updates(learner.params, updates)
        target_params = polyak(params, learner.target_params, cfg.tau)
        return (Learner(params=params, target_params=target_params, opt_state=opt_state),
                {"q_loss": loss, "q_mean": q_mean})

    def schedule_metrics(self, params, env_steps) -> dict:
        return {"epsilon": self.epsilon(env_steps)}
