"""Kaggle: where the data is, the notebooks' accelerator check, `gan-tpu data`, kernels and their push.

* Paths: in a Kaggle notebook the competition data is at ``/kaggle/input/gan-getting-started``.
  A TPU VM reads that local disk; an older TPU *node* runs the input pipeline on a remote
  TPU host, which can only read the data's GCS copy
  (``kaggle_datasets.KaggleDatasets().get_gcs_path()``). Elsewhere: ``data/gan-getting-started``.
* The notebook's accelerator check, :func:`prepare_accelerator`: the backend that can drive
  the TPU or the GPUs (decided in :mod:`gan_tpu.platform`), the supported versions, and
  ``KERAS_BACKEND`` set before anything imports Keras; else one line with the fix.
* ``gan-tpu data``: the competition's zip through the official ``kaggle`` package,
  unpacked and checked in a hidden folder, renamed into place only when complete.
* ``gan-tpu kernel NAME``: the wheel as a new version of the project's Kaggle dataset,
  then ``kernels/NAME`` pushed with the owner filled in. ``gan-tpu kernels --sync``
  writes each kernel's notebook from its ``.py`` twin (the twin is what CI runs).

Nothing here imports TensorFlow or Keras at module level: the TPU notebook imports this
module before it chooses the Keras backend.
"""
from __future__ import annotations

import functools
import glob
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable, Mapping, Optional

from gan_tpu.errors import UserError
from gan_tpu.platform import (LAST_TPU_TENSORFLOW, TPU_TF_FIX, BackendPlan, TpuFacts,  # noqa: F401
                              choose_tpu_backend, gpu_devices, require_supported, tensorflow_tpu_capable,
                              tpu_facts, tpu_kind)
from gan_tpu.record_names import count_in_name

COMPETITION = "gan-getting-started"
KAGGLE_INPUT = "/kaggle/input"
KAGGLE_DATA = f"{KAGGLE_INPUT}/{COMPETITION}"
KAGGLE_WORKING = "/kaggle/working"
LOCAL_DATA = f"data/{COMPETITION}"
DATASET_SLUG = "gan-tpu-wheel"            # the project's Kaggle dataset: the gan_tpu wheel
OWNER_PLACEHOLDER = "your-kaggle-username"  # kernels/*/kernel-metadata.json; filled in at push
KERNELS_DIR = Path(__file__).resolve().parent.parent / "kernels"
# The full competition, for the record: counts a complete download must hold.
COMPETITION_COUNTS = {"monet": 300, "photo": 7038}
# Fields kernels_push needs, and the accelerator fields it accepts.
KERNEL_REQUIRED = ("id", "title", "code_file", "language", "kernel_type")
MACHINE_SHAPES = {"tpu": "TpuV5E8", "gpu": "NvidiaTeslaT4"}


# --------------------------------------------------------------------------- paths


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


# --------------------------------------------------------------------------- accelerator


