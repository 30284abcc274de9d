"""Tables from models: tiny random CLIP and Stable Diffusion checkpoints, saved with
``save_pretrained`` and loaded back by the builders' ``from_pretrained`` path (the one real
checkpoints take), then checked against values computed independently with transformers."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("diffusers")

from semcom_jax.training import runs  # noqa: E402
from semcom_jax.agents.config import TrainConfig  # noqa: E402
from semcom_jax.builders import clip, hf, regen, tiny  # noqa: E402
from semcom_jax.cli import main as cli  # noqa: E402
from semcom_jax.tables import load_table  # noqa: E402

pytestmark = pytest.mark.slow  # builds tiny CLIP and Stable Diffusion models

NAMES = ["ViT-B/32", "ViT-B/16", "ViT-L/14"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return tiny.make_all(str(tmp_path_factory.mktemp("models")))


def _images(n_per_class=4, size=32, seed=0):
    rng = np.random.default_rng(seed)
    imgs, labels = [], []
    for c in range(3):
        for _ in range(n_per_class):
            base = np.zeros((size, size, 3))
            base[..., c] = 200
            imgs.append(np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8))
            labels.append(c)
    return np.stack(imgs), np.asarray(labels)


@pytest.fixture(scope="module")
def npz_images(tmp_path_factory):
    imgs, labels = _images()
    path = str(tmp_path_factory.mktemp("data") / "images.npz")
    np.savez(path, images=imgs, labels=labels, class_names=np.array(["red", "green", "blue"]))
    return path


def _folder(root, sizes=None):
    from PIL import Image

    imgs, labels = _images(n_per_class=2)
    names = ["red", "green", "blue"]
    for i, (im, c) in enumerate(zip(imgs, labels)):
        os.makedirs(root / names[c], exist_ok=True)
        img = Image.fromarray(im)
        if sizes and i in sizes:
            img = img.resize(sizes[i])
        img.save(root / names[c] / f"{i}.png")
    return root


def _hf_zero_shot_accuracy(ckpt, images, labels, class_names):
    """Independent reference: transformers' own CLIP forward (logits_per_image)."""
    import transformers

    model, params = transformers.FlaxCLIPModel.from_pretrained(ckpt, _do_init=False)
    proc = transformers.CLIPProcessor.from_pretrained(ckpt)
    inputs = proc(text=[f"an image of a {c}" for c in class_names], images=list(images),
                  return_tensors="np", padding=True)
    inputs = {k: np.asarray(v) for k, v in inputs.items()}
    # Jitted: run eagerly, each of the model's operations is compiled on its own.
    logits, img = jax.jit(lambda p, x: (model(**x, params=p).logits_per_image,
                                        model.get_image_features(pixel_values=x["pixel_values"],
                                                                 params=p)))(params, inputs)
    pred = np.argmax(np.asarray(logits), axis=-1)
    img = np.asarray(img)
    return float(np.mean(pred == labels)), img


def test_clip_table_matches_transformers_and_trains_the_env(models, npz_images, tmp_path):
    out = str(tmp_path / "clip.npz")
    spec = clip.ClipTableSpec(checkpoints=models["clip"], names=NAMES, snr_lo_db=-20,
                              snr_hi_db=80, snr_step_db=20, draws=2, batch_size=5)
    meta = clip.build(npz_images, out, spec, progress=False)
    t = load_table(out)
    assert t.task == "classification" and t.encoders == NAMES
    assert t.data.score.shape == (3, 6) and t.accuracy.shape == (3, 6)
    assert t.metadata["encoder_feature_bits"] == [16 * 32, 16 * 32, 24 * 32]
    assert not os.path.exists(out + ".parts")
    z = np.load(npz_images)
    for k, ckpt in enumerate(models["clip"]):
        acc, img = _hf_zero_shot_accuracy(ckpt, z["images"], z["labels"], list(z["class_names"]))
        # At 80 dB the channel noise cannot flip a decision: the clean accuracy (as measured;
        # the table's own curve is the monotone fit of these measurements).
        assert abs(float(np.load(out)["accuracy_raw"][k, -1]) - acc) < 1e-6
        d = int(t.data.features.feature_dim[k])
        np.testing.assert_allclose(np.asarray(t.data.features.image_features[k, :, :d]), img,
                                   rtol=1e-4, atol=1e-5)
    # The more patches, the more compute: DM follows the vision towers.
    assert meta["encoder_compute"][0] < meta["encoder_compute"][1] < meta["encoder_compute"][2]
    # The env reads the table and PPO trains on it with in-graph feature corruption.
    cfg = TrainConfig.of(num_users=2, num_rbs=3, num_envs=16, total_env_steps=16 * 4 * 2,
                      chunk_updates=2, eval_episodes=16, hidden=(16,), table=out,
                      score="features")
    summary = runs.train(cfg, str(tmp_path / "run"), progress=False)
    assert np.isfinite(summary["final_eval_return"])


