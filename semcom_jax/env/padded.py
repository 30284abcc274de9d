"""Padded environments: one compiled program for many (U, Q), so a sweep over sizes is a vmap.

``PaddedSemComEnv(max_users, max_rbs)`` has the shapes of the largest instance; the number of
*active* users and RBs are runtime values in ``PaddedParams`` (``active_users``,
``active_rbs``), a pytree like every other parameter, so ``vmap`` over a stack of them runs
several sizes in one program. Padded RBs start "in use" (masked out of every action); padded
users are skipped: their steps change nothing, pay nothing and violate nothing, and the episode
still lasts ``max_users`` steps (the terminal reward comes at the last one). The "no RB" action
is legal at every size, as in the unpadded env.

So an instance padded with :func:`pad_instance` and played with the same decisions returns
exactly what the unpadded env returns (tested). Freshly drawn padded episodes draw every slot and
use the first ``active_*`` ones, which has the same distribution as an unpadded draw.
The observation keeps the padded layout: padded slots carry finite, meaningless values, padded
users have status ``ABSENT`` and padded RBs are in use.

The episode's sizes live in its state (:class:`PaddedState`): ``reset`` takes them from the
parameters, and :class:`RandomSizeEnv` draws them at every reset from given ranges, so one
training run sees many sizes (every episode still lasts ``max_users`` steps, which keeps a batch
in lock-step).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from semcom_jax.env.environment import SemComEnv
from semcom_jax.env.types import EnvState, Instance
from semcom_jax.physics.params import validate_sizes
from semcom_jax.physics.params import EnvParams


@struct.dataclass
class PaddedParams(EnvParams):
    active_users: int = 0  # 0 = all max_users
    active_rbs: int = 0  # 0 = all max_rbs


@struct.dataclass
class PaddedState(EnvState):
    active_users: jnp.ndarray  # () int32, users of this episode (the first ones)
    active_rbs: jnp.ndarray  # () int32, RBs of this episode (the first ones)


def padded_params(params: EnvParams, active_users: int, active_rbs: int) -> PaddedParams:
    fields = {k: getattr(params, k) for k in EnvParams.__dataclass_fields__}
    fields["max_steps_in_episode"] = 0  # the padded env's own length: its check fills it in
    return PaddedParams(**fields, active_users=active_users, active_rbs=active_rbs)


def stack_params(params_list) -> PaddedParams:
    """A batch of parameters (leading axis) for ``vmap`` over sizes."""
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *params_list)


def pad_instance(inst: Instance, max_users: int, max_rbs: int) -> Instance:
    """Pads the user axis to ``max_users`` and the RB axis to ``max_rbs`` by repeating the last
    user / RB (finite values; the padded env never uses them)."""
    u, q = inst.distance_m.shape[0], inst.interference_w.shape[0]
    if u > max_users or q > max_rbs:
        raise ValueError(f"instance of U={u}, Q={q} does not fit max_users={max_users}, "
                         f"max_rbs={max_rbs}")

    def edge(x, n):
        return jnp.concatenate([x, jnp.repeat(x[-1:], n - x.shape[0], axis=0)])

    per_user = ("user_xy_m", "distance_m", "fading", "image_bits", "user_freq_hz",
                "user_cycles_per_bit", "image_index")
    out = {k: edge(getattr(inst, k), max_users) for k in per_user}
    return inst.replace(**out, interference_w=edge(inst.interference_w, max_rbs))


class PaddedSemComEnv(SemComEnv):
    def __init__(self, max_users: int, max_rbs: int, **kwargs):
        super().__init__(max_users, max_rbs, **kwargs)

    @property
    def default_params(self) -> PaddedParams:
        return padded_params(super().default_params, self.num_users, self.num_rbs).replace(
            max_steps_in_episode=self.num_users)

    def make_params(self, overrides=None) -> PaddedParams:
        base = EnvParams.from_dict(overrides or {}, base=super().default_params)
        return self.check_params(padded_params(base, self.num_users, self.num_rbs))

    def check_params(self, params: PaddedParams) -> PaddedParams:
        params = super().check_params(params)
        for name, top in (("active_users", self.num_users), ("active_rbs", self.num_rbs)):
            v = getattr(params, name, None)
            if v is None or not (1 <= int(v) <= top):
                raise ValueError(f"parameter {name!r} must lie in [1, {top}], got {v!r}")
        return params

    def active_sizes(self, state: PaddedState):
        return state.active_users, state.active_rbs

    def start_state(self, instance: Instance, params) -> PaddedState:
        return self._sized_state(instance, params.active_users, params.active_rbs)

    def reset_state(self, key, params) -> PaddedState:
        return self._sized_state(self.generator(key, params), params.active_users,
                                 params.active_rbs)

    def _sized_state(self, instance: Instance, n_users, n_rbs) -> PaddedState:
        base = self._initial_state(instance)
        fields = {k: getattr(base, k) for k in EnvState.__dataclass_fields__}
        n_rbs = jnp.asarray(n_rbs, jnp.int32)
        fields["rb_used"] = jnp.arange(self.num_rbs) >= n_rbs
        return PaddedState(**fields, active_users=jnp.asarray(n_users, jnp.int32),
                           active_rbs=n_rbs)

    def transition(self, key, state: PaddedState, action, params):
        n_u = state.active_users
        real = state.step < n_u
        new_state, reward, done, info = super().transition(key, state, action, params)
        skip_state = state.replace(step=jnp.minimum(state.step + 1, self.num_users))
        skip_done = skip_state.step >= self.num_users
        skip_reward = jnp.where(state.step < self.num_users,
                                self._reward_fn(state.user_reward, 0.0, skip_done), 0.0)
        new_state = jax.tree.map(lambda x, y: jnp.where(real, x, y), new_state, skip_state)
        done = jnp.where(real, done, skip_done)
        reward = jnp.where(real, reward, skip_reward).astype(jnp.float32)
        quiet = {"served": False, "invalid_action": False, "delay_violation": False,
                 "energy_violation": False, "encoder": -1, "task_score": 0.0}
        info = {k: (jnp.where(real, v, quiet[k]) if k in quiet else v) for k, v in info.items()}
        info["padding"] = ~real
        return new_state, reward, done, info


class RandomSizeEnv(PaddedSemComEnv):
    """A padded env that draws each episode's (U, Q) uniformly from ``users_range`` and
    ``rbs_range`` (inclusive) at reset: training across sizes in one compiled program.
    ``reset_to`` (fixed evaluation episodes) still takes the sizes from the parameters."""

    def __init__(self, users_range, rbs_range, **kwargs):
        for name, rng in (("users_range", users_range), ("rbs_range", rbs_range)):
            if (len(tuple(rng)) != 2 or not all(isinstance(v, int) for v in rng)
                    or not 1 <= rng[0] <= rng[1]):
                raise ValueError(f"{name} must be (min, max) ints with 1 <= min <= max, "
                                 f"got {rng!r}")
        validate_sizes(users_range[1], rbs_range[1])
        self.users_range = tuple(users_range)
        self.rbs_range = tuple(rbs_range)
        super().__init__(users_range[1], rbs_range[1], **kwargs)

    def reset_state(self, key, params) -> PaddedState:
        k_u, k_q, k_inst = jax.random.split(key, 3)
        n_u = jax.random.randint(k_u, (), self.users_range[0], self.users_range[1] + 1)
        n_q = jax.random.randint(k_q, (), self.rbs_range[0], self.rbs_range[1] + 1)
        return self._sized_state(self.generator(k_inst, params), n_u, n_q)
