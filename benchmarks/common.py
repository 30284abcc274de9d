"""Small helpers shared by the benchmark scripts: timing, atomic CSV, machine description."""

from __future__ import annotations

import csv
import os
import platform
import time

import jax

from semcom_jax.atomic import atomic_open


def machine() -> str:
    dev = jax.devices()[0]
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, jax {jax.__version__} on {dev.platform} ({dev.device_kind})"


def best_time(fn, repeats: int) -> float:
    """Smallest wall time of ``repeats`` calls (the machine is shared and noisy)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def write_csv(path: str, rows: list[dict]) -> None:
    if not rows:
        return
    with atomic_open(path, "w") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
