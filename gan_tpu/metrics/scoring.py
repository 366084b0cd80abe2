"""Reference statistics, the streaming scorer, and the NumPy-facing ``fid``/``mifid``/``kid``.

``StreamingScorer`` is what ``gan-tpu score`` and the training callback use: it
takes generated features batch by batch (moments, memorization distance, and
optionally the rows KID needs) against a ``Reference`` held in memory (its
features, mean and covariance; 300 Monet paintings are 2.4 MB of features).
"""
from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from gan_tpu.metrics import stats

DEFAULT_EPS = 0.1  # Kaggle's memorization threshold


def resolve_dtype(precision: str = "auto", strategy=None):
    """``float64``/``float32``; ``auto`` is float64 except under a TPUStrategy."""
    if precision == "float64":
        return tf.float64
    if precision == "float32":
        return tf.float32
    if precision != "auto":
        raise ValueError(f"precision must be auto, float64 or float32, not {precision!r}")
    name = type(strategy).__name__ if strategy is not None else ""
    return tf.float32 if name.startswith("TPUStrategy") else tf.float64


@dataclasses.dataclass
class Reference:
    """A reference set: mean, covariance, count, and (for MiFID and KID) its features."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    features: np.ndarray | None = None

    @classmethod
    def from_features(cls, features, dtype=tf.float64, jit=None) -> "Reference":
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or features.shape[0] < 2:
            raise ValueError(f"need at least 2 reference feature rows, got shape {features.shape}")
        mu, sigma = stats.moments(features, dtype, jit=jit)
        return cls(np.asarray(mu, np.float64), np.asarray(sigma, np.float64), int(features.shape[0]), features)

    def save(self, path) -> None:
        arrays = {"mu": self.mu, "sigma": self.sigma, "n": np.int64(self.n)}
        if self.features is not None:
            arrays["features"] = self.features
        with open(path, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path) -> "Reference":
        """Reads ``mu``, ``sigma`` (and optional ``features``, ``n``) from an .npz."""
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if "features" in keys and not {"mu", "sigma"} <= keys:
                return cls.from_features(data["features"])
            if not {"mu", "sigma"} <= keys:
                raise KeyError(f"has keys {sorted(keys)}, needs mu and sigma (or features)")
            features = data["features"] if "features" in keys else None
            n = int(data["n"]) if "n" in keys else (len(features) if features is not None else 0)
            return cls(data["mu"].astype(np.float64), data["sigma"].astype(np.float64), n, features)

    @property
    def dim(self) -> int:
        return int(self.mu.shape[0])


class StreamingScorer:
    """Generated features in, one batch at a time; FID, distance, MiFID (and KID, IS) out."""

    def __init__(self, reference: Reference, dtype=tf.float64, keep_features=True, jit=None):
        self.reference = reference
        self.dtype = tf.as_dtype(dtype)
        self.jit = jit
        self.moments = stats.Moments(reference.dim, self.dtype, jit)
        self.memo = (
            stats.MemorizationDistance(reference.features, self.dtype, jit)
            if reference.features is not None else None
        )
        self.keep_features = keep_features
        self._features: list[np.ndarray] = []
        self._probs: list[np.ndarray] = []

    def update(self, features, probs=None) -> None:
        features = np.asarray(features, np.float32)
        self.moments.update(features)
        if self.memo is not None:
            self.memo.update(features)
        if self.keep_features:
            self._features.append(features)
        if probs is not None:
            self._probs.append(np.asarray(probs, np.float32))

    @property
    def count(self) -> int:
        return self.moments.count

    def features(self) -> np.ndarray:
        return np.concatenate(self._features) if self._features else np.zeros([0, self.reference.dim], np.float32)

    def result(self, eps=DEFAULT_EPS, kid_subsets=100, kid_subset_size=1000, method="auto", seed=0) -> dict:
        """{"fid", "distance", "mifid"} plus "kid"/"kid_std" and "is"/"is_std" when available."""
        if self.count < 2:
            raise ValueError(f"need at least 2 generated images, got {self.count}")
        ref = self.reference
        mu1, s1 = self.moments.result()
        mu2 = tf.constant(ref.mu, self.dtype)
        s2 = tf.constant(ref.sigma, self.dtype)
        factor = (
            stats.centred_factor(ref.features, ref.mu, self.dtype)
            if ref.features is not None and len(ref.features) >= 2 else None
        )
        fid = stats.frechet_distance(mu1, s1, mu2, s2, factor, method, self.jit)
        out = {"fid": fid, "distance": None, "mifid": None, "n_generated": self.count, "n_reference": ref.n}
        if self.memo is not None:
            distance = self.memo.result()
            out["distance"] = distance
            out["mifid"] = stats.mifid_value(fid, distance, eps)
        if self.keep_features and ref.features is not None and kid_subsets:
            out.update(stats.kid(self.features(), ref.features, kid_subsets, kid_subset_size, seed, self.dtype, self.jit))
        if self._probs:
            out.update(stats.inception_score(np.concatenate(self._probs), dtype=self.dtype, jit=self.jit))
        return out


def _score(gen_features, ref_features, dtype, jit, kid_subsets=0, eps=DEFAULT_EPS, method="auto"):
    gen = np.asarray(gen_features)
    ref = np.asarray(ref_features)
    if gen.ndim != 2 or ref.ndim != 2 or gen.shape[1] != ref.shape[1]:
        raise ValueError(f"features must be [N, D] with equal D, got {gen.shape} and {ref.shape}")
    scorer = StreamingScorer(Reference.from_features(ref, dtype, jit), dtype, keep_features=bool(kid_subsets), jit=jit)
    for start in range(0, len(gen), 1000):
        scorer.update(gen[start:start + 1000])
    return scorer.result(eps=eps, kid_subsets=kid_subsets, method=method)


def fid(gen_features, ref_features, dtype=tf.float64, jit=None, method="auto") -> float:
    """FID between two ``[N, D]`` NumPy feature arrays (Kaggle's formula, in-graph)."""
    return _score(gen_features, ref_features, dtype, jit, method=method)["fid"]


def mifid(gen_features, ref_features, eps=DEFAULT_EPS, dtype=tf.float64, jit=None, method="auto") -> dict:
    """{"fid", "distance", "mifid"} for generated vs reference features, as Kaggle scores them."""
    out = _score(gen_features, ref_features, dtype, jit, eps=eps, method=method)
    return {k: out[k] for k in ("fid", "distance", "mifid")}


def kid(gen_features, ref_features, subsets=100, subset_size=1000, seed=0, dtype=tf.float64, jit=None) -> dict:
    """{"kid", "kid_std"}: unbiased cubic-kernel MMD² over random subsets."""
    return stats.kid(gen_features, ref_features, subsets, subset_size, seed, dtype, jit)


def inception_score(probs, splits=10, dtype=tf.float64, jit=None) -> dict:
    """{"is", "is_std"} from class probabilities ``[N, C]``."""
    return stats.inception_score(probs, splits, dtype, jit)
