"""Bad input, systematically: every surface a user touches (parameters, config, config files,
the command line, run folders, tables, the Gymnasium adapter) refuses bad input with one clear
error that names the culprit; accepted parameters give finite numbers in float32; a damaged run
folder is named or recovered, and a run stopped by a full disk resumes to identical results."""

import json
import os
import shutil
import subprocess
import sys
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.agents.config import TrainConfig, read_config_file
from semcom_jax.cli import main as cli
from semcom_jax.env.environment import SemComEnv
from semcom_jax.physics.params import EnvParams
from semcom_jax.tables import format as table_format
from semcom_jax.training import checkpoints, files, runs

# ----------------------------------------------------------------------------- parameters

BAD_PARAMS = [
    ({"tx_power": 1.0}, "tx_power"),  # unknown key
    ({"tx_power_w": "0.2"}, "tx_power_w"),
    ({"tx_power_w": True}, "tx_power_w"),
    ({"tx_power_w": None}, "tx_power_w"),
    ({"tx_power_w": [0.2]}, "tx_power_w"),
    ({"tx_power_w": 10**400}, "tx_power_w"),
    ({"tx_power_w": float("nan")}, "tx_power_w"),
    ({"tx_power_w": float("inf")}, "tx_power_w"),
    ({"tx_power_w": -1.0}, "tx_power_w"),
    ({"delay_budget_s": 0.0}, "delay_budget_s"),
    ({"lam_delay": -0.5}, "lam_delay"),
    ({"lam_energy": 1e35}, "lam_energy"),
    ({"interference_lo_w": 2.0}, "interference_lo_w"),  # empty range lo > hi
    ({"min_distance_m": 600.0}, "min_distance_m"),
    ({"encoder_compute": [1.0, 2.0]}, "encoder_feature_bits"),
    ({"encoder_compute": [1.0, 0.0, 3.0]}, "encoder_compute"),
    ({"encoder_compute": [1.0, "x", 3.0]}, "encoder_compute"),
    # accepted by the interval checks, but not representable or not finite in float32:
    ({"tx_power_w": 1e39}, "tx_power_w"),
    ({"interference_lo_w": 1e-60}, "interference_lo_w"),
    ({"pathloss_exp": 20.0}, "path gain"),
    ({"tx_power_w": 1e-34}, "SINR"),
    ({"bs_freq_lo_hz": 1e9, "bs_freq_hi_hz": 1e20}, "energy"),
    ({"cell_radius_m": 1e20}, "distance"),
    ({"image_bits_hi": 1e38, "user_cycles_hi_per_bit": 1e10}, "delay"),
]


@pytest.mark.parametrize("overrides,culprit", BAD_PARAMS)
def test_bad_params_are_refused_naming_the_culprit(overrides, culprit):
    with pytest.raises(ValueError, match=culprit):
        EnvParams.from_dict(overrides)


@pytest.mark.parametrize("text,culprit", [("{", "not valid JSON"), ("[1, 2]", "mapping")])
def test_bad_params_json_is_refused(text, culprit):
    with pytest.raises(ValueError, match=culprit):
        EnvParams.from_json(text)


def _draw_params(rng: np.random.Generator) -> dict:
    """One parameter set from a space far wider than the defaults: each positive scalar scaled
    by 10^U(-3, 3), or (one in ten) by 10^U(-40, 40); ranges kept ordered. The encoder costs stay
    the table's (the env refuses others)."""
    out = {}
    for name, v in EnvParams().to_dict().items():
        if isinstance(v, list) or v == 0.0:
            out[name] = v
        else:
            width = 40 if rng.random() < 0.1 else 3
            out[name] = v * 10.0 ** rng.uniform(-width, width)
    out["pathloss_exp"] = float(rng.uniform(0.1, 12.0))
    for lo, hi in (("interference_lo_w", "interference_hi_w"), ("bs_freq_lo_hz", "bs_freq_hi_hz"),
                   ("bs_cycles_lo_per_bit", "bs_cycles_hi_per_bit"),
                   ("min_distance_m", "cell_radius_m"), ("image_bits_lo", "image_bits_hi"),
                   ("user_freq_lo_hz", "user_freq_hi_hz"),
                   ("user_cycles_lo_per_bit", "user_cycles_hi_per_bit")):
        a, b = sorted((out[lo], out[hi]))
        out[lo], out[hi] = a, b
    return out


