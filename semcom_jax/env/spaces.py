"""Observation and action spaces with gymnax's semantics (``Discrete``, ``Box``, ``Dict``:
``sample(key)``, ``contains(x)``, ``shape``, ``dtype``), without making gymnax a dependency.

``SemComEnv.observation_space(params)`` describes the :class:`Observation` pytree field by field;
``action_space(params)`` is ``Discrete(A)``. :func:`flatten_observation` turns an observation into
one float vector plus the mask, for libraries that want a flat ``Box``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class Discrete:
    """Integers ``0 .. n - 1``."""

    def __init__(self, num_categories: int):
        if not isinstance(num_categories, int) or num_categories < 1:
            raise ValueError(f"num_categories must be an int >= 1, got {num_categories!r}")
        self.n = num_categories
        self.shape = ()
        self.dtype = jnp.int32

    def sample(self, key: jax.Array) -> jnp.ndarray:
        return jax.random.randint(key, (), 0, self.n, dtype=self.dtype)

    def contains(self, x) -> jnp.ndarray:
        x = jnp.asarray(x)
        return jnp.logical_and(jnp.issubdtype(x.dtype, jnp.integer) and x.shape == (),
                               jnp.logical_and(x >= 0, x < self.n))

    def __repr__(self) -> str:
        return f"Discrete({self.n})"


class Box:
    """Arrays of ``shape`` and ``dtype`` within ``[low, high]`` (booleans: ``low=0, high=1``)."""

    def __init__(self, low, high, shape: tuple, dtype=jnp.float32):
        self.low, self.high = low, high
        self.shape = tuple(shape)
        self.dtype = dtype

    def sample(self, key: jax.Array) -> jnp.ndarray:
        if self.dtype == jnp.bool_:
            return jax.random.bernoulli(key, 0.5, self.shape)
        if jnp.issubdtype(self.dtype, jnp.integer):
            return jax.random.randint(key, self.shape, self.low, self.high + 1, dtype=self.dtype)
        return jax.random.uniform(key, self.shape, self.dtype, self.low, self.high)

    def contains(self, x) -> jnp.ndarray:
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.bool_(False)
        if self.dtype == jnp.bool_:
            return jnp.bool_(x.dtype == jnp.bool_)
        return jnp.logical_and(jnp.all(x >= self.low), jnp.all(x <= self.high))

    def __repr__(self) -> str:
        return f"Box({self.low}, {self.high}, {self.shape}, {np.dtype(self.dtype).name})"


class Dict:
    """A named collection of spaces (one per field of a container)."""

    def __init__(self, spaces: dict[str, Any]):
        self.spaces = dict(spaces)

    def sample(self, key: jax.Array) -> dict:
        keys = jax.random.split(key, len(self.spaces))
        return {name: s.sample(k) for (name, s), k in zip(self.spaces.items(), keys)}

    def contains(self, x) -> jnp.ndarray:
        get = (lambda n: x[n]) if isinstance(x, dict) else (lambda n: getattr(x, n))
        out = jnp.bool_(True)
        for name, s in self.spaces.items():
            out = jnp.logical_and(out, s.contains(get(name)))
        return out

    def __getitem__(self, name: str):
        return self.spaces[name]

    def __repr__(self) -> str:
        return "Dict(" + ", ".join(f"{k}: {v}" for k, v in self.spaces.items()) + ")"


# Every observation column is a ratio in [-1, 1], a one-hot, a log10 of a float32 quantity or a
# dB value / 30 of a float32 SINR (|SINR dB| < 390): |x| < 100 holds for any accepted parameters.
FEATURE_BOUND = 100.0
NUM_STATUS = 5  # PENDING, CURRENT, SERVED, UNSERVED, ABSENT


def flatten_observation(obs) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(x, action_mask)``: one float32 vector holding the whole observation, for an MLP or a
    library that wants a flat ``Box``. With flat features (the default env), ``x`` is
    ``obs.features``, which already holds the paper's whole state; an env built with
    ``flat_features=False`` gets the set fields concatenated instead (RB features, user features,
    one-hot user status, context). Works on one observation or a batch (leading axes)."""
    if obs.features.shape[-1] > 0:
        return obs.features, obs.action_mask
    lead = obs.rb_features.shape[:-2]
    parts = [obs.rb_features.reshape(lead + (-1,)), obs.user_features.reshape(lead + (-1,)),
             jax.nn.one_hot(obs.user_status, NUM_STATUS, dtype=jnp.float32).reshape(lead + (-1,)),
             obs.context]
    return jnp.concatenate(parts, axis=-1), obs.action_mask
