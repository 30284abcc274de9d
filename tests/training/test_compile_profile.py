"""The compile profile records what JAX compiles inside its block, per program, and nothing
else."""

import csv

import jax
import jax.numpy as jnp

from semcom_jax.training.compile_profile import COLUMNS, CompileProfile


def test_programs_compiled_in_the_block_are_recorded_by_name(tmp_path):
    def profiled_square_sum(x):
        return jnp.sum(x * x)

    def not_profiled(x):
        return x + 1

    f, g = jax.jit(profiled_square_sum), jax.jit(not_profiled)
    g(jnp.ones(3)).block_until_ready()
    with CompileProfile() as prof:
        f(jnp.ones(4)).block_until_ready()
        f(jnp.ones(4)).block_until_ready()  # compiled already: nothing new
        f(jnp.ones(5)).block_until_ready()  # a new shape: traced and compiled again
    g(jnp.ones(7)).block_until_ready()  # after the block: not recorded
    rows = {r["program"]: r for r in prof.rows()}
    assert "profiled_square_sum" in rows and "not_profiled" not in rows
    r = rows["profiled_square_sum"]
    assert r["count"] == 2 and r["compile_s"] > 0 and r["lower_s"] > 0 and r["trace_s"] > 0
    assert abs(r["total_s"] - (r["trace_s"] + r["lower_s"] + r["compile_s"])) < 1e-12
    assert "profiled_square_sum" in prof.table() and "all programs" in prof.table()
    prof.write_csv(tmp_path / "p.csv")
    with open(tmp_path / "p.csv") as fh:
        got = list(csv.DictReader(fh))
    assert tuple(got[0]) == COLUMNS and {x["program"] for x in got} == set(rows)
