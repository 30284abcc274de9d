"""A synchronised batch with auto-reset, and episode statistics.

Every episode lasts exactly ``U`` steps, so a batch of envs reset together stays in lock-step
forever. :class:`VecEnv` exploits this: it keeps one *shared* episode clock (a scalar that stays
unbatched even when the whole thing is ``vmap``-ed over seeds) and resets the batch under a
``lax.cond`` on that clock, so fresh episodes are drawn once every ``U`` steps instead of at every
step, as the env's own per-env auto-reset (``SemComEnv.step``, gymnax's) must do under ``vmap``
(there ``lax.cond`` on a batched predicate turns into a select that evaluates both branches).

The wrappers forward the gymnax surface by name (no ``__getattr__``), so they copy, deep-copy
and pickle like any object; the env they wrap is ``.env``.
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
        obs = jax.vmap(self.env.get_obs, (0, None))(states, params)
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
    and ``returned_episode`` (True on the step that finishes one). Wraps any env whose ``step``
    auto-resets and returns five values (``done``) or six (``terminated, truncated``); it returns
    as many as the env does."""

    def __init__(self, env):
        self.env = env

    # The gymnax surface, forwarded by name.
    @property
    def default_params(self):
        return self.env.default_params

    @property
    def num_actions(self) -> int:
        return self.env.num_actions

    @property
    def name(self) -> str:
        return self.env.name

    def action_space(self, params=None):
        return self.env.action_space(params)

    def observation_space(self, params=None):
        return self.env.observation_space(params)

    def reset(self, key, params: Optional[EnvParams] = None):
        obs, env_state = self.env.reset(key, params)
        zero_f, zero_i = jnp.float32(0.0), jnp.int32(0)
        return obs, LogState(env_state, zero_f, zero_i, zero_f, zero_i)

    def step(self, key, state: LogState, action, params: Optional[EnvParams] = None):
        out = self.env.step(key, state.env_state, action, params)
        obs, env_state, reward, info = out[0], out[1], out[2], out[-1]
        done = out[3] if len(out) == 5 else jnp.logical_or(out[3], out[4])
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
        return (obs, new, *out[2:-1], info)
