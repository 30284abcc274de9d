"""What a user sees around a run: evaluation points, budgets that round, the console summary,
every script's --help, output folders that never silently reuse earlier results."""

import glob
import json
import os
import subprocess
import sys

import pytest

from semcom_jax.agents.config import TrainConfig
from semcom_jax.cli import main as cli

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import common  # noqa: E402  (benchmarks/common.py)


@pytest.mark.parametrize("algo", ["ppo", "sac", "dqn"])
@pytest.mark.parametrize("total", [100_000, 3_000_000])
def test_auto_chunks_give_enough_evaluation_points(algo, total):
    cfg = TrainConfig.for_algo(algo, total_env_steps=total)
    evaluations = -(-cfg.num_updates // cfg.updates_per_chunk)
    assert evaluations >= 5
    assert cfg.updates_per_chunk <= {"ppo": 10, "sac": 100, "dqn": 100}[algo]


def test_top_level_help_lists_every_verb(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for verb in ("train", "eval", "plot", "baselines", "bench", "tables", "launch"):
        assert f"    {verb}" in out


def test_output_folders_are_fresh_and_reuse_is_explicit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fresh = common.output_folder(None, "demo")
    assert os.path.isdir(fresh) and fresh.startswith(os.path.join("runs", "demo-"))
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(SystemExit, match="names a folder"):
        common.output_folder(str(tmp_path / "a_file"), "demo")
    full = tmp_path / "full"
    (full / "run1").mkdir(parents=True)
    (full / "run2").mkdir()
    with pytest.raises(SystemExit, match="--reuse"):
        common.check_reuse(str(full), False, "runs")
    assert common.check_reuse(str(full), True, "runs") == ["run1", "run2"]
    assert "2 entries" in capsys.readouterr().out
    assert common.check_reuse(str(tmp_path / "empty"), False, "runs") == []


SCRIPTS = sorted(glob.glob(os.path.join(ROOT, "experiments", "*.py"))
                 + [p for p in glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))
                    if not p.endswith(("common.py", "numpy_env.py"))]
                 + glob.glob(os.path.join(ROOT, "examples", "*.py")))


HELP_ALL = r"""
import contextlib, io, json, runpy, sys
out = {}
for path in sys.argv[1:]:
    sys.argv = [path, "--help"]
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            runpy.run_path(path, run_name="__main__")
        out[path] = ("no exit", buf.getvalue())
    except SystemExit as e:
        out[path] = (e.code, buf.getvalue())
    except Exception as e:
        out[path] = (repr(e), buf.getvalue())
print("RESULT" + json.dumps(out))
"""


@pytest.mark.slow
def test_every_script_answers_help():
    """One interpreter runs every script's --help (as __main__), so jax is imported once."""
    r = subprocess.run([sys.executable, "-c", HELP_ALL, *SCRIPTS], capture_output=True,
                       text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    results = json.loads(next(line for line in r.stdout.splitlines()
                              if line.startswith("RESULT"))[len("RESULT"):])
    assert len(results) == len(SCRIPTS) >= 12
    for path, (code, text) in results.items():
        assert code in (0, None) and text.startswith("usage:"), (path, code, text[:200])


@pytest.mark.slow
def test_train_says_what_it_runs_and_prints_every_baseline(tmp_path, capsys):
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(dict(num_users=2, num_rbs=3, num_envs=8, eval_episodes=8,
                                   ceiling_draws=0, hidden=[8])))
    run = tmp_path / "run"
    # 8 envs x 4 steps = 32 env steps per update: 1000 rounds down to 31 updates = 992 steps,
    # --eval-every 100 rounds to 3 updates (96 env steps).
    assert cli(["train", "--config", str(cfg), "--out", str(run), "--no-progress",
                "--total-steps", "1000", "--eval-every", "100", "--profile-compile"]) == 0
    out = capsys.readouterr().out
    # --profile-compile: the table, then the file, with the training chunk among the programs
    assert out.index("compilation, per program") < out.index("policy (PPO)")
    with open(run / "compile_profile.csv") as fh:
        programs = [line.split(",")[0] for line in fh.read().splitlines()[1:]]
    assert len(programs) >= 3 and any("train_chunk" in p for p in programs), programs
    assert "running 31 updates = 992 env steps" in out
    assert "rounded to 3 update(s) of 32 env steps = every 96" in out
    for row in ("policy (PPO)", "optimum", "greedy", "random", "fixed ViT-B/32",
                "fixed ViT-L/14"):
        assert row in out
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evaluated = sorted({r["update"] for r in rows if r["eval_normalised"] is not None})
    assert evaluated == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31]
    assert json.loads((run / "config.json").read_text())["run"]["chunk_updates"] == 3


