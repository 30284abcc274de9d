"""Accuracy and mean ``log p(true)`` of a feature set over an SNR grid, through the
feature channel, with CLIP's cosine receiver or with a noise attention module.

The cosine receiver is :func:`semcom_jax.tables.scoring.score_over_grid`, the same function
every table builder uses, so a table measured here and the env's ``score="features"`` mode
corrupt and classify a feature identically.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.tables.scoring import score_over_grid
from semcom_jax.codec.nam import nam_log_probs
from semcom_jax.tables.feature_channel import corrupt_feature


def grid_scores(key, features, labels, prompts, scale, snr_db, draws: int, nam=None):
    """``(score (G,), accuracy (G,))``; ``nam`` is ``(module, params)`` or None (cosine)."""
    if nam is None:
        score, acc, _ = score_over_grid(key, features, prompts, scale, labels, snr_db, draws)
        return score, acc
    module, params = nam
    f = jnp.asarray(features, jnp.float32)
    y = jnp.asarray(labels, jnp.int32)
    at = _nam_scores(module)
    score = np.zeros(len(snr_db), np.float32)
    acc = np.zeros(len(snr_db), np.float32)
    for g, s in enumerate(snr_db):
        key, sub = jax.random.split(key)
        lp, a = at(sub, jnp.float32(s), params, f, y, jnp.asarray(prompts, jnp.float32),
                   jnp.float32(scale), jnp.zeros((draws,)))
        score[g], acc[g] = float(lp), float(a)
    return score, acc


@functools.lru_cache(maxsize=8)
def _nam_scores(module):
    """Jitted ``(key, snr_db, params, features, labels, prompts, scale, draws) -> (mean log
    p(true), accuracy)`` of one NAM receiver at one SNR (``draws``: a dummy whose length is the
    number of noise draws)."""

    @jax.jit
    def at(key, snr, params, f, y, prompts, scale, draws):
        n, d = f.shape

        def one(kk):
            noisy = jax.vmap(corrupt_feature, (0, 0, None, None))(
                jax.random.split(kk, n), f, jnp.int32(d), 10.0 ** (snr / 10.0))
            logp = nam_log_probs(module, params, noisy, jnp.full((n,), snr), prompts, scale)
            return (jnp.mean(jnp.take_along_axis(logp, y[:, None], -1)),
                    jnp.mean(jnp.argmax(logp, -1) == y))

        lp, a = jax.lax.map(one, jax.random.split(key, draws.shape[0]))
        return jnp.mean(lp), jnp.mean(a)

    return at
