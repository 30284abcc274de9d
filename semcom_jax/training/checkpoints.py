"""Checkpoints of the whole runner state (orbax), saved after every chunk of updates.

Saves are synchronous: a chunk's checkpoint is complete before the next chunk starts (an
asynchronous finalisation once raced the next save here)."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


def manager(run_dir: str, max_to_keep: int = 2) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(os.path.join(os.path.abspath(run_dir), "checkpoints"),
                                 options=ocp.CheckpointManagerOptions(
                                     max_to_keep=max_to_keep, enable_async_checkpointing=False))


def _non_empty(state):
    """Orbax refuses zero-size arrays (e.g. the flat features of an env built without them);
    they hold nothing, so they are left out of the checkpoint and rebuilt from the template."""
    return jax.tree.map(lambda x: None if x.size == 0 else x, state)


def save(mngr: ocp.CheckpointManager, step: int, state) -> None:
    mngr.save(step, args=ocp.args.StandardSave(_non_empty(state)))
    mngr.wait_until_finished()


def restore(mngr: ocp.CheckpointManager, step: int, like):
    """The state saved at ``step``, with the structure, shapes, dtypes and shardings of
    ``like`` (a freshly initialised state of the same run)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _non_empty(like))
    got = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    return jax.tree.map(lambda t, x: t if x is None else x, like, got,
                        is_leaf=lambda x: x is None)
