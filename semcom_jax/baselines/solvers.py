"""Baselines and the exact optimum, batched over episodes.

All of them work on the *expected* per-user terms of eq. (11) (task score from the table), which
are what the env pays in ``score="table"`` mode. With full information the problem separates:
the best encoder of each (user, RB) pair is independent of the others, so the optimum is that
best value per pair followed by a linear assignment problem (Hungarian, ``scipy``), with ``U``
extra "unserved" columns: a user may be left unserved at every size (constraint 10b), and is
whenever that pays more than any RB left for it.

**The best policy of the paper observation.** That observation never reveals the fading, the
image sizes or the CPU parameters, and nothing during an episode reveals them either (the policy
sees only RB availability and which user is next), so its best policy is a fixed assignment: the
one that maximises the *expected* terms given what it does see (positions, interference).
:func:`expected_action_tables` estimates those expectations by Monte-Carlo draws of the hidden
quantities from the episode generator (common to all pairs of an episode); the same Hungarian
step then gives the assignment, whose true value on each episode is the paper ceiling.

An assignment is a pair of int arrays ``encoders (U,)``, ``rbs (U,)``; ``rbs[i] == -1`` means
user ``i`` is unserved (its encoder is then ignored).
"""

from __future__ import annotations

import os
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from scipy.optimize import linear_sum_assignment

from semcom_jax.env.actions import ActionLayout, mask_logits
from semcom_jax.env.generator import UniformGenerator
from semcom_jax.env.reward import unserved_term, user_term
from semcom_jax.physics import link
from semcom_jax.physics.instance import Instance
from semcom_jax.physics.params import EnvParams
from semcom_jax.tables.format import TaskTable
from semcom_jax.tables.lookup import interp_score


@struct.dataclass
class ActionTable:
    """Everything about serving user i with encoder k on RB q, for one episode."""

    value: jnp.ndarray  # (U, K, Q) float32, expected term of eq. (11)
    delay_violation: jnp.ndarray  # (U, K, Q) bool (float32 probability in an expected table)
    energy_violation: jnp.ndarray  # (U, K, Q) bool (float32 probability in an expected table)
    unserved_value: jnp.ndarray  # (U,) float32, term of an unserved user


def action_table(instance: Instance, params: EnvParams, table: TaskTable) -> ActionTable:
    u_count = instance.distance_m.shape[0]
    q_count = instance.interference_w.shape[0]
    k_count = table.num_encoders
    u = jnp.arange(u_count)[:, None, None]
    k = jnp.arange(k_count)[None, :, None]
    q = jnp.arange(q_count)[None, None, :]
    lk = link.evaluate(instance, params, u, k, q)
    shape = lk.delay_s.shape  # (U, K, Q); the SINR itself does not depend on k
    score = interp_score(table, jnp.broadcast_to(k, shape), jnp.broadcast_to(lk.sinr_db, shape))
    return ActionTable(
        value=user_term(score, lk.delay_s, lk.energy_j, params),
        delay_violation=lk.delay_s > params.delay_budget_s,
        energy_violation=lk.energy_j > params.energy_budget_j,
        unserved_value=jnp.broadcast_to(unserved_term(table.chance_score, params), (u_count,)),
    )


