"""The feature channel of docs/model.md applied to a set of CLIP features: mean ``log p(true class)`` and
accuracy of zero-shot classification over noise draws (pure JAX; shared by every builder)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import isotonic_regression

from semcom_jax.tables.feature_channel import corrupt_feature, zero_shot_log_probs


def snr_grid(lo_db: float, hi_db: float, step_db: float) -> np.ndarray:
    if not (np.isfinite(lo_db) and np.isfinite(hi_db) and step_db > 0 and hi_db > lo_db):
        raise ValueError(f"SNR grid needs finite lo < hi and step > 0, got lo={lo_db} "
                         f"hi={hi_db} step={step_db}")
    return np.arange(lo_db, hi_db + 0.5 * step_db, step_db, dtype=np.float32)


@jax.jit
def channel_scores(key, image_features, feature_dim, text_features, logit_scale, labels,
                   snr_linear, draws: jnp.ndarray):
    """``(mean log p(true), accuracy)`` of ``image_features`` (N, D) sent through the feature
    channel at ``snr_linear``, averaged over images and over ``draws.shape[0]`` noise draws
    (``draws`` is a dummy array whose length sets the number of draws)."""
    n = labels.shape[0]

    def one(kk):
        noisy = jax.vmap(corrupt_feature, (0, 0, None, None))(
            jax.random.split(kk, n), image_features, feature_dim, snr_linear)
        logp = zero_shot_log_probs(noisy, text_features, logit_scale)
        lp_true = jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
        return jnp.mean(lp_true), jnp.mean(jnp.argmax(logp, -1) == labels)

    lp, acc = jax.lax.map(one, jax.random.split(key, draws.shape[0]))
    return jnp.mean(lp), jnp.mean(acc)


def score_over_grid(key, image_features, text_features, logit_scale, labels, snr_db, draws: int,
                    feature_dim=None):
    """Scores of one encoder on the whole grid: ``(score (G,), accuracy (G,), key)``.

    ``image_features`` (N, D) may be zero-padded beyond ``feature_dim`` (default: all of D).
    One sub-key per grid point is split off ``key`` in grid order; the advanced key is returned
    so that several encoders can share one chain of keys."""
    img = jnp.asarray(image_features, jnp.float32)
    txt = jnp.asarray(text_features, jnp.float32)
    dim = jnp.int32(img.shape[-1] if feature_dim is None else feature_dim)
    lab = jnp.asarray(labels, jnp.int32)
    dummy = jnp.zeros((draws,))
    score = np.zeros(len(snr_db), np.float32)
    acc = np.zeros(len(snr_db), np.float32)
    for g, s in enumerate(snr_db):
        key, sub = jax.random.split(key)
        snr_linear = jnp.float32(10.0 ** (np.float32(s) / 10.0))  # float32 all the way
        lp, a = channel_scores(sub, img, dim, txt, jnp.float32(logit_scale), lab, snr_linear,
                               dummy)
        score[g], acc[g] = float(lp), float(a)
    return score, acc, key


MONOTONE_FIT = ("isotonic regression (scipy.optimize.isotonic_regression, least squares) of the "
                "measured mean over the SNR grid, per encoder; the measured means are kept as "
                "'score_raw'")


def make_monotone(arrays: dict, meta: dict) -> tuple[dict, dict]:
    """``score`` and ``accuracy`` made non-decreasing in SNR per encoder, as the task quality of a
    less noisy feature must be: sampling noise of a finite measurement can otherwise make a
    worse RB look better. The fit is recorded in the metadata (``monotone``), so the loader
    refuses a table that claims it and is not."""
    out = dict(arrays)
    out["score_raw"] = np.asarray(arrays["score"], np.float32)
    if "accuracy" in arrays:
        out["accuracy_raw"] = np.asarray(arrays["accuracy"], np.float32)
    for key in ("score", "accuracy"):
        if key in arrays:
            out[key] = np.stack([isotonic_regression(np.asarray(row, np.float64)).x
                                 for row in arrays[key]]).astype(np.float32)
    raw = out["score_raw"]
    meta = {**meta, "monotone": True, "monotone_fit": MONOTONE_FIT,
            "monotone_max_change": float(np.max(np.abs(out["score"] - raw)))}
    return out, meta