def prepare_accelerator(target: str, *, smoke: bool = False, facts: TpuFacts | None = None,
                        env: dict | None = None, log=print) -> BackendPlan:
    """Check the notebook's accelerator before anything trains; return the plan or stop.

    ``target`` "tpu": choose the backend (see :func:`choose_tpu_backend`) and set
    ``KERAS_BACKEND`` to it (Keras must not be imported yet on another one). Without a usable TPU this raises
    UserError with the fixing command, so a 3-hour run never falls back to the CPU.
    ``target`` "gpu": a GPU must be visible. ``smoke``: CPU allowed (CI), said loudly.
    Then the installed versions must be supported on that backend (:func:`require_supported`).
    Imports neither Keras nor TensorFlow (JAX only, on a TPU host).
    """
    env = os.environ if env is None else env
    if target not in MACHINE_SHAPES:
        raise UserError(f"accelerator {target!r}: expected one of {', '.join(MACHINE_SHAPES)}")
    if target == "tpu":
        facts = facts or tpu_facts()
        if smoke and facts.tpu is None:
            # KERAS_BACKEND=jax (with gan_tpu's JAX trainer) rehearses the TPU image's JAX path on CPU.
            backend = "jax" if env.get("KERAS_BACKEND") == "jax" and facts.jax_backend else "tensorflow"
            plan = BackendPlan(backend, f"smoke mode: no TPU here, so this runs on the CPU ({backend})")
        else:
            plan = choose_tpu_backend(facts)
            if not plan.ok:
                raise UserError(f"cannot train on the TPU: {plan.reason}. Fix: {plan.fix} "
                                f"(Internet on), restart the session, and run again")
        return _use(plan, env, log)
    gpus = gpu_devices()
    if gpus:
        plan = BackendPlan("tensorflow", f"MirroredStrategy over {len(gpus)} GPU(s): {', '.join(gpus)}")
    elif smoke:
        plan = BackendPlan("tensorflow", "smoke mode: no GPU here, so this runs on the CPU")
    else:
        raise UserError("no GPU is visible: Notebook settings > Accelerator > GPU T4 x2, then run again")
    return _use(plan, env, log)


def _use(plan: BackendPlan, env, log) -> BackendPlan:
    require_supported(plan.backend)
    _set_keras_backend(plan.backend, env)
    log(f"accelerator: {plan.reason}")
    return plan


def _set_keras_backend(backend: str, env) -> None:
    """Fix Keras's backend for this process (gan-tpu's CLI then keeps it): before Keras loads."""
    keras = sys.modules.get("keras")
    if keras is not None:
        current = keras.backend.backend()
        if current != backend:
            raise UserError(f"Keras is already imported on {current!r}, not {backend!r}: restart the "
                            f"session and run this cell before anything imports Keras")
    env["KERAS_BACKEND"] = backend


# --------------------------------------------------------------------------- kernels


def kernel_names(root: Path | str = KERNELS_DIR) -> list[str]:
    """Kernel folders: every ``kernels/<name>/`` with a ``kernel-metadata.json``."""
    root = Path(root)
    return sorted(p.parent.name for p in root.glob("*/kernel-metadata.json"))


def kernel_dir(name: str, root: Path | str = KERNELS_DIR) -> Path:
    path = Path(root) / name
    if not (path / "kernel-metadata.json").is_file():
        known = ", ".join(kernel_names(root)) or "none"
        raise UserError(f"kernels/{name}: no such kernel (kernel-metadata.json); known: {known}")
    return path


def read_metadata(folder: Path | str) -> dict:
    path = Path(folder) / "kernel-metadata.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not readable JSON ({err})") from None
    if not isinstance(meta, dict):
        raise UserError(f"{path}: expected a JSON object")
    return meta


def check_metadata(meta: dict, folder: Path | str) -> list[str]:
    """Problems with a kernel's metadata, as the kaggle API and this project see them."""
    problems = [f"missing {key!r}" for key in KERNEL_REQUIRED if not meta.get(key)]
    if meta.get("language") not in (None, "python"):
        problems.append(f"language {meta['language']!r}: expected 'python'")
    if meta.get("kernel_type") not in (None, "notebook"):
        problems.append(f"kernel_type {meta['kernel_type']!r}: expected 'notebook'")
    if meta.get("code_file") and not (Path(folder) / meta["code_file"]).is_file():
        problems.append(f"code_file {meta['code_file']!r} does not exist")
    if COMPETITION not in meta.get("competition_sources", []):
        problems.append(f"competition_sources must name {COMPETITION!r}")
    if not any(s.endswith(f"/{DATASET_SLUG}") for s in meta.get("dataset_sources", [])):
        problems.append(f"dataset_sources must name the project's dataset <owner>/{DATASET_SLUG}")
    for key in ("is_private", "enable_gpu", "enable_tpu", "enable_internet"):
        if key in meta and meta[key] not in (True, False, "true", "false"):
            problems.append(f"{key}: expected true or false, got {meta[key]!r}")
    gpu, tpu = (str(meta.get(k, "false")).lower() == "true" for k in ("enable_gpu", "enable_tpu"))
    if gpu and tpu:
        problems.append("enable_gpu and enable_tpu are both true")
    shape = meta.get("machine_shape")
    if (gpu or tpu) and shape and shape != MACHINE_SHAPES["tpu" if tpu else "gpu"]:
        problems.append(f"machine_shape {shape!r} does not match the accelerator")
    if str(meta.get("enable_internet", "true")).lower() != "false":
        problems.append("enable_internet must be false (the wheel installs offline)")
    return problems


