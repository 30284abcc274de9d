"""The paper's Fig. 2 from any table: per-encoder task score (and accuracy) against SNR.

    python experiments/fig2_accuracy_vs_snr.py                        # the embedded default table
    python experiments/fig2_accuracy_vs_snr.py --table clip.npz regen.npz --out results/fig2

One figure per table: classification tables show zero-shot accuracy and mean log p(true) against
SNR; regeneration tables the CLIP similarity of regenerated images; the chance level is drawn.
The values are also written as CSV (one row per encoder and SNR).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from semcom_jax.tables import default_table_path, load_table

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
from common import output_folder, write_csv  # noqa: E402


def plot_table(path: str, out_dir: str) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = load_table(path)
    snr = np.asarray(t.data.snr_db)
    score = np.asarray(t.data.score)
    stem = os.path.splitext(os.path.basename(path))[0]
    panels = []
    if t.accuracy is not None:
        panels.append(("zero-shot accuracy", t.accuracy, None))
    label = ("mean log p(true class)" if t.task == "classification"
             else "CLIP similarity of regenerated image")
    panels.append((label, score, float(t.data.chance_score)))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (ylabel, values, chance) in zip(axes[0], panels):
        for k, name in enumerate(t.encoders):
            ax.plot(snr, values[k], marker="." if len(snr) < 30 else None, label=name)
        if chance is not None:
            ax.axhline(chance, color="k", ls=":", lw=1, label="chance (unserved)")
        ax.set_xlabel("SNR of the feature channel (dB)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    import textwrap
    fig.suptitle(textwrap.fill(f"{stem}: {t.task}, source {t.metadata['source']} "
                               f"({t.metadata.get('dataset', '')})", 110), fontsize=9)
    fig.tight_layout()
    os.makedirs(out_dir, exist_ok=True)
    png = os.path.join(out_dir, f"fig2_{stem}.png")
    fig.savefig(png, dpi=110)
    plt.close(fig)
    rows = []
    for k, name in enumerate(t.encoders):
        for g, s in enumerate(snr):
            row = {"table": stem, "task": t.task, "encoder": name, "snr_db": float(s),
                   "score": float(score[k, g])}
            if t.accuracy is not None:
                row["accuracy"] = float(t.accuracy[k, g])
            rows.append(row)
    csv_path = os.path.join(out_dir, f"fig2_{stem}.csv")
    write_csv(csv_path, rows)
    return [png, csv_path]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", nargs="+", default=[default_table_path()])
    ap.add_argument("--out", default=None,
                    help="output folder (default: a fresh runs/fig2_accuracy_vs_snr-<time>/; the committed "
                         "figures: --out experiments/results/fig2)")
    a = ap.parse_args(argv)
    a.out = output_folder(a.out, "fig2_accuracy_vs_snr")
    for path in a.table:
        for p in plot_table(path, a.out):
            print(p)


if __name__ == "__main__":
    main()
