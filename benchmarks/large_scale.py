"""PPO training at a thousand users: peak memory and training decisions/s, per network and storage.

    python benchmarks/large_scale.py              # the default points, ~10 min on 2 cores
    python benchmarks/large_scale.py --quick      # U = 200 instead of 1000

Each point runs in its own Python process (so its peak resident memory, ``ru_maxrss``, is its
own): it builds the PPO trainer of the point (full observation, dense reward), runs one update to
compile it, then times ``--updates`` more. Reported: peak RSS, compile time (first update minus a
timed one), seconds per update and training decisions/s (env steps, i.e. user decisions, of
collection and learning together), the collection alone (timed as its own program from the same
state; learning is the rest), and the rollout's stored floats per env step.

Points (U, Q, envs, episodes per rollout, network, per-RB width, epochs):
- ``per_rb`` at U = 1000, Q = 2000, 8 envs: the per-RB network, which stores every step's
  observation (the issue's reference point);
- ``set`` at the same point: the size-free network, rollouts stored by episode
  (``EpisodeExperience``, ``semcom_jax.agents.episodic``), defaults (width 32, 4 epochs);
- ``set`` with a per-RB width of 8 and one epoch (a lighter update);
- ``set`` at its defaults but scoring only the 32 free RBs of highest SINR per decision
  (``rb_candidates=32``), and the same with half of them spread over the SINR ranking
  (``rb_candidate_rule="spread"``);
- ``set`` at U = Q = 1000 with 64 envs and two episodes per rollout (the memory goal: <= 4 GiB);
- ``per_rb`` at that point is not run when its stored observations alone exceed
  ``--max-rollout-gib``: the row says how much they would need;
- ``set`` at U = 1000, Q = 2000 with 128 RBs in view (``rb_candidates=128``).

Writes ``large_scale.csv`` and ``large_scale.png`` to a fresh ``runs/large_scale-<time>/`` unless
``--out`` names a folder (the committed figures: ``--out benchmarks/results``).
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


def points(u: int) -> list[dict]:
    q2 = 2 * u
    return [
        dict(num_users=u, num_rbs=q2, num_envs=8, episodes_per_rollout=1, network="per_rb"),
        dict(num_users=u, num_rbs=q2, num_envs=8, episodes_per_rollout=1, network="set"),
        dict(num_users=u, num_rbs=q2, num_envs=8, episodes_per_rollout=1, network="set",
             rb_hidden=8, update_epochs=1),
        dict(num_users=u, num_rbs=q2, num_envs=8, episodes_per_rollout=1, network="set",
             rb_candidates=32),
        dict(num_users=u, num_rbs=q2, num_envs=8, episodes_per_rollout=1, network="set",
             rb_candidates=32, rb_candidate_rule="spread"),
        dict(num_users=u, num_rbs=u, num_envs=64, episodes_per_rollout=2, network="set"),
        dict(num_users=u, num_rbs=u, num_envs=64, episodes_per_rollout=2, network="per_rb"),
        dict(num_users=u, num_rbs=q2, num_envs=8, episodes_per_rollout=1, network="set",
             rb_candidates=128),
    ]


def stored_floats_per_step(cfg) -> float:
    """Elements the rollout keeps per env step: a whole observation for the networks that read
    stored observations; per-step scalars (with M RBs in view, the step's view: 3 M + context
    + 3) plus each episode's start (amortised over its U steps) for the set network."""
    import jax

    from semcom_jax.env.types import CONTEXT_FEATURES
    from semcom_jax.training.experiment import make_env

    env = make_env(cfg)
    scalars = 12  # action, reward, done, flags, encoder, log_prob, value, advantage, target...
    if cfg.network.kind == "set":
        start = jax.eval_shape(env.reset_state, jax.random.PRNGKey(0), env.default_params)
        per_episode = sum(x.size for x in jax.tree.leaves(start)) + 2 * cfg.env.num_users
        view = 0
        if 0 < cfg.network.rb_candidates < cfg.env.num_rbs:  # each step's DecisionView and choice in it
            view = 3 * cfg.network.rb_candidates + CONTEXT_FEATURES[cfg.env.obs_mode] + 3
        return scalars + view + per_episode / cfg.env.num_users
    obs = env.example_observation(1)
    return scalars + sum(x.size for x in jax.tree.leaves(obs))


