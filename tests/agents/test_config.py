"""Configs per concern: nested files round-trip, the flat files of earlier versions still load
and resume, per-algorithm defaults, a new algorithm is one module plus one registration, and
bad configs and config files are refused naming the key or the file."""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from semcom_jax.agents.base import Trainer
from semcom_jax.agents.config import (ALGORITHMS, EnvConfig, NetworkConfig, RunConfig,
                                      TrainConfig, need, read_config_file, register)
from semcom_jax.agents.dqn import DQNConfig
from semcom_jax.agents.ppo import PPOConfig
from semcom_jax.agents.rollout import collect, rollout_metrics
from semcom_jax.agents.sac import SACConfig
from semcom_jax.cli.main import main as cli
from semcom_jax.training import runs

DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data")


def test_each_concern_is_its_own_frozen_config():
    cfg = TrainConfig.for_algo("sac", num_users=7, network="set", hidden=(8,), num_envs=32,
                               tau=0.1)
    assert isinstance(cfg.env, EnvConfig) and cfg.env.num_users == 7
    assert isinstance(cfg.network, NetworkConfig) and cfg.network.kind == "set"
    assert isinstance(cfg.run, RunConfig) and cfg.run.num_envs == 32
    assert isinstance(cfg.agent, SACConfig) and cfg.agent.tau == 0.1
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.env.num_users = 3
    # Each algorithm's config holds its own keys only.
    assert not hasattr(cfg.agent, "clip_eps") and not hasattr(PPOConfig(), "tau")
    assert hasattr(DQNConfig(), "eps_start") and not hasattr(SACConfig(), "eps_start")


def test_nested_file_round_trips_and_is_nested_by_concern():
    cfg = TrainConfig.for_algo("ppo", network="set", train_users=(2, 6), hidden=(16, 8),
                               env_params={"rb_bandwidth_hz": 2e5}).validate()
    d = json.loads(cfg.to_json())
    assert set(d) == {"algo", "env", "network", "run", "ppo"}
    assert d["network"]["kind"] == "set" and d["ppo"]["clip_eps"] == 0.2
    assert TrainConfig.from_dict(d) == cfg
    assert TrainConfig.for_algo("ppo", **cfg.keys()) == cfg


@pytest.mark.parametrize("name", ["config_flat_ppo.json", "config_flat_sac.json"])
def test_flat_files_of_earlier_versions_still_load(name):
    """Committed files written by the single-class config (every key of every algorithm at the
    top level): the keys of this algorithm are read, the other algorithms' ignored."""
    with open(os.path.join(DATA, name)) as fh:
        flat = json.load(fh)
    assert "clip_eps" in flat and "buffer_size" in flat and "env" not in flat
    cfg = TrainConfig.from_file(os.path.join(DATA, name))
    assert cfg.algo == flat["algo"]
    for key, value in cfg.keys().items():
        want = flat["network" if key == "network" else key]
        assert value == (tuple(want) if isinstance(want, list) else want), key


def test_unknown_and_foreign_keys():
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="buffer_size"):  # strict outside the flat files
        TrainConfig.for_algo("ppo", buffer_size=10)
    with pytest.raises(ValueError, match="sections"):
        TrainConfig.from_dict({"algo": "ppo", "env": {}, "sac": {}})
    with pytest.raises(ValueError, match="config key 'algo' must be one of"):
        TrainConfig.for_algo("a2c")


def test_set_names_a_key_of_another_algorithm(tmp_path, capsys):
    code = cli(["train", "--out", str(tmp_path / "r"), "--set", "buffer_size=10"])
    assert code == 2
    assert "--set buffer_size: not a key of algorithm 'ppo'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_per_algorithm_defaults_and_explicit_keys_win():
    assert TrainConfig.for_algo("sac").run.num_envs == 256
    assert TrainConfig.for_algo("dqn", num_envs=8).run.num_envs == 8
    assert TrainConfig.for_algo("ppo").run.num_envs == 1024
    assert TrainConfig.for_algo("ppo", network="set").run.num_envs == 64
    assert TrainConfig.of(network="set").run.num_envs == 1024  # of(): field defaults only


