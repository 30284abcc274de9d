"""Labelled images for the table builders: a folder with one sub-folder per class, or an ``.npz``.

Folder: ``ROOT/<class name>/<image files>``; classes are the sub-folders in sorted order, files
with the extensions in ``IMAGE_EXTENSIONS``; every image is converted to RGB. ``.npz``: ``images``
(N, H, W, 3) uint8, ``labels`` (N,) integers and optional ``class_names`` (C,) strings (default
``class0``, ``class1``, ...). Bad input (a missing folder, an empty class, an unreadable image,
mixed sizes without ``resize``) raises ``ValueError`` naming the path, before any model runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".ppm")


@dataclass(frozen=True)
class LabelledImages:
    images: np.ndarray  # (N, H, W, 3) uint8
    labels: np.ndarray  # (N,) int32
    class_names: list
    source: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise ValueError("reading image folders needs Pillow: pip install 'semcom-jax[tables]'") \
            from None
    return Image


def read_images(path: str, resize: int | None = None, max_per_class: int | None = None
                ) -> LabelledImages:
    """Reads labelled images; ``resize`` (pixels) makes every image ``resize x resize``."""
    if resize is not None and resize < 1:
        raise ValueError(f"resize must be >= 1 pixel, got {resize}")
    if not os.path.exists(path):
        raise ValueError(f"image source {path!r} does not exist")
    if os.path.isdir(path):
        data = _read_folder(path, resize, max_per_class)
    elif path.endswith(".npz"):
        data = _read_npz(path, resize, max_per_class)
    else:
        raise ValueError(f"image source {path!r} must be a folder of class folders or an .npz")
    if data.num_classes < 2:
        raise ValueError(f"{path!r}: zero-shot classification needs at least 2 classes, "
                         f"found {data.num_classes}")
    return data


def _read_folder(root: str, resize, max_per_class) -> LabelledImages:
    Image = _pil()
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise ValueError(f"image folder {root!r} has no class sub-folders")
    images, labels, first = [], [], None
    for c, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = sorted(f for f in os.listdir(folder) if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise ValueError(f"class folder {folder!r} holds no images "
                             f"(extensions {', '.join(IMAGE_EXTENSIONS)})")
        for f in files[:max_per_class]:
            p = os.path.join(folder, f)
            try:
                with Image.open(p) as im:
                    im = im.convert("RGB")
                    if resize is not None:
                        im = im.resize((resize, resize), Image.BICUBIC)
                    arr = np.asarray(im, np.uint8)
            except Exception as e:  # PIL raises several types for broken files
                raise ValueError(f"cannot read image {p!r}: {e}") from None
            if first is None:
                first = (p, arr.shape)
            elif arr.shape != first[1]:
                raise ValueError(f"images of mixed sizes: {first[0]!r} is {first[1][1]}x"
                                 f"{first[1][0]}, {p!r} is {arr.shape[1]}x{arr.shape[0]}; "
                                 "pass --resize N to resize every image to N x N")
            images.append(arr)
            labels.append(c)
    return LabelledImages(np.stack(images), np.asarray(labels, np.int32), classes, root)


def _read_npz(path: str, resize, max_per_class) -> LabelledImages:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:
        raise ValueError(f"cannot read {path!r}: {e}") from None
    for key in ("images", "labels"):
        if key not in arrays:
            raise ValueError(f"{path!r} lacks the array {key!r} (needs images and labels)")
    images, labels = arrays["images"], arrays["labels"]
    if images.dtype == object or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"{path!r}: 'images' must be one (N, H, W, 3) array of equal-sized "
                         f"images, got shape {images.shape} dtype {images.dtype}")
    if images.dtype != np.uint8:
        raise ValueError(f"{path!r}: 'images' must be uint8, got {images.dtype}")
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{path!r}: 'labels' must be ({images.shape[0]},) integers")
    if np.any(labels < 0):
        raise ValueError(f"{path!r}: 'labels' must be >= 0")
    c = int(labels.max()) + 1 if labels.size else 0
    names = ([str(s) for s in arrays["class_names"]] if "class_names" in arrays
             else [f"class{i}" for i in range(c)])
    if len(names) < c:
        raise ValueError(f"{path!r}: {len(names)} class names for labels up to {c - 1}")
    for i in range(len(names)):
        if not np.any(labels == i):
            raise ValueError(f"{path!r}: class {i} ({names[i]!r}) has no images")
    if max_per_class is not None:
        keep = np.concatenate([np.nonzero(labels == i)[0][:max_per_class]
                               for i in range(len(names))])
        images, labels = images[np.sort(keep)], labels[np.sort(keep)]
    if resize is not None:
        Image = _pil()
        images = np.stack([np.asarray(Image.fromarray(im).resize((resize, resize),
                                                                  Image.BICUBIC)) for im in images])
    return LabelledImages(images, labels.astype(np.int32), names, path)
