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
