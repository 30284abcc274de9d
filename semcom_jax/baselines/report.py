"""The one report: every policy's row (a baseline's, or a trained policy's from its evaluation)
has the keys of :data:`ROW_KEYS`, built by :func:`row`; the metrics of a run carry the same
keys prefixed ``eval_`` (:func:`as_metrics`, :func:`policy_row` back). Also the normalised
score, the baselines' report on a batch of episodes and the printable table."""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.baselines import solvers
from semcom_jax.baselines.auction import EXACT_UP_TO
from semcom_jax.baselines.solvers import greedy, optimum
from semcom_jax.env.reward import unserved_term


def normalised_score(r, r_random, r_opt):
    """``(R - R_random) / (R_opt - R_random)``: 0 is random, 1 is the exact optimum."""
    return (r - r_random) / (r_opt - r_random)


# ----------------------------------------------------------------------------- report


CEILING = "paper ceiling"  # the best policy of the paper observation (see solvers)
PAPER_GREEDY = "paper greedy"  # greedy on what the paper observation reveals (expected terms)
# The baselines a report may leave out ("random" and "optimum" are always computed: they define
# the normalised score). "paper": paper greedy and the paper ceiling (paper observation only).
OPTIONAL = ("greedy", "fixed", "paper")
MAX_ELEMENTS = 2**22  # table elements (U K Q per episode) held at once


def _check_include(include) -> tuple:
    include = tuple(include)
    bad = [b for b in include if b not in OPTIONAL]
    if bad:
        raise ValueError(f"unknown baseline(s) {', '.join(map(repr, bad))}; choose from "
                         f"{', '.join(OPTIONAL)} (random and optimum are always computed)")
    return include


