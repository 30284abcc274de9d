"""How long building tables from models takes per image, on this machine.

    python benchmarks/table_build_time.py                 # tiny models + real CLIP sizes
    python benchmarks/table_build_time.py --skip-real     # tiny models only (seconds)

Measured (compile excluded, best of ``--repeats``):
- ``tiny``: the tiny random checkpoints of the tests (``semcom_jax.builders.tiny``): CLIP image
  features per image, and one regeneration (DDIM steps x 2 UNet passes for guidance, VAE decode)
  per image;
- ``real-size CLIP``: FlaxCLIPModel with the *architectures* of ViT-B/32, B/16 and L/14 at 224 px
  (randomly initialised: no model hub here; the compute is that of the real checkpoints): image
  features per image, the cost of ``semcom-jax tables clip`` per image and checkpoint.

Stable Diffusion at its real size (a 860M-parameter UNet, 64x64 latents) is not timed here: per
image it costs ``2 x steps`` UNet passes, which this benchmark's ``--sd-real-step`` option
times once when asked (minutes of initialisation on a 2-core CPU).
Results: ``benchmarks/results/table_build_time.csv``.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from common import best_time, machine, output_folder, write_csv

HERE = os.path.dirname(os.path.abspath(__file__))
REAL_CLIP = {  # (patch, width, layers, heads, mlp, projection) of OpenAI's vision towers
    "ViT-B/32": (32, 768, 12, 12, 3072, 512),
    "ViT-B/16": (16, 768, 12, 12, 3072, 512),
    "ViT-L/14": (14, 1024, 24, 16, 4096, 768),
}


def time_clip(model, params, batch: int, size: int, repeats: int) -> float:
    fn = jax.jit(lambda p, x: model.get_image_features(pixel_values=x, params=p))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(batch, 3, size, size)), jnp.float32)
    jax.block_until_ready(fn(params, x))
    return best_time(lambda: jax.block_until_ready(fn(params, x)), repeats) / batch


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps of a regeneration")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--sd-real-step", action="store_true")
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/table_build_time-<time>/; the "
                         "committed figures: --out benchmarks/results)")
    a = ap.parse_args(argv)
    folder = output_folder(a.out, "table_build_time")

    import transformers

    from semcom_jax.builders import hf, regen, tiny

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = tiny.make_all(tmp)
        for i, path in enumerate(paths["clip"]):
            model, params, _ = hf.load_clip(path)
            t = time_clip(model, params, a.batch, tiny.IMAGE_SIZE, a.repeats)
            rows.append({"model": f"tiny CLIP {i}", "stage": "image features", "size": "32 px",
                         "s_per_image": t})
        r = regen.Regenerator(paths["sd"], a.steps, 3.0)
        f = jax.random.normal(jax.random.PRNGKey(0), (a.batch, r.cross_dim))
        r(jax.random.PRNGKey(1), f, None)
        t = best_time(lambda: r(jax.random.PRNGKey(1), f, None), a.repeats) / a.batch
        rows.append({"model": "tiny SD", "stage": f"regeneration, {a.steps} DDIM steps",
                     "size": "16 px", "s_per_image": t})
    if not a.skip_real:
        for name, (patch, d, layers, heads, mlp, proj) in REAL_CLIP.items():
            cfg = transformers.CLIPConfig(
                text_config=dict(hidden_size=512 if d == 768 else 768, num_hidden_layers=1,
                                 num_attention_heads=8, intermediate_size=1024),
                vision_config=dict(image_size=224, patch_size=patch, hidden_size=d,
                                   num_hidden_layers=layers, num_attention_heads=heads,
                                   intermediate_size=mlp),
                projection_dim=proj)
            model = transformers.FlaxCLIPModel(cfg, _do_init=False)
            params = tiny.host_init(jax.eval_shape(lambda k: model.init_weights(
                k, model.input_shape), jax.random.PRNGKey(0)), 0,
                logit_scale=cfg.logit_scale_init_value)
            t = time_clip(model, params, a.batch, 224, a.repeats)
            rows.append({"model": f"{name} (random weights)", "stage": "image features",
                         "size": "224 px", "s_per_image": t})
            del model, params
    if a.sd_real_step:
        import diffusers

        unet = diffusers.FlaxUNet2DConditionModel(sample_size=64, cross_attention_dim=768)
        params = tiny.host_init(jax.eval_shape(unet.init_weights, jax.random.PRNGKey(0)), 0)
        fn = jax.jit(lambda p, x, c: unet.apply({"params": p}, x, jnp.full((2,), 500), c).sample)
        x, c = jnp.zeros((2, 4, 64, 64)), jnp.zeros((2, 1, 768))
        jax.block_until_ready(fn(params, x, c))
        t = best_time(lambda: jax.block_until_ready(fn(params, x, c)), a.repeats)
        rows.append({"model": "SD-1.x UNet (random weights)", "stage": "one guided step (2 passes)",
                     "size": "64x64 latents", "s_per_image": t})
        rows.append({"model": "SD-1.x UNet (random weights)",
                     "stage": f"regeneration estimate, {a.steps} steps", "size": "512 px",
                     "s_per_image": t * a.steps})
    for r in rows:
        r["machine"] = machine()
        print(f"{r['model']:32s} {r['stage']:36s} {r['size']:>14s} {r['s_per_image'] * 1e3:10.2f} ms/image")
    out = os.path.join(folder, "table_build_time.csv")
    write_csv(out, rows)
    print(out)


if __name__ == "__main__":
    main()