def test_clip_build_resumes_per_checkpoint(models, npz_images, tmp_path, monkeypatch):
    kw = dict(spec=clip.ClipTableSpec(checkpoints=models["clip"], names=NAMES, snr_lo_db=0,
                                      snr_hi_db=10, snr_step_db=10, draws=2), progress=False)
    ref = str(tmp_path / "ref.npz")
    clip.build(npz_images, ref, **kw)
    out = str(tmp_path / "out.npz")
    real = clip.encode_checkpoint
    calls = []

    def dies_on_third(name, *a, **k):
        calls.append(name)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed while working on the third checkpoint
        return real(name, *a, **k)

    monkeypatch.setattr(clip, "encode_checkpoint", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        clip.build(npz_images, out, **kw)
    assert not os.path.exists(out) and len(os.listdir(out + ".parts")) == 2
    calls.clear()
    monkeypatch.setattr(clip, "encode_checkpoint", lambda name, *a, **k: (calls.append(name),
                                                                          real(name, *a, **k))[1])
    clip.build(npz_images, out, **kw)
    assert calls == [models["clip"][2]]  # only the unfinished checkpoint ran again
    a, b = np.load(ref), np.load(out)
    for key in a.files:
        if key != "metadata":
            np.testing.assert_array_equal(a[key], b[key])


def test_regeneration_table_and_grid(models, npz_images, tmp_path):
    out, grid = str(tmp_path / "regen.npz"), str(tmp_path / "grid.png")
    spec = regen.RegenTableSpec(checkpoints=models["clip"], names=NAMES, snr_db=(-10.0, 30.0),
                                num_steps=2, batch_size=4, max_per_class=1)
    meta = regen.build(npz_images, models["sd"], out, spec, grid_png=grid, progress=False)
    t = load_table(out)
    assert t.task == "regeneration" and t.data.score.shape == (3, 2)
    s = np.asarray(t.data.score)
    assert np.all(np.isfinite(s)) and np.all(s <= 1.0 + 1e-5) and np.all(s >= -1.0 - 1e-5)
    assert "identity" in meta["how"] and "fixed random" in meta["how"]  # widths 16, 16, 24
    assert os.path.getsize(grid) > 0 and not os.path.exists(out + ".parts")


def test_regenerator_is_deterministic_and_follows_the_condition(models):
    import jax

    r = regen.Regenerator(models["sd"], num_steps=2, guidance=3.0)
    f = jax.random.normal(jax.random.PRNGKey(0), (2, 16))
    a = r(jax.random.PRNGKey(1), f, None)
    assert a.shape == (2, 16, 16, 3) and a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, r(jax.random.PRNGKey(1), f, None))
    assert np.abs(a - r(jax.random.PRNGKey(1), 10 * f, None)).max() > 0


def _bad(tmp_path, kind):
    if kind == "missing folder":
        return str(tmp_path / "nope"), {}
    root = tmp_path / kind.replace(" ", "_")
    if kind == "empty class":
        _folder(root)
        os.makedirs(root / "zebra")
    elif kind == "unreadable image":
        _folder(root)
        (root / "red" / "broken.png").write_bytes(b"not a png at all")
    elif kind == "mixed sizes":
        _folder(root, sizes={1: (24, 24)})
    else:
        _folder(root)
    return str(root), {}


@pytest.mark.parametrize("kind,message", [
    ("missing folder", "does not exist"),
    ("empty class", "holds no images"),
    ("unreadable image", "cannot read image"),
    ("mixed sizes", "mixed sizes"),
    ("unknown checkpoint", "unknown CLIP checkpoint"),
    ("mismatched encoder count", "encoder names"),
])
def test_bad_input_gets_a_clear_error_and_no_partial_table(models, tmp_path, capsys, kind,
                                                           message):
    images, _ = _bad(tmp_path, kind)
    ckpts = list(models["clip"])
    names = NAMES
    if kind == "unknown checkpoint":
        ckpts[1] = str(tmp_path / "no-such-clip")
    if kind == "mismatched encoder count":
        names = NAMES[:2]
    out = tmp_path / "t.npz"
    code = cli(["tables", "clip", "--images", images, "--out", str(out), "--checkpoints",
                *ckpts, "--names", *names, "--no-progress", "--snr-step", "40"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and not os.path.exists(str(out) + ".parts")


def test_cli_builds_from_an_image_folder_and_fig2_plots_it(models, tmp_path, capsys):
    root = _folder(tmp_path / "imgs", sizes={0: (40, 40), 3: (40, 40)})
    out = tmp_path / "t.npz"
    assert cli(["tables", "clip", "--images", str(root), "--out", str(out), "--checkpoints",
                *models["clip"][:2], "--names", "a", "b", "--resize", "32", "--no-progress",
                "--snr-min", "-10", "--snr-max", "10", "--snr-step", "10", "--draws", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    t = load_table(str(out))
    assert t.encoders == ["a", "b"] and t.metadata["class_names"] == ["blue", "green", "red"]
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "experiments"))
    import fig2_accuracy_vs_snr

    png, csv_path = fig2_accuracy_vs_snr.plot_table(str(out), str(tmp_path / "fig2"))
    assert os.path.getsize(png) > 0
    assert len(open(csv_path).read().strip().splitlines()) == 1 + 2 * 3


def test_missing_extra_is_named_and_the_core_never_imports_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ValueError, match=r"pip install 'semcom-jax\[tables\]'"):
        hf.require("transformers")
    code = ("import sys; sys.modules['transformers'] = None; sys.modules['diffusers'] = None\n"
            "import semcom_jax.env, semcom_jax.training.runs, semcom_jax.cli, semcom_jax.builders.clip\n"
            "from semcom_jax.cli import main\n"
            "assert main(['baselines', '--users', '2', '--rbs', '2', '--episodes', '4']) == 0\n"
            "assert main(['tables', 'clip', '--images', 'x', '--out', 'y.npz']) == 2\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "pip install" in r.stderr
