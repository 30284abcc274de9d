"""Table builders, all of them. ``synthetic`` and ``encoders`` (encoders trained here on real
images, :mod:`semcom_jax.codec`) need only the core packages; builders from real CLIP and
Stable Diffusion checkpoints need the optional ``tables`` extra."""
