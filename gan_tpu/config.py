"""Pipeline configs: `pipelines/*.toml` read, overridden with --set, validated, saved.

Every key has a type and a default here; `[model]` keys are checked against the registered
model's own defaults. A bad key or value is a one-line UserError naming `section.key`.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from gan_tpu.errors import UserError

# Shipped pipelines: gan_tpu/pipelines (a link to the top-level pipelines/ in a checkout, a
# real folder inside the wheel), else the checkout's pipelines/ (where links are not kept).
PIPELINES_DIR = next((d for d in (Path(__file__).resolve().parent / "pipelines",
                                  Path(__file__).resolve().parent.parent / "pipelines") if d.is_dir()),
                     Path(__file__).resolve().parent / "pipelines")


def default_data_root() -> str:
    """Kaggle's input folder in a Kaggle notebook (its GCS copy on an older TPU node),
    else `data/gan-getting-started` (where `make data` puts it)."""
    from gan_tpu.kaggle import data_root

    return data_root()


# section -> key -> (accepted types, default). None as default = computed later.
SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], object]]] = {
    "data": {
        "monet": ((str, list), None),     # data root, monet_tfrec/, monet_jpg/, a glob, tfds:NAME[:SPLIT], or a list
        "photo": ((str, list), None),
        "image_size": ((int,), 256),      # training resolution
        "source_size": ((int,), 256),     # size of the images on disk (Kaggle: 256)
        "augment": ((bool,), True),       # resize to size*286/256, random crop, flip
        "rot90": ((bool,), False),
        "cache": ((bool,), False),
        "shuffle_buffer": ((int,), 2048),
        "verify": ((bool,), True),        # check every image decodes before training
    },
    "model": {
        "name": ((str,), "cyclegan"),
    },
    "train": {
        "batch_size": ((int,), 1),        # per replica
        "epochs": ((int, str), 1),        # or "auto": as many steps as the budget holds (README)
        "steps_per_epoch": ((int,), 0),   # 0: the larger domain once per epoch
        "seed": ((int,), 0),
        "jit_compile": ((bool, str), "auto"),  # "auto": XLA on TPU/GPU, off on CPU
        "checkpoint_every": ((int,), 0),  # steps; 0: at each epoch end only
        "keep_checkpoints": ((int,), 3),
        "samples": ((int,), 4),           # photos in each epoch's sample grid
        "tensorboard": ((bool,), True),   # losses, learning rates, scores, grids in RUN/tensorboard/
    },
    "budget": {
        "hours": ((int, float), 0.0),     # 0: 3 h on TPU, 5 h on GPU/CPU (Kaggle's limits)
    },
    "eval": {                             # MiFID during training; keeps the best generator
        "every": ((int,), 0),             # epochs between evaluations; 0: off
        "photos": ((int,), 256),          # photos held out from training, translated each time
        "extractor": ((str,), "tiny"),    # kaggle[:PATH], inception_v3[:WEIGHTS], tiny (smoke only)
        "reference": ((str,), ""),        # Monet paintings to score against; "" = data.monet
    },
    "runtime": {
        "device": ((str,), "auto"),       # auto | tpu | gpu | cpu
        "precision": ((str,), "auto"),    # auto | float32 | mixed_bfloat16 | mixed_float16
        "backend": ((str,), "auto"),      # auto | tensorflow | jax (Keras backend, set before import)
        "processes": ((str, int), "auto"),  # auto | N: a job of N processes (gan_tpu.distributed)
    },
    "output": {
        "dir": ((str,), None),            # default runs/<pipeline name> (default_run_dir)
    },
    "score": {
        "extractor": ((str,), ""),        # "" (no scoring), kaggle[:PATH], inception_v3[:WEIGHTS], tiny
        "reference": ((str,), ""),        # Monet paintings to score against; "" = data.monet
    },
    "submission": {
        "count": ((int,), 0),             # 0: every photo, at least 7,000
        "batch_size": ((int,), 8),
        "quality": ((int,), 95),
        "allow_any_count": ((bool,), False),
    },
}

CHOICES = {
    ("runtime", "device"): ("auto", "tpu", "gpu", "cpu"),
    ("runtime", "precision"): ("auto", "float32", "mixed_bfloat16", "mixed_float16"),
    ("runtime", "backend"): ("auto", "tensorflow", "jax"),
}
POSITIVE = {("data", "image_size"), ("data", "source_size"), ("data", "shuffle_buffer"),
            ("train", "batch_size"), ("train", "keep_checkpoints"), ("eval", "photos"),
            ("submission", "batch_size")}


def _type_name(types) -> str:
    return " or ".join({bool: "bool", int: "int", float: "float", str: "string", list: "list of strings"}[t]
                       for t in types)


def _check_type(where: str, value, types) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if ok and isinstance(value, list):  # lists (of data sources) hold strings, at least one
        ok = bool(value) and all(isinstance(v, str) for v in value)
    if not ok:
        raise UserError(f"{where}: expected {_type_name(types)}, got {type(value).__name__} {value!r}")


def parse_override(text: str) -> tuple[str, str, object]:
    """`section.key=value` -> (section, key, value); the value is read as TOML, else a string."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise UserError(f"--set {text!r}: expected section.key=value")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return section, key, value


