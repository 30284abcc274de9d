"""JAX's multi-process runtime for real: two ``semcom-jax train --distributed`` processes on this
machine (one CPU device each, collectives over gloo, started by ``semcom-jax launch``) give the
metrics and final parameters of one process on two simulated devices."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

ARGS = ["--users", "3", "--rbs", "4", "--num-envs", "16", "--total-steps", "480",
        "--chunk-updates", "5", "--eval-episodes", "8", "--set", "ceiling_draws=0",
        "--devices", "2", "--no-progress"]


def _cli(args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "semcom_jax.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _final_params(run_dir):
    from semcom_jax.training import checkpoints, files
    from semcom_jax.training.experiment import Experiment

    # The state's shapes do not depend on the device count: restore onto this one device.
    config = files.load_config(run_dir).replace(devices=1)
    exp = Experiment.shared(config)
    step, state = checkpoints.restore_latest(checkpoints.manager(run_dir), exp.init_state(),
                                             run_dir)
    return step, jax.tree.map(np.asarray, state.params)


def _metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as fh:
        rows = [json.loads(line) for line in fh]
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


@pytest.mark.slow
def test_two_processes_equal_one_process_on_two_devices(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["XLA_FLAGS"] = "--xla_backend_optimization_level=0"  # as the other tests compile
    two = str(tmp_path / "two-processes")
    r = _cli(["launch", "--processes", "2", "--", "train", *ARGS, "--out", two], env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.count("results:") == 2  # both processes ran the whole run
    one = str(tmp_path / "one-process")
    env_one = dict(env, XLA_FLAGS=env["XLA_FLAGS"] + " --xla_force_host_platform_device_count=2")
    r = _cli(["train", *ARGS, "--out", one], env=env_one)
    assert r.returncode == 0, r.stderr[-2000:]
    m_two, m_one = _metrics(two), _metrics(one)
    assert len(m_two) == 5 and m_two == m_one
    step_two, p_two = _final_params(two)
    step_one, p_one = _final_params(one)
    assert step_two == step_one == 5
    for a, b in zip(jax.tree.leaves(p_two), jax.tree.leaves(p_one)):
        np.testing.assert_array_equal(a, b)


def test_distributed_flags_are_checked(capsys):
    from semcom_jax.cli.main import main

    assert main(["train", "--coordinator", "localhost:1234", "--no-progress"]) == 2
    assert "need --distributed" in capsys.readouterr().err
    assert main(["train", "--distributed", "--coordinator", "localhost:1234",
                 "--no-progress"]) == 2
    assert "together" in capsys.readouterr().err
    assert main(["train", "--distributed", "--coordinator", "localhost:1234",
                 "--num-processes", "0", "--process-id", "0", "--no-progress"]) == 2
    assert "--num-processes must be >= 1" in capsys.readouterr().err
    assert main(["train", "--distributed", "--coordinator", "localhost:1234",
                 "--num-processes", "2", "--process-id", "2", "--no-progress"]) == 2
    assert "--process-id must lie in [0, 2)" in capsys.readouterr().err
    assert main(["launch", "--processes", "0", "--", "train"]) == 2
    assert "--processes must be >= 1" in capsys.readouterr().err
    assert main(["launch", "--processes", "2", "--", "eval", "x"]) == 2
    assert "training command" in capsys.readouterr().err
