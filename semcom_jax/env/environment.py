"""The semantic-communication downlink as a stateless, jittable environment (gymnax style).

**Episode.** ``U`` steps; step ``t`` decides the CLIP encoder and the RB of user ``t``. The episode
ends (``done``) after the ``U``-th step. All randomness (positions, fading, interference, compute,
image sizes) is drawn at ``reset`` and fixed for the episode.

**Action.** One integer in ``[0, A)``: ``a = k * Q + q`` serves the current user with encoder ``k``
on RB ``q``; ``a = K * Q`` ("no RB") leaves the user unserved, and is legal at every size, as the
paper's constraint (10b) ``sum_q alpha_iq <= 1`` allows. ``A = K * Q + 1``.

**Unserved users** score the table's chance-level score (what a receiver that gets nothing can
do: guess) and count as one delay violation (the task is not delivered within the budget); they
spend no energy. Their ``info`` says so: ``delay_s = inf`` (nothing arrives), ``energy_j = 0``,
``sinr_db = -inf`` (no signal), ``task_score`` the chance score, ``encoder`` -1.

**Invalid actions.** The mask in the observation (True = legal) forbids RBs already allocated.
An action that is out of range or names a used RB is *not* applied as an allocation: the user is
left unserved, ``info["invalid_action"]`` is True, and its term of eq. (11) is the worst any user
can get (the table's lowest score with both budgets violated, or the unserved term if lower)
minus ``params.invalid_action_penalty`` (default 0), so an agent that ignores the mask cannot
use an illegal action as a free "no RB". The Gymnasium adapter can raise ``ValueError`` instead
(``strict=True``).

**gymnax.** The class is a ``gymnax.environments.environment.Environment``: ``step``
auto-resets (the episode that ends is replaced by a fresh one in the same call), ``step_env``
does not (stepping a finished episode there changes nothing and pays 0), spaces are gymnax's,
``EnvParams.max_steps_in_episode`` is U and ``EnvState.time`` the steps taken.

**Observation.** :class:`~semcom_jax.env.types.Observation` with ``features`` (F,) float32 and
``action_mask`` (A,) bool. ``features`` (mode ``paper``, the paper's state plus quantities derived
from it): ``log10 I_q`` mapped from ``[log10 I_lo, log10 I_hi]`` to [-1, 1] (Q), RB availability ``nu`` (Q), user positions ``xy / R``
(2U), one-hot of the user being decided (U), that user's ``x/R, y/R, d/R`` (3) and its
fading-free SINR per RB in dB / 30 (Q). Mode ``full`` adds the rest of the state: ``log10`` fading,
image size, user CPU frequency and cycles per bit of every user (4U, ranges mapped to [-1, 1]),
``f^B, w^B`` (2), and for the current user its exact SINR per RB in dB / 30 (Q) and its image
size, CPU frequency and cycles (3). ``rb_features`` (Q, 3) repeats, per RB, what a
permutation-equivariant policy needs: the interference and availability of the RB and the current
user's SINR on it (fading-free in ``paper`` mode, exact in ``full`` mode).
The same information as sets, for size-free networks: ``user_features`` (U, 3 or 7), what the
mode reveals about each user (``x/R, y/R, d/R``; ``full`` adds log10 fading, image size, CPU
frequency and cycles), fixed for the episode; ``user_status`` (U,) (pending, current, served,
unserved, absent) and ``context`` (3 or 5): the fraction of users decided,
``log((users left + 1) / (free RBs + 1))``, the fraction of RBs free (``full`` adds ``f^B, w^B``).
``flat_features=False`` drops ``features`` (width 0), whose size grows with U and Q.

**Encoder costs.** When the table's metadata lists ``encoder_compute`` (D^M) and
``encoder_feature_bits`` (D^O), ``default_params`` takes them from it and ``check_params`` refuses
parameters that disagree, so the costs and the scores always describe the same encoders.

**Reward.** Eq. (11), see :mod:`semcom_jax.env.reward`: ``terminal`` (the paper) or ``dense``.
Task scores come from the table (``score="table"``, expected score) or from sending the user's
own feature through the feature channel in-graph (``score="features"``, sampled score).

**Random bits.** ``rng="threefry"`` (default) draws episodes from ``jax.random``; ``rng="hash"``
from a keyed counter hash ~5x cheaper per word (:mod:`semcom_jax.env.bits`): the same
distributions (tested), other episodes for the same key.
"""

