"""JAX's persistent compilation cache, for runs that repeat a program: a second ``semcom-jax
train`` of the same configuration loads its compiled update from disk instead of compiling it
again (on this project's 2-core CPU the default PPO update takes ~9 s to compile, more than the
training it then runs to 0.95; docs/performance.md, "Time to a good policy").

This is JAX's own cache (``jax_compilation_cache_dir``), switched on before the first compilation
and with its size and time thresholds at zero so that every program of a run is kept. The cache
is trusted code: keep it in a folder only you can write (JAX's documentation says why).
"""

from __future__ import annotations

import os


def enable(path: str) -> str:
    """Turns the cache on in folder ``path`` (created if missing); returns its absolute path.
    Call it before anything is compiled: JAX reads the setting at its first compilation."""
    if not path:
        raise ValueError("--compile-cache needs a folder")
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--compile-cache {path!r} is a file, not a folder")
    os.makedirs(path, exist_ok=True)
    import jax

    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
