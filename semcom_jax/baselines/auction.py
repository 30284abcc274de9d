"""A certified assignment for sizes where the exact solver is too slow.

The exact step (``scipy.optimize.linear_sum_assignment``) is about cubic in the number of users:
0.44 s at U = 1000, 44 s at U = 4000 on one CPU core (``benchmarks/assignment.py``), so some 15
minutes per solve at U = 10,000. Beyond :data:`EXACT_UP_TO` users the assignment is found by Bertsekas' forward auction
with epsilon-scaling instead, and reported with a **certificate**: an upper bound on the
optimum from the assignment LP's dual, so every score against it carries its worst-case error.

The problem solved is a square, non-negative gain matrix ``g`` (n, n), maximise
``sum_i g[i, s(i)]`` over permutations ``s``. For any prices ``p`` (n,), weak duality gives

    OPT <= UB(p) = sum_i max_j (g[i, j] - p[j]) + sum_j p[j]

(every assignment pays each object's price once and each person at most its best profit). The
auction's final prices make this bound tight: with epsilon-complementary slackness (every
person's object within ``eps`` of its best profit) the assignment is within ``n eps`` of
``UB(p)``. The gap actually reported is ``UB(p) - value``, computed, not the ``n eps`` bound.

Complexity: each bid is O(n) (one row of ``g``, best and second-best profit); the bids of an
epsilon phase are bounded by O(n C / eps) in the worst case (C = max gain), and in practice
epsilon-scaling keeps them near O(n) per phase. Memory: ``g`` itself (n^2 float32) and O(n).
The bids run as one compiled ``while_loop`` per phase.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

EXACT_UP_TO = 2000  # users: the exact (Hungarian) step below, the auction above
RTOL = 1e-4  # the auction stops when UB - value <= RTOL * UB (gain units)
SCALE = 5.0  # epsilon falls by this factor from one phase to the next


@jax.jit
def _phase(g, p, eps):
    """One forward-auction phase from prices ``p``: every person starts unassigned and bids in
    turn (Gauss-Seidel) until all are assigned. Returns ``(assigned (n,), prices (n,), bids)``.
    Unassigned persons wait in a circular queue; an outbid owner rejoins its end."""
    n = g.shape[0]
    cols = jnp.arange(n)

    def cond(s):
        return s[4] > 0

    def body(s):
        assigned, owner, p, head, count, queue, bids = s
        i = queue[head]
        v = g[i] - p
        j = jnp.argmax(v)
        second = jnp.max(jnp.where(cols == j, -jnp.inf, v)) if n > 1 else v[j]
        bid = p[j] + (v[j] - second) + eps
        prev = owner[j]
        owner = owner.at[j].set(i)
        assigned = assigned.at[i].set(j)
        p = p.at[j].set(bid)
        head = (head + 1) % n
        count = count - 1
        # the previous owner, if any, is unassigned again and queued at the end
        queue = jnp.where(prev >= 0, queue.at[(head + count) % n].set(prev), queue)
        assigned = jnp.where(prev >= 0, assigned.at[jnp.maximum(prev, 0)].set(-1), assigned)
        count = count + (prev >= 0)
        return assigned, owner, p, head, count, queue, bids + 1

    init = (jnp.full(n, -1, jnp.int32), jnp.full(n, -1, jnp.int32), p, jnp.int32(0),
            jnp.int32(n), jnp.arange(n, dtype=jnp.int32), jnp.int32(0))
    assigned, _, p, _, _, _, bids = jax.lax.while_loop(cond, body, init)
    return assigned, p, bids


def dual_bound(g: np.ndarray, prices: np.ndarray) -> float:
    """``UB(p)``: an upper bound on the best assignment's total gain, valid for any prices."""
    p = np.asarray(prices, np.float64)
    step = max(1, 2**22 // max(len(p), 1))  # rows at a time: O(n) memory beyond g
    best = sum(float(np.sum(np.max(np.asarray(g[a:a + step], np.float64) - p, axis=1)))
               for a in range(0, len(g), step))
    return best + float(np.sum(p))


def auction(g: np.ndarray, rtol: float = RTOL, min_eps: float | None = None):
    """Near-optimal assignment of a square gain matrix ``g`` (n, n), maximised, with its
    certificate. Returns ``(cols (n,), value, upper_bound)``: person ``i`` takes object
    ``cols[i]``, ``value = sum_i g[i, cols[i]]`` and ``value <= OPT <= upper_bound``.

    Epsilon starts at the largest gain and falls by :data:`SCALE` per phase, prices carried
    over, until ``upper_bound - value <= rtol * upper_bound`` or epsilon reaches ``min_eps``
    (default ``1e-7`` of the largest gain, float32's resolution); the bound holds either way."""
    g = np.asarray(g, np.float32)
    if g.ndim != 2 or g.shape[0] != g.shape[1]:
        raise ValueError(f"auction needs a square gain matrix, got shape {g.shape}")
    if not np.all(np.isfinite(g)):
        raise ValueError("auction: the gain matrix has non-finite entries")
    if not rtol >= 0:
        raise ValueError(f"rtol must be >= 0, got {rtol!r}")
    n = g.shape[0]
    top = float(np.max(np.abs(g))) if n else 0.0
    if n == 0 or top == 0.0:
        return np.arange(n), 0.0, 0.0
    min_eps = 1e-7 * top if min_eps is None else min_eps
    gd = jnp.asarray(g)
    p = jnp.zeros(n, jnp.float32)
    eps = top / SCALE
    while True:
        assigned, p, _ = _phase(gd, p, jnp.float32(eps))
        cols = np.asarray(assigned, np.int64)
        value = float(np.sum(g[np.arange(n), cols], dtype=np.float64))
        bound = dual_bound(g, np.asarray(p))
        if bound - value <= rtol * abs(bound) or eps <= min_eps:
            return cols, value, max(bound, value)
        eps = max(eps / SCALE, min_eps)
