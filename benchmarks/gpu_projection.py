"""On-paper H100 projection from XLA's cost analysis (no GPU was lent to this project).

    python benchmarks/gpu_projection.py --out benchmarks/results

For the lock-step env step (random legal actions, U = 5, Q = 10, several batch sizes) and one
PPO update of the default configuration, XLA's cost analysis of the CPU-compiled program gives
FLOPs and bytes accessed. A roofline bound on an H100 SXM (FP32 non-tensor 67 TFLOP/s, HBM3
3.35 TB/s) is ``time >= max(FLOPs / 67e12, bytes / 3.35e12)``; steps/s are at most
``env steps per call / that time``. A projection, not a measurement: it ignores kernel-launch
and loop overheads (large at small batches), XLA's GPU fusion choices (which differ from the
CPU's, so the bytes differ) and tensor-core use; it is printed beside this CPU's measured rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from common import machine, output_folder, write_csv  # noqa: E402

from semcom_jax.agents.config import TrainConfig  # noqa: E402
from semcom_jax.env import SemComEnv, VecEnv  # noqa: E402
from semcom_jax.training.experiment import make_env, make_trainer  # noqa: E402

H100_FLOPS = 67e12  # FP32, non-tensor-core, SXM
H100_BYTES = 3.35e12  # HBM3 bandwidth, bytes/s


def cost(compiled) -> tuple[float, float]:
    c = compiled.cost_analysis()
    c = c[0] if isinstance(c, (list, tuple)) else c
    return float(c.get("flops", 0.0)), float(c.get("bytes accessed", 0.0))


def measure(fn, args, repeats=3) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def env_rows(num_envs_list):
    """One lock-step env step (one call, no loop: XLA's cost analysis counts a loop body once)."""
    rows = []
    for n in num_envs_list:
        env = SemComEnv(5, 10)
        vec, params = VecEnv(env, n), env.default_params
        obs, state = vec.reset(jax.random.PRNGKey(0), params)
        actions = env.actions.uniform_legal(jax.random.PRNGKey(1), obs.action_mask)
        fn = jax.jit(lambda k, s, a: vec.step(k, s, a, params))
        args = (jax.random.PRNGKey(2), state, actions)
        flops, nbytes = cost(fn.lower(*args).compile())
        cpu_s = measure(fn, args)
        rows.append(row(f"env step, U=5 Q=10, {n} envs (one call)", n, flops, nbytes, cpu_s))
    return rows


def ppo_row():
    """PPO per env step: one forward pass in the rollout and, per epoch, a forward and backward
    pass (~3 forwards) on the same sample: (1 + 3 x epochs) forwards of the policy network, whose
    cost analysis (a batch of 1024 observations, no loop) is exact. The env's own share is the
    row above. The CPU figure is the measured rate of whole updates."""
    cfg = TrainConfig()  # the main job's configuration
    env = make_env(cfg)
    trainer = make_trainer(cfg, env, env.make_params(cfg.env.env_params))
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    obs = env.example_observation(cfg.run.num_envs)
    fwd = jax.jit(trainer.network.apply)
    flops, nbytes = cost(fwd.lower(state.params, obs).compile())
    passes = 1 + 3 * cfg.agent.update_epochs
    update = jax.jit(lambda s: trainer.run(s, 1))
    cpu_s = measure(update, (state,), repeats=2) / cfg.steps_per_update * cfg.run.num_envs
    return row(f"PPO network per env step (default config, {passes} forward-equivalents)",
               cfg.run.num_envs, flops * passes, nbytes * passes, cpu_s)


def row(what, env_steps, flops, nbytes, cpu_s):
    bound = max(flops / H100_FLOPS, nbytes / H100_BYTES)
    return {"what": what, "env_steps_per_call": env_steps, "gflop_per_call": flops / 1e9,
            "gbytes_per_call": nbytes / 1e9, "flop_per_env_step": flops / env_steps,
            "bytes_per_env_step": nbytes / env_steps,
            "cpu_measured_steps_per_s": env_steps / cpu_s,
            "h100_roofline_steps_per_s": env_steps / bound,
            "h100_bound_by": "FLOPs" if flops / H100_FLOPS > nbytes / H100_BYTES else "memory",
            "machine": machine()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, nargs="+", default=[4096, 65536])
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/gpu_projection-<time>/; the "
                         "committed figures: --out benchmarks/results)")
    a = ap.parse_args(argv)
    out = output_folder(a.out, "gpu_projection")
    rows = env_rows(a.num_envs) + [ppo_row()]
    print(f"machine: {machine()}; H100 roofline: {H100_FLOPS / 1e12:.0f} TFLOP/s FP32, "
          f"{H100_BYTES / 1e12:.2f} TB/s")
    for r in rows:
        print(f"  {r['what']:52s} {r['flop_per_env_step']:10.0f} FLOP/step "
              f"{r['bytes_per_env_step']:10.0f} B/step   CPU {r['cpu_measured_steps_per_s']:.2e}"
              f"   H100 roofline {r['h100_roofline_steps_per_s']:.2e} ({r['h100_bound_by']})")
    write_csv(os.path.join(out, "gpu_projection.csv"), rows)
    print(f"wrote {os.path.join(out, 'gpu_projection.csv')}")


if __name__ == "__main__":
    main()
