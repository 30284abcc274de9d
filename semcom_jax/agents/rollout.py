"""What every agent does with the env batch: the rollout scan, the record of each step, the
metrics every agent reports, and the seed axes of a runner state; and PPO's experience stored
step by step (:class:`StepExperience`; by episode: :mod:`~semcom_jax.agents.episodic`).

One step record (:class:`Transition`) serves all three algorithms: PPO fills ``log_prob`` and
``value``, the off-policy agents ``next_obs`` (what they bootstrap from); the fields an
algorithm does not use stay ``None`` and cost nothing.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
from flax import struct

from semcom_jax.agents import networks as nets
from semcom_jax.env.types import Observation
from semcom_jax.env.wrappers import VecEnv


@struct.dataclass
class Transition:
    """One lock-step env step of the whole batch. Leaves are (B, ...) per step; a rollout stacks
    them on a leading time axis (T, B, ...)."""

    obs: Observation  # what the action was chosen on
    action: jnp.ndarray  # (B,) int32
    reward: jnp.ndarray  # (B,) float32
    done: jnp.ndarray  # (B,) bool, the episode ended with this step
    delay_violation: jnp.ndarray  # (B,) bool
    energy_violation: jnp.ndarray  # (B,) bool
    encoder: jnp.ndarray  # (B,) int32, -1 if the user was left unserved
    invalid_action: jnp.ndarray  # (B,) bool, the env refused the action (see the env docs)
    log_prob: Optional[jnp.ndarray] = None  # (B,) PPO: log pi(action | obs) when acting
    value: Optional[jnp.ndarray] = None  # (B,) PPO: V(obs)
    next_obs: Optional[Observation] = None  # off-policy: the observation after the step


def collect(venv: VecEnv, act: Callable, obs: Observation, vstate, key, env_params,
            num_steps: int, keep_next_obs: bool = False):
    """``num_steps`` lock-step steps of ``venv`` under ``act(key, obs) -> (action, extras)``
    (``extras``: a dict of other :class:`Transition` fields). Returns
    ``(obs, vstate, key, traj)`` with ``traj`` a time-major :class:`Transition`."""

    def step(carry, _):
        obs, vstate, key = carry
        key, k_act, k_env = jax.random.split(key, 3)
        action, extras = act(k_act, obs)
        next_obs, vstate, reward, done, info = venv.step(k_env, vstate, action, env_params)
        tr = Transition(obs=obs, action=action, reward=reward, done=done,
                        delay_violation=info["delay_violation"],
                        energy_violation=info["energy_violation"], encoder=info["encoder"],
                        invalid_action=info["invalid_action"],
                        next_obs=next_obs if keep_next_obs else None, **extras)
        return (next_obs, vstate, key), tr

    (obs, vstate, key), traj = jax.lax.scan(step, (obs, vstate, key), None, num_steps)
    return obs, vstate, key, traj


@struct.dataclass
class Samples:
    """What a PPO minibatch is drawn from: leaves (N, ...), one row per item (a step, or a
    whole episode with :class:`~semcom_jax.agents.episodic.EpisodeExperience`)."""

    traj: Transition
    advantages: jnp.ndarray  # (N, ...) float32
    targets: jnp.ndarray  # (N, ...) float32, the value targets
    ids: Optional[jnp.ndarray] = None  # (N,) int32, the episodes' rows in the stored rollout


def act_fn(network, params):
    """``act(key, obs) -> (action, extras)`` of :func:`collect` sampling the masked policy of an
    actor-critic ``network``: extras ``log_prob`` and ``value``."""

    def act(key, obs):
        logits, value = network.apply(params, obs)
        action, logp = nets.sample_masked(key, logits, obs.action_mask)
        return action, {"log_prob": logp, "value": value}

    return act


class StepExperience:
    """PPO's experience stored step by step (PureJaxRL's layout): each step keeps its whole
    observation, a minibatch is a random set of steps, and the loss reads the network on the
    stored observations. For the networks that read one observation (``per_rb``, ``mlp``).

    The interface :class:`~semcom_jax.agents.ppo.PPO` reads, shared with
    :class:`~semcom_jax.agents.episodic.EpisodeExperience`: ``num_items``, ``collect``,
    ``samples`` and ``grads_fn``."""

    def __init__(self, network, venv: VecEnv, num_steps: int):
        self.network, self.venv, self.num_steps = network, venv, num_steps
        self.num_items = num_steps * venv.num_envs  # steps per rollout

    def collect(self, params, state):
        """``(obs, vstate, key, traj, stored)``: ``num_steps`` steps of the batch of a runner
        ``state`` under the policy ``params``; ``stored`` (what ``grads_fn`` reads besides
        ``traj``) is None: ``traj`` holds every step's observation."""
        return (*collect(self.venv, act_fn(self.network, params), state.obs, state.vstate,
                         state.key, state.env_params, self.num_steps), None)

    def samples(self, traj: Transition, advantages, targets) -> Samples:
        """Time-major ``(T, B)`` rollout arrays as one row per step."""
        return Samples(*merge_time_batch((traj, advantages, targets)))

    def grads_fn(self, stored, env_params, objective: Callable):
        """``grads_of(params, samples) -> (grads, aux)``, the gradient of ``objective(logits,
        value, mask, samples) -> (loss, aux)`` on a minibatch of steps."""
        del stored, env_params  # the stored observations are all the loss reads

        def loss(params, mb: Samples):
            logits, value = self.network.apply(params, mb.traj.obs)
            return objective(logits, value, mb.traj.obs.action_mask, mb)

        def grads_of(params, mb: Samples):
            (_, aux), grads = jax.value_and_grad(loss, has_aux=True)(params, mb)
            return grads, aux

        return grads_of


def merge_time_batch(tree):
    """(T, B, ...) leaves to (T * B, ...), with explicit sizes (a zero-width leaf, such as
    features the env does not build, has no size to infer from)."""
    return jax.tree.map(lambda x: x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:]), tree)


def rollout_metrics(traj: Transition, num_encoders: int) -> dict:
    """What every agent reports about its rollout (arrays ``(T, B)``).

    ``train_return`` is the reward per finished episode; the violation, unserved and invalid-action
    rates are per user decision; ``encoder_share`` (K,) is over served users."""
    episodes = jnp.maximum(jnp.sum(traj.done), 1)
    served = traj.encoder >= 0
    enc = jnp.stack([jnp.sum(traj.encoder == k) for k in range(num_encoders)])
    return {
        "train_return": jnp.sum(traj.reward) / episodes,
        "delay_violation_rate": jnp.mean(traj.delay_violation),
        "energy_violation_rate": jnp.mean(traj.energy_violation),
        "unserved_rate": jnp.mean(~served),
        "invalid_action_rate": jnp.mean(traj.invalid_action),
        "encoder_share": enc / jnp.maximum(jnp.sum(served), 1),
    }


def seed_axes(state: Any):
    """``vmap`` axes of a runner state over seeds: everything batched except what all seeds
    share: the episode clock and update counter (scalars, so ``VecEnv``'s reset and the
    off-policy learning gate stay real branches) and the env parameters."""
    axes = jax.tree.map(lambda _: 0, state)
    return axes.replace(vstate=axes.vstate.replace(clock=None), update=None,
                        env_params=jax.tree.map(lambda _: None, state.env_params))
