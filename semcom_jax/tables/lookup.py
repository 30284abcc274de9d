"""In-graph look-ups of a task table: the score of an encoder at an SNR, by linear interpolation
on the table's grid. End values hold outside the grid (the task score saturates at both ends of
a wide grid; the default grid spans -40..40 dB)."""

from __future__ import annotations

import jax.numpy as jnp

from semcom_jax.tables.format import TaskTable


def interp_score(table: TaskTable, encoder, snr_db) -> jnp.ndarray:
    """Task score of ``encoder`` (int array) at ``snr_db`` (same shape), by linear interpolation."""
    grid = table.snr_db
    g = grid.shape[0]
    idx = jnp.clip(jnp.searchsorted(grid, snr_db, side="right") - 1, 0, g - 2)
    x0 = grid[idx]
    x1 = grid[idx + 1]
    w = jnp.clip((snr_db - x0) / (x1 - x0), 0.0, 1.0)
    y0 = table.score[encoder, idx]
    y1 = table.score[encoder, idx + 1]
    return y0 + w * (y1 - y0)


def interp_all_encoders(table: TaskTable, snr_db) -> jnp.ndarray:
    """Scores of every encoder, shape ``(K,) + snr_db.shape``."""
    ks = jnp.arange(table.num_encoders).reshape((-1,) + (1,) * jnp.ndim(snr_db))
    return interp_score(table, ks, jnp.broadcast_to(snr_db, ks.shape[:1] + jnp.shape(snr_db)))
