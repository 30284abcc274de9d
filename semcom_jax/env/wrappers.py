"""Auto-reset for a single env and for a synchronised batch.

Every episode lasts exactly ``U`` steps, so a batch of envs reset together stays in lock-step
forever. :class:`VecEnv` exploits this: it keeps one *shared* episode clock (a scalar that stays
unbatched even when the whole thing is ``vmap``-ed over seeds) and resets the batch under a
``lax.cond`` on that clock, so fresh episodes are drawn once every ``U`` steps instead of at every
step, as a generic per-env auto-reset (:class:`AutoResetEnv`) must do under ``vmap`` (there
``lax.cond`` on a batched predicate turns into a select that evaluates both branches).
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
from flax import struct

from semcom_jax.env.environment import SemComEnv
from semcom_jax.env.types import EnvState, Observation
from semcom_jax.physics.params import EnvParams


def _select(pred, on_true, on_false):
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class AutoResetEnv:
    """Single-env auto-reset: when an episode ends, the returned obs/state start a new one.

    Simple and composable with any ``vmap``, at the cost of drawing a reset every step."""

    def __init__(self, env: SemComEnv):
        self.env = env

    def __getattr__(self, name):  # num_actions, spaces, default_params, ... of the env
        return getattr(self.env, name)

    def reset(self, key, params: Optional[EnvParams] = None):
        return self.env.reset(key, params)

    def step(self, key, state: EnvState, action, params: Optional[EnvParams] = None):
        k_step, k_reset = jax.random.split(key)
        obs, new_state, reward, done, info = self.env.step(k_step, state, action, params)
        obs_r, state_r = self.env.reset(k_reset, params)
        obs, new_state = _select(done, (obs_r, state_r), (obs, new_state))
        return obs, new_state, reward, done, info


@struct.dataclass
class VecState:
    env_state: EnvState  # batched over num_envs
    clock: jnp.ndarray  # () int32, step within the current episode, shared by the batch


class VecEnv:
    """``num_envs`` environments in lock-step with auto-reset; observations are batched."""

    def __init__(self, env: SemComEnv, num_envs: int):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.env = env
        self.num_envs = num_envs

    def reset(self, key, params: EnvParams) -> tuple[Observation, VecState]:
        keys = jax.random.split(key, self.num_envs)
        obs, states = jax.vmap(self.env.reset, (0, None))(keys, params)
        return obs, VecState(env_state=states, clock=jnp.zeros((), jnp.int32))

    def step(self, key, vstate: VecState, actions, params: EnvParams):
        """Returns ``(obs, vstate, reward (B,), done (B,), info)``; on the last step of an episode
        ``obs``/``vstate`` already belong to the next episode (same-step auto-reset)."""
        k_step, k_reset = jax.random.split(key)
        keys = jax.random.split(k_step, self.num_envs)
        states, reward, done, info = jax.vmap(self.env.transition, (0, 0, 0, None))(
            keys, vstate.env_state, actions, params)
        episode_over = vstate.clock + 1 >= self.env.num_users
        # Only the state goes through the branch; the observation is built once, after it.
        states = jax.lax.cond(
            episode_over,
            lambda: jax.vmap(lambda k: self.env.reset_state(k, params))(
                jax.random.split(k_reset, self.num_envs)),
            lambda: states,
        )
        obs = jax.vmap(self.env.observation, (0, None))(states, params)
        clock = jnp.where(episode_over, 0, vstate.clock + 1).astype(jnp.int32)
        return obs, VecState(env_state=states, clock=clock), reward, done, info


@struct.dataclass
class LogState:
    env_state: Any
    episode_return: jnp.ndarray  # () float32, return of the episode so far
    episode_length: jnp.ndarray  # () int32
    returned_episode_return: jnp.ndarray  # () float32, return of the last finished episode
    returned_episode_length: jnp.ndarray  # () int32


class LogWrapper:
    """Episode statistics in ``info`` (PureJaxRL's ``LogWrapper`` convention):
    ``returned_episode_returns`` / ``returned_episode_lengths`` (the last finished episode's)
    and ``returned_episode`` (True on the step that finishes one). Wrap an auto-resetting env
    (``LogWrapper(AutoResetEnv(env))``) so that episodes follow one another."""

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    def reset(self, key, params: Optional[EnvParams] = None):
        obs, env_state = self.env.reset(key, params)
        zero_f, zero_i = jnp.float32(0.0), jnp.int32(0)
        return obs, LogState(env_state, zero_f, zero_i, zero_f, zero_i)

    def step(self, key, state: LogState, action, params: Optional[EnvParams] = None):
        obs, env_state, reward, done, info = self.env.step(key, state.env_state, action, params)
        ret = state.episode_return + reward
        length = state.episode_length + 1
        new = LogState(
            env_state=env_state,
            episode_return=jnp.where(done, 0.0, ret).astype(jnp.float32),
            episode_length=jnp.where(done, 0, length).astype(jnp.int32),
            returned_episode_return=jnp.where(done, ret, state.returned_episode_return)
            .astype(jnp.float32),
            returned_episode_length=jnp.where(done, length, state.returned_episode_length)
            .astype(jnp.int32),
        )
        info = dict(info, returned_episode_returns=new.returned_episode_return,
                    returned_episode_lengths=new.returned_episode_length, returned_episode=done)
        return obs, new, reward, done, info
