"""Baselines and the exact optimum: ``solvers`` (per-episode action tables, random, greedy,
fixed-encoder and optimal assignments, assignment statistics) and ``report`` (the normalised
score and the printed comparison)."""
