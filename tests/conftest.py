"""Shared test set-up.

XLA's persistent compilation cache is on for the session (a fresh temporary folder), so the
tests that rebuild the same training program several times (resume, evaluation of a finished
run, the CLI on the same config) compile it once. Nothing is kept between sessions.
Tests marked ``slow`` (training to a threshold, resuming runs, simulated devices, tiny CLIP and
Stable Diffusion models) are left out by ``pytest -m "not slow"``, the fast tier.
"""

import shutil
import tempfile

import jax

_CACHE = tempfile.mkdtemp(prefix="semcom-jax-xla-cache-")
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)
