"""The environment: a stateless, jittable downlink that is a gymnax environment, and what wraps it.

``environment`` (:class:`SemComEnv`), ``registry`` (:func:`make`, :func:`registered_envs`),
``types`` (state and observation containers), ``actions`` (the action layout), ``generator``
(episode randomness), ``reward`` (eq. 11 and how it is paid), ``wrappers`` (:class:`VecEnv`,
:class:`LogWrapper`), ``spaces`` (gymnax's spaces, :func:`flatten_observation`), ``padded``
(runtime U and Q) and ``gym_adapter`` (Gymnasium; needs the ``gym`` extra, so it is not imported
here).
"""

from semcom_jax.env.actions import ActionLayout
from semcom_jax.env.environment import (OBS_FORMATS, OBS_MODES, REWARDS, SCORES, STEP_APIS,
                                        SemComEnv, uniform_legal_action)
from semcom_jax.env.padded import PaddedParams, PaddedSemComEnv
from semcom_jax.env.registry import make, registered_envs
from semcom_jax.env.types import RB_FEATURES, EnvState, Instance, Observation
from semcom_jax.env.spaces import flatten_observation
from semcom_jax.env.wrappers import LogWrapper, VecEnv, VecState

__all__ = ["OBS_FORMATS", "OBS_MODES", "RB_FEATURES", "REWARDS", "SCORES", "STEP_APIS",
           "ActionLayout", "EnvState", "Instance", "LogWrapper", "Observation", "PaddedParams",
           "PaddedSemComEnv", "SemComEnv", "VecEnv", "VecState", "flatten_observation", "make",
           "registered_envs", "uniform_legal_action"]
