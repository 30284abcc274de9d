"""Rollouts stored by episode, for the size-free network: memory O(B x (U + Q)) per episode
instead of one whole observation per step, and a decision that costs O(Q x width).

A :class:`~semcom_jax.env.wrappers.VecEnv` batch is in lock-step and a PPO rollout is a whole
number of episodes, so a rollout is ``E`` episodes of ``U`` steps for each of ``B`` envs. Users
are decided in order and nothing else in the state changes within an episode, so the rollout
keeps, per episode, its first state (the drawn instance: O(U + Q) floats) and, per step, the
encoder and RB it gave the user (two ints). Any step's observation is
``env.observation(env.state_at(start, encoder, rb, t))``, rebuilt when the update needs it.

What the network computes once per episode (:meth:`SetActorCritic.embed_episode`) is computed
once per episode here too, and the user summary of every step comes from per-episode tables:
the pending users' mean and max from suffix sums and maxima (known at the start: users are
decided in order), the served and unserved users' means from prefix sums (running sums while
acting; exclusive prefix sums over the recorded decisions in the update). Both equal the
network's own masked means on the observation (tested).

The update splits each minibatch into micro-batches of at most ``MICRO_FLOATS`` per-RB
activations and sums their gradients, with the per-episode tables differentiated once per
minibatch (:func:`minibatch_grads`): the gradient is the whole minibatch's, at a memory that
does not grow with the minibatch.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from semcom_jax.agents import networks as nets
from semcom_jax.agents.networks import take_rbs
from semcom_jax.agents.rollout import Samples, Transition, merge_time_batch
from semcom_jax.env.types import ABSENT, EnvState, Observation

# Per-RB activations (samples x Q x width floats) of one micro-batch of the update.
MICRO_FLOATS = 2**22


@struct.dataclass
class Episodes:
    """The episodes of one rollout, ``E`` per env: enough to rebuild every observation."""

    start: EnvState  # leaves (E, B, ...): each episode's first state
    encoder: jnp.ndarray  # (E, B, U) int32, each user's encoder, -1 unserved
    rb: jnp.ndarray  # (E, B, U) int32, each user's RB, -1 unserved
    # With M RBs in view (``SetActorCritic.has_view``): each step's view, leaves (E, B, U, ...),
    # and the place in it of the action taken (E, B, U) int32; else None.
    views: Any = None
    choice: Any = None


@struct.dataclass
class EpisodeData:
    """What the update reads about the rollout's ``N = E x B`` episodes (no parameters in it)."""

    start: EnvState  # leaves (N, ...)
    encoder: jnp.ndarray  # (N, U) int32
    rb: jnp.ndarray  # (N, U) int32
    user_features: jnp.ndarray  # (N, U, F)
    rb_interference: jnp.ndarray  # (N, Q, 1)
    active: jnp.ndarray  # (N, U) bool, the user exists (padded envs: the first n)
    views: Any = None  # (N, U, ...) per-step DecisionViews, or None (see Episodes)
    choice: Any = None  # (N, U) int32, or None


# ---------------------------------------------------------------------- user summary tables

def pending_tables(e_u, active):
    """Per step ``t``: the current user's embedding and the mean and max over the pending users
    (``t < u``, active), each (..., U, width), from suffix sums and maxima over the users."""
    m = active[..., None]
    cur = jnp.where(m, e_u, 0.0)
    suffix = jnp.cumsum(cur[..., ::-1, :], axis=-2)[..., ::-1, :]
    count = jnp.cumsum(active[..., ::-1].astype(e_u.dtype), axis=-1)[..., ::-1]
    best = jax.lax.cummax(jnp.where(m, e_u, -jnp.inf), axis=e_u.ndim - 2, reverse=True)

    def after(x, fill):  # x[t + 1], ``fill`` after the last user
        pad = jnp.full(x.shape[:-2] + (1,) + x.shape[-1:], fill, x.dtype)
        return jnp.concatenate([x[..., 1:, :], pad], axis=-2)

    n_after = after(count[..., None], 0.0)
    mean = after(suffix, 0.0) / jnp.maximum(n_after, 1.0)
    best = jnp.where(n_after > 0, after(best, 0.0), 0.0)
    return cur, mean, best


