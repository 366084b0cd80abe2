"""Models by name, each with its defaults in one place (as in Zhu et al.'s CycleGAN repo)."""
from __future__ import annotations

from gan_tpu.errors import UserError

_MODELS: dict[str, tuple[type, dict]] = {}
# Options of every model (a model's registration may change their defaults), handled here:
# `ema` > 0 averages the exported generator's weights with that decay after `ema_start` steps;
# `decay_start` and `total_steps` shape every model's learning rates (see AdversarialModel.lr_schedule):
# constant until that fraction of the run, then linearly to 0 (1: constant throughout).
SHARED = dict(ema=0.0, ema_start=0, decay_start=1.0, total_steps=0)
_AVERAGING = ("ema", "ema_start")


def register(name: str, **defaults):
    """Class decorator: register a model under `name` with its default options."""
    def decorate(cls):
        _MODELS[name] = (cls, {**defaults, **{k: v for k, v in SHARED.items() if k not in defaults}})  # own first
        cls.registered_name = name
        return cls
    return decorate


def names() -> list[str]:
    return sorted(_MODELS)


def defaults(name: str) -> dict:
    """A copy of the model's default options."""
    _known(name)
    return dict(_MODELS[name][1])


def _known(name: str) -> None:
    if name not in _MODELS:
        raise UserError(f"model.name: unknown model {name!r} (known: {', '.join(names())})")


def build(name: str, *, image_size: int, **options):
    """A model from its defaults updated with `options`; unknown options are an error."""
    _known(name)
    cls, base = _MODELS[name]
    unknown = sorted(set(options) - set(base))
    if unknown:
        raise UserError(f"model.{unknown[0]}: not an option of model {name!r} (options: {', '.join(sorted(base))})")
    options = {**base, **options}
    shared = {k: options.pop(k) for k in _AVERAGING}
    model = cls(image_size, **options)
    if shared["ema"]:
        model.use_ema(float(shared["ema"]), int(shared["ema_start"]))
    return model
