"""A PureJaxRL-style PPO on SemComEnv, written against the gymnax surface only: ``reset`` /
``step`` with ``params=None``, ``action_space()``, ``AutoResetEnv``, ``LogWrapper`` and
``flatten_observation``. One jitted function of a key trains the whole run.

    python examples/purejaxrl_ppo.py --total-steps 2000000
"""

import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from semcom_jax.env import AutoResetEnv, LogWrapper, SemComEnv, flatten_observation


class ActorCritic(nn.Module):
    num_actions: int

    @nn.compact
    def __call__(self, x, mask):
        h = nn.tanh(nn.Dense(64)(nn.tanh(nn.Dense(64)(x))))
        logits = jnp.where(mask, nn.Dense(self.num_actions)(h), -1e9)  # legal actions only
        return logits, nn.Dense(1)(nn.tanh(nn.Dense(64)(x)))[..., 0]


def make_train(users=3, rbs=4, num_envs=64, num_steps=12, total_steps=200_000, lr=3e-3):
    env = LogWrapper(AutoResetEnv(SemComEnv(users, rbs, obs_mode="full", reward="dense")))
    net, updates = ActorCritic(env.action_space().n), total_steps // (num_envs * num_steps)
    tx = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(lr))

    def train(key):
        key, k_init, k_reset = jax.random.split(key, 3)
        obs, state = jax.vmap(env.reset)(jax.random.split(k_reset, num_envs))
        params = net.init(k_init, *flatten_observation(obs))
        opt = tx.init(params)

        def env_step(carry, _):
            params, state, obs, key = carry
            key, k_act, k_step = jax.random.split(key, 3)
            logits, value = net.apply(params, *flatten_observation(obs))
            action = jax.random.categorical(k_act, logits)
            logp = jax.nn.log_softmax(logits)[jnp.arange(num_envs), action]
            next_obs, state, reward, done, info = jax.vmap(env.step)(
                jax.random.split(k_step, num_envs), state, action)
            return (params, state, next_obs, key), (obs, action, logp, value, reward, done, info)

        def loss_fn(params, obs, action, logp_old, adv, target):
            logits, value = net.apply(params, *flatten_observation(obs))
            logp = jax.nn.log_softmax(logits)[jnp.arange(action.shape[0]), action]
            ratio = jnp.exp(logp - logp_old)
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 0.8, 1.2) * adv).mean()
            probs = jax.nn.softmax(logits)
            entropy = -jnp.sum(jnp.where(probs > 0, probs * jnp.log(probs + 1e-30), 0.0), -1)
            return pg + 0.5 * ((value - target) ** 2).mean() - 0.01 * entropy.mean()

        def update(carry, _):
            params, opt, state, obs, key = carry
            (params, state, obs, key), (o, a, lp, v, r, d, info) = jax.lax.scan(
                env_step, (params, state, obs, key), None, num_steps)
            _, last_v = net.apply(params, *flatten_observation(obs))

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
