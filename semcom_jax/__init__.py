"""semcom_jax: a JAX-accelerated, vectorised simulator of CLIP-based semantic communication over
a wireless downlink, with baselines, the exact optimum and Flax PPO, SAC and DQN agents.

``semcom_jax.make("SemCom-v0", num_users=5, num_rbs=10)`` returns ``(env, env_params)`` as
``gymnax.make`` does; :class:`semcom_jax.env.SemComEnv` is the env class. See the README for the
command line."""

__version__ = "0.1.0"

__all__ = ["make", "registered_envs"]


def __getattr__(name):
    # Lazy: the env imports gymnax, and importing gymnax runs JAX computations (module-level
    # arrays of its own envs), which start the XLA backend. A process must be able to import
    # this package, then call jax.distributed.initialize or set the compilation cache.
    if name in __all__:
        from semcom_jax.env import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'semcom_jax' has no attribute {name!r}")
