"""Training callbacks: sample grids people can look at, and checkpoints."""
from __future__ import annotations

import logging
import os

import keras
import numpy as np
import tensorflow as tf

from gan_tpu.data import to_uint8

log = logging.getLogger("gan_tpu")


def atomic_write(path: str, payload: bytes) -> None:
    """Write bytes under a temporary name, then rename: readers never see half a file."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as fh:
        fh.write(payload)
    os.replace(tmp, path)


def image_grid(rows: list[np.ndarray]) -> np.ndarray:
    """uint8 image batches [N, H, W, 3] as columns side by side, one row per image index."""
    return np.concatenate([np.concatenate(list(col), axis=0) for col in rows], axis=1)


class SampleGrid(keras.callbacks.Callback):
    """After each epoch, `samples/epoch_NNN.png`: the same photos (left) and their translations
    (`model.sample_columns`: one column, or one per style for MUNIT).

    A noise model's grid has the same shape, filled with 2 x N samples from the same fixed
    latents every epoch (those of its submission's first batch). Tiles are enlarged
    (nearest neighbour) to at least 128 px so small runs can be seen.
    """

    def __init__(self, photos: np.ndarray, out_dir: str, translator=None):
        super().__init__()
        self.photos = tf.constant(photos, tf.float32)  # [-1, 1]
        self.out_dir = out_dir
        self._translator = translator
        os.makedirs(out_dir, exist_ok=True)

    def write(self, name: str) -> str:
        if self._translator is None and getattr(self.model, "kind", "translation") == "noise":
            n = int(self.photos.shape[0])
            fakes = to_uint8(self.model.sample(0, 2 * n)).numpy()
            grid = image_grid([fakes[:n], fakes[n:]])
        else:
            if self._translator is not None:
                columns = [self._translator(self.photos, training=False)]
            else:
                columns = self.model.sample_columns(self.photos)
            grid = image_grid([to_uint8(c).numpy() for c in [self.photos, *columns]])
        scale = max(1, 128 // self.photos.shape[1])  # small training sizes: tiles >= 128 px
        grid = np.kron(grid, np.ones((scale, scale, 1), np.uint8))
        path = os.path.join(self.out_dir, name)
        atomic_write(path, tf.io.encode_png(grid).numpy())
        return path

    def on_epoch_end(self, epoch, logs=None):
        self.write(f"epoch_{epoch + 1:03d}.png")


class Checkpointer(keras.callbacks.Callback):
    """Saves through a `gan_tpu.checkpoints.CheckpointManager` every N steps, at each epoch end, at the end.

    `epoch_var` (part of the checkpoint) counts completed epochs, so a resumed run knows
    where it is; the optimizers' own `iterations` count steps.
    """

    def __init__(self, manager, epoch_var: tf.Variable, step_var,
                 every_steps: int = 0, healthy=lambda: True):
        super().__init__()
        self.healthy = healthy  # never checkpoint a diverged model over a good one
        self.manager = manager
        self.epoch_var = epoch_var
        self.step_var = step_var
        self.every_steps = every_steps
        self._last_saved = None

    def _step(self) -> int:
        if getattr(self, "_model", None) is not None:
            self.model  # noqa: B018  on JAX, this pulls fit's training state into the variables
        return int(self.step_var.numpy())

    def save(self) -> str | None:
        step = self._step()
        if step == self._last_saved or not self.healthy():
            return None
        self._last_saved = step
        return self.manager.save(checkpoint_number=step)

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and self._step() % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        if self.healthy():
            self.epoch_var.assign(epoch + 1)
        self.save()

    def on_train_end(self, logs=None):
        self.save()
