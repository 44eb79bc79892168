"""One command-line convention for every command (issue 33): readable help at 80 columns, the same
spelling of the output and of --quiet/--json, one error style and documented exit codes."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from conftest import invoke
from promoterlab.cli import app

GROUPS = ("data", "dream", "models")
# Commands whose result is a file or a folder they write (the rest print theirs): -o/--output.
WRITES = {"train", "demo", "predict", "explain", "variants", "motifs", "marginalize", "sweep", "tune", "results",
          "report", "data encode", "dream predict", "models fetch", "models import"}
# Commands that print a result: --json (and --quiet for their messages).
RESULTS = WRITES | {"evaluate", "data list", "data fetch", "dream score", "models list", "models benchmark", "doctor"}


def commands() -> list[str]:
    """Every command and sub-command name, e.g. ``train``, ``data fetch``."""
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"})
    names = re.findall(r"^  (\w[\w-]*)\s", result.stdout.split("Commands:")[1], flags=re.M)
    found = []
    for name in names:
        if name in GROUPS:
            sub = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "80"})
            found += [f"{name} {s}" for s in re.findall(r"^  (\w[\w-]*)\s", sub.stdout.split("Commands:")[1],
                                                       flags=re.M)]
        else:
            found.append(name)
    return found


def help_text(command: str) -> str:
    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_command_is_listed():
    assert set(commands()) >= RESULTS


@pytest.mark.parametrize("command", sorted(RESULTS | {"models"}))
def test_help_reads_well_at_80_columns(command):
    text = help_text(command)
    assert not re.search(r"<(bool|int|float|str|path|text|list\[.*?\]|int range|float range)>", text), text
    assert "…" not in text, text  # no option name cut short
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Exit codes" in text or command == "models"


@pytest.mark.parametrize("command", sorted(WRITES))
def test_the_output_is_always_dash_o_or_dash_dash_output(command):
    text = help_text(command)
    assert re.search(r"^  -o, --output (FILE|FOLDER)", text, flags=re.M), text


@pytest.mark.parametrize("command", sorted(RESULTS))
def test_commands_with_a_result_take_quiet_and_json(command):
    text = help_text(command)
    assert "--json" in text
    if command not in ("dream score", "data list", "doctor", "models benchmark", "evaluate"):
        assert "-q, --quiet" in text


def test_one_precision_vocabulary_with_what_auto_is_here():
    for command in ("train", "predict", "evaluate", "explain", "variants", "motifs", "marginalize", "dream predict"):
        text = " ".join(help_text(command).split())
        assert "auto (here: " in text and "32, bf16 or 16" in text, command


def test_a_usage_error_is_one_error_line_with_exit_2(tmp_path):
    for args in (["predict"], ["train", "--epochs", "x", "-o", str(tmp_path / "r")], ["nosuch"],
                 ["evaluate", "--split", "sometimes", str(tmp_path)]):
        result = invoke(*args)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, result.output)
        assert "Usage:" not in result.output and "Traceback" not in result.output


def test_a_data_error_is_exit_2_and_a_failed_checksum_exit_1(tmp_path):
    data = tmp_path / "bad.txt"
    data.write_text("ACGTX\t3\n")
    result = invoke("data", "encode", data, "-o", tmp_path / "store")
    assert result.exit_code == 2 and result.stderr.startswith("error: ") and "bad.txt:1" in result.stderr
    copy = tmp_path / "dream2022"
    (copy / "test").mkdir(parents=True)
    (copy / "test" / "test_sequences.txt").write_text("ACGT\t0\n")
    # the checksum a download recorded, which the file no longer matches
    (copy / "promoterlab_manifest.json").write_text(json.dumps(
        {"dataset": "dream2022", "files": {"test/test_sequences.txt": {"size": 7, "sha256": "0" * 64}}}))
    result = invoke("data", "fetch", "dream2022", "--dir", copy, "--only", "test/test_sequences.txt", "--no-progress")
    assert result.exit_code == 1 and result.stderr.splitlines()[-1].startswith("error: "), result.output


def test_the_old_out_spelling_still_works_with_a_notice(tmp_path):
    result = invoke("demo", "--out", tmp_path / "demo", "--n", "2048", "--minutes", "0.05", "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    assert "warning: --out is deprecated; use -o/--output" in result.stderr
    assert json.loads(result.stdout)["test"]["n"] > 0 and (tmp_path / "demo" / "model.pt").is_file()


def test_json_goes_to_stdout_and_messages_to_stderr(tmp_path):
    result = invoke("data", "list", "--json", "--data-dir", tmp_path)
    assert result.exit_code == 0 and json.loads(result.stdout)["data_dir"] == str(tmp_path)
    assert result.stderr == ""
