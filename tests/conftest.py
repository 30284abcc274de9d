"""Shared test set-up.

XLA's persistent compilation cache is on for the session, in one temporary folder shared by the
pytest-xdist workers and by the subprocesses the tests start (through the ``JAX_*`` environment
variables), so a program compiled once (a training chunk rebuilt on resume, the baselines of an
env size, the evaluator of a finished run) is not compiled again anywhere in the session.
Nothing is kept between sessions: the controlling process removes the folder at the end.
Tests marked ``slow`` (training to a threshold, resuming runs, simulated devices, tiny CLIP and
Stable Diffusion models) are left out by ``pytest -m "not slow"``, the fast tier. Both tiers run
on every core (pytest-xdist, ``-n auto --dist loadfile`` in pyproject.toml: a module's tests and
its shared fixtures stay in one worker).
"""

import os
import shutil
import tempfile

# An xdist worker's parent is the controlling pytest process: one folder per session.
_WORKER = "PYTEST_XDIST_WORKER" in os.environ
_CACHE = os.path.join(tempfile.gettempdir(),
                      f"semcom-jax-xla-cache-{os.getppid() if _WORKER else os.getpid()}")
os.makedirs(_CACHE, exist_ok=True)
os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def pytest_configure(config):
    """Tests run small programs, where XLA's compilation dominates: they are compiled with the
    backend optimisations off. Measured on the 2-core CI machine: full suite 802 s -> 581 s (the
    learning tests run ~1.7x slower, everything else compiles ~2x faster). Every comparison in a
    test is between programs compiled alike; benchmarks and real runs keep the optimisations.
    Set before the first computation initialises the backend; an XLA_FLAGS that already sets the
    level wins. The tests that train to a threshold, where running dominates, compile their
    chunk programs with the optimisations on (the ``optimised`` fixture)."""
    flag = "--xla_backend_optimization_level"
    if flag not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + f" {flag}=0").strip()


@pytest.fixture
def optimised():
    """``compiler_options`` for an Experiment whose running dominates its compilation: XLA's
    backend optimisations on for its chunk programs (measured: the three learn-to-a-threshold
    tests 157 s -> 95 s)."""
    return {"xla_backend_optimization_level": 3}


# pytest-xdist sends whole modules to the workers (--dist loadfile), in collection order
# (--no-loadscope-reorder): the costliest modules start first, so no worker is left running a
# long one alone at the end. Order from measured per-module times (2-core CI machine).
_COSTLIEST_FIRST = ("test_readme_commands", "test_offpolicy", "test_ppo", "test_clients", "test_sizefree",
                    "test_distributed", "test_docs", "test_sharding", "test_train_cli",
                    "test_codec", "test_episodic", "test_encoders", "test_model_tables",
                    "test_run_folder_errors", "test_config")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(_COSTLIEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: keeps in-module order


def pytest_sessionfinish(session, exitstatus):
    if not _WORKER:
        shutil.rmtree(_CACHE, ignore_errors=True)
