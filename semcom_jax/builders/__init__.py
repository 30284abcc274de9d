"""Table builders. ``synthetic`` needs only the core packages; builders from real CLIP and
Stable Diffusion checkpoints need the optional ``tables`` extra."""
