"""Peak memory of PPO training against num_envs and U (Q = 2U), each point in its own process.

    python benchmarks/memory.py                         # ~5 min on 2 CPU cores
    python benchmarks/memory.py --users 5 50 --num-envs 64 1024

Per point: a fresh Python process builds the default PPO experiment (paper observation, per-RB
network, one episode per rollout, 64 held-out episodes) and runs two updates; reported is the
process's peak resident memory (``ru_maxrss``; the imported libraries alone are the
``baseline`` row) and, where the device reports it (GPU), its peak bytes in use. Writes
``benchmarks/results/memory.csv`` and ``memory.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def point(u: int, n: int) -> dict:
    import jax

    from semcom_jax.training import runs
    from semcom_jax.agents.config import TrainConfig

    if n > 0:
        cfg = TrainConfig.of(num_users=u, num_rbs=2 * u, num_envs=n, episodes_per_rollout=1,
                          total_env_steps=2 * n * u, eval_episodes=64, chunk_updates=2,
                          ceiling_draws=0)  # the paper ceiling's Monte Carlo is not measured here
        exp = runs.Experiment(cfg)
        state, *_ = exp.run_chunk(exp.init_state(), 2)
        jax.block_until_ready(state)
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    peak = (stats or {}).get("peak_bytes_in_use")
    return {"num_users": u, "num_rbs": 2 * u, "num_envs": n,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "peak_device_gib": peak / 2**30 if peak else None}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, nargs="+", default=[5, 50, 500])
    ap.add_argument("--num-envs", type=int, nargs="+", default=[16, 64, 256, 1024, 4096, 16384])
    ap.add_argument("--max-rollout-gib", type=float, default=4.0,
                    help="skip points whose stored rollout (observations) alone exceeds this")
    ap.add_argument("--point", nargs=2, type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/memory-<time>/; the committed "
                         "figures: --out benchmarks/results)")
    a = ap.parse_args(argv)
    if a.point:
        print("RESULT" + json.dumps(point(*a.point)))
        return
    from common import machine, output_folder, write_csv

    out = output_folder(a.out, "memory")

    rows = []
    from semcom_jax.env import SemComEnv

    def rollout_gib(u, n):  # one episode per rollout: U steps x n envs x one observation
        env = SemComEnv(u, 2 * u)
        per_step = 4 * (env.observation_size + 3 * env.num_rbs) + env.num_actions
        return u * n * per_step / 2**30

    todo = [(5, 0)] + [(u, n) for u in a.users for n in a.num_envs
                       if rollout_gib(u, n) <= a.max_rollout_gib]
    for u, n in todo:
        r = subprocess.run([sys.executable, __file__, "--point", str(u), str(n)],
                           capture_output=True, text=True)
        line = [x for x in r.stdout.splitlines() if x.startswith("RESULT")]
        if not line:
            print(f"U={u} num_envs={n}: failed: {r.stderr[-300:]}")
            continue
        row = {**json.loads(line[0][6:]), "machine": machine()}
        if n == 0:
            row["num_users"] = row["num_rbs"] = "baseline"
        rows.append(row)
        print(f"U={row['num_users']!s:>8} num_envs={n:6d}  peak RSS {row['peak_rss_gib']:.2f} GiB"
              + (f"  device {row['peak_device_gib']:.2f} GiB" if row["peak_device_gib"] else ""),
              flush=True)
        write_csv(os.path.join(out, "memory.csv"), rows)
    plot(rows, os.path.join(out, "memory.png"))


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for u in sorted({r["num_users"] for r in rows if r["num_users"] != "baseline"}):
        rs = sorted((r for r in rows if r["num_users"] == u), key=lambda r: r["num_envs"])
        ax.loglog([r["num_envs"] for r in rs], [r["peak_rss_gib"] for r in rs], "o-",
                  label=f"U={u}, Q={2 * u}")
    base = [r for r in rows if r["num_users"] == "baseline"]
    if base:
        ax.axhline(base[0]["peak_rss_gib"], color="k", ls=":", label="libraries alone")
    ax.set_xlabel("parallel environments")
    ax.set_ylabel("peak host memory (GiB)")
    ax.set_title("PPO training, peak resident memory", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
