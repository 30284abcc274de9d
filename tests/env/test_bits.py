"""The hash bit source (``rng="hash"``): exact words against a numpy implementation, its episode
draws against ``jax.random``'s (Kolmogorov-Smirnov on every sampled quantity), independence
across counters and keys, and the refusals."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from semcom_jax.env import SemComEnv
from semcom_jax.env.bits import hash_bits
from semcom_jax.env.generator import UniformGenerator
from semcom_jax.physics.params import EnvParams

U, Q, DRAWS = 5, 10, 4000


def _np_hash(k0: int, k1: int, n: int) -> np.ndarray:
    """The documented construction, written independently with Python integers."""
    def mix(x):
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)
    return np.array([mix(mix(((i * 0x9E3779B9) & 0xFFFFFFFF) ^ k0) ^ k1) for i in range(n)],
                    np.uint32)


@pytest.mark.parametrize("seed", [0, 7, 2**31 + 5])
def test_hash_words_match_independent_implementation(seed):
    key = jax.random.PRNGKey(seed)
    k0, k1 = (int(w) for w in np.asarray(key))
    np.testing.assert_array_equal(np.asarray(hash_bits(key, 40)), _np_hash(k0, k1, 40))
    # A typed key gives the same words as its raw data.
    typed = jax.random.wrap_key_data(key)
    np.testing.assert_array_equal(np.asarray(hash_bits(typed, 40)), _np_hash(k0, k1, 40))


def _uniforms(words) -> np.ndarray:
    return (np.asarray(words, np.float64) + 0.5) / 2**32


def test_hash_words_uniform_balanced_and_independent():
    keys = jax.random.split(jax.random.PRNGKey(1), DRAWS)
    words = np.asarray(jax.vmap(lambda k: hash_bits(k, 8))(keys))  # (DRAWS, 8)
    u = _uniforms(words)
    for c in range(8):
        assert stats.kstest(u[:, c], "uniform").pvalue > 1e-3, c
    bits = (words[..., None] >> np.arange(32, dtype=np.uint32)) & 1
    means = bits.reshape(-1, 32).mean(0)
    assert np.all(np.abs(means - 0.5) < 5 * 0.5 / np.sqrt(bits.reshape(-1, 32).shape[0])), means
    bound = 5 / np.sqrt(DRAWS)
    # Adjacent counters of one key.
    for c in range(7):
        assert abs(np.corrcoef(u[:, c], u[:, c + 1])[0, 1]) < bound
    # Keys that differ only in their second word (PRNGKey(n) = [0, n]): neighbouring seeds.
    raw = jnp.stack([jnp.zeros(DRAWS, jnp.uint32), jnp.arange(DRAWS, dtype=jnp.uint32)], -1)
    seq = _uniforms(jax.vmap(lambda k: hash_bits(k, 4))(raw))
    assert abs(np.corrcoef(seq[:-1, 0], seq[1:, 0])[0, 1]) < bound
    assert stats.kstest(seq[:, 0], "uniform").pvalue > 1e-3
    # ... and only in their first word.
    raw0 = raw[:, ::-1]
    seq0 = _uniforms(jax.vmap(lambda k: hash_bits(k, 4))(raw0))
    assert abs(np.corrcoef(seq0[:-1, 0], seq0[1:, 0])[0, 1]) < bound
    assert stats.kstest(seq0[:, 0], "uniform").pvalue > 1e-3
    # Distinct counters of one key give distinct words (each round is a bijection).
    assert len(np.unique(np.asarray(hash_bits(jax.random.PRNGKey(3), 100_000)))) == 100_000


def _draws(bits: str, seed: int, num_images: int = 1):
    gen = UniformGenerator(U, Q, num_images, bits=bits)
    keys = jax.random.split(jax.random.PRNGKey(seed), DRAWS)
    return jax.jit(jax.vmap(gen, (0, None)))(keys, EnvParams())


def test_hash_draws_have_the_threefry_distributions():
    """Two-sample KS test of every quantity an episode draws: hash vs jax.random."""
    h, t = _draws("hash", 11), _draws("threefry", 12)
    xy_h, xy_t = np.asarray(h.user_xy_m), np.asarray(t.user_xy_m)
    quantities = {
        "distance": (h.distance_m, t.distance_m),
        "angle": (np.arctan2(xy_h[..., 1], xy_h[..., 0]), np.arctan2(xy_t[..., 1], xy_t[..., 0])),
        "fading": (h.fading, t.fading),
        "log interference": (np.log10(h.interference_w), np.log10(t.interference_w)),
        "image bits": (h.image_bits, t.image_bits),
        "user freq": (h.user_freq_hz, t.user_freq_hz),
        "user cycles": (h.user_cycles_per_bit, t.user_cycles_per_bit),
        "bs freq": (h.bs_freq_hz, t.bs_freq_hz),
        "bs cycles": (h.bs_cycles_per_bit, t.bs_cycles_per_bit),
    }
    for name, (a, b) in quantities.items():
        a, b = np.asarray(a), np.asarray(b)
        for col in range(a.shape[1] if a.ndim > 1 else 1):
            pa, pb = (a[:, col], b[:, col]) if a.ndim > 1 else (a, b)
            assert stats.ks_2samp(pa, pb).pvalue > 1e-3, (name, col)
    # Against the exact laws too: Exp(1) fading, uniform angle.
    assert stats.kstest(np.asarray(h.fading).ravel()[:DRAWS], "expon").pvalue > 1e-3
    assert stats.kstest(quantities["angle"][0][:, 0], "uniform", args=(-np.pi, 2 * np.pi)).pvalue > 1e-3
    # Users within an episode are not correlated (counters of one key).
    d = np.asarray(h.distance_m)
    assert abs(np.corrcoef(d[:, 0], d[:, 1])[0, 1]) < 5 / np.sqrt(DRAWS)


def test_hash_image_indices_uniform_and_in_range():
    n = 7
    idx = np.asarray(_draws("hash", 3, num_images=n).image_index).ravel()
    assert idx.min() >= 0 and idx.max() < n
    counts = np.bincount(idx, minlength=n)
    assert stats.chisquare(counts).pvalue > 1e-3


def test_env_rng_option_and_refusals():
    key = jax.random.PRNGKey(5)
    a = SemComEnv(U, Q, rng="hash").reset(key)[1].instance
    b = SemComEnv(U, Q, rng="hash").reset(key)[1].instance
    c = SemComEnv(U, Q).reset(key)[1].instance
    np.testing.assert_array_equal(np.asarray(a.fading), np.asarray(b.fading))  # same key, same
    assert not np.array_equal(np.asarray(a.fading), np.asarray(c.fading))  # other bits
    with pytest.raises(ValueError, match="rng"):
        SemComEnv(U, Q, rng="philox")
    with pytest.raises(ValueError, match="generator= or rng="):
        SemComEnv(U, Q, rng="hash", generator=UniformGenerator(U, Q))
    with pytest.raises(ValueError, match="threefry key"):
        hash_bits(jax.random.key(0, impl="rbg"), 4)


def test_train_config_rng_reaches_the_training_env_only():
    from semcom_jax.agents.config import TrainConfig
    from semcom_jax.training.experiment import make_env

    cfg = TrainConfig.of(rng="hash").validate()
    assert make_env(cfg).generator.bits == "hash"
    assert make_env(cfg, 5, 10).generator.bits == "threefry"  # evaluation envs
    sized = TrainConfig.of(rng="hash", network="set", train_users=(2, 4), train_rbs=(2, 5))
    assert make_env(sized.validate()).generator.bits == "hash"
    assert make_env(TrainConfig()).generator.bits == "threefry"
    with pytest.raises(ValueError, match="'rng'"):
        TrainConfig.of(rng="philox").validate()
