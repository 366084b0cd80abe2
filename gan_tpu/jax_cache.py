"""JAX's persistent compilation cache for gan-tpu's commands on Keras' JAX backend.

Building a Keras model on JAX runs every weight initializer eagerly, and JAX compiles one
XLA program per initializer and weight shape: the full-size U-Net's 46 weights cost 52
compilations, 12 of the 17 CPU-s a fresh `gan-tpu generate` on JAX spends before its first
image (BENCHMARKS.md, "Generation with the shipped recipe"). JAX keeps compiled programs on
disk when told where, but by default only those that took over a second to compile; here
every program is kept, so a second process (the `generate` after a `train`, or the next
`generate`) loads them instead of compiling. The compiled code is the same, so the outputs
are too.

``$GAN_TPU_JAX_CACHE`` names the folder (``off`` turns the cache off); default
``<gan_tpu cache>/jax`` (:func:`default_cache_dir`). A ``JAX_COMPILATION_CACHE_DIR`` already
set is left as it is. Nothing here imports JAX, Keras or TensorFlow: it sets JAX's options
through the environment, which JAX reads when it is imported (and through ``jax.config``
when JAX is imported already).
"""
from __future__ import annotations

import os
import sys
from typing import Mapping, MutableMapping, Optional

OFF = ("off", "0", "false", "no")


def default_cache_dir(environ: Optional[Mapping[str, str]] = None) -> str:
    """``$GAN_TPU_CACHE``, else ``$XDG_CACHE_HOME/gan_tpu``, else ``~/.cache/gan_tpu``."""
    environ = os.environ if environ is None else environ
    if environ.get("GAN_TPU_CACHE"):
        return environ["GAN_TPU_CACHE"]
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gan_tpu")


def configure(environ: Optional[MutableMapping[str, str]] = None) -> Optional[str]:
    """Point JAX's persistent compilation cache at gan-tpu's folder, keeping every program;
    returns the folder, or None when the cache is off. Call before JAX is imported."""
    environ = os.environ if environ is None else environ
    setting = environ.get("GAN_TPU_JAX_CACHE", "")
    if setting.strip().lower() in OFF:
        return None
    folder = environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                                setting or os.path.join(default_cache_dir(environ), "jax"))
    environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    # No JAX_COMPILATION_CACHE_MAX_SIZE: its eviction needs `filelock`, and without it JAX
    # turns the whole cache off (0 hits of 52 in tests/test_jax_cache.py).
    if "jax" in sys.modules and environ is os.environ:  # imported already: it read its options then
        import jax

        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs",
                          float(environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"]))
        jax.config.update("jax_persistent_cache_min_entry_size_bytes",
                          int(environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"]))
    return folder
