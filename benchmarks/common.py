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
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
