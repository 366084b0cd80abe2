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
            if replicas > 1 and hasattr(player.optimizer, "dynamic_scale"):
                grads = _skip_together(grads)
            player.optimizer.apply_gradients(zip(grads, player.variables))
        parts.update(logged)
    model.after_step()
    return model.track(parts)


def _skip_together(grads):
    """Under MirroredStrategy, Keras's LossScaleOptimizer decides to skip a step from the first
    replica's gradients alone, so an inf in another replica's share went into the weights (seen:
    NaN weights). Every replica's gradients are made non-finite when any replica's are."""
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads if g is not None])
    replicas_bad = tf.distribute.get_replica_context().all_reduce("SUM", tf.cast(~finite, tf.float32))
    poison = tf.where(replicas_bad > 0, float("nan"), 1.0)
    return [g if g is None else g * tf.cast(poison, g.dtype) for g in grads]


def input_gradient(fn, x):
    """d(sum fn(x)) / dx, differentiable (for gradient penalties inside a player's loss)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(tf.cast(fn(x), tf.float32))
    return tape.gradient(y, x)
