import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from semcom_jax.training import checkpoints, runs
from semcom_jax.agents import networks as nets
from semcom_jax.agents.config import TrainConfig
from semcom_jax.agents.ppo import adapt_kl_coef, gae
from semcom_jax.cli import main as cli

TINY = dict(num_users=2, num_rbs=3, num_envs=16, total_env_steps=16 * 4 * 6, chunk_updates=2,
            eval_episodes=32, hidden=(16,))


def test_gae_matches_a_python_loop():
    rng = np.random.default_rng(0)
    T, B, gamma, lam = 6, 3, 0.9, 0.8
    r = rng.normal(size=(T, B)).astype(np.float32)
    v = rng.normal(size=(T, B)).astype(np.float32)
    d = np.zeros((T, B), bool)
    d[2, 0] = d[5, :] = d[3, 2] = True
    last = rng.normal(size=B).astype(np.float32)
    adv, targ = gae(jnp.asarray(r), jnp.asarray(v), jnp.asarray(d), jnp.asarray(last), gamma, lam)
    expected = np.zeros((T, B))
    for b in range(B):
        running, next_v = 0.0, last[b]
        for t in reversed(range(T)):
            nd = 0.0 if d[t, b] else 1.0
            delta = r[t, b] + gamma * next_v * nd - v[t, b]
            running = delta + gamma * lam * nd * running
            expected[t, b] = running
            next_v = v[t, b]
    np.testing.assert_allclose(np.asarray(adv), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(targ), expected + v, rtol=1e-5, atol=1e-5)


def test_adaptive_kl_rule():
    assert float(adapt_kl_coef(1.0, 0.1, 0.01)) == 2.0
    assert float(adapt_kl_coef(1.0, 0.001, 0.01)) == 0.5
    assert float(adapt_kl_coef(1.0, 0.01, 0.01)) == 1.0


def test_masked_distribution_never_samples_illegal_and_stays_finite():
    logits = jnp.array([[5.0, 1.0, -2.0, 0.3]])
    mask = jnp.array([[False, True, False, True]])
    logp = nets.masked_log_probs(logits, mask)
    assert bool(jnp.all(jnp.isfinite(logp)))
    a = jax.vmap(lambda k: nets.sample(k, logp[0]))(jax.random.split(jax.random.PRNGKey(0), 2000))
    assert set(np.unique(np.asarray(a)).tolist()) <= {1, 3}
    ent = nets.entropy(logp, mask)
    p = np.exp([1.0, 0.3]) / np.exp([1.0, 0.3]).sum()
    assert math.isclose(float(ent[0]), float(-(p * np.log(p)).sum()), rel_tol=1e-5)
    action, lp = nets.sample_masked(jax.random.PRNGKey(1), logits, mask)
    assert int(action[0]) in (1, 3)
    assert math.isclose(float(lp[0]), float(logp[0, int(action[0])]), rel_tol=1e-6)


def test_rollout_actions_are_always_legal():
    exp = runs.Experiment(TrainConfig.of(**TINY))
    state = exp.init_state()
    one = jax.tree.map(lambda ax, x: x if ax is None else x[0], exp.axes, state,
                       is_leaf=lambda x: x is None)
    _, _, _, traj, _ = jax.jit(exp.trainer.experience.collect)(one.params, one)
    legal = jnp.take_along_axis(traj.obs.action_mask, traj.action[..., None], axis=-1)
    assert bool(jnp.all(legal))


@pytest.mark.slow
def test_ppo_learns_a_small_instance(optimised):
    # Measured on three seeds: 0.959-0.960 at this budget, untrained greedy policies -0.14-0.08.
    cfg = TrainConfig.of(num_users=3, num_rbs=4, obs_mode="full", num_envs=256,
                      total_env_steps=61_440, chunk_updates=40, eval_episodes=256)
    exp = runs.Experiment(cfg, compiler_options=optimised)
    state = exp.init_state()
    untrained = float(exp.evaluate(state)["eval_normalised"][0])
    state, metrics, evals = exp.run_chunk(state, cfg.num_updates)
    assert untrained < 0.8 and float(evals["eval_normalised"][0]) >= 0.93


def test_kl_objective_runs_and_adapts():
    exp = runs.Experiment(TrainConfig.of(**{**TINY, "objective": "kl", "kl_target": 1e-6}))
    state, metrics, _ = exp.run_chunk(exp.init_state(), 2)
    assert float(metrics["kl_coef"][0, -1]) > 1.0  # KL above a tiny target doubles the penalty