def episode_batch(num_users: int, num_rbs: int, num_encoders: int, num_episodes: int,
                  max_elements: int = MAX_ELEMENTS) -> int:
    """Episodes whose values are computed and solved together."""
    return max(1, min(num_episodes, max_elements // (num_users * num_rbs * num_encoders)))


def memory_estimate(num_users: int, num_rbs: int, num_encoders: int, num_episodes: int,
                    ceiling_draws: int = 0, max_elements: int = MAX_ELEMENTS,
                    workers: int | None = None) -> int:
    """Estimated peak bytes of :func:`baseline_stats` beyond the process's own: one batch of
    the solvers' values (U x K x min(U, Q) float32 per episode) and the link maths'
    intermediates (~10 float32 per element of ``max_elements``), the host assignment problems
    solved at once (one per worker: ~3 float64 of U x min(U, Q) exactly, ~4 float32 by the
    auction), the paper ceiling's expected tables (3 float32 per (U, K, Q) element, draws in
    chunks of at most ``max_elements``) and the held-out episodes."""
    u, q, k = num_users, num_rbs, num_encoders
    c = min(u, q)
    batch = episode_batch(u, q, k, num_episodes, max_elements)
    tables = batch * u * k * c * 4 + min(max_elements, batch * u * k * q) * 4 * 10
    if ceiling_draws:
        tables += batch * u * k * q * 4 * 3 + min(max_elements, u * k * q * ceiling_draws) * 40
    solving = min(workers or os.cpu_count() or 1, batch * (1 + k))
    host = solving * u * c * (8 * 3 if u <= EXACT_UP_TO else 4 * 4)
    return int(tables + host + num_episodes * (7 * u + q) * 4)


def baseline_stats(instances, params, table, key, encoder_names, random_draws: int = 16,
                   ceiling_draws: int = 0, ceiling_key=None, include=OPTIONAL,
                   progress=None, max_elements: int = MAX_ELEMENTS):
    """``({name: AssignmentStats (N,)}, ceiling_se, gaps)`` of every baseline on a batch of
    episodes (:class:`~semcom_jax.physics.instance.Instance`, leading axis N), in bounded
    memory. No (U, K, Q) table of true terms is ever built: the assignment solvers get each
    user's values on the best ``min(U, Q)`` RBs, computed ``max_elements`` elements at a time
    (:func:`~semcom_jax.baselines.solvers.ranked_values`); greedy computes a user's row when it
    decides; random values its plays from the episodes, reducing them as they are played;
    every assignment is valued from the episodes (O(U)). Episodes are taken
    :func:`episode_batch` at a time.

    ``gaps`` ``{name: (N,)}``: for the optimum and each fixed encoder, how far each episode's
    assignment may be below that baseline's true optimum (0 where solved exactly; the auction's
    certificate above :data:`~semcom_jax.baselines.auction.EXACT_UP_TO` users).

    ``ceiling_draws`` > 0 (with ``"paper"`` in ``include``) adds ``"paper ceiling"`` (the
    assignment optimal for the expected terms given what the paper observation reveals, valued
    on the true ones) and ``"paper greedy"`` (greedy played on those expected terms); these
    need the (U, K, Q) table of expected terms, drawn in chunks. Its ``ceiling_se`` is the
    mean Monte-Carlo error of an expected term, else None.
    ``progress(done, total, seconds)``: called after each batch, ``seconds`` the time each
    baseline took so far."""
    import time

    include = _check_include(include)
    for name, v, low in (("random_draws", random_draws, 1), ("ceiling_draws", ceiling_draws, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise ValueError(f"{name} must be an int >= {low}, got {v!r}")
    n, u_count = instances.distance_m.shape
    q_count = instances.interference_w.shape[-1]
    k_count = len(encoder_names)
    paper = bool(ceiling_draws) and "paper" in include
    batch = episode_batch(u_count, q_count, k_count, n, max_elements)
    random_keys = jax.random.split(key, n * random_draws).reshape(n, random_draws, -1)
    ceiling_keys = jax.random.split(ceiling_key, n) if paper else None
    parts: dict = {}
    seconds: dict = {}
    gaps: dict = {}
    ses = []

    def add(name, fn):
        t0 = time.perf_counter()
        out = jax.block_until_ready(fn())
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
        parts.setdefault(name, []).append(out)

    for start in range(0, n, batch):
        # The last batch is padded with copies of its last episode (same shapes, one compile);
        # the copies' results are dropped.
        idx = np.minimum(np.arange(start, start + batch), n - 1)
        real = min(batch, n - start)
        inst = jax.tree.map(lambda x: x[idx], instances)
        t0 = time.perf_counter()
        vals, order = _ranked(inst, params, table, max_elements // batch)
        seconds["values"] = seconds.get("values", 0.0) + time.perf_counter() - t0
        # The optimum and the fixed encoders: independent assignment problems, solved together
        # on every core (their time is reported together, under "optimum").
        fixed = list(range(k_count)) if "fixed" in include else []
        t0 = time.perf_counter()
        unserved = np.full((batch, u_count), float(unserved_term(table.chance_score, params)))
        plays = solvers.optima(vals, unserved, [None] + fixed, cols=order)
        del vals
        seconds["optimum"] = seconds.get("optimum", 0.0) + time.perf_counter() - t0

        def value_of(e, r):
            return _value_of(inst, params, table, e, r)
        add("optimum", lambda: value_of(*map(jnp.asarray, plays[0][:2])))
        gaps.setdefault("optimum", []).append(plays[0][2][:real])
        if paper:
            t0 = time.perf_counter()
            expected, se = jax.block_until_ready(solvers.expected_tables_of(
                inst, params, table, ceiling_keys[idx], ceiling_draws, max_elements))
            seconds["expected terms"] = (seconds.get("expected terms", 0.0)
                                         + time.perf_counter() - t0)
            ses.append(np.asarray(jnp.mean(se, axis=(1, 2, 3)))[:real])
            # Optimal for the expected terms, valued on the true ones.
            add(CEILING, lambda: value_of(*map(jnp.asarray, optimum(expected))))
            add(PAPER_GREEDY, lambda: value_of(*greedy(expected)))
            del expected
        if "greedy" in include:
            add("greedy", lambda: value_of(*_greedy_of(inst, params, table)))
        for k in fixed:
            name = f"fixed {encoder_names[k]}"
            add(name, lambda: value_of(*map(jnp.asarray, plays[1 + k][:2])))
            gaps.setdefault(name, []).append(plays[1 + k][2][:real])
        add("random", lambda: _random_of(inst, params, table, random_keys[idx]))
        for name in parts:
            parts[name][-1] = jax.tree.map(lambda x: x[:real], parts[name][-1])
        if progress is not None:
            progress(start + real, n, dict(seconds))
    stats = {name: jax.tree.map(lambda *xs: jnp.concatenate(xs), *chunks)
             for name, chunks in parts.items()}
    ceiling_se = float(np.mean(np.concatenate(ses))) if paper else None
    return stats, ceiling_se, {name: np.concatenate(g) for name, g in gaps.items()}


_value_of = jax.jit(solvers.assignment_stats_of)
_greedy_of = jax.jit(solvers.greedy_of)
_random_of = jax.jit(solvers.random_stats_of)


@functools.partial(jax.jit, static_argnums=(3, 4))
def _ranked_batch(instances, params, table, keep: int, max_elements: int):
    return jax.vmap(lambda i: solvers.ranked_values(i, params, table, keep, max_elements)
                    )(instances)


def _ranked(instances, params, table, max_elements: int):
    """``(values (N, U, K, C), cols (N, C))`` of a batch of episodes for the assignment
    solvers: the best ``C = min(U, Q)`` RBs of each episode when every user ranks its RBs alike
    (:func:`~semcom_jax.baselines.solvers.ranked_values`), else all Q."""
    u_count, q_count = instances.distance_m.shape[1], instances.interference_w.shape[-1]
    budget = max(1, max_elements)
    vals, order, mono = _ranked_batch(instances, params, table, min(u_count, q_count), budget)
    if q_count > u_count and not bool(jnp.all(mono)):
        vals, order, _ = _ranked_batch(instances, params, table, q_count, budget)
    return np.asarray(vals), np.asarray(order)


def baseline_report(instances, params, table, key, encoder_names, random_draws: int = 16,
                    ceiling_draws: int = 0, ceiling_key=None, include=OPTIONAL,
                    progress=None) -> dict:
    """Return, normalised scores, violation and unserved rates and encoder usage of every
    baseline of :func:`baseline_stats` on a batch of episodes. Each entry has ``"normalised"``
    (0 random, 1 the exact optimum) and ``"normalised_ceiling"`` (0 random, 1 the ceiling of
    the observation the report is for: the paper ceiling when it is computed, else the
    optimum)."""
    stats, _, gaps = baseline_stats(instances, params, table, key, encoder_names, random_draws,
                              ceiling_draws, ceiling_key, include, progress)
    return summarise(stats, instances.distance_m.shape[1],
                     CEILING if CEILING in stats else "optimum", gaps)


def summarise(stats: dict, num_users: int, ceiling: str = "optimum",
              gaps: dict | None = None) -> dict:
    """``{name: row}`` of every policy's :class:`~semcom_jax.baselines.solvers.
    AssignmentStats`, normalised against its ``"random"`` and ``"optimum"`` entries. ``gaps``
    ``{name: (N,)}``: the certificates of the solved rows (how far each episode's assignment
    may be below that row's optimum); each such row gets ``"gap"`` (their mean, return units)
    and ``"certified_gap"`` (the same on the normalised scale). The optimum's means every
    normalised score may overstate the true one by at most that fraction of itself."""
    r_rand = float(jnp.mean(stats["random"].episode_return))
    r_opt = float(jnp.mean(stats["optimum"].episode_return))
    r_ceil = float(jnp.mean(stats[ceiling].episode_return))
    out = {name: row(s, num_users, r_rand, r_opt, r_ceil, host=True)
           for name, s in stats.items()}
    for name, g in (gaps or {}).items():
        gap = float(np.mean(g))
        out[name]["gap"] = gap
        out[name]["certified_gap"] = gap / (r_opt - r_rand)
    return out


ROW_KEYS = ("return", "normalised", "normalised_ceiling", "delay_violation_rate",
            "energy_violation_rate", "unserved_rate", "encoder_share")
METRIC_PREFIX = "eval_"  # a run's metrics name the greedy policy's row keys with it


def row(stats, num_users: int, r_random, r_opt, r_ceiling, host: bool = False) -> dict:
    """The report row of an assignment's statistics on a batch of episodes: mean return,
    normalised scores (against the optimum and the ceiling), violation and unserved rates per
    user, and each encoder's share of the served users. Jittable; ``host=True``: Python floats
    and lists (means taken on the device, the rest in float64)."""
    mean = (lambda x: float(jnp.mean(x))) if host else jnp.mean
    r = mean(stats.episode_return)
    counts = jnp.sum(stats.encoder_counts, axis=0)
    if host:
        counts = np.asarray(counts, np.float64)
        share = (counts / max(counts.sum(), 1.0)).tolist()
    else:
        share = counts / jnp.maximum(jnp.sum(counts), 1)
    return {
        "return": r,
        "normalised": normalised_score(r, r_random, r_opt),
        "normalised_ceiling": normalised_score(r, r_random, r_ceiling),
        "delay_violation_rate": mean(stats.delay_violations) / num_users,
        "energy_violation_rate": mean(stats.energy_violations) / num_users,
        "unserved_rate": mean(stats.unserved) / num_users,
        "encoder_share": share,
    }


def as_metrics(r: dict) -> dict:
    """A row's keys as a run's metrics name them (``eval_return``, ...)."""
    return {METRIC_PREFIX + k: v for k, v in r.items()}


def policy_row(evals: dict) -> dict:
    """A row from a policy's evaluation metrics (:func:`as_metrics`; seeds on a leading axis:
    means over them, and ``normalised_per_seed``)."""
    evals = {k: np.asarray(v) for k, v in evals.items()}
    out = {k: (np.mean(evals[METRIC_PREFIX + k], axis=0).tolist() if k == "encoder_share"
               else float(np.mean(evals[METRIC_PREFIX + k]))) for k in ROW_KEYS}
    out["normalised_per_seed"] = [float(x) for x in np.ravel(evals[METRIC_PREFIX + "normalised"])]
    return out


def format_report(report: dict, encoder_names) -> str:
    """A printable table; ``vs ceiling`` is the normalised score against the observation's own
    ceiling (the optimum when the report has no paper ceiling)."""
    head = (f"{'policy':<18}{'return':>9}{'normalised':>11}{'vs ceiling':>11}{'delay viol':>11}"
            f"{'energy viol':>12}{'unserved':>9}") + "".join(f"{n:>10}" for n in encoder_names)
    lines = [head, "-" * len(head)]
    for name, r in report.items():
        lines.append(
            f"{name:<18}{r['return']:>9.3f}{r['normalised']:>11.3f}"
            f"{r.get('normalised_ceiling', r['normalised']):>11.3f}"
            f"{r['delay_violation_rate']:>11.3f}{r['energy_violation_rate']:>12.3f}"
            f"{r.get('unserved_rate', float('nan')):>9.3f}"
            + "".join(f"{s:>10.2f}" for s in r["encoder_share"]))
    return "\n".join(lines)


def explain(report: dict, obs_mode: str | None = None) -> str:
    """What the columns of :func:`format_report` mean, and which rows are oracles (know more
    than a policy of ``obs_mode`` observes), for printing under the table."""
    ceiling = CEILING if CEILING in report else "optimum"
    lines = ["normalised: 0 = random legal play, 1 = the exact optimum. vs ceiling: the same "
             f"scale with 1 = the {ceiling}"
             + (", the best any policy of the paper observation can do (a row above 1 "
                "uses information that observation does not reveal)"
                if ceiling == CEILING else "") + "."]
    oracles = [n for n in report if n == "optimum" or n.startswith("fixed ")]
    if obs_mode == "paper" and "greedy" in report:
        oracles.append("greedy")
    if oracles:
        lines.append(f"oracles ({'full information' if obs_mode != 'paper' else 'information the paper observation does not have'}): "
                     + ", ".join(oracles) + "; fixed rows use that encoder with their best RBs.")
    gap = report.get("optimum", {}).get("certified_gap", 0.0)
    if gap > 0:
        lines.append(f"optimum: found by an auction with a certificate (above "
                     f"{EXACT_UP_TO} users), at most {gap:.2g} below the true optimum on the "
                     "normalised scale, so no normalised score up to 1 is too high by more "
                     "than that.")
    lines.append("delay viol counts unserved users too (nothing is delivered in time).")
    return "\n".join(lines)
