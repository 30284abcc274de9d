"""Small helpers shared by the benchmark scripts: timing, atomic CSV, machine description."""

from __future__ import annotations

import csv
import os
import platform
import time

import jax

from semcom_jax.atomic import atomic_open
from semcom_jax.cli.bench import best_time  # noqa: F401  (re-exported for the scripts)


def machine() -> str:
    dev = jax.devices()[0]
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {dev.platform} ({dev.device_kind})"


def write_csv(path: str, rows: list[dict]) -> None:
    if not rows:
        return
    with atomic_open(path, "w") as fh:
        # Every key of every row, in first-seen order (a row may carry a note the others lack).
        fields = list(dict.fromkeys(k for row in rows for k in row))
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def output_folder(out: str | None, name: str) -> str:
    """``--out`` (a folder, created) or, by default, a fresh ``runs/<name>-<time>/``, so that a
    run never mixes with or silently skips over earlier results."""
    if out is None:
        out = os.path.join("runs", f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    if os.path.exists(out) and not os.path.isdir(out):
        raise SystemExit(f"--out {out!r} is a file; --out names a folder")
    os.makedirs(out, exist_ok=True)
    return out


def check_reuse(out: str, reuse: bool, what: str) -> list[str]:
    """The entries of ``out`` that a resumable script would reuse: refused unless ``reuse``
    (``--reuse``), and counted out loud when allowed."""
    found = sorted(os.listdir(out)) if os.path.isdir(out) else []
    if found and not reuse:
        raise SystemExit(f"{out} already holds {len(found)} entries: pass --reuse to reuse its "
                         f"finished {what} (said out loud), or choose another --out")
    if found:
        print(f"--reuse: {len(found)} entries found in {out}; finished {what} are reused, "
              "unfinished ones resumed")
    return found
