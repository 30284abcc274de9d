"""What a reader sees first: the printed report's explanation and the run folder's plots."""

import json
import os


from semcom_jax.baselines import report
from semcom_jax.training import plots

NAMES = ["optimum", "paper ceiling", "paper greedy", "greedy", "fixed ViT-B/32",
         "fixed ViT-B/16", "fixed ViT-L/14", "random"]


def _row(score, share=(0.2, 0.5, 0.3)):
    return {"return": score, "normalised": score, "normalised_ceiling": score,
            "delay_violation_rate": 0.2, "energy_violation_rate": 0.01, "unserved_rate": 0.1,
            "encoder_share": list(share)}


def test_the_report_names_its_oracles_and_says_what_vs_ceiling_means():
    rep = {n: _row(0.9) for n in NAMES}
    text = report.explain(rep, "paper")
    assert "1 = the paper ceiling" in text and "above 1" in text
    oracle_line = [line for line in text.splitlines() if line.startswith("oracles")][0]
    for name in ("optimum", "greedy", "fixed ViT-B/16"):
        assert name in oracle_line
    assert "paper greedy" not in oracle_line and "random" not in oracle_line
    full = report.explain({n: _row(0.9) for n in NAMES if not n.startswith("paper")}, "full")
    assert "1 = the optimum" in full and "greedy" not in full.splitlines()[1]


def test_every_baseline_line_of_the_learning_curve_looks_different():
    looks = [(c, str(s)) for _, c, s, _ in plots._baseline_lines({n: {} for n in NAMES})]
    assert len(looks) == len(NAMES) and len(set(c for c, _ in looks)) == len(NAMES)
    labels = {n: lab for n, _, _, lab in plots._baseline_lines({n: {} for n in NAMES})}
    assert "oracle" in labels["optimum"] and "oracle" in labels["fixed ViT-B/16"]


def test_a_run_folder_plots_three_titled_figures(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    cfg = {"algo": "ppo", "num_users": 5, "num_rbs": 10, "obs_mode": "paper",
           "reward": "terminal", "train_users": []}
    (run / "config.json").write_text(json.dumps(cfg))
    (run / "baselines.json").write_text(json.dumps({n: _row(v) for n, v in zip(
        NAMES, [1.0, 0.93, 0.89, 0.93, 0.97, 0.98, 0.86, 0.0])}))
    rows = []
    for u in range(1, 5):
        row = {"update": u, "seed": 0, "env_steps": 1000 * u, "train_normalised": 0.2 * u,
               "eval_normalised": 0.22 * u, "delay_violation_rate": 0.3, "unserved_rate": 0.1,
               "energy_violation_rate": 0.0, "eval_delay_violation_rate": 0.25,
               "eval_unserved_rate": 0.1, "eval_energy_violation_rate": 0.0}
        for k, name in enumerate(["ViT-B/32", "ViT-B/16", "ViT-L/14"]):
            row[f"share {name}"] = 1 / 3
            row[f"eval share {name}"] = float(k == 1)
        rows.append(row)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    paths = plots.plot_run(str(run))
    assert [os.path.basename(p) for p in paths] == ["learning_curve.png", "encoder_usage.png",
                                                    "violations.png"]
    assert all(os.path.getsize(p) > 10_000 for p in paths)
    assert plots._title(str(run), 3) == ("PPO, U = 5, Q = 10, paper observation, terminal "
                                         "reward, 3 seeds")