@pytest.mark.slow  # compiles a tiny run twice
def test_a_flat_config_of_an_earlier_version_resumes(tmp_path):
    """A run folder whose config.json is in the flat format resumes, and ends where an
    uninterrupted run ends."""
    old = os.path.join(DATA, "config_flat_ppo.json")
    cfg = TrainConfig.from_file(old).replace(chunk_updates=1)
    full, part = tmp_path / "full", tmp_path / "part"
    runs.train(cfg, str(full), progress=False)
    summary = runs.train(cfg, str(part), progress=False, time_limit_s=1e-9)
    assert summary["updates"] == 1 < cfg.num_updates
    with open(old) as fh:
        flat = {**json.load(fh), "chunk_updates": 1}
    (part / "config.json").write_text(json.dumps(flat))
    runs.train(None, str(part), resume=True, progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]  # noqa
    assert strip(runs.read_metrics(str(full))) == strip(runs.read_metrics(str(part)))


# ---------------------------------------------------------------------- a new algorithm

@dataclasses.dataclass(frozen=True)
class UniformConfig:
    lr: float = 1e-3  # the Trainer builds an optimiser from these two
    max_grad_norm: float = 1.0
    rng: str = "x"  # a key that is already the env's: refused by register

    def validate(self, config):
        need(self, self.max_grad_norm > 0, "max_grad_norm", "must be > 0")
        return self


@struct.dataclass
class UniformState:
    params: object
    vstate: object
    obs: object
    key: jax.Array
    update: jnp.ndarray
    env_params: object


class Uniform(Trainer):
    """Uniformly random legal actions; learns nothing."""

    value_head = False

    def init_learner(self, key):
        return self.init_network(key)

    def make_state(self, params, obs, vstate, key, env_params):
        return UniformState(params, vstate, obs, key, jnp.zeros((), jnp.int32), env_params)

    def policy_logits(self, params, obs):
        return jnp.zeros(obs.action_mask.shape)

    def update(self, state, _=None):
        act = lambda k, o: (self.env.actions.uniform_legal(k, o.action_mask), {})  # noqa
        obs, vstate, key, traj = collect(self.venv, act, state.obs, state.vstate, state.key,
                                         state.env_params, self.config.num_steps)
        return (state.replace(obs=obs, vstate=vstate, key=key, update=state.update + 1),
                rollout_metrics(traj, self.env.num_encoders))


def test_a_new_algorithm_is_one_registration(tmp_path):
    with pytest.raises(ValueError, match="rng"):
        register("uniform", Uniform, UniformConfig)
    no_optimiser = dataclasses.make_dataclass("NoLr", [("lr", float, 1e-3)], frozen=True,
                                              namespace={"validate": UniformConfig.validate})
    with pytest.raises(ValueError, match="max_grad_norm"):
        register("uniform", Uniform, no_optimiser)
    assert "uniform" not in ALGORITHMS
    config_cls = dataclasses.make_dataclass(
        "UniformConfig2", [("lr", float, 1e-3), ("max_grad_norm", float, 1.0)], frozen=True,
        namespace={"validate": UniformConfig.validate})
    register("uniform", Uniform, config_cls, defaults={"num_envs": 8})
    try:
        cfg = TrainConfig.for_algo("uniform", num_users=2, num_rbs=3, total_env_steps=8 * 4 * 2,
                                   eval_episodes=8, ceiling_draws=0, hidden=(8,))
        assert cfg.run.num_envs == 8 and cfg.updates_per_chunk == 1
        summary = runs.train(cfg, str(tmp_path / "run"), progress=False)
        assert summary["updates"] == cfg.num_updates == 2
        saved = json.loads((tmp_path / "run" / "config.json").read_text())
        assert saved["algo"] == "uniform" and saved["uniform"]["max_grad_norm"] == 1.0
        rows = runs.read_metrics(str(tmp_path / "run"))
        assert len(rows) == 2 and all(np.isfinite(r["train_return"]) for r in rows)
        assert rows[-1]["eval_normalised"] is not None  # evaluated against the baselines
    finally:
        ALGORITHMS.pop("uniform", None)


def test_shipped_old_fixture_is_unchanged():
    """The flat fixtures stand for files users have on disk: they must not be regenerated."""
    src = os.path.join(DATA, "config_flat_ppo.json")
    with open(src) as fh:
        assert len(json.load(fh)) == 49  # the single class's 49 keys


def test_set_items_parse_as_json_or_string():
    from semcom_jax.agents.config import parse_set_items

    got = parse_set_items(["lr=0.01", "hidden=[8, 8]", "rng=hash", 'network="set"', "table="])
    assert got == {"lr": 0.01, "hidden": [8, 8], "rng": "hash", "network": "set", "table": ""}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_set_items(["lr"])


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
