"""Run folders: train with a progress bar, metrics, checkpoints and resume.

A run folder holds ``config.json``, ``baselines.json``, ``metrics.csv`` and ``metrics.jsonl``
(one row per update and seed), ``checkpoints/`` (orbax), ``summary.json`` and ``plots/``
(:mod:`semcom_jax.training.files`). Training runs the compiled loop in chunks of
``updates_per_chunk`` updates; after each chunk the metrics are written and then the whole runner
state is checkpointed, so a killed run resumes (``resume=True``) from its last chunk and, on the
CPU, ends with exactly the parameters and metrics of an uninterrupted run.
"""

from __future__ import annotations


import os
import time
from typing import Optional

import jax
import numpy as np

from semcom_jax.agents.config import TrainConfig
from semcom_jax.baselines.evaluate import Evaluator
from semcom_jax.baselines import report
from semcom_jax.baselines.report import OPTIONAL, normalised_score
from semcom_jax.training import checkpoints, files
from semcom_jax.training.experiment import Experiment
from semcom_jax.training.files import load_config, read_metrics  # noqa: F401  (public)

# Metric columns every algorithm writes, in this order; an algorithm's own scalars follow.
_COMMON = ("train_return", "delay_violation_rate", "energy_violation_rate", "unserved_rate",
           "invalid_action_rate", "encoder_share")


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
        for s in range(config.run.num_seeds):
            ret = float(metrics["train_return"][s, i])
            row = {
                "update": update,
                "seed": config.run.seed + s if config.run.num_seeds == 1 else s,
                "env_steps": update * config.steps_per_update,
                "wall_time_s": round(wall_s, 3),
                "train_return": ret,
                "train_normalised": normalised_score(ret, r_random, r_opt),
                "eval_return": float(evals["eval_return"][s]) if last else None,
                "eval_normalised": float(evals["eval_normalised"][s]) if last else None,
                "eval_normalised_ceiling": (float(evals["eval_normalised_ceiling"][s]) if last
                                            else None),
                "eval_unserved_rate": float(evals["eval_unserved_rate"][s]) if last else None,
                "eval_delay_violation_rate": (float(evals["eval_delay_violation_rate"][s])
                                              if last else None),
                "eval_energy_violation_rate": (float(evals["eval_energy_violation_rate"][s])
                                               if last else None),
                "delay_violation_rate": float(metrics["delay_violation_rate"][s, i]),
                "energy_violation_rate": float(metrics["energy_violation_rate"][s, i]),
                "unserved_rate": float(metrics["unserved_rate"][s, i]),
                "invalid_action_rate": float(metrics["invalid_action_rate"][s, i]),
            }
            for k, name in enumerate(encoder_names):
                row[f"share {name}"] = float(metrics["encoder_share"][s, i, k])
            for k, name in enumerate(encoder_names):  # the greedy policy's, held out
                row[f"eval share {name}"] = (float(evals["eval_encoder_share"][s, k]) if last
                                             else None)
            for key in sorted(set(metrics) - set(_COMMON)):  # the algorithm's own scalars
                row[key] = float(metrics[key][s, i])
            rows.append(row)
    return rows


# ----------------------------------------------------------------------------- training


def train(config: Optional[TrainConfig], run_dir: str, resume: bool = False,
          progress: bool = True, max_chunks: Optional[int] = None,
          time_limit_s: Optional[float] = None) -> dict:
    """Trains into ``run_dir``. With ``resume``, the config is read from the folder and training
    continues from its last checkpoint. ``max_chunks`` stops early (used to test resume);
    ``time_limit_s`` stops after the chunk that brings the run's compute time to the limit (a
    wall-clock budget; the summary says how many env steps were actually run, and ``resume``
    continues)."""
    run_dir = os.path.abspath(run_dir)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise ValueError(f"run folder {run_dir!r} is a file, not a folder")
    if resume:
        config = files.load_config(run_dir)
    else:
        if config is None:
            raise ValueError("train needs a config unless resume=True")
        if files.has_config(run_dir) and files.has_progress(run_dir):
            raise ValueError(f"{run_dir!r} already holds a run: resume it with --resume, "
                             "or choose another output folder")
        config.validate()

    # Built before anything is written, so a start that fails leaves no run folder behind.
    exp = Experiment.shared(config)
    ev = exp.evaluator
    if not resume:
        files.start_run(run_dir, config)
    files.write_json(run_dir, files.BASELINES, ev.baselines)
    mngr = checkpoints.manager(run_dir)
    state = exp.init_state()
    rows: list[dict] = []
    wall_offset = 0.0
    done_updates = 0
    if resume:
        done_updates, state = checkpoints.restore_latest(mngr, state, run_dir)
        rows = [r for r in files.read_metrics(run_dir) if r["update"] <= done_updates]
        wall_offset = max((r["wall_time_s"] for r in rows), default=0.0)

    total = config.num_updates
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total * config.steps_per_update, initial=done_updates * config.steps_per_update,
                   unit="step", unit_scale=True,
                   desc=f"{config.algo} U={config.env.num_users} Q={config.env.num_rbs}"
                        + (f" on {exp.num_devices} devices" if exp.num_devices > 1 else ""),
                   dynamic_ncols=True)
    wall = wall_offset  # compute time of the chunks (training, evaluation, compilation)
    chunks = 0
    evals = None
    while done_updates < total:
        if max_chunks is not None and chunks >= max_chunks:
            break
        if time_limit_s is not None and wall >= time_limit_s:
            break
        n = min(config.updates_per_chunk, total - done_updates)
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
        files.write_metrics(run_dir, rows)
        checkpoints.save(mngr, done_updates, state)
        if bar is not None:
            last = new_rows[-config.run.num_seeds:]
            bar.update(n * config.steps_per_update)
            bar.set_postfix(ret=f"{np.mean([r['train_return'] for r in last]):.3f}",
                            norm=f"{np.mean([r['eval_normalised'] for r in last]):.3f}")
    if bar is not None:
        bar.close()
    mngr.close()
    summary = summarise(run_dir, config, rows, ev, evals)
    if done_updates >= total and jax.process_index() == 0:
        from semcom_jax.training.plots import plot_run
        plot_run(run_dir)
    return summary


