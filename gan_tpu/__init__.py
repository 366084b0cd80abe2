"""gan_tpu: a TPU-first TensorFlow/Keras pipeline for Kaggle's Monet competition."""

__version__ = "0.1.0"
