"""The ``xpnn`` command as a newcomer meets it: every flag has help, a bad flag shows the
subcommand's usage, a model evaluated on the wrong data says which data it needs, train
ends with the next commands, and ``info`` tells the truth about what is installed."""

from __future__ import annotations

import argparse
import contextlib
import io

import pytest

from xpnn.cli import build_parser, main


def run(argv):
    """(exit code, stdout, stderr) of ``xpnn ARGV`` in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse's usage errors and --help
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _commands(parser, prefix="xpnn"):
    """(name, parser) of the command and of every subcommand, depth first."""
    yield prefix, parser
    for action in parser._actions:  # argparse keeps them there; it has no public walk
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, f"{prefix} {name}")


# ---- help and usage --------------------------------------------------------------------------


def test_every_flag_and_argument_of_every_subcommand_has_help():
    commands = dict(_commands(build_parser()))
    assert {"xpnn train", "xpnn evaluate", "xpnn predict", "xpnn info", "xpnn tune"} <= set(commands)
    missing = [
        f"{name} {'/'.join(action.option_strings) or action.dest}"
        for name, parser in commands.items()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert not missing, "flags without help text: " + ", ".join(missing)


@pytest.mark.parametrize("command", ["train", "evaluate", "predict", "info", "tune"])
def test_help_of_each_subcommand_shows_each_flag_with_its_text(command):
    code, stdout, _ = run([command, "--help"])
    assert code == 0 and stdout.startswith(f"usage: xpnn {command} ")
    parser = dict(_commands(build_parser()))[f"xpnn {command}"]
    for action in parser._actions:
        first_words = " ".join(action.help.split()[:2]).replace("%%", "%")
        assert first_words in " ".join(stdout.split()), (action.dest, first_words)


@pytest.mark.parametrize(
    "argv", [["train"], ["evaluate", "m.safetensors"], ["predict", "m.safetensors", "x.csv"], ["info"], ["tune"]]
)
def test_a_bad_flag_shows_the_subcommands_usage_and_exits_2(argv):
    command = argv[0]
    code, stdout, stderr = run([*argv, "--bogus", "1"])
    assert code == 2 and stdout == ""
    assert stderr.startswith(f"usage: xpnn {command} ")
    assert f"xpnn {command}: error: unrecognized arguments: --bogus 1" in stderr


def test_a_bad_value_still_shows_the_subcommands_usage():
    code, _, stderr = run(["train", "--epochs", "many"])
    assert code == 2 and stderr.startswith("usage: xpnn train ") and "invalid int value: 'many'" in stderr


# ---- info ------------------------------------------------------------------------------------


def test_info_reports_array_api_strict_unavailable_when_it_does_not_import(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_strict(name, *args, **kwargs):
        if name.split(".")[0] == "array_api_strict":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_strict)
    code, stdout, stderr = run(["info"])
    assert code == 0 and stderr == ""
    line = next(line for line in stdout.splitlines() if line.startswith("backend array_api_strict: "))
    assert line == (
        'backend array_api_strict: unavailable (backend "array_api_strict" needs array-api-strict: '
        "pip install array-api-strict)"
    )
    assert "backend numpy: available, devices cpu" in stdout  # the others as before


def test_info_reports_array_api_strict_available_when_it_imports():
    pytest.importorskip("array_api_strict")
    code, stdout, _ = run(["info"])
    assert code == 0 and "backend array_api_strict: available, devices CPU_DEVICE, device1, device2\n" in stdout
