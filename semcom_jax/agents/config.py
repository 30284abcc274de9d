"""Training configuration, one frozen dataclass per concern, validated on the host.

A :class:`TrainConfig` holds the env's (:class:`EnvConfig`), the network's
(:class:`NetworkConfig`), the run's (:class:`RunConfig`) and the algorithm's own config (``agent``,
a class owned by the algorithm's module: ``PPOConfig`` in ``ppo.py``, ...). Each validates
itself; :meth:`TrainConfig.validate` adds the checks that span concerns.

Algorithms are found by name in :data:`ALGORITHMS`, filled by :func:`register` (one call per
algorithm, in ``semcom_jax/agents/__init__.py``).

Keys. Every field has a *key*, its name (the network's ``kind`` is the key ``network``), unique
across the concerns of one algorithm: ``--set KEY=VALUE``, error messages and
:meth:`TrainConfig.for_algo` use keys. ``config.json`` is nested by concern
(:meth:`TrainConfig.to_dict`); :meth:`TrainConfig.from_dict` reads it, and the flat files of
earlier versions (every key at the top level, those of the other algorithms included).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Callable, Mapping

from semcom_jax.agents.networks import CANDIDATE_RULES, NETWORKS
from semcom_jax.env.bits import BIT_SOURCES
from semcom_jax.env.environment import OBS_MODES, REWARDS, SCORES
from semcom_jax.physics.params import EnvParams

MAX_INT = 2**31 - 1  # counters, seeds and sizes are int32 inside the compiled loop
# chunk_updates = 0 (auto): about AUTO_EVALUATIONS evaluations per run, and at most the
# algorithm's ``chunk_max`` updates per chunk.
AUTO_EVALUATIONS = 20


def need(config, cond: bool, name: str, what: str, key: str | None = None) -> None:
    """Raise ``ValueError('config key KEY WHAT, got VALUE')`` unless ``cond``."""
    if not cond:
        raise ValueError(f"config key {key or name!r} {what}, got {getattr(config, name)!r}")


def _number_checks(config) -> None:
    """Every int within int32, every float finite."""
    for f in dataclasses.fields(config):
        v = getattr(config, f.name)
        if isinstance(v, int) and not isinstance(v, bool):
            need(config, -MAX_INT <= v <= MAX_INT, f.name, f"must lie within +-{MAX_INT} (int32)")
        elif isinstance(v, float):
            need(config, math.isfinite(v), f.name, "must be finite")


# ---------------------------------------------------------------------- the concerns

@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """Shapes and modes of the training env (its physics: ``env_params``)."""

    num_users: int = 5  # the size trained on, and the size of the held-out evaluation
    num_rbs: int = 10
    # Training across sizes (network "set" only): each episode draws U and Q uniformly from
    # these inclusive (min, max) ranges; () trains at num_users / num_rbs only.
    train_users: tuple = ()
    train_rbs: tuple = ()
    obs_mode: str = "paper"
    reward: str = "terminal"
    score: str = "table"
    table: str = ""  # a table file or a shipped table's name (NAMED_TABLES); "": the default
    rng: str = "threefry"  # the training env's episode draws: "threefry" or "hash" (env/bits.py;
    # held-out evaluation episodes are always threefry)
    env_params: dict = dataclasses.field(default_factory=dict)  # EnvParams overrides

    @property
    def sized(self) -> bool:
        """Whether training draws (U, Q) per episode (``train_users`` / ``train_rbs``)."""
        return bool(self.train_users or self.train_rbs)

    @property
    def users_range(self) -> tuple:
        return tuple(self.train_users) or (self.num_users, self.num_users)

    @property
    def rbs_range(self) -> tuple:
        return tuple(self.train_rbs) or (self.num_rbs, self.num_rbs)

    @property
    def episode_length(self) -> int:
        """Steps per training episode: the largest number of users trained on."""
        return self.users_range[1] if self.sized else self.num_users

    def make_env_params(self) -> EnvParams:
        """``env_params`` on the model's defaults (docs/model.md); an env built for a table
        with its own encoder costs starts from those instead (``SemComEnv.make_params``)."""
        return EnvParams.from_dict(self.env_params)

    def validate(self) -> "EnvConfig":
        for name in ("num_users", "num_rbs"):
            need(self, getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("train_users", "train_rbs"):
            v = tuple(getattr(self, name))
            need(self, v == () or (len(v) == 2 and 1 <= v[0] <= v[1]), name,
                 "must be () or (min, max) with 1 <= min <= max")
        need(self, self.obs_mode in OBS_MODES, "obs_mode", f"must be one of {OBS_MODES}")
        need(self, self.reward in REWARDS, "reward", f"must be one of {tuple(REWARDS)}")
        need(self, self.score in SCORES, "score", f"must be one of {tuple(SCORES)}")
        need(self, self.rng in BIT_SOURCES, "rng", f"must be one of {BIT_SOURCES}")
        self.make_env_params()  # raises naming a bad physical parameter
        return self


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The policy network, shared by every algorithm (SAC and DQN use it without its value)."""

    kind: str = "per_rb"  # key "network": "per_rb" (per-RB head), "set" (size-free) or "mlp"
    hidden: tuple = (64, 64)
    rb_hidden: int = 32  # width of the per-RB head ("per_rb", "set": also the embeddings)
    rb_candidates: int = 0  # "set": RBs scored per decision, M of the free ones (0: all Q)
    rb_candidate_rule: str = "top"  # which M: "top" (best by SINR) or "spread" (half best, half
    # a sample of the other free RBs; networks._candidate_rbs)

    def validate(self) -> "NetworkConfig":
        need(self, self.kind in NETWORKS, "kind", f"must be one of {NETWORKS}", key="network")
        need(self, len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden",
             "must list at least one positive layer width")
        need(self, self.rb_hidden >= 1, "rb_hidden", "must be >= 1")
        need(self, self.rb_candidates >= 0, "rb_candidates", "must be >= 0 (0 = every RB)")
        need(self, self.rb_candidates == 0 or self.kind == "set", "rb_candidates",
             "is an option of network 'set' only (use 0 with 'per_rb' or 'mlp')")
        need(self, self.rb_candidate_rule in CANDIDATE_RULES, "rb_candidate_rule",
             f"must be one of {CANDIDATE_RULES}")
        return self


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The env batch, the budget, the seeds and the evaluation."""

    num_envs: int = 1024
    episodes_per_rollout: int = 2  # rollout length = episodes_per_rollout * episode length
    total_env_steps: int = 2_990_080  # 292 updates of 1024 envs x 10 steps (about 3 M)
    num_seeds: int = 1
    seed: int = 0
    eval_episodes: int = 1024
    eval_seed: int = 12345
    ceiling_draws: int = 256  # Monte-Carlo draws per held-out episode for the paper ceiling; 0: off
    # Updates per compiled call; after each: held-out evaluation, metrics, checkpoint, progress.
    # 0 = auto (see TrainConfig.updates_per_chunk); the CLI's --eval-every sets it from env steps.
    chunk_updates: int = 0
    devices: int = 0  # devices the env batch is split over; 0 = all local (see sharding.py)

    def validate(self) -> "RunConfig":
        for name in ("num_envs", "episodes_per_rollout", "total_env_steps", "num_seeds",
                     "eval_episodes"):
            need(self, getattr(self, name) >= 1, name, "must be >= 1")
        need(self, self.chunk_updates >= 0, "chunk_updates", "must be >= 0 (0 = auto)")
        for name in ("seed", "eval_seed"):
            need(self, getattr(self, name) >= 0, name, f"must lie in [0, {MAX_INT}]")
        need(self, self.devices >= 0, "devices", "must be >= 0 (0 = all local devices)")
        need(self, self.ceiling_draws == 0 or self.ceiling_draws >= 2, "ceiling_draws",
             "must be 0 (no paper ceiling) or >= 2")
        return self


# ---------------------------------------------------------------------- algorithms

@dataclasses.dataclass(frozen=True)
class Algorithm:
    """A registered algorithm: its trainer, its config class and how it differs by default."""

    name: str
    trainer: type  # ``trainer(config, env, env_params)``, a :class:`~semcom_jax.agents.base.Trainer`
    config: type  # a frozen dataclass with ``validate(train_config)``; its fields are keys
    # Keys of the other concerns this algorithm sets differently by default, given the keys a
    # user set (a mapping, or a function of those keys to one); a key given explicitly wins.
    defaults: Any = dataclasses.field(default_factory=dict)
    chunk_max: int = 10  # at most this many updates per compiled chunk when chunk_updates = 0

    def defaults_for(self, keys: Mapping[str, Any]) -> dict:
        return dict(self.defaults(keys) if callable(self.defaults) else self.defaults)


ALGORITHMS: dict[str, Algorithm] = {}


def register(name: str, trainer: type, config: type,
             defaults: Mapping[str, Any] | Callable[[Mapping], Mapping] | None = None,
             chunk_max: int = 10) -> Algorithm:
    """Make ``algo=name`` train with ``trainer`` and read ``config`` (the whole step of adding
    an algorithm besides writing its module; docs/agents.md shows one)."""
    if not dataclasses.is_dataclass(config) or not hasattr(config, "validate"):
        raise ValueError(f"register({name!r}): config must be a dataclass with validate()")
    fields = {f.name for f in dataclasses.fields(config)}
    missing = sorted({"lr", "max_grad_norm"} - fields)
    if missing:  # the optimiser every Trainer builds reads them
        raise ValueError(f"register({name!r}): config needs the field(s) {missing}")
    taken = set(_section_keys()) & fields
    if taken:
        raise ValueError(f"register({name!r}): config field(s) {sorted(taken)} are keys of the "
                         "env, network or run config")
    ALGORITHMS[name] = Algorithm(name, trainer, config, defaults or {}, chunk_max)
    return ALGORITHMS[name]


def algorithm(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"config key 'algo' must be one of {tuple(ALGORITHMS)}, got {name!r}")
    return ALGORITHMS[name]


# ---------------------------------------------------------------------- keys

SECTIONS = {"env": EnvConfig, "network": NetworkConfig, "run": RunConfig}
_KEY_OF = {("network", "kind"): "network"}  # fields whose key is not their name


def _section_keys() -> dict:
    """key -> (section, field) of the env, network and run configs."""
    return {_KEY_OF.get((s, f.name), f.name): (s, f.name)
            for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


def _keys_of(algo: str) -> dict:
    """key -> (section, field) for every key of ``algo``'s configuration."""
    return {**_section_keys(),
            **{f.name: ("agent", f.name) for f in dataclasses.fields(algorithm(algo).config)}}


