"""The learned codec: image sets, encoders and their compute, contrastive training (plain and
channel-robust), the noise attention module and MED memories, on scikit-learn digits (seconds)
or generated data; values checked against hand computations, brute force and independent
re-implementations."""

import dataclasses
import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytest.importorskip("sklearn")

from semcom_jax.codec import data, med, model as M, nam as N, train as T  # noqa: E402
from semcom_jax.codec.measure import grid_scores  # noqa: E402


FAST = T.TrainSettings(epochs=6, batch_size=32, learning_rate=3e-3)


@pytest.fixture(scope="module")
def digits():
    return data.load("digits", "train"), data.load("digits", "test")


@pytest.fixture(scope="module")
def trained(digits):
    train, test = digits
    return T.train_encoder(M.DIGITS_FAMILY[0], train, FAST)


def _accuracy(model, params, images, labels):
    f = M.encode(model, params, jnp.asarray(images))
    prompts, _ = M.text_and_scale(model, params)
    sim = (f / jnp.linalg.norm(f, axis=-1, keepdims=True)) @ (
        prompts / jnp.linalg.norm(prompts, axis=-1, keepdims=True)).T
    return float(jnp.mean(jnp.argmax(sim, -1) == jnp.asarray(labels)))


# ----------------------------------------------------------------------------- data


def _write_idx(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + array.astype(np.uint8).tobytes())


def test_fashion_reader_reads_idx_files_and_refuses_bad_ones(tmp_path):
    imgs = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", imgs, 0x803)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.array([9, 0, 4]), 0x801)
    s = data.fashion_mnist("test", root=str(tmp_path))
    assert s.images.shape == (3, 28, 28) and s.images.dtype == np.float32
    np.testing.assert_allclose(s.images * 255.0, imgs, atol=1e-4)
    assert s.labels.tolist() == [9, 0, 4] and s.class_names[9] == "ankle boot"
    # wrong kind of file (labels where images belong)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.array([1, 2]), 0x801)
    with pytest.raises(ValueError, match="not an idx file of the expected kind"):
        data.fashion_mnist("test", root=str(tmp_path))
    with pytest.raises(ValueError, match="apt-get install dataset-fashion-mnist"):
        data.fashion_mnist("train", root=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="split"):
        data.fashion_mnist("val", root=str(tmp_path))
    with pytest.raises(ValueError, match="unknown image set"):
        data.load("cifar", "train")


def test_digits_split_is_disjoint_fixed_and_complete(digits):
    train, test = digits
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (8, 8)
    assert 0.0 <= train.images.min() and train.images.max() <= 1.0
    again = data.digits("train")
    np.testing.assert_array_equal(again.labels, train.labels)
    b = train.per_class(3, seed=1)
    assert np.bincount(b.labels).tolist() == [3] * 10


# ----------------------------------------------------------------------------- model


def test_macs_by_hand_and_family_ratios():
    s = M.EncoderSpec("x", patch=4, width=8, depth=1, heads=2, feature_dim=6)
    t = 4  # 8x8 image, 4x4 patches
    by_hand = t * 16 * 8 + (t * (4 * 64 + 2 * 4 * 64) + 2 * t * t * 8) + 8 * 6
    assert s.macs(8, 8) == by_hand
    macs = [f.macs(28, 28) for f in M.FASHION_FAMILY]
    assert macs[0] < macs[1] < macs[2]
    ratios = np.asarray(macs) / macs[0]  # close to CLIP's 1 : 3.96 : 18.4
    assert 3 < ratios[1] < 5 and 15 < ratios[2] < 22


