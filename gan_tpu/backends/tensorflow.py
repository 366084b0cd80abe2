"""TensorFlow trainer for AdversarialModel: a GradientTape per player, in declared order."""
from __future__ import annotations

import tensorflow as tf


def train_step(model, data):
    # Gradients are summed over replicas, so each replica's mean loss is divided by the
    # replica count: the update is then the same for any number of replicas.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    context, parts = {}, {}
    for player in model.players:
        for _ in range(player.steps):
            with tf.GradientTape() as tape:
                loss, logged = player.loss(data, context, True)
                scaled = player.optimizer.scale_loss(loss / replicas)
            grads = tape.gradient(scaled, player.variables)
            player.optimizer.apply_gradients(zip(grads, player.variables))
        parts.update(logged)
    model.after_step()
    return model.track(parts)


def input_gradient(fn, x):
    """d(sum fn(x)) / dx, differentiable (for gradient penalties inside a player's loss)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(tf.cast(fn(x), tf.float32))
    return tape.gradient(y, x)
