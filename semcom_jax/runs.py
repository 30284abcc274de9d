"""Run folders: train with a progress bar, metrics, checkpoints and resume.

A run folder holds ``config.json``, ``baselines.json``, ``metrics.csv`` and ``metrics.jsonl``
(one row per update and seed), ``checkpoints/`` (orbax), ``summary.json`` and ``plots/``.
Every file is written atomically (temporary file, then rename). Training runs the compiled loop
in chunks of ``chunk_updates`` updates; after each chunk the metrics are written and then the
whole runner state is checkpointed, so a killed run resumes (``resume=True``) from its last
chunk and, on the CPU, ends with exactly the parameters and metrics of an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from semcom_jax import sharding
from semcom_jax.agents.config import TrainConfig
from semcom_jax.atomic import atomic_write as _atomic_write
from semcom_jax.agents.evaluate import Evaluator
from semcom_jax.agents.dqn import DQN
from semcom_jax.agents.ppo import PPO
from semcom_jax.agents.sac import SAC
from semcom_jax.env import SemComEnv
from semcom_jax.tables import load_table

CONFIG = "config.json"


def atomic_write(path: str, text: str) -> None:
    """Run files are written by the first process only (multi-host runs share the folder);
    checkpoints are written by all processes together (orbax coordinates them)."""
    if jax.process_index() == 0:
        _atomic_write(path, text)


# ----------------------------------------------------------------------------- files


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def read_metrics(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_config(run_dir: str) -> TrainConfig:
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir!r} is not a run folder: it has no {CONFIG}")
    return TrainConfig.from_file(path)


# ----------------------------------------------------------------------------- building


def make_env(config: TrainConfig) -> SemComEnv:
    table = load_table(config.table) if config.table else None
    return SemComEnv(config.num_users, config.num_rbs, table=table, obs_mode=config.obs_mode,
                     reward=config.reward, score=config.score)


TRAINERS = {"ppo": PPO, "sac": SAC, "dqn": DQN}

# Metric columns every algorithm writes, in this order; an algorithm's own scalars follow.
_COMMON = ("train_return", "delay_violation_rate", "energy_violation_rate", "unserved_rate",
           "encoder_share")


def make_trainer(config: TrainConfig, env: SemComEnv, env_params):
    return TRAINERS[config.algo](config, env, env_params)


class Experiment:
    """Everything a run needs, built once from a config: env, trainer, evaluator, compiled chunk."""

    def __init__(self, config: TrainConfig):
        self.config = config.validate()
        self.env = make_env(config)
        self.env_params = config.make_env_params()
        self.trainer = make_trainer(config, self.env, self.env_params)
        self.evaluator = Evaluator(self.env, self.env_params, config.eval_episodes,
                                   config.eval_seed)
        keys = jax.random.split(jax.random.PRNGKey(config.seed), config.num_seeds)
        self.axes = self.trainer.seed_axes(jax.eval_shape(self.trainer.init, keys[0]))
        self.num_devices = sharding.device_count_for(config.num_envs, config.devices)
        self.mesh = sharding.env_mesh(self.num_devices)
        # Seeds are initialised one by one and stacked: jit(vmap(init)) hangs in the XLA CPU
        # runtime of jax 0.10.2 (every part of it alone runs), and init is cheap.
        self._init_one = jax.jit(self.trainer.init)
        self._keys = keys

        def chunk(state, n):
            state, metrics = self.trainer.run(state, n)
            return state, metrics, self.evaluator.evaluate(self.trainer.policy_logits,
                                                           state.params)

        self._chunks = {}
        self._chunk_fn = chunk

    def init_state(self):
        states = [self._init_one(k) for k in self._keys]
        state = jax.tree.map(lambda ax, *xs: xs[0] if ax is None else jnp.stack(xs), self.axes,
                             *states, is_leaf=lambda x: x is None)
        return jax.device_put(state, self.shardings(state))

    def shardings(self, state):
        """Where each leaf of a (seed-batched) runner state lives: see ``semcom_jax.sharding``."""
        return sharding.state_shardings(state, self.mesh)

    def run_chunk(self, state, n: int):
        if n not in self._chunks:  # one compilation per distinct chunk length (at most two)
            rep = sharding.replicated(self.mesh)
            self._chunks[n] = jax.jit(jax.vmap(lambda s: self._chunk_fn(s, n),
                                               in_axes=(self.axes,),
                                               out_axes=(self.axes, 0, 0)),
                                      out_shardings=(self.shardings(state), rep, rep))
        return self._chunks[n](state)

    def evaluate(self, state) -> dict:
        fn = jax.jit(jax.vmap(lambda p: self.evaluator.evaluate(self.trainer.policy_logits, p)))
        return jax.tree.map(np.asarray, fn(state.params))


# ----------------------------------------------------------------------------- rows


def metric_rows(config: TrainConfig, encoder_names, first_update: int, metrics, evals,
                r_random: float, r_opt: float, wall_s: float) -> list[dict]:
    metrics = jax.tree.map(np.asarray, metrics)  # (S, n, ...)
    evals = jax.tree.map(np.asarray, evals)  # (S, ...)
    n = metrics["train_return"].shape[1]
    rows = []
    for i in range(n):
        update = first_update + i + 1
        last = i == n - 1
        for s in range(config.num_seeds):
            ret = float(metrics["train_return"][s, i])
            row = {
                "update": update,
                "seed": config.seed + s if config.num_seeds == 1 else s,
                "env_steps": update * config.steps_per_update,
                "wall_time_s": round(wall_s, 3),
                "train_return": ret,
                "train_normalised": (ret - r_random) / (r_opt - r_random),
                "eval_return": float(evals["eval_return"][s]) if last else None,
                "eval_normalised": float(evals["eval_normalised"][s]) if last else None,
                "delay_violation_rate": float(metrics["delay_violation_rate"][s, i]),
                "energy_violation_rate": float(metrics["energy_violation_rate"][s, i]),
                "unserved_rate": float(metrics["unserved_rate"][s, i]),
            }
            for k, name in enumerate(encoder_names):
                row[f"share {name}"] = float(metrics["encoder_share"][s, i, k])
            for key in sorted(set(metrics) - set(_COMMON)):  # the algorithm's own scalars
                row[key] = float(metrics[key][s, i])
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- training


def train(config: Optional[TrainConfig], run_dir: str, resume: bool = False,
          progress: bool = True, max_chunks: Optional[int] = None) -> dict:
    """Trains into ``run_dir``. With ``resume``, the config is read from the folder and training
    continues from its last checkpoint. ``max_chunks`` stops early (used to test resume)."""
    run_dir = os.path.abspath(run_dir)
    if resume:
        config = load_config(run_dir)
    else:
        if config is None:
            raise ValueError("train needs a config unless resume=True")
        if os.path.exists(os.path.join(run_dir, CONFIG)):
            raise ValueError(f"{run_dir!r} already holds a run: resume it with --resume, "
                             "or choose another output folder")
        config.validate()
        atomic_write(os.path.join(run_dir, CONFIG), config.to_json())

    exp = Experiment(config)
    ev = exp.evaluator
    atomic_write(os.path.join(run_dir, "baselines.json"), json.dumps(ev.baselines, indent=2))
    # Synchronous saves: a chunk's checkpoint is complete before the next chunk starts (an
    # asynchronous finalisation failed once here, racing the next save).
    mngr = ocp.CheckpointManager(os.path.join(run_dir, "checkpoints"),
                                 options=ocp.CheckpointManagerOptions(
                                     max_to_keep=2, enable_async_checkpointing=False))
    state = exp.init_state()
    done_updates = 0
    rows: list[dict] = []
    wall_offset = 0.0
    if resume and mngr.latest_step() is not None:
        done_updates = int(mngr.latest_step())
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
        state = mngr.restore(done_updates, args=ocp.args.StandardRestore(abstract))
        rows = [r for r in read_metrics(run_dir) if r["update"] <= done_updates]
        wall_offset = max((r["wall_time_s"] for r in rows), default=0.0)

    total = config.num_updates
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total * config.steps_per_update, initial=done_updates * config.steps_per_update,
                   unit="step", unit_scale=True,
                   desc=f"{config.algo} U={config.num_users} Q={config.num_rbs}"
                        + (f" on {exp.num_devices} devices" if exp.num_devices > 1 else ""),
                   dynamic_ncols=True)
    wall = wall_offset  # compute time of the chunks (training, evaluation, compilation)
    chunks = 0
    while done_updates < total:
        if max_chunks is not None and chunks >= max_chunks:
            break
        n = min(config.chunk_updates, total - done_updates)
        t0 = time.perf_counter()
        state, metrics, evals = exp.run_chunk(state, n)
        jax.block_until_ready(state)
        # Writing metrics and checkpoints is left out, so that wall time compares algorithms
        # whose checkpoints differ in size (the replay buffer) on their computation alone.
        wall += time.perf_counter() - t0
        new_rows = metric_rows(config, exp.env.encoder_names, done_updates, metrics, evals,
                               ev.r_random, ev.r_opt, wall)
        rows += new_rows
        done_updates += n
        chunks += 1
        _write_metrics(run_dir, rows)
        mngr.save(done_updates, args=ocp.args.StandardSave(state))
        mngr.wait_until_finished()
        if bar is not None:
            last = new_rows[-config.num_seeds:]
            bar.update(n * config.steps_per_update)
            bar.set_postfix(ret=f"{np.mean([r['train_return'] for r in last]):.3f}",
                            norm=f"{np.mean([r['eval_normalised'] for r in last]):.3f}")
    if bar is not None:
        bar.close()
    mngr.close()
    summary = summarise(run_dir, config, rows, ev)
    if done_updates >= total and jax.process_index() == 0:
        from semcom_jax.plots import plot_run
        plot_run(run_dir)
    return summary


def _write_metrics(run_dir: str, rows: list[dict]) -> None:
    atomic_write(os.path.join(run_dir, "metrics.jsonl"),
                 "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write(os.path.join(run_dir, "metrics.csv"), _csv_text(rows))


def summarise(run_dir: str, config: TrainConfig, rows: list[dict], ev: Evaluator) -> dict:
    last_update = max((r["update"] for r in rows), default=0)
    final = [r for r in rows if r["update"] == last_update]
    evals = [r for r in rows if r["eval_normalised"] is not None]
    first_09 = None
    for u in sorted({r["update"] for r in evals}):
        vals = [r["eval_normalised"] for r in evals if r["update"] == u]
        if np.mean(vals) >= 0.9:
            first_09 = next(r for r in evals if r["update"] == u)
            break
    summary = {
        "updates": last_update,
        "env_steps": last_update * config.steps_per_update,
        "wall_time_s": max((r["wall_time_s"] for r in rows), default=0.0),
        "final_eval_return": float(np.mean([r["eval_return"] for r in final])) if final else None,
        "final_eval_normalised": float(np.mean([r["eval_normalised"] for r in final])) if final else None,
        "final_eval_normalised_per_seed": [r["eval_normalised"] for r in final],
        "wall_time_to_0.9_s": first_09["wall_time_s"] if first_09 else None,
        "env_steps_to_0.9": first_09["env_steps"] if first_09 else None,
        "baselines": {k: {"return": v["return"], "normalised": v["normalised"]}
                      for k, v in ev.baselines.items()},
    }
    atomic_write(os.path.join(run_dir, "summary.json"), json.dumps(summary, indent=2))
    return summary


def evaluate_run(run_dir: str) -> dict:
    """Re-evaluates the last checkpoint of a run on its held-out episodes, with the baselines."""
    config = load_config(run_dir)
    exp = Experiment(config)
    mngr = ocp.CheckpointManager(os.path.join(os.path.abspath(run_dir), "checkpoints"))
    step = mngr.latest_step()
    if step is None:
        raise ValueError(f"run {run_dir!r} has no checkpoint yet")
    state = exp.init_state()
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    state = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    mngr.close()
    ev = exp.evaluate(state)
    report = dict(exp.evaluator.baselines)
    report = {f"policy ({config.algo.upper()})": {
        "return": float(np.mean(ev["eval_return"])),
        "normalised": float(np.mean(ev["eval_normalised"])),
        "delay_violation_rate": float(np.mean(ev["eval_delay_violation_rate"])),
        "energy_violation_rate": float(np.mean(ev["eval_energy_violation_rate"])),
        "encoder_share": np.mean(ev["eval_encoder_share"], axis=0).tolist(),
    }, **report}
    return {"update": int(step), "report": report, "encoders": exp.env.encoder_names}