def run_point(spec: dict, updates: int) -> dict:
    import jax

    from semcom_jax.agents.config import TrainConfig
    from semcom_jax.training.experiment import make_env, make_trainer

    cfg = TrainConfig.of(obs_mode="full", reward="dense", total_env_steps=10**9, **spec)
    env = make_env(cfg)
    trainer = make_trainer(cfg, env, env.default_params)
    step = jax.jit(lambda s: trainer.run(s, 1))
    state = trainer.init(jax.random.PRNGKey(0))
    t0 = time.perf_counter()
    state, _ = step(state)
    jax.block_until_ready(state)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(updates):
        state, _ = step(state)
    jax.block_until_ready(state)
    per_update = (time.perf_counter() - t0) / updates
    # Collection (acting and stepping the envs) alone, as its own program, from the same state:
    # the rest of an update is learning.
    collect = jax.jit(lambda s: trainer.experience.collect(s.params, s))
    jax.block_until_ready(collect(state))
    t0 = time.perf_counter()
    for _ in range(updates):
        jax.block_until_ready(collect(state))
    collect_s = (time.perf_counter() - t0) / updates
    return {"seconds_per_update": per_update, "compile_s": max(first - per_update, 0.0),
            "decisions_per_s": cfg.steps_per_update / per_update, "collect_s": collect_s,
            "learn_s": per_update - collect_s,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="U = 200 instead of 1000")
    ap.add_argument("--users", type=int, default=None, help="U of every point (default 1000)")
    ap.add_argument("--updates", type=int, default=1, help="timed updates per point")
    ap.add_argument("--max-rollout-gib", type=float, default=8.0,
                    help="skip points whose stored rollout alone would exceed this")
    ap.add_argument("--only", type=int, nargs="+", default=None,
                    help="run only these points (0-based, in the order listed above)")
    ap.add_argument("--point", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/large_scale-<time>/; the "
                         "committed figures: --out benchmarks/results)")
    a = ap.parse_args(argv)
    if a.point:
        print("RESULT" + json.dumps(run_point(json.loads(a.point), a.updates)), flush=True)
        return
    from common import machine, output_folder, write_csv

    from semcom_jax.agents.config import TrainConfig

    out = output_folder(a.out, "large_scale")
    u = a.users or (200 if a.quick else 1000)
    rows = []
    specs = points(u)
    if a.only is not None:
        if any(not 0 <= i < len(specs) for i in a.only):
            raise SystemExit(f"--only: points are numbered 0..{len(specs) - 1}")
        specs = [specs[i] for i in a.only]
    for spec in specs:
        cfg = TrainConfig.of(obs_mode="full", reward="dense", **spec)
        per_step = stored_floats_per_step(cfg)
        stored_gib = 4 * per_step * cfg.steps_per_update / 2**30
        row = {**{k: spec.get(k, cfg.keys()[k]) for k in (
            "network", "num_users", "num_rbs", "num_envs", "episodes_per_rollout",
            "rb_hidden", "update_epochs", "rb_candidates", "rb_candidate_rule")},
            "decisions_per_update": cfg.steps_per_update,
            "stored_floats_per_step": round(per_step, 1), "stored_rollout_gib": stored_gib,
            "machine": machine()}
        label = (f"{spec['network']:>6} U={u} Q={cfg.env.num_rbs} envs={cfg.run.num_envs} "
                 f"E={cfg.run.episodes_per_rollout} width={cfg.network.rb_hidden} epochs={cfg.agent.update_epochs}"
                 + (f" candidates={cfg.network.rb_candidates} ({cfg.network.rb_candidate_rule})"
                    if cfg.network.rb_candidates else ""))
        if stored_gib > a.max_rollout_gib:
            row["note"] = f"not run: its stored rollout alone needs {stored_gib:.1f} GiB"
            print(f"{label}: {row['note']}", flush=True)
        else:
            r = subprocess.run([sys.executable, __file__, "--point", json.dumps(spec),
                                "--updates", str(a.updates)], capture_output=True, text=True)
            line = [x for x in r.stdout.splitlines() if x.startswith("RESULT")]
            if line:
                row.update(json.loads(line[0][6:]))
                print(f"{label}: {row['decisions_per_s']:,.0f} decisions/s, "
                      f"{row['seconds_per_update']:.2f} s/update (collect "
                      f"{row['collect_s']:.2f}), peak RSS "
                      f"{row['peak_rss_gib']:.2f} GiB, compile {row['compile_s']:.0f} s",
                      flush=True)
            else:
                row["note"] = "failed: " + (r.stderr.strip().splitlines() or ["?"])[-1][:200]
                print(f"{label}: {row['note']}", flush=True)
        rows.append(row)
        write_csv(os.path.join(out, "large_scale.csv"), rows)
    plot(rows, os.path.join(out, "large_scale.png"))
    print(f"wrote {out}/large_scale.csv and .png")


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if "decisions_per_s" in r]
    labels = [f"{r['network']}\nU={r['num_users']} Q={r['num_rbs']}\n{r['num_envs']} envs"
              f" E={r['episodes_per_rollout']}\nw={r['rb_hidden']} ep={r['update_epochs']}"
              + (f"\nM={r['rb_candidates']} {r.get('rb_candidate_rule', 'top')}"
                 if r.get("rb_candidates") else "")
              for r in done]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
    colors = ["C0" if r["network"] == "per_rb" else "C2" for r in done]
    a1.bar(range(len(done)), [r["decisions_per_s"] for r in done], color=colors)
    a1.set_ylabel("training decisions / s")
    a2.bar(range(len(done)), [r["peak_rss_gib"] for r in done], color=colors)
    a2.axhline(4.0, color="k", ls=":", label="4 GiB")
    a2.set_ylabel("peak resident memory (GiB)")
    a2.legend(fontsize=8)
    for ax in (a1, a2):
        ax.set_xticks(range(len(done)), labels, fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("PPO at a thousand users (blue: per-RB network, stored observations; "
                 "green: set network, episodes)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
