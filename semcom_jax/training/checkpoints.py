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


def save(mngr: ocp.CheckpointManager, step: int, state) -> None:
    mngr.save(step, args=ocp.args.StandardSave(state))
    mngr.wait_until_finished()


def restore(mngr: ocp.CheckpointManager, step: int, like):
    """The state saved at ``step``, with the structure, shapes, dtypes and shardings of
    ``like`` (a freshly initialised state of the same run)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
    return mngr.restore(step, args=ocp.args.StandardRestore(abstract))
