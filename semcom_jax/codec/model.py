"""Small CLIP-style image encoders (ViTs) and learned class prompts, with their compute.

An encoder cuts an (H, W) grey image into ``patch x patch`` tokens, embeds them (width ``width``,
learned positions), runs ``depth`` pre-norm transformer blocks (``heads`` heads, MLP 4x), pools
the tokens by their mean and projects to ``feature_dim`` without bias, as CLIP's image tower
does. The "text tower" is one learned prompt embedding per class, of width ``feature_dim``;
zero-shot classification is CLIP's: softmax over ``logit_scale * cos(image, prompt)``.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

MAX_LOGIT_SCALE = 100.0  # CLIP clips its learned temperature here


@dataclasses.dataclass(frozen=True)
class EncoderSpec:
    name: str
    patch: int
    width: int
    depth: int
    heads: int
    feature_dim: int
    mlp_ratio: int = 4

    def check(self, height: int, width: int) -> "EncoderSpec":
        for field in ("patch", "width", "depth", "heads", "feature_dim", "mlp_ratio"):
            v = getattr(self, field)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"encoder {self.name!r}: {field} must be an integer >= 1, "
                                 f"got {v!r}")
        if height % self.patch or width % self.patch:
            raise ValueError(f"encoder {self.name!r}: patch {self.patch} does not divide the "
                             f"{height}x{width} images")
        if self.width % self.heads:
            raise ValueError(f"encoder {self.name!r}: width {self.width} is not a multiple of "
                             f"{self.heads} heads")
        return self

    def tokens(self, height: int, width: int) -> int:
        return (height // self.patch) * (width // self.patch)

    def macs(self, height: int, width: int) -> int:
        """Multiply-accumulates of one image through the encoder (matmuls only, as CLIP's
        published GFLOPs count them): patch embedding, per block the QKV/output projections,
        the attention scores and mixing and the MLP, then the projection."""
        t, w = self.tokens(height, width), self.width
        per_block = t * (4 * w * w + 2 * self.mlp_ratio * w * w) + 2 * t * t * w
        return t * self.patch ** 2 * w + self.depth * per_block + w * self.feature_dim


# The family the shipped table is trained with: compute ratios 1 : 3.5 : 19.6 on 28x28 images,
# close to CLIP ViT-B/32 : B/16 : L/14 (1 : 3.96 : 18.4), feature widths 64, 64, 96. The three
# differ in width, not patch size: on 28x28 grey images a finer patch buys no accuracy (a
# ViT-S/4 of width 32 tied the width-32 ViT/7, docs/codec.md), a wider encoder does.
FASHION_FAMILY = (
    EncoderSpec("ViT-T/7", patch=7, width=16, depth=2, heads=2, feature_dim=64),
    EncoderSpec("ViT-S/7", patch=7, width=32, depth=2, heads=2, feature_dim=64),
    EncoderSpec("ViT-M/7", patch=7, width=64, depth=3, heads=4, feature_dim=96),
)
# For 8x8 digits (tests): three sizes, scaled down.
DIGITS_FAMILY = (
    EncoderSpec("ViT-T/4", patch=4, width=16, depth=1, heads=1, feature_dim=16),
    EncoderSpec("ViT-S/2", patch=2, width=16, depth=1, heads=1, feature_dim=16),
    EncoderSpec("ViT-M/2", patch=2, width=32, depth=2, heads=2, feature_dim=24),
)


class Block(nn.Module):
    width: int
    heads: int
    mlp_ratio: int

    @nn.compact
    def __call__(self, x):
        y = nn.LayerNorm()(x)
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(y, y)
        y = nn.LayerNorm()(x)
        y = nn.gelu(nn.Dense(self.mlp_ratio * self.width)(y))
        return x + nn.Dense(self.width)(y)


class ImageEncoder(nn.Module):
    spec: EncoderSpec

    @nn.compact
    def __call__(self, images):  # (B, H, W) -> (B, feature_dim)
        s = self.spec
        b, h, w = images.shape
        p = s.patch
        x = images.reshape(b, h // p, p, w // p, p).transpose(0, 1, 3, 2, 4)
        x = x.reshape(b, (h // p) * (w // p), p * p)
        x = nn.Dense(s.width)(x)
        pos = self.param("pos", nn.initializers.normal(0.02), (x.shape[1], s.width))
        x = x + pos
        for _ in range(s.depth):
            x = Block(s.width, s.heads, s.mlp_ratio)(x)
        x = nn.LayerNorm()(x).mean(axis=1)
        return nn.Dense(s.feature_dim, use_bias=False)(x)


class CLIPStyle(nn.Module):
    """Image encoder + learned class prompts + learned temperature."""

    spec: EncoderSpec
    num_classes: int

    def setup(self):
        self.image = ImageEncoder(self.spec)
        self.prompts = self.param("prompts", nn.initializers.normal(1.0),
                                  (self.num_classes, self.spec.feature_dim))
        self.log_scale = self.param("log_scale", nn.initializers.constant(math.log(1 / 0.07)),
                                    ())

    def __call__(self, images):
        return self.image(images)

    def text(self):
        return self.prompts

    def scale(self):
        return jnp.minimum(jnp.exp(self.log_scale), MAX_LOGIT_SCALE)


def init(spec: EncoderSpec, num_classes: int, height: int, width: int, key):
    spec.check(height, width)
    model = CLIPStyle(spec, num_classes)
    # jitted: op-by-op initialisation dispatches every op of the ViT eagerly
    params = jax.jit(model.init)(key, jnp.zeros((1, height, width), jnp.float32))["params"]
    return model, params


def encode(model: CLIPStyle, params, images, batch_size: int = 1000):
    """(N, feature_dim) float32 features of ``images`` (N, H, W), in batches of one shape."""
    fn = _encode_fn(model)
    out = []
    n = images.shape[0]
    for start in range(0, n, batch_size):
        batch = images[start:start + batch_size]
        pad = batch_size - batch.shape[0]
        if pad:
            batch = jnp.concatenate([batch, jnp.zeros((pad,) + batch.shape[1:], batch.dtype)])
        out.append(fn(params, batch)[:batch_size - pad])
    return jnp.concatenate(out)


@functools.lru_cache(maxsize=16)
def _encode_fn(model):
    return jax.jit(lambda p, x: model.apply({"params": p}, x))


def text_and_scale(model: CLIPStyle, params):
    """(C, feature_dim) prompt features and the logit scale."""
    return (model.apply({"params": params}, method=CLIPStyle.text),
            model.apply({"params": params}, method=CLIPStyle.scale))
