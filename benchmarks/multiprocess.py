"""One process against two: the same PPO run on one device, on two simulated devices of one
process, and as two processes of JAX's multi-process runtime (``semcom-jax launch``).

    python benchmarks/multiprocess.py                  # ~3 min on 2 cores
    python benchmarks/multiprocess.py --total-steps 2000000 --num-envs 2048

Each variant is a fresh ``semcom-jax train`` (default configuration otherwise, no progress bar);
reported: the run's compute time (``summary.json``: chunks of training and evaluation,
compilation included) and env steps/s, and the final normalised score (the three must agree:
the same program split differently). On this 2-core machine the processes share the cores, so
this measures the overhead of the split, not a speed-up; a cluster gives each process its own
devices. Writes ``multiprocess.csv`` to a fresh ``runs/multiprocess-<time>/`` unless ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--total-steps", type=int, default=1_000_000)
    ap.add_argument("--num-envs", type=int, default=1024)
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/multiprocess-<time>/; the "
                         "committed figures: --out benchmarks/results)")
    a = ap.parse_args(argv)
    from common import machine, output_folder, write_csv

    out = output_folder(a.out, "multiprocess")
    train = ["train", "--num-envs", str(a.num_envs), "--total-steps", str(a.total_steps),
             "--no-progress"]
    base_env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    two_devices = dict(base_env, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    variants = [
        ("1 process, 1 device", train + ["--devices", "1"], base_env),
        ("1 process, 2 simulated devices", train + ["--devices", "2"], two_devices),
        ("2 processes (launch), 1 device each", ["launch", "--processes", "2", "--"] + train
         + ["--devices", "2"], base_env),
    ]
    rows = []
    for name, args, env in variants:
        run = os.path.join(out, name.split(",")[0].replace(" ", "-") + f"-{len(rows)}")
        r = subprocess.run([sys.executable, "-m", "semcom_jax.cli.main", *args, "--out", run],
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{name}: failed: {r.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        with open(os.path.join(run, "summary.json")) as fh:
            s = json.load(fh)
        rows.append({"variant": name, "env_steps": s["env_steps"],
                     "compute_s": s["wall_time_s"],
                     "env_steps_per_s": s["env_steps"] / s["wall_time_s"],
                     "final_normalised": s["final_eval_normalised"], "machine": machine()})
        print(f"{name:38s} {s['wall_time_s']:7.1f} s  {rows[-1]['env_steps_per_s']:10,.0f} "
              f"steps/s  final {s['final_eval_normalised']:.4f}", flush=True)
        write_csv(os.path.join(out, "multiprocess.csv"), rows)
    print(f"wrote {out}/multiprocess.csv")


if __name__ == "__main__":
    main()