def load(path: str | os.PathLike, overrides: list[str] = ()) -> dict:
    """Read a pipeline TOML, apply `section.key=value` overrides, validate, fill defaults."""
    path = Path(path)
    if not path.is_file():
        candidate = PIPELINES_DIR / (path.name if path.suffix else f"{path.name}.toml")
        if str(path.parent) == "." and candidate.is_file():  # a bare name: a shipped pipeline
            path = candidate
        else:
            raise UserError(f"{path}: no such pipeline file")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{path}: not valid TOML ({err})") from None
    for text in overrides:
        section, key, value = parse_override(text)
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise UserError(f"{path}: [{section}] must be a table")
        raw[section][key] = value
    cfg = validate(raw, origin=str(path))
    if cfg["output"]["dir"] is None:
        cfg["output"]["dir"] = default_run_dir(path.stem)
    return cfg


def default_run_dir(name: str) -> str:
    """``runs/<name>``; in a Kaggle notebook, scratch space instead: everything under
    ``/kaggle/working`` is saved as the notebook's output, and checkpoints do not belong there."""
    from gan_tpu.kaggle.paths import in_notebook, scratch_dir

    return os.path.join(scratch_dir(), name) if in_notebook() else os.path.join("runs", name)


def validate(raw: dict, origin: str = "config") -> dict:
    """Check every section and key against SCHEMA (and the model's options); fill defaults."""
    unknown = sorted(set(raw) - set(SCHEMA))
    if unknown:
        raise UserError(f"{origin}: unknown section [{unknown[0]}] (known: {', '.join(SCHEMA)})")
    cfg = {}
    for section, keys in SCHEMA.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise UserError(f"{origin}: [{section}] must be a table")
        cfg[section] = {key: copy.deepcopy(default) for key, (_, default) in keys.items()}
        for key, value in given.items():
            where = f"{section}.{key}"
            if section == "model" and key != "name":
                continue  # checked below, against the model's defaults
            if key not in keys:
                raise UserError(f"{where}: unknown key (known: {', '.join(keys)})")
            _check_type(where, value, keys[key][0])
            if (section, key) in CHOICES and value not in CHOICES[section, key]:
                raise UserError(f"{where}: {value!r} is not one of {', '.join(CHOICES[section, key])}")
            if (section, key) in POSITIVE and value < 1:
                raise UserError(f"{where}: must be at least 1, got {value}")
            cfg[section][key] = value
    jit = cfg["train"]["jit_compile"]
    if isinstance(jit, str) and jit != "auto":
        raise UserError(f"train.jit_compile: expected true, false or \"auto\", got {jit!r}")
    epochs = cfg["train"]["epochs"]
    if isinstance(epochs, str) and epochs != "auto":
        raise UserError(f"train.epochs: expected a whole number or \"auto\", got {epochs!r}")
    if isinstance(epochs, int) and epochs < 1:
        raise UserError(f"train.epochs: must be at least 1, got {epochs}")
    if cfg["eval"]["every"] < 0:
        raise UserError(f"eval.every: must be 0 (off) or a number of epochs, got {cfg['eval']['every']}")
    # Last: the model's options need the registry, which imports Keras (and TensorFlow), so
    # every error the TOML alone shows comes first, in a second instead of after the import.
    from gan_tpu import models

    model_defaults = models.defaults(cfg["model"]["name"])
    for key, value in raw.get("model", {}).items():
        if key == "name":
            continue
        where = f"model.{key}"
        if key not in model_defaults:
            raise UserError(f"{where}: not an option of model {cfg['model']['name']!r} "
                            f"(options: {', '.join(sorted(model_defaults))})")
        default = model_defaults[key]
        types = (int, float) if isinstance(default, float) else (type(default),)
        _check_type(where, value, types)
        cfg["model"][key] = value
    for key in ("monet", "photo"):
        if cfg["data"][key] is None:
            cfg["data"][key] = default_data_root()
    return cfg


def model_options(cfg: dict) -> dict:
    """The [model] table without `name`: the options passed to the model's constructor."""
    return {k: v for k, v in cfg["model"].items() if k != "name"}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dumps(cfg: dict) -> str:
    """A config as TOML (flat tables of scalars); `load` reads it back to the same dict."""
    lines = []
    for section, keys in cfg.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in keys.items() if v is not None)
        lines.append("")
    return "\n".join(lines)


def save(cfg: dict, path: str | os.PathLike) -> None:
    """Write the resolved config atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(dumps(cfg))
    os.replace(tmp, path)
