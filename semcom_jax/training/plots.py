"""Plots of a run folder: learning curve with a band over seeds and the baselines, encoder
usage, violation rates. Written as PNG files under ``RUN/plots/``."""

from __future__ import annotations

import os

import numpy as np

from semcom_jax.training.files import BASELINES, read_json, read_metrics


def series(rows, key):
    """(x env steps, per-seed matrix) of a metric, skipping rows where it is missing."""
    rows = [r for r in rows if r.get(key) is not None]
    updates = sorted({r["update"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    by = {(r["update"], r["seed"]): r[key] for r in rows}
    steps = {r["update"]: r["env_steps"] for r in rows}
    mat = np.array([[by.get((u, s), np.nan) for s in seeds] for u in updates], dtype=float)
    return np.array([steps[u] for u in updates], dtype=float), mat


def plot_run(run_dir: str) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir)
    if not rows:
        raise ValueError(f"run {run_dir!r} has no metrics yet")
    baselines = read_json(run_dir, BASELINES)
    out_dir = os.path.join(run_dir, "plots")
    os.makedirs(out_dir, exist_ok=True)
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    panels = (
        (axes[0], "eval_return", "train_return", "return",
         "expected return per episode (eq. 11)", "return"),
        (axes[1], "eval_normalised", "train_normalised", "normalised",
         "normalised (0 random, 1 optimum)", "normalised score"),
    )
    fixed = [k for k in baselines if k.startswith("fixed ")]
    for ax, key, train_key, base_key, ylabel, title in panels:
        x, m = series(rows, key)
        n = m.shape[1]
        seeds = f"{n} seed" + ("s" if n != 1 else "")
        xt, mt = series(rows, train_key)
        if len(xt):
            ax.plot(xt, np.nanmean(mt, axis=1), color="C0", alpha=0.35, linewidth=1,
                    label=f"training (sampled actions, per update; mean of {seeds})")
        ax.plot(x, np.nanmean(m, axis=1), color="C0", marker="o", markersize=4,
                label=f"held-out, greedy (mean of {seeds}; {len(x)} evaluations)")
        if n > 1:
            ax.fill_between(x, np.nanmin(m, axis=1), np.nanmax(m, axis=1), color="C0",
                            alpha=0.2, label="min-max over seeds")
        lines = [("optimum", "k", "--"), ("paper ceiling", "m", "--"), ("greedy", "g", ":"),
                 ("paper greedy", "c", ":")]
        lines += [(name, f"C{4 + i}", (0, (1, 1))) for i, name in enumerate(fixed)]
        lines += [("random", "r", "-.")]
        for name, color, style in lines:
            if name in baselines:  # the paper ones only for the paper observation
                ax.axhline(baselines[name][base_key], linestyle=style, color=color,
                           linewidth=1.2, label=name + (" (optimal RBs, full information)"
                                                        if name.startswith("fixed ") else ""))
        ax.set_xlabel("env steps (one step = one user's decision)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=7.5, frameon=False)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    paths.append(os.path.join(out_dir, "learning_curve.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    share_keys = [k for k in rows[0] if k.startswith("share ")]
    paths.append(_metric_vs_optimum(
        plt, rows, out_dir, "encoder_usage.png",
        [(k, k[len("share "):], baselines["optimum"]["encoder_share"][i])
         for i, k in enumerate(share_keys)],
        "share of served users (training)", "encoder usage (dotted: exact optimum)"))
    paths.append(_metric_vs_optimum(
        plt, rows, out_dir, "violations.png",
        [(k, k.replace("_", " "), baselines["optimum"][k])
         for k in ("delay_violation_rate", "energy_violation_rate", "unserved_rate")],
        "fraction of users (training)", "constraint violations (dotted: exact optimum)"))
    return paths


def _metric_vs_optimum(plt, rows, out_dir, name, curves, ylabel, title) -> str:
    """Seed-mean curves of training metrics, each with its exact-optimum value dotted."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, (key, label, optimum) in enumerate(curves):
        x, m = series(rows, key)
        ax.plot(x, np.nanmean(m, axis=1), color=f"C{i}", marker="o", markersize=2.5,
                label=label)
        ax.axhline(optimum, color=f"C{i}", linestyle=":", alpha=0.7)
    ax.set_xlabel("env steps (one step = one user's decision)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
