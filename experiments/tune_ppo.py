"""Quick PPO tuning: trains one seed per config spec and prints the held-out normalised score
every chunk, the wall time to 0.9 (first chunk, i.e. compile, excluded) and env steps/s.

    python experiments/tune_ppo.py "obs_mode='full', network='mlp'" "obs_mode='full'"

Each argument is a list of TrainConfig keyword arguments.
"""

import time, jax, sys, json
from semcom_jax.agents.config import TrainConfig
from semcom_jax.training.experiment import Experiment
def main(specs):
  for spec in specs:
    kw = eval("dict(" + spec + ")")
    cfg = TrainConfig(**kw)
    exp = Experiment(cfg)
    st = exp.init_state()
    st, m, e = exp.run_chunk(st, cfg.chunk_updates)  # compile
    jax.block_until_ready(st)
    t = time.time(); t09 = None; hist = []
    for i in range(1, cfg.num_updates // cfg.chunk_updates):
        st, m, e = exp.run_chunk(st, cfg.chunk_updates)
        v = float(e['eval_normalised'][0]); hist.append(round(v, 3))
        if t09 is None and v >= 0.9: t09 = time.time() - t
    dt = time.time() - t
    print(spec, "| final", hist[-1], "| max", max(hist), "| t09", t09, "| steps/s", round((cfg.num_updates // cfg.chunk_updates - 1) * cfg.chunk_updates * cfg.steps_per_update / dt), "|", hist[::4], flush=True)

if __name__ == "__main__":
    main(sys.argv[1:])
