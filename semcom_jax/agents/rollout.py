"""What every agent reports about the env steps of one update (same keys for PPO, SAC, DQN)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def rollout_metrics(reward, done, delay_violation, energy_violation, encoder,
                    num_encoders: int) -> dict:
    """Arrays are ``(T, B)`` over the rollout; ``encoder`` is -1 for an unserved user.

    ``train_return`` is the reward per finished episode; the violation and unserved rates are per
    user decision; ``encoder_share`` (K,) is over served users."""
    episodes = jnp.maximum(jnp.sum(done), 1)
    served = encoder >= 0
    enc = jnp.stack([jnp.sum(encoder == k) for k in range(num_encoders)])
    return {
        "train_return": jnp.sum(reward) / episodes,
        "delay_violation_rate": jnp.mean(delay_violation),
        "energy_violation_rate": jnp.mean(energy_violation),
        "unserved_rate": jnp.mean(~served),
        "encoder_share": enc / jnp.maximum(jnp.sum(served), 1),
    }


def seed_axes(state):
    """``vmap`` axes of a runner state over seeds: everything batched except what all seeds
    share: the episode clock and update counter (scalars, so ``VecEnv``'s reset and the
    off-policy learning gate stay real branches) and the env parameters, if the state holds
    them."""
    axes = jax.tree.map(lambda _: 0, state)
    axes = axes.replace(vstate=axes.vstate.replace(clock=None), update=None)
    if hasattr(state, "env_params"):
        axes = axes.replace(env_params=jax.tree.map(lambda _: None, state.env_params))
    return axes
