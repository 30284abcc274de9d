"""Gymnasium adapters (needs the ``gym`` extra): a single env and a lock-step vector env.

Observations are ``{"features": float32 (F,), "rb_features": float32 (Q, RB_FEATURES),
"action_mask": int8 (A,)}``, or with ``flatten=True`` one float32 ``Box`` (F,)
(:func:`~semcom_jax.env.spaces.flatten_observation`), the mask then in ``info["action_mask"]``.
The mask is also ``env.action_masks()``; through the wrappers of ``gym.make`` use
:func:`action_masks` (Gymnasium 1.x wrappers do not forward other attributes; it calls
``get_wrapper_attr``). ``gym.make_vec(ENV_ID, num_envs=N, vectorization_mode="vector_entry_point")``
builds the jitted :class:`SemComVectorEnv`.
Illegal actions (an RB already taken) follow the JAX env (the user is left unserved, the step
pays the invalid-action term and ``info["invalid_action"]`` is True; a warning, once, when they
keep coming) unless ``strict=True``, which raises ``ValueError`` instead. A ``step`` after the
episode ended raises ``RuntimeError`` with ``strict=True``; without it nothing changes, the
reward is 0 and a warning says so, once.
An action that is not an integer in ``[0, A)`` is always refused (``TypeError`` / ``ValueError``
naming it), never rounded or parsed."""

from __future__ import annotations

import warnings
from typing import Any, Optional

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from semcom_jax.env.environment import SemComEnv
from semcom_jax.env.spaces import FEATURE_BOUND, flatten_observation
from semcom_jax.env.types import RB_FEATURES
from semcom_jax.physics.params import EnvParams


def _spaces(env: SemComEnv, flatten: bool):
    b = FEATURE_BOUND  # |x| < 100 for every observation column (see env.spaces)
    if flatten:
        width = int(jax.eval_shape(lambda: flatten_observation(env.example_observation(1))[0])
                    .shape[-1])
        obs = spaces.Box(-b, b, (width,), np.float32)
    else:
        obs = spaces.Dict({
            "features": spaces.Box(-b, b, (env.observation_size,), np.float32),
            "rb_features": spaces.Box(-b, b, (env.num_rbs, RB_FEATURES), np.float32),
            "action_mask": spaces.MultiBinary(env.num_actions),
        })
    return obs, spaces.Discrete(env.num_actions)


def _to_numpy(obs, flatten: bool):
    """(observation for the agent, mask as bool)."""
    # np.array copies: arrays viewed from JAX are read-only, which PyTorch-based agents warn on.
    mask = np.array(obs.action_mask, bool)
    if flatten:
        return np.array(flatten_observation(obs)[0], np.float32), mask
    return {"features": np.array(obs.features, np.float32),
            "rb_features": np.array(obs.rb_features, np.float32),
            "action_mask": mask.astype(np.int8)}, mask


def action_masks(env) -> np.ndarray:
    """The legal-action mask of a SemCom env behind any Gymnasium wrappers (``gym.make``)."""
    return env.get_wrapper_attr("action_masks")()


class _InvalidActionWarner:
    """Warns once when an agent keeps sending illegal actions (with ``strict=False`` they are
    served as "no RB", which an agent ignoring the mask may never notice)."""

    def __init__(self, min_actions: int = 1000, share: float = 0.05):
        self.min_actions, self.share = min_actions, share
        self.actions = self.invalid = 0
        self.warned = False

    def __call__(self, invalid) -> None:
        invalid = np.asarray(invalid, bool)
        self.actions += invalid.size
        self.invalid += int(invalid.sum())
        if (not self.warned and self.actions >= self.min_actions
                and self.invalid >= self.share * self.actions):
            self.warned = True
            warnings.warn(
                f"{self.invalid} of the first {self.actions} actions were illegal (an RB already "
                "taken) and left their user unserved: is the agent using the action mask "
                "(obs['action_mask'], env.action_masks())?", RuntimeWarning, stacklevel=3)


def _key_from(rng: np.random.Generator) -> jax.Array:
    return jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))