def _coerce(key: str, value, ref):
    """``value`` of the key whose default is ``ref``, checked and converted (JSON lists to
    tuples, ints to floats)."""
    if isinstance(ref, bool):
        ok = isinstance(value, bool)
    elif isinstance(ref, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(ref, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(ref, str):
        ok = isinstance(value, str)
    elif isinstance(ref, tuple):
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value)
        value = tuple(value) if ok else value
    else:  # dict
        ok = isinstance(value, dict)
    if not ok:
        raise ValueError(f"config key {key!r} must be of type {type(ref).__name__}, "
                         f"got {value!r}")
    return value


# ---------------------------------------------------------------------- the whole

@dataclasses.dataclass(frozen=True)
class TrainConfig:
    algo: str = "ppo"
    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    run: RunConfig = dataclasses.field(default_factory=RunConfig)
    agent: Any = None  # the algorithm's config (``ALGORITHMS[algo].config``); None: its defaults

    def __post_init__(self):
        if self.agent is None:
            object.__setattr__(self, "agent", algorithm(self.algo).config())

    # ------------------------------------------------------------------ from keys

    @classmethod
    def for_algo(cls, algo: str = "ppo", **keys) -> "TrainConfig":
        """The defaults of ``algo`` (its config class, and its ``defaults`` for the other
        concerns), then ``keys``. Not validated (see :meth:`validate`)."""
        return cls.from_keys(algo, {**algorithm(algo).defaults_for(keys), **keys})

    @classmethod
    def of(cls, **keys) -> "TrainConfig":
        """From keys (``algo`` among them, default "ppo"), every other key at its field
        default: no per-algorithm defaults (those are :meth:`for_algo`'s). Not validated."""
        return cls.from_keys(keys.pop("algo", "ppo"), keys)

    @classmethod
    def from_keys(cls, algo: str, keys: Mapping[str, Any], strict: bool = True) -> "TrainConfig":
        """A config of ``algo`` from keys, the unset ones at their field defaults (no
        per-algorithm defaults: :meth:`for_algo`). With ``strict=False`` a key of another
        registered algorithm is ignored (the flat files of earlier versions hold them all)."""
        owner = _keys_of(algo)
        unknown = sorted(set(keys) - set(owner))
        if unknown and not strict:
            others = {k for a in ALGORITHMS for k in _keys_of(a)}
            keys = {k: v for k, v in keys.items() if k in owner}
            unknown = sorted(set(unknown) - others)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown} for algorithm {algo!r}; known "
                             f"keys: {sorted(owner)}")
        parts: dict = {s: {} for s in (*SECTIONS, "agent")}
        classes = {**SECTIONS, "agent": algorithm(algo).config}
        for key, value in keys.items():
            section, field = owner[key]
            ref = getattr(classes[section](), field)
            parts[section][field] = _coerce(key, value, ref)
        return cls(algo=algo, **{s: classes[s](**kw) for s, kw in parts.items()})

    def keys(self) -> dict:
        """Every key of this config with its value (what ``--set`` and :meth:`for_algo`
        take)."""
        parts = {**{s: getattr(self, s) for s in SECTIONS}, "agent": self.agent}
        return {key: getattr(parts[s], f) for key, (s, f) in _keys_of(self.algo).items()}

    def replace(self, **keys) -> "TrainConfig":
        """This config with some keys changed (not validated)."""
        return self.from_keys(self.algo, {**self.keys(), **keys})

    # ------------------------------------------------------------------ derived

    @property
    def num_steps(self) -> int:
        """Steps per env per rollout."""
        return self.run.episodes_per_rollout * self.env.episode_length

    @property
    def steps_per_update(self) -> int:
        return self.num_steps * self.run.num_envs

    @property
    def num_updates(self) -> int:
        return max(1, self.run.total_env_steps // self.steps_per_update)

    @property
    def updates_per_chunk(self) -> int:
        """``chunk_updates``, or when 0 about ``AUTO_EVALUATIONS`` evaluations per run (at least
        one update, at most the algorithm's ``chunk_max`` per chunk)."""
        if self.run.chunk_updates > 0:
            return self.run.chunk_updates
        return max(1, min(self.num_updates // AUTO_EVALUATIONS, algorithm(self.algo).chunk_max))

    # ------------------------------------------------------------------ files

    def to_dict(self) -> dict:
        """Nested by concern: ``{"algo", "env", "network", "run", <algo>}``."""
        def plain(part):
            return {k: list(v) if isinstance(v, tuple) else v
                    for k, v in dataclasses.asdict(part).items()}

        return {"algo": self.algo, **{s: plain(getattr(self, s)) for s in SECTIONS},
                self.algo: plain(self.agent)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        """Validated, from a nested dict (:meth:`to_dict`) or a flat one of keys (earlier
        versions' files, ``--set``); the algorithm's defaults fill what ``d`` does not set."""
        d = dict(d)
        algo = d.pop("algo", "ppo")
        algorithm(algo)
        nested = any(isinstance(d.get(s), dict) for s in SECTIONS)
        if nested:
            extra = sorted(set(d) - {*SECTIONS, algo})
            if extra:
                raise ValueError(f"config sections must be {sorted({*SECTIONS, algo})}; "
                                 f"unknown: {extra}")
            keys = {}
            for s in SECTIONS:
                for field, value in d.get(s, {}).items():
                    keys[_KEY_OF.get((s, field), field)] = value
            keys.update(d.get(algo, {}))
            cfg = cls.for_algo(algo, **keys)
        else:  # flat: earlier versions wrote every algorithm's keys
            cfg = cls.from_keys(algo, {**algorithm(algo).defaults_for(d), **d}, strict=False)
        return cfg.validate()

    @classmethod
    def from_file(cls, path: str) -> "TrainConfig":
        return cls.from_dict(read_config_file(path))

    # ------------------------------------------------------------------ checks

    def validate(self) -> "TrainConfig":
        algorithm(self.algo)
        for part in (self.env, self.network, self.run, self.agent):
            _number_checks(part)
        self.env.validate()
        self.network.validate()
        self.run.validate()
        need(self.run, self.run.num_envs * self.num_steps <= MAX_INT, "num_envs",
             f"times the rollout's {self.num_steps} steps must stay <= {MAX_INT} (int32)")
        if self.env.sized:
            need(self.network, self.network.kind == "set", "kind",
                 "must be 'set' to train across sizes (train_users / train_rbs): only its "
                 "parameters do not depend on U and Q", key="network")
        self.agent.validate(self)
        need(self.run, self.run.total_env_steps >= self.steps_per_update, "total_env_steps",
             f"must be at least one update's {self.steps_per_update} env steps")
        return self


def read_config_file(path: str) -> dict:
    """The keys a JSON or YAML config file sets (defaults not filled in)."""
    if not os.path.isfile(path):
        raise ValueError(f"config file {path!r} does not exist")
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except UnicodeDecodeError as e:
        raise ValueError(f"config file {path!r} is not UTF-8 text: {e}") from None
    except OSError as e:
        raise ValueError(f"config file {path!r} cannot be read: {e.strerror}") from None
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise ValueError("YAML config files need PyYAML: pip install pyyaml") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError(f"config file {path!r} is not valid YAML: "
                             f"{' '.join(str(e).split())}") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config file {path!r} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path!r} must hold a mapping of keys to values")
    return data


def parse_set_items(items) -> dict:
    """``KEY=VALUE`` strings (``--set``) as a mapping: each value read as JSON, or kept as a
    string when it is not JSON; ``TrainConfig.from_dict`` checks the keys and types."""
    data = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            data[k] = json.loads(v)
        except json.JSONDecodeError:
            data[k] = v
    return data
