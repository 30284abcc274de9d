"""Loading the optional model libraries (the ``tables`` extra) and checkpoints, with clear errors.

Checkpoints are hub names (downloaded by ``from_pretrained`` on a machine that can reach the hub)
or local folders written by ``save_pretrained``; both go through the same ``from_pretrained``
call, so the tests' tiny local models exercise the code path of real checkpoints.
"""

from __future__ import annotations

import os

EXTRA_HINT = "pip install 'semcom-jax[tables]' (transformers<5 with Flax CLIP, diffusers<0.40)"


def require(module: str):
    """Imports ``transformers`` or ``diffusers``, or raises ValueError saying what to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(f"building tables from models needs {module!r}: {EXTRA_HINT}") from None


def _looks_local(name: str) -> bool:
    """A path rather than a hub name ("owner/model"): absolute, relative or home-based."""
    return name.startswith((".", "/", "~")) or os.path.exists(name)


def _hub_address() -> tuple[str, int]:
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def _in_cache(name: str) -> bool:
    """Whether a hub checkpoint was downloaded before (then no network is needed)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return any(isinstance(try_to_load_from_cache(name, f), str)
               for f in ("config.json", "model_index.json"))


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() not in ("", "0", "false"):
        return False
    import socket

    try:
        socket.create_connection(_hub_address(), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def check_checkpoint(name: str, what: str) -> None:
    """Refuses, before any work, a checkpoint that cannot be loaded: a missing folder, or a hub
    name that is neither cached nor downloadable from here (one connection attempt of a few
    seconds, rather than ``from_pretrained``'s retries)."""
    if _looks_local(name):
        if not os.path.isdir(os.path.expanduser(name)):
            raise ValueError(f"unknown {what} checkpoint {name!r}: no such folder")
        return
    if not _in_cache(name) and not _hub_reachable():
        host, port = _hub_address()
        raise ValueError(f"{what} checkpoint {name!r} is not a local folder, not in the Hugging "
                         f"Face cache, and the hub ({host}:{port}) cannot be reached from here: "
                         "download it where the hub is reachable (save_pretrained) and pass "
                         "its folder")


def load_clip(name: str):
    """``(FlaxCLIPModel, params, CLIPProcessor)`` of a checkpoint. The model is built without
    initialising weights of its own (``_do_init=False``): its initialisers run op by op, each
    compiled alone, only to be replaced by the checkpoint's weights."""
    transformers = require("transformers")
    check_checkpoint(name, "CLIP")
    try:
        model, params = transformers.FlaxCLIPModel.from_pretrained(os.path.expanduser(name),
                                                                   _do_init=False)
        processor = transformers.CLIPProcessor.from_pretrained(os.path.expanduser(name))
    except (OSError, ValueError, EnvironmentError) as e:
        raise ValueError(f"unknown CLIP checkpoint {name!r}: not a folder holding a Flax CLIP "
                         f"model and its processor, nor a hub model reachable from here ({e})"
                         ) from None
    return model, params, processor


def vision_macs(vision_config) -> float:
    """Multiply-accumulates of one image through a ViT vision tower (patch embedding, attention
    and MLP of every layer). ViT-B/32 at 224 px gives 4.4e9, the unit of ``DM_k``."""
    c = vision_config
    tokens = (c.image_size // c.patch_size) ** 2 + 1
    d, m = c.hidden_size, c.intermediate_size
    per_layer = tokens * (4 * d * d + 2 * d * m) + 2 * tokens * tokens * d
    patch = (c.image_size // c.patch_size) ** 2 * 3 * c.patch_size**2 * d
    return float(c.num_hidden_layers * per_layer + patch)
