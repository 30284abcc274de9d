"""Wall time to a good policy: PPO from a cold start to 0.9 and 0.95 normalised (full
observation, U = 5, Q = 10), compilation included, one fresh process per seed.

    python experiments/time_to_score.py                        # the main job's settings, 5 seeds
    python experiments/time_to_score.py --preset fast          # 256 envs, 400 k steps
    python experiments/time_to_score.py --set lr=0.005 num_envs=512   # try other settings
    python experiments/time_to_score.py --compile-cache runs/xla   # twice: the 2nd run is warm
    XLA_FLAGS=--xla_backend_optimization_level=1 python experiments/time_to_score.py

Each seed runs in its own Python process, so nothing compiled for one seed serves another. The
clock starts before JAX and the package are imported. Reported per seed:
``setup_s`` (the Experiment: env, trainer, and the evaluator's held-out episodes with their
baselines, the exact optimum included: measuring apparatus, not training), ``first_update_s``
(init and the first update's compilation and run), and the time to each threshold counted two
ways: ``train_s_to_X`` from the start of training (compilation included, setup excluded) and
``wall_s_to_X`` from the clock's start (everything). The policy is evaluated greedily on the
1,024 held-out episodes after every update (evaluation time is included). CSV, curves and plot
go to the output folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))

THRESHOLDS = (0.9, 0.95)
# "default": TrainConfig's own settings (the main job's, with the full observation); "fast":
# 4x fewer envs per update and a 400 k-step schedule, which needs ~2.4x fewer env steps to 0.95
# (docs/performance.md, "Time to a good policy").
PRESETS = {
    "default": {},
    "fast": {"num_envs": 256, "episodes_per_rollout": 2, "update_epochs": 4,
             "num_minibatches": 4, "lr": 3e-3, "total_env_steps": 400_000},
}


def make_config(settings: dict, seed: int):
    """The run's config: full observation, the preset and overrides, this seed, one update per
    chunk (an evaluation after every update). Bad keys and values are refused by name."""
    from semcom_jax.agents.config import TrainConfig

    return TrainConfig.from_dict({"obs_mode": "full", **settings, "seed": seed,
                                  "chunk_updates": 1}).validate()


def worker(settings: dict, seed: int, time_cap_s: float, cache: str | None = None) -> dict:
    """One seed from a cold start, in this process (with JAX's compilation cache in folder
    ``cache`` when given); returns the curve and the times."""
    t0 = time.perf_counter()
    import jax

    if cache is not None:
        from semcom_jax.training import compile_cache

        compile_cache.enable(cache)

    from semcom_jax.training.experiment import Experiment

    cfg = make_config(settings, seed)
    exp = Experiment(cfg)
    setup_s = time.perf_counter() - t0
    state = exp.init_state()
    curve, first_update_s = [], None
    for update in range(1, cfg.num_updates + 1):
        state, _, evals = exp.run_chunk(state, 1)
        jax.block_until_ready(state)
        now = time.perf_counter() - t0
        first_update_s = first_update_s if first_update_s is not None else now - setup_s
        curve.append({"update": update, "env_steps": update * cfg.steps_per_update,
                      "wall_s": now, "train_s": now - setup_s,
                      "eval_normalised": float(evals["eval_normalised"][0])})
        if curve[-1]["eval_normalised"] >= max(THRESHOLDS) or now >= time_cap_s:
            break
    out = {"seed": seed, "setup_s": setup_s, "first_update_s": first_update_s,
           "steps_per_update": cfg.steps_per_update, "curve": curve}
    for th in THRESHOLDS:
        hit = next((c for c in curve if c["eval_normalised"] >= th), None)
        out[f"env_steps_to_{th}"] = hit["env_steps"] if hit else None
        out[f"train_s_to_{th}"] = hit["train_s"] if hit else None
        out[f"wall_s_to_{th}"] = hit["wall_s"] if hit else None
    return out


def main(argv=None):
    from common import machine, output_folder, write_csv

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=JSON",
                    help="TrainConfig overrides on top of the preset (as semcom-jax train --set)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--time-cap", type=float, default=120.0,
                    help="stop a seed that has not reached 0.95 after this many seconds")
    ap.add_argument("--compile-cache", metavar="DIR",
                    help="JAX's persistent compilation cache in DIR for every seed (as "
                         "semcom-jax train --compile-cache): the first seed fills it, the "
                         "others load the compiled update; run twice for all seeds warm")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/time_to_score-<time>/; the "
                         "committed figures: --out experiments/results/time-to-score)")
    a = ap.parse_args(argv)
    from semcom_jax.agents.config import parse_set_items

    try:
        settings = {**PRESETS[a.preset], **parse_set_items(a.set)}
        make_config(settings, 0)  # refused here, before any process starts
    except ValueError as e:
        raise SystemExit(f"--set: {e}") from None
    if a.worker is not None:
        print("RESULT" + json.dumps(worker(settings, int(a.worker), a.time_cap,
                                           a.compile_cache)))
        return
    if a.seeds < 1:
        raise SystemExit("--seeds must be >= 1")
    out = output_folder(a.out, "time_to_score")
    print(f"machine: {machine()}\nsettings: obs_mode=full {settings}"
          + (f"\ncompilation cache: {a.compile_cache}" if a.compile_cache else "")
          + (f"\nXLA_FLAGS: {os.environ['XLA_FLAGS']}" if os.environ.get("XLA_FLAGS") else ""))
    rows, curves = [], []
    for seed in range(a.seeds):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", str(seed),
               "--preset", a.preset, "--time-cap", str(a.time_cap)]
        cmd += ["--set", *a.set] if a.set else []
        cmd += ["--compile-cache", a.compile_cache] if a.compile_cache else []
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"seed {seed} failed:\n{r.stderr[-3000:]}")
        res = json.loads(next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT"))[6:])
        curves += [{"seed": seed, **c} for c in res.pop("curve")]
        rows.append({"preset": a.preset, "settings": json.dumps(settings),
                     "compile_cache": bool(a.compile_cache),
                     "xla_flags": os.environ.get("XLA_FLAGS", ""), **res,
                     "machine": machine()})
        fmt = lambda v: "  never" if v is None else f"{v:7.1f}"  # noqa: E731
        print(f"seed {seed}: setup {res['setup_s']:.1f} s, first update {res['first_update_s']:.1f} s; "
              + ", ".join(f"to {th}: {fmt(res[f'train_s_to_{th}'])} s training "
                          f"({fmt(res[f'wall_s_to_{th}'])} s all, "
                          f"{res[f'env_steps_to_{th}'] or '-'} steps)" for th in THRESHOLDS),
              flush=True)
        write_csv(os.path.join(out, "time_to_score.csv"), rows)  # a killed run keeps its seeds
        write_csv(os.path.join(out, "time_to_score_curves.csv"), curves)
    for th in THRESHOLDS:
        vals = [r[f"train_s_to_{th}"] for r in rows]
        if all(v is not None for v in vals):
            print(f"to {th}: training time (compilation included) max {max(vals):.1f} s, "
                  f"median {sorted(vals)[len(vals) // 2]:.1f} s over {len(vals)} seeds")
        else:
            print(f"to {th}: {sum(v is None for v in vals)} of {len(vals)} seeds never got there")
    plot(curves, os.path.join(out, "time_to_score.png"))
    print(f"wrote {out}/time_to_score.csv, time_to_score_curves.csv and time_to_score.png")


def plot(curves, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for seed in sorted({c["seed"] for c in curves}):
        cs = [c for c in curves if c["seed"] == seed]
        ax.plot([c["train_s"] for c in cs], [c["eval_normalised"] for c in cs], "o-", ms=3,
                label=f"seed {seed}")
    for th in THRESHOLDS:
        ax.axhline(th, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("wall time from the start of training (s, compilation included)")
    ax.set_ylabel("held-out normalised score")
    ax.set_ylim(0, 1)
    ax.set_title("PPO, full observation, U=5, Q=10: time to a good policy")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
