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


def _hidden_draws(instance: Instance, params: EnvParams, key, num_draws: int) -> Instance:
    """``num_draws`` instances that keep what the paper observation reveals (positions,
    interference, images) and redraw the rest (fading, image sizes, user and BS compute) from
    the episode generator."""
    u, q = instance.distance_m.shape[0], instance.interference_w.shape[0]
    draws = jax.vmap(UniformGenerator(u, q), (0, None))(jax.random.split(key, num_draws), params)
    return draws.replace(
        user_xy_m=jnp.broadcast_to(instance.user_xy_m, draws.user_xy_m.shape),
        distance_m=jnp.broadcast_to(instance.distance_m, draws.distance_m.shape),
        interference_w=jnp.broadcast_to(instance.interference_w, draws.interference_w.shape),
        image_index=jnp.broadcast_to(instance.image_index, draws.image_index.shape))


def expected_action_table(instance: Instance, params: EnvParams, table: TaskTable, key,
                          num_draws: int) -> tuple[ActionTable, jnp.ndarray]:
    """The action table averaged over ``num_draws`` Monte-Carlo draws of what the paper
    observation never reveals, and the standard error of each value (U, K, Q). Violations are
    probabilities."""
    tables = jax.vmap(action_table, (0, None, None))(
        _hidden_draws(instance, params, key, num_draws), params, table)
    value = jnp.mean(tables.value, axis=0)
    se = jnp.std(tables.value, axis=0) / jnp.sqrt(jnp.float32(num_draws))
    return ActionTable(value=value,
                       delay_violation=jnp.mean(tables.delay_violation.astype(jnp.float32), 0),
                       energy_violation=jnp.mean(tables.energy_violation.astype(jnp.float32), 0),
                       unserved_value=tables.unserved_value[0]), se


def expected_action_tables(instances: Instance, params: EnvParams, table: TaskTable, key,
                           num_draws: int = 256, max_elements: int = 2**22):
    """:func:`expected_action_table` of a batch of episodes (each with its own draws), a bounded
    number of episodes at a time. Returns ``(ActionTable, value standard errors)``."""
    if not isinstance(num_draws, int) or num_draws < 2:
        raise ValueError(f"num_draws must be an int >= 2, got {num_draws!r}")
    n, u = instances.distance_m.shape
    q = instances.interference_w.shape[-1]
    per = u * q * len(params.encoder_compute) * num_draws
    batch = max(1, min(n, max_elements // per))
    keys = jax.random.split(key, n)
    fn = jax.jit(lambda i, k: jax.lax.map(
        lambda x: expected_action_table(x[0], params, table, x[1], num_draws), (i, k),
        batch_size=batch))
    return fn(instances, keys)


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


# ----------------------------------------------------------------------------- solvers


def _lap(value_uq: np.ndarray, unserved: np.ndarray):
    """Max-weight assignment of users to RBs plus one 'unserved' column per user."""
    u_count, q_count = value_uq.shape
    w = np.concatenate([value_uq, np.repeat(unserved[:, None], u_count, axis=1)], axis=1)
    rows, cols = linear_sum_assignment(w, maximize=True)
    rbs = np.full(u_count, -1, np.int64)
    rbs[rows] = np.where(cols < q_count, cols, -1)
    return rbs


def optimum(at: ActionTable, fixed_encoder: Optional[int] = None):
    """Exact optimum of a batch of episodes (host side). Returns ``(encoders, rbs)`` (N, U).

    With ``fixed_encoder`` every user uses that encoder and only the RBs are optimised.
    """
    value = np.asarray(at.value, np.float64)
    unserved = np.asarray(at.unserved_value, np.float64)
    n, u_count, k_count, q_count = value.shape
    if fixed_encoder is None:
        best_k = value.argmax(axis=2)  # (N, U, Q)
        best_v = value.max(axis=2)
    else:
        best_k = np.full((n, u_count, q_count), fixed_encoder)
        best_v = value[:, :, fixed_encoder, :]
    encoders = np.zeros((n, u_count), np.int64)
    rbs = np.zeros((n, u_count), np.int64)
    for i in range(n):
        rbs[i] = _lap(best_v[i], unserved[i])
        served = rbs[i] >= 0
        encoders[i] = np.where(served, best_k[i, np.arange(u_count), np.maximum(rbs[i], 0)], 0)
    return encoders, rbs


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


def _random_pick(key, flat, legal):
    return jax.random.categorical(key, mask_logits(jnp.zeros(legal.shape), legal))


def greedy(at: ActionTable):
    """Each user in turn takes the best immediate (encoder, RB) among the free RBs, or stays
    unserved when that pays more."""
    fn = jax.vmap(lambda a: _sequential(a, _greedy_pick, jax.random.PRNGKey(0)))
    return jax.jit(fn)(at)


def random_policy(at: ActionTable, key, draws: int = 16):
    """Uniform over legal actions; ``draws`` independent plays per episode, (N, draws, U)."""
    n = at.value.shape[0]
    keys = jax.random.split(key, n * draws).reshape(n, draws, -1)
    one = lambda a, k: _sequential(a, _random_pick, k)  # noqa: E731
    fn = jax.vmap(jax.vmap(one, (None, 0)), (0, 0))
    return jax.jit(fn)(at, keys)