def test_encoder_shapes_and_spec_errors():
    spec = M.DIGITS_FAMILY[2]
    model, params = M.init(spec, 10, 8, 8, jax.random.PRNGKey(0))
    f = M.encode(model, params, jnp.zeros((5, 8, 8)), batch_size=4)  # a padded last batch
    assert f.shape == (5, spec.feature_dim)
    prompts, scale = M.text_and_scale(model, params)
    assert prompts.shape == (10, spec.feature_dim) and float(scale) == pytest.approx(1 / 0.07)
    with pytest.raises(ValueError, match="does not divide"):
        M.init(M.EncoderSpec("bad", 3, 8, 1, 1, 4), 10, 8, 8, jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="multiple of 3 heads"):
        M.EncoderSpec("bad", 2, 8, 1, 3, 4).check(8, 8)


# ----------------------------------------------------------------------------- losses


def test_clip_loss_matches_a_numpy_computation():
    rng = np.random.default_rng(0)
    f, p = rng.normal(size=(5, 4)), rng.normal(size=(3, 4))
    y = np.array([0, 2, 2, 0, 0])  # class 1 absent from the batch
    scale = 7.0
    fn, pn = f / np.linalg.norm(f, axis=1, keepdims=True), p / np.linalg.norm(p, axis=1,
                                                                              keepdims=True)
    sim = scale * fn @ pn.T
    i2t = -np.mean([sim[i, y[i]] - np.log(np.exp(sim[i]).sum()) for i in range(5)])
    col = sim - np.log(np.exp(sim).sum(0, keepdims=True))
    t2i = np.mean([-np.mean(col[y == c, c]) for c in (0, 2)])
    got = T.clip_loss(jnp.asarray(f, jnp.float32), jnp.asarray(p, jnp.float32), scale,
                      jnp.asarray(y))
    assert float(got) == pytest.approx(0.5 * (i2t + t2i), rel=1e-5)


def test_asymmetric_mask_and_loss_by_hand():
    # Stream rows (the first 3) may only meet the prompts of the classes among them; replayed
    # rows meet every prompt. The image-to-text term is then the cross-entropy over those
    # prompts only (checked by hand); with every prompt allowed the loss is unchanged.
    y = np.array([3, 4, 3, 0, 1])
    allowed = med.asymmetric_allowed(y, 3, 5)
    want = np.array([[0, 0, 0, 1, 1]] * 3 + [[1, 1, 1, 1, 1]] * 2, bool)
    np.testing.assert_array_equal(allowed, want)
    rng = np.random.default_rng(1)
    f, p, scale = rng.normal(size=(5, 4)), rng.normal(size=(5, 4)), 5.0
    fn, pn = (x / np.linalg.norm(x, axis=1, keepdims=True) for x in (f, p))
    sim = scale * fn @ pn.T
    i2t = -np.mean([sim[i, y[i]] - np.log(np.exp(sim[i][want[i]]).sum()) for i in range(5)])
    col = sim - np.log(np.exp(sim).sum(0, keepdims=True))
    t2i = np.mean([-np.mean(col[y == c, c]) for c in (0, 1, 3, 4)])
    args = (jnp.asarray(f, jnp.float32), jnp.asarray(p, jnp.float32), scale, jnp.asarray(y))
    got = T.clip_loss(*args, jnp.asarray(allowed))
    assert float(got) == pytest.approx(0.5 * (i2t + t2i), rel=1e-5)
    assert float(T.clip_loss(*args, jnp.ones((5, 5), bool))) == pytest.approx(
        float(T.clip_loss(*args)), rel=1e-6)


def test_asymmetric_loss_leaves_absent_classes_prompts_alone():
    # A stream batch of new classes only: without the asymmetric mask its images push every
    # old class's prompt away; with it, the old prompts get no gradient from either loss.
    rng = np.random.default_rng(2)
    f = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
    p = jnp.asarray(rng.normal(size=(4, 4)), jnp.float32)
    y = jnp.asarray([2, 3, 2, 3, 3, 2])
    allowed = jnp.asarray(med.asymmetric_allowed(np.asarray(y), 6, 4))

    def total(prompts, mask):
        return (T.clip_loss(f, prompts, 5.0, y, mask)
                + T.robust_loss(jax.random.PRNGKey(0), f, prompts, 5.0, y, -5.0, 5.0, mask))

    g_plain = np.asarray(jax.grad(total)(p, None))
    g_ace = np.asarray(jax.grad(total)(p, allowed))
    assert np.abs(g_plain[:2]).max() > 1e-3
    np.testing.assert_allclose(g_ace[:2], 0.0, atol=1e-7)
    assert np.abs(g_ace[2:]).max() > 1e-3


