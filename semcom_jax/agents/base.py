"""What PPO and the off-policy loop (SAC, DQN) share: construction, the runner state's
environment part, one update as a ``lax.scan`` step, and the whole run as one function of a key.

A subclass gives ``init_learner(key)`` (the learning state: parameters, optimiser state, ...),
``make_state(learner, obs, vstate, key, env_params)`` (its runner state, a ``flax.struct`` with at
least ``params``, ``vstate``, ``obs``, ``key``, ``update`` and ``env_params``), ``update`` and
``policy_logits`` (greedy evaluation). Every runner state carries ``env_params``, so a ``vmap``
can vary the physics, and ``update``, the counter all seeds share (see ``rollout.seed_axes``).
"""

from __future__ import annotations

import abc

import jax
import optax

from semcom_jax.agents import networks as nets
from semcom_jax.agents.config import TrainConfig
from semcom_jax.agents.rollout import seed_axes
from semcom_jax.env.environment import SemComEnv
from semcom_jax.env.types import Observation
from semcom_jax.env.wrappers import VecEnv
from semcom_jax.physics.params import EnvParams


class Trainer(abc.ABC):
    value_head: bool = True  # whether the network has a value output (PPO) or not (SAC, DQN)

    def __init__(self, config: TrainConfig, env: SemComEnv, env_params: EnvParams):
        config.validate()
        env.check_params(env_params)
        self.config = config
        self.env = env
        self.env_params = env_params
        self.venv = VecEnv(env, config.run.num_envs)
        self.network = nets.make_network(config.network, env, value_head=self.value_head)
        self.optimizer = optax.chain(optax.clip_by_global_norm(config.agent.max_grad_norm),
                                     optax.adam(self.learning_rate(), eps=self.adam_eps))

    adam_eps: float = 1e-8

    def learning_rate(self):
        return self.config.agent.lr

    def init_network(self, key: jax.Array):
        """Fresh parameters of one network."""
        obs = self.env.example_observation()
        return self.network.init(key, obs)

    # ------------------------------------------------------------------ to give

    @abc.abstractmethod
    def init_learner(self, key: jax.Array):
        """The learning state (whatever ``make_state`` takes)."""

    @abc.abstractmethod
    def make_state(self, learner, obs: Observation, vstate, key: jax.Array, env_params):
        """The runner state around a learning state and a reset env batch."""

    @abc.abstractmethod
    def update(self, state, _=None):
        """One update: ``(state, metrics)``, a ``lax.scan`` step."""

    @abc.abstractmethod
    def policy_logits(self, params, obs: Observation):
        """Per-action scores whose legal arg-max is the greedy action."""

    # ------------------------------------------------------------------ shared

    def init(self, key: jax.Array, env_params: EnvParams | None = None):
        k_net, k_env, k_run = jax.random.split(key, 3)
        return self.init_from(self.init_learner(k_net), (k_env, k_run), env_params)

    def init_from(self, learner, keys, env_params: EnvParams | None = None):
        """A runner state around a given learning state (e.g. one initialisation shared by every
        size of a padded sweep); ``keys`` is ``(env key, run key)`` or one key to split;
        ``env_params`` defaults to the trainer's."""
        k_env, k_run = keys if isinstance(keys, tuple) else jax.random.split(keys)
        env_params = self.env_params if env_params is None else env_params
        obs, vstate = self.venv.reset(k_env, env_params)
        return self.make_state(learner, obs, vstate, k_run, env_params)

    def run(self, state, num_updates: int):
        """``num_updates`` updates in one ``lax.scan``; metrics are stacked on axis 0."""
        return jax.lax.scan(self.update, state, None, num_updates)

    def train(self, key: jax.Array):
        """The whole training run as one function of a key (jit it, vmap it over seeds)."""
        return self.run(self.init(key), self.config.num_updates)

    seed_axes = staticmethod(seed_axes)