def staged_metadata(meta: dict, owner: str, dataset: str | None = None) -> dict:
    """The metadata with the placeholder owner (and the wheel dataset) made concrete."""
    meta = json.loads(json.dumps(meta))
    meta["id"] = meta["id"].replace(OWNER_PLACEHOLDER, owner, 1)
    meta["dataset_sources"] = [
        (dataset or s.replace(OWNER_PLACEHOLDER, owner, 1)) if s.endswith(f"/{DATASET_SLUG}")
        else s.replace(OWNER_PLACEHOLDER, owner, 1)
        for s in meta.get("dataset_sources", [])
    ]
    return meta


# Notebook <-> .py twin: percent format. "# %%" opens a code cell, "# %% [markdown]" a
# markdown cell whose lines are "# text". The .ipynb is generated from the twin.
_CELL = re.compile(r"^# %%(?: \[(markdown)\])?\s*$")


def script_cells(text: str) -> list[tuple[str, str]]:
    """[(cell_type, source)] of a percent-format script; text before the first marker is dropped."""
    cells, kind, lines = [], None, []

    def flush():
        if kind is not None:
            body = "\n".join(lines).strip("\n")
            if kind == "markdown":
                body = "\n".join(ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in body.split("\n"))
            cells.append((kind, body))

    for line in text.splitlines():
        match = _CELL.match(line)
        if match:
            flush()
            kind, lines = (match.group(1) or "code"), []
        elif kind is not None:
            lines.append(line)
    flush()
    return cells


def notebook_json(text: str) -> str:
    """The .ipynb (nbformat 4) for a percent-format twin, as deterministic JSON text."""
    cells = []
    for index, (kind, body) in enumerate(script_cells(text)):
        source = [ln + "\n" for ln in body.split("\n")]
        source[-1] = source[-1].rstrip("\n")
        cell = {"cell_type": kind, "id": f"cell-{index}", "metadata": {}, "source": source}
        if kind == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    nb = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.11"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def twin_path(folder: Path | str) -> Path:
    meta = read_metadata(folder)
    return Path(folder) / Path(meta["code_file"]).with_suffix(".py").name


def notebook_in_sync(folder: Path | str) -> bool:
    meta = read_metadata(folder)
    notebook = Path(folder) / meta["code_file"]
    twin = twin_path(folder)
    return notebook.is_file() and notebook.read_text() == notebook_json(twin.read_text())


def sync_notebook(folder: Path | str) -> Path:
    """Write the kernel's notebook from its ``.py`` twin; returns the notebook's path."""
    meta = read_metadata(folder)
    notebook = Path(folder) / meta["code_file"]
    twin = twin_path(folder)
    if not twin.is_file():
        raise UserError(f"{twin}: the notebook's .py twin is missing")
    notebook.write_text(notebook_json(twin.read_text()))
    return notebook


# --------------------------------------------------------------------------- data download


def _load_api(api):
    if api is not None:
        return api
    from gan_tpu.submission.submit import find_credentials, load_api

    if importlib.util.find_spec("kaggle") is None:
        raise UserError("the kaggle package is not installed: pip install 'gan_tpu[kaggle]'")
    find_credentials()
    return load_api()


def _one_line(err: BaseException) -> str:
    from gan_tpu.submission.submit import _one_line as one_line, _scrub

    return _scrub(one_line(err)) or type(err).__name__


