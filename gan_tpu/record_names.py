"""Kaggle's record files name their image count: `monet00-60.tfrec` holds 60 images.

No TensorFlow here: `gan_tpu.kaggle` checks a download's layout before Keras is chosen.
"""
from __future__ import annotations

import re

COUNT_IN_NAME = re.compile(r"-(\d+)\.tfrec(?:ords?)?$")


def count_in_name(name: str) -> int | None:
    """The N of a `*-N.tfrec` (`.tfrecord`, `.tfrecords`) file name, or None when it has none."""
    match = COUNT_IN_NAME.search(name)
    return int(match.group(1)) if match else None
