"""Evaluation: ``solvers`` (per-episode action tables, random, greedy, fixed-encoder and optimal
assignments, assignment statistics), ``auction`` (the certified assignment at large U), ``report`` (the one report row, the normalised score, the
printed comparison) and ``evaluate`` (a policy played greedily on held-out episodes and scored
against every baseline)."""
