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
from typing import Any

import flashbax as fbx
import jax
import jax.numpy as jnp
import optax
from flax import struct

from semcom_jax.agents.base import Trainer
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


def polyak(params, target, tau: float):
    return optax.incremental_update(params, target, tau)


class OffPolicy(Trainer):
    value_head = False

    def __init__(self, config, env, env_params):
        super().__init__(config, env, env_params)
        self.buffer = fbx.make_item_buffer(max_length=config.buffer_size, min_length=1,
                                           sample_batch_size=config.batch_size, add_batches=True)

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
        cfg = self.config
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

            carry, aux = jax.lax.scan(grad_step, carry, None, cfg.gradient_steps)
            return carry, jax.tree.map(jnp.mean, aux)

        def wait(carry):
            aux = jax.eval_shape(learn, carry)[1]
            return carry, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux)

        started = env_steps + cfg.steps_per_update >= cfg.learning_starts
        learner = Learner(params=state.params, target_params=state.target_params,
                          opt_state=state.opt_state)
        (learner, _), aux = jax.lax.cond(started, learn, wait, (learner, k_learn))
        new_state = state.replace(params=learner.params, target_params=learner.target_params,
                                  opt_state=learner.opt_state, buffer=buffer, vstate=vstate,
                                  obs=obs, key=key, update=state.update + 1)
        metrics = {**rollout_metrics(traj, self.env.num_encoders),
                   **self.schedule_metrics(learner.params, env_steps), **aux}
        return new_state, metrics
