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

from semcom_jax.baselines.auction import EXACT_UP_TO, RTOL, auction
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


def _terms(instance: Instance, params: EnvParams, table: TaskTable, u, k, q):
    """``(value, delay violation, energy violation)`` of users ``u`` with encoders ``k`` on RBs
    ``q`` (broadcast together)."""
    lk = link.evaluate(instance, params, u, k, q)
    shape = lk.delay_s.shape  # the SINR itself does not depend on k
    score = interp_score(table, jnp.broadcast_to(k, shape), jnp.broadcast_to(lk.sinr_db, shape))
    return (user_term(score, lk.delay_s, lk.energy_j, params),
            lk.delay_s > params.delay_budget_s, lk.energy_j > params.energy_budget_j)


def action_table(instance: Instance, params: EnvParams, table: TaskTable) -> ActionTable:
    u_count = instance.distance_m.shape[0]
    q_count = instance.interference_w.shape[0]
    k_count = table.num_encoders
    value, dv, ev = _terms(instance, params, table, jnp.arange(u_count)[:, None, None],
                           jnp.arange(k_count)[None, :, None], jnp.arange(q_count)[None, None, :])
    return ActionTable(
        value=value, delay_violation=dv, energy_violation=ev,
        unserved_value=jnp.broadcast_to(unserved_term(table.chance_score, params), (u_count,)),
    )


def user_values(instance: Instance, params: EnvParams, table: TaskTable, u) -> jnp.ndarray:
    """(K, Q) values of user ``u``'s every (encoder, RB): one row of :func:`action_table`."""
    k_count, q_count = table.num_encoders, instance.interference_w.shape[0]
    return _terms(instance, params, table, u, jnp.arange(k_count)[:, None],
                  jnp.arange(q_count)[None, :])[0]


