"""What ``semcom-jax eval`` costs at large U: wall time and peak memory of evaluating a size-free
policy zero-shot with every baseline, each point in its own process (so its peak is its own).

    python benchmarks/eval_scale.py                          # U = 200, 1000 (Q = 2U, U), 8 episodes
    python benchmarks/eval_scale.py --points 1000:2000:8 --run runs/my-set-run

A point ``U:Q:N`` evaluates N held-out episodes at U users and Q RBs (``runs.evaluate_run``,
every baseline of the observation: random, optimum, greedy, each fixed encoder). Without
``--run`` a small size-free policy is trained first (full observation, U = 5, Q = 10, 40k
steps). Prints and writes ``eval_scale.csv`` / ``eval_scale.png`` to ``--out``: wall seconds
(policy and baselines, compilation included), the baselines' share of them, peak resident
memory, and the estimate ``eval`` prints before it starts.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def point(run: str, u: int, q: int, n: int) -> dict:
    """Child process: one evaluation, timed."""
    from semcom_jax.baselines import report
    from semcom_jax.training import runs

    seconds: dict = {}
    t0 = time.perf_counter()
    out = runs.evaluate_run(run, u, q, n, progress=lambda d, t, s: seconds.update(s))
    wall = time.perf_counter() - t0
    return {"users": u, "rbs": q, "episodes": n, "wall_s": wall,
            "baselines_s": sum(seconds.values()),
            "optimum_s": seconds.get("optimum", 0.0) + sum(
                v for k, v in seconds.items() if k.startswith("fixed")),
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "estimate_gib": report.memory_estimate(u, q, 3, n) / 2**30,
            "policy_normalised": out["report"][next(iter(out["report"]))]["normalised"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", nargs="+", default=["200:400:8", "1000:2000:8", "1000:1000:8"],
                    help="U:Q:EPISODES of each point (default %(default)s)")
    ap.add_argument("--run", help="a size-free (network 'set') run to evaluate")
    ap.add_argument("--out", default="benchmarks/results", help="folder of the CSV and plot")
    ap.add_argument("--point", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.point:
        run, u, q, n = args.point
        print(json.dumps(point(run, int(u), int(q), int(n))))
        return

    from common import machine, write_csv

    print(f"machine: {machine()}")
    run = args.run
    if run is None:
        from semcom_jax.agents.config import TrainConfig
        from semcom_jax.training import runs

        run = os.path.join("runs", "eval_scale_run")
        cfg = TrainConfig.for_algo("ppo", network="set", obs_mode="full", reward="dense",
                                   num_users=5, num_rbs=10, total_env_steps=40_000,
                                   num_envs=64, episodes_per_rollout=1, ceiling_draws=0)
        if not os.path.exists(os.path.join(run, "summary.json")):
            print(f"training a small size-free policy in {run} ...", flush=True)
            runs.train(cfg, run, resume=os.path.exists(os.path.join(run, "config.json")))
    rows = []
    for spec in args.points:
        u, q, n = (int(x) for x in spec.split(":"))
        res = subprocess.run([sys.executable, __file__, "--point", run, str(u), str(q), str(n)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"point {spec} failed:\n{res.stderr[-3000:]}")
        row = json.loads(res.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"U={u:5d} Q={q:5d} episodes={n}: {row['wall_s']:6.1f} s (baselines "
              f"{row['baselines_s']:.1f} s, of which optimum and fixed {row['optimum_s']:.1f} s), "
              f"peak {row['peak_rss_gib']:.2f} GiB (baselines' estimate "
              f"{row['estimate_gib']:.2f} GiB), policy {row['policy_normalised']:.3f}",
              flush=True)
        write_csv(os.path.join(args.out, "eval_scale.csv"), rows)
    plot(rows, os.path.join(args.out, "eval_scale.png"))
    print(f"wrote {os.path.join(args.out, 'eval_scale.csv')} and eval_scale.png")


def plot(rows, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from semcom_jax.atomic import atomic_open

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    labels = [f"U={r['users']}\nQ={r['rbs']}" for r in rows]
    x = range(len(rows))
    a.bar(x, [r["wall_s"] for r in rows], color="C0", label="total")
    a.bar(x, [r["baselines_s"] for r in rows], color="C1", label="baselines")
    a.set_xticks(list(x), labels)
    a.set_ylabel("seconds (compilation included)")
    a.legend()
    b.bar(x, [r["peak_rss_gib"] for r in rows], color="C2", label="peak RSS")
    b.plot(list(x), [r["estimate_gib"] for r in rows], "k_", ms=30, label="baselines' estimate")
    b.set_xticks(list(x), labels)
    b.set_ylabel("GiB")
    b.legend()
    fig.suptitle(f"semcom-jax eval, {rows[0]['episodes']} held-out episodes, every baseline")
    fig.tight_layout()
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