def check_layout(root: str | os.PathLike, expect: Mapping[str, int] | None = None) -> dict[str, int]:
    """Check a data folder has Kaggle's layout, consistently; returns {domain: image count}.

    Each domain needs ``<domain>_tfrec/*-N.tfrec`` and ``<domain>_jpg/*.jpg`` holding the
    same number of images (a half-unpacked folder fails here), and ``expect``'s counts.
    """
    root = Path(root)
    counts = {}
    for domain in ("monet", "photo"):
        records = sorted((root / f"{domain}_tfrec").glob("*.tfrec"))
        jpgs = list((root / f"{domain}_jpg").glob("*.jpg"))
        if not records:
            raise UserError(f"{root}: no {domain}_tfrec/*.tfrec")
        named = [count_in_name(p.name) for p in records]
        if None in named:
            raise UserError(f"{root / f'{domain}_tfrec'}: record names lack their -N count")
        in_records = sum(named)
        if len(jpgs) != in_records:
            raise UserError(f"{root}: {domain}_jpg holds {len(jpgs)} images but the records name {in_records}")
        if expect and domain in expect and in_records != expect[domain]:
            raise UserError(f"{root}: {in_records} {domain} images, expected {expect[domain]}")
        counts[domain] = in_records
    return counts


def download_data(dest: str = LOCAL_DATA, *, competition: str = COMPETITION, force: bool = False,
                  expect: Mapping[str, int] | None = None, api=None, log=print) -> dict[str, int]:
    """Download and unpack the competition into ``dest``; returns {domain: count}.

    The zip lands in ``.<name>.download/`` beside ``dest`` (kept after a failure so the
    kaggle package can resume), is unpacked and checked in ``.<name>.partial/``, and only
    then renamed to ``dest``: a folder at ``dest`` is always complete.
    """
    if expect is None and competition == COMPETITION:
        expect = COMPETITION_COUNTS
    dest = Path(dest)
    if dest.exists() and not force:
        try:
            counts = check_layout(dest, expect)
        except UserError as err:
            raise UserError(f"{dest} exists but is not a complete copy ({err}): "
                            f"remove it or use --force") from None
        log(f"{dest}: already complete ({counts['monet']} Monet paintings, {counts['photo']} photos)")
        return counts
    api = _load_api(api)
    parent = dest.parent
    parent.mkdir(parents=True, exist_ok=True)
    download = parent / f".{dest.name}.download"
    partial = parent / f".{dest.name}.partial"
    download.mkdir(exist_ok=True)
    log(f"downloading {competition} into {download}")
    try:
        api.competition_download_files(competition, path=str(download), force=False, quiet=False)
    except Exception as err:  # noqa: BLE001 - HTTP, network, 403 rules not accepted
        hint = " (accept the competition's rules on its Kaggle page first)" if "403" in str(err) else ""
        raise UserError(f"downloading {competition} failed: {_one_line(err)}{hint}") from None
    archives = sorted(download.glob("*.zip"))
    if not archives:
        raise UserError(f"downloading {competition} left no .zip in {download}")
    archive = archives[0]
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as zf:
            bad = zf.testzip()
            if bad:
                raise zipfile.BadZipFile(f"bad CRC in {bad}")
            zf.extractall(partial)
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        archive.unlink(missing_ok=True)  # an incomplete zip: start over next time
        shutil.rmtree(partial, ignore_errors=True)
        raise UserError(f"{archive}: incomplete or corrupt download ({err}); run again") from None
    try:
        counts = check_layout(partial, expect)
    except UserError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if dest.exists():  # --force: swap in the new copy, then drop the old one
        old = parent / f".{dest.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(partial, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(partial, dest)
    shutil.rmtree(download, ignore_errors=True)
    log(f"{dest}: {counts['monet']} Monet paintings, {counts['photo']} photos")
    return counts


# --------------------------------------------------------------------------- kernel push


