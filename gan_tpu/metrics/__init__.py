"""Local scoring that agrees with Kaggle: FID, memorization distance, MiFID, KID, IS.

Python API (NumPy in, floats out; TensorFlow is imported on first use)::

    from gan_tpu import metrics
    metrics.fid(gen_features, ref_features)                  # float
    metrics.mifid(gen_features, ref_features, eps=0.1)       # {"fid", "distance", "mifid"}
    metrics.kid(gen_features, ref_features)                  # {"kid", "kid_std"}
    metrics.inception_score(probs)                           # {"is", "is_std"}
    ex = metrics.get_extractor("kaggle:/path/inception-2015-12-05.tgz")
    scorer = metrics.StreamingScorer(metrics.Reference.from_features(ref))

Modules: ``extractors`` (kaggle / inception_v3 / tiny), ``stats`` (in-graph math),
``scoring`` (reference sets, streaming scorer), ``kaggle_numpy`` (the NumPy/SciPy
transcription of Kaggle's scorer the tests compare against), ``callback``
(MiFID during training), ``score`` (the ``gan-tpu score`` command).
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "fid": "scoring",
    "mifid": "scoring",
    "kid": "scoring",
    "inception_score": "scoring",
    "Reference": "scoring",
    "StreamingScorer": "scoring",
    "resolve_dtype": "scoring",
    "get_extractor": "extractors",
    "EXTRACTORS": "extractors",
    "MiFIDCallback": "callback",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):  # lazy: `gan-tpu --help` must not import TensorFlow
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"gan_tpu.metrics.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'gan_tpu.metrics' has no attribute {name!r}")
