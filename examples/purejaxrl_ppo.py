"""A PureJaxRL-style PPO written only against gymnax's API: ``semcom_jax.make`` (or
``gymnax.make`` after ``import semcom_jax``), gymnax's own ``FlattenObservationWrapper`` and
``LogWrapper``, ``reset``/``step`` with auto-reset (gymnax 1.x's six values), and the action mask
read from the last ``A`` entries of the flat observation. One jitted function of a key trains.

    python examples/purejaxrl_ppo.py --total-steps 200000
"""

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from gymnax.wrappers.purerl import FlattenObservationWrapper, LogWrapper

import semcom_jax


class ActorCritic(nn.Module):
    num_actions: int

    @nn.compact
    def __call__(self, obs):
        mask = obs[..., -self.num_actions:] > 0.5  # the flat observation ends with the mask
        h = nn.tanh(nn.Dense(64)(nn.tanh(nn.Dense(64)(obs))))
        # Illegal logits at the dtype's minimum, not -inf: the entropy stays finite.
        logits = jnp.where(mask, nn.Dense(self.num_actions)(h), jnp.finfo(jnp.float32).min)
        return logits, nn.Dense(1)(nn.tanh(nn.Dense(64)(obs)))[..., 0]


def make_train(users=3, rbs=4, num_envs=64, num_steps=12, total_steps=200_000, lr=3e-3):
    env, env_params = semcom_jax.make("SemCom-full-dense-v0", num_users=users, num_rbs=rbs,
                                      step_api="terminated_truncated")
    env = LogWrapper(FlattenObservationWrapper(env))
    net = ActorCritic(env.action_space(env_params).n)
    updates = total_steps // (num_envs * num_steps)
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(lr))

    def train(key):
        key, k_init, k_reset = jax.random.split(key, 3)
        obs, state = jax.vmap(env.reset, (0, None))(jax.random.split(k_reset, num_envs),
                                                    env_params)
        params = net.init(k_init, obs)
        opt = tx.init(params)

        def env_step(carry, _):
            params, state, obs, key = carry
            key, k_act, k_step = jax.random.split(key, 3)
            logits, value = net.apply(params, obs)
            action = jax.random.categorical(k_act, logits)
            logp = jax.nn.log_softmax(logits)[jnp.arange(num_envs), action]
            next_obs, state, reward, terminated, truncated, info = jax.vmap(
                env.step, (0, 0, 0, None))(jax.random.split(k_step, num_envs), state, action,
                                           env_params)
            done = jnp.logical_or(terminated, truncated)
            return (params, state, next_obs, key), (obs, action, logp, value, reward, done, info)

        def loss_fn(params, obs, action, logp_old, adv, target):
            logits, value = net.apply(params, obs)
            logp = jax.nn.log_softmax(logits)[jnp.arange(action.shape[0]), action]
            ratio = jnp.exp(logp - logp_old)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 0.8, 1.2) * adv).mean()
            probs = jax.nn.softmax(logits)
            entropy = -jnp.sum(probs * jax.nn.log_softmax(logits), -1)
            return pg + 0.5 * ((value - target) ** 2).mean() - 0.01 * entropy.mean()

        def update(carry, _):
            params, opt, state, obs, key = carry
            (params, state, obs, key), (o, a, lp, v, r, d, info) = jax.lax.scan(
                env_step, (params, state, obs, key), None, num_steps)
            _, last_v = net.apply(params, obs)

            def gae(next_, xs):  # gamma = 1: an episode's users share one return
                adv, v_next = next_
                r_t, v_t, d_t = xs
                delta = r_t + v_next * (1 - d_t) - v_t
                adv = delta + 0.95 * (1 - d_t) * adv
                return (adv, v_t), adv

            _, adv = jax.lax.scan(gae, (jnp.zeros_like(last_v), last_v), (r, v, d), reverse=True)
            flat = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), (o, a, lp, adv, adv + v))
            for _ in range(4):  # epochs, each one full batch
                grads = jax.grad(loss_fn)(params, *flat)
                upd, opt = tx.update(grads, opt, params)
                params = optax.apply_updates(params, upd)
            finished = info["returned_episode"]
            mean_return = jnp.sum(info["returned_episode_returns"] * finished) / jnp.maximum(
                finished.sum(), 1)
            return (params, opt, state, obs, key), mean_return

        _, returns = jax.lax.scan(update, (params, opt, state, obs, key), None, updates)
        return returns  # (updates,) mean return of the episodes finished in each update

    return train


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--total-steps", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    returns = jax.jit(make_train(total_steps=a.total_steps))(jax.random.PRNGKey(a.seed))
    print(f"mean episode return: first update {float(returns[0]):.3f}, "
          f"last update {float(returns[-1]):.3f} ({returns.shape[0]} updates)")
