"""Physical parameters of the network (docs/model.md), their validation and JSON form.

Sizes that fix array shapes (users ``U``, resource blocks ``Q``) are *not* here: they are
constructor arguments of the environment. Everything in :class:`EnvParams` is a physical constant
or a sampling range, so a sweep over any of them is a ``jax.vmap`` over a params pytree.

Validation runs on the host, once (``validate_params``), never inside a traced function.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np
from flax import struct

from semcom_jax.physics.bounds import check_float32_range

# The paper's three CLIP image encoders, in the order of every (K,) field below; the builders
# name their encoders from here.
ENCODER_NAMES = ("ViT-B/32", "ViT-B/16", "ViT-L/14")


@struct.dataclass
class EnvParams:
    """Physical constants and per-episode sampling ranges. Units are in the field names."""

    # --- radio (paper Table I) ---
    tx_power_w: float = 0.2  # P, BS transmit power per RB
    pathloss_exp: float = 2.0  # alpha
    noise_psd_w_per_hz: float = 4e-21  # N0 (= 4e-15 W/MHz)
    rb_bandwidth_hz: float = 20e6  # W, bandwidth of one RB
    interference_lo_w: float = 1e-9  # I_q ~ log-uniform [lo, hi]
    interference_hi_w: float = 1.0
    # --- budgets and penalties (paper Table I) ---
    delay_budget_s: float = 0.2  # D
    energy_budget_j: float = 20.0  # E
    lam_delay: float = 1.0  # lambda_D
    lam_energy: float = 1.0  # lambda_E
    # --- base station compute (paper Table I) ---
    bs_freq_lo_hz: float = 2.5e9  # f^B ~ U[lo, hi]
    bs_freq_hi_hz: float = 3.5e9
    bs_cycles_lo_per_bit: float = 500.0  # omega^B ~ U[lo, hi]
    bs_cycles_hi_per_bit: float = 1000.0
    # --- geometry (ours) ---
    cell_radius_m: float = 500.0  # R
    min_distance_m: float = 10.0  # d_min
    # --- images and users (ours) ---
    image_bits_lo: float = 32 * 32 * 24.0  # D^X_i ~ U[lo, hi]
    image_bits_hi: float = 64 * 64 * 24.0
    user_freq_lo_hz: float = 1e9  # f^U_i ~ U[lo, hi]
    user_freq_hi_hz: float = 2e9
    user_cycles_lo_per_bit: float = 500.0  # omega^U_i ~ U[lo, hi]
    user_cycles_hi_per_bit: float = 1000.0
    decoder_size: float = 1.0  # D^E
    zeta_bs: float = 1e-24  # BS energy coefficient
    zeta_user: float = 1e-28  # user energy coefficient
    # --- encoders, one entry per CLIP model, shape (K,) ---
    encoder_compute: tuple = (1.0, 3.96, 18.4)  # D^M_k, vision-tower GFLOPs / 4.4
    encoder_feature_bits: tuple = (512 * 32.0, 512 * 32.0, 768 * 32.0)  # D^O_k, fp32 embedding
    # --- the RL interface (ours); static: part of the compiled program, not a leaf, so params
    # saved before they existed still restore, and gymnax clients may read them as Python ints.
    # How far below the worst user term of eq. (11) an invalid action's term lies (>= 0).
    invalid_action_penalty: float = struct.field(pytree_node=False, default=0.0)
    # gymnax's episode length, always U here (each user is decided once); 0 until an env fills
    # it in (``SemComEnv.default_params`` and ``check_params`` do).
    max_steps_in_episode: int = struct.field(pytree_node=False, default=0)

    @property
    def num_encoders(self) -> int:
        return len(self.encoder_compute)

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                out[f.name] = [float(x) for x in v]
            else:
                out[f.name] = int(v) if f.name in _INT_FIELDS else float(v)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], base: "EnvParams | None" = None) -> "EnvParams":
        """Builds validated params from a mapping of overrides on ``base`` (default: the model's
        defaults); unknown keys and wrong types are refused."""
        if not isinstance(d, Mapping):
            raise ValueError(f"parameters must be a mapping of names to values, got {_short(d)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown parameter(s) {unknown}; known parameters: {sorted(known)}")
        kwargs = {}
        for name, value in d.items():
            try:
                if name in _TUPLE_FIELDS:
                    if not isinstance(value, (list, tuple)) or not all(map(_is_number, value)):
                        raise ValueError(f"parameter {name!r} must be a list of numbers, "
                                         f"got {_short(value)}")
                    kwargs[name] = tuple(float(x) for x in value)
                elif name in _INT_FIELDS:
                    if not _is_number(value) or not float(value).is_integer():
                        raise ValueError(f"parameter {name!r} must be a whole number, "
                                         f"got {_short(value)}")
                    kwargs[name] = int(value)
                else:
                    if not _is_number(value):
                        raise ValueError(f"parameter {name!r} must be a number, got {_short(value)}")
                    kwargs[name] = float(value)
            except OverflowError:
                raise ValueError(f"parameter {name!r} is too large for a float: "
                                 f"{_short(value)}") from None
        params = (base if base is not None else cls()).replace(**kwargs)
        validate_params(params)
        return params


_TUPLE_FIELDS = ("encoder_compute", "encoder_feature_bits")
_INT_FIELDS = ("max_steps_in_episode",)

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal; XLA's CPU flushes smaller to 0
# Reward penalties are summed over up to millions of users: keep the sum far from float32's max.
MAX_PENALTY = 1e30

# name -> (lower bound, lower bound inclusive?) ; every scalar must also be finite.
_POSITIVE = (
    "tx_power_w", "noise_psd_w_per_hz", "rb_bandwidth_hz", "interference_lo_w", "interference_hi_w",
    "delay_budget_s", "energy_budget_j", "bs_freq_lo_hz", "bs_freq_hi_hz", "bs_cycles_lo_per_bit",
    "bs_cycles_hi_per_bit", "cell_radius_m", "min_distance_m", "image_bits_lo", "image_bits_hi",
    "user_freq_lo_hz", "user_freq_hi_hz", "user_cycles_lo_per_bit", "user_cycles_hi_per_bit",
    "decoder_size", "pathloss_exp",
)
_NON_NEGATIVE = ("lam_delay", "lam_energy", "zeta_bs", "zeta_user", "invalid_action_penalty")
_RANGES = (
    ("interference_lo_w", "interference_hi_w"),
    ("bs_freq_lo_hz", "bs_freq_hi_hz"),
    ("bs_cycles_lo_per_bit", "bs_cycles_hi_per_bit"),
    ("min_distance_m", "cell_radius_m"),
    ("image_bits_lo", "image_bits_hi"),
    ("user_freq_lo_hz", "user_freq_hi_hz"),
    ("user_cycles_lo_per_bit", "user_cycles_hi_per_bit"),
)


def _short(x: Any, limit: int = 60) -> str:
    r = repr(x)
    return r if len(r) <= limit else r[:limit] + "..."


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate_params(params: EnvParams, num_encoders: int | None = None) -> EnvParams:
    """Raises ``ValueError`` naming the first invalid parameter and its allowed range.

    Host-side only: call it once before jitting, never on traced values. Besides the ranges
    below, every quantity the simulator computes must stay finite in float32 at the most extreme
    draws the parameters allow (``physics.bounds``).
    """
    if not isinstance(params, EnvParams):
        raise TypeError(f"expected EnvParams, got {type(params).__name__}")
    for name in _POSITIVE + _NON_NEGATIVE:
        v = getattr(params, name)
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name!r} must be a scalar number, got {v!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"parameter {name!r} must be finite, got {v}")
        if name in _POSITIVE and v <= 0:
            raise ValueError(f"parameter {name!r} must be > 0, got {v}")
        if not F32_TINY <= abs(v) <= F32_MAX and v != 0:
            raise ValueError(f"parameter {name!r} = {v} is outside float32's range "
                             f"({F32_TINY:.3g}..{F32_MAX:.3g}), in which the simulator computes")
        if name in _NON_NEGATIVE and v < 0:
            raise ValueError(f"parameter {name!r} must be >= 0, got {v}")
    for lo, hi in _RANGES:
        if float(getattr(params, lo)) > float(getattr(params, hi)):
            raise ValueError(
                f"empty range: {lo}={getattr(params, lo)} must be <= {hi}={getattr(params, hi)}"
            )
    k = len(params.encoder_compute)
    if len(params.encoder_feature_bits) != k:
        raise ValueError(
            f"parameter 'encoder_feature_bits' has {len(params.encoder_feature_bits)} entries but "
            f"'encoder_compute' has {k}: one entry per encoder is required"
        )
    if k < 1:
        raise ValueError("parameter 'encoder_compute' must list at least one encoder")
    if num_encoders is not None and k != num_encoders:
        raise ValueError(
            f"parameters describe {k} encoders ('encoder_compute') but the task table has "
            f"{num_encoders}: one entry per encoder is required"
        )
    for name in _TUPLE_FIELDS:
        for i, v in enumerate(getattr(params, name)):
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"parameter {name!r}[{i}] must be a number, got {v!r}") from None
            if not math.isfinite(v) or v <= 0 or not F32_TINY <= v <= F32_MAX:
                raise ValueError(f"parameter {name!r}[{i}] must be > 0 and within float32's "
                                 f"range ({F32_TINY:.3g}..{F32_MAX:.3g}), got {v}")
    steps = params.max_steps_in_episode
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 0:
        raise ValueError(f"parameter 'max_steps_in_episode' must be a whole number >= 0 (0: the "
                         f"env's number of users), got {steps!r}")
    for name in ("lam_delay", "lam_energy", "invalid_action_penalty"):
        if float(getattr(params, name)) > MAX_PENALTY:
            raise ValueError(f"parameter {name!r} must be <= {MAX_PENALTY:g} (rewards are summed "
                             f"over users in float32), got {getattr(params, name)}")
    check_float32_range(params)
    return params


def validate_sizes(num_users: int, num_rbs: int) -> None:
    """Checks the shape arguments U and Q."""
    for name, v in (("num_users", num_users), ("num_rbs", num_rbs)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise ValueError(f"{name} must be an int, got {v!r}")
        if v < 1:
            raise ValueError(f"{name} must be >= 1, got {v}")


# Where each default comes from; the README table is generated from the same source of truth.
PROVENANCE = {
    "tx_power_w": "paper Table I",
    "pathloss_exp": "paper Table I",
    "noise_psd_w_per_hz": "paper Table I (4e-15 W/MHz)",
    "rb_bandwidth_hz": "paper Table I",
    "interference_lo_w": "paper Table I",
    "interference_hi_w": "paper Table I",
    "delay_budget_s": "paper Table I",
    "energy_budget_j": "paper Table I",
    "lam_delay": "paper Table I",
    "lam_energy": "paper Table I",
    "bs_freq_lo_hz": "paper Table I",
    "bs_freq_hi_hz": "paper Table I",
    "bs_cycles_lo_per_bit": "paper Table I",
    "bs_cycles_hi_per_bit": "paper Table I",
    "cell_radius_m": "ours",
    "min_distance_m": "ours",
    "image_bits_lo": "ours (RGB 32x32)",
    "image_bits_hi": "ours (RGB 64x64)",
    "user_freq_lo_hz": "ours",
    "user_freq_hi_hz": "ours",
    "user_cycles_lo_per_bit": "ours",
    "user_cycles_hi_per_bit": "ours",
    "decoder_size": "ours",
    "zeta_bs": "ours",
    "zeta_user": "ours",
    "encoder_compute": "ours, CLIP vision-tower GFLOPs / 4.4",
    "encoder_feature_bits": "CLIP embedding widths x 32 bits",
    "invalid_action_penalty": "ours (0: an invalid action pays the worst user term)",
    "max_steps_in_episode": "gymnax's field; always U",
}
