"""The model table and option lists of the README and docs/, generated from the registry.

`gan-tpu models --markdown` prints them; `python -m gan_tpu.models.catalog --write FILE...`
(`make docs`) rewrites every block between `<!-- gan-tpu:NAME -->` and `<!-- /gan-tpu:NAME -->`
in those files. Defaults and option names are read live from the registry and the shipped
pipelines; only the one-line descriptions and the memory estimates are written here.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

# name -> (one line, memory per replica at 256 px, batch 1, float32: bench/bench_train_step.py
# --memory-only, parameters x 16 bytes + the activations one step keeps; an estimate).
ABOUT = {
    "cyclegan": ("CycleGAN (Zhu et al. 2017), U-Net or ResNet generators, 70×70 PatchGAN; the recommended recipe",
                 "≈ 2.3 GB"),
    "cyclegan_resnet": ("the seed report's CycleGAN: ResNet-9 with skips, layer norm, LSGAN, image pool 50",
                        "≈ 3.9 GB"),
    "cyclegan_wgangp": ("CycleWGAN-GP: WGAN-GP critics with layer norm, n_critic updates per step", "≈ 3.5 GB"),
    "sn_cyclegan": ("SN-CycleGAN: LSGAN with spectral norm on every discriminator conv", "≈ 3.5 GB"),
    "ugatit": ("U-GAT-IT full (Kim et al. 2020): CAM attention, AdaLIN decoder, global + local D",
               "≈ 14.5 GB: does not fit 16 GB at 256 px"),
    "ugatit_light": ("U-GAT-IT light: the γ/β MLP reads the bottleneck's global average", "≈ 5.9 GB"),
    "bayesian_cyclegan": ("Bayesian CycleGAN (You et al. 2020): latent codes, MC samples, weight priors",
                          "≈ 6.7 GB"),
    "cut": ("CUT (Park et al. 2020): one generator, PatchNCE, anti-aliased up/downsampling", "≈ 3.2 GB"),
    "fastcut": ("FastCUT: CUT without identity NCE, with flip equivariance", "≈ 1.8 GB"),
    "stargan": ("StarGAN (Choi et al. 2018): one generator for both directions, WGAN-GP critic + domain head",
                "≈ 2.2 GB"),
    "unit": ("UNIT (Liu et al. 2017): coupled VAE-GANs with a shared latent space", "≈ 3.7 GB"),
    "munit": ("MUNIT (Huang et al. 2018): content + style codes, AdaIN decoder, one style per submission",
              "≈ 3.5 GB"),
    "drit": ("DRIT++ (Lee et al. 2020): content/attribute codes, cross-cycle, mode seeking", "≈ 5.2 GB"),
    "dcgan": ("DCGAN (Radford et al. 2016): noise → painting, transposed convs, BatchNorm, BCE", "not estimated"),
    "wgan_gp": ("WGAN-GP (Gulrajani et al. 2017): noise → painting, layer-normed critic, gradient penalty",
                "not estimated"),
    "sngan": ("SN-GAN (Miyato et al. 2018): ResNet G and D, spectral norm, hinge loss", "not estimated"),
    "biggan": ("BigGAN (Brock et al. 2019) with DiffAugment: self-attention, hierarchical latents, EMA G",
               "≈ 7.7 GB at batch 16 (8 a D step), bfloat16"),
    "artgan": ("ArtGAN (Tan et al. 2017): noise + category → painting, K+1-way classifier D", "not estimated"),
}
# Shown in the table's "key defaults" column when a model has them (all: the option lists).
KEY_OPTIONS = ("generator", "ngf", "dim", "adversarial", "n_critic", "n_dis", "lr", "decay_start", "ema")
BLOCK = re.compile(r"(<!-- gan-tpu:([\w-]+) -->\n)(.*?)(<!-- /gan-tpu:\2 -->)", re.S)


def _registry():
    from gan_tpu import models  # imports every model module (and Keras): they register themselves

    return models


def _value(v) -> str:
    """As it is written in a pipeline's TOML."""
    text = f'"{v}"' if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else repr(v)
    return f"`{text}`"


def shipped_pipelines() -> dict[str, list[tuple[str, dict]]]:
    """model name -> [(pipeline file name, its [model] options besides name)], sorted by file."""
    from gan_tpu.config import PIPELINES_DIR, tomllib

    found: dict[str, list[tuple[str, dict]]] = {}
    for path in sorted(PIPELINES_DIR.glob("*.toml")):
        model = dict(tomllib.loads(path.read_text()).get("model", {}))
        found.setdefault(model.pop("name", "cyclegan"), []).append((path.name, model))
    return found


def model_table() -> str:
    models = _registry()
    pipelines = shipped_pipelines()
    rows = ["| model | what | key defaults | memory per replica (256 px, batch 1) | shipped pipelines |",
            "|---|---|---|---|---|"]
    for name in models.names():
        about, memory = ABOUT[name]
        defaults = models.defaults(name)
        keys = ", ".join(f"{k} {_value(defaults[k])}" for k in KEY_OPTIONS if k in defaults)
        files = ", ".join(f"`{f}`" for f, _ in pipelines.get(name, [])) or "none"
        rows.append(f"| `{name}` | {about} | {keys} | {memory} | {files} |")
    return "\n".join(rows) + "\n"


def model_options() -> str:
    """Per model: every `[model]` option with its registered default, and what each shipped
    pipeline for it sets differently."""
    models = _registry()
    pipelines = shipped_pipelines()
    out = []
    for name in models.names():
        defaults = models.defaults(name)
        out += [f"#### `{name}`", "", ", ".join(f"`{k}` = {_value(v)}" for k, v in defaults.items()), ""]
        for file, options in pipelines.get(name, []):
            changed = {k: v for k, v in options.items() if defaults.get(k, object()) != v}
            sets = ", ".join(f"`{k}` = {_value(v)}" for k, v in changed.items()) or "the registered defaults"
            out.append(f"- `pipelines/{file}`: {sets}")
        out.append("")
    return "\n".join(out)


RENDER = {"model-table": model_table, "model-options": model_options}


def render(block: str) -> str:
    return RENDER[block]()


def update(text: str) -> str:
    """`text` with every marked block replaced by its current rendering."""
    cache: dict[str, str] = {}

    def fill(match):
        name = match.group(2)
        if name not in RENDER:
            raise KeyError(f"unknown generated block {name!r} (known: {', '.join(RENDER)})")
        cache.setdefault(name, render(name))
        return f"{match.group(1)}\n{cache[name]}\n{match.group(4)}"
    return BLOCK.sub(fill, text)


def stale(paths) -> list[str]:
    """The files whose generated blocks differ from what the registry gives now."""
    return [str(p) for p in paths if update(Path(p).read_text()) != Path(p).read_text()]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--write"]:
        for path in argv[1:]:
            text = Path(path).read_text()
            new = update(text)
            if new != text:
                Path(path).write_text(new)
                print(f"updated {path}")
        return 0
    print(model_table() + "\n" + model_options())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
