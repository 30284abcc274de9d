"""Env steps per second with random legal actions: semcom_jax (jit + vmap, lock-step auto-reset)
against the same maths in plain vectorised numpy, measured side by side in one run.

    python benchmarks/env_throughput.py                 # full grid, ~10 min on 2 CPU cores
    python benchmarks/env_throughput.py --quick         # a few points

Prints a table and writes ``env_throughput.csv`` and ``.png`` in the output folder.
A step is one decision for one env; resets (every U steps) are included in the time.

Each point is measured for every ``--variants`` entry, ``RNG:DEVICES[:noflat]``: the episode
draw's bit source (``threefry``, the default env, or ``hash``), the number of local devices the
envs are split over (on a CPU the script makes one host device per core, so ``2`` uses both
cores of this machine), and ``noflat`` for ``flat_features=False`` (no flat ``features``
vector, what the size-free network reads). ``threefry:1`` is the default env on one device.
The variant ``gymnax`` is what a gymnax agent runs instead of the lock-step ``VecEnv``:
``semcom_jax.make``'s env (flat observation) under ``jax.vmap(env.step)``, each env auto-resetting
on its own (an episode draw computed at every step, selected at the last).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

# One host device per core, so that a variant may split its envs over the cores; a one-device
# variant runs on one of them as before. Set before JAX starts.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_"
                               f"device_count={os.cpu_count() or 1}").strip()

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import best_time, machine, output_folder, write_csv  # noqa: E402
from numpy_env import NumpyVecEnv, random_legal_actions  # noqa: E402

import semcom_jax  # noqa: E402
from semcom_jax.cli.bench import random_action_runner  # noqa: E402
from semcom_jax.env import SemComEnv  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


DEFAULT_VARIANTS = ("threefry:1", f"threefry:{os.cpu_count() or 1}", "hash:1", f"hash:{os.cpu_count() or 1}",
                    f"hash:{os.cpu_count() or 1}:noflat")


def parse_variant(text: str) -> dict:
    if text == "gymnax":
        return {"rng": "threefry", "devices": 1, "flat_features": True, "gymnax": True}
    parts = text.split(":")
    try:
        rng, devices = parts[0], int(parts[1])
    except (IndexError, ValueError):
        raise SystemExit(f"--variants entry {text!r}: expected RNG:DEVICES[:noflat]")
    if len(parts) > 3 or (len(parts) == 3 and parts[2] != "noflat") or devices < 1:
        raise SystemExit(f"--variants entry {text!r}: expected RNG:DEVICES[:noflat]")
    return {"rng": rng, "devices": devices, "flat_features": len(parts) < 3}


def bench_jax(u, q, num_envs, steps, repeats, rng="threefry", devices=1, flat_features=True,
              gymnax=False):
    if gymnax:  # what a gymnax agent runs: make's env (flat observation), per-env auto-reset
        env, _ = semcom_jax.make("SemCom-v0", num_users=u, num_rbs=q, rng=rng)
    else:
        env = SemComEnv(u, q, rng=rng, flat_features=flat_features)
    run = random_action_runner(env, num_envs, steps, devices, lock_step=not gymnax)
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


def bench_parts(u: int, q: int, num_envs: int, steps: int, repeats: int,
                rng: str = "threefry") -> list[dict]:
    """Nanoseconds per env step of each part of a step, each timed alone as a jitted scan of
    ``steps`` steps over ``num_envs`` envs (same shapes as the whole step): the episode draw
    (``reset_state``, paid once per U steps, reported per draw and per step), the step maths
    (``transition``), the observation, the random legal action, and the whole lock-step
    ``VecEnv`` step with its auto-reset. The parts overlap in what XLA fuses, so they need not add
    up to the whole."""
    from semcom_jax.env import VecEnv

    env = SemComEnv(u, q, rng=rng)
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
            k, obs0.action_mask, rng) + c * 0, None), acts0), acts0),
        "whole VecEnv step (auto-reset included)": (scan(lambda c, k: (vec.step(
            k, c, env.actions.uniform_legal(k, obs0.action_mask, rng), params)[1], None),
            vstate0),
            vstate0),
    }
    rows = []
    for name, (fn, carry) in parts.items():
        key = jax.random.PRNGKey(2)
        jax.block_until_ready(fn(carry, key))
        t = best_time(lambda: jax.block_until_ready(fn(carry, key)), repeats)
        ns = t / (steps * num_envs) * 1e9
        rows.append({"num_users": u, "num_rbs": q, "num_envs": num_envs, "rng": rng, "part": name,
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
    ap.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS),
                    help="RNG:DEVICES[:noflat] per measured env, or gymnax (make's env under "
                         "vmap(env.step)) (default: %(default)s)")
    ap.add_argument("--rng", nargs="+", default=["threefry", "hash"],
                    help="bit sources timed by --parts")
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/env_throughput-<time>/; the committed "
                         "figures: --out benchmarks/results)")
    a = ap.parse_args(argv)
    variants = [parse_variant(v) for v in a.variants]
    for v in variants:
        if v["devices"] > len(jax.devices()):
            raise SystemExit(f"--variants: {v['devices']} devices asked, {len(jax.devices())} "
                             "visible")
    a.out = os.path.join(output_folder(a.out, "env_throughput"), "env_throughput")  # file stem
    if a.quick:
        a.users, a.num_envs, a.repeats = [5, 50], [64, 4096], 2
    print(f"machine: {machine()}")
    if a.parts:
        rows = [r for rng in a.rng for r in bench_parts(5, 10, 4096, 50, a.repeats, rng)]
        for r in rows:
            extra = (f"  ({r['ns_per_env_step_amortised']:.1f} ns per step over U=5 steps)"
                     if r["part"].startswith("episode") else "")
            print(f"  {r['rng']:9s} {r['part']:42s} {r['ns_per_env_step']:8.1f} ns per env{extra}")
        write_csv(os.path.join(os.path.dirname(a.out), "env_parts.csv"), rows)
        print(f"wrote {os.path.join(os.path.dirname(a.out), 'env_parts.csv')}")
        return
    rows = []
    hdr = (f"{'U':>5}{'Q':>6}{'num_envs':>10}  {'variant':22s}{'jax steps/s':>13}"
           f"{'numpy steps/s':>15}{'ratio':>8}{'compile s':>11}")
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
            ns = float("nan")  # numpy once per point, beside every variant
            if episode_work <= a.numpy_max_work:
                np_episodes = max(1, int(a.numpy_target_env_steps // (n * u)))
                ns = bench_numpy(u, q, n, np_episodes * u, a.repeats)
            for v, text in zip(variants, a.variants):
                if n % v["devices"]:
                    continue
                js, compile_s = bench_jax(u, q, n, steps, a.repeats, **v)
                ratio = js / ns
                print(f"{u:>5}{q:>6}{n:>10}  {text:22s}{js:>13.3e}{ns:>15.3e}{ratio:>8.1f}"
                      f"{compile_s:>11.2f}")
                rows.append({"num_users": u, "num_rbs": q, "num_envs": n, "variant": text, **v,
                             "jax_steps_per_s": js, "numpy_steps_per_s": ns, "ratio": ratio,
                             "jax_compile_s": compile_s, "machine": machine()})
                write_csv(a.out + ".csv", rows)  # after each point: a killed run keeps its results
    plot(rows, a.out + ".png")
    print(f"wrote {a.out}.csv and {a.out}.png")


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    styles = ["-", "--", "-.", ":"]  # one per U; one colour per variant
    variants = list(dict.fromkeys(r.get("variant", "threefry:1") for r in rows))
    for i, u in enumerate(sorted({r["num_users"] for r in rows})):
        for j, var in enumerate(variants):
            rs = [r for r in rows if r["num_users"] == u and r.get("variant", "threefry:1") == var]
            if rs:
                ax.loglog([r["num_envs"] for r in rs], [r["jax_steps_per_s"] for r in rs], "o",
                          ls=styles[i % len(styles)], color=f"C{j}", label=f"U={u} {var}")
        rs = [r for r in rows if r["num_users"] == u and r.get("variant", "threefry:1") == variants[0]]
        ax.loglog([r["num_envs"] for r in rs], [r["numpy_steps_per_s"] for r in rs], "s",
                  ls=styles[i % len(styles)], color="grey", alpha=0.7, label=f"U={u} numpy")
    ax.set_xlabel("parallel environments")
    ax.set_ylabel("env steps / s")
    ax.set_title("Env throughput, random legal actions (Q = 2U)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