@pytest.mark.slow
def test_compile_cache_serves_a_second_run(tmp_path):
    # Two processes train the same tiny configuration with --compile-cache: the first fills the
    # folder, the second compiles nothing (every program is read from the cache: no entry is
    # added or rewritten) and trains to the same metrics.
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(dict(num_users=2, num_rbs=3, num_envs=8, eval_episodes=8,
                                   ceiling_draws=0, hidden=[8])))
    cache = tmp_path / "xla"

    def train(name):
        r = subprocess.run([sys.executable, "-m", "semcom_jax.cli.main", "train", "--config",
                            str(cfg), "--out", str(tmp_path / name), "--no-progress",
                            "--total-steps", "320", "--compile-cache", str(cache)],
                           capture_output=True, text=True, cwd=ROOT)
        assert r.returncode == 0, r.stderr[-2000:]
        return sorted((n, os.stat(cache / n).st_mtime_ns) for n in os.listdir(cache))

    first = train("a")
    assert len(first) >= 2  # the update and the evaluation at least
    assert train("b") == first
    metrics = [(tmp_path / n / "metrics.jsonl").read_text() for n in ("a", "b")]
    strip = [[{k: v for k, v in json.loads(line).items() if "time" not in k and k != "wall_s"}
              for line in m.splitlines()] for m in metrics]
    assert strip[0] == strip[1]


def test_compile_cache_refuses_a_file(tmp_path, capsys):
    f = tmp_path / "not-a-folder"
    f.write_text("x")
    assert cli(["train", "--no-progress", "--compile-cache", str(f)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def _all_actions(parser, name="semcom-jax"):
    import argparse
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            for verb, sub in a.choices.items():
                yield from _all_actions(sub, f"{name} {verb}")
        elif not isinstance(a, argparse._HelpAction):
            yield name, a


def test_every_flag_of_every_verb_has_a_help_text():
    from semcom_jax.cli.main import _parser
    missing = [f"{name} {a.option_strings or a.dest}" for name, a in _all_actions(_parser())
               if not a.help]
    assert not missing, missing


def test_the_default_budget_is_a_whole_number_of_updates():
    cfg = TrainConfig()
    assert cfg.num_updates * cfg.steps_per_update == cfg.run.total_env_steps


def test_train_errors_name_the_flag_typed_and_refuse_a_budget_of_too_few_updates(capsys):
    assert cli(["train", "--users", "0"]) == 2
    err = capsys.readouterr().err
    assert "--users must be >= 1" in err and "num_users" not in err
    assert cli(["train", "--set", "num_users=0"]) == 2  # typed as a config key: named as one
    assert "config key 'num_users'" in capsys.readouterr().err
    assert cli(["train", "--network", "set", "--train-users", "5", "50", "--train-rbs", "5",
                "100", "--users", "50", "--rbs", "100", "--num-envs", "1024",
                "--total-steps", "200000"]) == 2
    err = capsys.readouterr().err
    assert "--total-steps 200,000 is 3 update(s) of 51,200" in err and "256,000" in err


def test_the_size_free_network_brings_the_scaling_studys_settings():
    cfg = TrainConfig.from_dict({"network": "set", "train_users": [5, 50],
                                 "train_rbs": [5, 100], "num_users": 50, "num_rbs": 100})
    assert (cfg.run.num_envs, cfg.run.episodes_per_rollout, cfg.run.total_env_steps) == (64, 1, 1_200_000)
    assert cfg.num_updates == 375  # 64 envs x 50 steps per update
    given = TrainConfig.from_dict({"network": "set", "num_envs": 32})
    assert given.run.num_envs == 32 and given.run.episodes_per_rollout == 1
    assert TrainConfig.from_dict({"network": "per_rb"}).run.num_envs == 1024
