"""GPU and TPU readiness without a GPU: the env step and one whole training update of every
algorithm lower for the ``cuda`` and ``tpu`` platforms with ``jax.export`` (cross-platform
lowering runs on this CPU-only machine), so nothing CPU-only hides inside the compiled program."""

import re

import jax
import pytest
from jax import export

from semcom_jax.agents.config import TrainConfig
from semcom_jax.env import SemComEnv, VecEnv
from semcom_jax.env.padded import RandomSizeEnv
from semcom_jax.training.experiment import make_env, make_trainer

PLATFORMS = ("cuda", "tpu")


def _custom_calls(exported) -> set:
    return set(re.findall(r"stablehlo\.custom_call @([\w.]+)", exported.mlir_module()))


@pytest.mark.parametrize("make", [lambda: SemComEnv(5, 10, obs_mode="full"),
                                  lambda: SemComEnv(5, 10, score="features"),
                                  lambda: RandomSizeEnv((2, 5), (3, 10), flat_features=False)])
def test_env_step_and_reset_lower_for_gpu_and_tpu(make):
    env = make()
    params = env.default_params
    vec = VecEnv(env, 64)
    _, state = jax.eval_shape(vec.reset, jax.random.PRNGKey(0), params)
    actions = jax.ShapeDtypeStruct((64,), "int32")
    for fn, args in ((vec.reset, (jax.random.PRNGKey(0), params)),
                     (vec.step, (jax.random.PRNGKey(1), state, actions, params))):
        exported = export.export(jax.jit(fn), platforms=PLATFORMS)(*args)
        assert exported.platforms == PLATFORMS
        assert not {c for c in _custom_calls(exported) if "cpu" in c.lower()
                    or "lapack" in c.lower() or "ducc" in c.lower()}


@pytest.mark.parametrize("algo", ["ppo", "sac", "dqn"])
def test_one_training_update_lowers_for_gpu_and_tpu(algo):
    extra = {} if algo == "ppo" else dict(buffer_size=512, batch_size=32)
    cfg = TrainConfig.for_algo(algo, num_users=3, num_rbs=4, num_envs=16, hidden=(16,),
                               total_env_steps=16 * 6 * 4, **extra)
    env = make_env(cfg)
    trainer = make_trainer(cfg, env, env.make_params(cfg.env.env_params))
    state = jax.eval_shape(trainer.init, jax.random.PRNGKey(0))  # shapes only: nothing runs
    exported = export.export(jax.jit(lambda s: trainer.run(s, 1)), platforms=PLATFORMS)(state)
    assert exported.platforms == PLATFORMS
    assert len(exported.out_avals) == len(jax.tree.leaves(jax.eval_shape(
        lambda s: trainer.run(s, 1), state)))
    assert not {c for c in _custom_calls(exported) if "cpu" in c.lower()
                or "lapack" in c.lower() or "ducc" in c.lower()}
