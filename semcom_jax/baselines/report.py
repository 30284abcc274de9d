"""The one report: every policy's row (a baseline's, or a trained policy's from its evaluation)
has the keys of :data:`ROW_KEYS`, built by :func:`row`; the metrics of a run carry the same
keys prefixed ``eval_`` (:func:`as_metrics`, :func:`policy_row` back). Also the normalised
score, the baselines' report on a batch of episodes and the printable table."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.baselines.solvers import (ActionTable, assignment_stats, greedy, optimum,
                                          random_policy)


def normalised_score(r, r_random, r_opt):
    """``(R - R_random) / (R_opt - R_random)``: 0 is random, 1 is the exact optimum."""
    return (r - r_random) / (r_opt - r_random)


# ----------------------------------------------------------------------------- report


CEILING = "paper ceiling"  # the best policy of the paper observation (see solvers)
PAPER_GREEDY = "paper greedy"  # greedy on what the paper observation reveals (expected terms)


def baseline_report(at: ActionTable, key, encoder_names, random_draws: int = 16,
                    expected: ActionTable | None = None) -> dict:
    """Return, normalised scores, violation and unserved rates and encoder usage of every
    baseline on a batch of episodes.

    ``expected`` (the episodes' :func:`~semcom_jax.baselines.solvers.expected_action_tables`)
    adds the paper observation's best policy, ``"paper ceiling"``: the assignment optimal for the
    expected terms, valued on the true ones; and ``"paper greedy"``: the greedy rule played on
    the expected terms (the heuristic that sees only what a paper-observation policy sees),
    valued on the true ones. Each entry has ``"normalised"`` (0 random, 1 the
    exact optimum) and ``"normalised_ceiling"`` (0 random, 1 the ceiling of the observation the
    report is for: the paper ceiling when ``expected`` is given, else the optimum).
    """
    n, u_count = at.value.shape[:2]
    plays = {}
    plays["optimum"] = optimum(at)
    if expected is not None:
        plays[CEILING] = optimum(expected)
        plays[PAPER_GREEDY] = greedy(expected)
    plays["greedy"] = greedy(at)
    for k, name in enumerate(encoder_names):
        plays[f"fixed {name}"] = optimum(at, fixed_encoder=k)
    rk, rq = random_policy(at, key, random_draws)
    stats = {name: assignment_stats(at, jnp.asarray(e), jnp.asarray(q))
             for name, (e, q) in plays.items()}
    # Random: average over draws by flattening draws into the episode axis.
    rep = jax.tree.map(lambda x: jnp.repeat(x, random_draws, axis=0), at)
    stats["random"] = assignment_stats(rep, rk.reshape(n * random_draws, u_count),
                                       rq.reshape(n * random_draws, u_count))
    return summarise(stats, u_count, CEILING if expected is not None else "optimum")


def summarise(stats: dict, num_users: int, ceiling: str = "optimum") -> dict:
    """``{name: row}`` of every policy's :class:`~semcom_jax.baselines.solvers.
    AssignmentStats`, normalised against its ``"random"`` and ``"optimum"`` entries."""
    r_rand = float(jnp.mean(stats["random"].episode_return))
    r_opt = float(jnp.mean(stats["optimum"].episode_return))
    r_ceil = float(jnp.mean(stats[ceiling].episode_return))
    return {name: row(s, num_users, r_rand, r_opt, r_ceil, host=True)
            for name, s in stats.items()}


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
    lines.append("delay viol counts unserved users too (nothing is delivered in time).")
    return "\n".join(lines)
