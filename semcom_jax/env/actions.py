"""The action layouts, in one place: every user of ``a = k * Q + q`` (+ "no RB") goes through
:class:`ActionLayout`, every user of a view's ``m * K + k`` (+ "no RB") through its ``view_*``
methods, and every masked score through :func:`mask_logits`.

One discrete index per decision: ``a = k * Q + q`` serves the current user with encoder ``k`` on
RB ``q``; with ``has_no_rb`` the one extra action ``a = K * Q`` leaves the user unserved. The mask
(True = legal) has the same layout: ``K`` copies of the free-RB pattern, then the "no RB" entry.
The env, the padded env, the networks' logits, the solvers and the agents' random actions all
call this layout, so it cannot drift apart between them.

A *view* is M of the Q RBs (the size-free network's RBs in view): its actions are laid out slot
major, ``m * K + k`` for encoder ``k`` on the RB in slot ``m``, then "no RB" last (M x K + 1).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
from flax import struct

from semcom_jax.env.bits import check_source, open_unit, random_words

_UNROLL_MAX_RBS = 64  # up to this many RBs the random legal action counts free RBs unrolled


@struct.dataclass
class Decoded:
    """An action split into its parts. ``encoder`` and ``rb`` are clipped into range, so they can
    index arrays even when the action is "no RB" or out of range; look at the flags first."""

    encoder: jnp.ndarray  # int32, in [0, K)
    rb: jnp.ndarray  # int32, in [0, Q)
    no_rb: jnp.ndarray  # bool, the "no RB" action
    in_range: jnp.ndarray  # bool, 0 <= a < A


def mask_logits(logits: jnp.ndarray, mask: jnp.ndarray) -> jnp.ndarray:
    """Scores with every illegal entry at the dtype's most negative value rather than ``-inf``:
    its probability is exactly zero after a softmax, and entropies and KLs stay finite."""
    return jnp.where(mask, logits, jnp.finfo(logits.dtype).min)


@dataclasses.dataclass(frozen=True)
class ActionLayout:
    num_encoders: int  # K
    num_rbs: int  # Q
    has_no_rb: bool  # whether action K * Q ("no RB") exists

    def __post_init__(self):
        for name in ("num_encoders", "num_rbs"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"ActionLayout: {name} must be an int >= 1, got {v!r}")

    @property
    def num_actions(self) -> int:
        return self.num_encoders * self.num_rbs + int(self.has_no_rb)

    @property
    def no_rb_action(self):
        """The "no RB" action's index, or None when it does not exist."""
        return self.num_encoders * self.num_rbs if self.has_no_rb else None

    def encode(self, encoder, rb):
        """``k * Q + q``; broadcasts."""
        return (jnp.asarray(encoder) * self.num_rbs + jnp.asarray(rb)).astype(jnp.int32)

    def decode(self, action) -> Decoded:
        a = jnp.asarray(action, jnp.int32)
        kq = self.num_encoders * self.num_rbs
        no_rb = (a == kq) if self.has_no_rb else jnp.zeros(a.shape, bool)
        return Decoded(encoder=jnp.clip(a // self.num_rbs, 0, self.num_encoders - 1),
                       rb=jnp.clip(a % self.num_rbs, 0, self.num_rbs - 1),
                       no_rb=no_rb, in_range=(a >= 0) & (a < self.num_actions))

    def mask(self, rb_free, no_rb_legal=True) -> jnp.ndarray:
        """(..., A) bool from the free RBs (..., Q): every encoder on every free RB, and "no RB"
        when it exists and ``no_rb_legal`` (broadcast against the batch shape)."""
        free = jnp.tile(rb_free, (1,) * (rb_free.ndim - 1) + (self.num_encoders,))
        if not self.has_no_rb:
            return free
        extra = jnp.broadcast_to(jnp.asarray(no_rb_legal, bool), free.shape[:-1])[..., None]
        return jnp.concatenate([free, extra], axis=-1)

    def free_rbs(self, mask) -> jnp.ndarray:
        """(..., Q): the free-RB pattern a mask was built from."""
        return mask[..., :self.num_rbs]

    def no_rb_legal(self, mask) -> jnp.ndarray:
        """(...,) bool: whether "no RB" is legal under ``mask`` (False when it does not exist)."""
        if not self.has_no_rb:
            return jnp.zeros(mask.shape[:-1], bool)
        return mask[..., self.num_encoders * self.num_rbs]

    def flat_logits(self, per_rb, no_rb=None) -> jnp.ndarray:
        """Per-RB, per-encoder outputs (..., Q, K) and the "no RB" output (..., 1) laid out as
        actions (..., A)."""
        flat = jnp.swapaxes(per_rb, -1, -2).reshape(per_rb.shape[:-2] + (-1,))
        if not self.has_no_rb:
            return flat
        if no_rb is None:
            raise ValueError("this action layout has a 'no RB' action: give its output")
        return jnp.concatenate([flat, no_rb], axis=-1)

    # ------------------------------------------------------------------ views of M RBs

    @staticmethod
    def view_mask(ok, no_rb, num_encoders: int) -> jnp.ndarray:
        """(..., M x K + 1) from the slots in view ``ok`` (..., M) and "no RB" legal (...,)."""
        return jnp.concatenate([jnp.repeat(ok, num_encoders, axis=-1), no_rb[..., None]],
                               axis=-1)

    @staticmethod
    def view_flat(per_slot, no_rb) -> jnp.ndarray:
        """Per-slot, per-encoder outputs (..., M, K) and the "no RB" output (..., 1) laid out
        as the view's actions (..., M x K + 1)."""
        return jnp.concatenate([per_slot.reshape(per_slot.shape[:-2] + (-1,)), no_rb], axis=-1)

    def view_actions(self, idx) -> jnp.ndarray:
        """(..., M x K + 1) int32: the env's action at each place of the view of RBs ``idx``
        (..., M); requires the "no RB" action."""
        k = jnp.arange(self.num_encoders, dtype=jnp.int32)
        per = (k * self.num_rbs + idx[..., :, None]).reshape(idx.shape[:-1] + (-1,))
        none = jnp.full(per.shape[:-1] + (1,), self.no_rb_action, jnp.int32)
        return jnp.concatenate([per, none], axis=-1)

    def view_to_actions(self, logits, idx, ok) -> jnp.ndarray:
        """(..., A) from scores over a view (..., M x K + 1): each place's score at its action,
        the most negative score at every other action (out of view, or a slot out of view,
        which may repeat an RB in view: it is sent out of range and dropped)."""
        low = jnp.finfo(logits.dtype).min
        m, k = idx.shape[-1], self.num_encoders
        lead = logits.shape[:-1]
        per_rb = logits[..., :-1].reshape(lead + (m, k))
        target = jnp.where(ok, idx, self.num_rbs).reshape((-1, m))
        full = jax.vmap(lambda r, i: jnp.full((self.num_rbs, k), low, logits.dtype)
                        .at[i].set(r, mode="drop"))(per_rb.reshape((-1, m, k)), target)
        return self.flat_logits(full.reshape(lead + (self.num_rbs, k)), logits[..., -1:])

    # ------------------------------------------------------------------ sampling

    def uniform_legal(self, key, mask, rng: str = "threefry") -> jnp.ndarray:
        """A uniformly random legal action of a mask (A,) or a batch of masks (..., A).

        One random number per mask: the r-th legal action, found by a rank over the Q free RBs
        (the mask is K copies of them), so the cost is O(Q), not O(K Q). When nothing is legal
        the result is 0 (the caller's mask says so). ``rng`` is the bit source of that number
        (:data:`~semcom_jax.env.bits.BIT_SOURCES`; ``"threefry"`` is ``jax.random.uniform``)."""
        free = self.free_rbs(mask).astype(jnp.int32)
        n_free = jnp.sum(free, axis=-1)
        extra = self.no_rb_legal(mask).astype(jnp.int32)
        n_legal = self.num_encoders * n_free + extra
        if check_source(rng) == "threefry":
            x = jax.random.uniform(key, n_free.shape)
        else:
            x = open_unit(random_words(rng, key, math.prod(n_free.shape))).reshape(n_free.shape)
        r = jnp.floor(x * n_legal).astype(jnp.int32)
        r = jnp.clip(r, 0, jnp.maximum(n_legal - 1, 0))
        safe = jnp.maximum(n_free, 1)
        k, j = r // safe, r % safe
        # The (j+1)-th free RB is the number of RBs with at most j free RBs up to and including
        # them. For small Q a running count, unrolled, is one fused elementwise loop over the
        # batch (a scan over the RB axis is several passes, the sampler's main cost).
        if self.num_rbs <= _UNROLL_MAX_RBS:
            running, q = jnp.zeros_like(j), jnp.zeros_like(j)
            for i in range(self.num_rbs):
                running = running + free[..., i]
                q = q + (running <= j).astype(jnp.int32)
        else:
            rank = jax.lax.associative_scan(jnp.add, free, axis=free.ndim - 1)
            q = jnp.sum(rank <= j[..., None], axis=-1, dtype=jnp.int32)
        q = jnp.minimum(q, self.num_rbs - 1)
        a = self.encode(k, q)
        if self.has_no_rb:
            a = jnp.where(r >= self.num_encoders * n_free, self.no_rb_action, a)
        return jnp.where(n_legal > 0, a, 0).astype(jnp.int32)
