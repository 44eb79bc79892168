"""Inputs and outputs of predict, evaluate, variants and explain (issue 36): named pipes and standard
input read once, repeated ids warned about or refused, file names with spaces, newlines or a
leading dash, and read-only folders for a user who is not root.

One tiny model is trained once, in a subprocess, for the whole module.
"""

from __future__ import annotations

import os
import pickle
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import assert_one_error, invoke, snapshot
from promoterlab.data.simulate import write_library


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("io")


@pytest.fixture(scope="module")
def library(workdir) -> Path:
    return write_library(workdir / "lib.txt", n=250, seed=2)


@pytest.fixture(scope="module")
def run(workdir, library) -> Path:
    out = workdir / "run"
    done = subprocess.run(
        [sys.executable, "-m", "promoterlab", "train", str(library), "--output", str(out), "--width", "0.0625",
         "--epochs", "1", "--val-size", "50", "--batch-size", "64", "--accelerator", "cpu", "--devices", "1",
         "--no-progress", "--ensemble", "1"], capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def seqs(library) -> list[str]:
    return [line.split("\t")[0] for line in library.read_text().splitlines()[:4]]


def fed_through_a_pipe(path: Path, text: str) -> threading.Thread:
    """A named pipe at ``path`` whose writer writes ``text`` once and closes it."""
    os.mkfifo(path)
    writer = threading.Thread(target=lambda: path.write_text(text), daemon=True)
    writer.start()
    return writer


# --- streams are read once -----------------------------------------------------------------------


def test_evaluate_and_predict_read_a_named_pipe_and_standard_input_once(run, library, tmp_path, seqs):
    measured = "".join(line + "\n" for line in library.read_text().splitlines()[:20])
    writer = fed_through_a_pipe(tmp_path / "measured", measured)
    result = invoke("evaluate", run, tmp_path / "measured", "--json")
    writer.join(timeout=5)
    assert result.exit_code == 0, result.output
    assert '"n": 20' in result.stdout
    fasta = "".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs))
    writer = fed_through_a_pipe(tmp_path / "fasta", fasta)
    result = invoke("predict", run, tmp_path / "fasta", "-o", tmp_path / "p.tsv", "--no-progress")
    writer.join(timeout=5)
    assert result.exit_code == 0, result.output
    from_pipe = (tmp_path / "p.tsv").read_text()
    result = invoke("predict", run, "-", "-o", "-", "--no-progress", input=fasta)
    assert result.exit_code == 0, result.output
    assert result.stdout == from_pipe and len(from_pipe.splitlines()) == 5
    writer = fed_through_a_pipe(tmp_path / "pairs", "id\tref\talt\n" + f"v\t{seqs[0]}\t{seqs[1]}\n")
    result = invoke("variants", run, tmp_path / "pairs", "-o", tmp_path / "v.tsv", "--no-progress")
    writer.join(timeout=5)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "v.tsv").read_text().startswith("id\tref_pred\talt_pred\tdelta\n")


def test_ctrl_c_exits_130_with_one_line_and_leaves_no_output(run, tmp_path, seqs):
    fifo, output = tmp_path / "endless.fa", tmp_path / "p.tsv"
    os.mkfifo(fifo)
    inherited = signal.getsignal(signal.SIGINT)
    child = subprocess.Popen([sys.executable, "-m", "promoterlab", "predict", str(run), str(fifo), "-o", str(output),
                              "--no-progress"], stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "OMP_NUM_THREADS": "1"},
                             # as a shell starts it: Ctrl-C at its default whatever this test process has
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    writer = os.open(fifo, os.O_RDWR)  # kept open (and never blocking): predict waits for more input
    try:
        os.write(writer, f">s0\n{seqs[0]}\n".encode())
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".p.tsv.*.tmp")) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the output's temp file exists once predict is under way
        time.sleep(1)
        child.send_signal(signal.SIGINT)
        try:
            _, stderr = child.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
            raise AssertionError(f"predict did not stop on Ctrl-C (this process's SIGINT handler: {inherited})")
    finally:
        os.close(writer)
    assert child.returncode == 130, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines == ["error: interrupted (Ctrl-C); outputs are written whole or not at all"], stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["endless.fa"]


# --- repeated ids: one warning, or refused with --strict ------------------------------------------------


