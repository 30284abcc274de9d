"""``semcom-jax train`` and the other verbs on a tiny config: a CLI run killed and resumed equals
an uninterrupted one, every verb works on its run folder, bad configs are refused by name."""

import json

import jax
import numpy as np
import pytest

from semcom_jax.training import checkpoints, runs
from semcom_jax.agents.config import TrainConfig
from semcom_jax.cli import main as cli

TINY = dict(num_users=2, num_rbs=3, num_envs=16, total_env_steps=16 * 4 * 6, chunk_updates=2,
            eval_episodes=32, hidden=(16,))


def _final_params(run_dir):
    exp = runs.Experiment.shared(runs.load_config(run_dir))
    m = checkpoints.manager(run_dir)
    fresh = exp.init_state()
    st = checkpoints.restore(m, m.latest_step(), fresh)
    m.close()
    # Same types as a fresh state, weak types included: a resumed run reuses the compiled chunk
    # programs instead of tracing different ones.
    assert [jax.typeof(x) for x in jax.tree.leaves(st)] == [jax.typeof(x)
                                                             for x in jax.tree.leaves(fresh)]
    return st.params


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One tiny run trained through the command line (2 seeds, a --set key), shared by the CLI
    and resume tests."""
    tmp = tmp_path_factory.mktemp("cli")
    cfg_file = tmp / "cfg.json"
    cfg_file.write_text(json.dumps(TINY))
    run = tmp / "run"
    code = cli(["train", "--config", str(cfg_file), "--out", str(run), "--no-progress",
                "--seeds", "2", "--set", "ent_coef=0.02"])
    return code, run, cfg_file


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(cli_run, tmp_path):
    _, full, _ = cli_run
    cfg = runs.load_config(str(full))
    part = tmp_path / "part"
    # Stopped by a compute budget spent by the first chunk (as if killed after it).
    summary = runs.train(cfg, str(part), progress=False, time_limit_s=1e-9)
    assert summary["updates"] == cfg.run.chunk_updates < cfg.num_updates
    assert not (part / "plots").exists()
    runs.train(None, str(part), resume=True, progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]  # noqa
    assert strip(runs.read_metrics(str(full))) == strip(runs.read_metrics(str(part)))
    for a, b in zip(jax.tree.leaves(_final_params(full)), jax.tree.leaves(_final_params(part))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (part / "plots" / "learning_curve.png").exists()


@pytest.mark.slow
def test_cli_verbs_on_a_tiny_config(cli_run, capsys):
    code, run, cfg_file = cli_run
    assert code == 0
    for f in ("config.json", "metrics.csv", "metrics.jsonl", "summary.json", "baselines.json"):
        assert (run / f).exists()
    assert json.loads((run / "config.json").read_text())["ppo"]["ent_coef"] == 0.02
    rows = runs.read_metrics(str(run))
    assert len(rows) == 2 * TrainConfig.of(**TINY).num_updates
    assert cli(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert "policy (PPO)" in out and "optimum" in out
    # The plan comes first (these baselines were computed by training, in this process, and
    # are reused); the paper observation's oracles are named as such.
    assert out.index("estimated memory") < out.index("policy (PPO)")
    assert "information the paper observation does not have" in out
    assert cli(["eval", str(run), "--baselines", "greedy", "--episodes", "8"]) == 0
    out = capsys.readouterr().out
    assert "baselines: random, optimum, greedy;" in out
    assert out.index("baselines: 8/8 episodes (values") < out.index("policy (PPO)")
    rows = [line.split()[0] for line in out.splitlines()[4:] if line[:1].isalpha()]
    assert "fixed" not in rows and "paper" not in rows and "greedy" in rows
    assert cli(["plot", str(run)]) == 0
    assert (run / "plots" / "violations.png").exists()
    assert cli(["baselines", "--users", "3", "--rbs", "2", "--episodes", "16"]) == 0
    # A second train into the same folder is refused rather than mixing two runs.
    assert cli(["train", "--config", str(cfg_file), "--out", str(run), "--no-progress"]) == 2


@pytest.mark.parametrize("args,message", [
    (["--set", "learning_rate=0.1"], "learning_rate"),
    (["--set", "num_envs=\"many\""], "num_envs"),
    (["--set", "gamma=1.5"], "gamma"),
    (["--num-envs", "0"], "--num-envs must be >= 1"),  # the flag typed
    (["--set", "env_params={\"tx_power_w\": -1}"], "tx_power_w"),
    (["--config", "/nonexistent.json"], "does not exist"),
])
def test_bad_config_is_refused_with_its_name(tmp_path, capsys, args, message):
    assert cli(["train", "--out", str(tmp_path / "r"), "--no-progress"] + args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
