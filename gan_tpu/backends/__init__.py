"""Backend-specific training: the only place that takes gradients or applies optimizers.

Keras is imported only when a trainer is asked for: importing this package (as
`importlib.util.find_spec("gan_tpu.backends.jax")` does) must not fix Keras's backend.
"""
import importlib


def _backend():
    import keras

    name = keras.backend.backend()
    try:
        return importlib.import_module(f"gan_tpu.backends.{name}")
    except ModuleNotFoundError:
        raise NotImplementedError(f"no adversarial trainer for the {name!r} Keras backend") from None


def train_step(model, *args):
    """One step of every player of `model`, on the active Keras backend.

    TensorFlow: `train_step(model, data) -> logs`; JAX (stateless, as Keras' JAX trainer
    calls it): `train_step(model, state, data) -> (logs, state)`.
    """
    return _backend().train_step(model, *args)


def input_gradient(fn, x):
    """The gradient of sum(fn(x)) with respect to the input x (WGAN-GP, R1 penalties)."""
    return _backend().input_gradient(fn, x)
