"""Scaling study: does a learned policy keep up with greedy and the optimum as U grows, and what
does it cost?

    python experiments/scaling_users.py                     # the whole study (about two hours on 2 cores)
    python experiments/scaling_users.py --users 5 50 --train-steps 200000 --size-budget-s 20

For every U in ``--users`` and Q = r U for r in ``--ratios`` (default 2 and 1), on the same
held-out episodes (``semcom_jax.baselines.evaluate.Evaluator``, expected returns, 0 = random,
1 = exact optimum):

(a) ``zero_shot``: ONE size-free policy (``network="set"``) trained once across sizes
    (``--train-users``, default U in [5, 50], Q in [5, 2 x 50], drawn per episode), evaluated
    at every (U, Q), most of which it never saw; ``--seeds`` seeds, trained together by vmap;
(b) ``per_size``: the same network trained at that (U, Q) alone for ``--size-budget-s`` seconds
    of compute (default: the wall time the across-sizes run took), for the sizes in
    ``--per-size-users``; each point runs in its own process, so its peak memory is its own;
(c) the baselines on the same episodes: ``greedy``, ``best_fixed`` (the best fixed encoder
    with optimal RBs), ``random`` (0 by definition) and ``optimum`` (1); with ``--obs paper
    --ceiling-users N``, up to U = N also ``paper_greedy`` (greedy on the terms' expectations
    given what the paper observation reveals: the heuristic with a paper policy's information)
    and ``paper_ceiling`` (the best policy of that observation).

Beyond 2000 users the optimum (and each fixed encoder's) is found by an auction with a
certificate (``semcom_jax.baselines.auction``): ``optimum_gap`` is how far it may be below the
true optimum on the normalised scale (0 where solved exactly).

Policies are the mean over seeds with a 95% Student-t half-width (``ci95``). Costs per point:
each (U, Q)'s evaluation runs in its own process, and ``eval_wall_s`` / ``eval_peak_rss_gib``
are its wall time (set-up, baselines, the policy's evaluation, compilation included) and peak
memory; ``decisions_per_s`` of the greedy held-out evaluation (compilation included beyond
U = 1000, where the policy is evaluated once); for (a)/(b) training
``train_decisions_per_s`` (env steps, i.e. user decisions, per second of compute, evaluation
included), ``setup_s`` (building the env, evaluator and baselines), ``compile_s`` (first chunk
minus the mean of the others) and ``peak_rss_gib``.

Outputs go to a fresh folder, ``runs/scaling-<time>/`` unless ``--out`` names one:
``scaling_users.csv`` (rewritten atomically after every point), ``scaling_users.png``, and
the training runs (``across/``, ``size-U<U>-Q<Q>/``) and each evaluation
(``eval-U<U>-Q<Q>.json``). Finished runs and points are reused only with ``--reuse``, and each
reuse is printed. The reward used for training is ``dense`` (the same
return as the paper's terminal reward, paid user by user; see docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))

from semcom_jax.agents.config import MAX_INT  # noqa: E402

USERS = (5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
POINT = "point.json"


def eval_episodes(u: int) -> int:
    """Held-out episodes at U users: fewer at large U (the policy's U decisions cost O(U + Q)
    each). Up to U = 1000, 8192 / U (16 to 256); beyond, 16,384 decisions per seed (one
    episode at U = 10,000)."""
    return int(max(16, min(256, 8192 // u)) if u <= 1000 else max(1, 16384 // u))


def num_envs(u: int) -> int:
    """Training envs at one size: a power of two, 8k to 16k decisions per update."""
    return int(max(8, min(1024, 2 ** int(np.log2(16384 / u)))))


def ci95(x) -> float:
    from scipy import stats
    x = np.asarray(x, float)
    if x.size < 2:
        return float("nan")
    return float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))


def peak_rss_gib() -> float:
    """This process's peak resident memory. On Linux from ``VmHWM``, which starts afresh in a
    child process; ``ru_maxrss`` survives ``execve``, so a point's child would report at least
    its parent's peak (the across-sizes training's)."""
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 2**20
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def base_config(args, **kw):
    from semcom_jax.agents.config import TrainConfig
    return TrainConfig.of(network="set", reward="dense", obs_mode=args.obs, num_seeds=args.seeds,
                       episodes_per_rollout=1, ceiling_draws=0,
                       rb_candidates=args.rb_candidates,
                       rb_candidate_rule=args.rb_candidate_rule, **kw)


def train_timed(cfg, run_dir: str, time_limit_s=None, resume: bool = False) -> dict:
    """Trains a run (``resume``: continues it, or only reads it when finished); returns its
    cost figures."""
    from semcom_jax.training import files, runs

    t0 = time.perf_counter()
    summary = runs.train(None if resume else cfg, run_dir, resume=resume,
                         time_limit_s=time_limit_s)
    rows = files.read_metrics(run_dir)
    walls = sorted({r["wall_time_s"] for r in rows})
    chunk_s = np.diff([0.0] + walls)
    compile_s = float(chunk_s[0] - np.mean(chunk_s[1:])) if len(chunk_s) > 2 else float("nan")
    return {"train_env_steps": summary["env_steps"], "train_wall_s": summary["wall_time_s"],
            "train_decisions_per_s": summary["env_steps"] / max(summary["wall_time_s"], 1e-9),
            "compile_s": compile_s,
            # A reused run's compute time is from when it ran: no set-up time to measure now.
            "setup_s": (float("nan") if resume
                        else time.perf_counter() - t0 - summary["wall_time_s"]),
            "peak_rss_gib": peak_rss_gib()}


def evaluate(run_dir: str, u: int, q: int, ceiling_draws: int | None = None
             ) -> tuple[list, dict, float]:
    """Per-seed normalised scores of a run's policy at (U, Q), the baselines, decisions/s;
    ``ceiling_draws`` > 0 (paper observation) adds the paper ceiling and paper greedy. Prints
    the baselines' plan and progress."""
    from semcom_jax.baselines import report
    from semcom_jax.training import runs

    n = eval_episodes(u)
    est = report.memory_estimate(u, q, 3, n, ceiling_draws or 0) / 2**30
    print(f"U={u} Q={q}: {n} held-out episodes; baselines' estimated memory {est:.2f} GiB",
          flush=True)

    def progress(done, total, seconds):
        print(f"  baselines: {done}/{total} episodes, "
              + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()), flush=True)

    exp, state, _ = runs.load_trained(run_dir, u, q, n, ceiling_draws, progress=progress)
    t0 = time.perf_counter()
    ev = exp.evaluate(state)  # compiles; at large U, timed with its compilation
    if u <= 1000:
        t0 = time.perf_counter()
        ev = exp.evaluate(state)
    dps = n * u * exp.config.run.num_seeds / (time.perf_counter() - t0)
    return [float(x) for x in np.ravel(ev["eval_normalised"])], exp.evaluator.baselines, dps


