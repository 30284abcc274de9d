"""JAX's multi-process runtime for ``semcom-jax train``: joining it, and starting it on one machine.

Every process runs the same ``semcom-jax train`` command with ``--distributed``; each calls
``jax.distributed.initialize`` before anything else, so ``jax.devices()`` lists the devices of
every process and the env batch is split over all of them (``training/sharding.py``). On a
cluster the coordinator, process count and id come from the flags ``--coordinator HOST:PORT
--num-processes N --process-id I`` or, under SLURM, Open MPI or on TPU, from JAX's own detection
(no flags). CPU processes exchange their collectives over gloo. ``semcom-jax launch --processes
N -- train ...`` starts N such processes on this machine (a free local port as the coordinator):
what a test of the multi-process path, or a try-out, needs; a cluster starts one per host.
"""

from __future__ import annotations

import socket
import subprocess
import sys


def initialize(coordinator: str | None, num_processes: int | None,
               process_id: int | None) -> None:
    """``jax.distributed.initialize`` with the given coordinates (all three, or none for JAX's
    cluster detection); CPU collectives over gloo."""
    given = [x is not None for x in (coordinator, num_processes, process_id)]
    if any(given) and not all(given):
        raise ValueError("--distributed: give --coordinator, --num-processes and --process-id "
                         "together, or none of them (SLURM, Open MPI, TPU: detected by JAX)")
    if all(given) and num_processes < 1:
        raise ValueError(f"--num-processes must be >= 1, got {num_processes}")
    if all(given) and not 0 <= process_id < num_processes:
        raise ValueError(f"--process-id must lie in [0, {num_processes}), got {process_id}")
    import jax

    # Without it, CPU processes cannot run a collective across each other; GPUs and TPUs use
    # their own (NCCL, ICI) and ignore the setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if all(given):
        jax.distributed.initialize(coordinator, num_processes=num_processes,
                                   process_id=process_id)
    else:
        jax.distributed.initialize()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def launch(processes: int, train_args: list[str]) -> int:
    """Runs ``semcom-jax train <train_args> --distributed ...`` as ``processes`` local processes
    and returns the first non-zero exit status (0 when all succeed). Each process sees one CPU
    device unless the environment says otherwise."""
    if processes < 1:
        raise ValueError(f"--processes must be >= 1, got {processes}")
    if not train_args or train_args[0] != "train":
        raise ValueError("launch runs a training command: semcom-jax launch --processes N "
                         "-- train [train options]")
    coordinator = f"localhost:{free_port()}"
    procs = [subprocess.Popen([sys.executable, "-m", "semcom_jax.cli.main", *train_args,
                               "--distributed", "--coordinator", coordinator,
                               "--num-processes", str(processes), "--process-id", str(i)]
                              + (["--no-progress"] if i else []))
             for i in range(processes)]
    codes = [p.wait() for p in procs]
    return next((c for c in codes if c), 0)
