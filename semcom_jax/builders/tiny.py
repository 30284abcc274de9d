"""Tiny, randomly initialised CLIP and Stable Diffusion checkpoints, built from configs in code.

They are written with ``save_pretrained`` in exactly the layout of real checkpoints, so the
table builders load them through the same ``from_pretrained`` calls that users run on OpenAI CLIP
and Stable Diffusion; the tests, the build-time benchmark and an offline demo use them. Their
*numbers* mean nothing (random weights): they test the pipeline, not CLIP.

    semcom-jax tables tiny-models --out /tmp/tiny    # tiny-test-clip-0/ 1/ 2/, tiny-test-sd/
"""

from __future__ import annotations

import json
import os
import tempfile

import jax
import numpy as np

from semcom_jax.builders import hf

# Three encoders that differ like the real ones: patch size (tokens) and embedding width.
TINY_CLIPS = ({"patch_size": 16, "projection_dim": 16, "hidden_size": 32},
              {"patch_size": 8, "projection_dim": 16, "hidden_size": 32},
              {"patch_size": 8, "projection_dim": 24, "hidden_size": 48})
IMAGE_SIZE = 32


def host_init(abstract, seed: int, **constants):
    """Random parameters of the shapes in ``abstract``, drawn with numpy: norm scales 1, biases
    0, kernels LeCun-normal (std 1/sqrt(fan-in)), embeddings N(0, 0.02); a leaf named in
    ``constants`` takes that value. The models' own initialisers run op by op, each compiled on
    its own (661 compilations for the four tiny models; most of their build time)."""
    rng = np.random.default_rng(seed)

    def leaf(path, x):
        name = str(getattr(path[-1], "key", path[-1]))
        if name in constants:
            return np.full(x.shape, constants[name], x.dtype)
        if name == "scale":
            return np.ones(x.shape, x.dtype)
        if name == "bias" or x.ndim == 0:
            return np.zeros(x.shape, x.dtype)
        if name == "kernel":
            fan_in = int(np.prod(x.shape[:-1]))
            return rng.normal(0.0, 1.0 / np.sqrt(fan_in), x.shape).astype(x.dtype)
        return rng.normal(0.0, 0.02, x.shape).astype(x.dtype)

    return jax.tree_util.tree_map_with_path(leaf, abstract)


def _tokenizer_files(folder: str) -> tuple[str, str]:
    """A byte-level vocabulary with no merges: every character is a token (CLIP's BPE format)."""
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    os.makedirs(folder, exist_ok=True)
    vocab_file, merges_file = os.path.join(folder, "vocab.json"), os.path.join(folder, "merges.txt")
    with open(vocab_file, "w") as fh:
        json.dump(vocab, fh)
    with open(merges_file, "w") as fh:
        fh.write("#version: 0.2\n")
    return vocab_file, merges_file


def make_clip(folder: str, patch_size: int = 8, projection_dim: int = 16, hidden_size: int = 32,
              seed: int = 0) -> str:
    tf = hf.require("transformers")
    with tempfile.TemporaryDirectory() as tmp:  # save_pretrained below writes the real copy
        tokenizer = tf.CLIPTokenizer(*_tokenizer_files(tmp))
    n_vocab = len(tokenizer)
    config = tf.CLIPConfig(
        text_config=dict(vocab_size=n_vocab, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64,
                         bos_token_id=n_vocab - 2, eos_token_id=n_vocab - 1,
                         pad_token_id=n_vocab - 1),
        vision_config=dict(image_size=IMAGE_SIZE, patch_size=patch_size, hidden_size=hidden_size,
                           intermediate_size=2 * hidden_size, num_hidden_layers=2,
                           num_attention_heads=4),
        projection_dim=projection_dim)
    model = tf.FlaxCLIPModel(config, _do_init=False)
    params = host_init(jax.eval_shape(lambda k: model.init_weights(k, model.input_shape),
                                      jax.random.PRNGKey(0)), seed,
                       logit_scale=config.logit_scale_init_value)
    model.save_pretrained(folder, params=params)
    processor = tf.CLIPProcessor(
        image_processor=tf.CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                              crop_size={"height": IMAGE_SIZE,
                                                         "width": IMAGE_SIZE}),
        tokenizer=tokenizer)
    processor.save_pretrained(folder)
    return folder


def make_sd(folder: str, cross_attention_dim: int = 16, seed: int = 0) -> str:
    """UNet on 8x8x4 latents, a VAE with one 2x down/up-sampling (16x16 images), DDIM."""
    d = hf.require("diffusers")
    unet = d.FlaxUNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), layers_per_block=1,
        cross_attention_dim=cross_attention_dim, attention_head_dim=8)
    unet.save_pretrained(os.path.join(folder, "unet"),
                         params=host_init(jax.eval_shape(unet.init_weights, jax.random.PRNGKey(0)),
                                          seed))
    vae = d.FlaxAutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), sample_size=16,
        norm_num_groups=8)
    vae.save_pretrained(os.path.join(folder, "vae"),
                        params=host_init(jax.eval_shape(vae.init_weights, jax.random.PRNGKey(0)),
                                         seed + 1))
    d.FlaxDDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear",
                        beta_start=0.00085, beta_end=0.012, clip_sample=False,
                        set_alpha_to_one=False).save_pretrained(os.path.join(folder, "scheduler"))
    return folder


def make_all(out: str, seed: int = 0) -> dict:
    # Folder names say what these are: tables built from them are named after their folders.
    clips = [make_clip(os.path.join(out, f"tiny-test-clip-{i}"), seed=seed + i, **kw)
             for i, kw in enumerate(TINY_CLIPS)]
    return {"clip": clips, "sd": make_sd(os.path.join(out, "tiny-test-sd"), seed=seed)}
