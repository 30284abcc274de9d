"""The process caches' LRU, and compiler options refused up front."""

import pytest

from semcom_jax.memo import LRU


def test_lru_builds_once_and_drops_the_least_recently_used():
    built = []

    def build(k):
        return lambda: built.append(k) or k.upper()

    cache = LRU(2)
    assert cache.get("a", build("a")) == "A" and cache.get("a", build("a")) == "A"
    cache.get("b", build("b"))
    cache.get("a", build("a"))  # "a" is now the most recent
    cache.get("c", build("c"))  # drops "b"
    assert len(cache) == 2 and built == ["a", "b", "c"]
    cache.get("a", build("a"))
    cache.get("b", build("b"))  # rebuilt
    assert built == ["a", "b", "c", "b"]


def test_lru_stores_nothing_when_building_fails():
    cache = LRU(1)

    def fails():
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        cache.get("x", fails)
    assert len(cache) == 0 and cache.get("x", lambda: 1) == 1
    with pytest.raises(ValueError, match="size"):
        LRU(0)


@pytest.mark.parametrize("options,message", [
    ({"xla_no_such_option": 1}, "No such compile option"),
    ({"xla_backend_optimization_level": "high"}, "not a valid"),
    (["xla_backend_optimization_level"], "must be a dict"),
])
def test_bad_compiler_options_are_refused_before_anything_is_built(options, message):
    from semcom_jax.agents.config import TrainConfig
    from semcom_jax.training.experiment import Experiment

    with pytest.raises(ValueError, match=message):
        Experiment(TrainConfig.of(num_users=2, num_rbs=3, num_envs=8), compiler_options=options)
