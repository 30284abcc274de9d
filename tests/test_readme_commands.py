"""The README's command block runs as written, in order, from an empty folder, with tiny
budgets (``SEMCOM_JAX_QUICK``): every command succeeds, or fails in the one documented way
this machine allows (no model hub, no Fashion-MNIST package), with a one-line error."""

import glob
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from semcom_jax.cli.main import QUICK_ENV

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)


def tour_commands() -> list[str]:
    """The README's block of ``semcom-jax`` commands (the tour), continuation lines joined and
    comments dropped."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    blocks = [code for lang, code in FENCE.findall(text) if lang == "bash"]
    tour = max(blocks, key=lambda b: b.count("semcom-jax"))
    lines = [line.split(" #")[0].strip() for line in tour.replace("\\\n", " ").splitlines()]
    return [" ".join(line.split()) for line in lines if line.startswith("semcom-jax")]


# The installed command, as a reader types it (else the same entry point through Python)
CLI = ([shutil.which("semcom-jax")] if shutil.which("semcom-jax") else
       [sys.executable, "-c", "import sys; from semcom_jax.cli.main import main; sys.exit(main())"])

# What only another machine has: the command must then fail at once, saying why.
NEEDS = {
    "tables clip": ("Hugging Face", "the CLIP checkpoints of the model hub"),
    "tables train-encoders": ("dataset-fashion-mnist", "Debian's Fashion-MNIST package"),
}


def test_the_tour_is_what_this_test_runs():
    cmds = tour_commands()
    assert len(cmds) >= 10 and cmds[0].startswith("semcom-jax train")
    assert any("runs/<run>" in c for c in cmds) and any("DATA" in c for c in cmds)


@pytest.mark.slow
def test_the_readme_commands_run_as_written(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    img = np.repeat((digits.images[:40] * 16).astype(np.uint8)[..., None], 3, axis=-1)
    np.savez(tmp_path / "data.npz", images=img, labels=digits.target[:40])
    env = {**os.environ, QUICK_ENV: "1", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    done = []
    for line in tour_commands():
        runs = sorted(glob.glob(str(tmp_path / "runs" / "*")), key=os.path.getmtime)
        cmd = line.replace("runs/<run>", os.path.relpath(runs[0], tmp_path) if runs else "x")
        cmd = cmd.replace("DATA", "data.npz")
        argv = CLI + cmd.split()[1:]
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
        need = next((v for k, v in NEEDS.items() if cmd.startswith(f"semcom-jax {k}")), None)
        if need is not None and r.returncode == 2:
            err = r.stderr.strip().splitlines()
            assert len(err) == 1 and need[0] in err[0], (line, r.stderr[-2000:])
            done.append(f"{line}: needs {need[1]}")
            continue
        assert r.returncode == 0, f"`{line}` failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        done.append(line)
    assert len(done) == len(tour_commands())
    # what the commands left behind: the runs they trained, the across-sizes run's folder
    assert os.path.isdir(tmp_path / "runs" / "across")
    assert len(glob.glob(str(tmp_path / "runs" / "*" / "summary.json"))) >= 4
