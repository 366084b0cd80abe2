"""Which Keras backend a command runs on, decided before Keras is imported (it reads
`KERAS_BACKEND` once, at import).

Order: a pipeline's explicit `[runtime] backend` ("tensorflow" or "jax", or `--set
runtime.backend=...`); else `KERAS_BACKEND` from the environment; else "auto"
(:func:`gan_tpu.platform.auto_backend`: JAX where JAX sees the TPU, as on Kaggle's TPU
image, TensorFlow everywhere else). Nothing here imports Keras or TensorFlow.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from gan_tpu import jax_cache, platform
from gan_tpu.errors import UserError

_PIPELINE_COMMANDS = ("train", "run", "demo")


def _pipeline_path(name: str) -> Path | None:
    from gan_tpu import config

    path = Path(name)
    if path.is_file():
        return path
    candidate = config.PIPELINES_DIR / (path.name if path.suffix else f"{path.name}.toml")
    return candidate if str(path.parent) == "." and candidate.is_file() else None


def _read_backend(path: Path | None) -> str | None:
    from gan_tpu.config import tomllib

    if path is None or not path.is_file():
        return None
    try:
        runtime = tomllib.loads(path.read_text()).get("runtime", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError):
        return None  # config.load reports it properly later
    value = runtime.get("backend") if isinstance(runtime, dict) else None
    return value if isinstance(value, str) else None


def requested(argv: list[str]) -> str | None:
    """The backend a command line's pipeline (or run directory) asks for, if any."""
    from gan_tpu.config import parse_override

    if not argv:
        return None
    command, rest = argv[0], argv[1:]
    wanted = None
    if command in _PIPELINE_COMMANDS:
        positional = [a for i, a in enumerate(rest)
                      if not a.startswith("-") and (i == 0 or rest[i - 1] not in ("--set", "--out", "--zip"))]
        pipeline = "demo" if command == "demo" else (positional[0] if positional else None)
        if pipeline:
            wanted = _read_backend(_pipeline_path(pipeline))
        for i, arg in enumerate(rest):
            text = rest[i + 1] if arg == "--set" and i + 1 < len(rest) else (
                arg.split("=", 1)[1] if arg.startswith("--set=") else None)
            if text:
                try:
                    section, key, value = parse_override(text)
                except UserError:
                    continue
                if (section, key) == ("runtime", "backend"):
                    wanted = value if isinstance(value, str) else wanted
    elif command == "generate":
        for flag in ("--run", "--checkpoint"):
            if flag in rest and rest.index(flag) + 1 < len(rest):
                where = Path(rest[rest.index(flag) + 1])
                if flag == "--checkpoint":
                    if where.suffix == ".keras":
                        return None
                    where = where.parent.parent if where.parent.name == "checkpoints" else where.parent
                wanted = _read_backend(where / "config.toml")
    return wanted if wanted in ("tensorflow", "jax") else None


def choose(argv: list[str]) -> str:
    """Set `KERAS_BACKEND` for this command line (before Keras is imported) and return it.

    If Keras is already imported on another backend than an explicit request, that is a
    UserError: the backend cannot change inside a process. On JAX it also turns on JAX's
    persistent compilation cache (:mod:`gan_tpu.jax_cache`).
    """
    wanted = requested(argv)
    name = wanted or os.environ.get("KERAS_BACKEND") or platform.auto_backend()
    if "keras" in sys.modules:
        import keras

        current = keras.backend.backend()
        if wanted and current != wanted:
            raise UserError(f"runtime.backend: {wanted!r} asked for, but Keras is already running on "
                            f"{current!r} in this process (run the command in a new process)")
        return current
    os.environ["KERAS_BACKEND"] = name
    if name == "jax":  # before JAX is imported: it reads its options from the environment then
        jax_cache.configure()
    return name
