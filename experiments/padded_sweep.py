"""A sweep over user counts as ONE compiled program (padded env + vmap) against one program
per size, side by side.

    python experiments/padded_sweep.py                     # U in {5, 10, 20, 40}, Q = 2U
    python experiments/padded_sweep.py --users 5 10 --budget 100000

Both runs train PPO on every size from the same initial weights with the same keys (so they
compute the same thing up to float summation order, which is checked and printed); the vmapped
run compiles once for all sizes, the looped one once per size. Printed and saved to
``experiments/results/scaling/padded_sweep.csv``: wall time of each (compile included), the
largest difference of their training returns, and the held-out normalised score per size.
Every size pays for the padded (largest) shapes, so the vmapped sweep wins when compilation
dominates and loses when the sizes differ a lot and training is long.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
from common import machine, output_folder, write_csv  # noqa: E402

from semcom_jax.agents.config import TrainConfig  # noqa: E402
from semcom_jax.training.sweep import SizeSweep  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, nargs="+", default=[5, 10, 20, 40])
    ap.add_argument("--ratio", type=int, default=2, help="Q = ratio * U")
    ap.add_argument("--budget", type=int, default=300_000, help="env steps per size")
    ap.add_argument("--num-envs", type=int, default=64)
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/padded_sweep-<time>/; the committed "
                         "figures: --out experiments/results/scaling)")
    a = ap.parse_args(argv)
    a.out = output_folder(a.out, "padded_sweep")
    sizes = [(u, a.ratio * u) for u in a.users]
    cfg = TrainConfig.of(num_envs=a.num_envs, episodes_per_rollout=1, total_env_steps=a.budget)
    sweep = SizeSweep(cfg, sizes)
    print(f"machine: {machine()}; sizes {sizes} padded to U={sweep.max_users}, "
          f"Q={sweep.max_rbs}; {sweep.config.num_updates} updates of "
          f"{sweep.config.steps_per_update} padded env steps each")
    key = jax.random.PRNGKey(0)
    t0 = time.perf_counter()
    states, m_vmap = sweep.train(key)
    jax.block_until_ready(states)
    t_vmap = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, m_loop = sweep.train(key, vmapped=False)
    jax.block_until_ready(m_loop)
    t_loop = time.perf_counter() - t0
    diff = float(np.max(np.abs(np.asarray(m_vmap["train_return"]) -
                               np.asarray(m_loop["train_return"]))))
    rows = []
    for r in sweep.evaluate(states):
        rows.append({**r, "vmapped_sweep_wall_s": t_vmap, "one_program_per_size_wall_s": t_loop,
                     "max_train_return_diff": diff, "padded_to": f"{sweep.max_users}x{sweep.max_rbs}",
                     "budget_env_steps": a.budget, "machine": machine()})
        print(f"  U={r['num_users']:4d} Q={r['num_rbs']:4d}  normalised {r['normalised']:.3f}")
    print(f"one vmapped program: {t_vmap:.1f} s; one program per size: {t_loop:.1f} s; "
          f"largest training-return difference {diff:.2e}")
    os.makedirs(a.out, exist_ok=True)
    write_csv(os.path.join(a.out, "padded_sweep.csv"), rows)


if __name__ == "__main__":
    main()