@pytest.mark.slow
def test_seeds_vmapped_equal_seeds_alone():
    cfg = TrainConfig.of(**{**TINY, "num_seeds": 2})
    exp = runs.Experiment(cfg)
    state, metrics, _ = exp.run_chunk(exp.init_state(), 2)
    alone = exp.trainer.init(exp.seed_keys[1])
    alone, m1 = jax.jit(lambda s: exp.trainer.run(s, 2))(alone)
    np.testing.assert_allclose(np.asarray(metrics["train_return"][1]), np.asarray(m1["train_return"]),
                               rtol=1e-4)
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b[1]), rtol=1e-4, atol=1e-6)


def _final_params(run_dir):
    exp = runs.Experiment.shared(runs.load_config(run_dir))
    m = checkpoints.manager(run_dir)
    fresh = exp.init_state()
    st = checkpoints.restore(m, m.latest_step(), fresh)
    m.close()
    # Same types as a fresh state, weak types included: a resumed run reuses the compiled chunk
    # programs instead of tracing different ones.
    assert [jax.typeof(x) for x in jax.tree.leaves(st)] == [jax.typeof(x)
                                                             for x in jax.tree.leaves(fresh)]
    return st.params


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One tiny run trained through the command line (2 seeds, a --set key), shared by the CLI
    and resume tests."""
    tmp = tmp_path_factory.mktemp("cli")
    cfg_file = tmp / "cfg.json"
    cfg_file.write_text(json.dumps(TINY))
    run = tmp / "run"
    code = cli(["train", "--config", str(cfg_file), "--out", str(run), "--no-progress",
                "--seeds", "2", "--set", "ent_coef=0.02"])
    return code, run, cfg_file


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(cli_run, tmp_path):
    _, full, _ = cli_run
    cfg = runs.load_config(str(full))
    part = tmp_path / "part"
    # Stopped by a compute budget spent by the first chunk (as if killed after it).
    summary = runs.train(cfg, str(part), progress=False, time_limit_s=1e-9)
    assert summary["updates"] == cfg.run.chunk_updates < cfg.num_updates
    assert not (part / "plots").exists()
    runs.train(None, str(part), resume=True, progress=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]  # noqa
    assert strip(runs.read_metrics(str(full))) == strip(runs.read_metrics(str(part)))
    for a, b in zip(jax.tree.leaves(_final_params(full)), jax.tree.leaves(_final_params(part))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert (part / "plots" / "learning_curve.png").exists()


@pytest.mark.slow
def test_cli_verbs_on_a_tiny_config(cli_run, capsys):
    code, run, cfg_file = cli_run
    assert code == 0
    for f in ("config.json", "metrics.csv", "metrics.jsonl", "summary.json", "baselines.json"):
        assert (run / f).exists()
    assert json.loads((run / "config.json").read_text())["ppo"]["ent_coef"] == 0.02
    rows = runs.read_metrics(str(run))
    assert len(rows) == 2 * TrainConfig.of(**TINY).num_updates
    assert cli(["eval", str(run)]) == 0
    out = capsys.readouterr().out
    assert "policy (PPO)" in out and "optimum" in out
    assert cli(["plot", str(run)]) == 0
    assert (run / "plots" / "violations.png").exists()
    assert cli(["baselines", "--users", "3", "--rbs", "2", "--episodes", "16"]) == 0
    # A second train into the same folder is refused rather than mixing two runs.
    assert cli(["train", "--config", str(cfg_file), "--out", str(run), "--no-progress"]) == 2


def test_shared_experiments_are_one_per_config():
    cfg = TrainConfig.of(**TINY)
    exp = runs.Experiment.shared(cfg)
    assert runs.Experiment.shared(TrainConfig.from_dict(json.loads(cfg.to_json()))) is exp
    assert runs.Experiment.shared(TrainConfig.of(**{**TINY, "ent_coef": 0.02})) is not exp


@pytest.mark.parametrize("args,message", [
    (["--set", "learning_rate=0.1"], "learning_rate"),
    (["--set", "num_envs=\"many\""], "num_envs"),
    (["--set", "gamma=1.5"], "gamma"),
    (["--num-envs", "0"], "--num-envs must be >= 1"),  # the flag typed
    (["--set", "env_params={\"tx_power_w\": -1}"], "tx_power_w"),
    (["--config", "/nonexistent.json"], "does not exist"),
])
def test_bad_config_is_refused_with_its_name(tmp_path, capsys, args, message):
    assert cli(["train", "--out", str(tmp_path / "r"), "--no-progress"] + args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


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


def test_set_items_parse_as_json_or_string():
    from semcom_jax.agents.config import parse_set_items

    got = parse_set_items(["lr=0.01", "hidden=[8, 8]", "rng=hash", 'network="set"', "table="])
    assert got == {"lr": 0.01, "hidden": [8, 8], "rng": "hash", "network": "set", "table": ""}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_set_items(["lr"])
