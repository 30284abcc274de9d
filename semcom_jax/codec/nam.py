"""VLM-CSC's noise attention module (NAM): a receiver that knows the SNR re-weights the received
feature before classifying it.

The received feature ``r = f + n`` (the feature channel of docs/model.md) goes through a learnt change of basis
(initialised to the identity; the class prompts go through it too, so the classifier compares
like with like), then is cut into ``chunks`` equal chunks. An
embedding of the SNR and a descriptor of each chunk (its share of the received energy and its
mean) give one attention score per chunk; the weights are ``chunks * softmax(scores)`` (mean 1),
times a per-element gate from the SNR alone (a learnt, SNR-dependent shrinkage). The weighted
feature is classified as CLIP does (cosine against the class prompts) with a temperature that
also depends on the SNR, so ``log p(true)`` stays calibrated as the noise grows. The encoder is
frozen: the module is trained over random SNRs on features computed once.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from semcom_jax.tables.feature_channel import corrupt_feature


@dataclasses.dataclass(frozen=True)
class NAMSettings:
    chunks: int = 8
    hidden: int = 32
    epochs: int = 4
    batch_size: int = 512
    learning_rate: float = 3e-3
    snr_lo_db: float = -15.0
    snr_hi_db: float = 30.0
    seed: int = 0


def _identity(key, shape, dtype=jnp.float32):
    return jnp.eye(shape[0], shape[1], dtype=dtype)


class NoiseAttention(nn.Module):
    feature_dim: int
    chunks: int = 8
    hidden: int = 32

    @nn.compact
    def __call__(self, received, snr_db):  # (B, D), (B,) -> (B, D) weighted, (B,) scale
        b, d = received.shape
        g = self.chunks
        # A learnt change of basis first, so the chunks can follow where the signal lies.
        mix = nn.Dense(d, use_bias=False, kernel_init=_identity, name="mix")
        received = mix(received)
        if d % g:
            raise ValueError(f"feature width {d} is not a multiple of {g} NAM chunks")
        e = nn.gelu(nn.Dense(self.hidden)(snr_db[:, None] / 10.0))
        e = nn.gelu(nn.Dense(self.hidden)(e))
        x = received.reshape(b, g, d // g)
        energy = jnp.mean(x**2, -1) / (jnp.mean(received**2, -1, keepdims=True) + 1e-12)
        desc = jnp.stack([energy, jnp.mean(x, -1)], -1)  # (B, G, 2)
        h = nn.gelu(nn.Dense(self.hidden)(desc) + nn.Dense(self.hidden)(e)[:, None, :])
        scores = nn.Dense(1)(h)[..., 0]  # (B, G)
        weights = g * jax.nn.softmax(scores, -1)
        gate = 2.0 * jax.nn.sigmoid(nn.Dense(d)(e))  # (B, D)
        out = (x * weights[..., None]).reshape(b, d) * gate
        scale = nn.softplus(nn.Dense(1)(e)[:, 0] + 3.0)
        return out, scale


# The module's temperature factor is softplus(. + 3) (positive, smooth); dividing by its value
# at initialisation starts the receiver at the encoder's own logit scale.
_SCALE_AT_INIT = math.log1p(math.exp(3.0))


def nam_log_probs(module: NoiseAttention, params, received, snr_db, prompts, base_scale):
    """log-softmax over classes of the NAM receiver's output (B, C)."""
    out, scale = module.apply({"params": params}, received, snr_db)
    f = out / (jnp.linalg.norm(out, axis=-1, keepdims=True) + 1e-12)
    t = prompts @ params["mix"]["kernel"]  # the prompts in the same basis
    t = t / jnp.linalg.norm(t, axis=-1, keepdims=True)
    return jax.nn.log_softmax((base_scale * scale / _SCALE_AT_INIT)[:, None] * (f @ t.T), -1)


def nam_loss(key, module: NoiseAttention, params, features, prompts, base_scale, labels,
             snr_lo_db, snr_hi_db):
    """Cross-entropy of the NAM receiver on ``features`` (B, D) corrupted by the feature channel at
    an SNR drawn per feature uniformly in [snr_lo_db, snr_hi_db] dB: what the module trains on,
    alone (:func:`train_nam`) or with the encoder (``TrainSettings.nam_weight``)."""
    b, d = features.shape
    k_snr, k_noise = jax.random.split(key)
    snr_db = jax.random.uniform(k_snr, (b,), minval=snr_lo_db, maxval=snr_hi_db)
    noisy = jax.vmap(corrupt_feature, (0, 0, None, 0))(
        jax.random.split(k_noise, b), features, jnp.int32(d), 10.0 ** (snr_db / 10.0))
    logp = nam_log_probs(module, params, noisy, snr_db, prompts, base_scale)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], -1))


def train_nam(features, labels, prompts, base_scale, settings: NAMSettings = NAMSettings(),
              progress=None):
    """Trains a NAM on frozen clean ``features`` (N, D); returns ``(module, params, losses)``."""
    features = jnp.asarray(features, jnp.float32)
    labels = jnp.asarray(labels, jnp.int32)
    prompts = jnp.asarray(prompts, jnp.float32)
    n, d = features.shape
    if settings.batch_size > n:
        raise ValueError(f"NAM batch_size {settings.batch_size} exceeds the {n} features")
    module = NoiseAttention(d, settings.chunks, settings.hidden)
    key = jax.random.PRNGKey(settings.seed)
    k_init, key = jax.random.split(key)
    params = module.init(k_init, features[:2], jnp.zeros((2,)))["params"]
    tx, epoch = _compiled(module, settings, n)
    opt_state = tx.init(params)

    losses = []
    for e in range(settings.epochs):
        params, opt_state, loss = epoch(params, opt_state, jax.random.fold_in(key, e), features,
                                        labels, prompts, jnp.float32(base_scale))
        losses.append(float(loss))
        if not np.isfinite(losses[-1]):
            raise FloatingPointError(f"NAM training loss became {losses[-1]}; lower the "
                                     "learning rate")
        if progress is not None:
            progress.update(1)
    return module, params, losses


@functools.lru_cache(maxsize=8)
def _compiled(module: NoiseAttention, settings: NAMSettings, n: int):
    """The optimiser and jitted epoch for one (module, settings, data size), built once per
    process (every encoder of a table build has its own feature width)."""
    steps = n // settings.batch_size
    tx = optax.adam(optax.cosine_decay_schedule(settings.learning_rate,
                                                max(2, steps * settings.epochs)))

    def loss_fn(params, key, f, y, prompts, base_scale):
        return nam_loss(key, module, params, f, prompts, base_scale, y, settings.snr_lo_db,
                        settings.snr_hi_db)

    # The data are arguments, not constants folded into the program.
    @jax.jit
    def epoch(params, opt_state, key, features, labels, prompts, base_scale):
        k_perm, k_steps = jax.random.split(key)
        order = jax.random.permutation(k_perm, n)[:steps * settings.batch_size]

        def step(carry, inp):
            params, opt_state = carry
            idx, k = inp
            loss, grads = jax.value_and_grad(loss_fn)(params, k, features[idx], labels[idx],
                                                      prompts, base_scale)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), losses = jax.lax.scan(
            step, (params, opt_state),
            (order.reshape(steps, -1), jax.random.split(k_steps, steps)))
        return params, opt_state, jnp.mean(losses)

    return tx, epoch
