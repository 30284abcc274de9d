"""Agents: ``config`` (the configs and the algorithm registry), ``networks``, ``rollout`` (step
records, the rollout scan, metrics, PPO's step-by-step experience), ``episodic`` (PPO's
experience by episode), ``base`` (the Trainer all algorithms share), ``ppo`` (the paper's
method) and ``offpolicy`` with ``sac`` and ``dqn``. Greedy play against the baselines is
:mod:`semcom_jax.baselines.evaluate`.

The built-in algorithms are registered here, one call each (``config.register``)."""

from semcom_jax.agents.config import register
from semcom_jax.agents.dqn import DQN, DQNConfig
from semcom_jax.agents.offpolicy import RUN_DEFAULTS
from semcom_jax.agents.ppo import PPO, PPOConfig, default_run
from semcom_jax.agents.sac import SAC, SACConfig

register("ppo", PPO, PPOConfig, defaults=default_run, chunk_max=10)
register("sac", SAC, SACConfig, defaults=RUN_DEFAULTS, chunk_max=100)
register("dqn", DQN, DQNConfig, defaults=RUN_DEFAULTS, chunk_max=100)
