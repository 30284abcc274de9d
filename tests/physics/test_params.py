import json
import math

import pytest

from semcom_jax.physics.params import EnvParams, validate_params, validate_sizes


def test_defaults_are_valid_and_match_spec():
    p = validate_params(EnvParams())
    assert p.tx_power_w == 0.2 and p.rb_bandwidth_hz == 20e6 and p.noise_psd_w_per_hz == 4e-21
    assert p.delay_budget_s == 0.2 and p.energy_budget_j == 20.0
    assert p.encoder_compute == (1.0, 3.96, 18.4)
    assert p.encoder_feature_bits == (512 * 32.0, 512 * 32.0, 768 * 32.0)
    assert p.num_encoders == 3


@pytest.mark.parametrize("name,value", [
    ("tx_power_w", -0.1), ("rb_bandwidth_hz", 0.0), ("rb_bandwidth_hz", -5.0),
    ("noise_psd_w_per_hz", float("nan")), ("delay_budget_s", float("inf")),
    ("lam_delay", -1.0), ("cell_radius_m", 0.0), ("interference_lo_w", 0.0),
])
def test_bad_scalar_is_refused_by_name(name, value):
    with pytest.raises(ValueError, match=name):
        validate_params(EnvParams().replace(**{name: value}))


@pytest.mark.parametrize("lo,hi", [
    ("interference_lo_w", "interference_hi_w"), ("bs_freq_lo_hz", "bs_freq_hi_hz"),
    ("min_distance_m", "cell_radius_m"), ("image_bits_lo", "image_bits_hi"),
])
def test_empty_range_is_refused(lo, hi):
    p = EnvParams()
    bad = p.replace(**{lo: float(getattr(p, hi)) * 2})
    with pytest.raises(ValueError, match=f"{lo}.*{hi}"):
        validate_params(bad)


def test_wrong_number_of_encoders():
    with pytest.raises(ValueError, match="encoder_feature_bits"):
        validate_params(EnvParams(encoder_compute=(1.0, 2.0)))
    with pytest.raises(ValueError, match="table has 3"):
        validate_params(EnvParams(encoder_compute=(1.0, 2.0), encoder_feature_bits=(1.0, 2.0)),
                        num_encoders=3)


def test_sizes():
    validate_sizes(1, 1)
    with pytest.raises(ValueError, match="num_rbs"):
        validate_sizes(5, 0)
    with pytest.raises(ValueError, match="num_users"):
        validate_sizes(0, 3)


def test_json_round_trip_and_overrides():
    p = EnvParams(tx_power_w=0.5, encoder_compute=(1.0, 2.0, 3.0))
    q = EnvParams.from_dict(json.loads(json.dumps(p.to_dict())))
    assert q == p
    d = json.loads(json.dumps(p.to_dict()))
    assert d["tx_power_w"] == 0.5 and d["encoder_compute"] == [1.0, 2.0, 3.0]


def test_from_dict_refuses_unknown_key_and_wrong_type():
    with pytest.raises(ValueError, match="txpower"):
        EnvParams.from_dict({"txpower": 1.0})
    with pytest.raises(ValueError, match="tx_power_w"):
        EnvParams.from_dict({"tx_power_w": "high"})
    with pytest.raises(ValueError, match="tx_power_w"):
        EnvParams.from_dict({"tx_power_w": -1})
    assert math.isclose(EnvParams.from_dict({"tx_power_w": 1}).tx_power_w, 1.0)
