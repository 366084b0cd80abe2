"""In-graph FID / distance / MiFID / KID / IS against the NumPy/SciPy transcription of Kaggle's scorer."""
import numpy as np
import pytest
import tensorflow as tf

from gan_tpu import metrics
from gan_tpu.metrics import kaggle_numpy as kn
from gan_tpu.metrics import stats
from gan_tpu.metrics.scoring import Reference, StreamingScorer


def features(n, d, seed, scale=0.3, shift=0.0, rank=None):
    """Non-negative, Inception-like features; ``rank`` < d makes them low-rank."""
    rng = np.random.default_rng(seed)
    if rank:
        x = np.abs(rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d)) / np.sqrt(rank))
    else:
        x = np.abs(rng.standard_normal((n, d)))
    return (x * scale + shift).astype(np.float32)


def near_duplicates(d=512, n_ref=100, n_gen=600, seed=3):
    """Generated rows = reference rows rescaled plus a little noise (a memorizing model):
    FID is a small difference of large traces, both covariances are rank-deficient, and
    S1·S2 has hundreds of eigenvalues that are zero up to rounding."""
    rng = np.random.default_rng(seed)
    ref = np.abs(rng.standard_normal((n_ref, 32)) @ rng.standard_normal((32, d))) * 0.3
    ref = (ref + 0.5 * features(n_ref, d, seed + 1, 0.35, 0.01)).astype(np.float32)
    gen = ref[rng.integers(0, n_ref, n_gen)] * rng.uniform(0.9, 1.1, (n_gen, 1))
    return (gen + 0.05 * np.abs(rng.standard_normal((n_gen, d)))).astype(np.float32), ref


def rel(a, b):
    return abs(a - b) / abs(b)


CASES = {
    # name: (generated, reference)
    "kaggle-shape N=3000 vs 300": (features(3000, 512, 0), features(300, 512, 1, 0.35, 0.01)),
    "both full rank": (features(1500, 256, 2), features(1200, 256, 3, 0.32)),
    "both rank-deficient": (features(300, 512, 4), features(200, 512, 5, 0.4)),
    "structured low-rank": (features(800, 256, 6, rank=20), features(400, 256, 7, rank=30)),
}


_WANT = {}


def kaggle(name):
    """The transcription's scores for a case (sqrtm is slow: computed once)."""
    if name not in _WANT:
        _WANT[name] = kn.mifid(*CASES[name])
    return _WANT[name]


@pytest.mark.parametrize("name", sorted(CASES))
def test_float64_matches_kaggle_transcription(name):
    gen, ref = CASES[name]
    want = kaggle(name)
    got = metrics.mifid(gen, ref)
    assert rel(got["fid"], want["fid"]) < 1e-6, (got, want)
    assert abs(got["distance"] - want["distance"]) < 1e-9
    assert rel(got["mifid"], want["mifid"]) < 1e-6
    assert got["fid"] > 0 and got["distance"] > 0.1  # no memorization: MiFID == FID
    assert got["mifid"] == pytest.approx(got["fid"])


@pytest.mark.parametrize("method", ["factor", "cholesky", "eigh"])
def test_every_trace_method_agrees(method):
    gen, ref = CASES["kaggle-shape N=3000 vs 300"]
    want = kaggle("kaggle-shape N=3000 vs 300")["fid"]
    assert rel(metrics.fid(gen, ref, method=method), want) < 1e-6


def test_cholesky_falls_back_to_eigh_when_singular():
    gen, ref = CASES["both rank-deficient"]  # S1 singular: Cholesky fails on CPU
    with pytest.raises(tf.errors.InvalidArgumentError):
        metrics.fid(gen, ref, method="cholesky")
    want = kaggle("both rank-deficient")["fid"]
    assert rel(metrics.fid(gen, ref), want) < 1e-6
    assert rel(metrics.fid(gen, ref, dtype=tf.float32), want) < 1e-3  # float32 auto: factor, no Cholesky


def test_near_duplicates_with_rank_deficient_covariances_match_kaggle():
    gen, ref = near_duplicates()
    want = kn.mifid(gen, ref)
    got = metrics.mifid(gen, ref)
    assert rel(got["fid"], want["fid"]) < 1e-6, (got, want)
    assert abs(got["distance"] - want["distance"]) < 1e-9
    assert got["distance"] < 0.1 and rel(got["mifid"], want["mifid"]) < 1e-6
    # The k x k factor form has almost no rounding-level eigenvalues to count: it is the
    # exact value, farther from Kaggle's sqrtm, which counts the positive half of them.
    assert rel(metrics.fid(gen, ref, method="factor"), want["fid"]) > 2 * rel(got["fid"], want["fid"])
    assert rel(metrics.fid(gen, ref, dtype=tf.float32), want["fid"]) < 1e-3