def batched_action_tables(instances: Instance, params: EnvParams, table: TaskTable,
                          max_elements: int = 2**22) -> ActionTable:
    """Action tables of a batch of instances, computed ``max_elements // (U K Q)`` episodes at a
    time, so that the link maths' intermediates stay small at large U and Q."""
    n, u = instances.distance_m.shape
    q = instances.interference_w.shape[-1]
    per = u * q * len(params.encoder_compute)
    batch = max(1, min(n, max_elements // per))
    fn = jax.jit(lambda i: jax.lax.map(lambda x: action_table(x, params, table), i,
                                       batch_size=batch))
    return fn(instances)


def _draw_chunk(num_draws: int, per_draw: int, max_elements: int) -> int:
    """The largest divisor of ``num_draws`` whose draws' tables hold at most ``max_elements``
    elements (at least 1)."""
    fits = max(1, max_elements // max(per_draw, 1))
    return max(d for d in range(1, num_draws + 1) if num_draws % d == 0 and d <= fits)


def expected_action_table(instance: Instance, params: EnvParams, table: TaskTable, key,
                          num_draws: int, max_elements: int = 2**22
                          ) -> tuple[ActionTable, jnp.ndarray]:
    """The action table averaged over ``num_draws`` Monte-Carlo draws of what the paper
    observation never reveals, and the standard error of each value (U, K, Q). Violations are
    probabilities. The draws are reduced in chunks (mean and squared deviations merged chunk by
    chunk), so memory holds one chunk's tables, not every draw's."""
    u, q = instance.distance_m.shape[0], instance.interference_w.shape[0]
    per = _draw_chunk(num_draws, u * q * len(params.encoder_compute), max_elements)
    keys = jax.random.split(key, num_draws).reshape(num_draws // per, per, -1)
    gen = UniformGenerator(u, q)

    def chunk(k):
        draws = jax.vmap(gen, (0, None))(k, params)
        draws = draws.replace(
            user_xy_m=jnp.broadcast_to(instance.user_xy_m, draws.user_xy_m.shape),
            distance_m=jnp.broadcast_to(instance.distance_m, draws.distance_m.shape),
            interference_w=jnp.broadcast_to(instance.interference_w, draws.interference_w.shape),
            image_index=jnp.broadcast_to(instance.image_index, draws.image_index.shape))
        t = jax.vmap(action_table, (0, None, None))(draws, params, table)
        mean = jnp.mean(t.value, axis=0)
        return (mean, jnp.sum((t.value - mean) ** 2, axis=0),
                jnp.sum(t.delay_violation, axis=0, dtype=jnp.float32),
                jnp.sum(t.energy_violation, axis=0, dtype=jnp.float32), t.unserved_value[0])

    def merge(carry, k):  # Chan et al.'s pairwise update of a mean and its squared deviations
        n, mean, m2, dv, ev = carry
        c_mean, c_m2, c_dv, c_ev, _ = chunk(k)
        tot = n + per
        delta = c_mean - mean
        mean = mean + delta * (per / tot)
        m2 = m2 + c_m2 + delta ** 2 * (n * per / tot)
        return (tot, mean, m2, dv + c_dv, ev + c_ev), None

    mean, m2, dv, ev, unserved = chunk(keys[0])
    (_, mean, m2, dv, ev), _ = jax.lax.scan(merge, (jnp.float32(per), mean, m2, dv, ev),
                                            keys[1:])
    se = jnp.sqrt(m2 / num_draws) / jnp.sqrt(jnp.float32(num_draws))
    return ActionTable(value=mean, delay_violation=dv / num_draws,
                       energy_violation=ev / num_draws, unserved_value=unserved), se


def expected_tables_of(instances: Instance, params: EnvParams, table: TaskTable, keys,
                       num_draws: int, max_elements: int = 2**22):
    """:func:`expected_action_table` of a batch of episodes, episode ``i`` drawing from
    ``keys[i]``, a bounded number of episodes and draws at a time. Returns
    ``(ActionTable, value standard errors)``."""
    if not isinstance(num_draws, int) or num_draws < 2:
        raise ValueError(f"num_draws must be an int >= 2, got {num_draws!r}")
    u = instances.distance_m.shape[1]
    q = instances.interference_w.shape[-1]
    per_draw = u * q * len(params.encoder_compute)
    draws = _draw_chunk(num_draws, per_draw, max_elements)
    batch = max(1, min(instances.distance_m.shape[0], max_elements // (per_draw * draws)))
    fn = jax.jit(lambda i, k: jax.lax.map(
        lambda x: expected_action_table(x[0], params, table, x[1], num_draws, max_elements),
        (i, k), batch_size=batch))
    return fn(instances, keys)


def expected_action_tables(instances: Instance, params: EnvParams, table: TaskTable, key,
                           num_draws: int = 256, max_elements: int = 2**22):
    """:func:`expected_tables_of` with one key per episode split from ``key``."""
    keys = jax.random.split(key, instances.distance_m.shape[0])
    return expected_tables_of(instances, params, table, keys, num_draws, max_elements)


# ----------------------------------------------------------------------------- summaries


@struct.dataclass
class AssignmentStats:
    episode_return: jnp.ndarray  # (N,)
    delay_violations: jnp.ndarray  # (N,) count of users over the delay budget
    energy_violations: jnp.ndarray  # (N,)
    encoder_counts: jnp.ndarray  # (N, K) users served by each encoder
    unserved: jnp.ndarray  # (N,)


def _stats_one(at: ActionTable, encoders, rbs) -> AssignmentStats:
    served = rbs >= 0
    uidx = jnp.arange(encoders.shape[0])
    k = jnp.clip(encoders, 0, at.value.shape[1] - 1)
    q = jnp.clip(rbs, 0, at.value.shape[2] - 1)
    val = jnp.where(served, at.value[uidx, k, q], at.unserved_value)
    dv = jnp.where(served, at.delay_violation[uidx, k, q], True)
    ev = jnp.where(served, at.energy_violation[uidx, k, q], False)
    counts = jnp.sum((k[:, None] == jnp.arange(at.value.shape[1])) & served[:, None], axis=0)
    return AssignmentStats(jnp.sum(val), jnp.sum(dv), jnp.sum(ev), counts, jnp.sum(~served))


assignment_stats = jax.jit(jax.vmap(_stats_one))


def _stats_from_instance(instance: Instance, params: EnvParams, table: TaskTable, encoders,
                         rbs) -> AssignmentStats:
    """:func:`_stats_one` computed from the episode itself, O(U): the chosen link of each user
    only, never the (U, K, Q) table."""
    u_count = encoders.shape[0]
    served = rbs >= 0
    k = jnp.clip(encoders, 0, table.num_encoders - 1)
    q = jnp.clip(rbs, 0, instance.interference_w.shape[0] - 1)
    lk = link.evaluate(instance, params, jnp.arange(u_count), k, q)
    score = interp_score(table, k, lk.sinr_db)
    val = jnp.where(served, user_term(score, lk.delay_s, lk.energy_j, params),
                    unserved_term(table.chance_score, params))
    dv = jnp.where(served, lk.delay_s > params.delay_budget_s, True)
    ev = jnp.where(served, lk.energy_j > params.energy_budget_j, False)
    counts = jnp.sum((k[:, None] == jnp.arange(table.num_encoders)) & served[:, None], axis=0)
    return AssignmentStats(jnp.sum(val), jnp.sum(dv), jnp.sum(ev), counts, jnp.sum(~served))


def assignment_stats_of(instances: Instance, params: EnvParams, table: TaskTable, encoders,
                        rbs) -> AssignmentStats:
    """:class:`AssignmentStats` of an assignment (N, U) of a batch of episodes, from the
    episodes (memory O(N U)); equal to :func:`assignment_stats` on their action tables.
    Jittable."""
    return jax.vmap(_stats_from_instance, (0, None, None, 0, 0))(instances, params, table,
                                                                 encoders, rbs)


# ----------------------------------------------------------------------------- solvers


def _lap(value_uq: np.ndarray, unserved: np.ndarray):
    """Max-weight assignment of users to RBs, each user free to stay unserved (constraint 10b).
    Exact. Returns ``rbs`` (U,), -1 for unserved.

    Two exact reductions keep the dense Hungarian step small (``linear_sum_assignment``, about
    cubic in its size):

    * only a user's *gain* over staying unserved matters, so the "unserved" option needs no
      columns of its own: a user matched where its gain is <= 0 is left unserved, and users
      with no positive gain anywhere are left out;
    * when every user ranks the RBs in the same order (the value of a link depends on the RB
      only through its SINR, and every term is non-decreasing in it; checked here, not
      assumed), some optimum uses only the U best RBs: a user on a worse RB can move to a free
      better one without losing. Then Q > U RBs are cut to U.
    """
    w = np.asarray(value_uq, np.float64)
    c = np.asarray(unserved, np.float64)
    u_count, q_count = w.shape
    cols = np.arange(q_count)
    if q_count > u_count:
        order = np.argsort(-w.sum(axis=0), kind="stable")
        if np.all(np.diff(w[:, order], axis=1) <= 0):
            cols = order[:u_count]
    gain = w[:, cols] - c[:, None]
    rows = np.nonzero(gain.max(axis=1) > 0)[0]
    rbs = np.full(u_count, -1, np.int64)
    if rows.size == 0:
        return rbs
    g = np.maximum(gain[rows], 0.0)
    if g.shape[1] < g.shape[0]:  # fewer RBs than users: the rest stay unserved
        g = np.concatenate([g, np.zeros((g.shape[0], g.shape[0] - g.shape[1]))], axis=1)
    r, cc = linear_sum_assignment(g, maximize=True)
    ok = (cc < cols.size) & (g[r, cc] > 0)
    rbs[rows[r[ok]]] = cols[cc[ok]]
    return rbs


def optima(at: ActionTable, choices=(None,), workers: int | None = None) -> list:
    """:func:`optimum` of a batch of episodes for each of ``choices`` (None: the best encoder
    per pair; an int: that encoder fixed), as a list of ``(encoders, rbs)`` (N, U). The
    ``len(choices) x N`` assignment problems are independent and ``linear_sum_assignment``
    releases the GIL, so they are solved by ``workers`` threads (default: one per core)."""
    from concurrent.futures import ThreadPoolExecutor

    value = np.asarray(at.value, np.float64)
    unserved = np.asarray(at.unserved_value, np.float64)
    n, u_count, k_count, q_count = value.shape
    best_k = value.argmax(axis=2)  # (N, U, Q)
    best_v = value.max(axis=2)

    def solve(job):
        c, i = job
        w = best_v[i] if choices[c] is None else value[i, :, choices[c], :]
        rbs = _lap(w, unserved[i])
        k = best_k[i, np.arange(u_count), np.maximum(rbs, 0)] if choices[c] is None else \
            np.full(u_count, choices[c])
        return np.where(rbs >= 0, k, 0), rbs

    jobs = [(c, i) for c in range(len(choices)) for i in range(n)]
    workers = workers or os.cpu_count() or 1
    if workers > 1 and len(jobs) > 1:
        with ThreadPoolExecutor(min(workers, len(jobs))) as pool:
            done = list(pool.map(solve, jobs))
    else:
        done = [solve(j) for j in jobs]
    out = []
    for c in range(len(choices)):
        part = done[c * n:(c + 1) * n]
        out.append((np.stack([e for e, _ in part]).astype(np.int64),
                    np.stack([r for _, r in part]).astype(np.int64)))
    return out


def optimum(at: ActionTable, fixed_encoder: Optional[int] = None):
    """Exact optimum of a batch of episodes (host side). Returns ``(encoders, rbs)`` (N, U).

    With ``fixed_encoder`` every user uses that encoder and only the RBs are optimised.
    """
    return optima(at, (fixed_encoder,))[0]


def _sequential(at: ActionTable, pick: Callable, key):
    """Users decide in order 0..U-1; ``pick(key, masked_values, legal)`` returns a flat index
    over the env's actions (every encoder on every free RB, and "no RB")."""
    u_count, k_count, q_count = at.value.shape
    layout = ActionLayout(k_count, q_count, has_no_rb=True)

    def body(carry, xs):
        used, key = carry
        vals, unserved_v = xs  # (K, Q), ()
        legal = layout.mask(~used)
        per_rb = jnp.swapaxes(vals, 0, 1)  # (Q, K), the layout flat_logits reads
        flat = mask_logits(layout.flat_logits(per_rb, unserved_v[None]), legal)
        key, sub = jax.random.split(key)
        act = layout.decode(pick(sub, flat, legal))
        served = ~act.no_rb
        k = jnp.where(served, act.encoder, 0)
        q = jnp.where(served, act.rb, -1)
        used = used | ((jnp.arange(q_count) == q) & served)
        return (used, key), (k, q)

    (_, _), (ks, qs) = jax.lax.scan(body, (jnp.zeros(q_count, bool), key),
                                    (at.value, at.unserved_value))
    return ks, qs


def _greedy_pick(key, flat, legal):
    return jnp.argmax(flat)


def greedy(at: ActionTable):
    """Each user in turn takes the best immediate (encoder, RB) among the free RBs, or stays
    unserved when that pays more."""
    fn = jax.vmap(lambda a: _sequential(a, _greedy_pick, jax.random.PRNGKey(0)))
    return jax.jit(fn)(at)


def _random_play(at: ActionTable, key):
    """One uniform play over the legal actions: each user in turn draws one of the K x (free
    RBs) + 1 legal actions with equal probability (every encoder on every free RB, and "no
    RB"). One integer per decision, O(Q) work, rather than a draw per action."""
    u_count, k_count, q_count = at.value.shape

    def body(used, k):
        free = ~used
        n_free = jnp.sum(free)
        j = jax.random.randint(k, (), 0, n_free * k_count + 1)
        served = j < n_free * k_count
        q = jnp.argmax(jnp.cumsum(free) > j // k_count)  # the (j // K)-th free RB
        q = jnp.where(served, q, -1)
        used = used | ((jnp.arange(q_count) == q) & served)
        return used, (jnp.where(served, j % k_count, 0), q)

    _, (ks, qs) = jax.lax.scan(body, jnp.zeros(q_count, bool), jax.random.split(key, u_count))
    return ks, qs


def random_policy(at: ActionTable, key, draws: int = 16):
    """Uniform over legal actions; ``draws`` independent plays per episode, (N, draws, U)."""
    n = at.value.shape[0]
    keys = jax.random.split(key, n * draws).reshape(n, draws, -1)
    fn = jax.vmap(jax.vmap(_random_play, (None, 0)), (0, 0))
    return jax.jit(fn)(at, keys)


def _random_mean_one(at: ActionTable, keys) -> AssignmentStats:
    def body(acc, k):
        s = _stats_one(at, *_random_play(at, k))
        return jax.tree.map(lambda a, b: a + b.astype(jnp.float32), acc, s), None

    k_count = at.value.shape[1]
    zero = AssignmentStats(*(jnp.zeros(shape, jnp.float32) for shape in ((), (), (), (k_count,),
                                                                         ())))
    total, _ = jax.lax.scan(body, zero, keys)
    return jax.tree.map(lambda x: x / keys.shape[0], total)


@jax.jit
def random_stats(at: ActionTable, keys) -> AssignmentStats:
    """The statistics of uniform legal play averaged over draws, per episode: ``keys``
    (N, draws, 2), one play per key (the plays of :func:`random_policy`). The draws are reduced
    as they are played, so memory holds one play per episode, whatever the number of draws."""
    return jax.vmap(_random_mean_one)(at, keys)
