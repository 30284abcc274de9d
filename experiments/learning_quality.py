"""Learning quality of PPO on the default configuration (U=5, Q=10), both observation modes.

    python experiments/learning_quality.py              # 5 seeds x {paper, full}, ~6 min on 2 cores
    python experiments/learning_quality.py --seeds 2 --total-steps 1000000   # quicker
    python experiments/learning_quality.py --network set --runs seeds --seeds 3 \
        --out experiments/results/learning-set          # the size-free network, same budget

For each observation mode: (1) the seeds trained together (one vmapped program) give the final
normalised score per seed; (2) seed 0 trained alone gives the wall time to a normalised score of
0.9 on this machine (compile excluded, evaluation included). Run folders go to
``experiments/results/learning/``; the table is printed and saved as CSV, the curves as PNG.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

import numpy as np

from semcom_jax.training import runs
from semcom_jax.agents.config import TrainConfig

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
from common import check_reuse, machine, output_folder, write_csv  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--total-steps", type=int, default=TrainConfig().run.total_env_steps)
    ap.add_argument("--obs", nargs="+", default=["paper", "full"])
    ap.add_argument("--runs", nargs="+", default=["seeds", "alone"], choices=("seeds", "alone"))
    ap.add_argument("--network", default=TrainConfig().network.kind, choices=("per_rb", "set", "mlp"))
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/learning_quality-<time>/; the "
                         "committed figures: --out experiments/results/learning)")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the rows of --out's CSV for modes not rerun now (said out loud)")
    a = ap.parse_args(argv)
    if a.out is not None:
        check_reuse(a.out, a.reuse, "rows")
    a.out = output_folder(a.out, "learning_quality")
    csv_path = os.path.join(a.out, "learning_quality.csv")
    rows = []
    if os.path.exists(csv_path):  # --reuse: keep the rows of modes not rerun now
        import csv
        with open(csv_path) as fh:
            rows = [r for r in csv.DictReader(fh)
                    if r["obs_mode"] not in a.obs or r["run"] not in a.runs]
        for r in rows:
            for k, v in r.items():
                if k in ("seeds", "env_steps", "env_steps_to_0.9"):
                    r[k] = None if v == "" else int(float(v))
                elif k not in ("obs_mode", "run", "machine", "ceiling"):
                    r[k] = None if v == "" else float(v)
        print(f"--reuse: kept {len(rows)} rows of {csv_path}")
    for obs in a.obs:
        for tag, seeds in (("seeds", a.seeds), ("alone", 1)):
            if tag not in a.runs:
                continue
            run_dir = os.path.join(a.out, f"{obs}-{tag}")
            shutil.rmtree(run_dir, ignore_errors=True)
            cfg = TrainConfig.of(obs_mode=obs, num_seeds=seeds, total_env_steps=a.total_steps,
                              network=a.network)
            s = runs.train(cfg, run_dir, progress=True)
            rows.append({
                "obs_mode": obs, "run": tag, "seeds": seeds, "env_steps": s["env_steps"],
                "final_normalised_mean": s["final_eval_normalised"],
                "final_normalised_min": min(s["final_eval_normalised_per_seed"]),
                "final_normalised_max": max(s["final_eval_normalised_per_seed"]),
                "final_vs_ceiling_mean": s["final_eval_normalised_ceiling"],
                "ceiling": s["ceiling"],
                "ceiling_normalised": s["baselines"][s["ceiling"]]["normalised"],
                "final_unserved_rate": s["final_eval_unserved_rate"],
                "wall_time_s": s["wall_time_s"], "wall_time_to_0.9_s": s["wall_time_to_0.9_s"],
                "env_steps_to_0.9": s["env_steps_to_0.9"],
                "greedy_normalised": s["baselines"]["greedy"]["normalised"],
                "best_fixed_normalised": max(v["normalised"] for k, v in s["baselines"].items()
                                             if k.startswith("fixed")),
                "machine": machine(),
            })
            order = {(o, t): i for i, (o, t) in enumerate(
                (o, t) for o in ("paper", "full") for t in ("seeds", "alone"))}
            rows.sort(key=lambda r: order.get((r["obs_mode"], r["run"]), 99))
            write_csv(csv_path, rows)
    print(f"\nmachine: {machine()}")
    hdr = (f"{'obs':<7}{'run':<7}{'seeds':>6}{'final norm (mean/min/max)':>28}{'vs ceiling':>11}"
           f"{'ceiling':>8}{'t to 0.9 s':>12}{'steps to 0.9':>14}{'greedy':>8}{'best fixed':>11}")
    print(hdr + "\n" + "-" * len(hdr))
    for r in rows:
        t = r["wall_time_to_0.9_s"]
        st = None if r["env_steps_to_0.9"] is None else int(r["env_steps_to_0.9"])
        print(f"{r['obs_mode']:<7}{r['run']:<7}{int(r['seeds']):>6}"
              f"{r['final_normalised_mean']:>12.3f} / {r['final_normalised_min']:.3f} / "
              f"{r['final_normalised_max']:.3f}"
              f"{r['final_vs_ceiling_mean']:>11.3f}{r['ceiling_normalised']:>8.3f}"
              f"{(f'{t:.1f}' if t is not None else 'never'):>12}"
              f"{(f'{st:,}' if st is not None else 'never'):>14}"
              f"{r['greedy_normalised']:>8.3f}{r['best_fixed_normalised']:>11.3f}")
    plot(a.out, sorted({r["obs_mode"] for r in rows}, reverse=True))


def plot(out, modes):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from semcom_jax.training.plots import series

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, obs in enumerate(modes):
        rows = runs.read_metrics(os.path.join(out, f"{obs}-seeds"))
        x, m = series(rows, "eval_normalised")
        ax.plot(x, np.nanmean(m, axis=1), color=f"C{i}", label=f"PPO, obs={obs} (mean)")
        ax.fill_between(x, np.nanmin(m, axis=1), np.nanmax(m, axis=1), color=f"C{i}", alpha=0.25)
    ax.axhline(1.0, color="k", linestyle="--", label="exact optimum")
    if "paper" in modes:
        from semcom_jax.training.files import read_json
        base = read_json(os.path.join(out, "paper-seeds"), "baselines.json")
        ax.axhline(base["paper ceiling"]["normalised"], color="C0", linestyle=":",
                   label="paper ceiling (best policy of the paper observation)")
    ax.set_ylim(0.7, 1.02)
    ax.set_xlabel("env steps")
    ax.set_ylabel("normalised score (0 = random, held-out episodes)")
    ax.set_title("PPO on U=5, Q=10 (band: min-max over seeds)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "learning_quality.png"), dpi=120)
    print(f"wrote {os.path.join(out, 'learning_quality.csv')} and .png")


if __name__ == "__main__":
    main()
