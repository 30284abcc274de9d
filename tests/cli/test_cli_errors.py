"""Command-line user errors: one line naming the problem; --debug shows the traceback."""


import pytest

from semcom_jax.cli import main as cli


# ----------------------------------------------------------------------------- command line


def test_cli_user_errors_are_one_line(tmp_path, cli_error):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    out = ["--no-progress", "--out"]
    cases = [
        (["train", *out, str(a_file)], "is a file"),
        (["train", *out, str(tmp_path / "r1"), "--set", "noequals"], "--set"),
        (["train", *out, str(tmp_path / "r2"), "--set", "nokey=1"], "nokey"),
        (["train", *out, str(tmp_path / "r3"), "--devices", "3"], "devices"),
        (["train", *out, str(tmp_path / "r4"), "--users", "0"], "--users must be >= 1"),
        (["train", "--resume", str(tmp_path / "nothing")], "no config.json"),
        (["train", "--resume", str(tmp_path), "--users", "7"], "--users"),
        (["train", "--resume", str(tmp_path), "--config", "x.yaml"], "--config"),
        (["eval", str(tmp_path / "nothing")], "no config.json"),
        (["plot", str(tmp_path)], "no metrics"),
        (["baselines", "--episodes", "0"], "--episodes"),
        (["baselines", "--users", "0"], "--users must be >= 1"),
        (["baselines", "--table", str(a_file)], "a_file"),
    ]
    for argv, culprit in cases:
        assert culprit in cli_error(argv), argv
    # A start that fails leaves nothing behind, so the corrected command is not refused.
    for name in ("r1", "r2", "r3", "r4"):
        assert not (tmp_path / name).exists()


def test_debug_flag_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="devices"):
        cli(["--debug", "train", "--out", str(tmp_path / "r"), "--devices", "3"])


def test_the_executable_drops_only_orbax_background_reads(monkeypatch):
    """What the executable's quieting drops: an unraisable of an orbax coroutine collected after
    a failed restore. Any other unraisable is still printed."""
    import importlib
    import os
    import sys
    import threading
    import types
    import warnings

    cli_main = importlib.import_module("semcom_jax.cli.main")  # the module, not its main()

    shown = []  # what the hook the quieting wraps receives
    monkeypatch.setattr(sys, "unraisablehook", shown.append)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr(threading, "excepthook", threading.excepthook)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)
    cli_main._quiet_checkpoint_reader()

    def coroutine_from(filename):
        scope = {}
        exec(compile("async def read():\n    pass\n", filename, "exec"), scope)
        return scope["read"]()

    def unraisable(obj):
        return types.SimpleNamespace(exc_type=Exception, exc_value=Exception("read failed"),
                                     exc_traceback=None, err_msg=None, object=obj)

    orbax = coroutine_from(os.path.join(os.sep, "site-packages", "orbax", "serialization.py"))
    other = coroutine_from(os.path.join(os.sep, "site-packages", "mine", "reader.py"))
    try:
        sys.unraisablehook(unraisable(orbax))
        assert shown == []
        sys.unraisablehook(unraisable(other))
        assert [u.object for u in shown] == [other]
    finally:
        orbax.close()
        other.close()
