"""Checkpoints of the whole runner state (orbax), saved after every chunk of updates.

Saves are synchronous: a chunk's checkpoint is complete before the next chunk starts (an
asynchronous finalisation once raced the next save here)."""

from __future__ import annotations

import errno
import os
import shutil
import warnings

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
    """Saves ``state`` as checkpoint ``step``. A full disk is an ``OSError(ENOSPC)`` naming the
    folder, raised before writing when the free space cannot hold the checkpoint (orbax's own
    failure on a full disk is a burst of tracebacks from its writer threads)."""
    folder = os.fspath(mngr.directory)
    need = int(1.1 * sum(x.nbytes for x in jax.tree.leaves(state))) + 2**20
    if shutil.disk_usage(folder).free < need:
        raise OSError(errno.ENOSPC, f"No space left on device for a checkpoint of {need} bytes",
                      folder)
    try:
        mngr.save(step, args=ocp.args.StandardSave(_non_empty(state)))
        mngr.wait_until_finished()
    except Exception as e:
        if "No space left on device" in str(e) or "os_error_code='28'" in str(e):
            raise OSError(errno.ENOSPC, "No space left on device", folder) from None
        raise


def restore(mngr: ocp.CheckpointManager, step: int, like):
    """The state saved at ``step``, with the structure, shapes, dtypes and shardings of
    ``like`` (a freshly initialised state of the same run)."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, _non_empty(like))
    got = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    return jax.tree.map(lambda t, x: t if x is None else x, like, got,
                        is_leaf=lambda x: x is None)


def restore_latest(mngr: ocp.CheckpointManager, like, where: str = "") -> tuple[int, object]:
    """``(step, state)`` of the newest checkpoint that restores into ``like``; ``(0, like)``
    when there is none. An unreadable newest checkpoint (truncated, corrupted) is reported in a
    warning, and the previous one is used (the damaged one is then removed: it would block the
    next save of its step). When none restores, nothing is removed and the error names the
    folder (a checkpoint that does not fit ``like`` usually means an edited ``config.json``)."""
    where = where or os.fspath(mngr.directory)
    failed = []
    for step in sorted(mngr.all_steps(), reverse=True):
        try:
            state = restore(mngr, step, like)
        except Exception as e:  # orbax raises many types for a damaged file
            failed.append((step, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"))
            continue
        for bad, why in failed:
            warnings.warn(f"checkpoint {bad} of {where} cannot be restored ({why[:120]}); "
                          f"using checkpoint {step}, the newest that can", RuntimeWarning,
                          stacklevel=2)
            _remove(mngr, bad)
        return int(step), state
    if failed:
        raise ValueError(f"no checkpoint of {where} can be restored into this run's state (was "
                         "config.json edited, or are the checkpoints damaged?): "
                         + "; ".join(f"step {s}: {w}" for s, w in failed))
    return 0, like


def _remove(mngr: ocp.CheckpointManager, step: int) -> None:
    if jax.process_index() != 0:
        return
    try:
        mngr.delete(step)
    except Exception:
        shutil.rmtree(os.path.join(os.fspath(mngr.directory), str(step)), ignore_errors=True)
        mngr.reload()
