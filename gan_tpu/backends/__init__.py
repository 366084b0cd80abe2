"""Backend-specific training: the only place that takes gradients or applies optimizers."""
import keras


def train_step(model, data):
    """One step of every player of `model`, on the active Keras backend."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        from gan_tpu.backends.tensorflow import train_step as step
    else:
        raise NotImplementedError(f"no adversarial trainer for the {backend!r} backend yet")
    return step(model, data)
