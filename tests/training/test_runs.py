"""Run bookkeeping: one shared Experiment per config, and the summary's first update reaching
0.9."""

import json


from semcom_jax.training import runs
from semcom_jax.agents.config import TrainConfig

TINY = dict(num_users=2, num_rbs=3, num_envs=16, total_env_steps=16 * 4 * 6, chunk_updates=2,
            eval_episodes=32, hidden=(16,))


def test_shared_experiments_are_one_per_config():
    cfg = TrainConfig.of(**TINY)
    exp = runs.Experiment.shared(cfg)
    assert runs.Experiment.shared(TrainConfig.from_dict(json.loads(cfg.to_json()))) is exp
    assert runs.Experiment.shared(TrainConfig.of(**{**TINY, "ent_coef": 0.02})) is not exp


def test_summary_finds_the_first_update_reaching_0_9(tmp_path):
    class Ev:
        ceiling, ceiling_se = "optimum", None
        baselines = {name: {"return": r, "normalised": n, "normalised_ceiling": n,
                            "unserved_rate": 0.0}
                     for name, r, n in (("random", -2.0, 0.0), ("optimum", -1.0, 1.0))}

    cfg = TrainConfig.of(**TINY)
    rows = [{"update": u, "seed": s, "env_steps": u * 10, "wall_time_s": float(u),
             "eval_return": -1.2, "eval_normalised": v, "eval_normalised_ceiling": v,
             "eval_unserved_rate": 0.0, "train_return": 0.0}
            for u, vals in ((1, (0.5, 0.6)), (2, (0.95, 0.86)), (3, (0.92, 0.93)))
            for s, v in enumerate(vals)]
    s = runs.summarise(str(tmp_path), cfg, rows, Ev())
    # seed means: 0.55, 0.905, 0.925 -> first reached at update 2
    assert s["env_steps_to_0.9"] == 20 and s["wall_time_to_0.9_s"] == 2.0
    assert s["final_eval_normalised"] == (0.92 + 0.93) / 2
