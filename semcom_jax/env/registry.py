"""``make(env_id, **kwargs) -> (env, env_params)``, as ``gymnax.make`` does, and the named variants.

Each id fixes the observation mode, the reward and the score mode; every other
:class:`~semcom_jax.env.environment.SemComEnv` argument is a keyword (``num_users``,
``num_rbs``, ``table`` (a :class:`~semcom_jax.tables.Table`, a shipped table's name or a file),
``rng``, ``flat_features``, ...). What ``make`` gives differs from the class's defaults in one
way, chosen for the agents gymnax users bring: the observation is one ``Box`` array
(``obs_format="flat"``: the flattened observation, then the action mask as 0/1), since gymnax
agents and wrappers expect an array; pass ``obs_format="structured"`` for the
:class:`~semcom_jax.env.types.Observation` pytree. ``step_api`` stays ``"done"`` (five values,
what PureJaxRL and rejax call); ``"terminated_truncated"`` gives gymnax 1.x's six.

Importing this module (``semcom_jax.make`` and ``import semcom_jax.env`` do) also registers
every id with gymnax (``gymnax.register``), so ``gymnax.make("SemCom-v0", ...)`` works after it.
"""

from __future__ import annotations

import gymnax

from semcom_jax.env.environment import SemComEnv
from semcom_jax.physics.params import EnvParams

# id -> the settings it fixes; the first is the paper's problem.
_VARIANTS = {
    "SemCom-v0": {"obs_mode": "paper", "reward": "terminal", "score": "table"},
    "SemCom-dense-v0": {"obs_mode": "paper", "reward": "dense", "score": "table"},
    "SemCom-full-v0": {"obs_mode": "full", "reward": "terminal", "score": "table"},
    "SemCom-full-dense-v0": {"obs_mode": "full", "reward": "dense", "score": "table"},
    "SemCom-features-v0": {"obs_mode": "paper", "reward": "terminal", "score": "features"},
    "SemCom-full-dense-features-v0": {"obs_mode": "full", "reward": "dense",
                                      "score": "features"},
}


def registered_envs() -> dict[str, dict[str, str]]:
    """Every id ``make`` knows, with the observation mode, reward and score it fixes."""
    return {k: dict(v) for k, v in _VARIANTS.items()}


def make(env_id: str = "SemCom-v0", **kwargs) -> tuple[SemComEnv, EnvParams]:
    """``(env, env.default_params)`` of a registered variant; keywords go to
    :class:`SemComEnv` (an id's own settings may not be overridden: pick another id)."""
    if env_id not in _VARIANTS:
        raise ValueError(f"unknown env id {env_id!r}; registered: {sorted(_VARIANTS)}")
    fixed = _VARIANTS[env_id]
    clash = sorted(set(fixed) & set(kwargs))
    if clash:
        raise ValueError(f"{env_id!r} fixes {clash} ({', '.join(f'{k}={fixed[k]!r}' for k in clash)}); "
                         f"choose the id with the settings you want: {sorted(_VARIANTS)}")
    kwargs.setdefault("obs_format", "flat")
    if isinstance(kwargs.get("table"), str):
        from semcom_jax.tables.format import load_table
        kwargs["table"] = load_table(kwargs["table"])
    env = SemComEnv(**fixed, **kwargs)
    return env, env.default_params


def _register_with_gymnax() -> None:
    register = getattr(gymnax, "register", None)  # gymnax 0.x has no registry to extend
    if register is None:
        return
    for env_id in _VARIANTS:
        if env_id not in gymnax.registered_envs:
            register(env_id, lambda _id=env_id, **kw: make(_id, **kw)[0])


_register_with_gymnax()