def test_robust_loss_by_hand_in_the_clean_limit_and_worse_under_noise():
    rng = np.random.default_rng(2)
    f, p = rng.normal(size=(6, 5)), rng.normal(size=(3, 5))
    y = np.array([0, 1, 2, 0, 1, 2])
    scale = 5.0
    fn = f / np.linalg.norm(f, axis=1, keepdims=True)
    pn = p / np.linalg.norm(p, axis=1, keepdims=True)
    to_text = scale * fn @ pn.T
    ce = -np.mean([to_text[i, y[i]] - np.log(np.exp(to_text[i]).sum()) for i in range(6)])
    sim = scale * fn @ fn.T
    nce = []
    for i in range(6):  # negatives: the other classes' images only
        others = [j for j in range(6) if j == i or y[j] != y[i]]
        nce.append(-(sim[i, i] - np.log(np.exp(sim[i, others]).sum())))
    by_hand = 0.5 * (ce + np.mean(nce))
    args = (jnp.asarray(f, jnp.float32), jnp.asarray(p, jnp.float32), scale, jnp.asarray(y))
    clean = T.robust_loss(jax.random.PRNGKey(0), *args, 90.0, 90.0)  # SNR 1e9: no noise
    assert float(clean) == pytest.approx(by_hand, rel=1e-4)
    noisy = [float(T.robust_loss(jax.random.PRNGKey(k), *args, -5.0, -5.0)) for k in range(8)]
    assert np.mean(noisy) > by_hand + 0.1


def test_robust_loss_prefers_features_that_survive_the_channel():
    # The same class signal, alone or spread with class-free dimensions over a wider feature:
    # at a given per-element SNR the spread one reaches the receiver noisier.
    prompts = jnp.eye(4, 16) * 3.0
    y = jnp.arange(32) % 4
    aligned = prompts[y]
    spread = aligned + jnp.concatenate([jnp.zeros((32, 4)), 3.0 * jax.random.normal(
        jax.random.PRNGKey(1), (32, 12))], axis=1)
    key = jax.random.PRNGKey(0)
    gap_noisy = (T.robust_loss(key, spread, prompts, 10.0, y, -5.0, 5.0)
                 - T.robust_loss(key, aligned, prompts, 10.0, y, -5.0, 5.0))
    gap_clean = (T.robust_loss(key, spread, prompts, 10.0, y, 90.0, 90.0)
                 - T.robust_loss(key, aligned, prompts, 10.0, y, 90.0, 90.0))
    assert float(gap_noisy) > float(gap_clean) > 0


def test_training_settings_are_validated():
    with pytest.raises(ValueError, match="epochs"):
        T.TrainSettings(epochs=0).check(100)
    with pytest.raises(ValueError, match="batch_size 512 exceeds"):
        T.TrainSettings(batch_size=512).check(100)
    with pytest.raises(ValueError, match="empty SNR range"):
        T.TrainSettings(snr_lo_db=5.0, snr_hi_db=-5.0).check(1000)
    with pytest.raises(ValueError, match="finite"):
        T.TrainSettings(learning_rate=float("nan")).check(1000)
    with pytest.raises(ValueError, match="nam_weight >= 0"):
        T.TrainSettings(nam_weight=-1.0).check(1000)


def _joint_setup(nam_weight):
    spec = M.DIGITS_FAMILY[0]
    model, enc = M.init(spec, 10, 8, 8, jax.random.PRNGKey(0))
    nam = T.joint_nam_module(spec)
    params = {"encoder": enc, "nam": nam.init(jax.random.PRNGKey(1), jnp.zeros((2, 16)),
                                              jnp.zeros(2))["params"]}
    x = jax.random.uniform(jax.random.PRNGKey(2), (12, 8, 8))
    y = jnp.arange(12) % 10
    return model, nam, params, x, y, T.TrainSettings(nam_weight=nam_weight)