def test_repeated_ids_are_warned_about_once_or_refused_with_strict(run, tmp_path, seqs):
    fasta = tmp_path / "in.fa"
    fasta.write_text("".join(f">{name}\n{s}\n" for name, s in zip(["a", "b", "a", "b"], seqs)))
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("id\tref\talt\n" + "".join(f"{name}\t{s}\t{seqs[0]}\n" for name, s in
                                               zip(["x", "y", "z", "x"], seqs)))
    for command, source, first, count in (("predict", fasta, "in.fa:5: id 'a' repeats the id of line 1", 2),
                                          ("variants", pairs, "pairs.tsv:5: id 'x' repeats the id of line 2", 1)):
        result = invoke(command, run, source, "-o", tmp_path / "out.tsv", "--no-progress")
        assert result.exit_code == 0, result.output
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
        assert len(warnings) == 1 and first in warnings[0] and f"{count} row(s) repeat" in warnings[0]
        assert len((tmp_path / "out.tsv").read_text().splitlines()) == 5
        (tmp_path / "out.tsv").unlink()
        before = snapshot(tmp_path)
        result = invoke(command, run, source, "-o", tmp_path / "out.tsv", "--no-progress", "--strict")
        assert_one_error(result, 2, first.split(": id")[0], "ids must be unique (--strict)")
        assert snapshot(tmp_path) == before


# --- file names with spaces, newlines and a leading dash --------------------------------------------------


@pytest.mark.parametrize("stem", ["with space", "new\nline", "-dash"])
def test_file_names_with_spaces_newlines_and_a_leading_dash(run, library, tmp_path, seqs, stem):
    fasta, measured, pairs = (tmp_path / f"{stem}{suffix}" for suffix in (".fa", ".txt", ".tsv"))
    fasta.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    measured.write_text("".join(line + "\n" for line in library.read_text().splitlines()[:10]))
    pairs.write_text("id\tref\talt\n" + f"v\t{seqs[0]}\t{seqs[1]}\n")
    out = tmp_path / f"{stem} out"
    result = invoke("predict", run, "-o", f"{out}.tsv", "--no-progress", "--", fasta)
    assert result.exit_code == 0, result.output
    assert len(Path(f"{out}.tsv").read_text().splitlines()) == 5
    result = invoke("evaluate", run, "--json", "--", measured)
    assert result.exit_code == 0 and '"n": 10' in result.stdout, result.output
    result = invoke("variants", run, "-o", f"{out}.variants.tsv", "--plot", f"{out}.png", "--no-progress", "--",
                    pairs)
    assert result.exit_code == 0 and Path(f"{out}.png").stat().st_size > 0, result.output
    result = invoke("explain", run, "--output", f"{out}.explain", "--max-plots", "1", "--no-progress", "--", fasta)
    assert result.exit_code == 0 and (Path(f"{out}.explain") / "attributions.npz").is_file(), result.output
    before = snapshot(tmp_path)
    missing = tmp_path / f"{stem}.missing.fa"
    line = assert_one_error(invoke("predict", run, "-o", f"{out}.2.tsv", "--", missing), 2, "file not found")
    assert stem.replace("\n", "\\n") in line
    assert snapshot(tmp_path) == before


# --- read-only folders, for a user who is not root ------------------------------------------------------


def as_user(function, user: str = "nobody"):
    """``function()`` run by ``user``: in a forked child that took the user's ids when this process
    is root (whose permissions would mask what a user meets), else here."""
    if os.geteuid() != 0:
        return function()
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        pytest.skip(f"running as root, and there is no user {user!r} to check permissions as")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop root, run, send the result back, exit without cleanup
        try:
            os.close(read)
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
            reply = ("ok", function())
        except BaseException as err:  # noqa: BLE001 - every failure is reported to the parent
            reply = ("error", repr(err))
        with os.fdopen(write, "wb") as pipe:
            pickle.dump(reply, pipe)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        status, value = pickle.load(pipe)
    os.waitpid(pid, 0)
    assert status == "ok", value
    return value


@pytest.fixture
def shared_folder():
    """A folder another user may enter (pytest's tmp_path lies in root's private folder)."""
    folder = Path(tempfile.mkdtemp(prefix="promoterlab-perm-"))
    folder.chmod(0o777)
    yield folder
    for path in [folder, *folder.rglob("*")]:
        if path.is_dir():
            path.chmod(0o777)
    shutil.rmtree(folder)


