"""Damaged or malformed tables are a TableError naming what is wrong."""

import json

import numpy as np
import pytest

from semcom_jax.tables import format as table_format


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
