"""A sweep over (U, Q) as one compiled program: the config's algorithm (PPO by default) on the
padded env, ``vmap``-ed over sizes.

``train_sizes(config, sizes)`` pads every size to the largest (``PaddedSemComEnv``), stacks the
per-size ``PaddedParams`` and runs ``vmap(run)`` over them: one compilation for the whole sweep
instead of one per size. Every size starts from the same network initialisation (one draw,
shared), so sizes differ only by what they train on. ``evaluate_sizes`` plays the greedy policy
of each size on that size's held-out episodes (drawn by the unpadded env, then padded) and
normalises by that size's random and optimum baselines.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp

from semcom_jax.agents.config import TrainConfig, algorithm
from semcom_jax.baselines import report, solvers
from semcom_jax.baselines.evaluate import greedy_episode
from semcom_jax.env.environment import SemComEnv
from semcom_jax.env.padded import PaddedSemComEnv, pad_instance, stack_params


class SizeSweep:
    def __init__(self, config: TrainConfig, sizes):
        sizes = [(int(u), int(q)) for u, q in sizes]
        if not sizes:
            raise ValueError("a sweep needs at least one (U, Q) size")
        self.sizes = sizes
        self.max_users = max(u for u, _ in sizes)
        self.max_rbs = max(q for _, q in sizes)
        self.config = config.replace(num_users=self.max_users, num_rbs=self.max_rbs).validate()
        self.env = PaddedSemComEnv(self.max_users, self.max_rbs, obs_mode=config.env.obs_mode,
                                   reward=config.env.reward)
        base = self.env.make_params(config.env.env_params)
        self.params = [self.env.check_params(base.replace(active_users=u, active_rbs=q))
                       for u, q in sizes]
        self.stacked = stack_params(self.params)
        self.trainer = algorithm(self.config.algo).trainer(self.config, self.env, self.params[0])

    def _run(self, net_params, key, env_params, num_updates):
        state = self.trainer.init_from(net_params, key, env_params)
        return self.trainer.run(state, num_updates)

    def train(self, key, num_updates: int | None = None, vmapped: bool = True):
        """Trains every size; returns ``(states, metrics)`` stacked on a leading size axis.
        ``vmapped=False`` runs the sizes one after the other (same maths, one compile each)."""
        n = self.config.num_updates if num_updates is None else num_updates
        k_net, k_run = jax.random.split(key)
        net_params = jax.jit(self.trainer.init_learner)(k_net)
        fn = lambda p: self._run(net_params, k_run, p, n)  # noqa: E731
        if vmapped:
            return jax.jit(jax.vmap(fn))(self.stacked)
        outs = [jax.jit(fn)(p) for p in self.params]
        return jax.tree.map(lambda *xs: jnp.stack(xs), *outs)

    def evaluate(self, states, num_episodes: int = 256, seed: int = 12345) -> list[dict]:
        """Greedy held-out evaluation per size against its own baselines: per size, the size
        and the policy's report row (:func:`~semcom_jax.baselines.report.row`, expected
        returns), with the random and optimum returns it is normalised by."""
        out = []
        for i, (u, q) in enumerate(self.sizes):
            plain = SemComEnv(u, q, obs_mode=self.config.env.obs_mode, reward="dense")
            p = plain.default_params
            inst = plain.sample_instances(jax.random.PRNGKey(seed), num_episodes, p)
            base = report.baseline_report(inst, p, plain.table.data,
                                          jax.random.PRNGKey(seed + 1), plain.encoder_names)
            padded = jax.vmap(lambda x: pad_instance(x, self.max_users, self.max_rbs))(inst)
            params = jax.tree.map(lambda x: x[i], states.params)
            encoders, rbs = self.greedy_assignment(params, padded, self.params[i])
            encoders, rbs = encoders[:, :u], rbs[:, :u]  # the active users (the first u)
            stats = solvers.assignment_stats_of(inst, p, plain.table.data,
                                                jnp.where(rbs >= 0, encoders, 0), rbs)
            r_rand, r_opt = base["random"]["return"], base["optimum"]["return"]
            out.append({"num_users": u, "num_rbs": q,
                        **report.row(stats, u, r_rand, r_opt, r_opt, host=True),
                        "random_return": r_rand, "optimum_return": r_opt})
        return out

    def greedy_assignment(self, net_params, instances, env_params):
        """``(encoders, rbs)`` (N, max U) of each (padded) instance under the greedy policy
        (-1: unserved or absent)."""
        if not hasattr(self, "_greedy"):  # compiled once for every size of the sweep
            env = PaddedSemComEnv(self.max_users, self.max_rbs, obs_mode=self.config.env.obs_mode,
                                  reward="dense")
            play = lambda p, i, e: greedy_episode(env, self.trainer.policy_logits, p, i, e)[0]  # noqa: E731
            self._greedy = jax.jit(jax.vmap(play, (None, 0, None)))
        state = self._greedy(net_params, instances, env_params)
        return state.encoder, state.rb
