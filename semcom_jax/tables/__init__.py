"""Task tables: what each encoder's received feature is worth at each SNR.

``format`` (file format, containers, validating loader, the embedded default), ``lookup``
(interpolation on the SNR grid, in-graph) and ``feature_channel`` (the noisy feature
channel and CLIP zero-shot classification, in-graph). The data file of the default table is
``data/default_table.npz``.
"""

from semcom_jax.tables.feature_channel import (corrupt_feature, sampled_log_prob_true,
                                               zero_shot_log_probs)
from semcom_jax.tables.format import (FeatureSet, Table, TableError, TableWarning,
                                      TaskTable,
                                      default_table_path, load_default_table, load_table,
                                      save_table)
from semcom_jax.tables.lookup import interp_all_encoders, interp_score

__all__ = ["FeatureSet", "Table", "TableError", "TableWarning", "TaskTable", "corrupt_feature",
           "default_table_path", "interp_all_encoders", "interp_score", "load_default_table",
           "load_table", "sampled_log_prob_true", "save_table", "zero_shot_log_probs"]
