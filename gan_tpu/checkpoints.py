"""Backend-neutral training checkpoints: written and read as NumPy values, so a run trained
on Keras' JAX backend (a TPU) resumes, generates and scores on TensorFlow, and the reverse.

A checkpoint `checkpoints/ckpt-N` is TensorFlow's tensor-bundle format (`ckpt-N.index` +
`ckpt-N.data-00000-of-00001`, readable with `tf.train.load_checkpoint`), written through
`tf.raw_ops.SaveV2` from plain arrays: no `tf.train.Checkpoint` of Keras objects (which only
works on the TensorFlow backend). It holds, by stable names:

- `networks/<attribute>/<i>`: every variable of each network (`net.variables`, in order:
  weights, non-trainable state, dropout seed states);
- `model/<i>`: model-level state outside the networks (e.g. a noise model's seed generator);
- `optimizers/<player>/<i>`: each player's optimizer variables (step count, learning rate,
  slots), in build order, which is the same on every backend;
- `epoch`: completed epochs.

Files are written under a temporary name and renamed; the `checkpoint` state file (TF's
text format, so `tf.train.latest_checkpoint` finds the newest) is rewritten atomically last,
and only the newest `max_to_keep` checkpoints are kept.
"""
from __future__ import annotations

import os
import re

import numpy as np
import tensorflow as tf

from gan_tpu.errors import UserError

STATE_FILE = "checkpoint"
_SUFFIXES = (".data-00000-of-00001", ".index")


def model_variables(model, epoch) -> dict[str, object]:
    """Name -> variable for everything a checkpoint holds (`epoch`: a counter variable)."""
    named: dict[str, object] = {}
    seen = set()
    for attr, net in sorted(model.networks.items()):
        for i, v in enumerate(net.variables):
            named[f"networks/{attr}/{i}"] = v
            seen.add(id(v))
    metrics = {id(v) for v in model.metrics_variables}
    extra = [v for v in model.variables if id(v) not in seen and id(v) not in metrics]
    for i, v in enumerate(extra):
        named[f"model/{i}"] = v
        seen.add(id(v))
    for player in model.players:
        for i, v in enumerate(player.optimizer.variables):
            named[f"optimizers/{player.name}/{i}"] = v
    named["epoch"] = epoch
    return named


def _numpy(v) -> np.ndarray:
    return np.asarray(v.numpy() if hasattr(v, "numpy") else v)


def write(prefix: str, variables: dict[str, object]) -> str:
    """Write `variables`' current values as the checkpoint `prefix` (atomically)."""
    names = sorted(variables)
    tmp = f"{prefix}.tmp{os.getpid()}"
    tensors = [tf.constant(_numpy(variables[n])) for n in names]
    tf.raw_ops.SaveV2(prefix=tmp, tensor_names=names, shape_and_slices=[""] * len(names), tensors=tensors)
    for suffix in _SUFFIXES:  # data first, index last: an index always has its data
        tf.io.gfile.rename(tmp + suffix, prefix + suffix, overwrite=True)
    return prefix


def read(prefix: str, variables: dict[str, object], what: str) -> None:
    """Assign the checkpoint's values to `variables`; a checkpoint of another model (missing
    or extra names, other shapes) is a UserError naming `what` and changes nothing."""
    def refuse(reason: str):
        raise UserError(f"{prefix}: checkpoint does not fit model {what} ({reason})")

    try:
        reader = tf.train.load_checkpoint(prefix)
    except (tf.errors.OpError, ValueError) as err:
        refuse(str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__)
    shapes = reader.get_variable_to_shape_map()
    missing = sorted(set(variables) - set(shapes))
    extra = sorted(set(shapes) - set(variables))
    if missing or extra:
        refuse(f"{'missing ' + missing[0] if missing else 'unexpected ' + extra[0]}; "
               f"{len(missing)} missing, {len(extra)} unexpected")
    for name, v in variables.items():
        if tuple(shapes[name]) != tuple(v.shape):
            refuse(f"{name}: shape {tuple(shapes[name])} in the checkpoint, {tuple(v.shape)} in the model")
    for name, v in variables.items():
        value = reader.get_tensor(name)
        dtype = v.dtype if isinstance(v.dtype, str) else v.dtype.name
        v.assign(np.asarray(value).astype(dtype))


def _number(path: str) -> int:
    match = re.search(r"-(\d+)$", path)
    return int(match.group(1)) if match else -1


class CheckpointManager:
    """`ckpt-N` checkpoints of `variables` in `directory`, the newest `max_to_keep` kept."""

    def __init__(self, variables: dict[str, object], directory: str, max_to_keep: int = 3,
                 prefix: str = "ckpt"):
        self.variables = variables
        self.directory = directory
        self.max_to_keep = max_to_keep
        self.prefix = prefix
        self.checkpoints = self._listed()

    def _listed(self) -> list[str]:
        state = tf.train.get_checkpoint_state(self.directory)
        if state is None:
            return []
        paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
        return [p for p in paths if tf.io.gfile.exists(p + ".index")]

    @property
    def latest_checkpoint(self) -> str | None:
        return self.checkpoints[-1] if self.checkpoints else None

    def save(self, checkpoint_number: int) -> str:
        tf.io.gfile.makedirs(self.directory)
        path = os.path.join(self.directory, f"{self.prefix}-{int(checkpoint_number)}")
        write(path, self.variables)
        kept = [p for p in self.checkpoints if p != path] + [path]
        kept.sort(key=_number)
        stale, kept = kept[:-self.max_to_keep], kept[-self.max_to_keep:]
        self.checkpoints = kept
        self._write_state(path)
        for old in stale:
            for suffix in _SUFFIXES:
                if tf.io.gfile.exists(old + suffix):
                    tf.io.gfile.remove(old + suffix)
        return path

    def _write_state(self, latest: str) -> None:
        def rel(p):
            return os.path.relpath(p, self.directory) if not p.startswith("gs://") else p

        lines = [f'model_checkpoint_path: "{rel(latest)}"']
        lines += [f'all_model_checkpoint_paths: "{rel(p)}"' for p in self.checkpoints]
        final = os.path.join(self.directory, STATE_FILE)
        tmp = final + ".tmp"
        with tf.io.gfile.GFile(tmp, "w") as fh:
            fh.write("\n".join(lines) + "\n")
        tf.io.gfile.rename(tmp, final, overwrite=True)

    def restore(self, path: str, what: str) -> str:
        read(path, self.variables, what)
        return path
