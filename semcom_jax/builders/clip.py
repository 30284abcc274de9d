"""``semcom-jax tables clip``: a classification table from real CLIP checkpoints (Flax).

For each checkpoint: image features of every labelled image and text features of the prompts
"an image of a {label}" with ``FlaxCLIPModel`` (jitted, fixed-size batches), then the
feature channel over the SNR grid with ``draws`` noise draws per image and SNR: accuracy and mean
``log p(true class)`` of zero-shot classification (eq. 1). The table stores the feature set too,
so the env's ``features`` score mode corrupts real CLIP features in-graph. ``DM_k`` (metadata
``encoder_compute``) is the vision tower's multiply-accumulates relative to ViT-B/32's 4.4e9
(``hf.vision_macs``) and ``DO_k`` (``encoder_feature_bits``) the embedding width x 32 bits.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.builders import hf
from semcom_jax.physics.params import ENCODER_NAMES
from semcom_jax.builders.images import LabelledImages, read_images
from semcom_jax.builders.parts import PartStore
from semcom_jax.tables.scoring import make_monotone, score_over_grid, snr_grid
from semcom_jax.tables.format import save_table

DEFAULT_CHECKPOINTS = ("openai/clip-vit-base-patch32", "openai/clip-vit-base-patch16",
                       "openai/clip-vit-large-patch14")
DEFAULT_NAMES = ENCODER_NAMES
PROMPT = "an image of a {}"
B32_MACS = 4.4e9


def check_names(checkpoints, names) -> list:
    # The paper's names only for the paper's checkpoints; any other model is named by its
    # folder or hub name, so a test model is never labelled as a real CLIP.
    default = [str(c) for c in checkpoints] == [str(c) for c in DEFAULT_CHECKPOINTS]
    names = list(names) if names else (list(DEFAULT_NAMES) if default else
                                       [str(c).rstrip("/").split("/")[-1] for c in checkpoints])
    if len(names) != len(checkpoints):
        raise ValueError(f"{len(checkpoints)} checkpoints but {len(names)} encoder names: give "
                         "one name per checkpoint (--names)")
    if len(set(names)) != len(names):
        raise ValueError(f"encoder names must be distinct, got {names}")
    return names


@functools.lru_cache(maxsize=8)
def _image_fn(model):
    """The model's jitted image tower, built once per model: the regeneration builder calls
    :func:`image_features` for every batch it judges."""
    return jax.jit(lambda params, px: model.get_image_features(pixel_values=px, params=params))


def image_features(model, params, processor, images: np.ndarray, batch_size: int,
                   progress=None):
    """(N, D) float32 image features (CLIP's projected embedding, not normalised)."""
    fn = _image_fn(model)
    out = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        px = processor(images=list(batch), return_tensors="np")["pixel_values"]
        pad = batch_size - px.shape[0]  # one compiled shape for every batch
        if pad:
            px = np.concatenate([px, np.zeros((pad,) + px.shape[1:], px.dtype)])
        out.append(np.asarray(fn(params, jnp.asarray(px)))[:batch_size - pad])
        if progress is not None:
            progress.update(len(batch))
    return np.concatenate(out).astype(np.float32)


def text_features(model, params, processor, class_names) -> np.ndarray:
    tok = processor.tokenizer([PROMPT.format(c) for c in class_names], padding=True,
                              return_tensors="np")
    f = jax.jit(lambda p, ids, mask: model.get_text_features(input_ids=ids, attention_mask=mask,
                                                             params=p))(
        params, jnp.asarray(tok["input_ids"]), jnp.asarray(tok["attention_mask"]))
    return np.asarray(f, np.float32)


def encode_checkpoint(name: str, data: LabelledImages, batch_size: int, progress=None) -> dict:
    model, params, processor = hf.load_clip(name)
    img = image_features(model, params, processor, data.images, batch_size, progress)
    txt = text_features(model, params, processor, data.class_names)
    return {"image_features": img, "text_features": txt,
            "logit_scale": np.float32(np.exp(np.asarray(params["logit_scale"]))),
            "vision_macs": np.float64(hf.vision_macs(model.config.vision_config))}


@dataclasses.dataclass(frozen=True)
class ClipTableSpec:
    """What ``semcom-jax tables clip`` builds (one field per flag)."""

    checkpoints: tuple = DEFAULT_CHECKPOINTS  # CLIP checkpoints (folders or hub names)
    names: tuple | None = None  # the encoders' names (default: from the checkpoints)
    snr_lo_db: float = -40.0
    snr_hi_db: float = 40.0
    snr_step_db: float = 1.0
    draws: int = 16  # noise draws per image and SNR
    batch_size: int = 32
    resize: int | None = None  # images resized to this side first
    max_per_class: int | None = None  # images per class at most
    seed: int = 0


def build(images: str, out: str, spec: ClipTableSpec = ClipTableSpec(),
          progress: bool = True) -> dict:
    """Builds the classification table ``spec`` describes from the labelled ``images`` at
    ``out``; returns its metadata."""
    hf.require("transformers")
    snr_lo_db, snr_hi_db, snr_step_db = spec.snr_lo_db, spec.snr_hi_db, spec.snr_step_db
    draws, batch_size, resize, seed = spec.draws, spec.batch_size, spec.resize, spec.seed
    max_per_class, names = spec.max_per_class, spec.names
    checkpoints = [str(c) for c in spec.checkpoints]
    names = check_names(checkpoints, names)
    if draws < 1 or batch_size < 1:
        raise ValueError(f"draws and batch_size must be >= 1, got {draws} and {batch_size}")
    grid = snr_grid(snr_lo_db, snr_hi_db, snr_step_db)
    for c in checkpoints:
        hf.check_checkpoint(c, "CLIP")
    data = read_images(images, resize, max_per_class)
    parts = PartStore(out)
    key = jax.random.PRNGKey(seed)
    results = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(checkpoints) * len(data.images), unit="img", desc="CLIP features")
    for i, ckpt in enumerate(checkpoints):
        settings = {"checkpoint": ckpt, "images": data.source, "n": len(data.images),
                    "classes": data.class_names, "grid": grid.tolist(), "draws": draws,
                    "seed": seed, "resize": resize, "max_per_class": max_per_class}
        part = parts.load(i, settings)
        if part is None:
            part = encode_checkpoint(ckpt, data, batch_size, bar)
            score, acc, _ = score_over_grid(jax.random.fold_in(key, i), part["image_features"],
                                         part["text_features"], part["logit_scale"],
                                         data.labels, grid, draws)
            part.update(score=score, accuracy=acc)
            parts.save(i, settings, part)
        elif bar is not None:
            bar.update(len(data.images))
        results.append(part)
    if bar is not None:
        bar.close()
    meta = assemble(out, data, names, checkpoints, grid, draws, results)
    parts.remove()
    return meta


