"""Eq. (11): each user's term, how a task score is obtained, and when the reward is paid.

A user's term is ``task_score - lamD 1{delay > D} - lamE 1{energy > E}``. An unserved user
(the "no RB" action) scores the table's chance-level score and counts as a delay violation; it
spends no energy, so it never counts as an energy violation. An invalid action leaves its user
unserved too, but pays :func:`invalid_term`, the worst term there is.
Because RBs are orthogonal, each user's term depends only on that user's own choice, so the
episode return is the same whether it is paid at the end (``TerminalReward``, the paper) or user
by user (``DenseReward``).
"""

from __future__ import annotations

import jax.numpy as jnp

from semcom_jax.tables.feature_channel import sampled_log_prob_true
from semcom_jax.tables.format import TaskTable
from semcom_jax.tables.lookup import interp_score


def user_term(score, delay_s, energy_j, params):
    return (
        score
        - params.lam_delay * (delay_s > params.delay_budget_s)
        - params.lam_energy * (energy_j > params.energy_budget_j)
    )


def unserved_term(chance_score, params):
    return chance_score - params.lam_delay


def invalid_term(lowest_score, chance_score, params):
    """An invalid action's term: the worst term any user can get (the lowest score the table
    gives with both budgets violated, or the unserved term if that is lower), minus
    ``params.invalid_action_penalty``. Never above "no RB"'s term."""
    worst_served = lowest_score - params.lam_delay - params.lam_energy
    return (jnp.minimum(worst_served, unserved_term(chance_score, params))
            - params.invalid_action_penalty)


class TableScore:
    """Expected task score: the table interpolated at the RB's SINR (deterministic)."""

    name = "table"

    def __call__(self, key, table: TaskTable, encoder, image_index, sinr_db, sinr_linear):
        return interp_score(table, encoder, sinr_db)


class FeatureScore:
    """A sampled task score: the user's own image feature is sent through the feature channel
    and classified zero-shot in-graph (classification tables with a feature set only)."""

    name = "features"

    def __call__(self, key, table: TaskTable, encoder, image_index, sinr_db, sinr_linear):
        return sampled_log_prob_true(key, table.features, encoder, image_index, sinr_linear)


class TerminalReward:
    """The paper's reward: zero until the last user, then the whole of eq. (11)."""

    name = "terminal"

    def __call__(self, user_reward, term, done):
        return jnp.where(done, jnp.sum(user_reward), 0.0)


class DenseReward:
    """Each step pays its own user's term of eq. (11); same episode return as terminal."""

    name = "dense"

    def __call__(self, user_reward, term, done):
        return term
