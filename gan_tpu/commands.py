"""Core subcommands: models, sample-data, train, demo."""
from __future__ import annotations

import argparse
import logging
import os
import sys


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="gan-tpu: %(message)s", stream=sys.stderr)
    logging.getLogger("absl").setLevel(logging.ERROR)


def cmd_models(args) -> int:
    from gan_tpu import models

    for name in models.names():
        options = ", ".join(f"{k}={v!r}" for k, v in models.defaults(name).items())
        print(f"{name}: {options}")
    return 0


def cmd_sample_data(args) -> int:
    from gan_tpu.sample_data import write_sample_data

    written = write_sample_data(args.out, monet=args.monet, photo=args.photo, size=args.size, seed=args.seed)
    print(f"wrote {written['monet']} Monet paintings and {written['photo']} photos to {args.out} "
          f"(monet_tfrec/, photo_tfrec/, monet_jpg/, photo_jpg/)")
    return 0


def cmd_train(args) -> int:
    from gan_tpu import config, train

    _setup_logging()
    overrides = list(args.set or [])
    if args.out:
        overrides.append(f'output.dir="{args.out}"')
    cfg = config.load(args.pipeline, overrides)
    run = train.train(cfg, resume=args.resume)
    print(f"run: {run.out_dir} (checkpoints/, samples/, history.csv, generator.keras)")
    return 0


def cmd_demo(args) -> int:
    from gan_tpu import config, train
    from gan_tpu.sample_data import write_sample_data

    _setup_logging()
    data_dir = os.path.join(args.out, "data")
    print(f"[1/3] making sample data in {data_dir}")
    write_sample_data(data_dir, monet=30, photo=60, seed=0)
    overrides = [f'data.monet="{data_dir}"', f'data.photo="{data_dir}"',
                 f'output.dir="{os.path.join(args.out, "run")}"', *(args.set or [])]
    cfg = config.load("demo", overrides)
    print(f"[2/3] training {cfg['model']['name']} ({cfg['data']['image_size']} px) "
          f"for {cfg['train']['epochs']} epochs")
    run = train.train(cfg, resume=args.resume)
    zip_path = os.path.join(args.out, "images.zip")
    print(f"[3/3] translating every sample photo into {zip_path}")
    written = translate_photos(run, data_dir, zip_path, count=0, allow_any_count=True)
    samples = sorted(os.listdir(os.path.join(run.out_dir, "samples")))
    print("done:")
    print(f"  images:  {zip_path} ({written} JPEGs, 256x256)")
    print(f"  samples: {os.path.join(run.out_dir, 'samples', samples[-1])} (photos left, Monet right)")
    print(f"  run:     {run.out_dir} (config.toml, checkpoints/, history.csv, generator.keras)")
    return 0


def translate_photos(run, photos: str, out: str, *, count: int, allow_any_count: bool) -> int:
    """Translate every photo under `photos` with the run's generator into a submission zip."""
    from gan_tpu import data, translator
    from gan_tpu.submission.generate import write_submission

    images = data.source_images(data.resolve(photos, "photo"))
    sub = run.cfg["submission"]
    result = write_submission(translator.at_size(run.model.translator), images, out,
                              count=count or None, batch_size=sub["batch_size"],
                              quality=sub["quality"], strategy=run.strategy,
                              allow_any_count=allow_any_count or sub["allow_any_count"])
    return result.count


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override one pipeline key (repeatable), e.g. --set train.epochs=5")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run directory's latest checkpoint")


def register(subparsers) -> None:
    p = subparsers.add_parser("models", help="list the registered models and their defaults")
    p.set_defaults(func=cmd_models)

    p = subparsers.add_parser("sample-data", help="write a small data set in Kaggle's layout")
    p.add_argument("--out", required=True, help="folder to write (created)")
    p.add_argument("--monet", type=int, default=30, help="Monet paintings (default 30)")
    p.add_argument("--photo", type=int, default=60, help="photos (default 60)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_sample_data)

    p = subparsers.add_parser("train", help="train a pipeline (a pipelines/*.toml file or its name)")
    p.add_argument("pipeline", help="PIPELINE.toml, or the name of a shipped pipeline (e.g. demo)")
    p.add_argument("--out", help="run directory (default: [output] dir, else runs/<name>)")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("demo", help="sample data -> tiny CycleGAN -> zip of translated photos")
    p.add_argument("--out", default="demo_out", help="folder for everything the demo makes (default demo_out)")
    _add_train_args(p)
    p.set_defaults(func=cmd_demo)