def test_duplicated_features_trigger_the_memorization_penalty():
    ref = features(200, 256, 10)
    rng = np.random.default_rng(11)
    gen = np.concatenate([ref[rng.integers(0, 200, 300)] * 1.7, features(20, 256, 12)])  # scaled copies: |cos| = 1
    want = kn.mifid(gen, ref)
    got = metrics.mifid(gen, ref)
    assert got["distance"] < 0.1 and want["distance"] < 0.1
    assert abs(got["distance"] - want["distance"]) < 1e-9
    assert rel(got["mifid"], want["mifid"]) < 1e-6
    assert got["mifid"] > 10 * got["fid"]  # divided by d' < 0.1


def test_exact_copies_give_zero_fid_and_distance_and_a_mifid_of_rounding_over_1e_15():
    # Identical sets: FID and d are 0 up to float64 rounding (measured |FID| 1.1e-14, |d|
    # 5e-17 here; Kaggle's NumPy code 5e-15, 6e-18), so MiFID = FID / (d + 1e-15) is that
    # rounding x ~1e15: measured -11 here and -5 with Kaggle's code, not "huge" and of either
    # sign. A real FID (> 1e-12) over d = 0 would be > 1e3: the bound below catches that.
    ref = features(100, 64, 13)
    got, want = metrics.mifid(ref, ref), kn.mifid(ref, ref)
    for scores in (got, want):
        assert abs(scores["distance"]) < 1e-15, scores
        assert abs(scores["fid"]) < 1e-12, scores
        assert abs(scores["mifid"]) < 1e3, scores
    assert got["mifid"] == pytest.approx(got["fid"] / (got["distance"] + 1e-15), rel=1e-9)


def test_zero_rows_are_dropped_from_the_distance_only():
    gen, ref = features(400, 128, 14), features(150, 128, 15)
    gen[::7] = 0.0
    ref[::9] = 0.0
    want = kn.mifid(gen, ref)
    got = metrics.mifid(gen, ref)
    assert abs(got["distance"] - want["distance"]) < 1e-9
    assert rel(got["fid"], want["fid"]) < 1e-6
    f32 = metrics.mifid(gen, ref, dtype=tf.float32)  # zero rows make one direction dominate
    assert rel(f32["fid"], want["fid"]) < 1e-2  # FID is ~1.3 here: 3e-3 absolute in float32
    scorer = StreamingScorer(Reference.from_features(ref))
    scorer.update(gen)
    assert scorer.memo.count == 400 - len(range(0, 400, 7))


def test_threshold_and_mifid_formula():
    assert stats.threshold_distance(0.05) == 0.05
    assert stats.threshold_distance(0.1) == 1.0
    assert stats.mifid_value(40.0, 0.05) == pytest.approx(800.0)
    assert stats.mifid_value(40.0, 0.3) == pytest.approx(40.0)
    assert kn.distance_thresholding(0.05, 0.1) == 0.05 and kn.distance_thresholding(0.2, 0.1) == 1


def test_streaming_moments_equal_np_cov_and_batching_does_not_matter():
    x = features(1003, 64, 16, shift=5.0)  # a large mean makes Σxxᵀ − nμμᵀ cancel
    want_mu, want_cov = np.mean(x.astype(np.float64), 0), np.cov(x.astype(np.float64), rowvar=False)
    for batch in (1003, 100, 7):
        mu, cov = stats.moments(x, tf.float64, batch_size=batch)
        np.testing.assert_allclose(mu.numpy(), want_mu, rtol=1e-12)
        np.testing.assert_allclose(cov.numpy(), want_cov, rtol=1e-9, atol=1e-12)


