"""Run folders: a damaged file is named, a damaged newest checkpoint falls back and resumes
identically, a full disk is one line and the run resumes to identical results, a failed start
is replaced by the next one."""

import json
import os
import shutil
import subprocess
import sys
import pathlib

import jax
import numpy as np
import pytest

from semcom_jax.agents.config import TrainConfig
from semcom_jax.cli import main as cli
from semcom_jax.training import checkpoints, files, runs


# ----------------------------------------------------------------------------- run folders

TINY = dict(num_users=2, num_rbs=3, num_envs=8, total_env_steps=8 * 4 * 3, chunk_updates=1,
            eval_episodes=8, ceiling_draws=0, hidden=(8,))


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def _final_leaves(run_dir):
    _, state, _ = runs.load_trained(str(run_dir))
    return [np.asarray(x) for x in jax.tree.leaves(state.params)]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("robust") / "full"
    runs.train(TrainConfig.of(**TINY), str(run), progress=False)
    return run


@pytest.mark.slow
def test_damaged_run_files_are_named(finished_run, tmp_path, cli_error):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text()[:-20])
    with pytest.raises(ValueError, match="metrics.jsonl.*line"):
        files.read_metrics(str(run))
    assert "metrics.jsonl" in cli_error(["plot", str(run)])
    shutil.copy(finished_run / "metrics.jsonl", run / "metrics.jsonl")
    os.remove(run / "baselines.json")
    assert "baselines.json" in cli_error(["plot", str(run)])
    (run / "config.json").write_text("{\"num_users\": 2,")
    assert "config.json" in cli_error(["eval", str(run)])
    # An edited config.json no longer fits the checkpoints: named, and nothing is deleted.
    cfg = json.loads((finished_run / "config.json").read_text())
    cfg["network"]["hidden"] = [16]
    (run / "config.json").write_text(json.dumps(cfg))
    err = cli_error(["eval", str(run)])
    assert "config.json" in err and "checkpoint" in err
    assert sorted(os.listdir(run / "checkpoints")) == sorted(
        os.listdir(finished_run / "checkpoints"))


@pytest.mark.slow
def test_damaged_newest_checkpoint_falls_back_and_resumes_identically(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    newest = max(int(n) for n in os.listdir(run / "checkpoints") if n.isdigit())
    for root, _, names in os.walk(run / "checkpoints" / str(newest)):
        for n in names:  # truncate every file of the newest checkpoint
            with open(os.path.join(root, n), "r+b") as fh:
                fh.truncate(max(0, os.path.getsize(os.path.join(root, n)) // 3))
    with pytest.warns(RuntimeWarning, match=f"checkpoint {newest}"):
        runs.train(None, str(run), resume=True, progress=False)
    assert _strip(runs.read_metrics(str(run))) == _strip(runs.read_metrics(str(finished_run)))
    for a, b in zip(_final_leaves(run), _final_leaves(finished_run)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_the_executable_reports_a_damaged_checkpoint_in_one_line(finished_run, tmp_path):
    """What a user sees: orbax's reads of the damaged checkpoint, still in flight when it gives
    up, printed about a hundred tracebacks around the one line that matters."""
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    newest = max(int(n) for n in os.listdir(run / "checkpoints") if n.isdigit())
    for root, _, names in os.walk(run / "checkpoints" / str(newest)):
        if os.path.basename(root) == "d":
            for n in names:
                (pathlib.Path(root) / n).write_bytes(b"damaged")
    exe = [sys.executable, "-c", "import sys; from semcom_jax.cli.main import console; "
           "sys.exit(console())"]  # the semcom-jax executable's entry point
    r = subprocess.run(exe + ["eval", str(run)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    ours = [line for line in r.stderr.splitlines() if line.startswith("semcom-jax:")]
    # No traceback at all; XLA's own log lines, if the machine is loaded, are not ours to count.
    assert "Traceback" not in r.stderr and "Event loop is closed" not in r.stderr, r.stderr[:3000]
    assert len(ours) == 1 and ours[0].startswith("semcom-jax: warning: checkpoint"), r.stderr
    assert "resuming" not in ours[0] and "using checkpoint" in ours[0]
    # An edited config.json: the error alone, on one line.
    cfg = json.loads((run / "config.json").read_text())
    cfg["run"]["num_envs"] = 16
    (run / "config.json").write_text(json.dumps(cfg))
    r = subprocess.run(exe + ["train", "--resume", str(run), "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    ours = [line for line in r.stderr.splitlines() if line.startswith("semcom-jax:")]
    assert "Traceback" not in r.stderr and "Event loop is closed" not in r.stderr, r.stderr[:3000]
    assert r.returncode == 2 and len(ours) == 1 and "config.json" in ours[0], r.stderr


@pytest.mark.slow
def test_disk_full_is_one_line_and_the_run_resumes_identically(finished_run, tmp_path, cli_error,
                                                               monkeypatch):
    run = tmp_path / "run"
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(TINY))
    real_usage, calls = shutil.disk_usage, []

    def disk_fills_after_the_first_checkpoint(path):
        calls.append(path)
        usage = real_usage(path)
        return usage._replace(free=0) if len(calls) >= 2 else usage

    # The save's own free-space check sees a full disk at the second chunk.
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", disk_fills_after_the_first_checkpoint)
    err = cli_error(["train", "--config", str(cfg), "--out", str(run), "--no-progress"])
    assert "disk full" in err and "--resume" in err
    assert sorted(os.listdir(run / "checkpoints")) == ["1"]  # nothing half-written
    monkeypatch.setattr(checkpoints.shutil, "disk_usage", real_usage)
    assert cli(["train", "--resume", str(run), "--no-progress"]) == 0
    assert _strip(runs.read_metrics(str(run))) == _strip(runs.read_metrics(str(finished_run)))
    for a, b in zip(_final_leaves(run), _final_leaves(finished_run)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.slow
def test_a_failed_start_is_replaced_by_the_next_start(tmp_path):
    run = tmp_path / "run"
    files.start_run(str(run), TrainConfig.of(**TINY))  # as if the first chunk had crashed
    summary = runs.train(TrainConfig.of(**TINY), str(run), progress=False)
    assert summary["updates"] == TrainConfig.of(**TINY).num_updates
    with pytest.raises(ValueError, match="already holds a run"):
        runs.train(TrainConfig.of(**TINY), str(run), progress=False)
