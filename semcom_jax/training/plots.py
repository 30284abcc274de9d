"""Plots of a run folder: learning curve with a band over seeds and the baselines, encoder
usage, violation rates. Written as PNG files under ``RUN/plots/``."""

from __future__ import annotations

import os

import numpy as np

from semcom_jax.agents.config import TrainConfig
from semcom_jax.training.files import BASELINES, CONFIG, read_json, read_metrics


def series(rows, key):
    """(x env steps, per-seed matrix) of a metric, skipping rows where it is missing."""
    rows = [r for r in rows if r.get(key) is not None]
    updates = sorted({r["update"] for r in rows})
    seeds = sorted({r["seed"] for r in rows})
    by = {(r["update"], r["seed"]): r[key] for r in rows}
    steps = {r["update"]: r["env_steps"] for r in rows}
    mat = np.array([[by.get((u, s), np.nan) for s in seeds] for u in updates], dtype=float)
    return np.array([steps[u] for u in updates], dtype=float), mat


# Each baseline's look, all distinct; an oracle's label says what it knows that the policy may
# not. ``paper`` marks names whose meaning depends on the observation.
_BASELINE_STYLE = {
    "optimum": ("k", "--", "optimum (oracle: full information, exact)"),
    "paper ceiling": ("m", "-.", "paper ceiling (the best a paper-observation policy can do)"),
    "greedy": ("g", ":", "greedy (sees the true terms)"),
    "paper greedy": ("tab:olive", (0, (6, 2)), "paper greedy (sees what the paper observation "
                                                "reveals)"),
    "random": ("r", (0, (3, 1, 1, 1)), "random legal actions"),
}
_FIXED_STYLES = [("tab:brown", (0, (1, 1))), ("tab:cyan", (0, (4, 1, 1, 1, 1, 1))),
                 ("tab:gray", (0, (8, 3)))]


def _title(run_dir: str, n_seeds: int) -> str:
    try:
        cfg = TrainConfig.from_dict(read_json(run_dir, CONFIG))
    except ValueError:  # a run folder without a readable config still plots, untitled
        return ""
    ec = cfg.env
    sizes = (f"trained on U in {list(ec.users_range)}, Q in {list(ec.rbs_range)}, evaluated at "
             if ec.sized else "")
    return (f"{cfg.algo.upper()}, {sizes}U = {ec.num_users}, Q = {ec.num_rbs}, "
            f"{ec.obs_mode} observation, {ec.reward} reward, {n_seeds} seed"
            + ("s" if n_seeds != 1 else ""))


def _baseline_lines(baselines):
    fixed = [k for k in baselines if k.startswith("fixed ")]
    out = []
    for name, (color, style, label) in _BASELINE_STYLE.items():
        if name in baselines:
            out.append((name, color, style, label))
    for (color, style), name in zip(_FIXED_STYLES * 3, fixed):
        out.append((name, color, style, f"{name} (oracle: its best RBs, full information)"))
    return out


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

    x, m = series(rows, "eval_normalised")
    xt, mt = series(rows, "train_normalised")
    n = m.shape[1]
    seeds = f"{n} seed" + ("s" if n != 1 else "")
    lines = _baseline_lines(baselines)
    fig, axes = plt.subplots(1, 2, figsize=(12.5, 5))
    for ax, zoom in ((axes[0], False), (axes[1], True)):
        if len(xt):
            ax.plot(xt, np.nanmean(mt, axis=1), color="C0", alpha=0.35, linewidth=1,
                    label=f"policy in training (sampled actions, mean of {seeds})")
        ax.plot(x, np.nanmean(m, axis=1), color="C0", marker="o", markersize=4, linewidth=2,
                label=f"policy, held out (greedy; mean of {seeds}; {len(x)} evaluations)")
        if n > 1:
            ax.fill_between(x, np.nanmin(m, axis=1), np.nanmax(m, axis=1), color="C0",
                            alpha=0.2, label="min-max over seeds")
        for name, color, style, label in lines:
            ax.axhline(baselines[name]["normalised"], linestyle=style, color=color,
                       linewidth=1.4, label=label)
        ax.set_xlabel("env steps (one step = one user's decision)")
        ax.grid(alpha=0.3)
        if zoom:
            # The policy's second half and every baseline but random: the close contest.
            late = np.nanmean(m, axis=1)[len(x) // 2:]
            close = [baselines[k]["normalised"] for k, *_ in lines if k != "random"]
            lo = min([*close, *late[np.isfinite(late)]]) if len(late) else min(close)
            hi = max([*close, 1.0])
            pad = max(0.01, 0.08 * (hi - lo))
            ax.set_ylim(lo - pad, hi + pad)
            ax.set_title("zoomed on the policy and the close baselines", fontsize=10)
        else:
            ax.set_ylabel("normalised score (0 random, 1 optimum; eq. 11 return)")
            ax.set_title("whole range", fontsize=10)
    fig.suptitle(_title(run_dir, n), fontsize=11)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.24, 1, 0.96))
    paths.append(os.path.join(out_dir, "learning_curve.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    names = [k[len("share "):] for k in rows[0] if k.startswith("share ")]
    paths.append(_metric_vs_optimum(
        plt, rows, out_dir, "encoder_usage.png",
        [(f"share {k}", f"eval share {k}", k, baselines["optimum"]["encoder_share"][i])
         for i, k in enumerate(names)],
        "share of served users", "encoder usage", _title(run_dir, n)))
    opt = baselines["optimum"]
    for r in rows:  # delay violations of served users, apart from the unserved (which count
        # as delay violations too)
        for pre in ("", "eval_"):
            if r.get(f"{pre}delay_violation_rate") is not None and \
                    r.get(f"{pre}unserved_rate") is not None:
                r[f"{pre}served_delay_violation_rate"] = (r[f"{pre}delay_violation_rate"]
                                                           - r[f"{pre}unserved_rate"])
    paths.append(_metric_vs_optimum(
        plt, rows, out_dir, "violations.png",
        [("served_delay_violation_rate", "eval_served_delay_violation_rate",
          "delay budget missed (served users)",
          opt["delay_violation_rate"] - opt["unserved_rate"]),
         ("energy_violation_rate", "eval_energy_violation_rate", "energy budget missed",
          opt["energy_violation_rate"]),
         ("unserved_rate", "eval_unserved_rate", "unserved (no RB)", opt["unserved_rate"])],
        "fraction of users", "constraint violations", _title(run_dir, n)))
    return paths


def _metric_vs_optimum(plt, rows, out_dir, name, curves, ylabel, title, suptitle) -> str:
    """Per curve: the training metric (sampled actions, solid), the greedy policy's on the
    held-out episodes (dashed, squares) and the exact optimum's (dotted), in one colour."""
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, (key, eval_key, label, optimum) in enumerate(curves):
        x, m = series(rows, key)
        ax.plot(x, np.nanmean(m, axis=1), color=f"C{i}", marker="o", markersize=2.5,
                label=f"{label}: training (sampled)")
        xe, me = series(rows, eval_key)
        if len(xe):
            ax.plot(xe, np.nanmean(me, axis=1), color=f"C{i}", marker="s", markersize=4,
                    linestyle="--", label=f"{label}: greedy policy, held out")
        ax.axhline(optimum, color=f"C{i}", linestyle=":", alpha=0.8,
                   label=f"{label}: exact optimum")
    ax.set_xlabel("env steps (one step = one user's decision)")
    ax.set_ylabel(ylabel)
    ax.set_title(f"{suptitle}\n{title}" if suptitle else title, fontsize=9)
    ax.legend(fontsize=7, ncol=1, loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out_dir, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
