"""Agents: ``config`` (TrainConfig), ``networks``, ``rollout`` (step records, the rollout scan,
metrics), ``base`` (the Trainer all algorithms share), ``ppo`` (the paper's method),
``offpolicy`` with ``sac`` and ``dqn``, and ``evaluate`` (greedy play against the baselines)."""
