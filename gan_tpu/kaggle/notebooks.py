"""The project's Kaggle kernels (``kernels/<name>/``): their metadata, and each notebook
written from its percent-format ``.py`` twin (the twin is what CI runs)."""
from __future__ import annotations

import json
import re
from pathlib import Path

from gan_tpu.errors import UserError
from gan_tpu.kaggle.accelerator import MACHINE_SHAPES
from gan_tpu.kaggle.paths import COMPETITION

DATASET_SLUG = "gan-tpu-wheel"            # the project's Kaggle dataset: the gan_tpu wheel
OWNER_PLACEHOLDER = "your-kaggle-username"  # kernels/*/kernel-metadata.json; filled in at push
KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels"
# Fields kernels_push needs.
KERNEL_REQUIRED = ("id", "title", "code_file", "language", "kernel_type")


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


def inception_source(handle: str) -> tuple[str, str]:
    """("dataset_sources" or "model_sources", handle) for an attached Inception network:
    ``OWNER/SLUG`` is a dataset, ``OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION]`` a Kaggle Model."""
    parts = handle.strip("/").split("/")
    if len(parts) == 2 and all(parts):
        return "dataset_sources", "/".join(parts)
    if len(parts) in (4, 5) and all(parts):
        return "model_sources", "/".join(parts)
    raise UserError(f"INCEPTION={handle!r}: expected a dataset OWNER/SLUG or a Kaggle Model "
                    f"OWNER/MODEL/FRAMEWORK/VARIATION[/VERSION] holding classify_image_graph_def.pb")


def staged_metadata(meta: dict, owner: str, dataset: str | None = None, inception: str | None = None) -> dict:
    """The metadata with the placeholder owner (and the wheel dataset) made concrete; with
    ``inception``, that dataset or Kaggle Model added to the kernel's sources."""
    meta = json.loads(json.dumps(meta))
    meta["id"] = meta["id"].replace(OWNER_PLACEHOLDER, owner, 1)
    meta["dataset_sources"] = [
        (dataset or s.replace(OWNER_PLACEHOLDER, owner, 1)) if s.endswith(f"/{DATASET_SLUG}")
        else s.replace(OWNER_PLACEHOLDER, owner, 1)
        for s in meta.get("dataset_sources", [])
    ]
    if inception:
        key, handle = inception_source(inception)
        meta[key] = [s for s in meta.get(key, []) if s != handle] + [handle]
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
