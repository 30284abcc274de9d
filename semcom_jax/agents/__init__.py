"""Agents: shared networks, PPO (the paper's method); configuration in ``config``."""
