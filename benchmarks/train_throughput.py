"""Env steps per second of the whole PPO training loop (collection and learning), over num_envs.

    python benchmarks/train_throughput.py            # default grid
    python benchmarks/train_throughput.py --quick

Also reports the policy network's FLOPs per env step: XLA's cost analysis of one forward pass
(no loops in it, so the count is exact) times ``1 + 3 * update_epochs`` (one forward while
collecting; forward and a backward of about twice its cost in each epoch). XLA's cost analysis
of the whole update cannot be used: it counts a ``scan`` body once, not once per iteration. The
figure is set against the FLOP/s this machine reaches on a plain float32 matmul, to tell
whether the network bounds the loop.
Writes ``train_throughput.csv`` and ``.png``.

``--split`` says where an update's time goes instead: collection (the rollout: acting with the
network and stepping the envs) timed alone as its own jitted program, the whole update (rollout,
advantages, epochs of minibatch gradient steps) likewise, and learning as the difference;
written to ``train_split_<network>.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import best_time, machine, output_folder, write_csv  # noqa: E402

from semcom_jax.agents.config import TrainConfig  # noqa: E402
from semcom_jax.agents.ppo import PPO  # noqa: E402
from semcom_jax.env import SemComEnv  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def matmul_flops_per_s(n=1024, repeats=5) -> float:
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    return 2 * n**3 / best_time(lambda: jax.block_until_ready(f(a)), repeats)


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", float("nan"))) if cost else float("nan")


def config_for(num_envs: int, obs: str, network: str = "per_rb") -> TrainConfig:
    """The default config at ``num_envs`` (one minibatch below 64 envs)."""
    return TrainConfig.of(num_envs=num_envs, obs_mode=obs, network=network,
                       num_minibatches=4 if num_envs >= 64 else 1)


def trainer_and_state(config: TrainConfig):
    env = SemComEnv(config.env.num_users, config.env.num_rbs, obs_mode=config.env.obs_mode,
                    reward=config.env.reward)
    trainer = PPO(config, env, env.default_params)
    return env, trainer, jax.jit(trainer.init)(jax.random.PRNGKey(0))


def measure(config: TrainConfig, updates: int, repeats: int):
    env, trainer, state = trainer_and_state(config)
    run = jax.jit(lambda s: trainer.run(s, updates))
    t0 = time.perf_counter()
    compiled = run.lower(state).compile()
    compile_s = time.perf_counter() - t0
    b = 1024
    obs = env.example_observation(b)
    fwd = jax.jit(trainer.network.apply).lower(state.params, obs).compile()
    flops_per_step = _flops(fwd) / b * (1 + 3 * config.agent.update_epochs)
    jax.block_until_ready(compiled(state))
    t = best_time(lambda: jax.block_until_ready(compiled(state)), repeats)
    return updates * config.steps_per_update / t, flops_per_step, compile_s


def split(config: TrainConfig, repeats: int) -> dict:
    """Seconds per update of the collection alone and of the whole update (best of
    ``repeats`` after a warm-up call), both from the same initial state."""
    _, trainer, state = trainer_and_state(config)
    collect = jax.jit(trainer.collect)
    update = jax.jit(lambda s: trainer.update(s)[0])
    out = {}
    for name, fn in (("collect_s", collect), ("update_s", update)):
        jax.block_until_ready(fn(state))
        out[name] = best_time(lambda: jax.block_until_ready(fn(state)), repeats)
    out["learn_s"] = out["update_s"] - out["collect_s"]
    return out


def main_split(a) -> None:
    a.out = os.path.join(output_folder(a.out, "train_throughput"), f"train_split_{a.network}")
    print(f"machine: {machine()}")
    hdr = (f"{'network':>8}{'num_envs':>9}{'update s':>10}{'collect s':>11}{'learn s':>9}"
           f"{'collect %':>11}{'collect steps/s':>17}")
    print(hdr + "\n" + "-" * len(hdr))
    rows = []
    for n in a.num_envs:
        cfg = config_for(n, a.obs, a.network)
        t = split(cfg, a.repeats)
        share = t["collect_s"] / t["update_s"]
        print(f"{a.network:>8}{n:>9}{t['update_s']:>10.4f}{t['collect_s']:>11.4f}"
              f"{t['learn_s']:>9.4f}{100 * share:>10.1f}%"
              f"{cfg.steps_per_update / t['collect_s']:>17.3e}", flush=True)
        rows.append({"network": a.network, "num_envs": n, "obs_mode": a.obs,
                     "steps_per_update": cfg.steps_per_update, **t, "collect_share": share,
                     "update_epochs": cfg.agent.update_epochs, "num_minibatches": cfg.agent.num_minibatches,
                     "machine": machine()})
        write_csv(a.out + ".csv", rows)
    print(f"wrote {a.out}.csv")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, nargs="+", default=[64, 256, 1024, 2048, 4096])
    ap.add_argument("--target-env-steps", type=float, default=6e5)
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed calls per point, best kept (default 1; 3 with --split)")
    ap.add_argument("--obs", default="paper", choices=("paper", "full"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--split", action="store_true",
                    help="where an update's time goes: collection vs learning (train_split_<network>.csv)")
    ap.add_argument("--network", default="per_rb", choices=("per_rb", "set", "mlp"),
                    help="the network of --split (the grid uses the default)")
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/train_throughput-<time>/; the committed "
                         "figures: --out benchmarks/results)")
    a = ap.parse_args(argv)
    if a.repeats is not None and a.repeats < 1:
        raise SystemExit(f"--repeats must be >= 1, got {a.repeats}")
    if a.split:
        a.repeats = a.repeats or 3
        return main_split(a)
    a.repeats = a.repeats or 1
    a.out = os.path.join(output_folder(a.out, "train_throughput"), "train_throughput")  # file stem
    if a.quick:
        a.num_envs, a.target_env_steps, a.repeats = [256, 2048], 5e5, 1
    peak = matmul_flops_per_s()
    print(f"machine: {machine()}")
    print(f"float32 1024x1024 matmul: {peak / 1e9:.1f} GFLOP/s")
    hdr = (f"{'num_envs':>9}{'env steps/s':>14}{'net kFLOP/step':>16}{'GFLOP/s':>10}"
           f"{'% of matmul':>13}{'compile s':>11}")
    print(hdr + "\n" + "-" * len(hdr))
    rows = []
    for n in a.num_envs:
        cfg = config_for(n, a.obs)
        updates = max(2, int(a.target_env_steps // cfg.steps_per_update))
        sps, fps, comp = measure(cfg, updates, a.repeats)
        gflops = sps * fps / 1e9
        print(f"{n:>9}{sps:>14.3e}{fps / 1e3:>16.1f}{gflops:>10.1f}{100 * gflops * 1e9 / peak:>12.1f}%"
              f"{comp:>11.2f}")
        rows.append({"num_envs": n, "obs_mode": a.obs, "env_steps_per_s": sps,
                     "network_flops_per_env_step": fps, "achieved_gflops": gflops,
                     "matmul_gflops": peak / 1e9, "compile_s": comp,
                     "hidden": "x".join(map(str, cfg.network.hidden)), "update_epochs": cfg.agent.update_epochs,
                     "num_minibatches": cfg.agent.num_minibatches, "machine": machine()})
        write_csv(a.out + ".csv", rows)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog([r["num_envs"] for r in rows], [r["env_steps_per_s"] for r in rows], "o-")
    ax.set_xlabel("parallel environments")
    ax.set_ylabel("training env steps / s (PPO, collect + learn)")
    ax.set_title(f"PPO training throughput, U=5, Q=10, obs={a.obs}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out + ".png", dpi=120)
    print(f"wrote {a.out}.csv and {a.out}.png")


if __name__ == "__main__":
    main()
