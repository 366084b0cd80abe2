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

    if args.markdown:
        from gan_tpu.models import catalog

        print(catalog.model_table() + "\n" + catalog.model_options(), end="")
        return 0
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


def _pipeline_config(args) -> dict:
    """The pipeline named on the command line, with --set overrides and --out applied."""
    from gan_tpu import config

    overrides = list(args.set or [])
    if args.out:
        overrides.append(f'output.dir="{args.out}"')
    return config.load(args.pipeline, overrides)


def _start(args) -> dict:
    """The pipeline's config, after joining a multi-process job if one is asked for."""
    from gan_tpu import distributed

    cfg = _pipeline_config(args)
    distributed.apply_flags(args.coordinator, args.num_processes, args.process_id)
    distributed.start(cfg)  # one process: does nothing
    return cfg


def cmd_train(args) -> int:
    _setup_logging()
    cfg = _start(args)
    from gan_tpu import train  # after the config: a bad --set needs no TensorFlow

    run = train.train(cfg, resume=args.resume)
    print(f"run: {run.out_dir} (checkpoints/, samples/, history.csv, generator.keras)")
    return 0


def cmd_demo(args) -> int:
    from gan_tpu import config
    from gan_tpu.progress import counted
    from gan_tpu.sample_data import write_sample_data
    from gan_tpu.workflow import train_and_submit

    _setup_logging()
    data_dir = os.path.join(args.out, "data")
    print(f"[1/3] making sample data in {data_dir}")
    write_sample_data(data_dir, monet=30, photo=60, seed=0)
    overrides = [f'data.monet="{data_dir}"', f'data.photo="{data_dir}"',
                 f'output.dir="{os.path.join(args.out, "run")}"', *(args.set or [])]
    cfg = config.load("demo", overrides)
    print(f"[2/3] training {cfg['model']['name']} ({cfg['data']['image_size']} px) "
          f"for {counted(cfg['train']['epochs'], 'epoch')}")
    zip_path = os.path.join(args.out, "images.zip")
    print(f"[3/3] then translating every sample photo into {zip_path}")
    run, result = train_and_submit(cfg, zip_path, resume=args.resume)
    scores = score_submission(result.path, data_dir, "tiny")
    samples = sorted(os.listdir(os.path.join(run.out_dir, "samples")))
    print("done:")
    print(f"  images:  {result.path} ({result.count} JPEGs, 256x256, validated)")
    if samples:
        print(f"  samples: {os.path.join(run.out_dir, 'samples', samples[-1])} (photos left, Monet right)")
    print(f"  run:     {run.out_dir} (config.toml, checkpoints/, history.csv, generator.keras)")
    print("  score (tiny extractor, not comparable with Kaggle's scores):")
    for line in scores:
        print(f"    {line}")
    return 0


def score_submission(zip_path: str, reference: str, extractor: str) -> list[str]:
    """Score a written submission against the Monet paintings; the printed table's lines."""
    from gan_tpu.metrics.score import format_scores, score_paths

    scores = score_paths(zip_path, reference, extractor, kid_subsets=0, log=lambda msg: None)
    return format_scores(scores, 0.1)


def cmd_run(args) -> int:
    _setup_logging()
    cfg = _start(args)
    from gan_tpu.kaggle.paths import in_notebook, working_dir

    notebook = in_notebook()  # the run folder defaults to scratch space there (config.default_run_dir)
    zip_path = args.zip or os.path.join(working_dir() if notebook else cfg["output"]["dir"], "images.zip")
    from gan_tpu.workflow import train_and_submit  # after the config: a bad --set needs no TensorFlow

    run, result = train_and_submit(cfg, zip_path, resume=args.resume)
    print(f"submission: {result.path} ({result.count} images, validated) in {_elapsed()}")
    from gan_tpu import distributed

    if notebook and not args.out and distributed.is_writer():
        from gan_tpu.kaggle.outputs import keep_outputs

        keep_outputs(run.out_dir, working_dir())
    if cfg["score"]["extractor"]:
        reference = cfg["score"]["reference"] or cfg["data"]["monet"]
        for line in score_submission(result.path, reference, cfg["score"]["extractor"]):
            print(f"  {line}")
    return 1 if run.diverged else 0


def _elapsed() -> str:
    from gan_tpu.budget import run_elapsed

    minutes, seconds = divmod(int(run_elapsed()), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d} since start"


def cmd_generate(args) -> int:
    _setup_logging()
    if args.run:  # (argparse requires --run or --checkpoint)  # before TensorFlow loads: a mistyped folder is a one-second error
        from gan_tpu.setting_errors import check_run_dir

        check_run_dir(args.run)
    from gan_tpu import runs
    from gan_tpu.models.base import NoiseModel
    from gan_tpu.submission.options import generate_kwargs

    if args.truncation is not None and args.truncation < 0:
        raise_user(f"--truncation {args.truncation}: must be 0 (off) or positive")
    run, generator = runs.load(args.run, args.checkpoint)
    if args.truncation is not None:
        if run is None or not isinstance(run.model, NoiseModel):
            raise_user("--truncation: only a noise model's run (dcgan, wgan_gp, sngan, artgan, biggan) samples latents")
        run.model.truncation = float(args.truncation)
    if args.style_seed is not None:
        if run is None or not run.model.has_fixed_style:
            raise_user("--style-seed: only a MUNIT or DRIT++ run (one style per run) takes a style seed")
        run.model.set_style(args.style_seed)
    if run is None:  # a bare .keras generator: no run config to read defaults from
        return _generate_from_keras(generator, args)
    print(f"generating from {runs.paints_from(run)}")
    result = runs.translate_photos(run, args.photos or run.cfg["data"]["photo"], args.out, **generate_kwargs(args))
    print(f"wrote {result.path}: {result.count} images, {result.bytes / 1e6:.1f} MB, "
          f"{result.images_per_second:.1f} images/s")
    return 0


