"""A NumPy/SciPy transcription of Kaggle's published MiFID scorer: the yardstick.

It follows Kaggle's scoring code for MiFID competitions line by line (float64
``np.cov``, ``scipy.linalg.sqrtm(s1 @ s2)`` retried with 1e-6·I when not
finite, imaginary part dropped, memorization distance with zero-sum rows
dropped, threshold 0.1, MiFID = FID / (d' + 1e-15)). Nothing in the scorer
uses it: tests and ``bench/bench_score.py`` compare the in-graph versions
against it. It is slow (``sqrtm`` of a 2,048² matrix takes seconds).
"""
from __future__ import annotations

import numpy as np
from scipy import linalg


def statistics(features):
    """Kaggle's ``calculate_activation_statistics``: mean and ``np.cov`` (float64)."""
    act = np.asarray(features, dtype=np.float64)
    return np.mean(act, axis=0), np.cov(act, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """Kaggle's ``calculate_frechet_distance`` (sqrtm of the product, retry with eps·I)."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    tr_covmean = np.trace(covmean)
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_covmean)


def _normalize_rows(x):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nan_to_num(x / np.linalg.norm(x, ord=2, axis=1, keepdims=True))


def cosine_distance(features1, features2):
    """Kaggle's memorization distance: mean over rows of 1 of min over rows of 2 of 1-|cos|."""
    f1 = np.asarray(features1, dtype=np.float64)
    f2 = np.asarray(features2, dtype=np.float64)
    f1 = f1[np.sum(f1, axis=1) != 0]
    f2 = f2[np.sum(f2, axis=1) != 0]
    d = 1.0 - np.abs(np.matmul(_normalize_rows(f1), _normalize_rows(f2).T))
    return float(np.mean(np.min(d, axis=1)))


def distance_thresholding(d, eps):
    """Kaggle's threshold: keep d when below eps, else 1 (no penalty)."""
    return d if d < eps else 1


def mifid(gen_features, ref_features, eps=0.1):
    """FID, memorization distance and MiFID exactly as Kaggle computes them."""
    m1, s1 = statistics(gen_features)
    m2, s2 = statistics(ref_features)
    fid = frechet_distance(m1, s1, m2, s2)
    distance = cosine_distance(gen_features, ref_features)
    return {
        "fid": fid,
        "distance": distance,
        "mifid": fid / (distance_thresholding(distance, eps) + 1e-15),
    }


def polynomial_mmd2(x, y):
    """Unbiased MMD² with the cubic kernel (x·y/d + 1)³ (Bińkowski et al.'s KID)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m = x.shape[0]
    sxx = kxx.sum() - np.trace(kxx)
    syy = kyy.sum() - np.trace(kyy)
    return float((sxx + syy) / (m * (m - 1)) - 2 * kxy.sum() / (m * m))


def kid(gen_features, ref_features, subset_indices):
    """KID: mean and std of unbiased MMD² over given (gen_idx, ref_idx) subset pairs."""
    values = [polynomial_mmd2(gen_features[g], ref_features[r]) for g, r in subset_indices]
    return float(np.mean(values)), float(np.std(values))


def inception_score(probs, splits=10):
    """OpenAI's Inception Score: exp(E KL(p(y|x) || p(y))) per split; mean and std."""
    probs = np.asarray(probs, np.float64)
    scores = []
    n = probs.shape[0]
    for i in range(splits):
        part = probs[i * n // splits:(i + 1) * n // splits]
        py = np.mean(part, axis=0, keepdims=True)
        kl = part * (np.log(part) - np.log(py))
        scores.append(np.exp(np.mean(np.sum(kl, axis=1))))
    return float(np.mean(scores)), float(np.std(scores))
