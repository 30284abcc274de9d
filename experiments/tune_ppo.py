"""Quick PPO tuning: one seed per config, its held-out score every chunk, time to 0.9, steps/s.
(The first chunk, i.e. compilation, is excluded from the times.)

    python experiments/tune_ppo.py '{"obs_mode": "full", "network": "mlp"}' '{"obs_mode": "full"}'

Each argument is a JSON object of TrainConfig keys (validated as a config file is).
"""

import argparse
import json
import time

import jax

from semcom_jax.agents.config import TrainConfig
from semcom_jax.training.experiment import Experiment


def tune(cfg: TrainConfig) -> dict:
    exp = Experiment(cfg)
    chunk = cfg.updates_per_chunk
    chunks = cfg.num_updates // chunk
    if chunks < 2:
        raise SystemExit(f"{cfg.num_updates} updates make fewer than 2 chunks of {chunk}: "
                         "raise total_env_steps or lower chunk_updates")
    st, _, _ = exp.run_chunk(exp.init_state(), chunk)  # compile
    jax.block_until_ready(st)
    t, t09, hist = time.time(), None, []
    for _ in range(1, chunks):
        st, _, e = exp.run_chunk(st, chunk)
        v = float(e["eval_normalised"][0])
        hist.append(round(v, 3))
        if t09 is None and v >= 0.9:
            t09 = time.time() - t
    dt = time.time() - t
    return {"final": hist[-1], "max": max(hist), "wall_s_to_0.9": t09,
            "steps_per_s": round((chunks - 1) * chunk * cfg.steps_per_update / dt),
            "every_4th_eval": hist[::4]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="+", metavar="JSON",
                    help='TrainConfig keys as a JSON object, e.g. \'{"obs_mode": "full"}\'')
    a = ap.parse_args(argv)
    for text in a.configs:
        try:
            keys = json.loads(text)
        except json.JSONDecodeError as e:
            raise SystemExit(f"not a JSON object of config keys: {text!r} ({e})") from None
        try:
            cfg = TrainConfig.from_dict(keys)
        except ValueError as e:
            raise SystemExit(f"{text}: {e}") from None
        print(text, "|", json.dumps(tune(cfg)), flush=True)


if __name__ == "__main__":
    main()