def ranked_values(instance: Instance, params: EnvParams, table: TaskTable, keep: int,
                  max_elements: int = 2**22):
    """The values the assignment solvers need, without the (U, K, Q) table's intermediates:
    ``(values (U, K, keep), order (Q,), monotone)``. RBs are sorted by interference (best SINR
    first, ``order``) and the first ``keep`` kept; ``monotone`` says whether every user's every
    encoder's value is non-increasing along that order, the condition under which the best
    ``min(U, Q)`` RBs hold an optimum (see :func:`_lap`). Users are computed
    ``max_elements // (K Q)`` at a time."""
    k_count, q_count = table.num_encoders, instance.interference_w.shape[0]
    order = jnp.argsort(instance.interference_w, stable=True)
    chunk = max(1, max_elements // (k_count * q_count))

    def one(u):
        v = user_values(instance, params, table, u)[:, order]
        return v[:, :keep], jnp.all(jnp.diff(v, axis=1) <= 0)

    vals, mono = jax.lax.map(one, jnp.arange(instance.distance_m.shape[0]), batch_size=chunk)
    return vals, order, jnp.all(mono)


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


def _lap(value_uq: np.ndarray, unserved: np.ndarray, exact_up_to: int = EXACT_UP_TO,
         rtol: float = RTOL):
    """Max-weight assignment of users to RBs, each user free to stay unserved (constraint 10b).
    Returns ``(rbs (U,), gap)``: ``rbs`` -1 for unserved, and ``gap`` >= 0 a proven bound on how
    far its total value is below the optimum's: 0 when solved exactly (up to ``exact_up_to``
    users), else the certificate of :func:`~semcom_jax.baselines.auction.auction`.

    Two exact reductions keep the problem small (the exact ``linear_sum_assignment`` is about
    cubic in its size):

    * only a user's *gain* over staying unserved matters, so the "unserved" option needs no
      columns of its own: a user matched where its gain is <= 0 is left unserved (a gain
      clipped at 0 is the value of staying unserved);
    * when every user ranks the RBs in the same order (the value of a link depends on the RB
      only through its SINR, and every term is non-decreasing in it; checked here, not
      assumed), some optimum uses only the U best RBs: a user on a worse RB can move to a free
      better one without losing. Then Q > U RBs are cut to U.
    """
    exact = value_uq.shape[0] <= exact_up_to
    # float64 for the exact step; the auction's large problems stay float32 (its certificate
    # is computed on exactly the gains it solved)
    w = np.asarray(value_uq, np.float64 if exact else np.float32)
    c = np.asarray(unserved, w.dtype)
    u_count, q_count = w.shape
    cols = np.arange(q_count)
    if q_count > u_count:
        order = np.argsort(-w.sum(axis=0), kind="stable")
        if np.all(np.diff(w[:, order], axis=1) <= 0):
            cols = order[:u_count]
    gain = w[:, cols] - c[:, None]
    rows = np.nonzero(gain.max(axis=1) > 0)[0]  # the others are never worth serving
    rbs = np.full(u_count, -1, np.int64)
    if rows.size == 0:
        return rbs, 0.0
    # Fewer RBs than users: zero-gain columns ("unserved"); the auction also needs zero-gain
    # rows when there are fewer users (a square problem).
    shape = ((rows.size, max(rows.size, cols.size)) if exact
             else (max(rows.size, cols.size),) * 2)
    g = np.zeros(shape, w.dtype)
    g[:rows.size, :cols.size] = np.maximum(gain[rows], 0.0)
    del gain
    if exact:
        r, cc = linear_sum_assignment(g, maximize=True)
        gap = 0.0
    else:
        cc, value, bound = auction(g, rtol)
        r, gap = np.arange(g.shape[0]), bound - value
    ok = (r < rows.size) & (cc < cols.size) & (g[r, cc] > 0)
    rbs[rows[r[ok]]] = cols[cc[ok]]
    return rbs, float(gap)


def optima(value, unserved, choices=(None,), workers: int | None = None, cols=None,
           exact_up_to: int = EXACT_UP_TO) -> list:
    """:func:`optimum` of a batch of episodes for each of ``choices`` (None: the best encoder
    per pair; an int: that encoder fixed), as a list of ``(encoders, rbs, gaps)`` ((N, U),
    (N, U), (N,)): ``gaps`` bounds how far each episode's value is below that choice's optimum
    (0 where solved exactly, see :func:`_lap`). ``value`` (N, U, K, Q) and ``unserved``
    (N, U) are an :class:`ActionTable`'s fields; ``value`` may hold only some RBs' columns
    (N, U, K, C), column ``c`` of episode ``i`` being RB ``cols[i, c]`` (``cols`` (N, >= C):
    :func:`ranked_values`' order). The ``len(choices) x N`` problems
    are independent, and both solvers release the GIL, so ``workers`` threads (default: one per
    core) solve them."""
    from concurrent.futures import ThreadPoolExecutor

    value = np.asarray(value, np.float32)
    unserved = np.asarray(unserved, np.float64)
    n, u_count, k_count, q_count = value.shape
    cols = np.broadcast_to(np.arange(q_count), (n, q_count)) if cols is None else np.asarray(cols)

    def solve(job):
        c, i = job
        if choices[c] is None:
            w = value[i].max(axis=1)
        else:
            w = value[i, :, choices[c], :]
        rbs, gap = _lap(w, unserved[i], exact_up_to)
        if choices[c] is None:
            k = value[i, np.arange(u_count), :, np.maximum(rbs, 0)].argmax(axis=1)
        else:
            k = np.full(u_count, choices[c])
        return np.where(rbs >= 0, k, 0), np.where(rbs >= 0, cols[i][np.maximum(rbs, 0)], -1), gap

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
        out.append((np.stack([e for e, _, _ in part]).astype(np.int64),
                    np.stack([r for _, r, _ in part]).astype(np.int64),
                    np.array([g for _, _, g in part], np.float64)))
    return out


def optimum(at: ActionTable, fixed_encoder: Optional[int] = None):
    """The optimum of a batch of episodes (host side; exact up to :data:`EXACT_UP_TO` users,
    else certified, see :func:`optima`). Returns ``(encoders, rbs)`` (N, U).

    With ``fixed_encoder`` every user uses that encoder and only the RBs are optimised.
    """
    return optima(at.value, at.unserved_value, (fixed_encoder,))[0][:2]


def _sequential(rows: Callable, shape: tuple, pick: Callable, key):
    """Users decide in order 0..U-1; ``rows(u)`` gives user ``u``'s ``(values (K, Q),
    unserved value)``; ``pick(key, masked_values, legal)`` returns a flat index over the env's
    actions (every encoder on every free RB, and "no RB"). ``shape`` is ``(U, K, Q)``."""
    u_count, k_count, q_count = shape
    layout = ActionLayout(k_count, q_count, has_no_rb=True)

    def body(carry, u):
        used, key = carry
        vals, unserved_v = rows(u)
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

    (_, _), (ks, qs) = jax.lax.scan(body, (jnp.zeros(q_count, bool), key), jnp.arange(u_count))
    return ks, qs


def _greedy_pick(key, flat, legal):
    return jnp.argmax(flat)


def greedy(at: ActionTable):
    """Each user in turn takes the best immediate (encoder, RB) among the free RBs, or stays
    unserved when that pays more."""
    fn = jax.vmap(lambda a: _sequential(lambda u: (a.value[u], a.unserved_value[u]),
                                        a.value.shape, _greedy_pick, jax.random.PRNGKey(0)))
    return jax.jit(fn)(at)


def greedy_of(instances: Instance, params: EnvParams, table: TaskTable):
    """:func:`greedy` of a batch of episodes from the episodes themselves: each user's row of
    values is computed when it decides, so memory is O(K Q) per episode, not the table's."""
    u_count = instances.distance_m.shape[1]
    shape = (u_count, table.num_encoders, instances.interference_w.shape[-1])
    unserved = unserved_term(table.chance_score, params)

    def one(inst):
        return _sequential(lambda u: (user_values(inst, params, table, u), unserved), shape,
                           _greedy_pick, jax.random.PRNGKey(0))
    return jax.vmap(one)(instances)


def _random_play(shape: tuple, key):
    """One uniform play over the legal actions: each user in turn draws one of the K x (free
    RBs) + 1 legal actions with equal probability (every encoder on every free RB, and "no
    RB"). One integer per decision, O(Q) work, rather than a draw per action. A play does not
    depend on the values: ``shape`` is ``(U, K, Q)``."""
    u_count, k_count, q_count = shape

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
    fn = jax.vmap(jax.vmap(lambda k: _random_play(at.value.shape[1:], k)))
    return jax.jit(fn)(keys)


def _random_mean_one(stats: Callable, shape: tuple, keys) -> AssignmentStats:
    def body(acc, k):
        s = stats(*_random_play(shape, k))
        return jax.tree.map(lambda a, b: a + b.astype(jnp.float32), acc, s), None

    zero = AssignmentStats(*(jnp.zeros(sh, jnp.float32) for sh in ((), (), (), (shape[1],),
                                                                     ())))
    total, _ = jax.lax.scan(body, zero, keys)
    return jax.tree.map(lambda x: x / keys.shape[0], total)


@jax.jit
def random_stats(at: ActionTable, keys) -> AssignmentStats:
    """The statistics of uniform legal play averaged over draws, per episode: ``keys``
    (N, draws, 2), one play per key (the plays of :func:`random_policy`). The draws are reduced
    as they are played, so memory holds one play per episode, whatever the number of draws."""
    return jax.vmap(lambda a, k: _random_mean_one(lambda e, r: _stats_one(a, e, r),
                                                  a.value.shape, k))(at, keys)


def random_stats_of(instances: Instance, params: EnvParams, table: TaskTable,
                    keys) -> AssignmentStats:
    """:func:`random_stats` valued from the episodes themselves (O(U) per play, no table)."""
    shape = (instances.distance_m.shape[1], table.num_encoders,
             instances.interference_w.shape[-1])
    return jax.vmap(lambda i, k: _random_mean_one(
        lambda e, r: _stats_from_instance(i, params, table, e, r), shape, k))(instances, keys)
