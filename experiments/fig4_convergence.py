"""The paper's Fig. 4: convergence of PPO, SAC and DQN on equal terms.

    python experiments/fig4_convergence.py                       # 5 seeds x 3 algos x 2 obs modes
    python experiments/fig4_convergence.py --obs paper --seeds 2 --total-steps 500000   # quicker

Every algorithm gets the same env-step budget, the same network sizes (``hidden``, ``rb_hidden``),
the same env (U=5, Q=10, terminal reward, embedded table) and the same held-out evaluation
episodes, evaluated every 102,400 env steps (greedy policy, expected returns). Hyperparameters are
``HYPER`` below: PPO's are the package defaults (tuned in the PPO issue), SAC's and DQN's their
``TrainConfig.for_algo`` defaults, chosen by a short sweep over gradient steps per update
(``experiments/tune_ppo.py`` style, one seed, paper observation; see the README).

Each (obs mode, algorithm) is a normal run folder under ``--out`` trained by ``runs.train`` with
all seeds in one vmapped program, so an interrupted experiment resumes where it stopped (finished
runs are reused, unfinished ones resumed). Outputs, per observation mode: ``fig4_<obs>.png``
(mean evaluation return with a 95% confidence band over seeds, against env steps and against
wall time, with the random, greedy and optimum lines) and ``fig4_table.csv`` / printed table:

- ``final_normalised``: mean over seeds of the last evaluation, with its 95% CI half-width;
- ``steps_to_90pct_best``: env steps until the seed-mean normalised score first reaches 90% of the
  best final normalised score of the three algorithms (and the wall time then);
- ``ppo_ratio_final`` and ``ppo_ratio_accumulated``: the paper's "accumulated reward" ratio of
  PPO to this algorithm. The paper plots the episode return (reward accumulated over an episode)
  and compares it after training. Our returns are negative (the delay and energy penalties of
  eq. 11), so a plain ratio of returns is meaningless; we take returns *above the random policy*:
  ``final`` = (R_PPO - R_random) / (R_algo - R_random) at the end, ``accumulated`` = the same with
  returns summed over all evaluation points (area under the learning curve above random).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from scipy import stats

from semcom_jax.training import runs
from semcom_jax.agents.config import TrainConfig

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
from common import check_reuse, machine, output_folder, write_csv  # noqa: E402

ALGOS = ("ppo", "sac", "dqn")
EVAL_EVERY = 102_400  # env steps between evaluations, the same grid for every algorithm
# Stated hyperparameters: whatever is not listed is TrainConfig.for_algo(algo)'s default.
HYPER = {
    "ppo": {"chunk_updates": EVAL_EVERY // (1024 * 10)},  # 1024 envs x 10 steps per update
    "sac": {"chunk_updates": EVAL_EVERY // (256 * 5)},  # 256 envs x 5 steps per update
    "dqn": {"chunk_updates": EVAL_EVERY // (256 * 5)},
}


def config_for(algo: str, obs: str, seeds: int, total_steps: int) -> TrainConfig:
    return TrainConfig.for_algo(algo, obs_mode=obs, num_seeds=seeds, total_env_steps=total_steps,
                                **HYPER[algo])


def run_one(cfg: TrainConfig, run_dir: str) -> None:
    if os.path.exists(os.path.join(run_dir, "config.json")):
        saved = runs.load_config(run_dir)
        if saved != cfg:
            raise SystemExit(f"{run_dir} holds a run of another config; remove it or use --out")
        summary = os.path.join(run_dir, "summary.json")
        if os.path.exists(summary) and json.load(open(summary))["updates"] >= cfg.num_updates:
            print(f"reused: {run_dir} (finished)")
            return
        print(f"resumed: {run_dir}")
        runs.train(None, run_dir, resume=True)
    else:
        runs.train(cfg, run_dir)


def curves(run_dir: str):
    """Per evaluation point: env steps, wall time, (seeds,) returns and normalised scores."""
    rows = [r for r in runs.read_metrics(run_dir) if r["eval_return"] is not None]
    updates = sorted({r["update"] for r in rows})
    by = {u: [r for r in rows if r["update"] == u] for u in updates}
    steps = np.array([by[u][0]["env_steps"] for u in updates], float)
    wall = np.array([by[u][0]["wall_time_s"] for u in updates], float)
    ret = np.array([[r["eval_return"] for r in by[u]] for u in updates])
    norm = np.array([[r["eval_normalised"] for r in by[u]] for u in updates])
    ceil = np.array([[r["eval_normalised_ceiling"] for r in by[u]] for u in updates])
    return steps, wall, ret, norm, ceil


def ci95(x: np.ndarray) -> np.ndarray:
    """Half-width of the 95% t confidence interval of the mean over the last axis."""
    n = x.shape[-1]
    if n < 2:
        return np.zeros(x.shape[:-1])
    return stats.t.ppf(0.975, n - 1) * x.std(axis=-1, ddof=1) / np.sqrt(n)


def table(obs: str, data: dict, baselines: dict) -> list[dict]:
    r_rand = baselines["random"]["return"]
    best_final = max(np.mean(d[3][-1]) for d in data.values())
    rows = []
    for algo, (steps, wall, ret, norm, ceil) in data.items():
        mean_norm = norm.mean(axis=1)
        hit = np.nonzero(mean_norm >= 0.9 * best_final)[0]
        rows.append({
            "obs_mode": obs, "algo": algo, "seeds": norm.shape[1], "env_steps": int(steps[-1]),
            "final_normalised": float(mean_norm[-1]), "final_normalised_ci95": float(ci95(norm[-1])),
            "final_vs_ceiling": float(ceil[-1].mean()),
            "final_vs_ceiling_ci95": float(ci95(ceil[-1])),
            "final_return": float(ret[-1].mean()),
            "steps_to_90pct_best": int(steps[hit[0]]) if len(hit) else None,
            "wall_s_to_90pct_best": float(wall[hit[0]]) if len(hit) else None,
            "wall_s_total": float(wall[-1]),
            "gain_final": float(ret[-1].mean() - r_rand),
            "gain_accumulated": float(np.sum(ret.mean(axis=1) - r_rand)),
        })
    ppo = next(r for r in rows if r["algo"] == "ppo")
    for r in rows:
        r["ppo_ratio_final"] = ppo["gain_final"] / r["gain_final"]
        r["ppo_ratio_accumulated"] = ppo["gain_accumulated"] / r["gain_accumulated"]
        r["machine"] = machine()
    return rows


def plot(obs: str, data: dict, baselines: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    for ax, xi, xlabel in ((axes[0], 0, "env steps"), (axes[1], 1, "wall time (s)")):
        for algo, d in data.items():
            x, ret = d[xi], d[2]
            m, h = ret.mean(axis=1), ci95(ret)
            ax.plot(x, m, label=f"{algo.upper()} (n={ret.shape[1]})")
            ax.fill_between(x, m - h, m + h, alpha=0.25)
        for name, style, color in (("random", ":", "k"), ("greedy", "-.", "k"),
                                   ("optimum", "--", "k"), ("paper ceiling", "--", "m")):
            if name in baselines:
                ax.axhline(baselines[name]["return"], color=color, ls=style, lw=1, label=name)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("evaluation return (held-out episodes)")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Convergence of PPO, SAC and DQN, U=5, Q=10, {obs} observation "
                 "(mean and 95% CI over seeds)")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--total-steps", type=int, default=3_000_000)
    ap.add_argument("--obs", nargs="+", default=["paper", "full"], choices=("paper", "full"))
    ap.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/fig4_convergence-<time>/; the "
                         "committed figures: --out experiments/results/fig4)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse (and resume) the run folders already in --out, said out loud")
    a = ap.parse_args(argv)
    if a.out is not None:
        check_reuse(a.out, a.reuse, "runs")
    a.out = output_folder(a.out, "fig4_convergence")
    if "ppo" not in a.algos:
        raise SystemExit("--algos must include ppo (the ratios are PPO's)")
    all_rows = []
    for obs in a.obs:
        data = {}
        for algo in a.algos:
            run_dir = os.path.join(a.out, f"{obs}-{algo}")
            run_one(config_for(algo, obs, a.seeds, a.total_steps), run_dir)
            data[algo] = curves(run_dir)
        with open(os.path.join(a.out, f"{obs}-ppo", "baselines.json")) as fh:
            baselines = json.load(fh)
        plot(obs, data, baselines, os.path.join(a.out, f"fig4_{obs}.png"))
        all_rows += table(obs, data, baselines)
    write_csv(os.path.join(a.out, "fig4_table.csv"), all_rows)
    cols = ("obs_mode", "algo", "final_normalised", "final_normalised_ci95", "final_vs_ceiling",
            "steps_to_90pct_best", "wall_s_to_90pct_best", "ppo_ratio_final",
            "ppo_ratio_accumulated")
    print(" | ".join(cols))
    for r in all_rows:
        print(" | ".join(f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in cols))


if __name__ == "__main__":
    main()
