"""``gan-tpu kernel NAME``: the wheel as a new version of the project's Kaggle dataset, then
``kernels/NAME`` pushed with the owner filled in."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from gan_tpu.errors import UserError
from gan_tpu.kaggle.api import error_line, loaded
from gan_tpu.kaggle.notebooks import (DATASET_SLUG, KERNELS_DIR, check_metadata, kernel_dir, notebook_in_sync,
                                      read_metadata, staged_metadata)


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
    push_dataset(api, [wheel], dataset, title="gan-tpu wheel", subtitle="gan_tpu, packaged for offline Kaggle "
                 "notebooks", notes=notes, wait_s=wait_s, sleep=sleep, log=log)


def push_dataset(api, files: list[Path], dataset: str, *, title: str, subtitle: str, notes: str,
                 wait_s: float = 600.0, sleep: Callable[[float], None] = time.sleep, log=print) -> None:
    """Upload ``files`` as a new version of ``dataset`` (created, private, the first time) and
    wait until Kaggle has processed it: a kernel started before would read the old version."""
    names = ", ".join(Path(f).name for f in files)
    with tempfile.TemporaryDirectory() as folder:
        for f in files:
            shutil.copy2(f, folder)
        meta = {"title": title, "id": dataset, "licenses": [{"name": "other"}], "subtitle": subtitle}
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
                log(f"uploading {names} as a new version of {dataset}")
                result = api.dataset_create_version(folder, notes, quiet=True, dir_mode="skip")
            else:
                log(f"creating the private dataset {dataset} with {names}")
                result = api.dataset_create_new(folder, public=False, quiet=True, dir_mode="skip")
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001
            raise UserError(f"Kaggle API error uploading {names} to {dataset}: {error_line(err)}") from None
    error = _result_error(result)
    if error:
        raise UserError(f"Kaggle API error uploading {names} to {dataset}: {error}")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            status = str(api.dataset_status(dataset)).lower()
        except Exception as err:  # noqa: BLE001
            raise UserError(f"Kaggle API error reading {dataset}'s status: {error_line(err)}") from None
        if "ready" in status:
            return
        if "error" in status:
            raise UserError(f"Kaggle could not process the new version of {dataset} ({status})")
        if time.monotonic() > deadline:
            raise UserError(f"{dataset} is still {status!r} after {wait_s:.0f} s; push the kernel "
                            f"again once it is ready: gan-tpu kernel NAME --no-wheel")
        sleep(10)


@dataclass
class Pushed:
    """A pushed notebook: OWNER/SLUG and the number of the version now running."""

    kernel: str
    version: int
    url: str


def push_kernel(name: str, *, wheel_dir: str = "dist", upload_wheel: bool = True, dataset: str | None = None,
                root: Path | str = KERNELS_DIR, api=None, sleep: Callable[[float], None] = time.sleep,
                log=print, inception: str | None = None) -> Pushed:
    """Push ``kernels/<name>``: the wheel to the project's dataset first, then the notebook
    (``inception``: a dataset or Kaggle Model with Kaggle's Inception graph, attached too)."""
    folder = kernel_dir(name, root)
    meta = read_metadata(folder)
    problems = check_metadata(meta, folder)
    if problems:
        raise UserError(f"{folder / 'kernel-metadata.json'}: {'; '.join(problems)}")
    if not notebook_in_sync(folder):
        raise UserError(f"{folder / meta['code_file']} is out of date with its .py twin: gan-tpu kernels --sync")
    wheel = find_wheel(wheel_dir) if upload_wheel else None
    api = loaded(api)
    owner = _username(api)
    dataset = dataset or f"{owner}/{DATASET_SLUG}"
    if wheel is not None:
        from gan_tpu import __version__

        push_wheel(api, wheel, dataset, notes=f"gan_tpu {__version__}", sleep=sleep, log=log)
    with tempfile.TemporaryDirectory() as staged:
        for item in folder.iterdir():
            if item.is_file() and item.suffix != ".py":  # the twin is for CI, not Kaggle
                shutil.copy2(item, staged)
        staged_meta = staged_metadata(meta, owner, dataset, inception)
        Path(staged, "kernel-metadata.json").write_text(json.dumps(staged_meta, indent=2))
        log(f"pushing {staged_meta['id']} ({staged_meta.get('machine_shape') or 'CPU'}, "
            f"data: {', '.join(staged_meta['competition_sources'] + staged_meta['dataset_sources'])})")
        try:
            result = api.kernels_push(staged)
        except Exception as err:  # noqa: BLE001 - validation (ValueError) and HTTP errors
            raise UserError(f"Kaggle API error pushing {staged_meta['id']}: {error_line(err)}") from None
    error = _result_error(result)
    if error:
        raise UserError(f"Kaggle API error pushing {staged_meta['id']}: {error}")
    url = getattr(result, "url", None) or f"https://www.kaggle.com/code/{staged_meta['id']}"
    version = int(getattr(result, "version_number", 0) or 0)
    log(f"pushed: {url} (version {version or '?'}); it runs now on Kaggle")
    return Pushed(staged_meta["id"], version, url)