def test_float32_shifted_accumulation_agrees_and_beats_plain_sums():
    x = features(4000, 64, 17, scale=0.3, shift=20.0)
    want = np.cov(x.astype(np.float64), rowvar=False)
    _, shifted = stats.moments(x, tf.float32, batch_size=250)
    acc = stats.Moments(64, tf.float64)  # plain sums, but done in float32 by hand:
    s = np.zeros(64, np.float32)
    ss = np.zeros((64, 64), np.float32)
    for i in range(0, 4000, 250):
        s += x[i:i + 250].sum(0)
        ss += x[i:i + 250].T @ x[i:i + 250]
    naive = (ss - np.outer(s, s) / 4000) / 3999
    err_shifted = np.abs(shifted.numpy() - want).max() / np.abs(want).max()
    err_naive = np.abs(naive - want).max() / np.abs(want).max()
    assert acc.shifted is False and err_shifted < 1e-5
    assert err_naive > 10 * err_shifted


def test_float32_scores_close_to_float64():
    gen, ref = CASES["kaggle-shape N=3000 vs 300"]
    want = kaggle("kaggle-shape N=3000 vs 300")
    got = metrics.mifid(gen, ref, dtype=tf.float32)
    assert rel(got["fid"], want["fid"]) < 1e-3
    assert abs(got["distance"] - want["distance"]) < 1e-5


def test_ops_compile_with_xla():
    gen, ref = features(120, 24, 18), features(20, 24, 19)  # ref rank-deficient, as Kaggle's
    want = kn.mifid(gen, ref)
    for method in ("factor", "cholesky", "eigh"):
        got = metrics.mifid(gen, ref, jit=True, method=method)
        # XLA's CPU eigensolver (Jacobi) resolves rank-deficient spectra less finely than
        # LAPACK-style kernels: ~1e-6 relative, which is why CPU runs stay unjitted.
        assert rel(got["fid"], want["fid"]) < 1e-5
        assert abs(got["distance"] - want["distance"]) < 1e-9
    got = metrics.mifid(gen, ref, jit=True, dtype=tf.float32)
    assert rel(got["fid"], want["fid"]) < 1e-3
    k = metrics.kid(gen, ref, subsets=2, subset_size=15, jit=True)
    assert np.isfinite(k["kid"])


def test_kid_matches_numpy_on_the_same_subsets():
    gen, ref = features(500, 128, 20), features(300, 128, 21, 0.4)
    subsets = stats.kid_subsets(500, 300, subsets=10, subset_size=1000, seed=3)
    assert all(len(g) == 300 and len(set(g)) == 300 for g, _ in subsets)  # capped, no repeats
    want_mean, want_std = kn.kid(gen, ref, subsets)
    got = metrics.kid(gen, ref, subsets=10, subset_size=1000, seed=3)
    assert got["kid"] == pytest.approx(want_mean, rel=1e-9)
    assert got["kid_std"] == pytest.approx(want_std, rel=1e-6)
    same = metrics.kid(ref, ref, subsets=5, subset_size=100)
    assert abs(same["kid"]) < 0.1 * got["kid"]  # unbiased: about 0 for one distribution


def test_inception_score_matches_numpy():
    rng = np.random.default_rng(22)
    logits = rng.standard_normal((1000, 12)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    want = kn.inception_score(probs, 10)
    got = metrics.inception_score(probs, 10)
    assert got["is"] == pytest.approx(want[0], rel=1e-9)
    assert got["is_std"] == pytest.approx(want[1], rel=1e-6)
    onehot = np.eye(10)[np.arange(1000) % 10] * (1 - 1e-9) + 1e-10
    assert metrics.inception_score(onehot, 10)["is"] == pytest.approx(10.0, rel=1e-6)


def test_reference_npz_round_trip(tmp_path):
    ref = Reference.from_features(features(50, 32, 23))
    ref.save(tmp_path / "r.npz")
    back = Reference.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(back.features, ref.features)
    np.testing.assert_allclose(back.sigma, ref.sigma)
    assert back.n == 50
    np.savez(tmp_path / "stats_only.npz", mu=ref.mu, sigma=ref.sigma)
    stats_only = Reference.load(tmp_path / "stats_only.npz")
    scorer = StreamingScorer(stats_only)
    scorer.update(features(60, 32, 24))
    out = scorer.result()
    assert out["fid"] > 0 and out["distance"] is None and out["mifid"] is None and "kid" not in out


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        metrics.fid(features(10, 8, 0), features(10, 9, 1))
    with pytest.raises(ValueError):
        Reference.from_features(features(1, 8, 0))
    with pytest.raises(ValueError):
        stats.MemorizationDistance(np.zeros((5, 8), np.float32))
