"""The learned codec on Fashion-MNIST: channel-robust training and the noise attention module
against plain features at every SNR, and MED's memory against plain fine-tuning and a plain
replay buffer.

    python experiments/codec_study.py                       # ~15 min on a 2-core CPU
    python experiments/codec_study.py --out experiments/results/codec --reuse

Part 1 builds three tables with ``semcom-jax tables train-encoders --nam``: plain training,
channel-robust training, and channel-robust training with the NAM in the loop
(``--nam-in-training``; same encoders, data, epochs and seed), each carrying both receivers'
figures, and compares the six combinations per encoder over the SNR grid. The last table is
the one shipped as ``fashion-mnist``. Part 2 trains one codec through a class-incremental
stream (classes 0-4, then 5-9) with no memory, a reservoir replay buffer, and MED's short/long-term
memory of the same total size, and measures how much of the first phase's accuracy is kept.
Needs Debian's ``dataset-fashion-mnist`` (``--images digits`` runs the same on scikit-learn's
digits in a minute). Outputs: tables, ``robustness.csv``, ``continual.csv``, ``summary.json``,
``robustness.png``, ``continual.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from semcom_jax.atomic import atomic_write
from semcom_jax.builders import encoders as build
from semcom_jax.codec import data, med
from semcom_jax.codec.train import TrainSettings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
from common import check_reuse, machine, output_folder, write_csv  # noqa: E402

PHASES = ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
# plain and channel-robust contrastive training, and robust training with the NAM in the loop
TRAININGS = ("plain", "robust", "joint")
TRAINING_LABELS = {"plain": "plain", "robust": "robust", "joint": "robust, NAM in training"}


def robustness(out: str, images: str, epochs: int, seed: int) -> tuple[list, dict]:
    rows, timing = [], {}
    for training in TRAININGS:
        path = os.path.join(out, f"{images}_{training}.npz")
        if not os.path.exists(path):
            t0 = time.time()
            flags = f"--images {images} --epochs {epochs} --seed {seed} --nam" + {
                "plain": " --plain", "robust": "", "joint": " --nam-in-training"}[training]
            spec = build.EncoderTableSpec(images=images, robust=training != "plain", nam=True,
                                          epochs=epochs, seed=seed,
                                          nam_in_training=training == "joint")
            build.build(path, spec,
                        command=f"semcom-jax tables train-encoders --out {path} {flags}")
            timing[training] = round(time.time() - t0, 1)
            print(f"built {path} in {timing[training]:.0f} s")
        else:
            print(f"reusing {path}")
        with np.load(path) as z:
            meta = json.loads(str(z["metadata"]))
            for receiver, acc, score in (("cosine", z["accuracy"], z["score"]),
                                         ("nam", z["accuracy_nam"], z["score_nam"])):
                for k, name in enumerate(meta["encoders"]):
                    for g, s in enumerate(z["snr_db"]):
                        rows.append({"encoder": name, "training": training,
                                     "receiver": receiver, "snr_db": float(s),
                                     "accuracy": float(acc[k, g]),
                                     "score": float(score[k, g])})
    return rows, timing


def _at(rows, encoder, training, receiver, snr):
    for r in rows:
        if (r["encoder"], r["training"], r["receiver"], r["snr_db"]) == (encoder, training,
                                                                         receiver, snr):
            return r["accuracy"]
    raise KeyError((encoder, training, receiver, snr))


def continual(out: str, images: str, epochs: int, memory: int, seed: int,
              asymmetric: str = "off", novelty: bool = False, replay: str = "class",
              evict: str = "herding") -> list:
    """Fine-tuning, reservoir replay and MED on the class-incremental stream; ``asymmetric``:
    "off", "on" (every method with ER-ACE's asymmetric cross-entropy, rows named "+ ACE") or
    "both"; ``novelty``: MED moves examples by VLM-CSC's relevance rule instead of herding;
    ``replay``, ``evict``: MED's replay and long-term eviction rules
    (:class:`semcom_jax.codec.med.ShortLongMemory`)."""
    path = os.path.join(out, "continual.csv")
    if os.path.exists(path):
        print(f"reusing {path}")
        import csv
        with open(path) as fh:
            return [{k: (float(v) if k not in ("method",) else v) for k, v in r.items()}
                    for r in csv.DictReader(fh)]
    train, test = data.load(images, "train"), data.load(images, "test")
    # The middle encoder (ViT-S/7 on Fashion-MNIST): the shape every continual figure in
    # docs/codec.md was measured with, before the family's smallest encoder was narrowed.
    spec = build.family_for(train.images)[1]
    settings = TrainSettings(epochs=epochs, seed=seed, batch_size=data.BATCH_SIZE[images])
    short = memory // 10
    label = "MED, novelty transfers" if novelty else "MED (short + long term)"
    if replay != "class":  # rows name only the rules that differ from the defaults
        label += f", {replay} replay"
    if evict != "herding":
        label += f", {evict} eviction"
    methods = {"fine-tuning": lambda: None,
               "reservoir replay": lambda: med.ReservoirMemory(memory, seed),
               label: lambda: med.ShortLongMemory(short, memory - short, novelty=novelty,
                                                  replay=replay, evict=evict, seed=seed)}
    flags = {"off": [False], "on": [True], "both": [False, True]}[asymmetric]
    rows = []
    for ace, (base, make) in [(f, m) for f in flags for m in methods.items()]:
        name, mem = base + (" + ACE" if ace else ""), make()
        t0 = time.time()
        res = med.continual_run(spec, train, test, PHASES, mem, settings, asymmetric=ace)
        first, second = res[0].accuracy[0], res[1].accuracy[0]
        rows.append({"method": name, "memory": 0 if mem is None else memory,
                     "phase1_acc_after_phase1": first, "phase1_acc_after_phase2": second,
                     "kept": second / first, "phase2_acc_after_phase2": res[1].accuracy[1],
                     "seconds": round(time.time() - t0, 1)})
        print(f"{name}: first-phase accuracy {first:.3f} -> {second:.3f} "
              f"(kept {second / first:.1%}), second phase {res[1].accuracy[1]:.3f}")
    write_csv(path, rows)
    return rows


def plots(out: str, rows: list, crow: list) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    encoders = list(dict.fromkeys(r["encoder"] for r in rows))
    fig, axes = plt.subplots(1, max(1, len(encoders)), figsize=(5 * max(1, len(encoders)), 4),
                             squeeze=False)
    for ax, enc in zip(axes[0], encoders):
        for training in TRAININGS:
            for receiver, ls in (("cosine", "-"), ("nam", "--")):
                pts = [(r["snr_db"], r["accuracy"]) for r in rows if r["encoder"] == enc
                       and r["training"] == training and r["receiver"] == receiver]
                x, y = zip(*pts)
                ax.plot(x, y, ls, label=f"{TRAINING_LABELS[training]} + {receiver}")
        ax.axhline(0.1, color="k", ls=":", lw=1, label="chance")
        ax.set_title(enc)
        ax.set_xlabel("SNR of the feature channel (dB)")
        ax.set_ylabel("zero-shot accuracy (test split)")
        ax.set_xlim(-20, 30)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    if encoders:
        fig.savefig(os.path.join(out, "robustness.png"), dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    names = [r["method"] for r in crow]
    ax.bar(np.arange(len(names)) - 0.2, [r["phase1_acc_after_phase1"] for r in crow], 0.4,
           label="first phase, after it")
    ax.bar(np.arange(len(names)) + 0.2, [r["phase1_acc_after_phase2"] for r in crow], 0.4,
           label="first phase, after the second")
    ax.set_xticks(np.arange(len(names)), names, fontsize=8)
    ax.set_ylabel("accuracy on the first phase's classes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "continual.png"), dpi=110)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default="fashion-mnist", choices=data.DATASETS)
    ap.add_argument("--epochs", type=int, default=6, help="encoder training epochs")
    ap.add_argument("--continual-epochs", type=int, default=2, help="epochs per phase")
    ap.add_argument("--memory", type=int, default=1000, help="replay memory size (examples)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="output folder (default: a fresh runs/...)")
    ap.add_argument("--reuse", action="store_true", help="reuse finished parts in --out")
    ap.add_argument("--asymmetric", choices=("off", "on", "both"), default="off",
                    help="continual learning with ER-ACE's asymmetric cross-entropy: off, on "
                         "(every method with it) or both")
    ap.add_argument("--med-novelty", action="store_true",
                    help="MED moves examples to its long-term memory by VLM-CSC's relevance "
                         "rule (eq. 15-16: the least like what it holds) instead of herding")
    ap.add_argument("--med-replay", choices=med.REPLAY_RULES, default="class",
                    help="MED's replay within a class: uniform (class, the default) or by each "
                         "example's weight (weighted, the earlier rule)")
    ap.add_argument("--med-evict", choices=med.EVICTION_RULES, default="herding",
                    help="what MED drops when its long-term memory overflows: weighted kernel "
                         "herding's leftovers (default) or random examples, equal class shares")
    ap.add_argument("--only-continual", action="store_true",
                    help="part 2 only (e.g. another --memory); writes continual.csv/.png")
    a = ap.parse_args(argv)
    out = output_folder(a.out, "codec_study")
    check_reuse(out, a.reuse, "tables and continual-learning results")
    t0 = time.time()
    if a.only_continual:
        crow = continual(out, a.images, a.continual_epochs, a.memory, a.seed, a.asymmetric,
                         a.med_novelty, a.med_replay, a.med_evict)
        plots(out, [], crow)
        print(f"wrote {out}")
        return
    rows, timing = robustness(out, a.images, a.epochs, a.seed)
    write_csv(os.path.join(out, "robustness.csv"), rows)
    crow = continual(out, a.images, a.continual_epochs, a.memory, a.seed, a.asymmetric,
                     a.med_novelty, a.med_replay, a.med_evict)
    encoders = list(dict.fromkeys(r["encoder"] for r in rows))
    summary = {"machine": machine(), "images": a.images, "epochs": a.epochs,
               "build_seconds": timing, "seconds": round(time.time() - t0, 1),
               "robust_nam_vs_plain": {}}
    for enc in encoders:
        entry = {}
        for snr in (0.0, 30.0):
            for training in TRAININGS:
                for receiver in ("cosine", "nam"):
                    entry[f"{training}_{receiver}_{snr:g}dB"] = _at(rows, enc, training,
                                                                    receiver, snr)
        for training in ("robust", "joint"):  # with a NAM receiver, against plain features
            entry[f"{training}_gain_0dB_points"] = 100 * (
                entry[f"{training}_nam_0dB"] - entry["plain_cosine_0dB"])
            entry[f"{training}_loss_30dB_points"] = 100 * (
                entry["plain_cosine_30dB"] - entry[f"{training}_nam_30dB"])
        entry["ceiling_0dB_points"] = 100 * (entry["plain_cosine_30dB"]
                                             - entry["plain_cosine_0dB"])
        summary["robust_nam_vs_plain"][enc] = entry
        print(f"{enc}: 0 dB plain {entry['plain_cosine_0dB']:.3f} -> robust+NAM "
              f"{entry['robust_nam_0dB']:.3f} ({entry['robust_gain_0dB_points']:+.1f} points), "
              f"NAM in training {entry['joint_nam_0dB']:.3f} "
              f"({entry['joint_gain_0dB_points']:+.1f}); 30 dB {entry['plain_cosine_30dB']:.3f} "
              f"-> {entry['robust_nam_30dB']:.3f} / {entry['joint_nam_30dB']:.3f}")
    summary["continual"] = crow
    atomic_write(os.path.join(out, "summary.json"), json.dumps(summary, indent=2))
    plots(out, rows, crow)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
