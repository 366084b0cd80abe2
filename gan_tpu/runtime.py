"""Distribution strategy and precision: TPU, then GPUs, then the default strategy."""
from __future__ import annotations

import logging

import keras
import tensorflow as tf

from gan_tpu import distributed
from gan_tpu.platform import tpu_kind

log = logging.getLogger("gan_tpu")

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def _tpu_resolver():
    """A connected TPU cluster resolver, or None when no TPU is reachable."""
    for kwargs in ({"tpu": "local"}, {}):  # TPU VM first, then an older TPU node
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(**kwargs)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return resolver
        except (ValueError, RuntimeError, tf.errors.NotFoundError, tf.errors.InvalidArgumentError):
            continue
    return None


class JaxDevices:
    """On Keras' JAX backend, what gan_tpu uses of a `tf.distribute` strategy: the replica
    count, a `scope()` and the platform. Data parallelism over more than one device is a
    `keras.distribution.DataParallel`, set globally (Keras' JAX `fit` shards each global
    batch with it, and variables created afterwards are replicated)."""

    def __init__(self, devices: list[str]):
        self.devices = list(devices)
        self.num_replicas_in_sync = len(self.devices)
        self.distribution = None
        if len(self.devices) > 1:
            # Past one process, gan_tpu.data feeds each process its rows: Keras must not shard again.
            multi = {"auto_shard_dataset": False} if distributed.count() > 1 else {}
            self.distribution = keras.distribution.DataParallel(devices=self.devices, **multi)
            keras.distribution.set_distribution(self.distribution)

    @property
    def platform(self) -> str:
        return self.devices[0].split(":")[0].lower()

    def scope(self):
        import contextlib

        return contextlib.nullcontext()


def _jax_devices(prefer: str) -> JaxDevices:
    logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)  # "no TPU" at INFO
    for kind in {"auto": (None,), "tpu": ("tpu", "gpu", None), "gpu": ("gpu", None), "cpu": ("cpu",)}[prefer]:
        try:
            devices = keras.distribution.list_devices(kind)
        except RuntimeError:  # no such platform
            continue
        if devices:
            return JaxDevices(devices)
    return JaxDevices(keras.distribution.list_devices())


def get_strategy(prefer: str = "auto", *, keras_models: bool = True):
    """The best strategy for this machine: TPUStrategy, MirroredStrategy over GPUs, or default.

    `prefer` is "auto", "tpu", "gpu" or "cpu"; asking for an accelerator that is absent falls
    back to the next one and logs it. On Keras' JAX backend: a :class:`JaxDevices` over every
    device of the preferred platform (TPU cores, GPUs, or host devices), unless
    `keras_models=False` (TensorFlow graphs only, e.g. scoring's feature extractors).
    """
    if keras_models and keras.backend.backend() == "jax":
        devices = _jax_devices(prefer)
        log.info("backend: jax, devices: %s x %d", devices.platform, devices.num_replicas_in_sync)
        return devices
    strategy = None
    if prefer in ("auto", "tpu") and tpu_kind() is not None:
        resolver = _tpu_resolver()
        if resolver is not None:
            strategy = tf.distribute.TPUStrategy(resolver)
    if strategy is None and prefer in ("auto", "tpu", "gpu"):
        gpus = tf.config.list_logical_devices("GPU")
        if gpus:
            strategy = tf.distribute.MirroredStrategy([d.name for d in gpus])
    if strategy is None:
        strategy = tf.distribute.get_strategy()
    log.info("strategy: %s, replicas: %d", platform(strategy), strategy.num_replicas_in_sync)
    return strategy


def platform(strategy: tf.distribute.Strategy) -> str:
    """"tpu", "gpu" or "cpu": what the strategy's replicas run on."""
    if isinstance(strategy, JaxDevices):
        return strategy.platform
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        devices = strategy.extended.worker_devices
    else:  # the default strategy runs where TensorFlow places ops: a GPU if there is one
        devices = [d.name for d in tf.config.list_logical_devices("GPU")]
    return "gpu" if any("GPU" in d.upper() for d in devices) else "cpu"


def splits_over_devices(strategy) -> bool:
    """Whether `strategy` is a MirroredStrategy over more than one device (two GPUs)."""
    return isinstance(strategy, tf.distribute.MirroredStrategy) and strategy.num_replicas_in_sync > 1


def default_precision(strategy: tf.distribute.Strategy) -> str:
    """bfloat16 mixed precision on TPU, float32 elsewhere (mixed_float16 is opt-in on GPU)."""
    return "mixed_bfloat16" if platform(strategy) == "tpu" else "float32"


def set_precision(policy: str) -> None:
    """Set the global Keras dtype policy; losses are computed in float32 regardless."""
    if policy not in PRECISIONS:
        from gan_tpu.errors import UserError

        raise UserError(f"runtime.precision: {policy!r} is not one of {', '.join(PRECISIONS)}")
    keras.mixed_precision.set_global_policy(policy)


def global_batch_size(per_replica: int, strategy: tf.distribute.Strategy) -> int:
    """The batch the input pipeline must produce: per-replica batch × replicas."""
    return int(per_replica) * strategy.num_replicas_in_sync
