"""``semcom-jax bench``: a quick version of the benchmarks, printed as one table (~1-2 min).

Measures on this machine, side by side in one run: env steps/s of the jitted lock-step
``VecEnv`` (random legal actions) and of a plain Gymnasium loop over the adapter; training env
steps/s of PPO, SAC and DQN (default configs, one seed, steady state after compilation); the env
batch split over every local device; and the process's peak host memory. The full benchmarks,
with CSVs and plots, are the scripts in ``benchmarks/`` and ``experiments/scaling_users.py``.
"""

from __future__ import annotations

import resource
import time

import jax
import jax.numpy as jnp
import numpy as np


def best_time(fn, repeats: int = 2) -> float:
    """Smallest wall time of ``repeats`` calls (the machine is shared and noisy)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def random_action_runner(env, num_envs: int, num_steps: int, num_devices: int = 1,
                         lock_step: bool = True):
    """A jitted function of a key: ``num_steps`` steps of ``num_envs`` envs with uniformly
    random legal actions, resets included; returns the summed rewards and the last observation
    (which keeps the per-step observation work live). The actions' random numbers come from the
    env's bit source (``env.rng``), like its episodes.

    ``lock_step``: the batch is a :class:`~semcom_jax.env.wrappers.VecEnv` (all envs reset
    together, once every U steps); False steps ``jax.vmap(env.step)`` instead, each env
    auto-resetting on its own, as a gymnax agent does.

    ``num_devices > 1`` splits the envs over that many local devices (``shard_map`` on a
    one-axis mesh; on a CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` makes one
    device per core): each device runs its own ``num_envs / num_devices`` envs with its own key,
    the way a JAX user spreads independent envs over the cores or chips they have."""
    if num_devices > 1:
        return _sharded_runner(env, num_envs, num_steps, num_devices, lock_step)
    from semcom_jax.env.wrappers import VecEnv

    params = env.default_params
    rng = getattr(env, "rng", "threefry")
    if lock_step:
        venv = VecEnv(env, num_envs)
        reset = lambda k: venv.reset(k, params)  # noqa: E731
        step = lambda k, s, a: venv.step(k, s, a, params)[:3]  # noqa: E731
    else:
        reset = lambda k: jax.vmap(env.reset, (0, None))(  # noqa: E731
            jax.random.split(k, num_envs), params)
        step = lambda k, s, a: jax.vmap(env.step, (0, 0, 0, None))(  # noqa: E731
            jax.random.split(k, num_envs), s, a, params)[:3]

    @jax.jit
    def run(key):
        k_reset, k_loop, k_first = jax.random.split(key, 3)
        obs, vs = reset(k_reset)
        first = env.actions.uniform_legal(k_first, env.action_mask_of(obs), rng)

        # Each step's action is drawn from the observation it follows and handed to the next
        # step through the loop carry, as an array, the way an agent's action reaches the env.
        # Drawn inside the step instead, XLA re-derives the cheap sampler (bits, rank over the
        # free RBs) inside each of the dozen fusions of the transition that read the action
        # (measured in docs/performance.md).
        def body(c, _):
            obs, vs, a, key, acc = c
            key, ka, ks = jax.random.split(key, 3)
            obs, vs, r = step(ks, vs, a)
            a = env.actions.uniform_legal(ka, env.action_mask_of(obs), rng)
            return (obs, vs, a, key, acc + r), None

        acc0 = jnp.zeros(num_envs, jnp.float32)
        (obs, _, _, _, acc), _ = jax.lax.scan(body, (obs, vs, first, k_loop, acc0), None,
                                              num_steps)
        return acc, obs

    return run


def _sharded_runner(env, num_envs: int, num_steps: int, num_devices: int, lock_step: bool):
    from jax.sharding import PartitionSpec as P

    from semcom_jax.training.sharding import device_count_for, env_mesh

    device_count_for(num_envs, num_devices)  # refuses a count that is absent or does not divide
    per_device = random_action_runner(env, num_envs // num_devices, num_steps,
                                      lock_step=lock_step)
    # check_vma=False: the devices share nothing, so no value needs a varying-axis type.
    run = jax.jit(jax.shard_map(lambda keys: per_device(keys[0]), mesh=env_mesh(num_devices),
                                in_specs=P("envs"), out_specs=P("envs"), check_vma=False))
    return lambda key: run(jax.random.split(key, num_devices))


def env_steps_per_s(u: int, q: int, num_envs: int, steps: int) -> float:
    from semcom_jax.env.environment import SemComEnv

    run = random_action_runner(SemComEnv(u, q), num_envs, steps)
    key = jax.random.PRNGKey(0)
    jax.block_until_ready(run(key))
    return num_envs * steps / best_time(lambda: jax.block_until_ready(run(key)))


def gym_steps_per_s(steps: int = 1000) -> float:
    from semcom_jax.env.gym_adapter import SemComGymEnv

    env = SemComGymEnv(num_users=5, num_rbs=10)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)

    def run(n):
        nonlocal obs
        for _ in range(n):
            obs, _, done, _, _ = env.step(rng.choice(np.flatnonzero(obs["action_mask"])))
            if done:
                obs, _ = env.reset()

    run(20)
    return steps / best_time(lambda: run(steps), 1)


def train_steps_per_s(algo: str, updates: int) -> tuple[float, int]:
    from semcom_jax.agents.config import TrainConfig
    from semcom_jax.training.experiment import Experiment

    cfg = TrainConfig.for_algo(algo, eval_episodes=64)
    exp = Experiment(cfg)
    state = exp.init_state()
    state, *_ = exp.run_chunk(state, updates)  # compile
    jax.block_until_ready(state)
    t0 = time.perf_counter()
    state, *_ = exp.run_chunk(state, updates)
    jax.block_until_ready(state)
    return updates * cfg.steps_per_update / (time.perf_counter() - t0), exp.num_devices


def run(progress=print, quick: bool = False) -> list[tuple[str, str]]:
    """``quick``: tiny sizes and budgets, a smoke test of the command (figures meaningless)."""
    rows = []
    dev = jax.devices()
    rows.append(("devices", f"{len(dev)} x {dev[0].platform} ({dev[0].device_kind})"))
    for u, n in ((5, 4096), (50, 1024)):
        n = 16 if quick else n
        sps = env_steps_per_s(u, 2 * u, n, max(u, (2**20 // (n * u)) * u) if not quick else u)
        rows.append((f"env U={u} Q={2 * u}, {n} envs", f"{sps:.3e} steps/s"))
        progress(*rows[-1])
    try:
        rows.append(("Gymnasium loop, 1 env, U=5", f"{gym_steps_per_s():.3e} steps/s"))
        progress(*rows[-1])
    except ImportError:
        rows.append(("Gymnasium loop", "skipped (pip install 'semcom-jax[gym]')"))
    for algo, updates in (("ppo", 10), ("sac", 100), ("dqn", 100)):
        sps, nd = train_steps_per_s(algo, 2 if quick else updates)
        rows.append((f"train {algo.upper()} (defaults, {nd} device{'s' if nd > 1 else ''})",
                     f"{sps:.3e} env steps/s"))
        progress(*rows[-1])
    rows.append(("peak host memory",
                 f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"))
    return rows
