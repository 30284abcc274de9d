"""Real labelled images for the learned codec: Fashion-MNIST or scikit-learn's digits.

Fashion-MNIST (70,000 28x28 grey images, 10 classes) comes from Debian's
``dataset-fashion-mnist`` package (``apt-get install dataset-fashion-mnist`` puts the four idx
files in ``/usr/share/datasets/fashion-mnist``); ``SEMCOM_FASHION_MNIST`` or ``root=`` names
another folder holding the same four files. ``digits`` (1,797 8x8 images) is scikit-learn's
bundled ``load_digits``, for tests: it needs no download and trains in seconds.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass

import numpy as np

FASHION_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ["t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle boot"]
DATASETS = ("fashion-mnist", "digits")
# Minibatch size per image set: digits has 1,198 training images, so 256 would leave four
# optimiser steps per epoch.
BATCH_SIZE = {"fashion-mnist": 256, "digits": 32}
SPLITS = ("train", "test")


@dataclass(frozen=True)
class ImageSet:
    images: np.ndarray  # (N, H, W) float32 in [0, 1]
    labels: np.ndarray  # (N,) int32
    class_names: list
    source: str  # what the images are, for table metadata

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, index) -> "ImageSet":
        index = np.asarray(index)
        return ImageSet(self.images[index], self.labels[index], self.class_names, self.source)

    def classes(self, keep) -> "ImageSet":
        """Only the images whose label is in ``keep`` (labels unchanged)."""
        return self.subset(np.flatnonzero(np.isin(self.labels, np.asarray(keep))))

    def per_class(self, n: int, seed: int = 0) -> "ImageSet":
        """At most ``n`` images of each class, drawn without replacement, in a fixed order."""
        return self.subset(per_class_index(self.labels, n, seed))


def per_class_index(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``n`` examples of each class, drawn without replacement."""
    if n < 1:
        raise ValueError(f"examples per class must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:n]
                                   for c in np.unique(labels)]))


def _read_idx(path: str, magic: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    got = int.from_bytes(raw[:4], "big")
    if got != magic:
        raise ValueError(f"{path!r} is not an idx file of the expected kind (magic {got:#x}, "
                         f"expected {magic:#x})")
    ndim = magic & 0xFF
    shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path!r} is truncated: {data.size} bytes for shape {shape}")
    return data.reshape(shape)


def fashion_mnist(split: str = "train", root: str | None = None) -> ImageSet:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = root or os.environ.get("SEMCOM_FASHION_MNIST") or FASHION_ROOT
    stem = "train" if split == "train" else "t10k"
    img_path = os.path.join(root, f"{stem}-images-idx3-ubyte.gz")
    lab_path = os.path.join(root, f"{stem}-labels-idx1-ubyte.gz")
    for p in (img_path, lab_path):
        if not os.path.isfile(p):
            raise ValueError(
                f"Fashion-MNIST file {p!r} not found: install Debian's package "
                "(apt-get install dataset-fashion-mnist) or set SEMCOM_FASHION_MNIST to a folder "
                "holding the four idx .gz files")
    images = _read_idx(img_path, 0x803)
    labels = _read_idx(lab_path, 0x801)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"Fashion-MNIST {split}: {images.shape[0]} images but "
                         f"{labels.shape[0]} labels")
    return ImageSet(images.astype(np.float32) / 255.0, labels.astype(np.int32),
                    list(FASHION_CLASSES), f"Fashion-MNIST {split} split ({root})")


def digits(split: str = "train") -> ImageSet:
    """scikit-learn's 8x8 digits, split 2/3 train, 1/3 test by a fixed permutation."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError("the digits images need scikit-learn: pip install scikit-learn") \
            from None
    d = load_digits()
    order = np.random.default_rng(0).permutation(len(d.target))
    cut = (2 * len(order)) // 3
    index = np.sort(order[:cut] if split == "train" else order[cut:])
    return ImageSet((d.images[index] / 16.0).astype(np.float32),
                    d.target[index].astype(np.int32), [str(c) for c in range(10)],
                    f"scikit-learn load_digits, {split} part (fixed 2/3 : 1/3 split)")


def load(name: str, split: str) -> ImageSet:
    if name == "fashion-mnist":
        return fashion_mnist(split)
    if name == "digits":
        return digits(split)
    raise ValueError(f"unknown image set {name!r}: choose one of {DATASETS}")