def read_only_tree(base: Path, seqs: list[str]) -> Path:
    """``base/inputs`` (``in.fa`` and the unreadable ``secret.fa``) and an empty ``base/outputs``,
    both folders read-only."""
    inputs, outputs = base / "inputs", base / "outputs"
    for folder in (inputs, outputs):
        folder.mkdir()
    for path in (inputs / "in.fa", inputs / "secret.fa"):
        path.write_text("".join(f">s{i}\n{s}\n" for i, s in enumerate(seqs)))
    (inputs / "secret.fa").chmod(0)
    for folder in (inputs, outputs):
        folder.chmod(0o555)
    return base


def attempts(base: Path) -> list[tuple[int, str]]:
    """Commands that write into the read-only folders or read the unreadable file (each fails
    before a model is loaded), and the input check itself: ``(exit code, stderr)`` of each."""
    from promoterlab.files import InputError, check_input

    inputs, outputs, run = base / "inputs", base / "outputs", base / "no-run"
    results = [invoke("predict", run, inputs / "in.fa", "-o", outputs / "p.tsv"),
               invoke("variants", run, inputs / "in.fa", "-o", outputs / "v.tsv"),
               invoke("explain", run, inputs / "in.fa", "--output", outputs / "attributions"),
               invoke("data", "encode", inputs / "in.fa", "-o", inputs / "store"),
               invoke("results", outputs),  # its tables go into the runs folder
               invoke("predict", run, inputs / "secret.fa", "-o", base / "p.tsv")]
    try:  # what the commands check (click refuses an unreadable existing file before them)
        check_input(inputs / "secret.fa", "--background")
        unreadable = "read"
    except InputError as err:
        unreadable = str(err)
    return [(result.exit_code, result.stderr or repr(result.exception)) for result in results] + [
        (2, f"error: {unreadable}")]


def test_read_only_folders_refuse_outputs_and_unreadable_inputs_say_so(shared_folder, seqs, tmp_path):
    if os.geteuid() == 0:  # as root every command goes further: the child finds every module imported
        attempts(read_only_tree(tmp_path, seqs))
    tree = read_only_tree(shared_folder, seqs)
    inputs, outputs, secret = tree / "inputs", tree / "outputs", tree / "inputs" / "secret.fa"
    before = snapshot(shared_folder)
    results = as_user(lambda: attempts(tree))
    expected = [f"{outputs / 'p.tsv'}: directory {outputs} is not writable",
                f"{outputs / 'v.tsv'}: directory {outputs} is not writable",
                f"-o/--output {outputs / 'attributions'}: permission denied: cannot write (its folder {outputs})",
                f"--output {inputs / 'store'}: permission denied: cannot write (its folder {inputs})",
                f"-o/--output {outputs}: permission denied: cannot write"]
    for (code, stderr), fragment in zip(results, expected):
        lines = stderr.splitlines()
        assert code == 2 and len(lines) == 1 and fragment in lines[0], (fragment, stderr)
    code, stderr = results[5]  # click's own refusal, in its usage-error box
    assert code == 2 and "secret.fa' is not readable" in " ".join(stderr.split()), stderr
    assert results[6][1] == f"error: --background {secret}: permission denied (not readable)"
    assert snapshot(shared_folder) == before


# --- one writer per run folder -------------------------------------------------------------------


def test_a_second_train_into_a_folder_being_written_is_refused(library, tmp_path):
    out = tmp_path / "busy"
    holder = subprocess.Popen(  # another process in the middle of writing a run into out
        [sys.executable, "-c", "import sys, time\nfrom promoterlab.runs import writing\n"
         f"with writing({str(out)!r}):\n    print('holding', flush=True)\n    time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        before = snapshot(tmp_path)
        result = invoke("train", library, "-o", out, "--epochs", "1", "--width", "0.0625", "--ensemble", "1",
                        "--no-progress")
        assert_one_error(result, 2, str(out), "another process is writing a run into this folder")
        assert snapshot(tmp_path) == before  # the running writer's folder is left as it was
    finally:
        holder.kill()
        holder.wait()
    result = invoke("train", library, "-o", out, "--epochs", "1", "--width", "0.0625", "--ensemble", "1",
                    "--val-size", "50", "--batch-size", "64", "--no-progress")
    assert result.exit_code == 0, result.output  # the lock died with its process