def assemble(out, data: LabelledImages, names, checkpoints, grid, draws, results) -> dict:
    k = len(results)
    dims = [r["image_features"].shape[1] for r in results]
    dmax = max(dims)
    img = np.zeros((k, len(data.images), dmax), np.float32)
    txt = np.zeros((k, data.num_classes, dmax), np.float32)
    for i, r in enumerate(results):
        img[i, :, :dims[i]] = r["image_features"]
        txt[i, :, :dims[i]] = r["text_features"]
    clean_acc = [float(r["accuracy"][-1]) for r in results]
    meta = {
        "task": "classification",
        "encoders": names,
        "checkpoints": checkpoints,
        "encoder_compute": [float(r["vision_macs"]) / B32_MACS for r in results],
        "encoder_feature_bits": [d * 32 for d in dims],
        "dataset": f"{data.source}: {data.num_classes} classes, {len(data.images)} images",
        "class_names": data.class_names,
        "num_classes": data.num_classes,
        "chance_score": math.log(1.0 / data.num_classes),
        "source": "measured",
        "how": (f"FlaxCLIPModel image features and '{PROMPT}' text features; zero-shot "
                f"classification of features through the feature channel of docs/model.md, {draws} noise "
                "draws per image and SNR; score = mean log p(true), accuracy = top-1."),
        "accuracy_at_highest_snr": clean_acc,
        "command": "semcom-jax tables clip " + " ".join(sys.argv[3:]),
        "created": datetime.date.today().isoformat(),
    }
    arrays = {"snr_db": grid, "score": np.stack([r["score"] for r in results]),
              "accuracy": np.stack([r["accuracy"] for r in results]),
              "image_features": img, "feature_dim": np.asarray(dims, np.int32),
              "labels": data.labels, "text_features": txt,
              "logit_scale": np.asarray([r["logit_scale"] for r in results], np.float32)}
    save_table(out, *make_monotone(arrays, meta))
    return meta
