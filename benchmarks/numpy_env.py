"""The same environment maths written with plain numpy, vectorised over a batch of envs.

This is the baseline a user would otherwise write; it lives in ``benchmarks/`` only. It follows
``semcom_jax.env`` (paper observation, terminal reward, table scores, lock-step auto-reset) so the
two do the same work per step.
"""

from __future__ import annotations

import numpy as np


class NumpyVecEnv:
    def __init__(self, num_envs, num_users, num_rbs, params, snr_db, score, chance_score, seed=0):
        self.b, self.u, self.q = num_envs, num_users, num_rbs
        self.p = params
        self.snr_db = np.asarray(snr_db, np.float32)
        self.score = np.asarray(score, np.float32)
        self.k = self.score.shape[0]
        self.chance = float(chance_score)
        self.compute = np.asarray(params.encoder_compute, np.float32)
        self.bits = np.asarray(params.encoder_feature_bits, np.float32)
        self.rng = np.random.default_rng(seed)

    def reset(self):
        p, b, u, q, rng = self.p, self.b, self.u, self.q, self.rng
        r = np.sqrt(rng.uniform(p.min_distance_m**2, p.cell_radius_m**2, (b, u)))
        th = rng.uniform(0, 2 * np.pi, (b, u))
        self.xy = np.stack([r * np.cos(th), r * np.sin(th)], -1).astype(np.float32)
        self.dist = r.astype(np.float32)
        self.fading = rng.exponential(1.0, (b, u)).astype(np.float32)
        self.interf = 10.0 ** rng.uniform(np.log10(p.interference_lo_w),
                                          np.log10(p.interference_hi_w), (b, q)).astype(np.float32)
        self.fb = rng.uniform(p.bs_freq_lo_hz, p.bs_freq_hi_hz, b).astype(np.float32)
        self.wb = rng.uniform(p.bs_cycles_lo_per_bit, p.bs_cycles_hi_per_bit, b).astype(np.float32)
        self.img = rng.uniform(p.image_bits_lo, p.image_bits_hi, (b, u)).astype(np.float32)
        self.fu = rng.uniform(p.user_freq_lo_hz, p.user_freq_hi_hz, (b, u)).astype(np.float32)
        self.wu = rng.uniform(p.user_cycles_lo_per_bit, p.user_cycles_hi_per_bit, (b, u)).astype(np.float32)
        self.t = 0
        self.used = np.zeros((b, q), bool)
        self.user_reward = np.zeros((b, u), np.float32)
        return self._obs()

    def _obs(self):
        p, u = self.p, min(self.t, self.u - 1)
        noise = p.rb_bandwidth_hz * p.noise_psd_w_per_hz
        mean_sinr = p.tx_power_w * self.dist[:, u:u + 1] ** (-p.pathloss_exp) / (self.interf + noise)
        onehot = np.zeros((self.b, self.u), np.float32)
        if self.t < self.u:
            onehot[:, self.t] = 1.0
        feats = np.concatenate([
            (np.log10(self.interf) + 4.5) / 4.5, self.used.astype(np.float32),
            (self.xy / p.cell_radius_m).reshape(self.b, -1), onehot,
            self.xy[:, u] / p.cell_radius_m, self.dist[:, u:u + 1] / p.cell_radius_m,
            10.0 * np.log10(mean_sinr) / 30.0], axis=1)
        mask = np.tile(~self.used, (1, self.k))
        return feats, mask

    def step(self, actions):
        p, b, u, q = self.p, self.b, self.t, self.q
        k = actions // q
        rb = actions % q
        rows = np.arange(b)
        served = ~self.used[rows, rb]
        gain = self.fading[:, u] * self.dist[:, u] ** (-p.pathloss_exp)
        sinr = p.tx_power_w * gain / (self.interf[rows, rb] + p.rb_bandwidth_hz * p.noise_psd_w_per_hz)
        rate = p.rb_bandwidth_hz * np.log1p(sinr) / np.log(2.0)
        lt = self.bits[k] / rate
        delay = (self.wb * self.img[:, u] * self.compute[k] / self.fb + lt
                 + self.wu[:, u] * self.bits[k] * p.decoder_size / self.fu[:, u])
        energy = (p.zeta_bs * self.fb**2 * self.img[:, u] * self.compute[k] + p.tx_power_w * lt
                  + p.zeta_user * self.fu[:, u] ** 2 * self.bits[k] * p.decoder_size)
        sdb = 10.0 * np.log10(sinr)
        score = np.empty(b, np.float32)
        for e in range(self.k):  # np.interp is 1-D: one call per encoder
            sel = k == e
            score[sel] = np.interp(sdb[sel], self.snr_db, self.score[e])
        term = (score - p.lam_delay * (delay > p.delay_budget_s)
                - p.lam_energy * (energy > p.energy_budget_j))
        term = np.where(served, term, self.chance - p.lam_delay)
        self.user_reward[:, u] = term
        self.used[rows, rb] |= served
        self.t += 1
        done = self.t >= self.u
        reward = self.user_reward.sum(1) if done else np.zeros(b, np.float32)
        obs = self.reset() if done else self._obs()
        return obs, reward, done


def random_legal_actions(rng, mask):
    count = np.cumsum(mask, axis=1)
    r = rng.random(mask.shape[0]) * count[:, -1]
    return np.argmax(count > r[:, None], axis=1)
