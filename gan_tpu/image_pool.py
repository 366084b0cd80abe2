"""The image pool of Shrivastava et al. 2017 / Zhu et al.: D also sees fakes from earlier steps.

`ImagePool(size)(fakes)` returns a batch as large as `fakes`: while the pool fills, each
fake is stored and returned; once full, each fake is, with probability 1/2, swapped for a
random stored one (which is returned, the new one taking its place), else returned as is.

The pool lives in variables, so it is checkpointed with the model and works inside a
compiled `tf.function` (XLA included); one image at a time, in a Python loop over the
static per-replica batch, exactly as the reference implementation. Under a distribution
strategy every replica keeps its own pool (`synchronization="on_read"`); a checkpoint
stores the first replica's pool and a restore gives it to every replica.

It is a `keras.Model` (with no trainable weights) so that the adversarial base's
`networks`, and with them the checkpoints, include it.
"""
from __future__ import annotations

import keras
from keras import ops


class ImagePool(keras.Model):
    def __init__(self, size: int, image_shape: tuple[int, int, int], seed: int | None = None, **kwargs):
        kwargs.setdefault("dtype", "float32")  # fakes are kept in float32 under mixed precision too
        super().__init__(**kwargs)
        self.size = int(size)
        self.images = keras.Variable(
            ops.zeros((max(self.size, 1),) + tuple(image_shape), "float32"), trainable=False,
            autocast=False, synchronization="on_read", aggregation="only_first_replica", name="images")
        self.count = keras.Variable(0, dtype="int32", trainable=False, synchronization="on_read",
                                    aggregation="only_first_replica", name="count")
        self.seed_generator = keras.random.SeedGenerator(seed, name="pool_seed")
        self.seed_state = self.seed_generator.state  # an attribute, so checkpoints carry it

    def call(self, fakes):
        if self.size <= 0:
            return fakes
        fakes = ops.cast(fakes, "float32")
        images, count = self.images.value, self.count.value
        out = []
        for i in range(fakes.shape[0]):
            fake = fakes[i:i + 1]
            swap = keras.random.uniform((), seed=self.seed_generator) < 0.5
            slot = ops.cast(keras.random.uniform((), seed=self.seed_generator) * self.size, "int32")
            slot = ops.minimum(slot, self.size - 1)
            filling = count < self.size
            slot = ops.where(filling, count, slot)
            write = ops.logical_or(filling, swap)
            old = ops.take(images, slot[None], axis=0)
            out.append(ops.where(ops.logical_and(swap, ops.logical_not(filling)), old, fake))
            new = ops.where(write, fake, old)
            images = ops.scatter_update(images, ops.reshape(slot, (1, 1)), new)
            count = ops.minimum(count + 1, self.size)
        self.images.assign(images)
        self.count.assign(count)
        return ops.concatenate(out, axis=0)

    def get_config(self):
        return {"size": self.size, "image_shape": tuple(self.images.shape[1:])}