from __future__ import annotations

from functools import partial
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import environment as gymnax_environment

from semcom_jax.env.actions import ActionLayout
from semcom_jax.env.bits import check_source
from semcom_jax.env.generator import UniformGenerator
from semcom_jax.env.reward import (DenseReward, FeatureScore, TableScore, TerminalReward,
                                   invalid_term, unserved_term, user_term)
from semcom_jax.env.types import (ABSENT, CONTEXT_FEATURES, CURRENT, PENDING, RB_FEATURES,
                                  SERVED, UNSERVED, USER_FEATURES, USER_HIDDEN, EnvState,
                                  Instance, Observation)
import semcom_jax.env.spaces as spaces
from semcom_jax.physics import channel, link
from semcom_jax.physics.params import EnvParams, validate_params, validate_sizes
from semcom_jax.tables.format import Table, load_default_table

OBS_MODES = ("paper", "full")
OBS_FORMATS = ("structured", "flat")
STEP_APIS = ("done", "terminated_truncated")
REWARDS = {"terminal": TerminalReward, "dense": DenseReward}
SCORES = {"table": TableScore, "features": FeatureScore}


def _unit_range(x, lo, hi):
    """Maps [lo, hi] to [-1, 1]; a degenerate range (lo == hi) maps to 0."""
    width = hi - lo
    return jnp.where(width > 0, 2.0 * (x - lo) / jnp.where(width > 0, width, 1.0) - 1.0, 0.0)


def _interference_feature(interference_w, params: EnvParams):
    """log10 of the interference mapped from the parameters' range to [-1, 1]."""
    lo, hi = jnp.log10(params.interference_lo_w), jnp.log10(params.interference_hi_w)
    half = 0.5 * (hi - lo)
    return jnp.where(half > 0, (jnp.log10(interference_w) - (lo + half))
                     / jnp.where(half > 0, half, 1.0), 0.0)


def _bs_features(inst: Instance, params: EnvParams) -> jnp.ndarray:
    """(2,): the BS's CPU frequency and cycles per bit, ranges mapped to [-1, 1]."""
    return jnp.stack([
        _unit_range(inst.bs_freq_hz, params.bs_freq_lo_hz, params.bs_freq_hi_hz),
        _unit_range(inst.bs_cycles_per_bit, params.bs_cycles_lo_per_bit,
                    params.bs_cycles_hi_per_bit)])


