"""The environment: a stateless, jittable downlink (gymnax style) and what wraps it.

``environment`` (:class:`SemComEnv`), ``types`` (state and observation containers), ``actions``
(the action layout), ``generator`` (episode randomness), ``reward`` (eq. 11 and how it is paid),
``wrappers`` (:class:`VecEnv`, :class:`AutoResetEnv`, :class:`LogWrapper`), ``spaces``
(gymnax-style spaces, :func:`flatten_observation`), ``padded`` (runtime U and Q) and
``gym_adapter`` (Gymnasium; needs the ``gym`` extra, so it is not imported here).
"""

from semcom_jax.env.actions import ActionCodec
from semcom_jax.env.environment import (OBS_MODES, REWARDS, SCORES, SemComEnv,
                                        uniform_legal_action)
from semcom_jax.env.padded import PaddedParams, PaddedSemComEnv
from semcom_jax.env.types import RB_FEATURES, EnvState, Instance, Observation
from semcom_jax.env.spaces import flatten_observation
from semcom_jax.env.wrappers import AutoResetEnv, LogWrapper, VecEnv, VecState

__all__ = ["OBS_MODES", "RB_FEATURES", "REWARDS", "SCORES", "ActionCodec", "AutoResetEnv",
           "EnvState", "Instance", "LogWrapper", "Observation", "PaddedParams", "PaddedSemComEnv",
           "SemComEnv", "VecEnv", "VecState", "flatten_observation", "uniform_legal_action"]
