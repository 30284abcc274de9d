"""Env steps per second with random legal actions: semcom_jax (jit + vmap, lock-step auto-reset)
against the same maths in plain vectorised numpy, measured side by side in one run.

    python benchmarks/env_throughput.py                 # full grid, ~10 min on 2 CPU cores
    python benchmarks/env_throughput.py --quick         # a few points

Prints a table and writes ``benchmarks/results/env_throughput.csv`` and ``.png``.
A step is one decision for one env; resets (every U steps) are included in the time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import best_time, machine, output_folder, write_csv  # noqa: E402
from numpy_env import NumpyVecEnv, random_legal_actions  # noqa: E402

from semcom_jax.cli.bench import random_action_runner  # noqa: E402
from semcom_jax.env import SemComEnv  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def jax_runner(env: SemComEnv, num_envs: int, num_steps: int):
    return random_action_runner(env, num_envs, num_steps)


def bench_jax(u, q, num_envs, steps, repeats):
    env = SemComEnv(u, q)
    run = jax_runner(env, num_envs, steps)
    key = jax.random.PRNGKey(0)
    t0 = time.perf_counter()
    jax.block_until_ready(run(key))
    compile_s = time.perf_counter() - t0
    t = best_time(lambda: jax.block_until_ready(run(key)), repeats)
    return num_envs * steps / t, compile_s


def bench_numpy(u, q, num_envs, steps, repeats):
    env = SemComEnv(u, q)
    tab = env.table.data
    nenv = NumpyVecEnv(num_envs, u, q, env.default_params, np.asarray(tab.snr_db),
                       np.asarray(tab.score), float(tab.chance_score))
    rng = np.random.default_rng(1)

    def run():
        feats, mask = nenv.reset()
        for _ in range(steps):
            a = random_legal_actions(rng, mask)
            (feats, mask), _, _ = nenv.step(a)

    return num_envs * steps / best_time(run, repeats)


def bench_parts(u: int, q: int, num_envs: int, steps: int, repeats: int) -> list[dict]:
    """Nanoseconds per env step of each part of a step, each timed alone as a jitted scan of
    ``steps`` steps over ``num_envs`` envs (same shapes as the whole step): the episode draw
    (``reset_state``, paid once per U steps, reported per draw and per step), the step maths
    (``transition``), the observation, the random legal action, and the whole lock-step
    ``VecEnv`` step with its auto-reset. The parts overlap in what XLA fuses, so they need not add
    up to the whole."""
    from semcom_jax.env import VecEnv

    env = SemComEnv(u, q)
    params = env.default_params
    vec = VecEnv(env, num_envs)
    obs0, vstate0 = vec.reset(jax.random.PRNGKey(0), params)
    states0 = vstate0.env_state
    acts0 = env.actions.uniform_legal(jax.random.PRNGKey(1), obs0.action_mask)
    batch = jax.vmap

    def scan(body, carry):
        return jax.jit(lambda c, k: jax.lax.scan(body, c, jax.random.split(k, steps))[0])

    parts = {
        "episode draw (reset_state)": (scan(lambda c, k: (batch(lambda kk: env.reset_state(
            kk, params))(jax.random.split(k, num_envs)), None), states0), states0),
        "step maths (transition)": (scan(lambda c, k: (batch(lambda s, a, kk: env.transition(
            kk, s, a, params)[0])(c, acts0, jax.random.split(k, num_envs)), None), states0),
            states0),
        # A different user per env and iteration (so nothing is loop-invariant), every field
        # summed into the carry (so nothing is dead code); the randint is included.
        "observation": (scan(lambda c, k: (c + sum(
            jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(batch(
                lambda s: env.observation(s, params))(
                states0.replace(step=jax.random.randint(k, (num_envs,), 0, u))))), None),
            jnp.float32(0)), jnp.float32(0)),
        "random legal action": (scan(lambda c, k: (env.actions.uniform_legal(
            k, obs0.action_mask) + c * 0, None), acts0), acts0),
        "whole VecEnv step (auto-reset included)": (scan(lambda c, k: (vec.step(
            k, c, env.actions.uniform_legal(k, obs0.action_mask), params)[1], None), vstate0),
            vstate0),
    }
    rows = []
    for name, (fn, carry) in parts.items():
        key = jax.random.PRNGKey(2)
        jax.block_until_ready(fn(carry, key))
        t = best_time(lambda: jax.block_until_ready(fn(carry, key)), repeats)
        ns = t / (steps * num_envs) * 1e9
        rows.append({"num_users": u, "num_rbs": q, "num_envs": num_envs, "part": name,
                     "ns_per_env_step": ns,
                     "ns_per_env_step_amortised": ns / u if name.startswith("episode") else ns,
                     "machine": machine()})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, nargs="+",
                    default=[1, 64, 1024, 4096, 16384, 65536])
    ap.add_argument("--users", type=int, nargs="+", default=[5, 50, 500])
    ap.add_argument("--target-env-steps", type=float, default=2**22,
                    help="env steps per timed call (rounded to whole episodes)")
    ap.add_argument("--max-work", type=float, default=2e10,
                    help="skip points where one episode writes more observation floats than this")
    ap.add_argument("--numpy-max-work", type=float, default=2e9)
    ap.add_argument("--numpy-target-env-steps", type=float, default=2**18,
                    help="env steps per timed numpy call (at least one episode)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="U=5 and 50, num_envs 64 and 4096")
    ap.add_argument("--parts", action="store_true",
                    help="per-part timing instead (episode draw, step maths, observation, "
                         "random legal action, whole step) at U=5, Q=10, 4096 envs")
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/env_throughput-<time>/; the committed "
                         "figures: --out benchmarks/results)")
    a = ap.parse_args(argv)
    a.out = os.path.join(output_folder(a.out, "env_throughput"), "env_throughput")  # file stem
    if a.quick:
        a.users, a.num_envs, a.repeats = [5, 50], [64, 4096], 2
    print(f"machine: {machine()}")
    if a.parts:
        rows = bench_parts(5, 10, 4096, 50, a.repeats)
        for r in rows:
            extra = (f"  ({r['ns_per_env_step_amortised']:.1f} ns per step over U=5 steps)"
                     if r["part"].startswith("episode") else "")
            print(f"  {r['part']:42s} {r['ns_per_env_step']:8.1f} ns per env{extra}")
        write_csv(os.path.join(os.path.dirname(a.out), "env_parts.csv"), rows)
        print(f"wrote {os.path.join(os.path.dirname(a.out), 'env_parts.csv')}")
        return
    rows = []
    hdr = f"{'U':>5}{'Q':>6}{'num_envs':>10}{'jax steps/s':>15}{'numpy steps/s':>15}{'ratio':>8}{'compile s':>11}"
    print(hdr + "\n" + "-" * len(hdr))
    for u in a.users:
        q = 2 * u
        obs_floats = SemComEnv(u, q).observation_size + 3 * q
        for n in a.num_envs:
            episode_work = n * u * obs_floats
            if episode_work > a.max_work:
                print(f"{u:>5}{q:>6}{n:>10}  skipped: one episode writes {episode_work:.1e} "
                      f"observation floats (> --max-work {a.max_work:.0e})")
                continue
            episodes = max(1, int(a.target_env_steps // (n * u)))
            steps = episodes * u
            js, compile_s = bench_jax(u, q, n, steps, a.repeats)
            ns = float("nan")
            if episode_work <= a.numpy_max_work:
                np_episodes = max(1, int(a.numpy_target_env_steps // (n * u)))
                ns = bench_numpy(u, q, n, np_episodes * u, a.repeats)
            ratio = js / ns
            print(f"{u:>5}{q:>6}{n:>10}{js:>15.3e}{ns:>15.3e}{ratio:>8.1f}{compile_s:>11.2f}")
            rows.append({"num_users": u, "num_rbs": q, "num_envs": n, "jax_steps_per_s": js,
                         "numpy_steps_per_s": ns, "ratio": ratio, "jax_compile_s": compile_s,
                         "machine": machine()})
            write_csv(a.out + ".csv", rows)  # after each point: a killed run keeps its results
    plot(rows, a.out + ".png")
    print(f"wrote {a.out}.csv and {a.out}.png")


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, u in enumerate(sorted({r["num_users"] for r in rows})):
        rs = [r for r in rows if r["num_users"] == u]
        n = [r["num_envs"] for r in rs]
        ax.loglog(n, [r["jax_steps_per_s"] for r in rs], "o-", color=f"C{i}", label=f"semcom_jax U={u}")
        ax.loglog(n, [r["numpy_steps_per_s"] for r in rs], "s--", color=f"C{i}", alpha=0.6,
                  label=f"numpy U={u}")
    ax.set_xlabel("parallel environments")
    ax.set_ylabel("env steps / s")
    ax.set_title("Env throughput, random legal actions (Q = 2U)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