def _check_action(action, num_actions: int) -> int:
    """An action as a Python int: an integer (Python or numpy, or a 0-d integer array) in
    ``[0, num_actions)``; anything else is refused naming it (never rounded or parsed)."""
    a = action
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
                 strict: bool = False, flatten: bool = False, **env_kwargs: Any):
        self.env = env if env is not None else SemComEnv(**env_kwargs)
        self.params = self.env.check_params(params if params is not None else self.env.default_params)
        self.strict = strict
        self.flatten = flatten
        self.observation_space, self.action_space = _spaces(self.env, flatten)
        self._reset = jax.jit(self.env.reset)
        self._step = jax.jit(self.env.step_env)  # Gymnasium resets on the caller's reset()
        self._state = None
        self._mask = None
        self._ended = False
        self._warned_ended = False
        self._warner = _InvalidActionWarner()

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        super().reset(seed=seed)
        obs, self._state = self._reset(_key_from(self.np_random), self.params)
        self._ended = False
        out, self._mask = _to_numpy(obs, self.flatten)
        return out, ({"action_mask": self._mask} if self.flatten else {})

    def step(self, action):
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        a = _check_action(action, self.env.num_actions)
        if self._ended:
            if self.strict:
                raise RuntimeError("the episode has ended (terminated=True was returned): call "
                                   "reset() before step()")
            if not self._warned_ended:
                self._warned_ended = True
                warnings.warn("step() after the episode ended: nothing changes and the reward "
                              "is 0 until reset() is called", RuntimeWarning, stacklevel=2)
        if self.strict and not self._mask[a]:
            raise ValueError(f"action {a} is not legal now (mask is {self._mask.tolist()})")
        obs, self._state, reward, done, info = self._step(
            _key_from(self.np_random), self._state, jnp.int32(a), self.params)
        out, self._mask = _to_numpy(obs, self.flatten)
        info = _info_to_numpy(info)
        self._warner(info["invalid_action"])
        if self.flatten:
            info["action_mask"] = self._mask
        self._ended = bool(done)
        return out, float(reward), bool(done), False, info

    def action_masks(self) -> np.ndarray:
        """(A,) bool: the legal actions now."""
        return self._mask.copy()


class SemComVectorEnv(gym.vector.VectorEnv):
    """``num_envs`` envs stepped by one jitted, vmapped call. Episodes have a fixed length, so
    all envs finish together; the batch is then reset in the same step (``SAME_STEP``
    auto-reset) and the terminal observations are in ``info["final_obs"]``."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, env: Optional[SemComEnv] = None,
                 params: Optional[EnvParams] = None, flatten: bool = False, **env_kwargs: Any):
        if not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"num_envs must be an int >= 1, got {num_envs!r}")
        self.env = env if env is not None else SemComEnv(**env_kwargs)
        self.params = self.env.check_params(params if params is not None else self.env.default_params)
        self.num_envs = num_envs
        self.flatten = flatten
        self._mask = None
        self._warner = _InvalidActionWarner()
        self.single_observation_space, self.single_action_space = _spaces(self.env, flatten)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._reset = jax.jit(lambda k, p: jax.vmap(self.env.reset, (0, None))(
            jax.random.split(k, num_envs), p))
        self._step = jax.jit(lambda k, s, a, p: jax.vmap(self.env.step_env, (0, 0, 0, None))(
            jax.random.split(k, num_envs), s, a, p))
        self._state = None
        self._rng = np.random.default_rng()

    def reset(self, *, seed: Optional[int] = None, options: Optional[dict] = None):
        if seed is not None:
            if not isinstance(seed, int):
                raise ValueError("SemComVectorEnv takes one int seed for the whole lock-step batch")
            self._rng = np.random.default_rng(seed)
        obs, self._state = self._reset(_key_from(self._rng), self.params)
        out, self._mask = _to_numpy(obs, self.flatten)
        return out, ({"action_mask": self._mask} if self.flatten else {})

    def step(self, actions):
        """Gymnasium 1.x ``SAME_STEP`` auto-reset: when the episodes end (all together), the
        returned observation starts the next ones; the last observation of the ended ones is
        ``info["final_obs"]`` and their info ``info["final_info"]`` (masks ``_final_obs``,
        ``_final_info``)."""
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        actions = jnp.asarray(_check_actions(actions, self.num_envs, self.env.num_actions))
        obs, self._state, reward, done, info = self._step(
            _key_from(self._rng), self._state, actions, self.params)
        out, self._mask = _to_numpy(obs, self.flatten)
        done = np.asarray(done)
        infos = {k: np.asarray(v) for k, v in info.items()}
        self._warner(infos["invalid_action"])
        if done.all():
            infos["final_obs"] = out
            infos["_final_obs"] = done
            infos["final_info"] = dict(infos)
            infos["_final_info"] = done
            obs, self._state = self._reset(_key_from(self._rng), self.params)
            out, self._mask = _to_numpy(obs, self.flatten)
        if self.flatten:
            infos["action_mask"] = self._mask
        return out, np.asarray(reward, np.float32), done, np.zeros_like(done), infos

    def action_masks(self) -> np.ndarray:
        """(num_envs, A) bool: each env's legal actions now."""
        return self._mask.copy()


ENV_ID = "semcom_jax/SemCom-v0"
if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="semcom_jax.env.gym_adapter:SemComGymEnv",
                 vector_entry_point="semcom_jax.env.gym_adapter:SemComVectorEnv")
