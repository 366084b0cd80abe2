"""`gan-tpu COMMAND --help`: every command has a description and every option says what it
does; generate's usage shows that --run or --checkpoint is required."""
import argparse

import pytest

from gan_tpu import cli


def _subparsers():
    parser = cli.build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_command_has_a_description_and_every_option_a_help():
    choices = _subparsers()
    assert {"train", "run", "generate", "demo", "sample-data", "models", "validate", "score"} <= set(choices)
    for name, sub in choices.items():
        assert sub.description and len(sub.description) > 20, name
        unexplained = [a.option_strings or a.dest for a in sub._actions
                       if not isinstance(a, argparse._HelpAction) and not a.help]
        assert unexplained == [], (name, unexplained)


def test_generate_usage_shows_run_or_checkpoint_is_required(capsys):
    usage = _subparsers()["generate"].format_usage()
    assert "(--run DIR | --checkpoint PATH)" in usage
    with pytest.raises(SystemExit) as stop:
        cli.main(["generate", "--out", "x.zip"])
    assert stop.value.code == 2
    assert "one of the arguments --run --checkpoint is required" in capsys.readouterr().err


def test_counts_read_as_english():
    from gan_tpu.progress import counted

    assert counted(1, "epoch") == "1 epoch" and counted(6, "epoch") == "6 epochs"
    assert counted("auto", "epoch") == "auto epochs"