def test_nam_in_the_loop_adds_the_weighted_nam_cross_entropy():
    model, nam, params, x, y, settings = _joint_setup(2.5)
    key = jax.random.PRNGKey(3)
    joint, f = T.make_loss(model, settings, nam)(params, key, x, y)
    k_enc, k_nam = jax.random.split(key)
    alone, f_alone = T.make_loss(model, settings)(params["encoder"], k_enc, x, y)
    np.testing.assert_array_equal(np.asarray(f), np.asarray(f_alone))
    prompts, scale = M.text_and_scale(model, params["encoder"])
    term = T.nam_loss(k_nam, nam, params["nam"], f, prompts, scale, y, settings.snr_lo_db,
                      settings.snr_hi_db)
    assert float(joint) == pytest.approx(float(alone) + 2.5 * float(term), rel=1e-5)
    # the term by hand in the clean limit: the NAM receiver's cross-entropy on the features
    clean = T.nam_loss(k_nam, nam, params["nam"], f, prompts, scale, y, 90.0, 90.0)
    logp = N.nam_log_probs(nam, params["nam"], f, jnp.full((12,), 90.0), prompts, scale)
    by_hand = -np.mean(np.asarray(logp)[np.arange(12), np.asarray(y)])
    assert float(clean) == pytest.approx(by_hand, rel=1e-4)
    # both the encoder and the module get gradients from the joint loss
    grads = jax.grad(lambda p: T.make_loss(model, settings, nam)(p, key, x, y)[0])(params)
    for part in ("encoder", "nam"):
        assert max(float(jnp.abs(g).max()) for g in jax.tree_util.tree_leaves(grads[part])) > 0


# ----------------------------------------------------------------------------- training


@pytest.mark.slow  # trains an encoder
def test_training_learns_and_is_deterministic(digits, trained):
    train, test = digits
    model, params, losses = trained
    untrained = M.init(M.DIGITS_FAMILY[0], 10, 8, 8, jax.random.PRNGKey(FAST.seed))[1]
    acc = _accuracy(model, params, test.images, test.labels)
    assert acc > 0.7, acc  # chance is 0.1
    assert _accuracy(model, untrained, test.images, test.labels) < 0.4
    assert losses[-1] < losses[0]
    again = T.train_encoder(M.DIGITS_FAMILY[0], train, FAST)[1]
    for a, b in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow  # trains an encoder
def test_training_with_the_nam_in_the_loop_returns_an_encoder_that_learns(digits, trained):
    train, test = digits
    joint = dataclasses.replace(FAST, nam_weight=6.0)
    model, params, losses = T.train_encoder(M.DIGITS_FAMILY[0], train, joint)
    plain_params = trained[1]
    # the encoder's parameters only, in the same tree as without the module
    assert (jax.tree_util.tree_structure(params)
            == jax.tree_util.tree_structure(plain_params))
    assert _accuracy(model, params, test.images, test.labels) > 0.7
    assert losses[-1] < losses[0]
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(plain_params)))
    with pytest.raises(ValueError, match="nam_weight must be 0"):
        med.continual_run(M.DIGITS_FAMILY[0], train, test, [[0, 1], [2, 3]], None, joint)


@pytest.mark.slow  # trains an encoder
def test_grid_scores_cosine_agree_with_a_direct_computation(digits, trained):
    _, test = digits
    model, params, _ = trained
    f = M.encode(model, params, jnp.asarray(test.images))
    prompts, scale = M.text_and_scale(model, params)
    score, acc = grid_scores(jax.random.PRNGKey(0), f, test.labels, prompts, scale,
                             np.array([-30.0, 80.0], np.float32), 2)
    # at 80 dB the channel is clean: the direct zero-shot accuracy
    assert acc[1] == pytest.approx(_accuracy(model, params, test.images, test.labels), abs=2e-3)
    assert acc[0] < 0.3 and score[0] < score[1]


