"""Everything a run needs, built once from a config: the env, its parameters, the trainer, the
held-out evaluator, the seed axes, the device mesh and the compiled chunk of updates."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np

from semcom_jax.agents.config import TrainConfig, algorithm
from semcom_jax.baselines.evaluate import Evaluator
from semcom_jax.baselines.report import OPTIONAL
from semcom_jax.env.environment import SemComEnv
from semcom_jax.env.padded import RandomSizeEnv
from semcom_jax.memo import LRU
from semcom_jax.tables.format import load_table
from semcom_jax.training import sharding


def make_env(config: TrainConfig, num_users: int | None = None,
             num_rbs: int | None = None) -> SemComEnv:
    """The training env of ``config`` (a :class:`RandomSizeEnv` when it trains across sizes), or
    with ``num_users``/``num_rbs`` a plain env of that size (evaluation). The size-free network
    reads no flat features, so its envs do not build them."""
    ec = config.env
    table = load_table(ec.table) if ec.table else None
    kw = dict(table=table, obs_mode=ec.obs_mode, reward=ec.reward, score=ec.score,
              flat_features=config.network.kind != "set")
    if num_users is None and num_rbs is None:  # the training env: its draws may be hashed
        kw["rng"] = ec.rng
        if ec.sized:
            return RandomSizeEnv(ec.users_range, ec.rbs_range, **kw)
    return SemComEnv(ec.num_users if num_users is None else num_users,
                     ec.num_rbs if num_rbs is None else num_rbs, **kw)


def make_trainer(config: TrainConfig, env: SemComEnv, env_params):
    """The registered algorithm's trainer (``config.register``)."""
    return algorithm(config.algo).trainer(config, env, env_params)


def check_compiler_options(options) -> dict:
    """``options`` as a dict, or a ValueError naming what XLA refuses (found by compiling a
    trivial program, not at the first chunk's compilation deep inside a run)."""
    if options is None:
        return {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise ValueError(f"compiler_options must be a dict of XLA option names to values, got "
                         f"{options!r}")
    try:
        jax.jit(lambda: 0, compiler_options=options or None).lower().compile()
    except Exception as e:  # XLA's own error type and wording vary
        raise ValueError(f"compiler_options {options!r} refused by XLA: "
                         f"{' '.join(str(e).split())[:200]}") from None
    return dict(options)


# Experiment.shared: the two most recent Experiments, each holding its compiled programs and its
# evaluator (its held-out episodes and baselines).
_SHARED: LRU = LRU(2)


class Experiment:
    """Everything a run needs, built once from a config: env, trainer, evaluator, compiled chunk."""

    def __init__(self, config: TrainConfig, eval_users: int | None = None,
                 eval_rbs: int | None = None, compiler_options: dict | None = None,
                 baselines=OPTIONAL, progress=None):
        """``eval_users``/``eval_rbs``: evaluate at another size than ``num_users``/``num_rbs``
        (size-free network only; zero-shot evaluation). ``baselines``, ``progress``: the
        evaluator's (:class:`~semcom_jax.baselines.evaluate.Evaluator`). ``compiler_options``: XLA options for
        the chunk programs (``jax.jit``'s), e.g. ``{"xla_backend_optimization_level": 0}``
        compiles a tiny config faster and runs it slower."""
        self.config = config.validate()
        self.compiler_options = check_compiler_options(compiler_options)
        ec, run, kind = config.env, config.run, config.network.kind
        eval_users = ec.num_users if eval_users is None else eval_users
        eval_rbs = ec.num_rbs if eval_rbs is None else eval_rbs
        if (eval_users, eval_rbs) != (ec.num_users, ec.num_rbs) and kind != "set":
            raise ValueError(f"evaluating at another size needs the size-free network "
                             f"(network 'set'); this run's network is {kind!r}")
        self.env = make_env(config)
        self.env_params = self.env.make_params(ec.env_params)
        self.trainer = make_trainer(config, self.env, self.env_params)
        self.eval_env = make_env(config, eval_users, eval_rbs)
        self.evaluator = Evaluator(self.eval_env, self.eval_env.make_params(ec.env_params),
                                   run.eval_episodes, run.eval_seed,
                                   ceiling_draws=run.ceiling_draws, baselines=baselines,
                                   progress=progress)
        keys = jax.random.split(jax.random.PRNGKey(run.seed), run.num_seeds)
        self.axes = self.trainer.seed_axes(jax.eval_shape(self.trainer.init, keys[0]))
        self.num_devices = sharding.device_count_for(run.num_envs, run.devices)
        self.mesh = sharding.env_mesh(self.num_devices)
        # Seeds are initialised one by one and stacked: jit(vmap(init)) hangs in the XLA CPU
        # runtime of jax 0.10.2 (every part of it alone runs), and init is cheap.
        def init_seed(key):
            return self.trainer.init(key)
        self._init_one = jax.jit(init_seed)
        self.seed_keys = keys  # (num_seeds, 2): one key per seed

        def chunk(state, n):
            state, metrics = self.trainer.run(state, n)
            return state, metrics, self.evaluator.evaluate(self.trainer.policy_logits,
                                                           state.params)

        self._chunks = {}
        self._chunk_fn = chunk

    @classmethod
    def shared(cls, config: TrainConfig, eval_users: int | None = None,
               eval_rbs: int | None = None, baselines=OPTIONAL, progress=None) -> "Experiment":
        """The process's Experiment for these arguments, built on first use: training, resuming
        and evaluating one run in a process then trace and compile its programs once. The
        object is shared; do not change its attributes."""
        key = json.dumps([config.to_dict(), eval_users, eval_rbs, sorted(baselines)],
                         sort_keys=True)
        return _SHARED.get(key, lambda: cls(config, eval_users, eval_rbs, baselines=baselines,
                                            progress=progress))

    def init_state(self):
        states = [self._init_one(k) for k in self.seed_keys]
        state = jax.tree.map(lambda ax, *xs: xs[0] if ax is None else jnp.stack(xs), self.axes,
                             *states, is_leaf=lambda x: x is None)
        # Strongly typed leaves: a restored checkpoint has no weak types, and a weak-typed fresh
        # state would trace a different program, so every resume recompiled each chunk length.
        state = jax.tree.map(lambda x: jnp.asarray(x, x.dtype), state)
        return jax.device_put(state, self.shardings(state))

    def shardings(self, state):
        """Where each leaf of a (seed-batched) runner state lives: see
        :mod:`semcom_jax.training.sharding`."""
        return sharding.state_shardings(state, self.mesh)

    def run_chunk(self, state, n: int):
        if n not in self._chunks:  # one compilation per distinct chunk length (at most two)
            rep = sharding.replicated(self.mesh)

            def train_chunk(s):  # named: the compile profile reports programs by name
                return self._chunk_fn(s, n)
            train_chunk.__name__ = f"train_chunk_{n}_updates"
            self._chunks[n] = jax.jit(jax.vmap(train_chunk,
                                               in_axes=(self.axes,),
                                               out_axes=(self.axes, 0, 0)),
                                      out_shardings=(self.shardings(state), rep, rep),
                                      compiler_options=self.compiler_options or None)
        return self._chunks[n](state)

    def evaluate(self, state) -> dict:
        """The evaluator's figures of every seed's greedy policy (compiled once)."""
        if not hasattr(self, "_evaluate"):
            def evaluate_policy(p):
                return self.evaluator.evaluate(self.trainer.policy_logits, p)
            self._evaluate = jax.jit(jax.vmap(evaluate_policy))
        return jax.tree.map(np.asarray, self._evaluate(state.params))
