"""The table builder of encoders trained here (builders/encoders.py, ``semcom-jax tables
train-encoders``) on scikit-learn digits: a valid table that says how it was made, resumed from
parts, refused bad input, and the shipped measured table selectable by name."""

import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("sklearn")

from semcom_jax.builders import encoders as build  # noqa: E402
from semcom_jax.codec import model as M  # noqa: E402
from semcom_jax.tables.format import NAMED_TABLES, TableError, load_table  # noqa: E402


# One table build serves the builder tests: stopped during the second encoder, then resumed
# (the CLI test repeats it with the same settings, so it reuses the compiled programs).
# the shipped table's configuration: robust training with the NAM in the loop, NAM figures
BUILD = dict(images="digits", nam=True, epochs=4, features_per_class=5, snr_lo_db=-10,
             snr_hi_db=20, snr_step_db=10, draws=2, nam_in_training=True)
CLI_FLAGS = ["--images", "digits", "--nam", "--epochs", "4", "--features-per-class", "5",
             "--snr-min", "-10", "--snr-max", "20", "--snr-step", "10", "--draws", "2",
             "--no-progress", "--nam-in-training"]


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("codec") / "digits.npz")
    real = build.train_and_measure
    first, second = [], []

    def stopping(spec, *a, **k):
        first.append(spec.name)
        if len(first) == 2:
            raise _Stop  # the build dies during the second encoder
        return real(spec, *a, **k)

    build.train_and_measure = stopping
    try:
        with pytest.raises(_Stop):
            build.build(out, build.EncoderTableSpec(**BUILD), progress=False)
        stopped_with_parts = (not os.path.exists(out), os.path.isdir(out + ".parts"))
        build.train_and_measure = lambda spec, *a, **k: second.append(spec.name) or real(
            spec, *a, **k)
        meta = build.build(out, build.EncoderTableSpec(**BUILD), progress=False)
    finally:
        build.train_and_measure = real
    return out, meta, stopped_with_parts, second


@pytest.mark.slow  # builds a table: three encoders trained
def test_built_table_is_valid_and_says_how_it_was_made(built):
    out, meta, _, _ = built
    t = load_table(out)
    assert t.encoders == [s.name for s in M.DIGITS_FAMILY]
    macs = [s.macs(8, 8) for s in M.DIGITS_FAMILY]
    assert meta["encoder_compute"] == pytest.approx([m / macs[0] for m in macs])
    assert meta["encoder_feature_bits"] == [32 * s.feature_dim for s in M.DIGITS_FAMILY]
    assert t.metadata["source"] == "measured" and t.metadata["receiver"] == "cosine"
    assert t.metadata["training"]["robust"] is True and t.metadata["noise_attention"]
    assert t.metadata["training"]["nam_weight"] == build.JOINT_NAM_WEIGHT
    assert "a NAM in the loop" in t.metadata["how"]
    assert t.data.features.num_images == 50 and np.bincount(
        np.asarray(t.data.features.labels)).tolist() == [5] * 10
    assert t.metadata["chance_score"] == pytest.approx(math.log(0.1))
    assert np.all(np.diff(np.asarray(t.data.score), axis=1) >= -1e-6)  # monotone in SNR
    assert np.asarray(t.accuracy)[:, -1].min() > 0.5
    with np.load(out) as z:
        assert z["score_nam"].shape == z["score"].shape
    assert not os.path.exists(out + ".parts")  # parts are removed once the table is written


@pytest.mark.slow  # builds a table: three encoders trained
def test_env_runs_on_the_built_table_and_refuses_a_nam_receiver(built, tmp_path):
    from semcom_jax.env import SemComEnv

    out = built[0]
    env = SemComEnv(3, 4, table=load_table(out), score="features")
    params = env.default_params
    assert params.encoder_compute == tuple(load_table(out).metadata["encoder_compute"])
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    _, _, reward, _, _ = env.step_env(jax.random.PRNGKey(1), state, jnp.int32(0), params)
    assert np.isfinite(float(reward))
    with np.load(out) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("metadata")))
    meta["receiver"] = "noise-attention"
    nam_path = tmp_path / "nam.npz"
    np.savez(nam_path, metadata=np.array(json.dumps(meta)), **arrays)
    SemComEnv(3, 4, table=load_table(nam_path))  # score="table" is fine
    with pytest.raises(ValueError, match="noise-attention"):
        SemComEnv(3, 4, table=load_table(nam_path), score="features")


@pytest.mark.slow  # builds a table: three encoders trained
def test_builder_resumes_from_parts_and_refuses_bad_input(built):
    out, _, (no_table_yet, parts_kept), second = built
    assert no_table_yet and parts_kept  # a stopped build leaves no table, keeps its parts
    assert second == [s.name for s in M.DIGITS_FAMILY[1:]]  # the finished one was reused
    with pytest.raises(ValueError, match="receiver='nam' needs nam=True"):
        build.build(out, build.EncoderTableSpec(**{**BUILD, "nam": False, "receiver": "nam"}))
    with pytest.raises(ValueError, match="draws"):
        build.build(out, build.EncoderTableSpec(**{**BUILD, "draws": 0}))
    with pytest.raises(ValueError, match="unknown image set"):
        build.build(out, build.EncoderTableSpec(**{**BUILD, "images": "cifar"}))
    with pytest.raises(ValueError, match="no encoder family for 5x5"):
        build.family_for(np.zeros((2, 5, 5)))


# ----------------------------------------------------------------------------- shipped table


def test_shipped_measured_table_is_selectable_by_name():
    from semcom_jax.agents.config import TrainConfig

    t = load_table("fashion-mnist")
    assert t.metadata["source"] == "measured" and "Fashion-MNIST" in t.metadata["dataset"]
    assert len(t.encoders) == 3 and t.data.features is not None
    dm = t.metadata["encoder_compute"]
    acc = np.asarray(t.accuracy)[:, -1]
    assert dm[0] == 1.0 and dm[0] < dm[1] < dm[2]
    # the first goal: the encoders differ in clean accuracy, the costlier the better
    assert acc[0] + 0.01 < acc[1] and acc[1] + 0.01 < acc[2]
    assert load_table("synthetic").metadata["source"] != "measured"
    TrainConfig.of(table="fashion-mnist", score="features").validate()
    with pytest.raises(TableError, match="shipped tables"):
        load_table("no-such-table")
    assert set(NAMED_TABLES) == {"synthetic", "fashion-mnist"}


@pytest.mark.slow  # builds a table: three encoders trained
def test_cli_builds_a_table_and_refuses_bad_input(tmp_path, capsys, monkeypatch, built):
    from semcom_jax.cli.main import main as cli

    out = str(tmp_path / "cli.npz")
    common = ["tables", "train-encoders", "--out", out] + CLI_FLAGS
    assert cli(common) == 0
    assert "accuracy at the highest SNR" in capsys.readouterr().out
    t = load_table(out)
    assert t.metadata["command"].startswith("semcom-jax tables train-encoders")
    # the same settings through the CLI and the Python API give the same table
    np.testing.assert_array_equal(np.asarray(t.data.score), np.asarray(load_table(built[0]).data.score))
    assert cli(common + ["--receiver", "nam"]) == 0
    assert load_table(out).metadata["receiver"] == "noise-attention"
    assert cli(common + ["--draws", "0"]) == 2
    assert "draws must be >= 1" in capsys.readouterr().err
    monkeypatch.setenv("SEMCOM_FASHION_MNIST", str(tmp_path / "nowhere"))
    assert cli(["tables", "train-encoders", "--out", out, "--no-progress"]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err
