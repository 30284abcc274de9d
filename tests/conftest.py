"""Shared test set-up.

XLA's persistent compilation cache is on for the session (a fresh temporary folder), so the
tests that rebuild the same training program several times (resume, evaluation of a finished
run, the CLI on the same config) compile it once. Nothing is kept between sessions.
Tests marked ``slow`` (training to a threshold, resuming runs, simulated devices, tiny CLIP and
Stable Diffusion models) are left out by ``pytest -m "not slow"``, the fast tier. Both tiers run
on every core (pytest-xdist, ``-n auto --dist loadfile`` in pyproject.toml: a module's tests and
its shared fixtures stay in one worker).
"""

import os
import shutil
import tempfile

import jax

_CACHE = tempfile.mkdtemp(prefix="semcom-jax-xla-cache-")
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_configure(config):
    """Tests run small programs, where XLA's compilation dominates: they are compiled with the
    backend optimisations off. Measured on the 2-core CI machine: full suite 802 s -> 581 s (the
    learning tests run ~1.7x slower, everything else compiles ~2x faster). Every comparison in a
    test is between programs compiled alike; benchmarks and real runs keep the optimisations.
    Set before the first computation initialises the backend; an XLA_FLAGS that already sets the
    level wins."""
    flag = "--xla_backend_optimization_level"
    if flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {flag}=0").strip()


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)