def policy_report(evals, algo: str) -> dict:
    """The greedy policy's row of a report (means over seeds) from an evaluation's figures."""
    return {f"policy ({algo.upper()})": report.policy_row(evals)}


def summarise(run_dir: str, config: TrainConfig, rows: list[dict], ev: Evaluator,
              last_evals=None) -> dict:
    """``summary.json``; ``last_evals`` (the last chunk's evaluation, when one ran) adds the
    policy's full report row (violations, encoder shares) as ``final_policy``."""
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
        "ceiling": ev.ceiling,
        "final_eval_normalised_ceiling": (float(np.mean([r["eval_normalised_ceiling"]
                                                         for r in final])) if final else None),
        "ceiling_monte_carlo_se": ev.ceiling_se,
        "final_eval_unserved_rate": (float(np.mean([r["eval_unserved_rate"] for r in final]))
                                     if final else None),
        "wall_time_to_0.9_s": first_09["wall_time_s"] if first_09 else None,
        "env_steps_to_0.9": first_09["env_steps"] if first_09 else None,
        "final_policy": (policy_report(last_evals, config.algo) if last_evals is not None
                         else None),
        "baselines": {k: {"return": v["return"], "normalised": v["normalised"],
                          "normalised_ceiling": v["normalised_ceiling"],
                          "unserved_rate": v["unserved_rate"]}
                      for k, v in ev.baselines.items()},
    }
    files.write_json(run_dir, files.SUMMARY, summary)
    return summary


def load_trained(run_dir: str, num_users: int | None = None, num_rbs: int | None = None,
                 episodes: int | None = None, ceiling_draws: int | None = None,
                 baselines=OPTIONAL, progress=None):
    """``(experiment, state, update)`` of a run's last checkpoint; the experiment evaluates at
    ``num_users``/``num_rbs`` (default: the run's size) on ``episodes`` held-out episodes, with
    ``ceiling_draws`` Monte-Carlo draws for the paper ceiling (default: the run's); ``baselines``
    and ``progress`` as :class:`~semcom_jax.baselines.evaluate.Evaluator`'s."""
    config = files.load_config(run_dir)
    if episodes is not None:
        config = config.replace(eval_episodes=episodes).validate()
    if ceiling_draws is not None:
        config = config.replace(ceiling_draws=ceiling_draws).validate()
    exp = Experiment.shared(config, num_users, num_rbs, baselines, progress)
    mngr = checkpoints.manager(run_dir)
    step, state = checkpoints.restore_latest(mngr, exp.init_state(), run_dir)
    mngr.close()
    if step == 0:
        raise ValueError(f"run {run_dir!r} has no checkpoint yet")
    return exp, state, step


def evaluate_run(run_dir: str, num_users: int | None = None, num_rbs: int | None = None,
                 episodes: int | None = None, baselines=OPTIONAL, progress=None) -> dict:
    """Re-evaluates the last checkpoint of a run on held-out episodes, with the baselines: the
    run's own size, or (size-free network) ``num_users`` users on ``num_rbs`` RBs, zero-shot."""
    exp, state, step = load_trained(run_dir, num_users, num_rbs, episodes,
                                    baselines=baselines, progress=progress)
    report = {**policy_report(exp.evaluate(state), exp.config.algo), **exp.evaluator.baselines}
    return {"update": step, "report": report, "encoders": exp.env.encoder_names,
            "num_users": exp.eval_env.num_users, "num_rbs": exp.eval_env.num_rbs}