def eval_point(args) -> None:
    """Child process: the zero-shot evaluation of one (U, Q), timed, with its own peak memory."""
    from semcom_jax.atomic import atomic_open

    u, q = args.eval_point
    draws = args.ceiling_draws if args.obs == "paper" and u <= args.ceiling_users else 0
    t0 = time.perf_counter()
    zs, base, dps = evaluate(os.path.join(args.out, "across"), u, q, draws)
    with atomic_open(os.path.join(args.out, f"eval-U{u}-Q{q}.json"), "w") as fh:
        json.dump({"per_seed": zs, "baselines": base, "decisions_per_s": dps,
                   "eval_wall_s": time.perf_counter() - t0, "eval_peak_rss_gib": peak_rss_gib()},
                  fh)


def size_config(args, u: int, q: int):
    """The config of a per-size point. The wall-clock budget ends the run; the step budget is
    the largest the config allows."""
    return base_config(args, num_users=u, num_rbs=q, num_envs=num_envs(u),
                       total_env_steps=MAX_INT, eval_episodes=eval_episodes(u), chunk_updates=5)


def size_point(args) -> None:
    """Child process: trains at one size for a wall-clock budget and evaluates (method b)."""
    u, q, out = args.size_point[0], args.size_point[1], args.out
    cfg = size_config(args, u, q)
    cost = train_timed(cfg, out, time_limit_s=args.size_budget_s)
    per_seed, _, _ = evaluate(out, u, q)
    with open(os.path.join(out, POINT), "w") as fh:
        json.dump({**cost, "per_seed": per_seed, "peak_rss_gib": peak_rss_gib()}, fh)