# ----------------------------------------------------------------------------- NAM


@pytest.mark.slow  # trains a noise attention module
def test_nam_output_is_a_distribution_and_training_helps_at_low_snr(digits, trained):
    train, test = digits
    model, params, _ = trained
    prompts, scale = M.text_and_scale(model, params)
    f_train = M.encode(model, params, jnp.asarray(train.images))
    f_test = M.encode(model, params, jnp.asarray(test.images))
    module, nparams, losses = N.train_nam(f_train, train.labels, prompts, scale,
                                          N.NAMSettings(chunks=4, epochs=6, batch_size=128))
    logp = N.nam_log_probs(module, nparams, f_test, jnp.zeros(len(test)), prompts, scale)
    np.testing.assert_allclose(np.asarray(jax.scipy.special.logsumexp(logp, -1)), 0, atol=1e-5)
    grid = np.array([-5.0, 0.0], np.float32)
    s_cos, a_cos = grid_scores(jax.random.PRNGKey(3), f_test, test.labels, prompts, scale,
                               grid, 4)
    s_nam, a_nam = grid_scores(jax.random.PRNGKey(3), f_test, test.labels, prompts, scale,
                               grid, 4, nam=(module, nparams))
    # the module is trained for exactly this: knowing the SNR, it classifies noisy features
    # with a better log-likelihood than the cosine receiver
    assert np.all(s_nam > s_cos), (s_nam, s_cos)
    with pytest.raises(ValueError, match="multiple of 5 NAM chunks"):
        N.NoiseAttention(16, chunks=5).init(jax.random.PRNGKey(0), jnp.zeros((2, 16)),
                                           jnp.zeros(2))


# ----------------------------------------------------------------------------- memories


def test_kernel_herding_matches_a_brute_force_greedy_rule():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (16, 2)), rng.normal(3, 0.1, (4, 2))])
    h = 1.0
    got = med.kernel_herding(x, 5, h)
    k = np.exp(-((x[:, None] - x[None]) ** 2).sum(-1) / (2 * h * h))
    picked = []
    for t in range(5):  # the rule written out: argmax of mean similarity minus picks' mean
        gain = [k[i].mean() - (sum(k[i, j] for j in picked) / (t + 1)) if i not in picked
                else -np.inf for i in range(len(x))]
        picked.append(int(np.argmax(gain)))
    assert got.tolist() == picked and len(set(picked)) == 5
    assert 1 <= sum(p >= 16 for p in picked) <= 2  # both clusters, in rough proportion
    assert med.kernel_herding(x, 30, h).tolist() == list(range(20))


