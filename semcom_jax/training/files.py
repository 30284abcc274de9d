"""The files of a run folder: ``config.json``, ``baselines.json``, ``metrics.jsonl`` and
``metrics.csv`` (one row per update and seed), ``summary.json``. Every file is written
atomically, and by the first process only (multi-host runs share the folder)."""

from __future__ import annotations

import csv
import io
import json
import os

import jax

from semcom_jax.agents.config import TrainConfig
from semcom_jax.atomic import atomic_write as _atomic_write

CONFIG = "config.json"
BASELINES = "baselines.json"
METRICS = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
SUMMARY = "summary.json"


def atomic_write(path: str, text: str) -> None:
    """Run files are written by the first process only; checkpoints are written by all
    processes together (orbax coordinates them)."""
    if jax.process_index() == 0:
        _atomic_write(path, text)


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_metrics(run_dir: str, rows: list[dict]) -> None:
    atomic_write(os.path.join(run_dir, METRICS), "".join(json.dumps(r) + "\n" for r in rows))
    atomic_write(os.path.join(run_dir, METRICS_CSV), _csv_text(rows))


def read_metrics(run_dir: str) -> list[dict]:
    path = os.path.join(run_dir, METRICS)
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_json(run_dir: str, name: str, data) -> None:
    atomic_write(os.path.join(run_dir, name), json.dumps(data, indent=2))


def read_json(run_dir: str, name: str):
    with open(os.path.join(run_dir, name)) as fh:
        return json.load(fh)


def has_config(run_dir: str) -> bool:
    return os.path.exists(os.path.join(run_dir, CONFIG))


def load_config(run_dir: str) -> TrainConfig:
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir!r} is not a run folder: it has no {CONFIG}")
    return TrainConfig.from_file(path)
