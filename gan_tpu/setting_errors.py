"""Errors that name the setting to change and how: a resume whose settings differ from the
run's `config.toml`, an image size a model cannot take, a `--run` folder that is not there.

No Keras or TensorFlow here: these need only the configs and the model's own message.
"""
from __future__ import annotations

import os
import re

from gan_tpu.errors import UserError

# What a run's checkpoints depend on: changing one of these on --resume cannot work (the
# networks' shapes) or silently trains another model. Everything else may change on resume.
FIXED_ON_RESUME = (("data", "image_size"),)


def _flat(cfg: dict) -> dict[str, object]:
    return {f"{section}.{key}": value for section, keys in cfg.items() for key, value in keys.items()}


def resume_conflicts(cfg: dict, saved: dict) -> list[tuple[str, object, object]]:
    """(key, value in the run's config.toml, value asked for now) for every setting the
    checkpoints depend on (every `model.*` key, `data.image_size`) that differs."""
    now, before = _flat(cfg), _flat(saved)
    keys = sorted(k for k in set(now) | set(before)
                  if k.startswith("model.") or tuple(k.split(".", 1)) in FIXED_ON_RESUME)
    return [(k, before.get(k), now.get(k)) for k in keys if before.get(k) != now.get(k)]


def check_resume(cfg: dict, saved: dict, out: str) -> None:
    """Refuse to resume the run in `out` with settings its checkpoints cannot take."""
    conflicts = resume_conflicts(cfg, saved)
    if not conflicts:
        return
    listed = ", ".join(f"{key} is {_show(old)} there, {_show(new)} now" for key, old, new in conflicts)
    sets = " ".join(f"--set {key}=..." for key, _, _ in conflicts)
    raise UserError(f"--resume: {out}/config.toml differs: {listed}; to continue that run drop "
                    f"{sets} (or use its pipeline), or train these settings into a new --out")


def _show(value) -> str:
    return "unset" if value is None else repr(value)


def nearest_sizes(message: str, size: int) -> list[int]:
    """The sizes nearest `size` that satisfy what a model's size error says it needs ("a power
    of two >= 4", "a multiple of 4", "divisible by 16", "image_size >= 96"); [] if unknown."""
    floor = max([int(n) for n in re.findall(r"(?:>=|at least|of at least)\s*(\d+)", message)] or [1])
    steps = [int(n) for n in re.findall(r"(?:multiple of|divisible by)\s*(\d+)", message)]
    if "power of two" in message:
        ok = lambda s: s >= floor and s & (s - 1) == 0  # noqa: E731
    elif steps or floor > 1:
        step = max(steps or [1])
        ok = lambda s: s >= floor and s % step == 0  # noqa: E731
    else:
        return []
    below = next((s for s in range(size - 1, 0, -1) if ok(s)), None)
    above = next(s for s in range(max(size + 1, floor), 16 * max(size, floor) + 2) if ok(s))
    return [s for s in (below, above) if s is not None]


def model_value_error(cfg: dict, err: ValueError, options=()) -> UserError:
    """A model constructor's ValueError as an error naming the setting: `data.image_size` and
    the nearest sizes the model takes, or the `model.*` option it names (`options`: the
    model's option names, for a message that starts with one)."""
    message = str(err)
    size = cfg["data"]["image_size"]
    if re.search(r"image[ _]size", message):
        options = re.findall(r"model\.\w+", message)
        nearest = nearest_sizes(message, size)
        fix = (f"; nearest sizes that work: {' or '.join(map(str, nearest))}" if nearest else "")
        other = f" (or change {', '.join(dict.fromkeys(options))})" if options else ""
        return UserError(f"data.image_size = {size}: {cfg['model']['name']!r} cannot take it: {message}{fix}{other}")
    named = re.findall(r"model\.\w+", message)
    first = message.split(" ", 1)[0]
    key = named[0] if named else f"model.{first}" if first in {*cfg["model"], *options} else "model"
    return UserError(f"{key}: {message}")


def check_run_dir(run_dir: str) -> None:
    """`--run DIR`: it must exist and hold a run's config.toml."""
    if not os.path.isdir(run_dir):
        raise UserError(f"--run {run_dir}: no such folder (give a run directory, e.g. runs/cyclegan, "
                        f"the --out of a train or run command)")
    if not os.path.isfile(os.path.join(run_dir, "config.toml")):
        raise UserError(f"--run {run_dir}: not a run directory (no config.toml): a run's folder holds "
                        f"config.toml, checkpoints/ and samples/")


def remove_empty(folder: str) -> None:
    """Remove `folder` if it holds no files (empty subfolders, such as checkpoints/, allowed)."""
    if any(files for _, _, files in os.walk(folder)):
        return
    for root, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
        os.rmdir(root)
