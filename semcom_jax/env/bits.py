"""Random 32-bit words for episode draws: JAX's threefry (the default) or a keyed counter hash.

An episode draw needs ~30 words per env (U = 5, Q = 10) and nothing else random, so the bit
source is most of the cost of a reset, and threefry-2x32 spends 20 rounds on each pair of words.
``"hash"`` is a counter-based generator in the style of Random123 and Widynski's "squares":
word ``i`` of key ``(k0, k1)`` is

    mix(mix(i * 0x9E3779B9 XOR k0) XOR k1)

where ``mix`` is Wellons' ``lowbias32`` integer hash (two multiply / xor-shift pairs with full
avalanche; hash-prospector's best two-multiply 32-bit mixer). The counter stride is odd, so the
counters are distinct words; each round is a bijection of 32-bit words, so distinct counters of
one key give distinct words. It is several times cheaper per word than threefry (measured by
``benchmarks/env_throughput.py --parts``; figures in docs/performance.md). It is a simulator's
generator, not a cryptographic one:
its uniforms and every quantity an episode draws from them are tested against ``jax.random`` with
Kolmogorov-Smirnov tests, and adjacent counters and adjacent keys for correlation
(``tests/env/test_bits.py``). The per-env keys themselves still come from ``jax.random.split``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BIT_SOURCES = ("threefry", "hash")

_GOLDEN = 0x9E3779B9  # 2^32 / golden ratio, odd: i -> i * _GOLDEN is a bijection of uint32
_M1, _M2 = 0x7FEB352D, 0x846CA68B  # lowbias32's multipliers


def check_source(source: str) -> str:
    if source not in BIT_SOURCES:
        raise ValueError(f"bit source (rng) must be one of {BIT_SOURCES}, got {source!r}")
    return source


def mix32(x: jnp.ndarray) -> jnp.ndarray:
    """lowbias32: a bijective 32-bit integer hash (uint32 in, uint32 out, any shape)."""
    x = x ^ (x >> 16)
    x = x * jnp.uint32(_M1)
    x = x ^ (x >> 15)
    x = x * jnp.uint32(_M2)
    return x ^ (x >> 16)


def key_words(key: jax.Array) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The two uint32 words of a threefry key (raw ``PRNGKey`` or typed ``jax.random.key``)."""
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    if data.shape != (2,) or data.dtype != jnp.uint32:
        raise ValueError(f"the hash bit source needs a threefry key (2 uint32 words), got "
                         f"{data.dtype}{list(data.shape)}")
    return data[0], data[1]


def hash_bits(key: jax.Array, num: int) -> jnp.ndarray:
    """(num,) uint32: words ``0..num-1`` of the keyed counter hash."""
    k0, k1 = key_words(key)
    counter = jnp.arange(num, dtype=jnp.uint32) * jnp.uint32(_GOLDEN)
    return mix32(mix32(counter ^ k0) ^ k1)


def random_words(source: str, key: jax.Array, num: int) -> jnp.ndarray:
    """(num,) uint32 random words from ``source`` (one of :data:`BIT_SOURCES`)."""
    if source == "hash":
        return hash_bits(key, num)
    return jax.random.bits(key, (num,), jnp.uint32)


def open_unit(bits: jnp.ndarray) -> jnp.ndarray:
    """Uniform float32 in (0, 1) from uint32 words: 23 bits, offset by half a step so that
    neither 0 nor 1 occurs (``-log`` of it stays finite and positive)."""
    return ((bits >> 9).astype(jnp.float32) + 0.5) * (1.0 / 8388608.0)