@pytest.mark.parametrize("obs_mode,score", [("full", "table"), ("paper", "features")])
def test_every_accepted_parameter_set_gives_finite_observations_and_rewards(obs_mode, score):
    """A property-based sweep over the accepted space: 400 random parameter sets, far outside
    the defaults; each one the validator accepts runs whole episodes (random legal actions) and
    every observation column, reward and info value must be finite in float32."""
    env = SemComEnv(4, 6, obs_mode=obs_mode, score=score)
    rng = np.random.default_rng(0)
    accepted, refused = [], 0
    for _ in range(400):
        d = _draw_params(rng)
        try:
            accepted.append(env.check_params(EnvParams.from_dict(d)))
        except ValueError:
            refused += 1
    # The sweep reaches both sides of the boundary, so it tests the validator's edge.
    assert len(accepted) >= 40 and refused >= 40, (len(accepted), refused)
    batch = jax.tree.map(lambda *x: jnp.asarray(x, jnp.float32), *accepted)

    def episode(key, params):
        k_reset, k_act = jax.random.split(key)
        obs, state = env.reset(k_reset, params)
        obs_all, rewards, infos = [obs], [], []
        for t in range(env.num_users):
            a = env.actions.uniform_legal(jax.random.fold_in(k_act, t), obs.action_mask)
            obs, state, r, _, info = env.step_env(jax.random.fold_in(k_act, 100 + t), state, a,
                                              params)
            obs_all.append(obs)
            rewards.append(r)
            infos.append(info)
        return obs_all, rewards, infos

    keys = jax.random.split(jax.random.PRNGKey(1), len(accepted))
    for leaf in jax.tree.leaves(jax.jit(jax.vmap(jax.vmap(episode, (0, None)), (None, 0)))(
            keys[:8], batch)):
        leaf = np.asarray(leaf)
        if np.issubdtype(leaf.dtype, np.floating):
            assert np.all(np.isfinite(leaf))


def test_range_check_corners_are_the_generators_extreme_draws():
    """The check evaluates the physics at FINE/COARSE_EXTREMES: they must be exactly the most
    extreme uniforms the generator can produce (all-zero and all-one random bits)."""
    from semcom_jax.env.bits import open_unit
    from semcom_jax.physics.instance import COARSE_EXTREMES, FINE_EXTREMES

    lo, hi = np.asarray(open_unit(jnp.array([0, 2**32 - 1], jnp.uint32)))
    assert (lo, hi) == tuple(np.float32(x) for x in FINE_EXTREMES)
    gen = jax.jit(SemComEnv(1, 1).generator)
    params = EnvParams(user_freq_lo_hz=1.0, user_freq_hi_hz=1.0 + 65536.0)
    draws = np.asarray(jax.vmap(lambda k: gen(k, params).user_freq_hz[0])(
        jax.random.split(jax.random.PRNGKey(0), 20000)))
    # user clock = lo + x * 65536, x = (n + 0.5) / 65536: every draw lies within the corners.
    assert np.all(draws - 1.0 >= 65536 * COARSE_EXTREMES[0] - 1e-3)
    assert np.all(draws - 1.0 <= 65536 * COARSE_EXTREMES[1] + 1e-3)


def test_float32_check_accepts_sensible_changes():
    for d in ({}, {"tx_power_w": 5.0}, {"pathloss_exp": 4.0}, {"cell_radius_m": 5000.0},
              {"interference_lo_w": 1e-15}, {"lam_delay": 0.0, "zeta_bs": 0.0}):
        EnvParams.from_dict(d)


# ----------------------------------------------------------------------------- config

