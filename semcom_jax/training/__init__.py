"""Training runs: ``experiment`` (everything a run needs, built from a config), ``runs`` (run
folders with progress, metrics, checkpoints and resume), ``files`` and ``checkpoints`` (what a
run folder holds), ``plots``, ``sharding`` (the env batch over devices and hosts) and ``sweep``
(many sizes as one vmapped program)."""
