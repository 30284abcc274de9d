"""Stable-Baselines3 ``VecEnv`` over the jitted lock-step vector env (needs the ``bench`` extra:
stable-baselines3; sb3-contrib for ``MaskablePPO``).

SB3 steps a ``VecEnv`` with one ``step_async``/``step_wait`` pair per time step; here that pair is
one jitted, vmapped call for all ``num_envs`` envs (:class:`~semcom_jax.env.gym_adapter.
SemComVectorEnv`), instead of one Python call per env as with ``DummyVecEnv`` of the single
Gymnasium env. SB3's conventions: ``reset()`` returns the observations only; when episodes end,
the returned observations start the next ones and ``infos[i]["terminal_observation"]`` holds the
last one (all envs end together: every episode lasts ``U`` steps). sb3-contrib's ``MaskablePPO``
finds the masks through ``env_method("action_masks")``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from semcom_jax.env.environment import SemComEnv
from semcom_jax.env.gym_adapter import SemComVectorEnv
from semcom_jax.physics.params import EnvParams


class SB3VecEnv(VecEnv):
    """``num_envs`` SemCom envs as one SB3 ``VecEnv`` (observations as in the Gymnasium adapter,
    ``flatten=True`` for a flat ``Box``)."""

    def __init__(self, num_envs: int, env: Optional[SemComEnv] = None,
                 params: Optional[EnvParams] = None, flatten: bool = False, **env_kwargs: Any):
        self.venv = SemComVectorEnv(num_envs, env, params, flatten=flatten, **env_kwargs)
        super().__init__(num_envs, self.venv.single_observation_space,
                         self.venv.single_action_space)
        self._actions = None

    def reset(self):
        seed = self._seeds[0] if getattr(self, "_seeds", None) else None
        obs, _ = self.venv.reset(seed=seed)
        if hasattr(self, "_reset_seeds"):
            self._reset_seeds()
        return obs

    def step_async(self, actions) -> None:
        self._actions = actions

    def step_wait(self):
        obs, reward, terminated, truncated, info = self.venv.step(self._actions)
        done = terminated | truncated
        infos = [{"invalid_action": bool(info["invalid_action"][i]),
                  "TimeLimit.truncated": False} for i in range(self.num_envs)]
        if "final_obs" in info:
            final = info["final_obs"]
            for i in range(self.num_envs):
                infos[i]["terminal_observation"] = (
                    {k: v[i] for k, v in final.items()} if isinstance(final, dict) else final[i])
        return obs, reward, done, infos

    def action_masks(self) -> np.ndarray:
        return self.venv.action_masks()

    def close(self) -> None:
        pass

    def _indices(self, indices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        return [indices] if isinstance(indices, int) else list(indices)

    def get_attr(self, attr_name: str, indices=None) -> list:
        if attr_name == "action_masks":
            return [self.action_masks] * len(self._indices(indices))
        value = getattr(self.venv, attr_name)  # AttributeError names what is missing
        return [value] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value, indices=None) -> None:
        raise AttributeError(f"SB3VecEnv envs run in lock-step in one program; setting "
                             f"{attr_name!r} per env is not supported")

    def env_method(self, method_name: str, *args, indices=None, **kwargs) -> list:
        idx = self._indices(indices)
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in idx]
        raise AttributeError(f"SB3VecEnv supports env_method('action_masks') only, got "
                             f"{method_name!r}")

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._indices(indices))
