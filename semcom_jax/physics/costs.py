"""Delay (eqs. 3-6) and energy (eqs. 7-9) of serving one user. Pure functions of arrays.

Units: bits, hertz, cycles per bit, seconds, joules. ``encoder_compute`` is D^M_k (relative
compute size), ``feature_bits`` is D^O_k, ``decoder_size`` is D^E.
"""

from __future__ import annotations



def bs_extraction_delay_s(bs_cycles_per_bit, image_bits, encoder_compute, bs_freq_hz):
    """Eq. (3): l^B = w^B D^X_i D^M_k / f^B."""
    return bs_cycles_per_bit * image_bits * encoder_compute / bs_freq_hz


def transmission_delay_s(feature_bits, rate_bps):
    """Eq. (4): l^T = D^O_k / c."""
    return feature_bits / rate_bps


def user_decoding_delay_s(user_cycles_per_bit, feature_bits, decoder_size, user_freq_hz):
    """Eq. (5): l^L = w^U_i D^O_k D^E / f^U_i."""
    return user_cycles_per_bit * feature_bits * decoder_size / user_freq_hz


def bs_energy_j(zeta_bs, bs_freq_hz, image_bits, encoder_compute, tx_power_w, tx_delay_s):
    """Eq. (7): e^B = zeta_B (f^B)^2 D^X_i D^M_k + P l^T."""
    return zeta_bs * bs_freq_hz**2 * image_bits * encoder_compute + tx_power_w * tx_delay_s


def user_energy_j(zeta_user, user_freq_hz, feature_bits, decoder_size):
    """Eq. (8): e^L = zeta_U (f^U_i)^2 D^O_k D^E."""
    return zeta_user * user_freq_hz**2 * feature_bits * decoder_size


def delay_and_energy(params, rate, image_bits, bs_freq_hz, bs_cycles_per_bit,
                     user_freq_hz, user_cycles_per_bit, encoder_compute, feature_bits):
    """Eqs. (6) and (9): total delay (s) and energy (J); arguments broadcast together."""
    l_t = transmission_delay_s(feature_bits, rate)
    delay = (
        bs_extraction_delay_s(bs_cycles_per_bit, image_bits, encoder_compute, bs_freq_hz)
        + l_t
        + user_decoding_delay_s(user_cycles_per_bit, feature_bits, params.decoder_size, user_freq_hz)
    )
    energy = bs_energy_j(
        params.zeta_bs, bs_freq_hz, image_bits, encoder_compute, params.tx_power_w, l_t
    ) + user_energy_j(params.zeta_user, user_freq_hz, feature_bits, params.decoder_size)
    return delay, energy
