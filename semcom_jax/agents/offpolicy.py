"""The loop shared by the off-policy agents (SAC, DQN), in one compiled function like PPO's.

One *update* steps the lock-step ``VecEnv`` for ``episodes_per_rollout * U`` steps with the
agent's behaviour policy, adds the ``num_envs * steps`` transitions to a replay buffer that lives
on the device (a flashbax item buffer: uniform sampling, fixed capacity, a pytree that
checkpoints with the rest of the state), then takes ``gradient_steps`` gradient steps on
minibatches sampled from it. Learning waits for ``learning_starts`` env steps; that test is on the
update counter, which (like the episode clock) is shared by all seeds, so under the seed ``vmap``
it stays a real branch.

Subclasses give ``init_learner`` (parameters, targets, optimiser state), ``act`` (behaviour
policy) and ``learn`` (one gradient step), and ``policy_logits`` for greedy evaluation. Their
losses are top-level functions of their modules.
"""

from __future__ import annotations

import abc
import dataclasses
import math
from typing import Any

import flashbax as fbx
import jax
import jax.numpy as jnp
import optax
from flax import struct

from semcom_jax.agents.base import Trainer
from semcom_jax.agents.config import need
from semcom_jax.agents.rollout import Transition, collect, merge_time_batch, rollout_metrics
from semcom_jax.env.types import Observation
from semcom_jax.env.wrappers import VecState


@struct.dataclass
class Learner:
    params: Any  # what acts and is evaluated (DQN: the Q-network; SAC: SACParams)
    target_params: Any  # target network(s)
    opt_state: Any


@struct.dataclass
class OffPolicyState:
    params: Any
    target_params: Any
    opt_state: Any
    buffer: Any  # flashbax buffer state; items are single Transitions with next_obs
    vstate: VecState
    obs: Observation
    key: jax.Array
    update: jnp.ndarray  # () int32, updates done; the same for every seed
    env_params: Any  # EnvParams the envs run with: in the state, so a vmap can vary them


@dataclasses.dataclass(frozen=True)
class OffPolicyConfig:
    """What SAC and DQN share: replay on the device, one update = one rollout + gradient
    steps."""

    lr: float = 1e-3
    gamma: float = 1.0
    max_grad_norm: float = 10.0
    buffer_size: int = 50_000  # transitions per seed
    batch_size: int = 256
    gradient_steps: int = 8  # gradient steps per update (after each rollout)
    learning_starts: int = 10_000  # env steps collected before the first gradient step
    tau: float = 0.005  # Polyak rate of the target networks, per gradient step

    def validate(self, config) -> "OffPolicyConfig":
        for name in ("lr", "max_grad_norm"):
            v = getattr(self, name)
            need(self, math.isfinite(v) and v > 0, name, "must be finite and > 0")
        need(self, 0.0 <= self.gamma <= 1.0, "gamma", "must lie in [0, 1]")
        for name in ("batch_size", "gradient_steps"):
            need(self, getattr(self, name) >= 1, name, "must be >= 1")
        need(self, self.learning_starts >= 0, "learning_starts", "must be >= 0")
        need(self, self.buffer_size >= config.steps_per_update, "buffer_size",
             f"must hold at least one rollout of {config.steps_per_update} transitions")
        need(self, self.batch_size <= self.buffer_size, "batch_size",
             f"must be <= buffer_size ({self.buffer_size})")
        need(self, 0.0 < self.tau <= 1.0, "tau", "must lie in (0, 1]")
        return self


# The usual regime of SAC and DQN: fewer envs per update, one episode per rollout, several
# small gradient steps on replayed data. 3 M steps, not a whole number of updates: DQN's
# exploration schedule is a fraction of the budget, so rounding would move published figures.
RUN_DEFAULTS = {"num_envs": 256, "episodes_per_rollout": 1, "total_env_steps": 3_000_000}


def polyak(params, target, tau: float):
    return optax.incremental_update(params, target, tau)


class OffPolicy(Trainer):
    value_head = False

    def __init__(self, config, env, env_params):
        super().__init__(config, env, env_params)
        self.buffer = fbx.make_item_buffer(max_length=config.agent.buffer_size, min_length=1,
                                           sample_batch_size=config.agent.batch_size,
                                           add_batches=True)

    # ------------------------------------------------------------------ to override

    @abc.abstractmethod
    def act(self, params, key, obs: Observation, env_steps):
        """Behaviour action of a batch of observations."""

    @abc.abstractmethod
    def learn(self, learner: Learner, batch: Transition, key, env_steps):
        """One gradient step: ``(learner, metrics)``."""

    def schedule_metrics(self, params, env_steps) -> dict:
        return {}

    # ------------------------------------------------------------------ shared

    def q_values(self, params, obs: Observation):
        return self.network.apply(params, obs)[0]

    def make_state(self, learner: Learner, obs, vstate, key, env_params) -> OffPolicyState:
        one = jax.tree.map(lambda x: x[0], obs)
        zero = jnp.zeros((), jnp.int32)
        item = Transition(obs=one, action=zero, reward=jnp.zeros((), jnp.float32),
                          done=jnp.zeros((), bool), delay_violation=jnp.zeros((), bool),
                          energy_violation=jnp.zeros((), bool), encoder=zero,
                          invalid_action=jnp.zeros((), bool), next_obs=one)
        return OffPolicyState(params=learner.params, target_params=learner.target_params,
                              opt_state=learner.opt_state, buffer=self.buffer.init(item),
                              vstate=vstate, obs=obs, key=key, update=zero,
                              env_params=env_params)

    def update(self, state: OffPolicyState, _=None):
        cfg, agent = self.config, self.config.agent
        env_steps = state.update * cfg.steps_per_update  # collected before this update
        obs, vstate, key, traj = collect(
            self.venv, lambda k, o: (self.act(state.params, k, o, env_steps), {}),
            state.obs, state.vstate, state.key, state.env_params, cfg.num_steps,
            keep_next_obs=True)
        flat = merge_time_batch(traj)
        buffer = self.buffer.add(state.buffer, flat)
        key, k_learn = jax.random.split(key)

        def learn(carry):
            def grad_step(c, _):
                learner, key = c
                key, k_sample, k_loss = jax.random.split(key, 3)
                batch = self.buffer.sample(buffer, k_sample).experience
                learner, aux = self.learn(learner, batch, k_loss, env_steps)
                return (learner, key), aux

            carry, aux = jax.lax.scan(grad_step, carry, None, agent.gradient_steps)
            return carry, jax.tree.map(jnp.mean, aux)

        def wait(carry):
            aux = jax.eval_shape(learn, carry)[1]
            return carry, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux)

        started = env_steps + cfg.steps_per_update >= agent.learning_starts
        learner = Learner(params=state.params, target_params=state.target_params,
                          opt_state=state.opt_state)
        (learner, _), aux = jax.lax.cond(started, learn, wait, (learner, k_learn))
        new_state = state.replace(params=learner.params, target_params=learner.target_params,
                                  opt_state=learner.opt_state, buffer=buffer, vstate=vstate,
                                  obs=obs, key=key, update=state.update + 1)
        metrics = {**rollout_metrics(traj, self.env.num_encoders),
                   **self.schedule_metrics(learner.params, env_steps), **aux}
        return new_state, metrics
