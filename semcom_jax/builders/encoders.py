"""``semcom-jax tables train-encoders``: a classification table measured from real images
through encoders trained here.

Per encoder of the family (:data:`semcom_jax.codec.model.FASHION_FAMILY` on 28x28 images,
``DIGITS_FAMILY`` on 8x8 ones): contrastive training on the training split (plain or
channel-robust), optionally a noise attention module on top, then accuracy and mean
``log p(true)`` of the test split's features sent through the feature channel (docs/model.md) on the SNR
grid. ``DM_k`` is the encoder's MACs per image relative to the smallest, ``DO_k`` its feature
width x 32 bits. The table keeps a class-balanced subset of the test features as its feature set,
so the env can run ``score="features"`` on it. With a noise attention module (``nam``) the
module's figures are stored beside the cosine receiver's (``score_nam``, ``accuracy_nam``); a
table whose scores are the module's (``receiver="nam"``) is marked ``receiver:
noise-attention`` and the env refuses ``score="features"`` with it, as its in-graph receiver is
CLIP's cosine one.

Each finished encoder is kept as a part beside the output (atomic); a rerun with the same
settings resumes from the parts, and the table is written atomically at the end.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.builders.parts import PartStore
from semcom_jax.tables.scoring import make_monotone, snr_grid
from semcom_jax.codec import data as datasets
from semcom_jax.codec.measure import grid_scores
from semcom_jax.codec.model import DIGITS_FAMILY, FASHION_FAMILY, encode, text_and_scale
from semcom_jax.codec.nam import NAMSettings, train_nam
from semcom_jax.codec.train import TrainSettings, train_encoder
from semcom_jax.tables.format import save_table

FAMILIES = {(28, 28): FASHION_FAMILY, (8, 8): DIGITS_FAMILY}


def family_for(images: np.ndarray):
    shape = tuple(images.shape[1:])
    if shape not in FAMILIES:
        raise ValueError(f"no encoder family for {shape[0]}x{shape[1]} images (have "
                         f"{sorted(FAMILIES)})")
    return FAMILIES[shape]


def train_and_measure(spec, train: datasets.ImageSet, test: datasets.ImageSet,
                      settings: TrainSettings, nam: NAMSettings | None, grid, draws: int,
                      key, progress=None) -> dict:
    """One encoder: trained, its test features measured on the grid (and with a NAM)."""
    model, params, losses = train_encoder(spec, train, settings, progress)
    f_test = encode(model, params, jnp.asarray(test.images))
    prompts, scale = text_and_scale(model, params)
    score, acc = grid_scores(key, f_test, test.labels, prompts, scale, grid, draws)
    out = {"image_features": np.asarray(f_test, np.float32),
           "text_features": np.asarray(prompts, np.float32),
           "logit_scale": np.float32(scale), "losses": np.asarray(losses, np.float32),
           "score_cosine": score, "accuracy_cosine": acc}
    if nam is not None:
        f_train = encode(model, params, jnp.asarray(train.images))
        module, nam_params, _ = train_nam(f_train, train.labels, prompts, scale, nam)
        out["score_nam"], out["accuracy_nam"] = grid_scores(
            key, f_test, test.labels, prompts, scale, grid, draws, nam=(module, nam_params))
    return out


RECEIVERS = ("cosine", "nam")
# The NAM-in-the-loop term's weight, as the robust term's. One-off trials on ViT-S/7
# (docs/codec.md): weight 1, the loop's NAM over [-15, 30] dB, gave 0.830 at 0 dB; weight 6
# over the robust term's [-15, 5] dB (what the loop now uses) 0.837.
JOINT_NAM_WEIGHT = 6.0


@dataclasses.dataclass(frozen=True)
class EncoderTableSpec:
    """What ``semcom-jax tables train-encoders`` builds (one field per flag)."""

    images: str = "fashion-mnist"  # one of codec.data.DATASETS
    robust: bool = True  # channel-robust contrastive training (False: plain)
    nam: bool = False  # also train a noise attention module per encoder, store its figures
    receiver: str = "cosine"  # whose figures are the table's scores ("nam" needs nam)
    nam_in_training: bool = False  # train each encoder with a NAM in the loop
    epochs: int = 6
    train_per_class: int | None = None  # training images per class (None: all)
    features_per_class: int = 100  # test features kept per class as the table's feature set
    snr_lo_db: float = -30.0
    snr_hi_db: float = 40.0
    snr_step_db: float = 1.0
    draws: int = 4  # noise draws per image and SNR
    seed: int = 0

    def check(self) -> np.ndarray:
        """The SNR grid, or a ValueError naming what is wrong."""
        if self.receiver not in RECEIVERS:
            raise ValueError(f"receiver must be one of {RECEIVERS}, got {self.receiver!r}")
        if self.receiver == "nam" and not self.nam:
            raise ValueError("receiver='nam' needs nam=True (--nam): the module must be trained")
        if self.draws < 1:
            raise ValueError(f"draws must be >= 1, got {self.draws}")
        if self.features_per_class < 1:
            raise ValueError(f"features_per_class must be >= 1, got {self.features_per_class}")
        grid = snr_grid(self.snr_lo_db, self.snr_hi_db, self.snr_step_db)
        if self.images not in datasets.DATASETS:
            raise ValueError(f"unknown image set {self.images!r}: choose one of "
                             f"{datasets.DATASETS}")
        return grid


def build(out: str, spec: EncoderTableSpec = EncoderTableSpec(),
          train_settings: TrainSettings | None = None, progress: bool = True,
          command: str | None = None) -> dict:
    """Builds the table ``spec`` describes at ``out``; returns its metadata. With ``spec.nam``
    the noise attention module's figures are stored too (``score_nam``, ``accuracy_nam``);
    ``spec.nam_in_training`` sets ``TrainSettings.nam_weight`` to ``JOINT_NAM_WEIGHT``."""
    grid = spec.check()
    images, robust, nam, seed = spec.images, spec.robust, spec.nam, spec.seed
    epochs, train_per_class, draws = spec.epochs, spec.train_per_class, spec.draws
    settings = dataclasses.replace(
        train_settings or TrainSettings(batch_size=datasets.BATCH_SIZE[images]),
        epochs=epochs, robust=robust, seed=seed)
    if spec.nam_in_training:
        settings = dataclasses.replace(settings, nam_weight=JOINT_NAM_WEIGHT)
    train = datasets.load(images, "train")
    test = datasets.load(images, "test")
    if train_per_class is not None:
        train = train.per_class(train_per_class, seed)
    settings.check(len(train))
    family = family_for(train.images)
    nam_settings = NAMSettings(seed=seed) if nam else None
    parts = PartStore(out)
    key = jax.random.PRNGKey(seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(family) * settings.epochs, unit="epoch", desc="training encoders")
    results = []
    for i, encoder in enumerate(family):
        part_settings = {"spec": dataclasses.asdict(encoder), "images": train.source,
                         "n_train": len(train), "test": test.source,
                         "train": dataclasses.asdict(settings),
                         "nam": None if nam_settings is None else dataclasses.asdict(nam_settings),
                         "grid": grid.tolist(), "draws": draws}
        part = parts.load(i, part_settings)
        if part is None:
            part = train_and_measure(encoder, train, test, settings, nam_settings, grid, draws,
                                     jax.random.fold_in(key, i), bar)
            parts.save(i, part_settings, part)
        elif bar is not None:
            bar.update(settings.epochs)
        results.append(part)
    if bar is not None:
        bar.close()
    if command is None:
        command = "semcom-jax tables train-encoders " + " ".join(sys.argv[3:])
    meta = assemble(out, spec, family, train, test, settings, nam_settings, grid, results,
                    command)
    parts.remove()
    return meta


def assemble(out, spec: EncoderTableSpec, family, train, test, settings, nam_settings, grid,
             results, command) -> dict:
    receiver, draws, seed = spec.receiver, spec.draws, spec.seed
    features_per_class = spec.features_per_class
    k = len(family)
    h, w = train.images.shape[1:]
    macs = [e.macs(h, w) for e in family]
    dims = [e.feature_dim for e in family]
    dmax = max(dims)
    keep = datasets.per_class_index(test.labels, features_per_class, seed)
    img = np.zeros((k, len(keep), dmax), np.float32)
    txt = np.zeros((k, test.num_classes, dmax), np.float32)
    for i, r in enumerate(results):
        img[i, :, :dims[i]] = r["image_features"][keep]
        txt[i, :, :dims[i]] = r["text_features"]
    which = receiver
    other = "cosine" if receiver == "nam" else ("nam" if nam_settings is not None else None)
    clean = [float(r["accuracy_cosine"][-1]) for r in results]
    meta = {
        "task": "classification",
        "encoders": [e.name for e in family],
        "encoder_specs": [dataclasses.asdict(e) for e in family],
        "encoder_macs": macs,
        "encoder_compute": [m / min(macs) for m in macs],
        "encoder_feature_bits": [d * 32 for d in dims],
        "dataset": f"{test.source}: {test.num_classes} classes, {len(test)} test images "
                   f"(feature set: {len(keep)} of them, class-balanced)",
        "training_data": f"{train.source}: {len(train)} images",
        "class_names": list(test.class_names),
        "num_classes": test.num_classes,
        "chance_score": math.log(1.0 / test.num_classes),
        "source": "measured",
        "receiver": "noise-attention" if receiver == "nam" else "cosine",
        "training": {**dataclasses.asdict(settings),
                     "loss": "CLIP symmetric loss with learned class prompts" +
                             (" + channel-robust contrastive loss" if settings.robust else "") +
                             (" + a noise attention module's cross-entropy on corrupted "
                              "features, trained with the encoder" if settings.nam_weight > 0
                              else "")},
        "noise_attention": None if nam_settings is None else dataclasses.asdict(nam_settings),
        "how": (f"ViT encoders trained here ({'channel-robust' if settings.robust else 'plain'} "
                f"contrastive training{', a NAM in the loop' if settings.nam_weight > 0 else ''}, "
                f"{settings.epochs} epochs); test-split features sent "
                f"through the feature channel of docs/model.md, {draws} noise draws per image and SNR, "
                f"classified by {'a noise attention module' if receiver == 'nam' else 'cosine'} "
                "against the learned class prompts; score = mean log p(true), "
                "accuracy = top-1."),
        "clean_accuracy_cosine": clean,
        "extra_arrays": ([] if other is None else [f"score_{other}", f"accuracy_{other}"]),
        "accuracy_at_highest_snr": [float(r[f"accuracy_{which}"][-1]) for r in results],
        "training_losses": [np.asarray(r["losses"]).round(4).tolist() for r in results],
        "command": command,
        "created": datetime.date.today().isoformat(),
    }
    arrays = {"snr_db": grid,
              "score": np.stack([r[f"score_{which}"] for r in results]),
              "accuracy": np.stack([r[f"accuracy_{which}"] for r in results]),
              "image_features": img, "feature_dim": np.asarray(dims, np.int32),
              "labels": test.labels[keep].astype(np.int32), "text_features": txt,
              "logit_scale": np.asarray([r["logit_scale"] for r in results], np.float32)}
    if other is not None:  # the other receiver's figures, for comparison (the env reads none)
        arrays[f"score_{other}"] = np.stack([r[f"score_{other}"] for r in results])
        arrays[f"accuracy_{other}"] = np.stack([r[f"accuracy_{other}"] for r in results])
    save_table(out, *make_monotone(arrays, meta))
    return meta