def test_short_long_memory_keeps_capacity_balance_and_novelty():
    rng = np.random.default_rng(0)
    mem = med.ShortLongMemory(short_term=10, long_term=12, transfer=4)
    for start in range(0, 200, 5):  # a stream of three classes
        idx = np.arange(start, start + 5)
        lab = idx % 3
        f = rng.normal(size=(5, 4))
        mem.observe(idx, lab, f / np.linalg.norm(f, axis=1, keepdims=True))
        assert len(mem.short) < 10 and len(mem.long) <= 12
    assert np.bincount(mem.long.labels, minlength=3).tolist() == [4, 4, 4]
    assert set(mem.sample(50)) <= set(mem.long.index.tolist())
    # novelty: of two short-term candidates of a class, the one unlike the long-term memory
    # moves
    m = med.ShortLongMemory(short_term=2, long_term=10, transfer=1, novelty=True)
    m.long.add(np.array([100, 101]), np.array([0, 0]), np.array([[1.0, 0.0], [0.99, 0.14]]))
    m.observe(np.array([1, 2]), np.array([0, 0]), np.array([[1.0, 0.01], [0.0, 1.0]]))
    assert 2 in m.long.index and 1 not in m.long.index
    # weights: every stream example is accounted for; "weighted" replay draws in proportion to
    # them, "class" replay gives each class its weight's share, uniformly among its examples
    assert mem.long.weights.sum() + len(mem.short) == pytest.approx(200)
    w = mem.long.weights
    mem.replay = "weighted"
    draws = np.bincount(mem.sample(20000), minlength=200)[mem.long.index] / 20000
    np.testing.assert_allclose(draws, w / w.sum(), atol=0.012)
    mem.replay = "class"
    draws = np.bincount(mem.sample(30000), minlength=200)[mem.long.index] / 30000
    expect = np.array([w[mem.long.labels == c].sum() / w.sum() / 4 for c in mem.long.labels])
    assert np.ptp(w) > 0.05 * w.mean()  # the two rules differ on this memory
    np.testing.assert_allclose(draws, expect, atol=0.01)
    with pytest.raises(ValueError, match="capacities"):
        med.ShortLongMemory(0, 5)
    with pytest.raises(ValueError, match="replay"):
        med.ShortLongMemory(2, 5, replay="uniform")
    with pytest.raises(ValueError, match="evict"):
        med.ShortLongMemory(2, 5, evict="oldest")


def test_random_eviction_keeps_class_shares_and_weights_and_depends_on_the_seed():
    kept = []
    for seed in (0, 1):
        rng = np.random.default_rng(0)
        mem = med.ShortLongMemory(short_term=10, long_term=12, transfer=4, evict="random",
                                  seed=seed)
        for start in range(0, 300, 5):
            idx = np.arange(start, start + 5)
            f = rng.normal(size=(5, 4))
            mem.observe(idx, idx % 3, f / np.linalg.norm(f, axis=1, keepdims=True))
            assert len(mem.long) <= 12
        assert np.bincount(mem.long.labels, minlength=3).tolist() == [4, 4, 4]
        assert mem.long.weights.sum() + len(mem.short) == pytest.approx(300)
        kept.append(set(mem.long.index.tolist()))
    assert kept[0] != kept[1]


def test_reservoir_is_a_uniform_sample_of_the_stream():
    mem = med.ReservoirMemory(200, seed=1)
    for start in range(0, 20000, 100):
        mem.observe(np.arange(start, start + 100))
    assert mem.size == 200 and len(set(mem.buffer.tolist())) == 200
    # a uniform sample of 0..19999: mean 9999.5, standard error 5774 / sqrt(200) = 408
    assert abs(mem.buffer.mean() - 9999.5) < 4 * 408


@pytest.mark.slow
def test_replay_reduces_forgetting_on_a_class_incremental_stream(digits):
    train, test = digits
    phases = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    s = dataclasses.replace(FAST, epochs=6, batch_size=32)
    spec = M.DIGITS_FAMILY[0]
    plain = med.continual_run(spec, train, test, phases, None, s)
    kept = med.continual_run(spec, train, test, phases, med.ShortLongMemory(40, 160), s)
    # fine-tuning on the second phase's classes forgets the first; replay keeps much of it
    assert plain[0].accuracy[0] > 0.8 and kept[0].accuracy[0] > 0.8
    assert plain[1].accuracy[0] < 0.5 * plain[0].accuracy[0]
    assert kept[1].accuracy[0] > plain[1].accuracy[0] + 0.2
    assert kept[1].accuracy[1] > 0.6  # and the second phase is learnt too (chance 0.1)
    # The asymmetric cross-entropy (ER-ACE) keeps more of the first phase with the same memory
    # (0.83 against 0.77 here), at some cost to the second (0.55, still far above chance).
    ace = med.continual_run(spec, train, test, phases, med.ShortLongMemory(40, 160), s,
                            asymmetric=True)
    assert ace[1].accuracy[0] > kept[1].accuracy[0] + 0.03 and ace[1].accuracy[1] > 0.4


# ----------------------------------------------------------------------------- builder
