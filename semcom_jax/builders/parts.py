"""Per-checkpoint results of a table build, kept beside the output until the table is written.

A build writes one part file per finished checkpoint (atomically) into ``<out>.parts/``; a
rerun with the same settings skips checkpoints whose part matches (resume), and the folder is
removed once the table itself has been written. A failed build removes nothing it finished, and
the output table only ever appears complete.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from semcom_jax.atomic import atomic_open


class PartStore:
    def __init__(self, out: str):
        self.dir = os.fspath(out) + ".parts"

    def _path(self, index: int) -> str:
        return os.path.join(self.dir, f"{index:02d}.npz")

    def load(self, index: int, settings: dict):
        """The arrays of part ``index`` if it exists and was made with ``settings``, else None."""
        path = self._path(index)
        if not os.path.exists(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            saved = json.loads(str(arrays.pop("settings")))
        except Exception:  # a damaged part is recomputed, never trusted
            return None
        return arrays if saved == json.loads(json.dumps(settings)) else None

    def save(self, index: int, settings: dict, arrays: dict) -> None:
        os.makedirs(self.dir, exist_ok=True)
        with atomic_open(self._path(index), "wb") as fh:
            np.savez(fh, settings=np.array(json.dumps(settings)), **arrays)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
