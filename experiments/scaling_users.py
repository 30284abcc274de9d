"""Scaling study over the number of users: U in {5, ..., 1000}, with Q = 2U and Q = U.

    python experiments/scaling_users.py                       # every point, hours on 2 cores
    python experiments/scaling_users.py --users 5 50 500 --ratios 1 --budget 100000

Per (U, Q) point, PPO (default per-RB network, paper observation) trains for a fixed budget of
env steps, in its own process (so that peak memory is that point's alone):

- ``compile_s``: first compiled chunk minus a steady-state chunk of the same length;
- ``env_steps_per_s``: steady-state training throughput (rollout, updates and the chunk-end
  evaluation, which is part of every chunk). One env step is one user's decision (encoder and
  RB), so this is also the **decisions per second**; ``episodes_per_s`` = that / U;
- ``peak_rss_gib``: the process's peak resident memory (``ru_maxrss``), and the device's peak
  where the device reports it (GPU);
- ``normalised``: greedy score on held-out episodes after the budget (0 random, 1 optimum).

The batch shrinks as U grows (``NUM_ENVS``) so that one update is a few thousand decisions at
every size. A point that exceeds ``--point-timeout`` is recorded with what it finished. Results
are appended to ``experiments/results/scaling/scaling_users.csv`` after every point (rerunning
skips points already there) and plotted in ``scaling_users.png``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))

USERS = (5, 10, 20, 50, 100, 200, 500, 1000)
NUM_ENVS = {5: 1024, 10: 512, 20: 256, 50: 128, 100: 64, 200: 32, 500: 16, 1000: 8}


def point(u: int, q: int, budget: int, timeout_s: float) -> dict:
    import jax
    import numpy as np

    from common import machine
    from semcom_jax.training import runs
    from semcom_jax.agents.config import TrainConfig

    n_envs = NUM_ENVS.get(u, max(4, 4096 // u))
    cfg = TrainConfig(num_users=u, num_rbs=q, num_envs=n_envs, episodes_per_rollout=1,
                      total_env_steps=max(budget, n_envs * u),
                      eval_episodes=int(max(16, min(256, 20_000 // u))), chunk_updates=1,
                      # The paper ceiling costs U*K*Q*draws per held-out episode: off at scale.
                      ceiling_draws=0)
    t0 = time.perf_counter()
    exp = runs.Experiment(cfg)
    state = exp.init_state()
    setup_s = time.perf_counter() - t0
    chunk = max(1, cfg.num_updates // 5)
    times, done, ev = [], 0, None
    start = time.perf_counter()
    while done < cfg.num_updates:
        n = min(chunk, cfg.num_updates - done)
        t = time.perf_counter()
        state, _, ev = exp.run_chunk(state, n)
        jax.block_until_ready(state)
        times.append((n, time.perf_counter() - t))
        done += n
        if time.perf_counter() - start > timeout_s:
            break
    steady = [t / n for n, t in times[1:] if n == chunk] or [times[0][1] / times[0][0]]
    per_update = float(np.median(steady))
    compile_s = max(0.0, times[0][1] - times[0][0] * per_update)
    sps = cfg.steps_per_update / per_update
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    peak_dev = (stats or {}).get("peak_bytes_in_use")
    return {
        "num_users": u, "num_rbs": q, "num_envs": n_envs,
        "budget_env_steps": cfg.num_updates * cfg.steps_per_update,
        "env_steps_done": done * cfg.steps_per_update,
        "budget_reached": done >= cfg.num_updates,
        "setup_s": setup_s, "compile_s": compile_s,
        "env_steps_per_s": sps, "decisions_per_s": sps, "episodes_per_s": sps / u,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "peak_device_gib": peak_dev / 2**30 if peak_dev else None,
        "normalised": float(np.mean(ev["eval_normalised"])),
        "machine": machine(),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, nargs="+", default=list(USERS))
    ap.add_argument("--ratios", type=int, nargs="+", default=[2, 1], help="Q = ratio * U")
    ap.add_argument("--budget", type=int, default=200_000, help="env steps per point")
    ap.add_argument("--point-timeout", type=float, default=900.0)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "scaling"))
    ap.add_argument("--point", nargs=2, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.point:
        print("RESULT" + json.dumps(point(a.point[0], a.point[1], a.budget, a.point_timeout)))
        return
    from common import write_csv

    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, "scaling_users.csv")
    rows = list(csv.DictReader(open(path))) if os.path.exists(path) else []
    have = {(int(r["num_users"]), int(r["num_rbs"])) for r in rows}
    for ratio in a.ratios:
        for u in a.users:
            q = ratio * u
            if (u, q) in have:
                continue
            t = time.perf_counter()
            r = subprocess.run([sys.executable, __file__, "--point", str(u), str(q), "--budget",
                                str(a.budget), "--point-timeout", str(a.point_timeout)],
                               capture_output=True, text=True)
            line = [x for x in r.stdout.splitlines() if x.startswith("RESULT")]
            if r.returncode != 0 or not line:
                print(f"U={u} Q={q}: failed ({r.returncode}): {r.stderr[-500:]}", flush=True)
                row = {"num_users": u, "num_rbs": q, "failed": r.stderr.strip()[-200:]}
            else:
                row = json.loads(line[0][len("RESULT"):])
                print(f"U={u:5d} Q={q:5d} envs={row['num_envs']:5d} compile {row['compile_s']:6.1f} s "
                      f"{row['env_steps_per_s']:10.0f} decisions/s  rss {row['peak_rss_gib']:.2f} GiB  "
                      f"normalised {row['normalised']:.3f}  ({time.perf_counter() - t:.0f} s)",
                      flush=True)
            rows.append(row)
            keys = sorted({k for x in rows for k in x})
            write_csv(path, [{k: x.get(k) for k in keys} for x in rows])
    plot(rows, os.path.join(a.out, "scaling_users.png"))


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    good = [r for r in rows if not r.get("failed") and r.get("env_steps_per_s") not in (None, "")]
    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    for ratio, style in ((2, "o-"), (1, "s--")):
        rs = sorted((r for r in good if int(r["num_rbs"]) == ratio * int(r["num_users"])),
                    key=lambda r: int(r["num_users"]))
        if not rs:
            continue
        u = [int(r["num_users"]) for r in rs]
        for ax, key in zip(axes, ("decisions_per_s", "compile_s", "peak_rss_gib", "normalised")):
            ax.plot(u, [float(r[key]) for r in rs], style, label=f"Q = {ratio}U")
    for ax, title in zip(axes, ("decisions / s (training)", "compile time (s)",
                                "peak host memory (GiB)", "normalised score after budget")):
        ax.set_xscale("log")
        ax.set_xlabel("users U")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
