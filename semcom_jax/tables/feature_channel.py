"""The feature channel of docs/model.md and CLIP's zero-shot classifier, as pure in-graph functions.

The semantic information (a CLIP image feature ``f``) reaches the user as ``f + n``,
``n ~ N(0, sigma^2 I)``, ``sigma^2 = mean(f^2) / SINR``: the per-element SNR equals the RB's SINR.
The env uses these in ``score="features"`` mode and every table builder uses them to measure
scores over an SNR grid, so a table and the env corrupt features the same way.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from semcom_jax.tables.format import FeatureSet


def corrupt_feature(key, feature, feature_dim, sinr_linear, scale_free: bool = False):
    """``f + n`` with ``sigma^2 = mean(f^2) / SINR`` over the first ``feature_dim`` entries;
    ``feature`` is zero-padded beyond ``feature_dim`` and the padding stays zero.

    ``scale_free``: ``(f + n) / max(1, sigma)`` instead, the same direction (all a cosine
    classifier reads), whose norm stays finite in float32 at any SINR the parameters allow
    (``sigma`` reaches 1e19 at an SINR of 1e-38, and the norm of ``f + n`` would overflow)."""
    valid = jnp.arange(feature.shape[-1]) < feature_dim
    mean_sq = jnp.sum(feature**2, axis=-1, keepdims=True) / feature_dim
    sigma = jnp.sqrt(mean_sq / sinr_linear)
    noise = jax.random.normal(key, feature.shape, feature.dtype)
    if scale_free:
        s = jnp.maximum(sigma, 1.0)
        return feature / s + jnp.where(valid, noise * (sigma / s), 0.0)
    return feature + jnp.where(valid, noise * sigma, 0.0)


def zero_shot_log_probs(feature, text_features, logit_scale) -> jnp.ndarray:
    """CLIP zero-shot classification: log-softmax over ``logit_scale * cos(feature, text_c)``."""
    f = feature / jnp.linalg.norm(feature, axis=-1, keepdims=True)
    t = text_features / jnp.linalg.norm(text_features, axis=-1, keepdims=True)
    logits = logit_scale * jnp.einsum("...d,cd->...c", f, t)
    return jax.nn.log_softmax(logits, axis=-1)


def sampled_log_prob_true(key, features: FeatureSet, encoder, image_index, sinr_linear):
    """``log p(true class)`` of one image's feature sent through the feature channel."""
    f = features.image_features[encoder, image_index]
    noisy = corrupt_feature(key, f, features.feature_dim[encoder], sinr_linear, scale_free=True)
    logp = zero_shot_log_probs(noisy, features.text_features[encoder], features.logit_scale[encoder])
    return logp[features.labels[image_index]]
