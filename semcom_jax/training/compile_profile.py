"""Where a cold start goes: every program JAX compiles, with its tracing, lowering (jaxpr to
MLIR) and XLA compile seconds, from JAX's own monitoring events
(``jax.monitoring.register_event_duration_secs_listener``), and the persistent cache's hits
(a hit's "XLA" seconds are its load from the cache).

    with CompileProfile() as prof:
        runs.train(cfg, run_dir)
    print(prof.table())
    prof.write_csv(os.path.join(run_dir, "compile_profile.csv"))

``semcom-jax train --profile-compile`` does this and writes ``compile_profile.csv`` into the run
folder. Tracing a function that is not compiled (``jax.make_jaxpr``, an ``eval_shape``) counts
its trace only.
"""

from __future__ import annotations

import csv
import threading

import jax

# JAX's event names (jax/_src/dispatch.py) and the column each one fills
EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace_s",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower_s",
    "/jax/core/compile/backend_compile_duration": "compile_s",  # or its persistent-cache load
}
CACHE_HIT = "/jax/compilation_cache/cache_hits"
COLUMNS = ("program", "count", "trace_s", "lower_s", "compile_s", "total_s")


class CompileProfile:
    """Collects JAX's compile-time events while active (a context manager), per program name.
    Thread-safe; nothing is recorded outside the ``with`` block."""

    def __init__(self):
        self._rows: dict = {}
        self._lock = threading.Lock()
        self._on = False
        self.cache_hits = 0  # programs loaded from the persistent compilation cache

    def _hit(self, event: str, **kwargs) -> None:
        if event == CACHE_HIT and self._on:
            with self._lock:
                self.cache_hits += 1

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        col = EVENTS.get(event)
        if col is None or not self._on:
            return
        name = str(kwargs.get("fun_name", "?"))
        # lowering and compilation name the program "jit(f)"; tracing names the function "f"
        if name.startswith("jit(") and name.endswith(")"):
            name = name[4:-1]
        with self._lock:
            row = self._rows.setdefault(name, {c: 0.0 for c in COLUMNS[1:]})
            row[col] += float(duration)
            row["count"] += col == "trace_s"
            row["total_s"] = row["trace_s"] + row["lower_s"] + row["compile_s"]

    def __enter__(self) -> "CompileProfile":
        self._on = True
        jax.monitoring.register_event_duration_secs_listener(self._listen)
        jax.monitoring.register_event_listener(self._hit)
        return self

    def __exit__(self, *exc) -> None:
        self._on = False
        jax.monitoring.unregister_event_duration_listener(self._listen)
        jax.monitoring.unregister_event_listener(self._hit)

    def rows(self) -> list[dict]:
        """One dict per program (:data:`COLUMNS`), the costliest first."""
        with self._lock:
            rows = [{"program": k, **v} for k, v in self._rows.items()]
        return sorted(rows, key=lambda r: -r["total_s"])

    def totals(self) -> dict:
        rows = self.rows()
        return {c: sum(r[c] for r in rows) for c in COLUMNS[1:]}

    def table(self, top: int = 15) -> str:
        rows = self.rows()
        head = (f"{'program':<40}{'traces':>7}{'trace s':>9}{'lower s':>9}{'XLA s':>9}"
                f"{'total s':>9}")
        lines = [head, "-" * len(head)]
        for r in rows[:top] + ([{"program": f"({len(rows) - top} more)", **{
                c: sum(x[c] for x in rows[top:]) for c in COLUMNS[1:]}}] if len(rows) > top
                else []):
            lines.append(f"{r['program'][:39]:<40}{int(r['count']):>7}{r['trace_s']:>9.2f}"
                         f"{r['lower_s']:>9.2f}{r['compile_s']:>9.2f}{r['total_s']:>9.2f}")
        t = self.totals()
        lines.append(f"{'all programs':<40}{int(t['count']):>7}{t['trace_s']:>9.2f}"
                     f"{t['lower_s']:>9.2f}{t['compile_s']:>9.2f}{t['total_s']:>9.2f}")
        if self.cache_hits:
            lines.append(f"({self.cache_hits} program(s) loaded from the persistent cache: "
                         "their XLA seconds are the load)")
        return "\n".join(lines)

    def write_csv(self, path: str) -> None:
        from semcom_jax.atomic import atomic_open

        with atomic_open(path, "w") as fh:
            w = csv.DictWriter(fh, fieldnames=COLUMNS)
            w.writeheader()
            w.writerows(self.rows())
