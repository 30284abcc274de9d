"""Contrastive training of a CLIP-style encoder, plain or channel-robust.

Plain: CLIP's symmetric loss with class prompts as the texts: each image's feature against every
prompt (cross-entropy to its class) and each prompt against the batch's images (its class's
images are the positives). Robust (the contrastive-learning semantic-communication paper): the
feature channel of docs/model.md at a random SNR is an augmentation; the corrupted feature is pulled toward
its clean pair, both its class prompt and its own clean image feature, and pushed away from the
other images' clean features. The corruption is :func:`semcom_jax.tables.corrupt_feature`, the
very channel the env and every table measure with. With the NAM in the loop (``nam_weight > 0``,
VLM-CSC trains its noise attention module with the codec) a :class:`NoiseAttention` receiver is
trained with the encoder: its cross-entropy on corrupted features (SNR uniform in the same range)
is one more term, so the encoder learns features that the SNR-aware receiver can read under
noise. The module is a training device: a table's NAM receiver is trained afterwards on the
frozen features, as for any encoder.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from semcom_jax.codec.data import ImageSet
from semcom_jax.codec.model import CLIPStyle, EncoderSpec, init
from semcom_jax.codec.nam import NoiseAttention, nam_loss
from semcom_jax.tables.feature_channel import corrupt_feature


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    epochs: int = 6
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    robust: bool = True
    robust_weight: float = 6.0
    snr_lo_db: float = -15.0  # robust training draws the SNR uniformly in dB from this range
    snr_hi_db: float = 5.0
    nam_weight: float = 0.0  # > 0: a noise attention module trained with the encoder
    seed: int = 0

    def check(self, num_images: int) -> "TrainSettings":
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"training setting {name!r} must be an integer >= 1, got {v!r}")
        if self.batch_size > num_images:
            raise ValueError(f"batch_size {self.batch_size} exceeds the {num_images} training "
                             "images")
        for name in ("learning_rate", "weight_decay", "robust_weight", "nam_weight", "snr_lo_db",
                     "snr_hi_db"):
            if not math.isfinite(float(getattr(self, name))):
                raise ValueError(f"training setting {name!r} must be finite")
        if (self.learning_rate <= 0 or self.weight_decay < 0 or self.robust_weight < 0
                or self.nam_weight < 0):
            raise ValueError("learning_rate must be > 0, weight_decay, robust_weight and "
                             "nam_weight >= 0")
        if self.snr_lo_db > self.snr_hi_db:
            raise ValueError(f"empty SNR range: snr_lo_db={self.snr_lo_db} > "
                             f"snr_hi_db={self.snr_hi_db}")
        return self


def _normalise(x):
    return x / jnp.linalg.norm(x, axis=-1, keepdims=True)


def _image_to_text(sim, labels, allowed):
    """Cross-entropy of each image's class over the prompts it may be compared with
    (``allowed`` (B, C) bool, None: all)."""
    if allowed is not None:
        sim = jnp.where(allowed, sim, -jnp.inf)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(sim, -1), labels[:, None], -1))


def clip_loss(features, prompts, scale, labels, allowed=None):
    """CLIP's symmetric loss with one prompt per class: image -> prompts (cross-entropy) and
    prompt -> batch images (mean log-probability of its class's images), classes absent from
    the batch left out. ``allowed`` (B, C) restricts the prompts each image's cross-entropy
    runs over (the asymmetric replay of continual learning); None: every prompt."""
    sim = scale * _normalise(features) @ _normalise(prompts).T  # (B, C)
    i2t = _image_to_text(sim, labels, allowed)
    onehot = jax.nn.one_hot(labels, prompts.shape[0])  # (B, C)
    logp = jax.nn.log_softmax(sim, axis=0)  # over images, per prompt
    count = onehot.sum(0)
    per_class = -(onehot * logp).sum(0) / jnp.maximum(count, 1.0)
    t2i = jnp.sum(jnp.where(count > 0, per_class, 0.0)) / jnp.maximum(jnp.sum(count > 0), 1.0)
    return 0.5 * (i2t + t2i)


def robust_loss(key, features, prompts, scale, labels, snr_lo_db, snr_hi_db, allowed=None):
    """Corrupted features (random SNR per image) against their class prompt (over the
    ``allowed`` prompts, as :func:`clip_loss`) and against the batch's clean features (InfoNCE,
    its own clean feature the positive, the other classes' images the negatives)."""
    b, d = features.shape
    k_snr, k_noise = jax.random.split(key)
    snr_db = jax.random.uniform(k_snr, (b,), minval=snr_lo_db, maxval=snr_hi_db)
    noisy = jax.vmap(corrupt_feature, (0, 0, None, 0))(
        jax.random.split(k_noise, b), features, jnp.int32(d), 10.0 ** (snr_db / 10.0))
    sim_t = scale * _normalise(noisy) @ _normalise(prompts).T
    to_text = _image_to_text(sim_t, labels, allowed)
    sim_i = scale * _normalise(noisy) @ _normalise(features).T  # (B, B)
    # Other images of the same class are not pushed away: only the class has to survive the
    # channel, and pushing them away would spend the feature's energy on instance detail.
    same = (labels[:, None] == labels[None, :]) & ~jnp.eye(b, dtype=bool)
    sim_i = jnp.where(same, -jnp.inf, sim_i)
    to_clean = -jnp.mean(jnp.diagonal(jax.nn.log_softmax(sim_i, -1)))
    return 0.5 * (to_text + to_clean)


def make_optimizer(settings: TrainSettings, steps: int):
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, settings.learning_rate, max(1, steps // 20), max(2, steps))
    return optax.adamw(schedule, weight_decay=settings.weight_decay)


def make_loss(model: CLIPStyle, settings: TrainSettings, nam: NoiseAttention | None = None):
    """``(params, key, images, labels, allowed=None) -> (loss, features)``: CLIP's loss, plus the
    robust loss if asked (``allowed``: see :func:`clip_loss`); the batch's image features come
    back as the auxiliary output. With ``nam`` (the NAM in the loop) ``params`` is
    ``{"encoder": ..., "nam": ...}`` and the NAM's cross-entropy, weighted ``nam_weight``, is
    added (its key: the second half of a split of ``key``; the robust term gets the first)."""

    def encoder_loss(params, key, x, y, allowed):
        f = model.apply({"params": params}, x)
        prompts = model.apply({"params": params}, method=CLIPStyle.text)
        scale = model.apply({"params": params}, method=CLIPStyle.scale)
        loss = clip_loss(f, prompts, scale, y, allowed)
        if settings.robust:
            loss = loss + settings.robust_weight * robust_loss(
                key, f, prompts, scale, y, settings.snr_lo_db, settings.snr_hi_db, allowed)
        return loss, (f, prompts, scale)

    if nam is None:
        def loss_fn(params, key, x, y, allowed=None):
            loss, (f, _, _) = encoder_loss(params, key, x, y, allowed)
            return loss, f
        return loss_fn

    def joint_loss_fn(params, key, x, y, allowed=None):
        k_enc, k_nam = jax.random.split(key)
        loss, (f, prompts, scale) = encoder_loss(params["encoder"], k_enc, x, y, allowed)
        loss = loss + settings.nam_weight * nam_loss(
            k_nam, nam, params["nam"], f, prompts, scale, y, settings.snr_lo_db,
            settings.snr_hi_db)
        return loss, f

    return joint_loss_fn


def make_step(model: CLIPStyle, settings: TrainSettings, tx, nam: NoiseAttention | None = None):
    """One optimiser step on one minibatch: ``(params, opt_state, key, images, labels,
    allowed=None) -> (params, opt_state, loss, features before the update)`` (not jitted;
    :func:`make_epoch` scans it, the continual learner jits it)."""
    loss_fn = make_loss(model, settings, nam)

    def step(params, opt_state, key, x, y, allowed=None):
        (loss, f), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, key, x, y, allowed)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, f

    return step


def make_epoch(model: CLIPStyle, settings: TrainSettings, tx, nam: NoiseAttention | None = None):
    """One jitted epoch: ``(params, opt_state, key, images, labels) -> (params, opt_state,
    mean loss)``, a scan over shuffled minibatches (the remainder is dropped)."""
    step = make_step(model, settings, tx, nam)

    @jax.jit
    def epoch(params, opt_state, key, images, labels):
        n = labels.shape[0]
        steps = n // settings.batch_size
        k_perm, k_steps = jax.random.split(key)
        order = jax.random.permutation(k_perm, n)[:steps * settings.batch_size]
        order = order.reshape(steps, settings.batch_size)

        def body(carry, inp):
            idx, k = inp
            params, opt_state, loss, _ = step(*carry, k, images[idx], labels[idx])
            return (params, opt_state), loss

        (params, opt_state), losses = jax.lax.scan(
            body, (params, opt_state), (order, jax.random.split(k_steps, steps)))
        return params, opt_state, jnp.mean(losses)

    return epoch


@functools.lru_cache(maxsize=8)
def _compiled(model: CLIPStyle, settings: TrainSettings, steps: int,
              nam: NoiseAttention | None = None):
    """The optimiser and jitted epoch of one (model, settings, schedule length), built once per
    process: training the same encoder again (another seed, a resumed build) reuses the
    compiled program."""
    tx = make_optimizer(settings, steps)
    return tx, make_epoch(model, settings, tx, nam)


def joint_nam_module(spec: EncoderSpec) -> NoiseAttention:
    """The module trained in the loop: the NAM receiver's default shape."""
    return NoiseAttention(spec.feature_dim)


def train_encoder(spec: EncoderSpec, data: ImageSet, settings: TrainSettings, progress=None):
    """Trains one encoder from scratch; returns ``(model, params, losses per epoch)`` (with the
    NAM in the loop, the encoder's params only)."""
    settings.check(len(data))
    h, w = data.images.shape[1:]
    key = jax.random.PRNGKey(settings.seed)
    k_init, key = jax.random.split(key)
    model, params = init(spec, data.num_classes, h, w, k_init)
    nam = None
    if settings.nam_weight > 0:
        nam = joint_nam_module(spec)
        if spec.feature_dim % nam.chunks:
            raise ValueError(f"encoder {spec.name!r}: feature width {spec.feature_dim} is not a "
                             f"multiple of the NAM's {nam.chunks} chunks (nam_weight > 0)")
        k_nam = jax.random.fold_in(k_init, 1)
        params = {"encoder": params,
                  "nam": nam.init(k_nam, jnp.zeros((2, spec.feature_dim)), jnp.zeros((2,)))[
                      "params"]}
    tx, epoch = _compiled(model, settings, settings.epochs * (len(data) // settings.batch_size),
                          nam)
    opt_state = tx.init(params)
    images, labels = jnp.asarray(data.images), jnp.asarray(data.labels)
    losses = []
    for e in range(settings.epochs):
        params, opt_state, loss = epoch(params, opt_state, jax.random.fold_in(key, e), images,
                                        labels)
        loss = float(loss)
        if not np.isfinite(loss):
            raise FloatingPointError(f"encoder {spec.name!r}: training loss became {loss} in "
                                     f"epoch {e + 1}; lower the learning rate")
        losses.append(loss)
        if progress is not None:
            progress.update(1)
            progress.set_postfix(encoder=spec.name, loss=f"{loss:.3f}")
    if nam is not None:
        params = params["encoder"]
    return model, params, losses