def find_wheel(wheel_dir: str | os.PathLike) -> Path:
    """This version's wheel in ``wheel_dir`` (``make wheel`` writes it to dist/)."""
    from gan_tpu import __version__

    path = Path(wheel_dir) / f"gan_tpu-{__version__}-py3-none-any.whl"
    if not path.is_file():
        raise UserError(f"{path}: no wheel; build it with `make wheel`")
    return path


def _username(api) -> str:
    user = None
    try:
        user = api.get_config_value(api.CONFIG_NAME_USER)
    except Exception:  # noqa: BLE001
        user = None
    user = user or getattr(api, "config_values", {}).get("username")
    if not user:
        raise UserError("the Kaggle credentials name no username: use kaggle.json or KAGGLE_USERNAME")
    return user


def _result_error(result) -> str | None:
    error = getattr(result, "error", None) or getattr(result, "error_message", None)
    return str(error) if error else None


def push_wheel(api, wheel: Path, dataset: str, *, notes: str, wait_s: float = 600.0,
               sleep: Callable[[float], None] = time.sleep, log=print) -> None:
    """Upload ``wheel`` as a new version of ``dataset`` (created, private, the first time)."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copy2(wheel, folder)
        meta = {"title": "gan-tpu wheel", "id": dataset, "licenses": [{"name": "other"}],
                "subtitle": "gan_tpu, packaged for offline Kaggle notebooks"}
        Path(folder, "dataset-metadata.json").write_text(json.dumps(meta, indent=2))
        try:
            try:
                api.dataset_status(dataset)
                exists = True
            except Exception as err:  # noqa: BLE001 - 404: not created yet
                if "404" not in str(err) and "not found" not in str(err).lower():
                    raise
                exists = False
            if exists:
                log(f"uploading {wheel.name} as a new version of {dataset}")
                result = api.dataset_create_version(folder, notes, quiet=True, dir_mode="skip")
            else:
                log(f"creating the private dataset {dataset} with {wheel.name}")
                result = api.dataset_create_new(folder, public=False, quiet=True, dir_mode="skip")
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001
            raise UserError(f"Kaggle API error uploading {wheel.name} to {dataset}: {_one_line(err)}") from None
    error = _result_error(result)
    if error:
        raise UserError(f"Kaggle API error uploading {wheel.name} to {dataset}: {error}")
    deadline = time.monotonic() + wait_s
    while True:  # a kernel started before the version is ready would install the old wheel
        try:
            status = str(api.dataset_status(dataset)).lower()
        except Exception as err:  # noqa: BLE001
            raise UserError(f"Kaggle API error reading {dataset}'s status: {_one_line(err)}") from None
        if "ready" in status:
            return
        if "error" in status:
            raise UserError(f"Kaggle could not process the new version of {dataset} ({status})")
        if time.monotonic() > deadline:
            raise UserError(f"{dataset} is still {status!r} after {wait_s:.0f} s; push the kernel "
                            f"again once it is ready: gan-tpu kernel NAME --no-wheel")
        sleep(10)


def push_kernel(name: str, *, wheel_dir: str = "dist", upload_wheel: bool = True, dataset: str | None = None,
                root: Path | str = KERNELS_DIR, api=None, sleep: Callable[[float], None] = time.sleep,
                log=print):
    """Push ``kernels/<name>``: the wheel to the project's dataset first, then the notebook."""
    folder = kernel_dir(name, root)
    meta = read_metadata(folder)
    problems = check_metadata(meta, folder)
    if problems:
        raise UserError(f"{folder / 'kernel-metadata.json'}: {'; '.join(problems)}")
    if not notebook_in_sync(folder):
        raise UserError(f"{folder / meta['code_file']} is out of date with its .py twin: gan-tpu kernels --sync")
    wheel = find_wheel(wheel_dir) if upload_wheel else None
    api = _load_api(api)
    owner = _username(api)
    dataset = dataset or f"{owner}/{DATASET_SLUG}"
    if wheel is not None:
        from gan_tpu import __version__

        push_wheel(api, wheel, dataset, notes=f"gan_tpu {__version__}", sleep=sleep, log=log)
    with tempfile.TemporaryDirectory() as staged:
        for item in folder.iterdir():
            if item.is_file() and item.suffix != ".py":  # the twin is for CI, not Kaggle
                shutil.copy2(item, staged)
        staged_meta = staged_metadata(meta, owner, dataset)
        Path(staged, "kernel-metadata.json").write_text(json.dumps(staged_meta, indent=2))
        log(f"pushing {staged_meta['id']} ({staged_meta.get('machine_shape') or 'CPU'}, "
            f"data: {', '.join(staged_meta['competition_sources'] + staged_meta['dataset_sources'])})")
        try:
            result = api.kernels_push(staged)
        except Exception as err:  # noqa: BLE001 - validation (ValueError) and HTTP errors
            raise UserError(f"Kaggle API error pushing {staged_meta['id']}: {_one_line(err)}") from None
    error = _result_error(result)
    if error:
        raise UserError(f"Kaggle API error pushing {staged_meta['id']}: {error}")
    url = getattr(result, "url", None) or f"https://www.kaggle.com/code/{staged_meta['id']}"
    log(f"pushed: {url} (version {getattr(result, 'version_number', '?')}); it runs now on Kaggle")
    return result


