import json
import math
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.tables import (TableError, default_table_path, interp_score, load_default_table,
                               load_table,
                               sampled_log_prob_true, save_table)


@pytest.fixture(scope="module")
def table():
    return load_default_table()


def _arrays_and_meta(path):
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays.pop("metadata")))
    return arrays, meta


def test_default_table_is_synthetic_and_calibrated(table):
    assert table.metadata["source"] == "synthetic"
    assert "SYNTHETIC" in table.metadata["how"]
    assert table.encoders == ["ViT-B/32", "ViT-B/16", "ViT-L/14"]
    f = table.data.features
    assert f.image_features.shape[0] == 3 and list(np.asarray(f.feature_dim)) == [512, 512, 768]
    # Noise-free zero-shot accuracy of the stored features, recomputed here from the arrays.
    for k, target in enumerate((0.913, 0.916, 0.962)):
        d = int(f.feature_dim[k])
        img = np.asarray(f.image_features[k, :, :d])
        txt = np.asarray(f.text_features[k, :, :d])
        pred = np.argmax(img @ txt.T / np.linalg.norm(txt, axis=1), axis=1)
        acc = np.mean(pred == np.asarray(f.labels))
        assert abs(acc - target) < 0.006, (k, acc, target)
    # Scores saturate near the clean log p(true) at high SNR and the bigger model is more robust.
    score = np.asarray(table.data.score)
    assert np.all(score[:, -1] > score[:, 0])
    i0 = int(np.argmin(np.abs(np.asarray(table.data.snr_db) - 0.0)))
    assert score[2, i0] > score[0, i0] and score[2, i0] > score[1, i0]


def test_interpolation_hits_grid_and_is_linear_between(table):
    grid = np.asarray(table.data.snr_db)
    score = np.asarray(table.data.score)
    k = jnp.int32(1)
    assert math.isclose(float(interp_score(table.data, k, jnp.float32(grid[10]))), score[1, 10],
                        rel_tol=1e-6)
    mid = 0.5 * (grid[10] + grid[11])
    assert math.isclose(float(interp_score(table.data, k, jnp.float32(mid))),
                        0.5 * (score[1, 10] + score[1, 11]), rel_tol=1e-5)
    # ends hold their values
    assert math.isclose(float(interp_score(table.data, k, jnp.float32(-500.0))), score[1, 0], rel_tol=1e-6)
    assert math.isclose(float(interp_score(table.data, k, jnp.float32(500.0))), score[1, -1], rel_tol=1e-6)


def test_feature_channel_mean_matches_table(table):
    """Sampled scores (features mode) average to the table's expected score."""
    snr_db = 0.0
    g = int(np.argmin(np.abs(np.asarray(table.data.snr_db) - snr_db)))
    n = table.data.features.num_images
    keys = jax.random.split(jax.random.PRNGKey(3), 4 * n)
    idx = jnp.tile(jnp.arange(n), 4)
    lp = jax.jit(jax.vmap(lambda kk, i: sampled_log_prob_true(
        kk, table.data.features, 2, i, jnp.float32(10 ** (snr_db / 10)))))(keys, idx)
    assert abs(float(jnp.mean(lp)) - float(table.data.score[2, g])) < 0.1


def test_save_load_round_trip(tmp_path, table):
    arrays, meta = _arrays_and_meta(default_table_path())
    out = tmp_path / "t.npz"
    save_table(out, arrays, meta)
    t2 = load_table(out)
    np.testing.assert_array_equal(np.asarray(t2.data.score), np.asarray(table.data.score))
    assert t2.metadata == table.metadata


@pytest.fixture()
def small():
    arrays = {"snr_db": np.array([-10.0, 0.0, 10.0], np.float32),
              "score": np.array([[-2.0, -1.0, -0.5], [-1.5, -0.7, -0.2]], np.float32)}
    meta = {"format": "semcom-table", "version": 1, "task": "classification",
            "encoders": ["a", "b"], "chance_score": -2.3, "source": "test"}
    return arrays, meta


@pytest.mark.parametrize("mutate,message", [
    (lambda a, m: a.update(snr_db=np.array([0.0, -1.0, 2.0], np.float32)), "strictly increasing"),
    (lambda a, m: a.update(score=np.ones((3, 3), np.float32)), "expected \\(num_encoders=2"),
    (lambda a, m: a.update(score=np.array([[np.nan, 0, 0], [0, 0, 0]], np.float32)), "non-finite"),
    (lambda a, m: m.update(task="poetry"), "task"),
    (lambda a, m: m.pop("chance_score"), "chance_score"),
    (lambda a, m: a.update(image_features=np.ones((2, 4, 8), np.float32)), "incomplete"),
    (lambda a, m: a.pop("score"), "missing array 'score'"),
])
def test_invalid_tables_are_refused(tmp_path, small, mutate, message):
    arrays, meta = small
    mutate(arrays, meta)
    with pytest.raises(TableError, match=message):
        save_table(tmp_path / "bad.npz", arrays, meta)
    assert not (tmp_path / "bad.npz").exists()
    # Also when the bad file is written by someone else and loaded.
    path = tmp_path / "other.npz"
    np.savez(path, metadata=np.array(json.dumps(meta)), **arrays)
    with pytest.raises(TableError, match=message):
        load_table(path)


def test_missing_corrupt_and_truncated_files(tmp_path, small):
    with pytest.raises(TableError, match="does not exist"):
        load_table(tmp_path / "nope.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(TableError, match="corrupt or truncated"):
        load_table(tmp_path / "junk.npz")
    arrays, meta = small
    save_table(tmp_path / "ok.npz", arrays, meta)
    data = (tmp_path / "ok.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(TableError, match="corrupt or truncated"):
        load_table(tmp_path / "cut.npz")
    with zipfile.ZipFile(tmp_path / "nometa.npz", "w") as z:
        with z.open("snr_db.npy", "w") as fh:
            np.save(fh, arrays["snr_db"])
    with pytest.raises(TableError, match="metadata"):
        load_table(tmp_path / "nometa.npz")


def test_synthetic_builder_writes_a_valid_calibrated_table(tmp_path):
    from semcom_jax.builders import synthetic

    out = tmp_path / "syn.npz"
    meta = synthetic.build(str(out), seed=3, images_per_class=20, noise_draws=1,
                           snr_lo_db=-20.0, snr_hi_db=20.0, snr_step_db=10.0)
    t = load_table(out)
    assert t.metadata["source"] == "synthetic" and t.data.score.shape == (3, 5)
    for measured, target in zip(meta["measured_clean_accuracy"], meta["target_clean_accuracy"]):
        assert abs(measured - target) <= 0.011  # 200 images: 0.5% steps, plus fp16 rounding
    assert np.all(np.diff(t.accuracy, axis=1) >= -0.05)  # accuracy grows with SNR
