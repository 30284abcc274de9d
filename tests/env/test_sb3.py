"""Stable-Baselines3 through the vector adapter (needs the ``bench`` extra; skipped without it)."""

import pytest

sb3_contrib = pytest.importorskip("sb3_contrib")
torch = pytest.importorskip("torch")

from stable_baselines3.common.callbacks import BaseCallback  # noqa: E402
from stable_baselines3.common.env_checker import check_env  # noqa: E402  (single env)
from stable_baselines3.common.vec_env import VecEnv  # noqa: E402

from semcom_jax.env.gym_adapter import SemComGymEnv  # noqa: E402
from semcom_jax.env.sb3_adapter import SB3VecEnv  # noqa: E402


class CountInvalid(BaseCallback):
    def __init__(self):
        super().__init__()
        self.steps = self.invalid = self.terminal = 0

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        self.steps += len(infos)
        self.invalid += sum(i["invalid_action"] for i in infos)
        self.terminal += sum("terminal_observation" in i for i in infos)
        return True


@pytest.mark.slow
@pytest.mark.parametrize("flatten", [False, True])
def test_maskable_ppo_trains_through_the_vector_adapter_with_no_invalid_action(flatten):
    venv = SB3VecEnv(64, num_users=3, num_rbs=2, flatten=flatten)  # U > Q: RBs run out
    assert isinstance(venv, VecEnv) and venv.num_envs == 64
    model = sb3_contrib.MaskablePPO("MultiInputPolicy" if not flatten else "MlpPolicy", venv,
                                    n_steps=12, batch_size=256, n_epochs=2, seed=0, verbose=0,
                                    device="cpu")
    counter = CountInvalid()
    model.learn(64 * 12 * 4, callback=counter)
    assert counter.steps >= 3000 and counter.invalid == 0
    assert counter.terminal == counter.steps // 3  # every env ends every 3 steps
    masks = venv.env_method("action_masks")
    assert len(masks) == 64 and masks[0].dtype == bool


def test_flat_single_env_passes_sb3_check_env_without_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the Dict form draws "unconventional shape" for rb_features
        check_env(SemComGymEnv(num_users=3, num_rbs=4, flatten=True), warn=True)