class SemComEnv(gymnax_environment.Environment):
    """Joint CLIP-encoder selection and RB allocation for ``num_users`` users on ``num_rbs`` RBs,
    as a gymnax environment (``reset``/``step`` with auto-reset, ``reset_env``/``step_env``,
    gymnax spaces). ``obs_format``: ``structured`` (an :class:`Observation`) or ``flat`` (one
    float32 vector ending with the action mask). ``step_api``: ``done`` (five values, gymnax
    0.x) or ``terminated_truncated`` (six, gymnax 1.x)."""

    def __init__(self, num_users: int = 5, num_rbs: int = 10, table: Optional[Table] = None,
                 obs_mode: str = "paper", reward: str = "terminal", score: str = "table",
                 generator=None, flat_features: bool = True, rng: str = "threefry",
                 obs_format: str = "structured", step_api: str = "done"):
        validate_sizes(num_users, num_rbs)
        if obs_format not in OBS_FORMATS:
            raise ValueError(f"obs_format must be one of {OBS_FORMATS}, got {obs_format!r}")
        if step_api not in STEP_APIS:
            raise ValueError(f"step_api must be one of {STEP_APIS}, got {step_api!r}")
        check_source(rng)
        if generator is not None and rng != "threefry":
            raise ValueError("give either generator= or rng=, not both (rng chooses the bit "
                             "source of the default generator)")
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {OBS_MODES}, got {obs_mode!r}")
        if reward not in REWARDS:
            raise ValueError(f"reward must be one of {tuple(REWARDS)}, got {reward!r}")
        if score not in SCORES:
            raise ValueError(f"score must be one of {tuple(SCORES)}, got {score!r}")
        self.table = load_default_table() if table is None else table
        if score == "features":
            if self.table.data.features is None:
                raise ValueError("score='features' needs a table with a feature set; this one has none")
            if self.table.task != "classification":
                raise ValueError("score='features' is defined for classification tables only")
            receiver = self.table.metadata.get("receiver", "cosine")
            if receiver != "cosine":
                raise ValueError(
                    f"score='features' classifies with CLIP's cosine receiver, but this table's "
                    f"scores were measured with the {receiver!r} receiver: use score='table' "
                    "with it, or a table built without that receiver")
        self.num_users = num_users
        self.num_rbs = num_rbs
        self.num_encoders = self.table.data.num_encoders
        self.obs_mode = obs_mode
        self.reward_name = reward
        self.score_name = score
        self.flat_features = bool(flat_features)
        self.obs_format = obs_format
        self.step_api = step_api
        self.actions = ActionLayout(self.num_encoders, num_rbs, has_no_rb=True)
        num_images = self.table.data.features.num_images if score == "features" else 1
        self.rng = rng
        self.generator = generator or UniformGenerator(num_users, num_rbs, num_images, bits=rng)
        self._reward_fn = REWARDS[reward]()
        self._score_fn = SCORES[score]()
        self._lowest_score = float(np.min(np.asarray(self.table.data.score)))
        self.observation_size = int(
            jax.eval_shape(lambda: self._features(*self._shared_parts(
                self._blank_state(), self.default_params))).shape[0]
        ) if self.flat_features else 0

    def __getstate__(self):
        # The lazily compiled sampler is a cache, not state: copies and pickles rebuild it.
        return {k: v for k, v in self.__dict__.items() if k != "_sample_batch"}

    # ------------------------------------------------------------------ actions

    @property
    def has_no_rb(self) -> bool:
        return self.actions.has_no_rb

    @property
    def num_actions(self) -> int:
        return self.actions.num_actions

    @property
    def no_rb_action(self):
        return self.actions.no_rb_action

    # ------------------------------------------------------------------ parameters

    @property
    def default_params(self) -> EnvParams:
        """The model's defaults (docs/model.md), with the table's encoder costs when its
        metadata lists them."""
        costs = self.table.encoder_costs
        params = EnvParams(max_steps_in_episode=self.num_users)
        if costs is None:
            return params
        return params.replace(encoder_compute=costs[0], encoder_feature_bits=costs[1])

    def make_params(self, overrides=None) -> EnvParams:
        """``default_params`` with ``overrides`` (a mapping of field names), validated."""
        return self.check_params(EnvParams.from_dict(overrides or {}, base=self.default_params))

    @property
    def encoder_names(self) -> list[str]:
        return self.table.encoders

    def check_params(self, params: EnvParams) -> EnvParams:
        """Host-side validation; call once before jitting with non-default params. Returns the
        params, with ``max_steps_in_episode`` set to U when it was left at 0."""
        validate_params(params, num_encoders=self.num_encoders)
        if params.max_steps_in_episode == 0:
            params = params.replace(max_steps_in_episode=self.num_users)
        elif params.max_steps_in_episode != self.num_users:
            raise ValueError(
                f"parameter 'max_steps_in_episode' is {params.max_steps_in_episode}, but every "
                f"episode of this env lasts num_users={self.num_users} steps (one per user): "
                f"leave it at {self.num_users} (env.default_params) or 0")
        costs = self.table.encoder_costs
        if costs is not None:
            for name, table_value in zip(("encoder_compute", "encoder_feature_bits"), costs):
                given = tuple(float(x) for x in getattr(params, name))
                if any(abs(a - b) > 1e-6 * max(abs(b), 1.0) for a, b in zip(given, table_value)):
                    raise ValueError(
                        f"parameter {name!r} is {list(given)} but the task table "
                        f"({self.table.metadata.get('source', '?')}) describes its encoders "
                        f"with {list(table_value)}: costs and scores must describe the same "
                        "encoders (use the table's values, or a table made for yours)")
        return params

    # ------------------------------------------------------------------ gymnax API

    def reset(self, key: jax.Array,
              params: Optional[EnvParams] = None) -> tuple[Observation, EnvState]:
        """A new episode (compiled); ``params=None`` means ``default_params`` (as in gymnax)."""
        return self._reset(key, self.default_params if params is None else params)

    def step(self, key: jax.Array, state: EnvState, action, params: Optional[EnvParams] = None):
        """One decision, with gymnax's auto-reset: when it ends the episode, the returned
        observation and state already belong to a new one (drawn from ``key``).

        Returns ``(obs, state, reward, done, info)`` with ``step_api="done"`` (gymnax 0.x,
        PureJaxRL, rejax) or ``(obs, state, reward, terminated, truncated, info)`` with
        ``step_api="terminated_truncated"`` (gymnax 1.x and its wrappers; ``truncated`` is
        always False, ``info`` adds ``terminated``, ``truncated`` and ``final_observation``).
        The non-resetting step is :meth:`step_env`. Compiled, like ``reset``."""
        return self._step(key, state, action, self.default_params if params is None else params)

    # The defaults are passed in, never closed over: a constant folded at compile time can
    # round differently from the same value given as an argument.
    @partial(jax.jit, static_argnames=("self",))
    def _reset(self, key, params):
        return self.reset_env(key, params)

    @partial(jax.jit, static_argnames=("self",))
    def _step(self, key, state, action, params):
        k_step, k_reset = jax.random.split(key)
        ended, reward, done, info = self.transition(k_step, state, action, params)
        fresh = self.reset_state(k_reset, params)
        # The state goes through the select and the observation is built once, after it.
        new_state = jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh, ended)
        obs = self.get_obs(new_state, params)
        if self.step_api == "done":
            return obs, new_state, reward, done, info
        truncated = jnp.zeros_like(done)
        info = {**info, "terminated": done, "truncated": truncated,
                "final_observation": self.get_obs(ended, params)}
        return obs, new_state, reward, done, truncated, info

    def reset_env(self, key: jax.Array, params: EnvParams) -> tuple[Observation, EnvState]:
        """gymnax's reset hook: ``(obs, state)`` of a new episode."""
        state = self.reset_state(key, params)
        return self.get_obs(state, params), state

    def step_env(self, key: jax.Array, state: EnvState, action, params: EnvParams):
        """gymnax's step hook, without auto-reset: ``(obs, state, reward, done, info)``.
        Stepping a finished episode here changes nothing and pays 0 (``step`` never does it)."""
        new_state, reward, done, info = self.transition(key, state, action, params)
        return self.get_obs(new_state, params), new_state, reward, done, info

    def get_obs(self, state: EnvState, params: Optional[EnvParams] = None, key=None):
        """The observation in this env's ``obs_format``: an :class:`Observation`
        (``structured``) or one float32 vector, the flattened observation followed by the
        action mask as 0/1 (``flat``, see :meth:`action_mask_of`)."""
        obs = self.observation(state, self.default_params if params is None else params)
        if self.obs_format == "structured":
            return obs
        x, mask = spaces.flatten_observation(obs)
        return jnp.concatenate([x, mask.astype(jnp.float32)], axis=-1)

    def action_mask_of(self, obs) -> jnp.ndarray:
        """(..., A) bool, True = legal: the mask inside an observation of either format."""
        if self.obs_format == "structured":
            return obs.action_mask
        return obs[..., -self.num_actions:] > 0.5

    def is_terminal(self, state: EnvState, params: Optional[EnvParams] = None) -> jnp.ndarray:
        """Whether every user has been decided (gymnax 0.x's name)."""
        return state.step >= self.num_users

    def is_terminated(self, state: EnvState, params: Optional[EnvParams] = None) -> jnp.ndarray:
        """gymnax 1.x's name for :meth:`is_terminal`."""
        return self.is_terminal(state, params)

    def is_truncated(self, state: EnvState, params: Optional[EnvParams] = None) -> jnp.ndarray:
        """Never: the episode's natural end is its only end (``max_steps_in_episode`` = U)."""
        return jnp.zeros((), bool)

    # ------------------------------------------------------------------ episodes

    def reset_state(self, key: jax.Array, params: EnvParams) -> EnvState:
        """``reset`` without building the observation."""
        return self._initial_state(self.generator(key, params))

    def reset_to(self, instance: Instance, params: EnvParams) -> tuple[Observation, EnvState]:
        """Starts an episode on a given instance (evaluation on a fixed episode set)."""
        state = self.start_state(instance, params)
        return self.get_obs(state, params), state

    def start_state(self, instance: Instance, params: EnvParams) -> EnvState:
        """The first state of the episode on ``instance``."""
        return self._initial_state(instance)

    def sample_instances(self, key: jax.Array, num: int, params: EnvParams) -> Instance:
        """``num`` episode instances, batched on the leading axis."""
        if not isinstance(num, int) or num < 1:
            raise ValueError(f"num must be an int >= 1, got {num!r}")
        if not hasattr(self, "_sample_batch"):  # one compiled program, not one per primitive
            self._sample_batch = jax.jit(jax.vmap(self.generator, (0, None)))
        return self._sample_batch(jax.random.split(key, num), params)

    def transition(self, key: jax.Array, state: EnvState, action, params: EnvParams):
        """``step`` without building the observation: ``(state, reward, done, info)``."""
        u_count, q_count = self.num_users, self.num_rbs
        inst = state.instance
        act = self.actions.decode(action)
        k, q = act.encoder, act.rb
        active = state.step < u_count
        u = jnp.minimum(state.step, u_count - 1)
        rb_free = ~state.rb_used[q]
        invalid = active & (~act.in_range | (~act.no_rb & ~rb_free))
        served = active & act.in_range & ~act.no_rb & rb_free

        lk = link.evaluate(inst, params, u, k, q)
        score = self._score_fn(key, self.table.data, k, inst.image_index[u], lk.sinr_db,
                               lk.sinr_linear)
        chance = self.table.data.chance_score
        term = jnp.where(served, user_term(score, lk.delay_s, lk.energy_j, params),
                         jnp.where(invalid, invalid_term(self._lowest_score, chance, params),
                                   unserved_term(chance, params)))

        this_user = (jnp.arange(u_count) == u) & active
        user_reward = jnp.where(this_user, term, state.user_reward)
        new_state = state.replace(  # replace, not a new EnvState: subclasses keep their fields
            step=state.step + active.astype(jnp.int32),
            rb_used=state.rb_used | ((jnp.arange(q_count) == q) & served),
            encoder=jnp.where(this_user, jnp.where(served, k, -1), state.encoder),
            rb=jnp.where(this_user, jnp.where(served, q, -1), state.rb),
            user_reward=user_reward,
        )
        done = new_state.step >= u_count
        reward = jnp.where(active, self._reward_fn(user_reward, term, done), 0.0)
        info = {
            "user": u,
            "served": served,
            "invalid_action": invalid,
            "task_score": jnp.where(served, score, chance),
            "sinr_db": jnp.where(served, lk.sinr_db, -jnp.inf),
            "delay_s": jnp.where(served, lk.delay_s, jnp.inf),
            "energy_j": jnp.where(served, lk.energy_j, 0.0),
            "delay_violation": active & (~served | (lk.delay_s > params.delay_budget_s)),
            "energy_violation": served & (lk.energy_j > params.energy_budget_j),
            "encoder": jnp.where(served, k, -1),
        }
        return new_state, reward.astype(jnp.float32), done, info

    def observation(self, state: EnvState, params: EnvParams) -> Observation:
        n_users, n_rbs = self.active_sizes(state)
        parts = self._shared_parts(state, params)
        _, _, interference, users, _, exact = parts
        features = (self._features(*parts) if self.flat_features
                    else jnp.zeros((0,), jnp.float32))
        rb_features = jnp.stack([interference, state.rb_used.astype(jnp.float32), exact],
                                axis=-1)  # the RB_INTERFERENCE, RB_IN_USE, RB_SINR columns
        return Observation(features=features, rb_features=rb_features,
                           action_mask=self.action_mask(state), user_features=users,
                           user_status=self._user_status(state, n_users),
                           context=self._context(state, params, n_users, n_rbs))

    def action_space(self, params: Optional[EnvParams] = None) -> spaces.Discrete:
        """gymnax ``Discrete(A)``: ``k * Q + q``, or the "no RB" action ``K * Q``."""
        return spaces.Discrete(self.num_actions)

    def observation_space(self, params: Optional[EnvParams] = None):
        """gymnax spaces: ``Dict`` with one ``Box`` per :class:`Observation` field
        (``structured``), or one ``Box`` (``flat``)."""
        u, q, mode, b = self.num_users, self.num_rbs, self.obs_mode, spaces.FEATURE_BOUND
        if self.obs_format == "flat":
            width = jax.eval_shape(lambda: self.get_obs(self._blank_state())).shape[-1]
            return spaces.Box(-b, b, (int(width),), jnp.float32)
        return spaces.Dict({
            "features": spaces.Box(-b, b, (self.observation_size,)),
            "rb_features": spaces.Box(-b, b, (q, RB_FEATURES)),
            "action_mask": spaces.Box(0, 1, (self.num_actions,), jnp.bool_),
            "user_features": spaces.Box(-b, b, (u, USER_FEATURES[mode])),
            "user_status": spaces.Box(0, spaces.NUM_STATUS - 1, (u,), jnp.int32),
            "context": spaces.Box(-b, b, (CONTEXT_FEATURES[mode],)),
        })

    def example_observation(self, batch: int = 1) -> Observation:
        """Zeros shaped like a batch of observations (to initialise a network)."""
        u, q, mode = self.num_users, self.num_rbs, self.obs_mode
        return Observation(features=jnp.zeros((batch, self.observation_size), jnp.float32),
                           rb_features=jnp.zeros((batch, q, RB_FEATURES), jnp.float32),
                           action_mask=jnp.ones((batch, self.num_actions), bool),
                           user_features=jnp.zeros((batch, u, USER_FEATURES[mode]), jnp.float32),
                           user_status=jnp.zeros((batch, u), jnp.int32),
                           context=jnp.zeros((batch, CONTEXT_FEATURES[mode]), jnp.float32))

    def state_at(self, start: EnvState, encoder, rb, t) -> EnvState:
        """The state at step ``t`` of the episode that began in ``start`` and decided its users
        as ``encoder``, ``rb`` ((U,) int32, -1 for unserved; only users before ``t`` are read).

        Users are decided in order, so everything the observation reads follows from these:
        a rollout can store an episode's start once and two ints per step, and rebuild any
        step's observation later (``observation(state_at(...))``). ``user_reward`` is not
        rebuilt (zeros): no observation reads it. Cost O(U + Q)."""
        before = jnp.arange(self.num_users) < t
        rb_t = jnp.where(before, rb, -1)
        # Scatter the RBs taken so far; -1 (unserved, undecided) goes out of range and is dropped.
        taken = jnp.zeros((self.num_rbs,), bool).at[
            jnp.where(rb_t >= 0, rb_t, self.num_rbs)].set(True, mode="drop")
        return start.replace(step=jnp.asarray(t, jnp.int32), rb_used=start.rb_used | taken,
                             encoder=jnp.where(before, encoder, -1), rb=rb_t,
                             user_reward=jnp.zeros_like(start.user_reward))

    def active_sizes(self, state: EnvState):
        """(users, RBs) of the episode: every slot here; fewer in the padded envs."""
        return jnp.int32(self.num_users), jnp.int32(self.num_rbs)

    def action_mask(self, state: EnvState) -> jnp.ndarray:
        return self.actions.mask(~state.rb_used)

    # ------------------------------------------------------------------ internals

    def _initial_state(self, instance: Instance) -> EnvState:
        u, q = self.num_users, self.num_rbs
        return EnvState(
            instance=instance,
            step=jnp.zeros((), jnp.int32),
            rb_used=jnp.zeros((q,), bool),
            encoder=jnp.full((u,), -1, jnp.int32),
            rb=jnp.full((u,), -1, jnp.int32),
            user_reward=jnp.zeros((u,), jnp.float32),
        )

    def _blank_state(self) -> EnvState:
        return self._initial_state(self.generator(jax.random.PRNGKey(0), self.default_params))

    def _sinr_db(self, state: EnvState, params: EnvParams, exact: bool) -> jnp.ndarray:
        """(Q,) SINR in dB of the user being decided, exact or fading-free (fading ``= 1``)."""
        inst = state.instance
        u = jnp.minimum(state.step, self.num_users - 1)
        rbs = jnp.arange(self.num_rbs)
        if exact:
            return channel.to_db(link.user_sinr(inst, params, u, rbs))
        return channel.to_db(link.user_sinr(inst.replace(fading=jnp.ones_like(inst.fading)),
                                            params, u, rbs))

    def _user_features(self, inst: Instance, params: EnvParams) -> jnp.ndarray:
        """(U, USER_FEATURES[mode]): what the mode reveals about each user, fixed for the
        episode."""
        radius = params.cell_radius_m
        cols = [inst.user_xy_m / radius, (inst.distance_m / radius)[:, None]]
        if self.obs_mode == "full":
            cols.append(jnp.stack([
                jnp.log10(inst.fading),
                _unit_range(inst.image_bits, params.image_bits_lo, params.image_bits_hi),
                _unit_range(inst.user_freq_hz, params.user_freq_lo_hz, params.user_freq_hi_hz),
                _unit_range(inst.user_cycles_per_bit, params.user_cycles_lo_per_bit,
                            params.user_cycles_hi_per_bit)], axis=-1))
        return jnp.concatenate(cols, axis=-1).astype(jnp.float32)

    def _user_status(self, state: EnvState, n_users) -> jnp.ndarray:
        idx = jnp.arange(self.num_users)
        decided = jnp.where(state.encoder >= 0, SERVED, UNSERVED)
        status = jnp.where(idx < state.step, decided,
                           jnp.where(idx == state.step, CURRENT, PENDING))
        return jnp.where(idx < n_users, status, ABSENT).astype(jnp.int32)

    def _context(self, state: EnvState, params: EnvParams, n_users, n_rbs) -> jnp.ndarray:
        decided = jnp.minimum(state.step, n_users)
        left = (n_users - decided).astype(jnp.float32)
        free = jnp.sum(~state.rb_used).astype(jnp.float32)
        parts = [decided / n_users, jnp.log((left + 1.0) / (free + 1.0)), free / n_rbs]
        if self.obs_mode == "full":
            parts += list(_bs_features(state.instance, params))
        return jnp.stack([jnp.asarray(x, jnp.float32) for x in parts])

    def _shared_parts(self, state: EnvState, params: EnvParams):
        """What several observation fields share, computed once per observation: ``(state,
        params, interference feature (Q,), per-user features (U, USER_FEATURES[mode]), the
        current user's SINR feature per RB fading-free (what the paper's state reveals) and
        exact (Q,; the fading-free one outside ``full``))``."""
        seen = self._sinr_db(state, params, exact=False) / 30.0
        exact = (self._sinr_db(state, params, exact=True) / 30.0 if self.obs_mode == "full"
                 else seen)
        return (state, params, _interference_feature(state.instance.interference_w, params),
                self._user_features(state.instance, params), seen, exact)

    def _features(self, state: EnvState, params: EnvParams, interference, users, seen,
                  exact) -> jnp.ndarray:
        """The flat vector, from :meth:`_shared_parts`."""
        inst = state.instance
        u = jnp.minimum(state.step, self.num_users - 1)
        radius = params.cell_radius_m
        parts = [
            interference,
            state.rb_used.astype(jnp.float32),
            (inst.user_xy_m / radius).reshape(-1),
            jax.nn.one_hot(state.step, self.num_users, dtype=jnp.float32),
            inst.user_xy_m[u] / radius,
            (inst.distance_m[u] / radius)[None],
            seen,
        ]
        if self.obs_mode == "full":
            hidden = users[:, USER_HIDDEN:]  # log10 fading, image, CPU frequency, cycles
            parts += [*hidden.T, _bs_features(inst, params), exact, hidden[u, 1:]]
        return jnp.concatenate(parts).astype(jnp.float32)


def uniform_legal_action(key: jax.Array, action_mask: jnp.ndarray,
                         env: "SemComEnv") -> jnp.ndarray:
    """A uniformly random legal action of ``env`` for a mask (A,) or a batch of masks (..., A)."""
    return env.actions.uniform_legal(key, action_mask)
