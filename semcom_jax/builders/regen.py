"""``semcom-jax tables regen``: a regeneration table from CLIP and Flax Stable Diffusion.

For each CLIP checkpoint (encoder ``k``) and SNR on the grid: the source image's CLIP image
feature goes through the feature channel (docs/model.md); the noisy feature conditions Stable Diffusion
as in image-variation models (the feature, projected to the UNet's cross-attention width, is a
one-token ``encoder_hidden_states``); DDIM sampling from Gaussian latents (classifier-free
guidance against an all-zero condition), VAE decoding; the score is the cosine similarity of the
*judge* CLIP's image features of source and regenerated image (the judge is the last checkpoint
unless given). The chance score, for an unserved user, is the mean judge similarity between
different source images.

Projection: when the feature width equals the UNet's cross-attention width (ViT-L/14's 768 and
an image-variation UNet) it is the identity; otherwise it is a fixed linear map drawn from
``seed`` (Gaussian, variance 1/width), NOT a trained adapter, which the metadata records.

Stable Diffusion folder: ``unet/``, ``vae/`` and ``scheduler/`` sub-folders with Flax weights
(``save_pretrained`` layout). Also writes a grid image (the paper's Fig. 3): per source image,
the source and its regenerations per encoder (rows) and SNR (columns).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.atomic import atomic_open
from semcom_jax.builders import hf
from semcom_jax.builders.clip import DEFAULT_CHECKPOINTS, check_names, image_features
from semcom_jax.builders.images import read_images
from semcom_jax.builders.parts import PartStore
from semcom_jax.tables.scoring import make_monotone
from semcom_jax.tables.feature_channel import corrupt_feature
from semcom_jax.tables.format import save_table

DEFAULT_SNR_DB = (-20.0, -10.0, 0.0, 10.0, 20.0, 30.0)


def load_sd(path: str):
    diffusers = hf.require("diffusers")
    hf.check_checkpoint(path, "Stable Diffusion")
    try:
        unet, unet_params = diffusers.FlaxUNet2DConditionModel.from_pretrained(
            os.path.expanduser(path), subfolder="unet")
        vae, vae_params = diffusers.FlaxAutoencoderKL.from_pretrained(
            os.path.expanduser(path), subfolder="vae")
        scheduler, sched_state = diffusers.FlaxDDIMScheduler.from_pretrained(
            os.path.expanduser(path), subfolder="scheduler")
    except (OSError, ValueError, EnvironmentError) as e:
        raise ValueError(f"unknown Stable Diffusion checkpoint {path!r}: needs unet/, vae/ and "
                         f"scheduler/ with Flax weights ({e})") from None
    return unet, unet_params, vae, vae_params, scheduler, sched_state


class Regenerator:
    """Jitted: noisy CLIP features (B, D) -> regenerated images (B, H, W, 3) in [0, 1]."""

    def __init__(self, sd_path: str, num_steps: int, guidance: float):
        (self.unet, self.unet_params, self.vae, self.vae_params, self.scheduler,
         sched_state) = load_sd(sd_path)
        self.cross_dim = int(self.unet.config.cross_attention_dim)
        c = self.unet.config
        self.latent_shape = (c.in_channels, c.sample_size, c.sample_size)
        self.scaling = float(getattr(self.vae.config, "scaling_factor", 0.18215))
        self.guidance = float(guidance)
        self.num_steps = int(num_steps)
        self.sched_state = sched_state
        self._fn = jax.jit(self._regenerate)

    def projection(self, width: int, seed: int):
        if width == self.cross_dim:
            return None
        key = jax.random.fold_in(jax.random.PRNGKey(seed), width)
        return jax.random.normal(key, (width, self.cross_dim)) / np.sqrt(width)

    def _regenerate(self, key, features, proj):
        cond = features if proj is None else features @ proj
        cond = cond[:, None, :]  # one-token encoder_hidden_states
        b = features.shape[0]
        state = self.scheduler.set_timesteps(self.sched_state, self.num_steps,
                                             (b,) + self.latent_shape)
        latents = jax.random.normal(key, (b,) + self.latent_shape) * state.init_noise_sigma
        context = jnp.concatenate([jnp.zeros_like(cond), cond])

        def step(i, carry):
            latents, state = carry
            t = state.timesteps[i]
            x = self.scheduler.scale_model_input(state, jnp.concatenate([latents, latents]), t)
            eps = self.unet.apply({"params": self.unet_params}, x,
                                  jnp.full((2 * b,), t, jnp.int32), context).sample
            eps_u, eps_c = jnp.split(eps, 2)
            eps = eps_u + self.guidance * (eps_c - eps_u)
            out = self.scheduler.step(state, eps, t, latents)
            return out.prev_sample, out.state

        latents, _ = jax.lax.fori_loop(0, self.num_steps, step, (latents, state))
        img = self.vae.apply({"params": self.vae_params}, latents / self.scaling,
                             method=self.vae.decode).sample
        img = jnp.clip((img + 1.0) / 2.0, 0.0, 1.0)  # (B, 3, H, W) in [-1, 1] -> [0, 1]
        return jnp.transpose(img, (0, 2, 3, 1))

    def __call__(self, key, features, proj):
        return np.asarray(self._fn(key, jnp.asarray(features, jnp.float32), proj))


def cosine(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.sum(a * b, axis=-1)


def to_uint8(images):
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


@dataclasses.dataclass(frozen=True)
class RegenTableSpec:
    """What ``semcom-jax tables regen`` builds (one field per flag)."""

    checkpoints: tuple = DEFAULT_CHECKPOINTS  # CLIP checkpoints whose features are sent
    names: tuple | None = None  # the encoders' names (default: from the checkpoints)
    judge: str | None = None  # the CLIP checkpoint that scores (default: the last one)
    snr_db: tuple = DEFAULT_SNR_DB
    num_steps: int = 25  # DDIM steps
    guidance: float = 3.0
    draws: int = 1  # regenerations per image and SNR
    batch_size: int = 8
    resize: int | None = None
    max_per_class: int | None = None
    seed: int = 0
    grid_images: int = 2  # source images shown in the grid image


def build(images: str, sd: str, out: str, spec: RegenTableSpec = RegenTableSpec(),
          grid_png=None, progress: bool = True) -> dict:
    """Builds the regeneration table ``spec`` describes from the labelled ``images`` and the
    Stable Diffusion checkpoint ``sd`` at ``out`` (and the grid image ``grid_png``); returns
    its metadata."""
    hf.require("transformers")
    hf.require("diffusers")
    names, judge, snr_db, num_steps = spec.names, spec.judge, spec.snr_db, spec.num_steps
    guidance, draws, batch_size, resize = spec.guidance, spec.draws, spec.batch_size, spec.resize
    max_per_class, seed, grid_images = spec.max_per_class, spec.seed, spec.grid_images
    checkpoints = [str(c) for c in spec.checkpoints]
    names = check_names(checkpoints, names)
    grid = np.asarray(sorted(float(s) for s in snr_db), np.float32)
    if len(grid) < 2 or np.any(np.diff(grid) <= 0) or not np.all(np.isfinite(grid)):
        raise ValueError(f"--snr-db needs at least 2 distinct finite values, got {list(snr_db)}")
    if num_steps < 1 or draws < 1 or batch_size < 1:
        raise ValueError("steps, draws and batch_size must be >= 1")
    judge = str(judge or checkpoints[-1])
    for c in checkpoints + [judge]:
        hf.check_checkpoint(c, "CLIP")
    data = read_images(images, resize, max_per_class)
    regen = Regenerator(sd, num_steps, guidance)
    judge_model, judge_params, judge_proc = hf.load_clip(judge)
    src_judge = image_features(judge_model, judge_params, judge_proc, data.images, batch_size)
    n = len(data.images)
    off_diag = ~np.eye(n, dtype=bool)
    sims = cosine(src_judge[:, None, :], src_judge[None, :, :])
    chance = float(np.mean(sims[off_diag])) if n > 1 else 0.0
    parts = PartStore(out)
    key = jax.random.PRNGKey(seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(checkpoints) * len(grid) * draws * n, unit="img",
                   desc="regenerating")
    scores, samples, widths = [], [], []
    show = min(grid_images, n)
    for i, ckpt in enumerate(checkpoints):
        settings = {"checkpoint": ckpt, "sd": sd, "judge": judge, "images": data.source, "n": n,
                    "grid": grid.tolist(), "steps": num_steps, "guidance": guidance,
                    "draws": draws, "seed": seed, "resize": resize,
                    "max_per_class": max_per_class, "show": show}
        part = parts.load(i, settings)
        if part is None:
            model, params, proc = hf.load_clip(ckpt)
            feats = image_features(model, params, proc, data.images, batch_size)
            width = feats.shape[1]
            proj = regen.projection(width, seed)
            score = np.zeros(len(grid), np.float32)
            shown = np.zeros((len(grid), show) + data.images.shape[1:], np.uint8)
            for g, s in enumerate(grid):
                snr_lin = 10.0 ** (float(s) / 10.0)
                total = 0.0
                for d in range(draws):
                    for start in range(0, n, batch_size):
                        k = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(
                            key, i), g), d * n + start)
                        k_noise, k_latent = jax.random.split(k)
                        f = jnp.asarray(feats[start:start + batch_size])
                        noisy = jax.vmap(corrupt_feature, (0, 0, None, None))(
                            jax.random.split(k_noise, f.shape[0]), f, jnp.int32(width),
                            jnp.float32(snr_lin))
                        out_img = to_uint8(regen(k_latent, noisy, proj))
                        rj = image_features(judge_model, judge_params, judge_proc, out_img,
                                            batch_size)
                        total += float(np.sum(cosine(rj, src_judge[start:start + batch_size])))
                        if d == 0 and start < show:
                            m = min(show - start, len(out_img))
                            shown[g, start:start + m] = _fit(out_img[:m], data.images.shape[1:])
                        if bar is not None:
                            bar.update(f.shape[0])
                score[g] = total / (draws * n)
            part = {"score": score, "shown": shown, "width": np.int32(width)}
            parts.save(i, settings, part)
        elif bar is not None:
            bar.update(len(grid) * draws * n)
        scores.append(part["score"])
        samples.append(part["shown"])
        widths.append(int(part["width"]))
    if bar is not None:
        bar.close()
    meta = {
        "task": "regeneration",
        "encoders": names,
        "checkpoints": checkpoints,
        "encoder_feature_bits": [w * 32 for w in widths],
        "dataset": f"{data.source}: {data.num_classes} classes, {n} images",
        "chance_score": chance,
        "source": "measured",
        "how": (f"Stable Diffusion {sd!r} conditioned on the noisy CLIP image feature "
                f"(one-token encoder_hidden_states; projection to width {regen.cross_dim}: "
                + ", ".join(f"{nm}: {'identity' if w == regen.cross_dim else 'fixed random'}"
                            for nm, w in zip(names, widths))
                + f"), DDIM {num_steps} steps, guidance {guidance}, {draws} draw(s) per image "
                f"and SNR; score = cosine similarity of {judge!r} image features of source and "
                "regenerated image; chance = mean similarity between different sources."),
        "judge": judge,
        "command": "semcom-jax tables regen " + " ".join(sys.argv[3:]),
        "created": datetime.date.today().isoformat(),
    }
    save_table(out, *make_monotone({"snr_db": grid, "score": np.stack(scores)}, meta))
    if grid_png:
        write_grid(grid_png, data.images[:show], np.stack(samples), names, grid)
    parts.remove()
    return meta


def _fit(images, shape):
    """Regenerated images resized to the source size, for the grid image."""
    if images.shape[1:] == tuple(shape):
        return images
    from PIL import Image
    return np.stack([np.asarray(Image.fromarray(im).resize((shape[1], shape[0]))) for im in images])


def write_grid(path, sources, samples, names, grid) -> None:
    """``samples`` (K, G, S, H, W, 3): one panel per source image, encoders x SNRs."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k, g, s = samples.shape[:3]
    fig, axes = plt.subplots(s * k, g + 1, figsize=(1.6 * (g + 1), 1.6 * s * k), squeeze=False)
    for j in range(s):
        for e in range(k):
            row = axes[j * k + e]
            row[0].imshow(sources[j])
            row[0].set_ylabel(names[e], fontsize=7)
            for c in range(g):
                row[c + 1].imshow(samples[e, c, j])
                if j == 0 and e == 0:
                    row[c + 1].set_title(f"{grid[c]:g} dB", fontsize=8)
            for ax in row:
                ax.set_xticks([])
                ax.set_yticks([])
    axes[0][0].set_title("source", fontsize=8)
    fig.suptitle("Regeneration from noisy CLIP features (rows: encoder; columns: SNR)",
                 fontsize=9)
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)
