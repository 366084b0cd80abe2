"""What `make test-compat` checks after a notebook ran (.ci/compat.py): the run's own record
(backend, replicas), and for an executed .ipynb (.ci/kaggle_rehearsal.py) the output Kaggle
would keep: a valid images.zip, only small artefacts in /kaggle/working and no checkpoint,
the checkpoints in scratch space, and outputs free of carriage returns, backspaces and
colour codes. Standard library only (the project's interpreter runs it)."""
from __future__ import annotations

import json
import os
import re
import zipfile

TPU_DEVICES = 8  # a v5e-8
SMOKE_IMAGES = 8  # the rehearsal's sample data: 8 photos
MAX_ARTEFACT = 4 * 1024 * 1024
CONTROL = re.compile(r"[\r\b\x1b]")
CHECKPOINT = re.compile(r"(^|/)checkpoints?(/|$)|\.keras$|\.index$|\.data-\d+-of-\d+$|ckpt", re.I)
ARTEFACT = re.compile(r"^(images\.zip|scores\.json|config\.toml|history\.csv|plots\.png|eval_[\w.]+|"
                      r"samples/[\w.-]+\.png)$")


def run_problems(work: str, backend: str, output: str) -> list[str]:
    """The run's record in ``work`` (its config.toml, images.zip) and log ``output``: the
    backend asked for and, on JAX, 8 replicas with more than one image each."""
    problems = []
    config_path = os.path.join(work, "config.toml")
    config = open(config_path).read() if os.path.isfile(config_path) else ""
    if f'backend = "{backend}"' not in config:
        problems.append(f"{config_path} does not say backend = {backend!r}")
    if backend == "jax":
        match = re.search(r"global batch (\d+) on (\d+) replica", output)
        if not match or int(match[2]) != TPU_DEVICES or int(match[1]) <= TPU_DEVICES:
            problems.append(f"not {TPU_DEVICES} replicas with more than one image each: "
                            f"{match[0] if match else 'no training line'}")
    if not os.path.isfile(os.path.join(work, "images.zip")):
        problems.append("no images.zip")
    return problems


def notebook_text(path: str) -> str:
    """Every output of the executed notebook as text (streams, results, errors)."""
    with open(path) as fh:
        nb = json.load(fh)
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            parts.append("".join(text) if isinstance(text, list) else text)
            for value in out.get("data", {}).values():
                if isinstance(value, (str, list)):
                    parts.append("".join(value))
            parts += out.get("traceback", [])
    return "\n".join(parts)


def check_notebook(what: str, out: str, backend: str) -> None:
    """Raise RuntimeError listing what is wrong with the rehearsal's results in ``out``."""
    with open(os.path.join(out, "manifest.json")) as fh:
        manifest = json.load(fh)
    output = notebook_text(os.path.join(out, "executed.ipynb"))
    if manifest["error"]:
        raise RuntimeError(f"{what}: the notebook failed:\n{manifest['error']}")
    problems = run_problems(out, backend, output)
    validate = manifest["validate"]
    if not validate or validate["rc"] != 0:
        problems.append(f"gan-tpu validate: {validate}")
    with zipfile.ZipFile(os.path.join(out, "images.zip")) as zf:
        names = zf.namelist()
    if len(names) != SMOKE_IMAGES or not all(n.endswith(".jpg") for n in names):
        problems.append(f"images.zip holds {names}, not {SMOKE_IMAGES} JPEGs")
    working = dict((path, size) for path, size in manifest["working"])
    stray = [p for p in working if not ARTEFACT.match(p) or CHECKPOINT.search(p)]
    big = [f"{p} ({s:,} bytes)" for p, s in working.items() if s > MAX_ARTEFACT]
    if stray:
        problems.append(f"/kaggle/working holds more than the zip and small artefacts: {stray}")
    if big:
        problems.append(f"/kaggle/working holds large files: {big}")
    for wanted in ("images.zip", "history.csv", "scores.json", "config.toml"):
        if wanted not in working:
            problems.append(f"/kaggle/working has no {wanted}")
    if not any(p.startswith("samples/") for p in working):
        problems.append("/kaggle/working has no sample grid")
    if not any(CHECKPOINT.search(p) for p, _ in manifest["scratch"]):
        problems.append("no checkpoint in the scratch folder: where did the run folder go?")
    controls = sorted({repr(c) for c in CONTROL.findall(output)})
    if controls:
        first = CONTROL.search(output).start()
        problems.append(f"the notebook's outputs hold {', '.join(controls)}: {output[max(0, first - 200):first + 60]!r}")
    for needle in ("competition data: /kaggle/input/", "wheel: /kaggle/input/", "no Inception network attached"):
        if needle not in output:
            problems.append(f"the notebook did not say {needle!r}")
    if problems:
        raise RuntimeError(f"{what}: {'; '.join(problems)}\n{output[-3000:]}")


def check_wheel(wheel: str) -> None:
    """The wheel the notebooks install offline ships the pipelines and gan_tpu.kaggle."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    wanted = {"gan_tpu/pipelines/demo.toml", "gan_tpu/pipelines/cyclegan.toml", "gan_tpu/kaggle/__init__.py",
              "gan_tpu/kaggle/paths.py", "gan_tpu/progress.py"}
    if not wanted <= names:
        raise RuntimeError(f"{wheel} lacks {sorted(wanted - names)}")
