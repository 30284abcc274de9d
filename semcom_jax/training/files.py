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
    """The rows of ``metrics.jsonl`` ([] before the first chunk); a damaged file is named."""
    path = os.path.join(run_dir, METRICS)
    if not os.path.exists(path):
        return []
    rows = []
    for i, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path!r} is damaged: line {i} is not valid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not {"update", "seed", "env_steps"} <= set(row):
            raise ValueError(f"{path!r} is damaged: line {i} is not a metrics row")
        rows.append(row)
    return rows


def write_json(run_dir: str, name: str, data) -> None:
    atomic_write(os.path.join(run_dir, name), json.dumps(data, indent=2))


def read_json(run_dir: str, name: str):
    """A JSON file of the run folder; a missing or damaged one is named."""
    path = os.path.join(run_dir, name)
    if not os.path.isfile(path):
        raise ValueError(f"run folder {run_dir!r} has no {name}")
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise ValueError(f"{path!r} is damaged: not valid JSON ({e})") from None


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except UnicodeDecodeError:
        raise ValueError(f"{path!r} is damaged: not UTF-8 text") from None


def has_config(run_dir: str) -> bool:
    return os.path.exists(os.path.join(run_dir, CONFIG))


def has_progress(run_dir: str) -> bool:
    """Whether a run folder holds finished work (metrics or a checkpoint). A folder with only a
    ``config.json`` is a start that failed before its first chunk; a new run may replace it."""
    ckpt = os.path.join(run_dir, "checkpoints")
    return (os.path.exists(os.path.join(run_dir, METRICS))
            or (os.path.isdir(ckpt) and any(not n.startswith(".") for n in os.listdir(ckpt))))


def start_run(run_dir: str, config: TrainConfig) -> None:
    """Writes ``config.json`` of a new run (replacing a failed start's)."""
    os.makedirs(run_dir, exist_ok=True)
    atomic_write(os.path.join(run_dir, CONFIG), config.to_json())


def load_config(run_dir: str) -> TrainConfig:
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir!r} is not a run folder: it has no {CONFIG}")
    return TrainConfig.from_file(path)
