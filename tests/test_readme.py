"""README.md's commands: the offline blocks run as written, and CI runs the README's test command."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK_AFTER = r"<!-- {marker} -->\s*```bash\n(.*?)\n\s*```"


def marked_blocks(marker: str, text: str = README) -> list[str]:
    """The bash blocks that follow ``<!-- marker -->``, each as its text (indentation removed)."""
    blocks = re.findall(BLOCK_AFTER.format(marker=re.escape(marker)), text, flags=re.DOTALL)
    return ["\n".join(line.strip() for line in block.splitlines()) for block in blocks]


def test_block_reader_finds_marked_blocks_only():
    text = ("```bash\nnot marked\n```\n<!-- runs-in-test -->\n```bash\necho one\necho two\n```\n"
            "   <!-- runs-in-test -->\n   ```bash\n   echo three\n   ```\n")
    assert marked_blocks("runs-in-test", text) == ["echo one\necho two", "echo three"]


def test_readme_has_one_demo_and_one_test_command():
    (demo,), (tests,) = marked_blocks("demo-command"), marked_blocks("test-command")
    assert "promoterlab demo" in demo and "pytest" in tests
    for command in (demo, tests):  # both check the Python version first, with a message that says what to do
        assert command.startswith("python3 -c 'import sys; assert sys.version_info >= (3, 11)")


def test_ci_runs_the_readme_test_command():
    printed = subprocess.run(["bash", str(ROOT / ".ci" / "run"), "--print-test-command"], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert printed == marked_blocks("test-command")[0]


def test_python_check_stops_an_old_python_with_its_message():
    check = marked_blocks("test-command")[0].split(" && ")[0]
    old = check.replace("python3 -c", f"{sys.executable} -c").replace("(3, 11)", "(99, 0)")
    done = subprocess.run(old, shell=True, capture_output=True, text=True)
    assert done.returncode != 0 and "promoterlab needs Python >= 3.11" in done.stderr


@pytest.fixture(scope="module")
def offline_blocks(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess]]:
    """Every ``runs-in-test`` block of README.md run as written with bash, in one fresh folder."""
    folder = tmp_path_factory.mktemp("readme")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PROMOTERLAB_DATA": str(folder / "data"), "COLUMNS": "80"}
    return folder, [subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=folder, env=env,
                                   capture_output=True, text=True, timeout=600)
                    for block in marked_blocks("runs-in-test")]


def test_offline_readme_blocks_run(offline_blocks):
    _, done = offline_blocks
    assert done, "README.md has no runs-in-test block"
    for result in done:
        assert result.returncode == 0, f"{result.args[-1]}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"


def test_readme_demo_block_writes_a_run_with_a_held_out_test(offline_blocks):
    folder, done = offline_blocks
    demo = folder / "tiny-demo"
    assert (demo / "simulated_library.txt").is_file() and (demo / "curves.png").is_file()
    summary = json.loads((demo / "summary.json").read_text())
    # 2,048 promoters: a tenth is under 256, so 256 each for test and validation; the 0.1-minute budget
    assert summary["train_size"] == 2048 - 256 - 256 and summary["budget"]["budget_seconds"] == 6.0
    evaluated = json.loads(done[-1].stdout)  # the last block: evaluate --split test --json
    assert evaluated["n"] == summary["test"]["n"] == 256
    assert evaluated["pearson"] == pytest.approx(summary["test"]["pearson"], abs=1e-3)
