"""Greedy evaluation of a policy on a fixed, held-out set of episodes, against every baseline.

The held-out episodes come from their own seed. Returns are *expected* returns (table scores),
the quantity the baselines and the exact optimum are computed for, so the normalised score
``(R - R_random) / (R_opt - R_random)`` compares like with like whatever the training score mode.
Each evaluation also reports the score against the observation mode's own ceiling: the best
policy that mode allows (``paper``: the assignment optimal for the expected terms given what it
observes, :func:`~semcom_jax.baselines.solvers.expected_action_tables`; ``full``: the optimum).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.baselines import report, solvers
from semcom_jax.env.actions import mask_logits
from semcom_jax.env.environment import SemComEnv
from semcom_jax.env.types import EnvState
from semcom_jax.memo import LRU
from semcom_jax.physics.instance import Instance
from semcom_jax.physics.params import EnvParams


def policy_episode(env: SemComEnv, act: Callable, instance: Instance, env_params,
                   key: jax.Array) -> tuple[EnvState, jnp.ndarray]:
    """Plays one episode from ``instance`` with ``act(obs, key) -> action`` (an observation of
    ``env``'s format; the signature of rejax's ``make_act`` policies). Returns the final state
    (its ``encoder`` and ``rb`` are the assignment) and the episode return. Jittable and
    vmappable over instances."""
    obs, state = env.reset_to(instance, env_params)

    def step(carry, k):
        obs, state, ret = carry
        k_act, k_env = jax.random.split(k)
        a = jnp.asarray(act(obs, k_act), jnp.int32)
        obs, state, r, _, _ = env.step_env(k_env, state, a, env_params)
        return (obs, state, ret + r), None

    (_, state, ret), _ = jax.lax.scan(step, (obs, state, jnp.float32(0.0)),
                                      jax.random.split(key, env.num_users))
    return state, ret


def greedy_episode(env: SemComEnv, logits_fn: Callable, params, instance: Instance,
                   env_params) -> tuple[EnvState, jnp.ndarray]:
    """:func:`policy_episode` with the arg-max legal action of
    ``logits_fn(params, batched obs)``."""
    def act(obs, _):
        logits = logits_fn(params, jax.tree.map(lambda x: x[None], obs))[0]
        return jnp.argmax(mask_logits(logits, obs.action_mask))

    return policy_episode(env, act, instance, env_params, jax.random.PRNGKey(0))


# The held-out episodes and their baselines (the optimum is the costly part) depend only on the
# env and the evaluation settings, so each process computes them once per distinct set-up: a
# run that is trained, resumed and evaluated in one process builds its Evaluator three times.
_HELD_OUT: LRU = LRU(4)  # entries are the episodes (O(N (U + Q))) and the report


def _fingerprint(env: SemComEnv, env_params: EnvParams, *settings) -> str:
    h = hashlib.sha256(repr((env.num_users, env.num_rbs, env.obs_mode, env.flat_features,
                             env.encoder_names, env.table.metadata, settings)).encode())
    for x in jax.tree.leaves((env_params, env.table.data)):
        a = np.asarray(x)
        h.update(repr((a.dtype.str, a.shape)).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _held_out(env: SemComEnv, env_params: EnvParams, num_episodes: int, seed: int,
              random_draws: int, ceiling_draws: int, include: tuple, progress):
    """``(instances, ceiling_se, baselines)`` of the held-out episodes; ``ceiling_se`` is None
    when the paper observation's ceiling is not computed."""
    instances = env.sample_instances(jax.random.PRNGKey(seed), num_episodes, env_params)
    draws = ceiling_draws if env.obs_mode == "paper" else 0
    stats, ceiling_se, gaps = report.baseline_stats(
        instances, env_params, env.table.data, jax.random.PRNGKey(seed + 1), env.encoder_names,
        random_draws, draws, jax.random.PRNGKey(seed + 2), include, progress)
    baselines = report.summarise(stats, env.num_users,
                                 report.CEILING if report.CEILING in stats else "optimum", gaps)
    return instances, ceiling_se, baselines


