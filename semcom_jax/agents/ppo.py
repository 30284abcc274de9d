"""PPO in one compiled loop (PureJaxRL style): rollout with ``lax.scan`` over a lock-step batch
of envs, GAE, minibatch epochs with optax, all inside ``jit``; seeds are a ``vmap``.

Two objectives: the clipped surrogate (default) and the paper's eq. (13), the surrogate minus an
adaptive KL penalty whose coefficient is doubled or halved after each update (Algorithm 1,
line 8) when the measured KL leaves ``[target / 1.5, 1.5 target]``.

API: ``trainer = PPO(config, env, env_params)``; ``state = trainer.init(key)``;
``state, metrics = trainer.run(state, num_updates)``; ``trainer.train(key)`` does both at once.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct

from semcom_jax.agents import networks as nets
from semcom_jax.agents.config import TrainConfig
from semcom_jax.agents.rollout import rollout_metrics, seed_axes
from semcom_jax.env import SemComEnv
from semcom_jax.params import EnvParams
from semcom_jax.wrappers import VecEnv, VecState
from semcom_jax.types import Observation


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


@struct.dataclass
class Transition:
    features: jnp.ndarray  # (B, F)
    rb_features: jnp.ndarray  # (B, Q, 3)
    mask: jnp.ndarray  # (B, A)
    action: jnp.ndarray  # (B,)
    log_prob: jnp.ndarray  # (B,)
    value: jnp.ndarray  # (B,)
    reward: jnp.ndarray  # (B,)
    done: jnp.ndarray  # (B,)
    delay_violation: jnp.ndarray  # (B,)
    energy_violation: jnp.ndarray  # (B,)
    encoder: jnp.ndarray  # (B,) -1 if unserved


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


def ppo_loss(params, apply_fn, batch: Transition, advantages, targets, config: TrainConfig,
             kl_coef):
    """Returns ``(loss, aux)`` for one minibatch. Advantages are normalised per minibatch."""
    logits, value = apply_fn(params, batch.features, batch.rb_features)
    logp_all = nets.masked_log_probs(logits, batch.mask)
    logp = jnp.take_along_axis(logp_all, batch.action[:, None], axis=-1)[:, 0]
    log_ratio = logp - batch.log_prob
    ratio = jnp.exp(log_ratio)
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    # KL(old || new) by the unbiased, non-negative estimator (ratio - 1) - log ratio.
    approx_kl = jnp.mean(ratio - 1.0 - log_ratio)
    if config.objective == "clip":
        clipped = jnp.clip(ratio, 1.0 - config.clip_eps, 1.0 + config.clip_eps)
        pg_loss = -jnp.mean(jnp.minimum(ratio * adv, clipped * adv))
    else:
        pg_loss = -jnp.mean(ratio * adv) + kl_coef * approx_kl
    v_loss = 0.5 * jnp.mean((value - targets) ** 2)
    ent = jnp.mean(nets.entropy(logp_all, batch.mask))
    loss = pg_loss + config.vf_coef * v_loss - config.ent_coef * ent
    return loss, {"pg_loss": pg_loss, "value_loss": v_loss, "entropy": ent, "approx_kl": approx_kl}


def adapt_kl_coef(kl_coef, kl, target):
    """Algorithm 1, line 8: the usual adaptive rule of the KL-penalty PPO."""
    kl_coef = jnp.where(kl > 1.5 * target, kl_coef * 2.0, kl_coef)
    return jnp.where(kl < target / 1.5, kl_coef / 2.0, kl_coef)


class PPO:
    def __init__(self, config: TrainConfig, env: SemComEnv, env_params: EnvParams):
        config.validate()
        env.check_params(env_params)
        self.config = config
        self.env = env
        self.env_params = env_params
        self.venv = VecEnv(env, config.num_envs)
        self.network = nets.make_network(config.network, env, config.hidden, config.rb_hidden)
        total_grad_steps = config.num_updates * config.update_epochs * config.num_minibatches
        lr = (optax.linear_schedule(config.lr, 0.0, total_grad_steps) if config.anneal_lr
              else config.lr)
        self.optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm),
                                     optax.adam(lr, eps=1e-5))

    # ------------------------------------------------------------------ state

    def init_params(self, key: jax.Array):
        return self.network.init(key, jnp.zeros((1, self.env.observation_size)),
                                 jnp.zeros((1, self.env.num_rbs, 3)))

    def init(self, key: jax.Array, env_params: EnvParams | None = None) -> RunnerState:
        k_net, k_env, k_run = jax.random.split(key, 3)
        return self.init_from(self.init_params(k_net), jax.random.fold_in(key, 1), env_params,
                              keys=(k_env, k_run))

    def init_from(self, params, key: jax.Array, env_params: EnvParams | None = None,
                  keys=None) -> RunnerState:
        """A runner state around given network parameters (e.g. one initialisation shared by
        every size of a padded sweep); ``env_params`` defaults to the trainer's."""
        k_env, k_run = keys if keys is not None else jax.random.split(key)
        env_params = self.env_params if env_params is None else env_params
        obs, vstate = self.venv.reset(k_env, env_params)
        return RunnerState(params=params, opt_state=self.optimizer.init(params), vstate=vstate,
                           obs=obs, key=k_run,
                           kl_coef=jnp.float32(self.config.kl_coef_init),
                           update=jnp.zeros((), jnp.int32), env_params=env_params)

    def policy_logits(self, params, obs: Observation):
        return self.network.apply(params, obs.features, obs.rb_features)[0]

    # ------------------------------------------------------------------ one update

    def _rollout(self, state: RunnerState):
        cfg = self.config

        def step(carry, _):
            obs, vstate, key = carry
            key, k_act, k_env = jax.random.split(key, 3)
            logits, value = self.network.apply(state.params, obs.features, obs.rb_features)
            logp_all = nets.masked_log_probs(logits, obs.action_mask)
            action = nets.sample(k_act, logp_all)
            logp = jnp.take_along_axis(logp_all, action[:, None], axis=-1)[:, 0]
            obs2, vstate, reward, done, info = self.venv.step(k_env, vstate, action,
                                                              state.env_params)
            tr = Transition(obs.features, obs.rb_features, obs.action_mask, action, logp, value, reward, done,
                            info["delay_violation"], info["energy_violation"], info["encoder"])
            return (obs2, vstate, key), tr

        (obs, vstate, key), traj = jax.lax.scan(step, (state.obs, state.vstate, state.key), None,
                                                cfg.num_steps)
        return obs, vstate, key, traj

    def update(self, state: RunnerState, _=None):
        cfg = self.config
        obs, vstate, key, traj = self._rollout(state)
        _, last_value = self.network.apply(state.params, obs.features, obs.rb_features)
        adv, targets = gae(traj.reward, traj.value, traj.done, last_value, cfg.gamma,
                           cfg.gae_lambda)
        flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), (traj, adv, targets))
        grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)

        def epoch(carry, _):
            params, opt_state, key = carry
            key, k_perm = jax.random.split(key)
            perm = jax.random.permutation(k_perm, cfg.steps_per_update)
            mbs = jax.tree.map(
                lambda x: x[perm].reshape((cfg.num_minibatches, -1) + x.shape[1:]), flat)

            def minibatch(carry, mb):
                params, opt_state = carry
                batch, a, t = mb
                (_, aux), grads = grad_fn(params, self.network.apply, batch, a, t, cfg,
                                          state.kl_coef)
                updates, opt_state = self.optimizer.update(grads, opt_state, params)
                return (optax.apply_updates(params, updates), opt_state), aux

            (params, opt_state), aux = jax.lax.scan(minibatch, (params, opt_state), mbs)
            return (params, opt_state, key), aux

        (params, opt_state, key), aux = jax.lax.scan(
            epoch, (state.params, state.opt_state, key), None, cfg.update_epochs)
        aux = jax.tree.map(jnp.mean, aux)
        kl_coef = (adapt_kl_coef(state.kl_coef, aux["approx_kl"], cfg.kl_target)
                   if cfg.objective == "kl" else state.kl_coef)
        new_state = RunnerState(params=params, opt_state=opt_state, vstate=vstate, obs=obs,
                                key=key, kl_coef=kl_coef, update=state.update + 1,
                                env_params=state.env_params)
        return new_state, self._metrics(traj, aux, kl_coef)

    def _metrics(self, traj: Transition, aux, kl_coef):
        return {**rollout_metrics(traj.reward, traj.done, traj.delay_violation,
                                  traj.energy_violation, traj.encoder, self.env.num_encoders),
                "kl_coef": kl_coef, **aux}

    # ------------------------------------------------------------------ loops

    def run(self, state: RunnerState, num_updates: int):
        """``num_updates`` updates in one ``lax.scan``; metrics are stacked on axis 0."""
        return jax.lax.scan(self.update, state, None, num_updates)

    def train(self, key: jax.Array):
        """The whole training run as one function of a key (jit it, vmap it over seeds)."""
        return self.run(self.init(key), self.config.num_updates)

    seed_axes = staticmethod(seed_axes)
