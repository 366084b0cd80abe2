"""Where things are on Kaggle: the competition data, the working folder, attached datasets.

Kaggle mounts what a notebook attaches under ``/kaggle/input``, in one of two layouts:
notebooks pushed with the kaggle CLI get ``competitions/<slug>/`` and
``datasets/<owner>/<slug>/``; older and interactive sessions show ``<slug>/``. So nothing
here hard-codes a path under it: :func:`competition_data` looks for the folder holding the
competition's ``monet_tfrec``/``photo_tfrec`` (or ``*_jpg``) folders, :func:`find_input`
for a file (the wheel, an Inception graph), each to a bounded depth.

A TPU VM reads that local disk; an older TPU *node* runs the input pipeline on a remote TPU
host, which can only read the data's GCS copy (``kaggle_datasets.KaggleDatasets().get_gcs_path()``).
Elsewhere: ``data/gan-getting-started``. ``$GAN_TPU_KAGGLE_ROOT`` stands in for ``/kaggle``
(tests); the notebooks use the real one.
"""
from __future__ import annotations

import fnmatch
import functools
import os
from typing import Callable, Mapping

from gan_tpu.errors import UserError
from gan_tpu.platform import tpu_kind

COMPETITION = "gan-getting-started"
KAGGLE_ROOT = "/kaggle"
KAGGLE_INPUT = f"{KAGGLE_ROOT}/input"
KAGGLE_DATA = f"{KAGGLE_INPUT}/competitions/{COMPETITION}"  # today's layout (the old: input/<slug>)
KAGGLE_WORKING = f"{KAGGLE_ROOT}/working"
LOCAL_DATA = f"data/{COMPETITION}"
# The competition's folders: records or the same images as JPEGs.
DATA_LAYOUTS = (("monet_tfrec", "photo_tfrec"), ("monet_jpg", "photo_jpg"))
DATA_DEPTH = 4   # input/datasets/<owner>/<slug> is depth 3; one more for a dataset's subfolder
FILE_DEPTH = 7   # input/models/<owner>/<model>/<framework>/<variation>/<version>/FILE
INCEPTION_FILES = ("classify_image_graph_def.pb", "inception-2015-12-05.tgz")
ATTACH_DATA = f"attach it: Add Input > Competitions > {COMPETITION}"


def kaggle_root(env: Mapping[str, str] | None = None) -> str:
    """``/kaggle``, or ``$GAN_TPU_KAGGLE_ROOT`` (a stand-in tree for tests)."""
    env = os.environ if env is None else env
    return env.get("GAN_TPU_KAGGLE_ROOT") or KAGGLE_ROOT


def kaggle_input(env: Mapping[str, str] | None = None) -> str:
    return os.path.join(kaggle_root(env), "input")


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


def _walk(root: str, depth: int):
    """(folder, its subfolder names, its file names), breadth first, ``depth`` levels below ``root``
    (sorted, links not followed, unreadable folders skipped)."""
    level = [root]
    for _ in range(depth + 1):
        below = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            dirs = [e.name for e in entries if e.is_dir(follow_symlinks=False)]
            yield folder, dirs, [e.name for e in entries if not e.is_dir()]
            below += [os.path.join(folder, d) for d in dirs]
        level = below


def is_competition_data(folder: str) -> bool:
    return any(all(os.path.isdir(os.path.join(folder, d)) for d in pair) for pair in DATA_LAYOUTS)


def find_competition_data(root: str | None = None) -> str | None:
    """The folder under ``root`` (default: Kaggle's input) holding the competition's data:
    ``competitions/gan-getting-started`` or ``gan-getting-started`` first, else the first
    folder (breadth first, :data:`DATA_DEPTH` levels) with monet_tfrec/photo_tfrec or
    monet_jpg/photo_jpg."""
    root = kaggle_input() if root is None else root
    for known in (os.path.join(root, "competitions", COMPETITION), os.path.join(root, COMPETITION)):
        if is_competition_data(known):
            return known
    for folder, dirs, _ in _walk(root, DATA_DEPTH):
        if any(all(d in dirs for d in pair) for pair in DATA_LAYOUTS):
            return folder
    return None


def _children(folder: str) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def attached_inputs(root: str | None = None) -> list[str]:
    """What is attached under ``root``: ``competitions/<slug>``, ``datasets/<owner>/<slug>``,
    ``models/<owner>/<model>``, or a top-level ``<slug>`` (the older layout)."""
    root = kaggle_input() if root is None else root
    found = []
    for name in _children(root):
        levels = {"competitions": 1, "datasets": 2, "models": 2}.get(name)
        if levels is None or not os.path.isdir(os.path.join(root, name)):
            found.append(name)
            continue
        paths = [name]
        for _ in range(levels):
            paths = [f"{p}/{c}" for p in paths for c in _children(os.path.join(root, p))] or paths
        found += paths
    return found