def rows_for(u, q, zs, base, dps, across_cost, size, point_cost=None) -> list[dict]:
    best_fixed = max((k for k in base if k.startswith("fixed")),
                     key=lambda k: base[k]["normalised"])
    common = {"users": u, "rbs": q, "eval_episodes": eval_episodes(u),
              "optimum_gap": base["optimum"].get("certified_gap", 0.0), **(point_cost or {})}
    rows = [{**common, "method": "zero_shot", "normalised": float(np.mean(zs)),
             "ci95": ci95(zs), "seeds": len(zs), "decisions_per_s": dps, **across_cost}]
    if size is not None:
        rows.append({**common, "method": "per_size", "normalised": float(np.mean(size["per_seed"])),
                     "ci95": ci95(size["per_seed"]), "seeds": len(size["per_seed"]),
                     **{k: v for k, v in size.items() if k != "per_seed"}})
    pairs = [("greedy", "greedy"), ("best_fixed", best_fixed), ("random", "random"),
             ("optimum", "optimum")]
    pairs += [(k.replace(" ", "_"), k) for k in ("paper greedy", "paper ceiling") if k in base]
    for method, key in pairs:
        rows.append({**common, "method": method if method != "best_fixed"
                     else f"best_fixed ({key.split(' ', 1)[-1]})",
                     "normalised": float(base[key]["normalised"]), "ci95": 0.0, "seeds": 0})
    return rows


