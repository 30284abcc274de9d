"""The loop shared by the off-policy agents (SAC, DQN), in one compiled function like PPO's.

One *update* steps the lock-step ``VecEnv`` for ``episodes_per_rollout * U`` steps with the
agent's behaviour policy, adds the ``num_envs * steps`` transitions to a replay buffer that lives
on the device (a flashbax item buffer: uniform sampling, fixed capacity, a pytree that
checkpoints with the rest of the state), then takes ``gradient_steps`` gradient steps on
minibatches sampled from it. Learning waits for ``learning_starts`` env steps; that test is on the
update counter, which (like the episode clock) is shared by all seeds, so under the seed ``vmap``
it stays a real branch.

Subclasses give ``_init_learner`` (parameters, targets, optimiser state), ``_act`` (behaviour
policy) and ``_learn`` (one gradient step), and ``policy_logits`` for greedy evaluation.
"""

from __future__ import annotations

import abc
from typing import Any

import flashbax as fbx
import jax
import jax.numpy as jnp
import optax
from flax import struct

from semcom_jax.agents import networks as nets
from semcom_jax.agents.config import TrainConfig
from semcom_jax.agents.rollout import rollout_metrics, seed_axes
from semcom_jax.env import SemComEnv
from semcom_jax.params import EnvParams
from semcom_jax.types import Observation
from semcom_jax.wrappers import VecEnv, VecState


@struct.dataclass
class OffPolicyState:
    params: Any  # what acts and is evaluated (DQN: the Q-network; SAC: actor, critics, log alpha)
    target_params: Any  # target network(s)
    opt_state: Any
    buffer: Any  # flashbax buffer state
    vstate: VecState
    obs: Observation
    key: jax.Array
    update: jnp.ndarray  # () int32, updates done; the same for every seed


@struct.dataclass
class Replay:
    """One stored transition. ``next_*`` is the observation after the step; when ``done`` it
    belongs to the next episode and is not bootstrapped from."""

    features: jnp.ndarray  # (F,)
    rb_features: jnp.ndarray  # (Q, 3)
    mask: jnp.ndarray  # (A,) bool
    action: jnp.ndarray  # () int32
    reward: jnp.ndarray  # () float32
    done: jnp.ndarray  # () bool
    next_features: jnp.ndarray
    next_rb_features: jnp.ndarray
    next_mask: jnp.ndarray


def polyak(params, target, tau: float):
    return optax.incremental_update(params, target, tau)


class OffPolicy(abc.ABC):
    def __init__(self, config: TrainConfig, env: SemComEnv, env_params: EnvParams):
        config.validate()
        env.check_params(env_params)
        self.config = config
        self.env = env
        self.env_params = env_params
        self.venv = VecEnv(env, config.num_envs)
        self.network = nets.make_network(config.network, env, config.hidden, config.rb_hidden,
                                         value_head=False)
        self.optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                                     optax.adam(config.lr))
        self.buffer = fbx.make_item_buffer(max_length=config.buffer_size, min_length=1,
                                           sample_batch_size=config.batch_size, add_batches=True)

    # ------------------------------------------------------------------ to override

    @abc.abstractmethod
    def _init_learner(self, key):
        """See the module docstring."""

    @abc.abstractmethod
    def _act(self, params, key, obs: Observation, env_steps):
        """See the module docstring."""

    @abc.abstractmethod
    def _learn(self, params, target_params, opt_state, batch: Replay, key, env_steps):
        """See the module docstring."""

    def _schedule_metrics(self, params, env_steps) -> dict:
        return {}

    @abc.abstractmethod
    def policy_logits(self, params, obs: Observation):
        """See the module docstring."""

    # ------------------------------------------------------------------ shared

    def _q_values(self, params, features, rb_features):
        return self.network.apply(params, features, rb_features)[0]

    def init(self, key: jax.Array) -> OffPolicyState:
        k_net, k_env, k_run = jax.random.split(key, 3)
        params, target_params, opt_state = self._init_learner(k_net)
        obs, vstate = self.venv.reset(k_env, self.env_params)
        one = jax.tree.map(lambda x: x[0], obs)
        item = Replay(one.features, one.rb_features, one.action_mask, jnp.zeros((), jnp.int32),
                      jnp.zeros((), jnp.float32), jnp.zeros((), bool), one.features,
                      one.rb_features, one.action_mask)
        return OffPolicyState(params=params, target_params=target_params, opt_state=opt_state,
                              buffer=self.buffer.init(item), vstate=vstate, obs=obs, key=k_run,
                              update=jnp.zeros((), jnp.int32))

    def update(self, state: OffPolicyState, _=None):
        cfg = self.config
        env_steps = state.update * cfg.steps_per_update  # collected before this update

        def step(carry, _):
            obs, vstate, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            action = self._act(state.params, k_act, obs, env_steps)
            obs2, vstate, reward, done, info = self.venv.step(k_env, vstate, action,
                                                              self.env_params)
            tr = Replay(obs.features, obs.rb_features, obs.action_mask, action, reward, done,
                        obs2.features, obs2.rb_features, obs2.action_mask)
            return (obs2, vstate, key), (tr, info)

        (obs, vstate, key), (traj, info) = jax.lax.scan(
            step, (state.obs, state.vstate, state.key), None, cfg.num_steps)
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), traj)
        buffer = self.buffer.add(state.buffer, flat)
        key, k_learn = jax.random.split(key)

        def learn(carry):
            def grad_step(c, _):
                params, target, opt_state, key = c
                key, k_sample, k_loss = jax.random.split(key, 3)
                batch = self.buffer.sample(buffer, k_sample).experience
                (params, target, opt_state), aux = self._learn(params, target, opt_state, batch,
                                                               k_loss, env_steps)
                return (params, target, opt_state, key), aux

            carry, aux = jax.lax.scan(grad_step, carry, None, cfg.gradient_steps)
            return carry, jax.tree.map(jnp.mean, aux)

        def wait(carry):
            aux = jax.eval_shape(learn, carry)[1]
            return carry, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux)

        started = env_steps + cfg.steps_per_update >= cfg.learning_starts
        (params, target, opt_state, _), aux = jax.lax.cond(
            started, learn, wait, (state.params, state.target_params, state.opt_state, k_learn))
        new_state = OffPolicyState(params=params, target_params=target, opt_state=opt_state,
                                   buffer=buffer, vstate=vstate, obs=obs, key=key,
                                   update=state.update + 1)
        metrics = {**rollout_metrics(traj.reward, traj.done, info["delay_violation"],
                                     info["energy_violation"], info["encoder"],
                                     self.env.num_encoders),
                   **self._schedule_metrics(params, env_steps), **aux}
        return new_state, metrics

    def run(self, state: OffPolicyState, num_updates: int):
        """``num_updates`` updates in one ``lax.scan``; metrics are stacked on axis 0."""
        return jax.lax.scan(self.update, state, None, num_updates)

    def train(self, key: jax.Array):
        """The whole training run as one function of a key (jit it, vmap it over seeds)."""
        return self.run(self.init(key), self.config.num_updates)

    seed_axes = staticmethod(seed_axes)
