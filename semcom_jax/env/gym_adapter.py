"""Gymnasium adapters (needs the ``gym`` extra): a single env and a lock-step vector env.

Observations are ``{"features": float32 (F,), "rb_features": float32 (Q, RB_FEATURES),
"action_mask": int8 (A,)}``; the mask is also
available as ``env.action_masks()`` for libraries that ask for it (e.g. sb3-contrib's MaskablePPO).
Illegal actions (an RB already taken) follow the JAX env (the user is left unserved and
``info["invalid_action"]`` is True) unless ``strict=True``, which raises ``ValueError`` instead.
An action that is not an integer in ``[0, A)`` is always refused (``TypeError`` / ``ValueError``
naming it), never rounded or parsed.
"""

from __future__ import annotations

from typing import Any, Optional

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from semcom_jax.env.environment import SemComEnv
from semcom_jax.env.types import RB_FEATURES
from semcom_jax.physics.params import EnvParams


def _spaces(env: SemComEnv):
    obs = spaces.Dict({
        # Every feature is a log10 / dB of a float32 quantity scaled down, or a ratio <= 1:
        # |x| < 100 holds for any finite float32 state.
        "features": spaces.Box(-100.0, 100.0, (env.observation_size,), np.float32),
        "rb_features": spaces.Box(-100.0, 100.0, (env.num_rbs, RB_FEATURES), np.float32),
        "action_mask": spaces.MultiBinary(env.num_actions),
    })
    return obs, spaces.Discrete(env.num_actions)


def _to_numpy(obs) -> dict:
    return {"features": np.asarray(obs.features, np.float32),
            "rb_features": np.asarray(obs.rb_features, np.float32),
            "action_mask": np.asarray(obs.action_mask, np.int8)}


def _key_from(rng: np.random.Generator) -> jax.Array:
    return jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))


def _check_action(action, num_actions: int) -> int:
    """An action as a Python int: an integer (Python or numpy, or a 0-d integer array) in
    ``[0, num_actions)``; anything else is refused naming it (never rounded or parsed)."""
    a = np.asarray(action) if isinstance(action, np.ndarray) else action
    if isinstance(a, np.ndarray):
        if a.ndim != 0:
            raise ValueError(f"action must be one integer, got an array of shape {a.shape}: "
                             f"{action!r:.80}")
        a = a[()]
    if isinstance(a, (bool, np.bool_)) or not isinstance(a, (int, np.integer)):
        raise TypeError(f"action must be an integer in [0, {num_actions}), got "
                        f"{type(action).__name__} {action!r:.80}")
    if not 0 <= int(a) < num_actions:
        raise ValueError(f"action {int(a)} is out of range: actions are integers in "
                         f"[0, {num_actions})")
    return int(a)


def _check_actions(actions, num_envs: int, num_actions: int) -> np.ndarray:
    """(num_envs,) int32 actions of the vector env, checked as ``_check_action`` checks one."""
    arr = np.asarray(actions)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer)
                                   and not np.issubdtype(arr.dtype, np.bool_)):
        raise TypeError(f"actions must be integers in [0, {num_actions}), got dtype "
                        f"{arr.dtype}: {actions!r:.80}")
    if arr.shape != (num_envs,):
        raise ValueError(f"actions must have shape ({num_envs},), one per env, got {arr.shape}")
    bad = np.flatnonzero((arr < 0) | (arr >= num_actions))
    if bad.size:
        raise ValueError(f"action {int(arr[bad[0]])} of env {int(bad[0])} is out of range: "
                         f"actions are integers in [0, {num_actions})")
    return arr.astype(np.int32)


def _info_to_numpy(info: dict) -> dict:
    return {k: np.asarray(v).item() if np.ndim(v) == 0 else np.asarray(v) for k, v in info.items()}


class SemComGymEnv(gym.Env):
    """One :class:`SemComEnv` behind the Gymnasium API (``terminated`` after ``U`` steps)."""

    metadata = {"render_modes": []}

    def __init__(self, env: Optional[SemComEnv] = None, params: Optional[EnvParams] = None,
                 strict: bool = False, **env_kwargs: Any):
        self.env = env if env is not None else SemComEnv(**env_kwargs)
        self.params = self.env.check_params(params if params is not None else self.env.default_params)
        self.strict = strict
        self.observation_space, self.action_space = _spaces(self.env)
        self._reset = jax.jit(self.env.reset)
        self._step = jax.jit(self.env.step)
        self._state = None
        self._mask = None

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        obs, self._state = self._reset(_key_from(self.np_random), self.params)
        out = _to_numpy(obs)
        self._mask = out["action_mask"]
        return out, {}

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        a = _check_action(action, self.env.num_actions)
        if self.strict and not self._mask[a]:
            raise ValueError(f"action {a} is not legal now (mask is {self._mask.tolist()})")
        obs, self._state, reward, done, info = self._step(
            _key_from(self.np_random), self._state, jnp.int32(a), self.params)
        out = _to_numpy(obs)
        self._mask = out["action_mask"]
        return out, float(reward), bool(done), False, _info_to_numpy(info)

    def action_masks(self) -> np.ndarray:
        return self._mask.astype(bool)


class SemComVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` envs stepped by one jitted, vmapped call. Episodes have a fixed length, so
    all envs finish together; the batch is then reset in the same step (``SAME_STEP``
    auto-reset) and the terminal observations are in ``info["final_obs"]``."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, env: Optional[SemComEnv] = None,
                 params: Optional[EnvParams] = None, **env_kwargs: Any):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.env = env if env is not None else SemComEnv(**env_kwargs)
        self.params = self.env.check_params(params if params is not None else self.env.default_params)
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(self.env)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._reset = jax.jit(lambda k, p: jax.vmap(self.env.reset, (0, None))(
            jax.random.split(k, num_envs), p))
        self._step = jax.jit(lambda k, s, a, p: jax.vmap(self.env.step, (0, 0, 0, None))(
            jax.random.split(k, num_envs), s, a, p))
        self._state = None
        self._rng = np.random.default_rng()

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is not None:
            if not isinstance(seed, int):
                raise ValueError("SemComVectorEnv takes one int seed for the whole lock-step batch")
            self._rng = np.random.default_rng(seed)
        obs, self._state = self._reset(_key_from(self._rng), self.params)
        return _to_numpy(obs), {}

    def step(self, actions):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        actions = jnp.asarray(_check_actions(actions, self.num_envs, self.env.num_actions))
        obs, self._state, reward, done, info = self._step(
            _key_from(self._rng), self._state, actions, self.params)
        out = _to_numpy(obs)
        done = np.asarray(done)
        infos = {k: np.asarray(v) for k, v in info.items()}
        if done.all():
            infos["final_obs"] = out
            infos["_final_obs"] = done
            obs, self._state = self._reset(_key_from(self._rng), self.params)
            out = _to_numpy(obs)
        return out, np.asarray(reward, np.float32), done, np.zeros_like(done), infos


ENV_ID = "semcom_jax/SemCom-v0"
if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="semcom_jax.env.gym_adapter:SemComGymEnv")