def decided_tables(e_u, active, served):
    """Per step ``t``: the mean over the served and over the unserved users before ``t``, each
    (..., U, width), from exclusive prefix sums over the recorded decisions."""

    def prefix_mean(flag):
        x = jnp.where(flag[..., None], e_u, 0.0)
        s = jnp.cumsum(x, axis=-2) - x
        n = jnp.cumsum(flag.astype(e_u.dtype), axis=-1) - flag.astype(e_u.dtype)
        return s / jnp.maximum(n, 1.0)[..., None]

    return prefix_mean(active & served), prefix_mean(active & ~served)


# ---------------------------------------------------------------------- layout helpers

def by_episode(tree, num_episodes: int):
    """Time-major ``(T = E x U, B, ...)`` leaves to ``(N = E x B, U, ...)``, one row per
    episode, in the order of :func:`episode_data`."""

    def one(x):  # explicit sizes: a zero-width leaf has none to infer
        e_u_b = x.reshape((num_episodes, x.shape[0] // num_episodes) + x.shape[1:])
        x = jnp.swapaxes(e_u_b, 1, 2)  # (E, B, U, ...)
        return x.reshape((x.shape[0] * x.shape[1],) + x.shape[2:])

    return jax.tree.map(one, tree)


def _sum_axis1(x):
    """Sum over axis 1 by halving: on XLA's CPU backend a ``reduce`` over a major axis is much
    slower than these contiguous adds (figures in docs/performance.md)."""
    while x.shape[1] > 1:
        half = x.shape[1] // 2
        y = x[:, :half] + x[:, half:2 * half]
        x = jnp.concatenate([y, x[:, 2 * half:]], axis=1) if x.shape[1] % 2 else y
    return x[:, 0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def broadcast_steps(x, steps: int):
    """(N, ...) -> (N, steps, ...), the per-episode tables repeated over a chunk's steps; the
    gradient sums over the steps by halving (:func:`_sum_axis1`)."""
    return jnp.broadcast_to(x[:, None], x.shape[:1] + (steps,) + x.shape[1:])


def _broadcast_fwd(x, steps):
    return broadcast_steps(x, steps), None


def _broadcast_bwd(steps, _, g):
    return (_sum_axis1(g),)


broadcast_steps.defvjp(_broadcast_fwd, _broadcast_bwd)


def chunk_size(episodes: int, episode_length: int, num_rbs: int, width: int) -> int:
    """Steps per micro-batch: the largest divisor of ``episode_length`` whose per-RB
    activations (episodes x steps x Q x width) fit ``MICRO_FLOATS`` (at least one step)."""
    cap = max(1, MICRO_FLOATS // max(1, episodes * num_rbs * width))
    return max(d for d in range(1, min(cap, episode_length) + 1) if episode_length % d == 0)



# ---------------------------------------------------------------------- the experience

class EpisodeExperience:
    """PPO's experience stored by episode, for the size-free network (:class:`~semcom_jax.
    agents.networks.SetActorCritic`): a rollout is ``E`` whole episodes per env, a minibatch is
    a set of whole episodes, and the loss rebuilds each step's inputs from the stored episodes
    (:class:`Episodes`). Same interface as :class:`~semcom_jax.agents.rollout.StepExperience`.
    """

    def __init__(self, network, venv, episodes_per_rollout: int, num_minibatches: int):
        self.network, self.venv, self.env = network, venv, venv.env
        self.num_episodes = episodes_per_rollout
        self.num_items = episodes_per_rollout * venv.num_envs  # episodes per rollout
        q = self.env.num_rbs
        in_view = min(network.candidates, q) if network.candidates else q
        # Steps per micro-batch: the per-step activations scale with the RBs in view.
        self.chunk = chunk_size(self.num_items // num_minibatches, self.env.num_users, in_view,
                                network.width)

    # ------------------------------------------------------------------ acting

    def collect(self, params, state):
        """``(obs, vstate, key, traj, episodes)``: ``E`` whole episodes of the batch of a
        runner ``state`` (at the start of an episode) under the policy ``params``. ``traj`` is
        a time-major :class:`Transition` (T = E x U, B) without observations, with
        ``log_prob`` and ``value``; ``episodes`` (:class:`Episodes`) rebuilds them."""
        network, venv, env_params = self.network, self.venv, state.env_params
        env = self.env
        layout = env.actions
        viewed = network.has_view(env.num_rbs)

        def episode(carry, _):
            obs, vstate, key = carry
            start = vstate.env_state
            emb = network.apply(params, obs.user_features, obs.rb_interference,
                                method=network.embed_episode)
            active = obs.user_status != ABSENT
            cur, pend_mean, pend_max = pending_tables(emb.users, active)
            zeros = jnp.zeros(emb.users.shape[:1] + emb.users.shape[2:], emb.users.dtype)
            n0 = jnp.zeros(zeros.shape[:1], emb.users.dtype)

            def step(c, t):
                obs, vstate, key, (s_srv, n_srv, s_uns, n_uns) = c
                key, k_act, k_env = jax.random.split(key, 3)
                users = jnp.concatenate([cur[:, t], pend_mean[:, t], pend_max[:, t],
                                         s_srv / jnp.maximum(n_srv, 1.0)[:, None],
                                         s_uns / jnp.maximum(n_uns, 1.0)[:, None]], axis=-1)
                count = nets.value_count(obs.user_status, network.value_scale)
                if viewed:  # a policy over the view's M x K + 1 actions
                    view = nets.decision_view(obs.rb_sinr, obs.action_mask,
                                              obs.context, count, network.candidates,
                                              network.candidate_rule, layout.num_encoders)
                    logits, value = network.apply(params, users, view,
                                                  take_rbs(emb.rbs, view.idx),
                                                  take_rbs(emb.rb_head, view.idx),
                                                  method=network.decide_view)
                    mask = view.mask(layout.num_encoders)
                else:
                    view = None
                    logits, value = network.apply(params, users, count, emb,
                                                  obs.rb_sinr, obs.action_mask,
                                                  obs.context, method=network.decide)
                    mask = obs.action_mask
                choice, logp = nets.sample_masked(k_act, logits, mask)
                action = (jnp.take_along_axis(view.actions(layout), choice[:, None],
                                              axis=-1)[:, 0] if viewed else choice)
                next_obs, vstate, reward, done, info = venv.step(k_env, vstate, action,
                                                                 env_params)
                served, here = info["served"], active[:, t]
                e_t = emb.users[:, t]
                srv, uns = (here & served)[:, None], (here & ~served)[:, None]
                acc = (s_srv + jnp.where(srv, e_t, 0.0), n_srv + srv[:, 0],
                       s_uns + jnp.where(uns, e_t, 0.0), n_uns + uns[:, 0])
                rb = jnp.where(served, layout.decode(action).rb, -1)
                tr = Transition(obs=None, action=action, reward=reward, done=done,
                                delay_violation=info["delay_violation"],
                                energy_violation=info["energy_violation"],
                                encoder=info["encoder"], invalid_action=info["invalid_action"],
                                log_prob=logp, value=value)
                return (next_obs, vstate, key, acc), (tr, rb, (view, choice if viewed else None))

            (obs, vstate, key, _), (trs, rbs, seen) = jax.lax.scan(
                step, (obs, vstate, key, (zeros, n0, zeros, n0)), jnp.arange(env.num_users))
            return (obs, vstate, key), (trs, rbs, start, seen)

        (obs, vstate, key), (trs, rbs, starts, seen) = jax.lax.scan(
            episode, (state.obs, state.vstate, state.key), None, self.num_episodes)
        # (E, U, B, ...) -> (E * U, B, ...): one time axis, as the other rollouts have.
        traj = merge_time_batch(trs)
        views, choice = jax.tree.map(lambda x: jnp.swapaxes(x, 1, 2), seen)  # (E, B, U, ...)
        episodes = Episodes(start=starts, encoder=jnp.swapaxes(trs.encoder, 1, 2),
                            rb=jnp.swapaxes(rbs, 1, 2), views=views, choice=choice)
        return obs, vstate, key, traj, episodes

    def samples(self, traj: Transition, advantages, targets) -> Samples:
        """Time-major ``(T = E x U, B)`` rollout arrays as one row per episode ``(N, U)``, in
        the order of :meth:`episode_data`, with each row's id."""
        return Samples(*by_episode((traj, advantages, targets), self.num_episodes),
                       ids=jnp.arange(self.num_items))

    # ------------------------------------------------------------------ the update

    def grads_fn(self, episodes: Episodes, env_params, objective: Callable):
        """``grads_of(params, samples) -> (grads, aux)``, the gradient of ``objective(logits,
        value, mask, samples) -> (loss, aux)`` on a minibatch of whole episodes, their inputs
        rebuilt from ``episodes``."""
        data = self.episode_data(env_params, episodes)

        def grads_of(params, mb: Samples):
            mb_data = jax.tree.map(lambda x: x[mb.ids], data)
            if mb_data.choice is not None:  # logits over each step's view: the action's place
                mb = mb.replace(traj=mb.traj.replace(action=mb_data.choice))
            return self.minibatch_grads(params, env_params, mb_data, mb.replace(ids=None),
                                        objective)

        return grads_of

    def episode_data(self, env_params, episodes: Episodes) -> EpisodeData:
        """The rollout's episodes flattened to ``N = E x B``, with their fixed observation
        parts."""
        flat = merge_time_batch(episodes)
        first = jax.vmap(self.env.observation, (0, None))(flat.start, env_params)
        return EpisodeData(start=flat.start, encoder=flat.encoder, rb=flat.rb,
                           user_features=first.user_features,
                           rb_interference=first.rb_interference,
                           active=first.user_status != ABSENT, views=flat.views,
                           choice=flat.choice)

    def observations_at(self, env_params, data: EpisodeData, t) -> Observation:
        """The observations the env returned at steps ``t`` (c,) of every episode of ``data``:
        leaves (N, c, ...)."""
        env = self.env

        def episode(start, encoder, rb):
            return jax.vmap(lambda t: env.observation(env.state_at(start, encoder, rb, t),
                                                      env_params))(t)

        return jax.vmap(episode)(data.start, data.encoder, data.rb)

    def episode_tables(self, params, data: EpisodeData):
        """Per episode, with gradients: the user summary of every step (N, U, 5 width) and the
        RB embeddings (:class:`~semcom_jax.agents.networks.EpisodeEmbedding` without
        ``users``)."""
        network = self.network
        emb = network.apply(params, data.user_features, data.rb_interference,
                            method=network.embed_episode)
        cur, pend_mean, pend_max = pending_tables(emb.users, data.active)
        srv, uns = decided_tables(emb.users, data.active, data.encoder >= 0)
        users = jnp.concatenate([cur, pend_mean, pend_max, srv, uns], axis=-1)
        return users, emb.replace(users=None)

    def decide_at(self, params, env_params, data: EpisodeData, tables, t):
        """Logits, value (N, c) and mask at steps ``t`` (c,) of every episode of ``data``, from
        ``tables = (users, emb)``: the user summaries at those steps (N, c, 5 width) and the RB
        embeddings (N, Q, width). Without a view, logits and mask (N, c, A): the per-step
        inputs are rebuilt from the episodes and ``emb`` broadcasts over the steps (no
        per-sample copy). With one (``data.views``), logits and mask (N, c, M x K + 1) over
        each step's stored view, whose M RBs' embeddings are gathered from ``emb``:
        O(M x width) per step, nothing rebuilt."""
        network = self.network
        users, emb = tables
        if data.views is not None:
            view = jax.tree.map(lambda x: jnp.take(x, t, axis=1), data.views)  # (N, c, ...)
            gather = jax.vmap(lambda e, i: e[i])  # (Q, w), (c, M) -> (c, M, w), per episode
            logits, value = network.apply(params, users, view, gather(emb.rbs, view.idx),
                                          gather(emb.rb_head, view.idx),
                                          method=network.decide_view)
            return logits, value, view.mask(network.num_encoders)
        obs = self.observations_at(env_params, data, t)
        emb = jax.tree.map(lambda x: broadcast_steps(x, t.shape[0]), emb)  # (N, c, Q, width)
        count = nets.value_count(obs.user_status, network.value_scale)
        logits, value = network.apply(params, users, count, emb, obs.rb_sinr,
                                      obs.action_mask, obs.context, method=network.decide)
        return logits, value, obs.action_mask

    def minibatch_grads(self, params, env_params, data: EpisodeData, batch,
                        objective: Callable[..., Any], chunk: int | None = None):
        """``(grads, aux)`` of the mean of ``objective`` over a minibatch of whole episodes:
        ``data`` their :class:`EpisodeData` (G episodes), ``batch`` a pytree of (G, U, ...)
        per-step arrays, taken ``chunk`` steps at a time (default: ``self.chunk``).

        ``objective(logits, value, mask, batch) -> (loss, aux)`` means over its samples
        (leaves flattened to (G x chunk, ...)). The per-episode tables are computed and
        differentiated once (``jax.vjp``); each chunk adds its share of the gradient with
        respect to the parameters and to the tables."""
        chunk = self.chunk if chunk is None else chunk
        length = data.encoder.shape[-1]
        tables, tables_vjp = jax.vjp(lambda p: self.episode_tables(p, data), params)
        users, emb = tables

        def loss(p, users_c, emb, mb, t):
            logits, value, mask = self.decide_at(p, env_params, data, (users_c, emb), t)
            flat = merge_time_batch((logits, value, mask, mb))
            out, aux = objective(*flat)
            share = chunk / length  # means over a chunk, weighted into the minibatch's mean
            return out * share, jax.tree.map(lambda x: x * share, aux)

        grad = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)

        def part(i):
            t0 = i * chunk
            mb = jax.tree.map(lambda x: jax.lax.dynamic_slice_in_dim(x, t0, chunk, axis=1),
                              batch)
            users_c = jax.lax.dynamic_slice_in_dim(users, t0, chunk, axis=1)
            return users_c, mb, t0 + jnp.arange(chunk)

        def shifted_loss_grad(i):
            users_c, mb, t = part(i)
            (_, aux), (g_p, g_u, g_e) = grad(params, users_c, emb, mb, t)
            return g_p, g_u, g_e, aux

        if chunk == length:
            g_p, g_u, g_e, aux = shifted_loss_grad(0)
        else:
            def body(acc, i):
                g_p, g_u, g_e, aux = shifted_loss_grad(i)
                acc_p, acc_e, acc_aux = acc
                return (jax.tree.map(jnp.add, acc_p, g_p), jax.tree.map(jnp.add, acc_e, g_e),
                        jax.tree.map(jnp.add, acc_aux, aux)), g_u

            aux_shape = jax.eval_shape(lambda: shifted_loss_grad(0)[3])
            init = (jax.tree.map(jnp.zeros_like, params), jax.tree.map(jnp.zeros_like, emb),
                    jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), aux_shape))
            (g_p, g_e, aux), g_u = jax.lax.scan(body, init, jnp.arange(length // chunk))
            g_u = jnp.moveaxis(g_u, 0, 1).reshape(users.shape)  # (chunks, G, c, .) -> (G, U, .)
        (g_tables,) = tables_vjp((g_u, g_e))
        return jax.tree.map(jnp.add, g_p, g_tables), aux