BAD_CONFIG = [
    ({"seed": 2**70}, "seed"),
    ({"seed": -1}, "seed"),
    ({"eval_seed": 2**40}, "eval_seed"),
    ({"algo": "sac", "batch_size": 60_000}, "batch_size"),
    ({"lr": float("nan")}, "lr"),
    ({"gamma": 1.5}, "gamma"),
    ({"num_envs": 0}, "num_envs"),
    ({"num_envs": "8"}, "num_envs"),
    ({"num_envs": 2**30}, "num_envs"),
    ({"num_envs": True}, "num_envs"),
    ({"algo": "a2c"}, "algo"),
    ({"network": "cnn"}, "network"),
    ({"hidden": []}, "hidden"),
    ({"hidden": [64, "x"]}, "hidden"),
    ({"train_users": [5, 2], "network": "set"}, "train_users"),
    ({"train_users": [2, 5]}, "network"),
    ({"total_env_steps": 10}, "total_env_steps"),
    ({"num_minibatches": 7}, "num_minibatches"),
    ({"env_params": {"tx_power_w": 1e39}}, "tx_power_w"),
    ({"env_params": [1]}, "env_params"),
    ({"obs_mode": "partial"}, "obs_mode"),
    ({"learning_rate": 0.1}, "learning_rate"),
    ({"chunk_updates": -1}, "chunk_updates"),
]


@pytest.mark.parametrize("data,culprit", BAD_CONFIG)
def test_bad_config_is_refused_naming_the_key(data, culprit):
    with pytest.raises(ValueError, match=culprit):
        TrainConfig.from_dict(data)


def test_a_missing_table_is_named_when_the_run_is_built():
    """The config does not look at the disk; building the run does, naming the file."""
    cfg = TrainConfig.from_dict({"table": "/no/such/table.npz"})
    with pytest.raises(ValueError, match="/no/such/table.npz.*does not exist"):
        runs.Experiment(cfg)


@pytest.mark.parametrize("name,content,culprit", [
    ("c.json", b"{\"num_envs\": 8,", "not valid JSON"),
    ("c.yaml", b"num_envs: [8\n", "not valid YAML"),
    ("c.yaml", b"num_envs: 8\n\xff\xfe\n", "not UTF-8"),
    ("c.json", b"[1, 2]", "mapping"),
])
def test_bad_config_file_is_named(tmp_path, name, content, culprit):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=culprit) as e:
        read_config_file(str(path))
    assert str(path) in str(e.value)


# ----------------------------------------------------------------------------- command line


def _cli_error(capsys, argv) -> str:
    """Runs the CLI; it must exit 2 with one line on stderr and no traceback."""
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("semcom-jax: error:") and "\n" not in err and "Traceback" not in err
    return err


def test_cli_user_errors_are_one_line(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    out = ["--no-progress", "--out"]
    cases = [
        (["train", *out, str(a_file)], "is a file"),
        (["train", *out, str(tmp_path / "r1"), "--set", "noequals"], "--set"),
        (["train", *out, str(tmp_path / "r2"), "--set", "nokey=1"], "nokey"),
        (["train", *out, str(tmp_path / "r3"), "--devices", "3"], "devices"),
        (["train", *out, str(tmp_path / "r4"), "--users", "0"], "--users must be >= 1"),
        (["train", "--resume", str(tmp_path / "nothing")], "no config.json"),
        (["train", "--resume", str(tmp_path), "--users", "7"], "--users"),
        (["train", "--resume", str(tmp_path), "--config", "x.yaml"], "--config"),
        (["eval", str(tmp_path / "nothing")], "no config.json"),
        (["plot", str(tmp_path)], "no metrics"),
        (["baselines", "--episodes", "0"], "--episodes"),
        (["baselines", "--users", "0"], "--users must be >= 1"),
        (["baselines", "--table", str(a_file)], "a_file"),
    ]
    for argv, culprit in cases:
        assert culprit in _cli_error(capsys, argv), argv
    # A start that fails leaves nothing behind, so the corrected command is not refused.
    for name in ("r1", "r2", "r3", "r4"):
        assert not (tmp_path / name).exists()


def test_debug_flag_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="devices"):
        cli(["--debug", "train", "--out", str(tmp_path / "r"), "--devices", "3"])


# ----------------------------------------------------------------------------- tables


