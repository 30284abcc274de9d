"""Builds the embedded default table from a synthetic, calibrated CLIP-like feature set.

It is **synthetic**: no CLIP model is run. Each encoder k gets ``C`` random unit text features of
its embedding width and image features ``normalise(mu_k * t_y + z)``, ``z ~ N(0, I/d_k)``. The
margin ``mu_k`` is calibrated by bisection so that the noise-free zero-shot accuracy of the stored
features equals the published CIFAR-10 zero-shot accuracy of the real encoder (CLIP paper,
Table 11). Scores on the SNR grid are then measured by sending the stored features through the
feature channel of docs/model.md, with the same in-graph functions the env uses in ``features`` mode.

Rebuild with ``python -m semcom_jax.builders.synthetic [--out PATH]``.
"""

from __future__ import annotations

import argparse
import datetime
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.physics.params import ENCODER_NAMES, EnvParams
from semcom_jax.tables.scoring import make_monotone, score_over_grid
from semcom_jax.tables import default_table_path, save_table, zero_shot_log_probs

# CLIP paper (Radford et al. 2021), Table 11, zero-shot CIFAR-10 accuracy.
TARGET_ACCURACY = {"ViT-B/32": 0.913, "ViT-B/16": 0.916, "ViT-L/14": 0.962}
WIDTHS = {"ViT-B/32": 512, "ViT-B/16": 512, "ViT-L/14": 768}
LOGIT_SCALE = 100.0  # CLIP's learned temperature, exp(4.6052)
CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _accuracy(img, txt, labels):
    return float(np.mean(np.argmax(_unit(img) @ txt.T, axis=-1) == labels))


def _calibrate(rng, width, labels, num_classes, target):
    """Returns (text features, image features, mu) with accuracy as close to target as N allows."""
    txt = _unit(rng.standard_normal((num_classes, width)))
    z = rng.standard_normal((labels.shape[0], width)) / math.sqrt(width)
    lo, hi = 0.0, 2.0
    for _ in range(60):  # accuracy is monotone in mu for fixed draws
        mu = 0.5 * (lo + hi)
        acc = _accuracy(mu * txt[labels] + z, txt, labels)
        lo, hi = (mu, hi) if acc < target else (lo, mu)
    mu = hi
    img = _unit(mu * txt[labels] + z)
    return txt, img, mu


def build(out: str, seed: int = 0, images_per_class: int = 50, noise_draws: int = 32,
          snr_lo_db: float = -40.0, snr_hi_db: float = 40.0, snr_step_db: float = 1.0) -> dict:
    rng = np.random.default_rng(seed)
    num_classes = len(CIFAR10)
    labels = np.repeat(np.arange(num_classes), images_per_class).astype(np.int32)
    n = labels.shape[0]
    dmax = max(WIDTHS.values())
    k = len(ENCODER_NAMES)
    img_all = np.zeros((k, n, dmax), np.float16)
    txt_all = np.zeros((k, num_classes, dmax), np.float16)
    mus, clean_acc = [], []
    for i, name in enumerate(ENCODER_NAMES):
        d = WIDTHS[name]
        txt, img, mu = _calibrate(rng, d, labels, num_classes, TARGET_ACCURACY[name])
        img_all[i, :, :d] = img
        txt_all[i, :, :d] = txt
        mus.append(mu)
    # Scores are measured on the float16-rounded features the env will load.
    img32 = jnp.asarray(img_all, jnp.float32)
    txt32 = jnp.asarray(txt_all, jnp.float32)
    dims = jnp.asarray([WIDTHS[nm] for nm in ENCODER_NAMES], jnp.int32)
    scale = jnp.full((k,), LOGIT_SCALE, jnp.float32)
    snr_db = np.arange(snr_lo_db, snr_hi_db + 0.5 * snr_step_db, snr_step_db, dtype=np.float32)
    lab = jnp.asarray(labels)

    key = jax.random.PRNGKey(seed)
    score = np.zeros((k, snr_db.shape[0]), np.float32)
    accuracy = np.zeros_like(score)
    for e in range(k):
        logp0 = zero_shot_log_probs(img32[e], txt32[e], scale[e])
        clean_acc.append(float(jnp.mean(jnp.argmax(logp0, -1) == lab)))
        score[e], accuracy[e], key = score_over_grid(key, img32[e], txt32[e], scale[e], lab,
                                                     snr_db, noise_draws, feature_dim=dims[e])
    defaults = EnvParams()
    meta = {
        "task": "classification",
        "encoders": list(ENCODER_NAMES),
        "encoder_compute": list(defaults.encoder_compute),
        "encoder_feature_bits": list(defaults.encoder_feature_bits),
        "dataset": f"synthetic CIFAR-10-like: {num_classes} classes x {images_per_class} images",
        "class_names": list(CIFAR10),
        "num_classes": num_classes,
        "chance_score": math.log(1.0 / num_classes),
        "source": "synthetic",
        "how": (
            "SYNTHETIC, no CLIP model was run. Random unit text features per class; image "
            "features normalise(mu_k t_y + z), z ~ N(0, I/d_k), mu_k calibrated so that the "
            "noise-free zero-shot accuracy equals CLIP's published CIFAR-10 zero-shot accuracy "
            "(Radford et al. 2021, Table 11). Scores: mean log p(true) and accuracy over "
            f"{noise_draws} draws of the feature channel of docs/model.md per image and SNR, logit scale "
            f"{LOGIT_SCALE}. Build measured tables from real checkpoints with the 'tables' extra."
        ),
        "target_clean_accuracy": [TARGET_ACCURACY[nm] for nm in ENCODER_NAMES],
        "measured_clean_accuracy": clean_acc,
        "calibrated_margin_mu": mus,
        "seed": seed,
        "command": "python -m semcom_jax.builders.synthetic " + " ".join(sys.argv[1:]),
        "created": datetime.date.today().isoformat(),
    }
    arrays = {
        "snr_db": snr_db,
        "score": score,
        "accuracy": accuracy,
        "image_features": img_all,
        "feature_dim": np.asarray(dims, np.int32),
        "labels": labels,
        "text_features": txt_all,
        "logit_scale": np.asarray(scale, np.float32),
    }
    save_table(out, *make_monotone(arrays, meta))
    return meta


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=default_table_path())
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images-per-class", type=int, default=50)
    p.add_argument("--noise-draws", type=int, default=32)
    a = p.parse_args(argv)
    meta = build(a.out, a.seed, a.images_per_class, a.noise_draws)
    print(f"wrote {a.out}")
    for nm, t, m in zip(meta["encoders"], meta["target_clean_accuracy"], meta["measured_clean_accuracy"]):
        print(f"  {nm}: clean zero-shot accuracy {m:.3f} (target {t:.3f})")


if __name__ == "__main__":
    main()