def _generate_from_keras(generator, args) -> int:
    from gan_tpu import data, translator
    from gan_tpu.submission.generate import write_submission
    from gan_tpu.submission.options import generate_kwargs

    if len(generator.inputs) != 1 or len(generator.inputs[0].shape) != 4:
        raise_user(f"{args.checkpoint}: a noise model's generator (latents -> images); "
                   f"generate from its run with --run DIR")
    if not args.photos:
        raise_user("--photos PATH is needed with a .keras generator")
    source = data.resolve(args.photos, "photo")
    result = write_submission(translator.at_size(generator), data.source_images(source), args.out,
                              photo_count=data.count_images(source), **generate_kwargs(args))
    print(f"wrote {result.path}: {result.count} images, {result.images_per_second:.1f} images/s")
    return 0


def raise_user(message: str):
    from gan_tpu.errors import UserError

    raise UserError(message)  # imported here: `gan-tpu models` need not load the rest


def _add_train_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                        help="override one pipeline key (repeatable), e.g. --set train.epochs=5")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the run directory's latest checkpoint")


def register(subparsers) -> None:
    from gan_tpu.distributed import add_job_flags
    from gan_tpu.submission.options import add_generate_args

    p = subparsers.add_parser("models", help="list the registered models and their defaults",
                              description="List every registered model with its default options.")
    p.add_argument("--markdown", action="store_true",
                   help="print the README's model table and every model's option list as Markdown")
    p.set_defaults(func=cmd_models)

    p = subparsers.add_parser("sample-data", help="write a small data set in Kaggle's layout",
                              description="Write a small data set of procedural images in exactly the "
                                          "competition's layout (monet_tfrec/, photo_tfrec/, monet_jpg/, "
                                          "photo_jpg/), to try a pipeline without the real data.")
    p.add_argument("--out", required=True, help="folder to write (created)")
    p.add_argument("--monet", type=int, default=30, help="Monet paintings (default 30)")
    p.add_argument("--photo", type=int, default=60, help="photos (default 60)")
    p.add_argument("--size", type=int, default=256, help="image size in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the images (default 0)")
    p.set_defaults(func=cmd_sample_data)

    p = subparsers.add_parser("train", help="train a pipeline (a pipelines/*.toml file or its name)",
                              description="Train a pipeline into its run directory: config.toml, checkpoints/, "
                                          "samples/epoch_NNN.png, history.csv, plots.png, tensorboard/ and, "
                                          "at the end, generator.keras. Checks every image first.")
    p.add_argument("pipeline", help="PIPELINE.toml, or the name of a shipped pipeline (e.g. demo)")
    p.add_argument("--out", help="run directory (default: [output] dir, else runs/<name>)")
    _add_train_args(p)
    add_job_flags(p)
    p.set_defaults(func=cmd_train)

    p = subparsers.add_parser("run", help="train -> generate -> validate, inside the budget",
                              description="Train a pipeline under the budget guard, then translate the "
                                          "photos into a validated images.zip, all inside [budget] hours "
                                          "(Kaggle's 3 h on TPU, 5 h on GPU by default).")
    p.add_argument("pipeline", help="PIPELINE.toml, or the name of a shipped pipeline")
    p.add_argument("--out", help="run directory (default: [output] dir)")
    p.add_argument("--zip", help="the submission to write (default: <run dir>/images.zip)")
    _add_train_args(p)
    add_job_flags(p)
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("generate", help="translate photos with a trained generator into images.zip",
                              description="Paint a submission zip with a trained generator: a run "
                                          "directory (--run) or a checkpoint or .keras file (--checkpoint); "
                                          "one of the two is required. The zip is validated as Kaggle will.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="DIR",
                        help="a run directory: its best generator by MiFID, else its newest checkpoint")
    source.add_argument("--checkpoint", metavar="PATH",
                        help="a checkpoint prefix (runs/x/checkpoints/ckpt-N) or a .keras generator")
    p.add_argument("--photos", help="photos to translate (default: the run's data.photo)")
    p.add_argument("--truncation", type=float, metavar="T",
                   help="noise models: redraw latents beyond ±T, trading variety for quality "
                        "(0: off; default: the run's model.truncation)")
    p.add_argument("--style-seed", type=int, metavar="N",
                   help="MUNIT, DRIT++: paint every photo in the style drawn from seed N (default: the run's "
                        "model.style_seed)")
    add_generate_args(p)
    p.set_defaults(func=cmd_generate)

    p = subparsers.add_parser("demo", help="sample data -> tiny CycleGAN -> zip of translated photos",
                              description="The whole loop in about a minute on a CPU: sample data, a tiny "
                                          "CycleGAN (pipelines/demo.toml), a validated zip of translated "
                                          "photos and its (tiny-extractor) score.")
    p.add_argument("--out", default="demo_out", help="folder for everything the demo makes (default demo_out)")
    _add_train_args(p)
    p.set_defaults(func=cmd_demo)
