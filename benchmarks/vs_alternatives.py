"""semcom_jax against what users would otherwise use, side by side in one run on one machine.

    python benchmarks/vs_alternatives.py                       # ~12 min on 2 CPU cores
    python benchmarks/vs_alternatives.py --quick               # ~2 min
    python benchmarks/vs_alternatives.py --compile-cache runs/xla-vs   # ours cold, then warm

(a) Env steps/s with random legal actions: our jitted lock-step ``VecEnv`` (one compiled scan),
    the numpy version of the same maths (``numpy_env.py``, vectorised over envs) and a plain
    Gymnasium loop over our adapter (``SemComGymEnv``, one env, one Python call per step).
(b) PPO training: ours (one compiled loop, flat MLP 64x64 like SB3's, 1024 envs; and our
    default configuration, the per-RB network, as ``semcom-jax train`` runs it) against
    Stable-Baselines3 PPO (sb3-contrib ``MaskablePPO``, so both respect the action mask; CPU
    PyTorch, ``DummyVecEnv`` of our Gymnasium adapter, ``MultiInputPolicy`` with a 64x64 tanh
    MLP, gamma 1, GAE 0.95, 4 epochs, entropy 0.01). Both are evaluated greedily on the same
    256 held-out episodes (expected returns, normalised: 0 random, 1 exact optimum); evaluation
    time is excluded from training time for both. Reported: env steps/s, and the wall time each
    needs to first reach the best normalised score SB3 reached within its time budget. With
    ``--compile-cache DIR`` (an empty or new folder) JAX's persistent compilation cache is on:
    our first run compiles and fills it (cold, as without the flag), then a second run of the
    same configuration, a new ``Experiment``, loads its programs from it (warm: what a user's
    second run of a configuration pays); both are reported.

Needs the ``bench`` extra (``pip install -e '.[bench]'``: stable-baselines3, sb3-contrib, CPU
torch). (c) SB3 ``MaskablePPO`` steps/s through our SB3 ``VecEnv`` adapter (one jitted call for
all envs) against ``DummyVecEnv`` of the single Gymnasium env. Writes, in ``--out``,
``vs_alternatives.csv``, ``vs_alternatives_curves.csv``, ``vs_alternatives_sb3.csv`` and
``vs_alternatives.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import machine, output_folder, write_csv  # noqa: E402
from env_throughput import bench_jax, bench_numpy  # noqa: E402

from semcom_jax.training import runs  # noqa: E402
from semcom_jax.agents.config import TrainConfig  # noqa: E402
from semcom_jax.baselines.evaluate import Evaluator  # noqa: E402

U, Q = 5, 10
EVAL_EPISODES, EVAL_SEED = 256, 12345


def bench_gym_loop(steps: int) -> float:
    from semcom_jax.env.gym_adapter import SemComGymEnv

    env = SemComGymEnv(num_users=U, num_rbs=Q)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for _ in range(2 * U):  # compile
        obs, _, done, _, _ = env.step(rng.choice(np.flatnonzero(obs["action_mask"])))
        if done:
            obs, _ = env.reset()
    t0 = time.perf_counter()
    for _ in range(steps):
        obs, _, done, _, _ = env.step(rng.choice(np.flatnonzero(obs["action_mask"])))
        if done:
            obs, _ = env.reset()
    return steps / (time.perf_counter() - t0)


def env_part(num_envs: int, repeats: int, gym_steps: int) -> list[dict]:
    episodes = max(1, 2**21 // (num_envs * U))
    ours, _ = bench_jax(U, Q, num_envs, episodes * U, repeats)
    numpy_sps = bench_numpy(U, Q, num_envs, max(1, 2**17 // (num_envs * U)) * U, repeats)
    gym_sps = bench_gym_loop(gym_steps)
    rows = [{"part": "env", "what": f"semcom_jax VecEnv, {num_envs} envs", "steps_per_s": ours},
            {"part": "env", "what": f"numpy vectorised, {num_envs} envs", "steps_per_s": numpy_sps},
            {"part": "env", "what": "Gymnasium loop over the adapter, 1 env",
             "steps_per_s": gym_sps}]
    for r in rows:
        r["ours_over_this"] = ours / r["steps_per_s"]
    return rows


def train_ours(total_steps: int, budget_s: float, default_config: bool = False):
    """Our PPO: the flat MLP 64x64 of SB3's policy (the engine comparison), or with
    ``default_config`` what ``semcom-jax train`` runs (the per-RB network)."""
    # devices=1: importing env_throughput made one host device per core (for its own runs);
    # a user's process has one CPU device, and splitting this small network's batch over two
    # runs each update ~1.5x slower here than one device whose matmuls use both cores.
    common_keys = dict(total_env_steps=total_steps, eval_episodes=EVAL_EPISODES,
                       eval_seed=EVAL_SEED, devices=1)
    cfg = (TrainConfig.of(**common_keys) if default_config else
           TrainConfig.of(network="mlp", hidden=(64, 64), num_envs=1024, **common_keys))
    exp = runs.Experiment(cfg)
    state = exp.init_state()
    # One update per call, timed; the held-out evaluation after it is not (SB3's is not timed
    # either), so each curve point is training time only, at the resolution of one update.
    update = jax.jit(jax.vmap(lambda s: exp.trainer.run(s, 1), in_axes=(exp.axes,),
                              out_axes=(exp.axes, 0)))
    curve, wall, steps = [], 0.0, 0
    for _ in range(cfg.num_updates):
        t0 = time.perf_counter()
        state, _ = update(state)
        jax.block_until_ready(state)
        wall += time.perf_counter() - t0
        steps += cfg.steps_per_update
        curve.append((steps, wall, float(np.mean(exp.evaluate(state)["eval_normalised"]))))
        if wall > budget_s:
            break
    return curve, exp.evaluator


def sb3_evaluate(model, ev: Evaluator) -> float:
    env = ev.env
    reset_to = jax.jit(env.reset_to)
    step = jax.jit(env.step)
    encs, rbs = [], []
    n = jax.tree.leaves(ev.instances)[0].shape[0]
    for i in range(n):
        inst = jax.tree.map(lambda x: x[i], ev.instances)
        obs, state = reset_to(inst, ev.env_params)
        for _ in range(env.num_users):
            o = {"features": np.asarray(obs.features), "rb_features": np.asarray(obs.rb_features),
                 "action_mask": np.asarray(obs.action_mask, np.int8)}
            a, _ = model.predict(o, deterministic=True,
                                 action_masks=np.asarray(obs.action_mask, bool))
            obs, state, *_ = step(jax.random.PRNGKey(0), state, jnp.int32(int(a)), ev.env_params)
        encs.append(np.asarray(state.encoder))
        rbs.append(np.asarray(state.rb))
    enc, rb = jnp.asarray(np.stack(encs)), jnp.asarray(np.stack(rbs))
    return float(ev.score(enc, rb)["eval_normalised"])


def train_sb3(budget_s: float, chunk_steps: int, ev: Evaluator, n_envs: int = 8):
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from semcom_jax.env.gym_adapter import SemComGymEnv

    torch.set_num_threads(os.cpu_count() or 1)
    venv = DummyVecEnv([lambda: SemComGymEnv(num_users=U, num_rbs=Q) for _ in range(n_envs)])
    model = MaskablePPO("MultiInputPolicy", venv, n_steps=128, batch_size=256, n_epochs=4,
                        learning_rate=1e-3, gamma=1.0, gae_lambda=0.95, ent_coef=0.01,
                        clip_range=0.2, max_grad_norm=0.5, device="cpu", seed=0, verbose=0,
                        policy_kwargs=dict(net_arch=[64, 64], activation_fn=torch.nn.Tanh))
    curve, wall, steps = [], 0.0, 0
    while wall < budget_s:
        t0 = time.perf_counter()
        model.learn(chunk_steps, reset_num_timesteps=False)
        wall += time.perf_counter() - t0
        steps = model.num_timesteps
        curve.append((steps, wall, sb3_evaluate(model, ev)))
        print(f"  SB3: {steps} steps, {wall:.0f} s, normalised {curve[-1][2]:.3f}", flush=True)
    return curve


def sb3_adapter_part(steps: int, n_vector: int = 256, n_dummy: int = 8) -> list[dict]:
    """SB3 MaskablePPO steps/s (collection and updates together) through our vector adapter
    (``SB3VecEnv``: one jitted call steps every env) against SB3's usual path (``DummyVecEnv`` of
    the single Gymnasium env: one Python call per env step). Same rollout size (4096
    transitions), same network and update settings; only how the envs are stepped differs."""
    import torch
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.vec_env import DummyVecEnv

    from semcom_jax.env.gym_adapter import SemComGymEnv
    from semcom_jax.env.sb3_adapter import SB3VecEnv

    torch.set_num_threads(os.cpu_count() or 1)
    rollout = 4096
    rows = []
    for what, venv, n in (
            (f"SB3 MaskablePPO via SB3VecEnv, {n_vector} envs",
             SB3VecEnv(n_vector, num_users=U, num_rbs=Q), n_vector),
            (f"SB3 MaskablePPO via DummyVecEnv, {n_dummy} envs",
             DummyVecEnv([lambda: SemComGymEnv(num_users=U, num_rbs=Q) for _ in range(n_dummy)]),
             n_dummy)):
        model = MaskablePPO("MultiInputPolicy", venv, n_steps=rollout // n, batch_size=256,
                            n_epochs=4, learning_rate=1e-3, gamma=1.0, gae_lambda=0.95,
                            ent_coef=0.01, device="cpu", seed=0, verbose=0,
                            policy_kwargs=dict(net_arch=[64, 64], activation_fn=torch.nn.Tanh))
        model.learn(rollout)  # compile the jitted env, warm torch up
        t0 = time.perf_counter()
        model.learn(steps, reset_num_timesteps=False)
        rows.append({"part": "sb3", "what": what,
                     "steps_per_s": steps / (time.perf_counter() - t0)})
    for r in rows:
        r["ours_over_this"] = rows[0]["steps_per_s"] / r["steps_per_s"]
    return rows


def first_reach(curve, target):
    for steps, wall, score in curve:
        if score >= target:
            return steps, wall
    return None, None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, default=4096)
    ap.add_argument("--sb3-seconds", type=float, default=300.0)
    ap.add_argument("--ours-steps", type=int, default=3_000_000)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/vs_alternatives-<time>/; the committed "
                         "figures: --out benchmarks/results)")
    ap.add_argument("--sb3-adapter-steps", type=int, default=4096 * 8,
                    help="env steps of each SB3 MaskablePPO run in the adapter comparison")
    ap.add_argument("--compile-cache", metavar="DIR",
                    help="an empty or new folder: time our PPO cold, then again with JAX's "
                         "persistent compilation cache warm")
    ap.add_argument("--only-sb3-adapter", action="store_true",
                    help="run only the SB3 adapter comparison (writes vs_alternatives_sb3.csv)")
    a = ap.parse_args(argv)
    a.out = os.path.join(output_folder(a.out, "vs_alternatives"), "vs_alternatives")  # file stem
    if a.quick:
        a.sb3_seconds, a.ours_steps = 40.0, 1_024_000
    if a.compile_cache:
        if os.path.isdir(a.compile_cache) and os.listdir(a.compile_cache):
            raise SystemExit(f"--compile-cache {a.compile_cache!r} is not empty: the cold run "
                             "must compile (give a new folder)")
        from semcom_jax.training import compile_cache

        compile_cache.enable(a.compile_cache)  # before anything compiles
    print(f"machine: {machine()}")
    sb3_rows = sb3_adapter_part(a.sb3_adapter_steps)
    for r in sb3_rows:
        print(f"  sb3   {r['what']:42s} {r['steps_per_s']:12.3e} steps/s   adapter x"
              f"{r['ours_over_this']:.1f}")
    write_csv(a.out + "_sb3.csv", [{**r, "machine": machine()} for r in sb3_rows])
    if a.only_sb3_adapter:
        print(f"wrote {a.out}_sb3.csv")
        return
    rows = env_part(a.num_envs, repeats=2, gym_steps=1000 if a.quick else 5000)
    for r in rows:
        print(f"  env   {r['what']:42s} {r['steps_per_s']:12.3e} steps/s   ours x{r['ours_over_this']:.1f}")
    ours_curve, ev = train_ours(a.ours_steps, budget_s=10 * a.sb3_seconds)
    warm_curve = train_ours(a.ours_steps, budget_s=10 * a.sb3_seconds)[0] if a.compile_cache \
        else None
    default_curve = train_ours(a.ours_steps, 10 * a.sb3_seconds, default_config=True)[0]
    default_warm = (train_ours(a.ours_steps, 10 * a.sb3_seconds, default_config=True)[0]
                    if a.compile_cache else None)
    sb3_curve = train_sb3(a.sb3_seconds, 8 * 128 * (4 if a.quick else 16), ev)
    ours_sps = ours_curve[-1][0] / ours_curve[-1][1]
    sb3_sps = sb3_curve[-1][0] / sb3_curve[-1][1]
    target = np.floor(max(s for _, _, s in sb3_curve) * 100) / 100
    o_steps, o_wall = first_reach(ours_curve, target)
    s_steps, s_wall = first_reach(sb3_curve, target)
    train_rows = [
        {"part": "train", "what": "semcom_jax PPO (MLP 64x64, 1024 envs)", "steps_per_s": ours_sps,
         "ours_over_this": 1.0, "final_normalised": ours_curve[-1][2], "target": target,
         "steps_to_target": o_steps, "wall_s_to_target": o_wall},
        {"part": "train", "what": "SB3 MaskablePPO (MLP 64x64, 8 envs)", "steps_per_s": sb3_sps,
         "ours_over_this": ours_sps / sb3_sps, "final_normalised": sb3_curve[-1][2],
         "target": target, "steps_to_target": s_steps, "wall_s_to_target": s_wall},
    ]
    extra = [("semcom_jax PPO, compilation cache warm", warm_curve),
             ("semcom_jax PPO, default config (per-RB network)", default_curve),
             ("semcom_jax PPO, default config, cache warm", default_warm)]
    for i, (what, curve) in enumerate([(w, c) for w, c in extra if c is not None]):
        c_steps, c_wall = first_reach(curve, target)
        train_rows.insert(1 + i, {
            "part": "train", "what": what, "steps_per_s": curve[-1][0] / curve[-1][1],
            "ours_over_this": ours_sps / (curve[-1][0] / curve[-1][1]),
            "final_normalised": curve[-1][2], "target": target, "steps_to_target": c_steps,
            "wall_s_to_target": c_wall})
    for r in train_rows:
        if r["wall_s_to_target"] and s_wall:
            r["sb3_wall_over_this"] = s_wall / r["wall_s_to_target"]
    for r in train_rows:
        print(f"  train {r['what']:42s} {r['steps_per_s']:12.3e} steps/s   ours x"
              f"{r['ours_over_this']:.1f}   final {r['final_normalised']:.3f}   "
              f"to {target:.2f}: {r['wall_s_to_target']} s"
              + (f" (SB3's time / this: {r['sb3_wall_over_this']:.0f}x)"
                 if r.get("sb3_wall_over_this") else ""))
    all_rows = [{**r, "machine": machine()} for r in rows + train_rows]
    keys = sorted({k for r in all_rows for k in r})
    write_csv(a.out + ".csv", [{k: r.get(k) for k in keys} for r in all_rows])
    write_csv(a.out + "_curves.csv",
              [{"who": who, "env_steps": s, "wall_s": w, "normalised": n}
               for who, c in (("semcom_jax", ours_curve), ("semcom_jax_warm", warm_curve or []),
                              ("semcom_jax_default", default_curve),
                              ("semcom_jax_default_warm", default_warm or []),
                              ("sb3", sb3_curve)) for s, w, n in c])
    plot(ours_curve, sb3_curve, rows, a.out + ".png", warm_curve, default_curve, default_warm)
    print(f"wrote {a.out}.csv, {a.out}_curves.csv and {a.out}.png")


def plot(ours, sb3, env_rows, path, warm=None, default=None, default_warm=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].barh([r["what"] for r in env_rows], [r["steps_per_s"] for r in env_rows])
    axes[0].set_xscale("log")
    axes[0].set_xlabel("env steps / s (random legal actions)")
    for ax, xi, label in ((axes[1], 0, "env steps"), (axes[2], 1, "wall time (s)")):
        for name, c in (("semcom_jax PPO (MLP)", ours), ("semcom_jax PPO (MLP), cache warm", warm),
                        ("semcom_jax PPO, default config", default),
                        ("semcom_jax PPO, default config, cache warm", default_warm),
                        ("SB3 MaskablePPO", sb3)):
            if not c:
                continue
            ax.plot([p[xi] for p in c], [p[2] for p in c], "o-", ms=3, label=name)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("normalised score (held-out)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"semcom_jax vs alternatives, U={U}, Q={Q} ({machine()})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
