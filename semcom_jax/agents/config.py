"""Training configuration: one frozen dataclass, validated on the host, to and from JSON."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Mapping

from semcom_jax.agents.networks import CANDIDATE_RULES, NETWORKS
from semcom_jax.env.bits import BIT_SOURCES
from semcom_jax.env.environment import OBS_MODES, REWARDS, SCORES
from semcom_jax.physics.params import EnvParams
from semcom_jax.tables.format import NAMED_TABLES, table_path

ALGOS = ("ppo", "sac", "dqn")
MAX_INT = 2**31 - 1  # counters, seeds and sizes are int32 inside the compiled loop
OBJECTIVES = ("clip", "kl")


# Per-algorithm defaults, applied by ``TrainConfig.for_algo`` and ``from_dict`` (so
# ``semcom-jax train --algo sac`` gets them); a key given explicitly wins. The off-policy agents
# step fewer envs per update and take several small gradient steps on replayed data, the usual
# regime for SAC and DQN; network sizes are the same for all three.
ALGO_DEFAULTS: dict = {
    "ppo": {},
    # 3 M as before: DQN's exploration schedule is a fraction of the budget, so a whole number of
    # updates (2,999,040) would move the published figures.
    "sac": {"num_envs": 256, "episodes_per_rollout": 1, "lr": 1e-3, "max_grad_norm": 10.0,
            "total_env_steps": 3_000_000},
    "dqn": {"num_envs": 256, "episodes_per_rollout": 1, "lr": 1e-3, "max_grad_norm": 10.0,
            "total_env_steps": 3_000_000},
}
# PPO with the size-free network: the settings of the scaling study (64 envs, one episode per
# rollout, 1.2 M steps), measured to reach its quality across sizes (docs/results.md); the
# per-RB network's 1024 envs x 2 episodes make so few updates at U = 50 that the policy stays
# below greedy. A key given explicitly wins.
SET_NETWORK_DEFAULTS: dict = {"num_envs": 64, "episodes_per_rollout": 1,
                              "total_env_steps": 1_200_000}
# chunk_updates = 0 (auto): about AUTO_EVALUATIONS evaluations per run, and at most this many
# updates per chunk (an off-policy update is a short rollout, so its chunks hold more of them).
AUTO_EVALUATIONS = 20
AUTO_CHUNK_MAX = {"ppo": 10, "sac": 100, "dqn": 100}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    # --- environment (shapes and modes; physics in env_params) ---
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
    # --- algorithm ---
    algo: str = "ppo"
    objective: str = "clip"  # "clip" (PPO-clip) or "kl" (the paper's eq. 13, adaptive penalty)
    num_envs: int = 1024
    episodes_per_rollout: int = 2  # rollout length = episodes_per_rollout * num_users steps
    total_env_steps: int = 2_990_080  # 292 updates of 1024 envs x 10 steps (about 3 M)
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
    # --- off-policy (sac, dqn): replay on the device, one update = one rollout + gradient steps ---
    buffer_size: int = 50_000  # transitions per seed
    batch_size: int = 256
    gradient_steps: int = 8  # gradient steps per update (after each rollout)
    learning_starts: int = 10_000  # env steps collected before the first gradient step
    tau: float = 0.005  # Polyak rate of the target networks, per gradient step
    eps_start: float = 1.0  # dqn: epsilon-greedy, linear from eps_start to eps_end ...
    eps_end: float = 0.05
    eps_fraction: float = 0.2  # ... over this fraction of total_env_steps
    alpha_init: float = 0.1  # sac: initial entropy temperature
    target_entropy_scale: float = 0.3  # sac: target entropy = scale * log(number of legal actions)
    network: str = "per_rb"  # "per_rb" (per-RB head), "set" (size-free) or "mlp" (flat)
    hidden: tuple = (64, 64)
    rb_hidden: int = 32  # width of the per-RB head ("per_rb", "set": also the embeddings)
    rb_candidates: int = 0  # "set": RBs scored per decision, M of the free ones (0: all Q)
    rb_candidate_rule: str = "top"  # which M: "top" (best by SINR) or "spread" (half best, half
    # a sample of the other free RBs; networks._candidate_rbs)
    # --- run ---
    num_seeds: int = 1
    seed: int = 0
    eval_episodes: int = 1024
    eval_seed: int = 12345
    ceiling_draws: int = 256  # Monte-Carlo draws per held-out episode for the paper ceiling; 0: off
    # Updates per compiled call; after each: held-out evaluation, metrics, checkpoint, progress.
    # 0 = auto (see updates_per_chunk); the CLI's --eval-every STEPS sets it from env steps.
    chunk_updates: int = 0
    devices: int = 0  # devices the env batch is split over; 0 = all local (see sharding.py)

    @classmethod
    def for_algo(cls, algo: str = "ppo", **overrides) -> "TrainConfig":
        """The defaults of ``algo`` (``ALGO_DEFAULTS``; PPO with ``network="set"`` also
        ``SET_NETWORK_DEFAULTS``), then ``overrides``."""
        if algo not in ALGOS:
            raise ValueError(f"config key 'algo' must be one of {ALGOS}, got {algo!r}")
        network = {**SET_NETWORK_DEFAULTS} if (algo == "ppo"
                                                and overrides.get("network") == "set") else {}
        return cls(**{**ALGO_DEFAULTS[algo], **network, "algo": algo, **overrides})

    # ------------------------------------------------------------------ derived
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

    @property
    def num_steps(self) -> int:
        return self.episodes_per_rollout * self.episode_length

    @property
    def steps_per_update(self) -> int:
        return self.num_steps * self.num_envs

    @property
    def num_updates(self) -> int:
        return max(1, self.total_env_steps // self.steps_per_update)

    @property
    def updates_per_chunk(self) -> int:
        """``chunk_updates``, or when 0 about ``AUTO_EVALUATIONS`` evaluations per run (at least
        one update, at most ``AUTO_CHUNK_MAX[algo]`` per chunk)."""
        if self.chunk_updates > 0:
            return self.chunk_updates
        return max(1, min(self.num_updates // AUTO_EVALUATIONS, AUTO_CHUNK_MAX[self.algo]))

    @property
    def minibatch_size(self) -> int:
        return self.steps_per_update // self.num_minibatches

    def make_env_params(self) -> EnvParams:
        """``env_params`` on the model's defaults (docs/model.md) (validation; an env built for a table with its
        own encoder costs starts from those instead: ``SemComEnv.make_params``)."""
        return EnvParams.from_dict(self.env_params)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for name in ("hidden", "train_users", "train_rbs"):
            d[name] = list(getattr(self, name))
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; known keys: {sorted(fields)}")
        kwargs = {}
        defaults = cls()
        algo = d.get("algo", "ppo")
        for name, value in d.items():
            ref = getattr(defaults, name)
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
                raise ValueError(f"config key {name!r} must be of type {type(ref).__name__}, "
                                 f"got {value!r}")
            kwargs[name] = value
        kwargs.pop("algo", None)
        cfg = cls.for_algo(algo, **kwargs)
        cfg.validate()
        return cfg

    @classmethod
    def from_file(cls, path: str) -> "TrainConfig":
        return cls.from_dict(read_config_file(path))

    def validate(self) -> "TrainConfig":
        def need(cond, name, what):
            if not cond:
                raise ValueError(f"config key {name!r} {what}, got {getattr(self, name)!r}")

        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, int) and not isinstance(v, bool):
                need(-MAX_INT <= v <= MAX_INT, f.name, f"must lie within +-{MAX_INT} (int32)")
            elif isinstance(v, float):
                need(math.isfinite(v), f.name, "must be finite")
        for name in ("num_users", "num_rbs", "num_envs", "episodes_per_rollout", "total_env_steps",
                     "update_epochs", "num_minibatches", "num_seeds", "eval_episodes"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        need(self.chunk_updates >= 0, "chunk_updates", "must be >= 0 (0 = auto)")
        for name in ("seed", "eval_seed"):
            need(getattr(self, name) >= 0, name, f"must lie in [0, {MAX_INT}]")
        need(self.num_envs * self.num_steps <= MAX_INT, "num_envs",
             f"times the rollout's {self.num_steps} steps must stay <= {MAX_INT} (int32)")
        need(self.algo in ALGOS, "algo", f"must be one of {ALGOS}")
        need(self.devices >= 0, "devices", "must be >= 0 (0 = all local devices)")
        need(self.ceiling_draws == 0 or self.ceiling_draws >= 2, "ceiling_draws",
             "must be 0 (no paper ceiling) or >= 2")
        need(self.network in NETWORKS, "network", f"must be one of {NETWORKS}")
        need(self.rb_hidden >= 1, "rb_hidden", "must be >= 1")
        need(self.rb_candidates >= 0, "rb_candidates", "must be >= 0 (0 = every RB)")
        need(self.rb_candidates == 0 or self.network == "set", "rb_candidates",
             "is an option of network 'set' only (use 0 with 'per_rb' or 'mlp')")
        need(self.rb_candidate_rule in CANDIDATE_RULES, "rb_candidate_rule",
             f"must be one of {CANDIDATE_RULES}")
        for name in ("train_users", "train_rbs"):
            v = tuple(getattr(self, name))
            need(v == () or (len(v) == 2 and 1 <= v[0] <= v[1]), name,
                 "must be () or (min, max) with 1 <= min <= max")
        if self.sized:
            need(self.network == "set", "network",
                 "must be 'set' to train across sizes (train_users / train_rbs): only its "
                 "parameters do not depend on U and Q")
        need(self.objective in OBJECTIVES, "objective", f"must be one of {OBJECTIVES}")
        need(self.obs_mode in OBS_MODES, "obs_mode", f"must be one of {OBS_MODES}")
        need(self.reward in REWARDS, "reward", f"must be one of {tuple(REWARDS)}")
        need(self.score in SCORES, "score", f"must be one of {tuple(SCORES)}")
        need(self.rng in BIT_SOURCES, "rng", f"must be one of {BIT_SOURCES}")
        for name in ("lr", "clip_eps", "max_grad_norm", "kl_target", "kl_coef_init"):
            v = getattr(self, name)
            need(math.isfinite(v) and v > 0, name, "must be finite and > 0")
        for name in ("ent_coef", "vf_coef"):
            v = getattr(self, name)
            need(math.isfinite(v) and v >= 0, name, "must be finite and >= 0")
        for name in ("gamma", "gae_lambda"):
            v = getattr(self, name)
            need(0.0 <= v <= 1.0, name, "must lie in [0, 1]")
        need(len(self.hidden) >= 1 and all(h >= 1 for h in self.hidden), "hidden",
             "must list at least one positive layer width")
        if self.algo == "ppo" and self.network == "set":
            # Minibatches of whole episodes (agents/episodic.py).
            episodes = self.episodes_per_rollout * self.num_envs
            need(episodes % self.num_minibatches == 0, "num_minibatches",
                 f"must divide the episodes per rollout, num_envs * episodes_per_rollout = "
                 f"{episodes} (network 'set' forms minibatches of whole episodes)")
        elif self.algo == "ppo":
            need(self.steps_per_update % self.num_minibatches == 0, "num_minibatches",
                 f"must divide the rollout size num_envs * rollout steps = "
                 f"{self.steps_per_update}")
        else:
            for name in ("batch_size", "gradient_steps"):
                need(getattr(self, name) >= 1, name, "must be >= 1")
            need(self.learning_starts >= 0, "learning_starts", "must be >= 0")
            need(self.buffer_size >= self.steps_per_update, "buffer_size",
                 f"must hold at least one rollout of {self.steps_per_update} transitions")
            need(self.batch_size <= self.buffer_size, "batch_size",
                 f"must be <= buffer_size ({self.buffer_size})")
            need(0.0 < self.tau <= 1.0, "tau", "must lie in (0, 1]")
            for name in ("eps_start", "eps_end", "eps_fraction", "target_entropy_scale"):
                need(0.0 <= getattr(self, name) <= 1.0, name, "must lie in [0, 1]")
            need(self.eps_end <= self.eps_start, "eps_end", "must be <= eps_start")
            need(math.isfinite(self.alpha_init) and self.alpha_init > 0, "alpha_init",
                 "must be finite and > 0")
        need(self.total_env_steps >= self.steps_per_update, "total_env_steps",
             f"must be at least one update's {self.steps_per_update} env steps")
        if self.table:
            need(os.path.isfile(table_path(self.table)), "table",
                 f"must name an existing table file or a shipped table {sorted(NAMED_TABLES)}")
        self.make_env_params()  # raises naming a bad physical parameter
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
