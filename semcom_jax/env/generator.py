"""Instance generators: draw one episode's randomness (docs/model.md) from a key."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from semcom_jax.env.bits import check_source, open_unit, random_words
from semcom_jax.physics.instance import Instance, instance_from_uniforms
from semcom_jax.physics.params import EnvParams


class UniformGenerator:
    """The model's distributions (docs/model.md) (``instance_from_uniforms``) from random words;
    ``num_images`` is the size of the table's feature set (1 when the table has none);
    ``bits``: ``"threefry"`` (``jax.random``, the default) or ``"hash"`` (the keyed counter hash
    of :mod:`semcom_jax.env.bits`, ~5x cheaper per word; same distributions, other episodes)."""

    def __init__(self, num_users: int, num_rbs: int, num_images: int = 1,
                 bits: str = "threefry"):
        self.num_users = num_users
        self.num_rbs = num_rbs
        self.num_images = num_images
        self.bits = check_source(bits)

    def __call__(self, key: jax.Array, params: EnvParams) -> Instance:
        u, q = self.num_users, self.num_rbs
        # Random bits dominate the cost of a reset, so the draw is one call, with no key
        # splits, and as lean as the physics allows: fading and interference, whose tails matter, get a full float32 uniform each; the
        # other quantities get 16 bits each (two per 32-bit word), a resolution far below any
        # physical effect (5 cm of position at 500 m, 15 kHz of CPU clock, 1.1 bit of image).
        n_fine = u + q
        n_coarse = 5 * u + 2
        n_images = u if (self.bits == "hash" and self.num_images > 1) else 0
        bits = random_words(self.bits, key, n_fine + (n_coarse + 1) // 2 + n_images)
        fine = open_unit(bits[:n_fine])
        words = bits[n_fine:n_fine + (n_coarse + 1) // 2]
        halves = jnp.concatenate([words >> 16, words & 0xFFFF])[:n_coarse]
        coarse = (halves.astype(jnp.float32) + 0.5) / 65536.0  # in (0, 1)
        x_fade, x_int = fine[:u], fine[u:]
        x_r2, x_th, x_img, x_fu, x_wu = (coarse[i * u:(i + 1) * u] for i in range(5))
        x_fb, x_wb = coarse[5 * u], coarse[5 * u + 1]

        if n_images:  # floor(n x) of a 23-bit uniform: bias < n / 2^23 per image
            image_index = jnp.minimum(
                (open_unit(bits[-n_images:]) * self.num_images).astype(jnp.int32),
                self.num_images - 1)
        elif self.num_images > 1:
            image_index = jax.random.randint(jax.random.fold_in(key, 1), (u,), 0,
                                             self.num_images, dtype=jnp.int32)
        else:  # table mode: no image is ever looked at, so no bits are spent on it
            image_index = jnp.zeros((u,), jnp.int32)
        return instance_from_uniforms(params, x_r2, x_th, x_fade, x_int, x_img, x_fu, x_wu,
                                      x_fb, x_wb, image_index)
