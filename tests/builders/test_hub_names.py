"""A hub checkpoint name that cannot be loaded from here is refused at once, by name, rather
than after ``from_pretrained``'s retries."""

import pytest

from semcom_jax.builders import hf
from semcom_jax.cli import main as cli

NAME = "semcom-jax-tests/no-such-model"  # never downloaded, so never in the cache


def test_an_unreachable_hub_is_named_with_the_checkpoint(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(ValueError, match=r"CLIP checkpoint 'semcom-jax-tests/no-such-model' is "
                                         r"not a local folder.*127\.0\.0\.1:9\) cannot be reached"):
        hf.check_checkpoint(NAME, "CLIP")


def test_offline_mode_counts_as_unreachable(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not hf._hub_reachable()
    with pytest.raises(ValueError, match="Stable Diffusion checkpoint"):
        hf.check_checkpoint(NAME, "Stable Diffusion")


def test_tables_clip_fails_before_reading_anything(monkeypatch, tmp_path, capsys):
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    out = tmp_path / "t.npz"
    code = cli(["tables", "clip", "--images", str(tmp_path / "no-images"), "--out", str(out),
                "--checkpoints", NAME, "--names", "a", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot be reached" in err and NAME in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
