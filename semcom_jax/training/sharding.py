"""Sharding the environment batch over devices (one host or many).

The runner state of every agent holds the env batch in ``vstate`` and ``obs``, with leaves shaped
``(seeds, num_envs, ...)``. We place those leaves on a one-axis device mesh ``("envs",)``, split
along ``num_envs``, and replicate everything else (parameters, optimiser state, keys, replay
buffer). The training program itself is unchanged: ``jit`` partitions it from these input
shardings (GSPMD), so every device steps its share of the envs and runs the network on its
share of the batch, and the gradient of the loss, a sum over the batch, is reduced across
devices by the partitioner; that is where the per-device gradients are averaged. The result is
the single-device computation up to the order of floating-point sums (tested with four CPU
devices).

Multi-process: join JAX's runtime first (``semcom-jax train --distributed``,
:mod:`semcom_jax.cli.launch`); ``jax.devices()`` is then every device of every process, the mesh
spans them all and each process feeds the same program (tested with two local processes,
docs/training.md).
"""

from __future__ import annotations



import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def device_count_for(num_envs: int, requested: int = 0) -> int:
    """Devices to use: ``requested`` (0 = all), reduced to the largest count dividing
    ``num_envs`` when ``requested`` is 0; an explicit count must divide it."""
    available = len(jax.devices())
    if requested < 0:
        raise ValueError(f"config key 'devices' must be >= 0 (0 = all), got {requested}")
    if requested > available:
        raise ValueError(f"config key 'devices' asks for {requested} devices, "
                         f"only {available} are visible")
    if requested:
        if num_envs % requested:
            raise ValueError(f"config key 'num_envs' ({num_envs}) must be a multiple of the "
                             f"{requested} devices it is split over")
        return requested
    return max(d for d in range(1, available + 1) if num_envs % d == 0)


def env_mesh(num_devices: int) -> Mesh:
    return Mesh(np.asarray(jax.devices()[:num_devices]), ("envs",))


def state_shardings(state, mesh: Mesh):
    """Shardings for a (seed-batched) runner state: ``vstate.env_state`` and ``obs`` split on
    their env axis (axis 1), everything else replicated. ``state`` may be abstract."""
    replicated = NamedSharding(mesh, P())
    split = NamedSharding(mesh, P(None, "envs"))
    shardings = jax.tree.map(lambda _: replicated, state)
    batched = jax.tree.map(lambda x: split if np.ndim(x) >= 2 else replicated,
                           (state.vstate.env_state, state.obs))
    return shardings.replace(vstate=shardings.vstate.replace(env_state=batched[0]),
                             obs=batched[1])


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())



