"""The env batch split over 4 (simulated CPU) devices trains exactly like one device."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from semcom_jax.training import sharding

SCRIPT = r"""
import json, jax, numpy as np
from semcom_jax.training import runs
from semcom_jax.agents.config import TrainConfig
from semcom_jax.training import sharding
out = {"devices": len(jax.devices()),
       "counts": {n: sharding.device_count_for(n, 0) for n in (16, 6, 7, 9)}}
try:
    sharding.device_count_for(16, 3)
    out["refused"] = None
except ValueError as e:
    out["refused"] = str(e)
for algo in ("ppo", "dqn"):  # SAC shares DQN's off-policy runner and its sharding
    for d in (1, 4):
        extra = {} if algo == "ppo" else dict(buffer_size=512, batch_size=32, gradient_steps=2,
                                              learning_starts=0)
        cfg = TrainConfig.for_algo(algo, num_users=2, num_rbs=3, num_envs=16, num_seeds=2,
                                   total_env_steps=16 * 4 * 6, chunk_updates=3,
                                   eval_episodes=32, hidden=(16,), rb_hidden=8, devices=d,
                                   **extra)
        exp = runs.Experiment(cfg)
        st = exp.init_state()
        for _ in range(2):
            st, m, ev = exp.run_chunk(st, 3)
        out[f"{algo}-{d}"] = {
            "train_return": np.asarray(m["train_return"]).tolist(),
            "eval_return": np.asarray(ev["eval_return"]).tolist(),
            "obs_devices": len(st.obs.features.sharding.device_set),
            "params": float(sum(np.abs(np.asarray(x)).sum() for x in jax.tree.leaves(st.params))),
        }
# The benchmark's env runner split over the 4 devices: each device runs its share with its key.
from semcom_jax.cli.bench import random_action_runner
from semcom_jax.env import SemComEnv
env = SemComEnv(3, 4, rng="hash")
key = jax.random.PRNGKey(4)
acc, obs = random_action_runner(env, 8, 6, 4)(key)
per_device = random_action_runner(env, 2, 6)
parts = [per_device(k) for k in jax.random.split(key, 4)]
out["runner"] = {
    "devices": len(acc.sharding.device_set),
    "acc": np.asarray(acc).tolist(), "acc_parts": np.concatenate([p[0] for p in parts]).tolist(),
    "mask": np.asarray(obs.action_mask).tolist(),
    "mask_parts": np.concatenate([p[1].action_mask for p in parts]).tolist()}
try:
    random_action_runner(env, 6, 6, 4)
    out["runner_refused"] = None
except ValueError as e:
    out["runner_refused"] = str(e)
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def four_devices():
    # Compilation dominates this subprocess, and both sides of each comparison are compiled
    # alike: XLA's backend optimisations are off.
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=4 "
                         "--xla_backend_optimization_level=0")
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "dqn"])
def test_sharded_run_equals_single_device_run(four_devices, algo):
    assert four_devices["devices"] == 4
    one, four = four_devices[f"{algo}-1"], four_devices[f"{algo}-4"]
    assert one["obs_devices"] == 1 and four["obs_devices"] == 4  # really split over 4
    for key in ("train_return", "eval_return"):
        np.testing.assert_allclose(four[key], one[key], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(four["params"], one["params"], rtol=1e-4)


@pytest.mark.slow
def test_env_runner_split_over_devices_equals_its_parts(four_devices):
    r = four_devices["runner"]
    assert r["devices"] == 4
    np.testing.assert_array_equal(r["acc"], r["acc_parts"])
    assert r["mask"] == r["mask_parts"]
    assert "multiple" in four_devices["runner_refused"]


@pytest.mark.slow
def test_default_device_count_is_the_largest_divisor_of_num_envs(four_devices):
    assert four_devices["counts"] == {"16": 4, "6": 3, "7": 1, "9": 3}
    assert "multiple" in four_devices["refused"]


def test_device_count_rules():
    import jax

    n = len(jax.devices())
    with pytest.raises(ValueError, match="devices"):
        sharding.device_count_for(16, n + 1)
    with pytest.raises(ValueError, match="devices"):
        sharding.device_count_for(16, -1)
