"""Task tables: the file format, its containers and its validating loader.

A table file is an ``.npz`` archive (no pickles) holding

=================  ============  ==========================================================
key                shape         meaning
=================  ============  ==========================================================
``metadata``       ()            JSON text: format, version, task, encoders, DM/DO, dataset,
                                 num_classes, chance_score, source, how it was made, command
``snr_db``         (G,)          SNR grid in dB, strictly increasing
``score``          (K, G)        task score per encoder on the grid (classification: mean
                                 ``log p(true class)``; regeneration: mean CLIP similarity)
``accuracy``       (K, G)        optional, classification accuracy on the grid
``image_features`` (K, N, Dmax)  optional feature set: image features, zero-padded to Dmax
``feature_dim``    (K,)          true width of each encoder's features
``labels``         (N,)          class id of each image
``text_features``  (K, C, Dmax)  class-prompt text features, zero-padded
``logit_scale``    (K,)          CLIP's logit scale per encoder
=================  ============  ==========================================================

Metadata may carry ``encoder_compute`` (D^M_k) and ``encoder_feature_bits`` (D^O_k); when it
does, they are the encoders' costs and the env refuses parameters that say otherwise.
The in-graph look-ups are in :mod:`semcom_jax.tables.lookup`, the feature channel in
:mod:`semcom_jax.tables.feature_channel`.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
import importlib.resources
import json
import os
import zipfile
from typing import Any, Optional

import jax.numpy as jnp
import numpy as np
from flax import struct

from semcom_jax.atomic import atomic_open

FORMAT = "semcom-table"
VERSION = 1
TASKS = ("classification", "regeneration")
_FEATURE_KEYS = ("image_features", "feature_dim", "labels", "text_features", "logit_scale")


class TableError(ValueError):
    """A table file is missing, corrupt, truncated or inconsistent."""


class TableWarning(UserWarning):
    """A table is usable but suspicious (e.g. a score that falls as the SNR rises)."""


@struct.dataclass
class FeatureSet:
    """Real (or synthetic) CLIP features, so the env can corrupt a feature in-graph."""

    image_features: jnp.ndarray  # (K, N, Dmax) float32, zero beyond feature_dim[k]
    feature_dim: jnp.ndarray  # (K,) int32
    labels: jnp.ndarray  # (N,) int32
    text_features: jnp.ndarray  # (K, C, Dmax) float32, zero beyond feature_dim[k]
    logit_scale: jnp.ndarray  # (K,) float32

    @property
    def num_images(self) -> int:
        return self.labels.shape[0]


@struct.dataclass
class TaskTable:
    """The arrays the env reads; a pytree, so it can be passed through jit and vmap."""

    snr_db: jnp.ndarray  # (G,) float32, strictly increasing
    score: jnp.ndarray  # (K, G) float32
    chance_score: jnp.ndarray  # () float32, score of an unserved user
    features: Optional[FeatureSet] = None

    @property
    def num_encoders(self) -> int:
        return self.score.shape[0]


@dataclasses.dataclass(frozen=True)
class Table:
    """A loaded table: the in-graph arrays plus host-side metadata and optional accuracy."""

    data: TaskTable
    metadata: dict
    accuracy: Optional[np.ndarray] = None  # (K, G)

    @property
    def encoders(self) -> list[str]:
        return list(self.metadata["encoders"])

    @property
    def task(self) -> str:
        return self.metadata["task"]

    @property
    def encoder_costs(self) -> Optional[tuple[tuple, tuple]]:
        """``(encoder_compute, encoder_feature_bits)`` from the metadata, or None if it has none."""
        if "encoder_compute" not in self.metadata or "encoder_feature_bits" not in self.metadata:
            return None
        return (tuple(float(x) for x in self.metadata["encoder_compute"]),
                tuple(float(x) for x in self.metadata["encoder_feature_bits"]))


# ----------------------------------------------------------------------------- files


# Tables shipped inside the package, selectable by name wherever a table file is asked for.
NAMED_TABLES = {
    "synthetic": "default_table.npz",  # calibrated to CLIP's published accuracies (the default)
    "fashion-mnist": "fashion_mnist_table.npz",  # measured: encoders trained here (codec/)
}


def default_table_path() -> str:
    return named_table_path("synthetic")


def named_table_path(name: str) -> str:
    if name not in NAMED_TABLES:
        raise TableError(f"no shipped table named {name!r}; shipped: {sorted(NAMED_TABLES)}")
    return str(importlib.resources.files("semcom_jax.tables") / "data" / NAMED_TABLES[name])


def table_path(spec: str | os.PathLike) -> str:
    """A shipped table's name (:data:`NAMED_TABLES`) or a file path -> the file to read; a file
    that exists under that name wins over a shipped table."""
    spec = os.fspath(spec)
    if spec in NAMED_TABLES and not os.path.exists(spec):
        return named_table_path(spec)
    return spec


@functools.lru_cache(maxsize=1)
def load_default_table() -> Table:
    """The embedded table, loaded and validated once per process (a Table is immutable)."""
    return load_table(default_table_path())


def save_table(path: str | os.PathLike, arrays: dict[str, np.ndarray], metadata: dict) -> None:
    """Validates, then writes atomically (temp file in the same folder, then rename)."""
    meta = dict(metadata)
    meta.setdefault("format", FORMAT)
    meta.setdefault("version", VERSION)
    _validate(arrays, meta, str(path))
    with atomic_open(path, "wb") as fh:
        np.savez_compressed(fh, metadata=np.array(json.dumps(meta)), **arrays)


def load_table(path: str | os.PathLike) -> Table:
    """Loads and validates a table file (or a shipped table by name, see :func:`table_path`);
    raises :class:`TableError` naming what is wrong."""
    path = table_path(path)
    if not os.path.isfile(path):
        raise TableError(f"table file {path!r} does not exist (shipped tables: "
                         f"{sorted(NAMED_TABLES)})")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        raise TableError(f"table file {path!r} is corrupt or truncated: {e}") from None
    if "metadata" not in arrays:
        raise TableError(f"table file {path!r} has no 'metadata' entry")
    try:
        meta = json.loads(str(arrays.pop("metadata")))
    except json.JSONDecodeError as e:
        raise TableError(f"table file {path!r}: metadata is not valid JSON ({e})") from None
    _validate(arrays, meta, path)
    features = None
    if "image_features" in arrays:
        features = FeatureSet(
            image_features=jnp.asarray(arrays["image_features"], jnp.float32),
            feature_dim=jnp.asarray(arrays["feature_dim"], jnp.int32),
            labels=jnp.asarray(arrays["labels"], jnp.int32),
            text_features=jnp.asarray(arrays["text_features"], jnp.float32),
            logit_scale=jnp.asarray(arrays["logit_scale"], jnp.float32),
        )
    data = TaskTable(
        snr_db=jnp.asarray(arrays["snr_db"], jnp.float32),
        score=jnp.asarray(arrays["score"], jnp.float32),
        chance_score=jnp.asarray(meta["chance_score"], jnp.float32),
        features=features,
    )
    acc = np.asarray(arrays["accuracy"], np.float32) if "accuracy" in arrays else None
    return Table(data=data, metadata=meta, accuracy=acc)


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _validate(arrays: dict[str, Any], meta: dict, path: str) -> None:
    def fail(msg: str):
        raise TableError(f"table {path!r}: {msg}")

    if not isinstance(meta, dict):
        fail(f"metadata must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        fail(f"metadata 'format' must be {FORMAT!r}, got {meta.get('format')!r}")
    if meta.get("version") != VERSION:
        fail(f"unsupported version {meta.get('version')!r} (this package reads {VERSION})")
    for key in ("task", "encoders", "chance_score", "source"):
        if key not in meta:
            fail(f"metadata lacks {key!r}")
    if meta["task"] not in TASKS:
        fail(f"metadata 'task' must be one of {TASKS}, got {meta['task']!r}")
    encoders = meta["encoders"]
    if (not isinstance(encoders, list) or not encoders
            or not all(isinstance(e, str) and e for e in encoders)):
        fail(f"metadata 'encoders' must be a non-empty list of names, got {encoders!r:.80}")
    k = len(encoders)
    chance = meta["chance_score"]
    if not _is_number(chance) or not np.isfinite(float(chance)):
        fail(f"metadata 'chance_score' must be a finite number, got {chance!r:.80}")
    for key in ("encoder_compute", "encoder_feature_bits"):
        v = meta.get(key)
        if v is not None and (not isinstance(v, list) or not all(
                _is_number(x) and np.isfinite(float(x)) and float(x) > 0 for x in v)):
            fail(f"metadata {key!r} must be a list of positive numbers, got {v!r:.80}")
    if "num_classes" in meta and not (isinstance(meta["num_classes"], int)
                                      and not isinstance(meta["num_classes"], bool)):
        fail(f"metadata 'num_classes' must be an integer, got {meta['num_classes']!r:.80}")
    for key in ("snr_db", "score"):
        if key not in arrays:
            fail(f"missing array {key!r}")
    for key in ("snr_db", "score", "accuracy", "image_features", "text_features",
                "logit_scale", "feature_dim", "labels"):
        if key in arrays and not (np.issubdtype(np.asarray(arrays[key]).dtype, np.number)
                                  and not np.issubdtype(np.asarray(arrays[key]).dtype,
                                                        np.complexfloating)):
            fail(f"array {key!r} must be numeric, got dtype {np.asarray(arrays[key]).dtype}")
    snr = np.asarray(arrays["snr_db"])
    if snr.ndim != 1 or snr.shape[0] < 2:
        fail(f"'snr_db' must be 1-D with at least 2 points, got shape {snr.shape}")
    if not np.all(np.isfinite(snr)):
        fail("'snr_db' has non-finite values")
    if not np.all(np.diff(snr) > 0):
        fail("'snr_db' must be strictly increasing")
    g = snr.shape[0]
    for key in ("score", "accuracy"):
        if key in arrays:
            a = np.asarray(arrays[key])
            if a.shape != (k, g):
                fail(f"{key!r} has shape {a.shape}, expected (num_encoders={k}, grid={g})")
            if not np.all(np.isfinite(a)):
                fail(f"{key!r} has non-finite values")
    if "accuracy" in arrays:
        a = np.asarray(arrays["accuracy"])
        if np.any(a < 0) or np.any(a > 1):
            fail("'accuracy' must lie in [0, 1]")
    _check_monotone(np.asarray(arrays["score"], np.float64), snr, encoders, meta, fail)
    for key in ("encoder_compute", "encoder_feature_bits"):
        if key in meta and len(meta[key]) != k:
            fail(f"metadata {key!r} has {len(meta[key])} entries for {k} encoders")
    present = [key for key in _FEATURE_KEYS if key in arrays]
    if present and len(present) != len(_FEATURE_KEYS):
        missing = sorted(set(_FEATURE_KEYS) - set(present))
        fail(f"feature set is incomplete: missing {missing}")
    if present:
        img = np.asarray(arrays["image_features"])
        txt = np.asarray(arrays["text_features"])
        dims = np.asarray(arrays["feature_dim"])
        labels = np.asarray(arrays["labels"])
        scale = np.asarray(arrays["logit_scale"])
        if img.ndim != 3 or img.shape[0] != k:
            fail(f"'image_features' has shape {img.shape}, expected ({k}, N, Dmax)")
        n, dmax = img.shape[1], img.shape[2]
        if labels.shape != (n,):
            fail(f"'labels' has shape {labels.shape}, expected ({n},)")
        if txt.ndim != 3 or txt.shape[0] != k or txt.shape[2] != dmax:
            fail(f"'text_features' has shape {txt.shape}, expected ({k}, C, {dmax})")
        c = txt.shape[1]
        if dims.shape != (k,) or np.any(dims < 1) or np.any(dims > dmax):
            fail(f"'feature_dim' must have shape ({k},) with values in [1, {dmax}]")
        if scale.shape != (k,) or not np.all(np.isfinite(scale)) or np.any(scale <= 0):
            fail(f"'logit_scale' must have shape ({k},) with finite positive values")
        if not np.issubdtype(labels.dtype, np.integer) or np.any(labels < 0) or np.any(labels >= c):
            fail(f"'labels' must be integers in [0, {c})")
        if not (np.all(np.isfinite(img)) and np.all(np.isfinite(txt))):
            fail("feature arrays have non-finite values")
        if np.any(np.linalg.norm(img.astype(np.float32), axis=-1) == 0):
            fail("'image_features' has an all-zero feature vector")
        if "num_classes" in meta and int(meta["num_classes"]) != c:
            fail(f"metadata says {meta['num_classes']} classes, text features have {c}")


def _check_monotone(score: np.ndarray, snr: np.ndarray, encoders, meta: dict, fail) -> None:
    """A less noisy feature must not score lower: ``score`` should not fall as the SNR rises.
    A table whose metadata says ``monotone`` is refused when it does; any other such table is
    loaded with a :class:`TableWarning` (a worse RB could look better)."""
    drops = np.diff(score, axis=1)
    k, g = np.unravel_index(np.argmin(drops), drops.shape)
    if drops[k, g] >= -1e-6:
        return
    msg = (f"'score' of encoder {encoders[k]!r} falls by {-drops[k, g]:.3g} from "
           f"{snr[g]:g} to {snr[g + 1]:g} dB (a less noisy feature must not score lower)")
    if meta.get("monotone"):
        fail(msg + ", although its metadata says 'monotone'")
    warnings.warn(TableWarning(msg + "; rebuild it with a builder, which fits a monotone curve"),
                  stacklevel=3)