def _default_table_arrays():
    with np.load(table_format.default_table_path(), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(str(arrays.pop("metadata")))


def _mutate_meta(key, value):
    def f(arrays, meta):
        meta[key] = value
    return f


def _mutate_array(key, value):
    def f(arrays, meta):
        arrays[key] = value
    return f


@pytest.mark.parametrize("mutate,culprit", [
    (_mutate_meta("chance_score", "0.1"), "chance_score"),
    (_mutate_meta("chance_score", True), "chance_score"),
    (_mutate_meta("chance_score", None), "chance_score"),
    (_mutate_meta("encoders", ["a", 3, "c"]), "encoders"),
    (_mutate_meta("encoders", "ViT"), "encoders"),
    (_mutate_meta("encoder_compute", [1.0, "x", 2.0]), "encoder_compute"),
    (_mutate_meta("num_classes", "ten"), "num_classes"),
    (_mutate_meta("task", 3), "task"),
    (_mutate_array("snr_db", np.array([str(x) for x in range(81)])), "snr_db"),
    (_mutate_array("score", np.zeros((3, 81), complex)), "score"),
    (lambda a, m: (m.clear(), m.update({"x": 1})), "format"),
])
def test_bad_table_is_a_table_error(tmp_path, mutate, culprit):
    arrays, meta = _default_table_arrays()
    mutate(arrays, meta)
    path = tmp_path / "t.npz"
    np.savez(path, metadata=np.asarray(json.dumps(meta)), **arrays)
    with pytest.raises(table_format.TableError, match=culprit):
        table_format.load_table(path)


def test_table_metadata_not_an_object_is_a_table_error(tmp_path):
    arrays, _ = _default_table_arrays()
    path = tmp_path / "t.npz"
    np.savez(path, metadata=np.asarray("[1, 2]"), **arrays)
    with pytest.raises(table_format.TableError, match="JSON object"):
        table_format.load_table(path)


# ----------------------------------------------------------------------------- Gymnasium

gym_adapter = pytest.importorskip("semcom_jax.env.gym_adapter")


@pytest.mark.parametrize("action,error,culprit", [
    (2.7, TypeError, "2.7"),
    ("3", TypeError, "'3'"),
    (None, TypeError, "None"),
    (float("nan"), TypeError, "nan"),
    (np.float32(1.0), TypeError, "float32"),
    (True, TypeError, "True"),
    (np.array([1, 2]), ValueError, "shape"),
    (2**40, ValueError, str(2**40)),
    (-1, ValueError, "-1"),
    (31, ValueError, "31"),
])
def test_gym_refuses_actions_that_are_not_integers_in_range(action, error, culprit):
    env = gym_adapter.SemComGymEnv(num_users=2, num_rbs=10)
    env.reset(seed=0)
    with pytest.raises(error, match=culprit):
        env.step(action)
    # Integers of any flavour are served.
    for a in (3, np.int64(4), np.array(5)):
        env.reset(seed=0)
        env.step(a)


@pytest.mark.parametrize("actions,error,culprit", [
    (np.array([1.0, 2.0, 3.0]), TypeError, "float64"),
    (np.array([1, 2]), ValueError, "shape"),
    (np.array([1, 2, 99]), ValueError, "99"),
    (["1", "2", "3"], TypeError, "actions"),
])
def test_gym_vector_refuses_bad_actions(actions, error, culprit):
    env = gym_adapter.SemComVectorEnv(3, num_users=2, num_rbs=10)
    env.reset(seed=0)
    with pytest.raises(error, match=culprit):
        env.step(actions)
    env.step(np.array([1, 2, 3]))


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
def test_damaged_run_files_are_named(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text()[:-20])
    with pytest.raises(ValueError, match="metrics.jsonl.*line"):
        files.read_metrics(str(run))
    assert "metrics.jsonl" in _cli_error(capsys, ["plot", str(run)])
    shutil.copy(finished_run / "metrics.jsonl", run / "metrics.jsonl")
    os.remove(run / "baselines.json")
    assert "baselines.json" in _cli_error(capsys, ["plot", str(run)])
    (run / "config.json").write_text("{\"num_users\": 2,")
    assert "config.json" in _cli_error(capsys, ["eval", str(run)])
    # An edited config.json no longer fits the checkpoints: named, and nothing is deleted.
    cfg = json.loads((finished_run / "config.json").read_text())
    cfg["network"]["hidden"] = [16]
    (run / "config.json").write_text(json.dumps(cfg))
    err = _cli_error(capsys, ["eval", str(run)])
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
def test_disk_full_is_one_line_and_the_run_resumes_identically(finished_run, tmp_path, capsys,
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
    err = _cli_error(capsys, ["train", "--config", str(cfg), "--out", str(run), "--no-progress"])
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