class Evaluator:
    def __init__(self, env: SemComEnv, env_params: EnvParams, num_episodes: int, seed: int,
                 random_draws: int = 16, ceiling_draws: int = 256,
                 baselines=report.OPTIONAL, progress=None):
        """``ceiling_draws``: Monte-Carlo draws per episode for the paper observation's ceiling
        (0: not computed; the ceiling score is then against the optimum). ``baselines``: which
        of :data:`~semcom_jax.baselines.report.OPTIONAL` to compute besides random and the
        optimum; ``progress``: see :func:`~semcom_jax.baselines.report.baseline_stats` (called
        only when the baselines are computed, not when they are reused)."""
        # Same shapes, observation and table, but expected (table) scores.
        self.env = SemComEnv(env.num_users, env.num_rbs, table=env.table, obs_mode=env.obs_mode,
                             reward="dense", score="table", flat_features=env.flat_features)
        self.env_params = env_params
        include = tuple(b for b in report.OPTIONAL if b in report._check_include(baselines))
        key = _fingerprint(self.env, env_params, num_episodes, seed, random_draws, ceiling_draws,
                           include)
        self.instances, self.ceiling_se, baselines = _HELD_OUT.get(
            key, lambda: _held_out(self.env, env_params, num_episodes, seed, random_draws,
                                   ceiling_draws, include, progress))
        self.baselines = copy.deepcopy(baselines)  # callers may add to their report
        self.ceiling = report.CEILING if self.ceiling_se is not None else "optimum"
        self.r_random = self.baselines["random"]["return"]
        self.r_opt = self.baselines["optimum"]["return"]
        self.r_ceiling = self.baselines[self.ceiling]["return"]

    def greedy_assignment(self, logits_fn: Callable, params):
        """Plays every held-out episode greedily. Returns ``(encoders, rbs)``, each (N, U)."""
        states, _ = jax.vmap(lambda i: greedy_episode(self.env, logits_fn, params, i,
                                                      self.env_params))(self.instances)
        return states.encoder, states.rb

    def policy_assignment(self, act: Callable, env: SemComEnv | None = None,
                          key: jax.Array | None = None):
        """Plays every held-out episode with ``act(obs, key) -> action`` on ``env`` (default:
        the evaluator's own; any env of the same U and Q, e.g. a flat one from ``make``, whose
        observation ``act`` reads). Returns ``(encoders, rbs)``, each (N, U)."""
        env = self.env if env is None else env
        if (env.num_users, env.num_rbs) != (self.env.num_users, self.env.num_rbs):
            raise ValueError(f"the policy's env has U={env.num_users}, Q={env.num_rbs}; the "
                             f"held-out episodes have U={self.env.num_users}, "
                             f"Q={self.env.num_rbs}")
        key = jax.random.PRNGKey(0) if key is None else key
        keys = jax.random.split(key, self.instances.distance_m.shape[0])
        states, _ = jax.jit(jax.vmap(lambda i, k: policy_episode(env, act, i, self.env_params,
                                                                 k)))(self.instances, keys)
        return states.encoder, states.rb

    def score(self, encoders, rbs) -> dict:
        """Jittable: the report row (:func:`~semcom_jax.baselines.report.row`) of an assignment
        (N, U) of the held-out episodes (``rbs == -1``: unserved), its keys prefixed
        ``eval_`` (:func:`~semcom_jax.baselines.report.as_metrics`), as the metrics of a run
        name them."""
        stats = solvers.assignment_stats_of(self.instances, self.env_params,
                                            self.env.table.data,
                                            jnp.where(rbs >= 0, encoders, 0), rbs)
        return report.as_metrics(report.row(stats, self.env.num_users, self.r_random,
                                            self.r_opt, self.r_ceiling))

    def evaluate(self, logits_fn: Callable, params) -> dict:
        """Jittable: :meth:`score` of the greedy policy."""
        return self.score(*self.greedy_assignment(logits_fn, params))
