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
- `step`: the model's count of train steps done; `epoch`: completed epochs.

Files are written under a temporary name and renamed; the `checkpoint` state file (TF's
text format, so `tf.train.latest_checkpoint` finds the newest) is rewritten atomically last,
and only the newest `max_to_keep` checkpoints are kept. Restoring the latest skips, with a
warning, a checkpoint whose files are missing, truncated or corrupt (a half-synced copy).
"""
from __future__ import annotations

import logging
import os
import re

import numpy as np
import tensorflow as tf

from gan_tpu.errors import UserError

log = logging.getLogger("gan_tpu")

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
    named["step"] = model.step
    seen.add(id(model.step))
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


def stand_ins(model) -> dict[str, str]:
    """Names a checkpoint of an earlier version lacks -> the name read in their place: such a
    checkpoint's step count is its first player's optimizer's (which updated once a step).
    None: left as it is (the LR decay's shape, which earlier versions of most models lacked:
    the run sets it)."""
    names = {"step": f"optimizers/{model.players[0].name}/0"}
    decay = {id(v) for v in model.schedule_variables}
    for player in model.players:
        for i, v in enumerate(player.optimizer.variables):
            if id(v) in decay:
                names[f"optimizers/{player.name}/{i}"] = None
    return names


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


class UnreadableCheckpoint(UserError):
    """A checkpoint whose files are missing, truncated or corrupt."""


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def read(prefix: str, variables: dict[str, object], what: str, stand_ins: dict[str, str] | None = None) -> None:
    """Assign the checkpoint's values to `variables`; changes nothing on failure.

    Missing, truncated or corrupt files are an :class:`UnreadableCheckpoint`; a checkpoint
    of another model (missing or extra names, other shapes) a UserError naming `what`. A
    name the checkpoint lacks is read from its `stand_ins` name when the checkpoint has that.
    """
    def refuse(reason: str):
        raise UserError(f"{prefix}: checkpoint does not fit model {what} ({reason})")

    try:
        reader = tf.train.load_checkpoint(prefix)
        shapes = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError, IndexError) as err:
        raise UnreadableCheckpoint(f"{prefix}: unreadable checkpoint ({_first_line(err)})") from None
    source = {name: name for name in variables}
    for name, other in (stand_ins or {}).items():
        if name in variables and name not in shapes and (other is None or other in shapes):
            source[name] = other
    variables = {name: v for name, v in variables.items() if source[name] is not None}
    missing = sorted(n for n in variables if source[n] not in shapes)
    extra = sorted(set(shapes) - set(source.values()))
    if missing or extra:
        refuse(f"{'missing ' + missing[0] if missing else 'unexpected ' + extra[0]}; "
               f"{len(missing)} missing, {len(extra)} unexpected")
    for name, v in variables.items():
        if tuple(shapes[source[name]]) != tuple(v.shape):
            refuse(f"{name}: shape {tuple(shapes[source[name]])} in the checkpoint, {tuple(v.shape)} in the model")
    try:  # every value first: a truncated data file fails here, before any assignment
        values = {name: reader.get_tensor(source[name]) for name in variables}
    except (tf.errors.OpError, ValueError, IndexError) as err:  # IndexError: "Read less bytes than requested"
        raise UnreadableCheckpoint(f"{prefix}: unreadable checkpoint ({_first_line(err)})") from None
    for name, v in variables.items():
        dtype = v.dtype if isinstance(v.dtype, str) else v.dtype.name
        v.assign(np.asarray(values[name]).astype(dtype))


def _number(path: str) -> int:
    match = re.search(r"-(\d+)$", path)
    return int(match.group(1)) if match else -1


class CheckpointManager:
    """`ckpt-N` checkpoints of `variables` in `directory`, the newest `max_to_keep` kept."""

    def __init__(self, variables: dict[str, object], directory: str, max_to_keep: int = 3,
                 prefix: str = "ckpt", stand_ins: dict[str, str] | None = None):
        self.variables = variables
        self.stand_ins = stand_ins or {}
        self.directory = directory
        self.max_to_keep = max_to_keep
        self.prefix = prefix
        self.checkpoints = self._listed()

    def _listed(self) -> list[str]:
        """The state file's checkpoints and any other `ckpt-N` files in the folder (a lost or
        stale state file), oldest first, whether or not their files are complete."""
        found: dict[int, str] = {}
        if not tf.io.gfile.isdir(self.directory):
            return []
        state = tf.train.get_checkpoint_state(self.directory)
        if state is not None:
            for p in state.all_model_checkpoint_paths or [state.model_checkpoint_path]:
                found[_number(p)] = p
        own = re.compile(rf"^{re.escape(self.prefix)}-\d+(?=\.index$|\.data-\d+-of-\d+$)")
        for name in tf.io.gfile.listdir(self.directory):
            match = own.match(name)
            if match:
                path = os.path.join(self.directory, match.group(0))
                found[_number(path)] = path
        return [found[n] for n in sorted(found)]

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

    def restore(self, path: str | None, what: str) -> str | None:
        """Restore `path`, or with None the newest readable checkpoint; returns what was
        restored (None: the folder holds no checkpoint).

        Going back from the newest, an unreadable checkpoint (a half-synced copy, a disk
        error) is skipped with one warning naming it; none readable is a UserError naming
        the folder. A `path` given explicitly is read or refused, never replaced.
        """
        if path is not None:
            read(path, self.variables, what, self.stand_ins)
            return path
        for candidate in reversed(self.checkpoints):
            try:
                read(candidate, self.variables, what, self.stand_ins)
            except UnreadableCheckpoint as err:
                log.warning("skipping %s; trying an older checkpoint", err)
                continue
            self.checkpoints = [p for p in self.checkpoints if _number(p) <= _number(candidate)]
            return candidate
        if self.checkpoints:
            raise UserError(f"{self.directory}: no readable checkpoint (all {len(self.checkpoints)} "
                            f"have missing, truncated or corrupt files)")
        return None
