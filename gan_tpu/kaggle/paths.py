"""Where things are on Kaggle: the competition data, the working folder, attached datasets.

In a Kaggle notebook the competition data is at ``/kaggle/input/gan-getting-started``. A TPU
VM reads that local disk; an older TPU *node* runs the input pipeline on a remote TPU host,
which can only read the data's GCS copy (``kaggle_datasets.KaggleDatasets().get_gcs_path()``).
Elsewhere: ``data/gan-getting-started``.
"""
from __future__ import annotations

import functools
import glob
import os
from typing import Callable, Mapping

from gan_tpu.errors import UserError
from gan_tpu.platform import tpu_kind

COMPETITION = "gan-getting-started"
KAGGLE_INPUT = "/kaggle/input"
KAGGLE_DATA = f"{KAGGLE_INPUT}/{COMPETITION}"
KAGGLE_WORKING = "/kaggle/working"
LOCAL_DATA = f"data/{COMPETITION}"


@functools.lru_cache(maxsize=None)
def kaggle_gcs_path(competition: str = COMPETITION) -> str:
    """The competition data's GCS path, from Kaggle's own ``kaggle_datasets`` (Kaggle only)."""
    try:
        from kaggle_datasets import KaggleDatasets  # only inside Kaggle notebooks
    except ImportError:
        raise UserError("this TPU node cannot read /kaggle/input and kaggle_datasets is missing: "
                        "set data.monet and data.photo to the data's gs:// path") from None
    try:
        return KaggleDatasets().get_gcs_path(competition)
    except Exception as err:  # noqa: BLE001 - its errors become one line
        raise UserError(f"kaggle_datasets could not give the GCS path of {competition} ({err}); "
                        f"attach the competition data to the notebook") from None


def data_root(env: Mapping[str, str] | None = None, exists: Callable[[str], bool] = os.path.isdir,
              gcs_path: Callable[[], str] | None = None) -> str:
    """Where the competition data is for this machine.

    An older TPU node: the GCS path (its TPU host cannot read this VM's disk); a Kaggle
    notebook: ``/kaggle/input/gan-getting-started``; elsewhere ``data/gan-getting-started``.
    """
    if exists(KAGGLE_DATA) and tpu_kind(env) == "node":
        return (gcs_path or kaggle_gcs_path)()
    if exists(KAGGLE_DATA):
        return KAGGLE_DATA
    return LOCAL_DATA


def working_dir(env: Mapping[str, str] | None = None) -> str:
    """``/kaggle/working`` in a Kaggle notebook; ``$GAN_TPU_WORKING`` or ./kaggle_working elsewhere."""
    env = os.environ if env is None else env
    if env.get("GAN_TPU_WORKING"):
        return env["GAN_TPU_WORKING"]
    return KAGGLE_WORKING if os.path.isdir(KAGGLE_WORKING) else os.path.abspath("kaggle_working")


def find_input(patterns: tuple[str, ...], root: str = KAGGLE_INPUT) -> str | None:
    """The first file under ``root`` (attached datasets) matching one of ``patterns``."""
    for pattern in patterns:
        hits = sorted(glob.glob(os.path.join(root, "**", pattern), recursive=True))
        if hits:
            return hits[-1]
    return None


def score_extractor(root: str = KAGGLE_INPUT) -> str:
    """The best feature extractor attached to the notebook, as a ``--extractor`` spec.

    Kaggle's own Inception graph if a dataset holds it (scores comparable to the
    leaderboard's), else Keras InceptionV3 weights if attached, else ``tiny`` (a smoke
    check only: notebooks run offline, so no weights can be downloaded).
    """
    graph = find_input(("classify_image_graph_def.pb", "inception-2015-12-05.tgz"), root)
    if graph:
        return f"kaggle:{graph}"
    weights = find_input(("inception_v3_weights_tf_dim_ordering_tf_kernels*.h5",), root)
    if weights:
        return f"inception_v3:{weights}"
    return "tiny"