def input_listing(root: str | None = None, limit: int = 12) -> str:
    """What ``root`` holds, as one line."""
    root = kaggle_input() if root is None else root
    if not os.path.isdir(root):
        return f"{root} does not exist"
    found = attached_inputs(root)
    if not found:
        return f"{root} is empty"
    shown = ", ".join(found[:limit]) + (f" and {len(found) - limit} more" if len(found) > limit else "")
    return f"{root} holds {shown}"


def competition_data(root: str | None = None, env: Mapping[str, str] | None = None, log=print,
                     gcs_path: Callable[[], str] | None = None) -> str:
    """The competition data for a notebook, found by :func:`find_competition_data` and said in
    one line; on an older TPU node its GCS copy. Not found: UserError listing what the input holds."""
    root = kaggle_input(env) if root is None else root
    found = find_competition_data(root)
    if found is None:
        raise UserError(f"no {COMPETITION} data (monet_tfrec/ and photo_tfrec/) under {root}: "
                        f"{input_listing(root)}; {ATTACH_DATA}")
    readable = _readable_copy(found, env, gcs_path)
    log(f"competition data: {found}" + (f", read by the TPU node from {readable}" if readable != found else ""))
    return readable


def data_root(env: Mapping[str, str] | None = None, root: str | None = None,
              gcs_path: Callable[[], str] | None = None) -> str:
    """Where pipelines read the competition data by default: on Kaggle the folder
    :func:`find_competition_data` finds (an older TPU node: its GCS copy, as its TPU host
    cannot read this VM's disk); elsewhere ``data/gan-getting-started``."""
    found = find_competition_data(kaggle_input(env) if root is None else root)
    return LOCAL_DATA if found is None else _readable_copy(found, env, gcs_path)


def _readable_copy(found: str, env: Mapping[str, str] | None, gcs_path: Callable[[], str] | None) -> str:
    """`found`, or on an older TPU node (whose TPU host cannot read this VM's disk) its GCS copy."""
    return (gcs_path or kaggle_gcs_path)() if tpu_kind(env) == "node" else found


def working_dir(env: Mapping[str, str] | None = None) -> str:
    """``/kaggle/working`` in a Kaggle notebook; ``$GAN_TPU_WORKING`` or ./kaggle_working elsewhere."""
    env = os.environ if env is None else env
    if env.get("GAN_TPU_WORKING"):
        return env["GAN_TPU_WORKING"]
    working = os.path.join(kaggle_root(env), "working")
    return working if os.path.isdir(working) else os.path.abspath("kaggle_working")


def in_notebook(env: Mapping[str, str] | None = None) -> bool:
    """Whether this runs inside a Kaggle notebook (``/kaggle/working`` exists)."""
    return os.path.isdir(os.path.join(kaggle_root(env), "working"))


def scratch_dir(env: Mapping[str, str] | None = None) -> str:
    """Room for the run folder (checkpoints) outside the notebook's output: ``/kaggle/temp``
    when Kaggle offers it, else ``/tmp/gan_tpu_run``; ``$GAN_TPU_SCRATCH`` wins."""
    env = os.environ if env is None else env
    if env.get("GAN_TPU_SCRATCH"):
        return env["GAN_TPU_SCRATCH"]
    temp = os.path.join(kaggle_root(env), "temp")
    return os.path.join(temp, "gan_tpu_run") if os.path.isdir(temp) and os.access(temp, os.W_OK) else "/tmp/gan_tpu_run"


def find_input(patterns: tuple[str, ...], root: str | None = None, depth: int = FILE_DEPTH) -> str | None:
    """The file under ``root`` (default: Kaggle's input) matching the first pattern that
    matches any (the last in name order among that pattern's hits), at most ``depth`` folders down."""
    root = kaggle_input() if root is None else root
    hits: dict[str, list[str]] = {p: [] for p in patterns}
    for folder, _, files in _walk(root, depth):
        for pattern in patterns:
            hits[pattern] += [os.path.join(folder, f) for f in fnmatch.filter(files, pattern)]
    for pattern in patterns:
        if hits[pattern]:
            return sorted(hits[pattern], key=os.path.basename)[-1]
    return None


def inception_file(root: str | None = None, log=None) -> str | None:
    """Kaggle's scoring network attached to the notebook (``classify_image_graph_def.pb`` or
    ``inception-2015-12-05.tgz``, as a dataset or a Kaggle Model), or None."""
    found = find_input(INCEPTION_FILES, root)
    if log is not None:
        log(f"Inception network: {found}" if found else
            "no Inception network attached (classify_image_graph_def.pb from inception-2015-12-05): "
            "evaluation during training is off, every photo trains")
    return found


def score_extractor(root: str | None = None) -> str:
    """The best feature extractor attached to the notebook, as a ``--extractor`` spec.

    Kaggle's own Inception graph if a dataset holds it (scores comparable to the
    leaderboard's), else Keras InceptionV3 weights if attached, else ``tiny`` (a smoke
    check only: notebooks run offline, so no weights can be downloaded).
    """
    graph = inception_file(root)
    if graph:
        return f"kaggle:{graph}"
    weights = find_input(("inception_v3_weights_tf_dim_ordering_tf_kernels*.h5",), root)
    if weights:
        return f"inception_v3:{weights}"
    return "tiny"