def plot(rows: list[dict], ratios, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from semcom_jax.atomic import atomic_open

    fig, axes = plt.subplots(1, len(ratios), figsize=(6 * len(ratios), 4.2), squeeze=False)
    style = {"zero_shot": ("C0", "o", "trained once on U<=50 (zero-shot)"),
             "per_size": ("C1", "s", "trained at that size (same budget)"),
             "greedy": ("C2", "", "greedy"), "best_fixed": ("C3", "", "best fixed encoder"),
             "paper_greedy": ("C4", "", "greedy on what the paper observation reveals"),
             "paper_ceiling": ("C5", "", "paper observation's ceiling")}
    for ax, r in zip(axes[0], ratios):
        for method, (c, m, label) in style.items():
            pts = sorted((row["users"], row["normalised"], row["ci95"]) for row in rows
                         if row["method"].startswith(method) and row["rbs"] == r * row["users"])
            if not pts:
                continue
            x, y, e = map(np.array, zip(*pts))
            ax.plot(x, y, color=c, marker=m or None, ls="-" if m else "--", label=label)
            if m:
                ax.fill_between(x, y - np.nan_to_num(e), y + np.nan_to_num(e), color=c,
                                alpha=0.2)
        ax.axhline(1.0, color="k", lw=0.8, label="optimum")
        # zoomed on the policies and the close baselines (random is 0, far below)
        low = min([row["normalised"] for row in rows if row["rbs"] == r * row["users"]
                   and row["method"] != "random"] + [0.9])
        ax.set_ylim(low - 0.02, 1.01)
        ax.set_xscale("log")
        ax.set_xlabel("users U")
        ax.set_ylabel("normalised score (0 = random, 1 = optimum)")
        ax.set_title(f"Q = {r} U")
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))  # room for the legend under the panels
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, nargs="+", default=list(USERS))
    ap.add_argument("--ratios", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--obs", choices=("paper", "full"), default="full")
    ap.add_argument("--train-users", type=int, nargs=2, default=[5, 50], metavar=("MIN", "MAX"))
    ap.add_argument("--train-steps", type=int, default=1_200_000,
                    help="env steps of the across-sizes run (per seed)")
    ap.add_argument("--train-envs", type=int, default=64)
    ap.add_argument("--per-size-users", type=int, nargs="*", default=[5, 50, 200],
                    help="sizes that also get a policy trained at that size (method b)")
    ap.add_argument("--size-budget-s", type=float, default=None,
                    help="compute seconds per per-size run (default: the across-sizes run's)")
    ap.add_argument("--rb-candidates", type=int, default=0,
                    help="the set network scores only this many RBs per decision, the free ones "
                         "of highest SINR (0: all; TrainConfig.rb_candidates)")
    ap.add_argument("--rb-candidate-rule", choices=("top", "spread"), default="top",
                    help="which RBs are in view (TrainConfig.rb_candidate_rule)")
    ap.add_argument("--ceiling-users", type=int, default=0,
                    help="paper observation: up to this U, also evaluate the paper ceiling and "
                         "greedy on what the paper observation reveals (Monte-Carlo expected "
                         "terms; costs grow as U x Q)")
    ap.add_argument("--ceiling-draws", type=int, default=256,
                    help="Monte-Carlo draws per expected term for --ceiling-users")
    ap.add_argument("--out", default=None, help="output folder (default runs/scaling-<time>)")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse the finished runs and points found in --out (printed)")
    ap.add_argument("--size-point", type=int, nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--eval-point", type=int, nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.size_point:
        return size_point(args)
    if args.eval_point:
        return eval_point(args)
    if args.ceiling_users and args.obs != "paper":
        raise SystemExit("--ceiling-users: the paper ceiling is for --obs paper")
    if args.ceiling_users < 0 or args.ceiling_draws < 2:
        raise SystemExit("--ceiling-users must be >= 0 and --ceiling-draws >= 2, got "
                         f"{args.ceiling_users} and {args.ceiling_draws}")

    from common import machine, write_csv
    from semcom_jax.training import files

    out = os.path.abspath(args.out or os.path.join(
        "runs", f"scaling-{time.strftime('%Y%m%d-%H%M%S')}"))
    if os.path.isdir(out) and os.listdir(out) and not args.reuse:
        raise SystemExit(f"{out} is not empty: pass --reuse to reuse its finished runs and "
                         "points, or choose another --out")
    os.makedirs(out, exist_ok=True)
    print(f"machine: {machine()}\noutput: {out}")

    lo, hi = args.train_users
    across_dir = os.path.join(out, "across")
    cfg = base_config(args, num_users=hi, num_rbs=2 * hi, train_users=(lo, hi),
                      train_rbs=(lo, 2 * hi), num_envs=args.train_envs,
                      total_env_steps=args.train_steps, eval_episodes=256, chunk_updates=5)
    if files.has_config(across_dir):
        print(f"reusing the across-sizes run in {across_dir} (resumed if unfinished)")
    across_cost = train_timed(cfg, across_dir, resume=files.has_config(across_dir))
    print(f"across sizes: {across_cost['train_env_steps']} env steps per seed in "
          f"{across_cost['train_wall_s']:.0f} s of compute")
    budget = args.size_budget_s or across_cost["train_wall_s"]

    rows: list[dict] = []
    csv_path = os.path.join(out, "scaling_users.csv")
    for u in args.users:
        for r in args.ratios:
            q = r * u
            size = None
            if u in args.per_size_users:
                pdir = os.path.join(out, f"size-U{u}-Q{q}")
                if os.path.exists(os.path.join(pdir, POINT)):
                    print(f"U={u} Q={q}: reusing the per-size point in {pdir}")
                else:
                    if os.path.isdir(pdir):  # an interrupted point: start it again
                        import shutil
                        shutil.rmtree(pdir)
                    cmd = [sys.executable, __file__, "--size-point", str(u), str(q), "--out",
                           pdir, "--seeds", str(args.seeds), "--obs", args.obs,
                           "--size-budget-s", str(budget),
                           "--rb-candidates", str(args.rb_candidates),
                           "--rb-candidate-rule", args.rb_candidate_rule]
                    if subprocess.run(cmd).returncode != 0:
                        print(f"U={u} Q={q}: the per-size point failed (its output is above); "
                              "continuing without it", flush=True)
                if os.path.exists(os.path.join(pdir, POINT)):
                    size = json.load(open(os.path.join(pdir, POINT)))
            point = os.path.join(out, f"eval-U{u}-Q{q}.json")
            cmd = [sys.executable, __file__, "--eval-point", str(u), str(q), "--out", out,
                   "--obs", args.obs, "--ceiling-users", str(args.ceiling_users),
                   "--ceiling-draws", str(args.ceiling_draws)]
            if args.reuse and os.path.exists(point):
                print(f"U={u} Q={q}: reusing the evaluation in {point}")
            elif subprocess.run(cmd).returncode != 0:
                print(f"U={u} Q={q}: the evaluation failed (its output is above); continuing",
                      flush=True)
                continue
            with open(os.path.join(out, f"eval-U{u}-Q{q}.json")) as fh:
                pt = json.load(fh)
            new = rows_for(u, q, pt["per_seed"], pt["baselines"], pt["decisions_per_s"],
                           across_cost, size, {k: pt[k] for k in ("eval_wall_s",
                                                                  "eval_peak_rss_gib")})
            rows += new
            write_csv(csv_path, [{k: row.get(k, "") for k in COLUMNS} for row in rows])
            plot(rows, args.ratios, os.path.join(out, "scaling_users.png"))
            show = {row["method"]: row["normalised"] for row in new}
            print(f"U={u:5d} Q={q:5d}  " + "  ".join(f"{k} {v:.3f}" for k, v in show.items())
                  + f"  (zero-shot CI +-{new[0]['ci95']:.3f})", flush=True)
    print(f"wrote {csv_path} and scaling_users.png")


COLUMNS = ("users", "rbs", "method", "normalised", "ci95", "seeds", "eval_episodes",
           "optimum_gap", "eval_wall_s", "eval_peak_rss_gib",
           "decisions_per_s", "train_decisions_per_s", "train_env_steps", "train_wall_s",
           "setup_s", "compile_s", "peak_rss_gib")

if __name__ == "__main__":
    main()
