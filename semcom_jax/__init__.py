"""semcom_jax: a JAX-accelerated, vectorised simulator of CLIP-based semantic communication over
a wireless downlink, with baselines, the exact optimum and a Flax PPO agent.

Start with :class:`semcom_jax.env.SemComEnv`; see the README for the command line."""

__version__ = "0.1.0"
