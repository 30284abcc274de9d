"""The optimum's assignment step at large U: the exact solver against the certified auction, on
the env's own gains (one episode per size, Q = 2U, best encoder per pair, the exact reductions
of ``solvers._lap`` applied), each on one core.

    python benchmarks/assignment.py                       # U = 1000, 2000, 4000, 10000
    python benchmarks/assignment.py --users 1000 4000 --exact-up-to 4000

Prints and writes ``assignment.csv`` to ``--out``: seconds of each solver, the auction's value
and its certificate (upper bound) relative to the total gain, and the exact optimum where it was
run (``--exact-up-to``; about cubic in U, ~15 minutes at U = 10,000).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def gains(u: int, q: int, seed: int = 0) -> np.ndarray:
    """The square gain matrix ``_lap`` hands to its solver for one episode (U x U)."""
    import jax

    from semcom_jax.baselines import solvers
    from semcom_jax.env import SemComEnv
    from semcom_jax.env.reward import unserved_term

    env = SemComEnv(u, q)
    p, table = env.default_params, env.table.data
    inst = jax.tree.map(lambda x: x[0], env.sample_instances(jax.random.PRNGKey(seed), 1, p))
    vals, _, mono = jax.jit(lambda i: solvers.ranked_values(i, p, table, min(u, q)))(inst)
    assert bool(mono), "the shipped table ranks RBs alike"
    w = np.asarray(vals).max(axis=1)
    g = np.maximum(w - float(unserved_term(table.chance_score, p)), 0.0).astype(np.float32)
    return g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, nargs="+", default=[1000, 2000, 4000, 10000])
    ap.add_argument("--exact-up-to", type=int, default=4000,
                    help="run the exact solver up to this U (default %(default)s)")
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()

    from common import machine, write_csv
    from scipy.optimize import linear_sum_assignment

    from semcom_jax.baselines.auction import RTOL, auction

    print(f"machine: {machine()}")
    rows = []
    for u in args.users:
        g = gains(u, 2 * u)
        auction(g[:8, :8])  # compiles the small case, not timed
        t0 = time.perf_counter()
        cols, value, bound = auction(g, RTOL)
        auction_s = time.perf_counter() - t0
        row = {"users": u, "rbs": 2 * u, "auction_s": auction_s, "rtol": RTOL,
               "auction_value": value, "upper_bound": bound,
               "certified_gap_rel": (bound - value) / bound}
        if u <= args.exact_up_to:
            t0 = time.perf_counter()
            r, c = linear_sum_assignment(g.astype(np.float64), maximize=True)
            row["exact_s"] = time.perf_counter() - t0
            row["exact_value"] = float(g.astype(np.float64)[r, c].sum())
            row["true_gap_rel"] = (row["exact_value"] - value) / row["exact_value"]
            assert value <= row["exact_value"] + 1e-6 <= bound + 1e-5
        rows.append(row)
        print(f"U={u:6d}: auction {auction_s:7.2f} s, certified gap {row['certified_gap_rel']:.1e}"
              + (f"; exact {row['exact_s']:7.2f} s, true gap {row['true_gap_rel']:.1e}"
                 if "exact_s" in row else "; exact not run"), flush=True)
    cols = ["users", "rbs", "exact_s", "auction_s", "rtol", "exact_value", "auction_value",
            "upper_bound", "certified_gap_rel", "true_gap_rel"]
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "assignment.csv")
    write_csv(path, [{k: r.get(k, "") for k in cols} for r in rows])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
