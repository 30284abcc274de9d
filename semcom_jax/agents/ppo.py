"""PPO in one compiled loop (PureJaxRL style): rollout with ``lax.scan`` over a lock-step batch
of envs, GAE, minibatch epochs with optax, all inside ``jit``; seeds are a ``vmap``.

Two objectives: the clipped surrogate (default) and the paper's eq. (13), the surrogate minus an
adaptive KL penalty whose coefficient is doubled or halved after each update (Algorithm 1,
line 8) when the measured KL leaves ``[target / 1.5, 1.5 target]``.

API (shared with SAC and DQN, :class:`~semcom_jax.agents.base.Trainer`):
``trainer = PPO(config, env, env_params)``; ``state = trainer.init(key)``;
``state, metrics = trainer.run(state, num_updates)``; ``trainer.train(key)`` does both at once.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from semcom_jax.agents import networks as nets
from semcom_jax.agents.base import Trainer
from semcom_jax.agents.config import TrainConfig, need
from semcom_jax.agents.episodic import EpisodeExperience
from semcom_jax.agents.rollout import Samples, StepExperience, rollout_metrics
from semcom_jax.env.types import Observation
from semcom_jax.env.wrappers import VecState


OBJECTIVES = ("clip", "kl")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    objective: str = "clip"  # "clip" (PPO-clip) or "kl" (the paper's eq. 13, adaptive penalty)
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 3e-3
    anneal_lr: bool = True
    gamma: float = 1.0
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    kl_target: float = 0.01
    kl_coef_init: float = 1.0

    def validate(self, config: TrainConfig) -> "PPOConfig":
        need(self, self.objective in OBJECTIVES, "objective", f"must be one of {OBJECTIVES}")
        for name in ("update_epochs", "num_minibatches"):
            need(self, getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("lr", "clip_eps", "max_grad_norm", "kl_target", "kl_coef_init"):
            v = getattr(self, name)
            need(self, math.isfinite(v) and v > 0, name, "must be finite and > 0")
        for name in ("ent_coef", "vf_coef"):
            v = getattr(self, name)
            need(self, math.isfinite(v) and v >= 0, name, "must be finite and >= 0")
        for name in ("gamma", "gae_lambda"):
            need(self, 0.0 <= getattr(self, name) <= 1.0, name, "must lie in [0, 1]")
        if config.network.kind == "set":  # minibatches of whole episodes (EpisodeExperience)
            episodes = config.run.episodes_per_rollout * config.run.num_envs
            need(self, episodes % self.num_minibatches == 0, "num_minibatches",
                 f"must divide the episodes per rollout, num_envs * episodes_per_rollout = "
                 f"{episodes} (network 'set' forms minibatches of whole episodes)")
        else:
            need(self, config.steps_per_update % self.num_minibatches == 0, "num_minibatches",
                 f"must divide the rollout size num_envs * rollout steps = "
                 f"{config.steps_per_update}")
        return self


def default_run(keys) -> dict:
    """With the size-free network, the scaling study's settings (64 envs, one episode per
    rollout, 1.2 M steps), measured to reach its quality across sizes (docs/results.md): the
    per-RB network's 1024 envs x 2 episodes make so few updates at U = 50 that the policy
    stays below greedy."""
    if keys.get("network") == "set":
        return {"num_envs": 64, "episodes_per_rollout": 1, "total_env_steps": 1_200_000}
    return {}


@struct.dataclass
class RunnerState:
    params: Any
    opt_state: Any
    vstate: VecState
    obs: Observation
    key: jax.Array
    kl_coef: jnp.ndarray  # () float32, the adaptive penalty coefficient (objective "kl")
    update: jnp.ndarray  # () int32, updates done; the same for every seed
    env_params: Any  # EnvParams the envs run with: in the state, so a vmap can vary them


def gae(rewards, values, dones, last_value, gamma: float, lam: float):
    """Generalised advantage estimation, time-major ``(T, B)``; ``dones[t]`` ends the episode
    after step t. Returns ``(advantages, value_targets)``."""

    def body(carry, xs):
        next_adv, next_value = carry
        r, v, d = xs
        not_done = 1.0 - d
        delta = r + gamma * next_value * not_done - v
        adv = delta + gamma * lam * not_done * next_adv
        return (adv, v), adv

    _, adv = jax.lax.scan(body, (jnp.zeros_like(last_value), last_value),
                          (rewards, values, dones.astype(jnp.float32)), reverse=True)
    return adv, adv + values


def normalise(advantages):
    """Advantages normalised over the minibatch."""
    return (advantages - advantages.mean()) / (advantages.std() + 1e-8)


def ppo_objective(logits, value, mask, mb: Samples, config: PPOConfig, kl_coef):
    """``(loss, aux)``, means over the samples ``mb``, from the network's outputs on them
    (``logits``, ``value`` and the legal ``mask``); ``mb.advantages`` already normalised (over
    the whole minibatch)."""
    logp_all = nets.masked_log_probs(logits, mask)
    logp = jnp.take_along_axis(logp_all, mb.traj.action[:, None], axis=-1)[:, 0]
    log_ratio = logp - mb.traj.log_prob
    ratio = jnp.exp(log_ratio)
    advantages = mb.advantages
    # KL(old || new) by the unbiased, non-negative estimator (ratio - 1) - log ratio.
    approx_kl = jnp.mean(ratio - 1.0 - log_ratio)
    if config.objective == "clip":
        clipped = jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps)
        pg_loss = -jnp.mean(jnp.minimum(ratio * advantages, clipped * advantages))
    else:
        pg_loss = -jnp.mean(ratio * advantages) + kl_coef * approx_kl
    v_loss = 0.5 * jnp.mean((value - mb.targets) ** 2)
    ent = jnp.mean(nets.entropy(logp_all, mask))
    loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * ent
    return loss, {"pg_loss": pg_loss, "value_loss": v_loss, "entropy": ent, "approx_kl": approx_kl}


def ppo_loss(params, apply_fn, mb: Samples, config: PPOConfig, kl_coef):
    """``(loss, aux)`` of one minibatch of steps ``mb`` whose transitions hold their
    observations, through ``apply_fn(params, obs) -> (logits, value)``. Advantages are
    normalised per minibatch."""
    logits, value = apply_fn(params, mb.traj.obs)
    return ppo_objective(logits, value, mb.traj.obs.action_mask,
                         mb.replace(advantages=normalise(mb.advantages)), config, kl_coef)


def adapt_kl_coef(kl_coef, kl, target):
    """Algorithm 1, line 8: the usual adaptive rule of the KL-penalty PPO."""
    kl_coef = jnp.where(kl > 1.5 * target, kl_coef * 2.0, kl_coef)
    return jnp.where(kl < target / 1.5, kl_coef / 2.0, kl_coef)


class PPO(Trainer):
    adam_eps = 1e-5

    def __init__(self, config: TrainConfig, env, env_params):
        super().__init__(config, env, env_params)
        # How experience is stored and re-scored, chosen once: by episode for the size-free
        # network (its inputs rebuilt from O(U + Q) per episode), else step by step.
        if isinstance(self.network, nets.SetActorCritic):
            self.experience = EpisodeExperience(self.network, self.venv,
                                                config.run.episodes_per_rollout,
                                                config.agent.num_minibatches)
        else:
            self.experience = StepExperience(self.network, self.venv, config.num_steps)

    def learning_rate(self):
        cfg = self.config.agent
        total_grad_steps = self.config.num_updates * cfg.update_epochs * cfg.num_minibatches
        return optax.linear_schedule(cfg.lr, 0.0, total_grad_steps) if cfg.anneal_lr else cfg.lr

    # ------------------------------------------------------------------ state

    def init_learner(self, key: jax.Array):
        return self.init_network(key)

    def make_state(self, params, obs, vstate, key, env_params) -> RunnerState:
        return RunnerState(params=params, opt_state=self.optimizer.init(params), vstate=vstate,
                           obs=obs, key=key, kl_coef=jnp.float32(self.config.agent.kl_coef_init),
                           update=jnp.zeros((), jnp.int32), env_params=env_params)

    def policy_logits(self, params, obs: Observation):
        return self.network.apply(params, obs)[0]

    # ------------------------------------------------------------------ one update

    def update(self, state: RunnerState, _=None):
        cfg, experience = self.config.agent, self.experience
        obs, vstate, key, traj, stored = experience.collect(state.params, state)
        _, last_value = self.network.apply(state.params, obs)
        adv, targets = gae(traj.reward, traj.value, traj.done, last_value, cfg.gamma,
                           cfg.gae_lambda)
        samples = experience.samples(traj, adv, targets)
        grads_of = experience.grads_fn(
            stored, state.env_params,
            lambda logits, value, mask, mb: ppo_objective(logits, value, mask, mb, cfg,
                                                          state.kl_coef))
        num_items = experience.num_items
        per_minibatch = num_items // cfg.num_minibatches

        def epoch(carry, _):
            params, opt_state, key = carry
            key, k_perm = jax.random.split(key)
            perm = jax.random.permutation(k_perm, num_items)
            mbs = jax.tree.map(
                lambda x: x[perm].reshape((cfg.num_minibatches, per_minibatch) + x.shape[1:]),
                samples)

            def minibatch(carry, mb: Samples):
                params, opt_state = carry
                grads, aux = grads_of(params, mb.replace(advantages=normalise(mb.advantages)))
                updates, opt_state = self.optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), aux

            (params, opt_state), aux = jax.lax.scan(minibatch, (params, opt_state), mbs)
            return (params, opt_state, key), aux

        (params, opt_state, key), aux = jax.lax.scan(
            epoch, (state.params, state.opt_state, key), None, cfg.update_epochs)
        aux = jax.tree.map(jnp.mean, aux)
        kl_coef = (adapt_kl_coef(state.kl_coef, aux["approx_kl"], cfg.kl_target)
                   if cfg.objective == "kl" else state.kl_coef)
        new_state = state.replace(params=params, opt_state=opt_state, vstate=vstate, obs=obs,
                                  key=key, kl_coef=kl_coef, update=state.update + 1)
        return new_state, {**rollout_metrics(traj, self.env.num_encoders), "kl_coef": kl_coef,
                           **aux}