# --------------------------------------------------------------------------- CLI


def cmd_data(args) -> int:
    download_data(args.out, competition=args.competition, force=args.force)
    return 0


def cmd_kernel(args) -> int:
    push_kernel(args.name, wheel_dir=args.wheel_dir, upload_wheel=not args.no_wheel, dataset=args.dataset)
    return 0


def cmd_kernels(args) -> int:
    stale = []
    for name in kernel_names():
        folder = KERNELS_DIR / name
        if args.sync:
            sync_notebook(folder)
        problems = check_metadata(read_metadata(folder), folder)
        for problem in problems:
            print(f"kernels/{name}: {problem}")
        in_sync = notebook_in_sync(folder)
        if not in_sync:
            stale.append(name)
        print(f"kernels/{name}: {'ok' if not problems and in_sync else 'NOT OK'}"
              f"{'' if in_sync else ' (notebook out of date: gan-tpu kernels --sync)'}")
        if problems:
            stale.append(name)
    return 1 if stale else 0


def register(subparsers) -> None:
    p = subparsers.add_parser("data", help="download the competition data with the kaggle package",
                              description="Download and unpack the competition data (needs Kaggle "
                              "credentials and the competition's rules accepted).")
    p.add_argument("--out", default=LOCAL_DATA, help=f"folder to create (default {LOCAL_DATA})")
    p.add_argument("--competition", default=COMPETITION, help=f"competition slug (default {COMPETITION})")
    p.add_argument("--force", action="store_true", help="download again even if the folder is complete")
    p.set_defaults(func=cmd_data)

    p = subparsers.add_parser("kernel", help="push the wheel and a kernels/NAME notebook to Kaggle",
                              description="Upload dist/gan_tpu-VERSION-py3-none-any.whl as a new version of "
                              f"<you>/{DATASET_SLUG}, then push kernels/NAME with your username filled in.")
    p.add_argument("name", help="a folder under kernels/ (e.g. tpu-cyclegan, gpu-cyclegan)")
    p.add_argument("--wheel-dir", default="dist", help="where `make wheel` put the wheel (default dist)")
    p.add_argument("--no-wheel", action="store_true", help="push only the notebook")
    p.add_argument("--dataset", help=f"the wheel's dataset as OWNER/SLUG (default <you>/{DATASET_SLUG})")
    p.set_defaults(func=cmd_kernel)

    p = subparsers.add_parser("kernels", help="check every kernel's metadata and notebook (--sync rewrites them)")
    p.add_argument("--sync", action="store_true", help="write each notebook from its .py twin first")
    p.set_defaults(func=cmd_kernels)
