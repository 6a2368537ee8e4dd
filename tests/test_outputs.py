"""Outputs: only a regular file is ever replaced, never an input; a full disk or a file size
limit is one line and exit 2 with nothing left under the final name; a pair is whole or absent.

Every command runs as a real process (``python -m dragon_gpu``) with a timeout, since a writer
that opened a FIFO would block forever.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import stat
import subprocess
import sys

import pytest

from dragon_gpu.errors import OutputError
from dragon_gpu.io import _output
from dragon_gpu.simulate import generate

SIDE = 160


def _run(*args, preexec_fn=None, timeout=120):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-m", "dragon_gpu", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=env,
                          preexec_fn=preexec_fn)


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("dragon-gpu: error: "), proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def _parts(folder):
    return sorted(n for n in os.listdir(folder) if n.endswith(".part"))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    folder = tmp_path_factory.mktemp("outputs")
    generate(folder, height=SIDE, width=SIDE, seed=5, kind="cancer", rows_per_strip=16)
    return folder / "body.tif", folder / "dye.tif"


def _writers(pair, target):
    """Every command that writes a file, each aimed at ``target``."""
    body, dye = pair
    return {
        "convert-tiff": ["convert", body, target, "--format", "tiff"],
        "convert-hdf5": ["convert", body, target, "--format", "hdf5"],
        "preview": ["preview", body, dye, "-o", target],
        "detect-preview": ["detect", body, dye, "--device", "cpu", "--preview", target],
    }


def _png_name(tmp_path, name):
    return tmp_path / name


# -- item 1: only a regular file is ever replaced -----------------------------------------------
@pytest.mark.parametrize("command", ["convert-tiff", "convert-hdf5", "preview", "detect-preview"])
def test_a_fifo_output_is_refused_and_left_a_fifo(pair, tmp_path, command):
    fifo = tmp_path / "out.png"  # .png so that preview's suffix check passes; convert uses --format
    os.mkfifo(fifo)
    proc = _run(*_writers(pair, fifo)[command], timeout=60)
    _one_line_error(proc, str(fifo), "FIFO", "only a regular file is ever replaced")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def _mknod_null(path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the same device as /dev/null
    except OSError as exc:  # a container without CAP_MKNOD
        pytest.skip(f"mknod is not permitted here ({exc.strerror})")


@pytest.mark.parametrize("command", ["convert-tiff", "convert-hdf5", "preview", "detect-preview"])
def test_a_device_output_is_refused_and_left_a_device(pair, tmp_path, command):
    node = tmp_path / "null.png"
    _mknod_null(node)
    proc = _run(*_writers(pair, node)[command])
    _one_line_error(proc, str(node), "character device")
    st = os.lstat(node)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert sorted(os.listdir(tmp_path)) == ["null.png"]


def test_generate_refuses_a_device_or_fifo_in_place_of_a_file(tmp_path):
    out = tmp_path / "pair"
    out.mkdir()
    os.mkfifo(out / "truth.json")
    proc = _run("generate", out, "--size", 64, "-q", timeout=60)
    _one_line_error(proc, "truth.json", "FIFO")
    assert sorted(os.listdir(out)) == ["truth.json"]  # nothing was written, not even body.tif


def test_a_symlink_to_a_fifo_is_refused_and_a_symlink_to_a_file_is_written_through(pair,
                                                                                 tmp_path):
    body, _ = pair
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "fifo", tmp_path / "link.tif")
    _one_line_error(_run("convert", body, tmp_path / "link.tif", timeout=60), "FIFO")
    # A link to a regular file: the file it points to is replaced, the link stays a link.
    (tmp_path / "real.tif").write_bytes(b"old")
    os.symlink(tmp_path / "real.tif", tmp_path / "good.tif")
    proc = _run("convert", body, tmp_path / "good.tif")
    assert proc.returncode == 0, proc.stderr
    assert os.path.islink(tmp_path / "good.tif")
    assert (tmp_path / "real.tif").read_bytes()[:4] == b"II*\0"
    assert sorted(os.listdir(tmp_path)) == ["fifo", "good.tif", "link.tif", "real.tif"]


def test_an_existing_regular_file_is_replaced(pair, tmp_path):
    body, _ = pair
    out = tmp_path / "old.tif"
    out.write_bytes(b"previous content")
    os.chmod(out, 0o640)
    assert _run("convert", body, out).returncode == 0
    assert out.read_bytes()[:4] == b"II*\0"
    assert _parts(tmp_path) == []


# -- item 6: a directory as output ----------------------------------------------------------------
@pytest.mark.parametrize("command", ["convert-tiff", "convert-hdf5", "preview", "detect-preview"])
def test_a_directory_output_is_one_line(pair, tmp_path, command):
    folder = tmp_path / "x.png"
    folder.mkdir()
    proc = _run(*_writers(pair, folder)[command])
    _one_line_error(proc, str(folder), "is a directory")
    assert os.listdir(folder) == []


def test_generate_checks_every_target_before_writing_anything(tmp_path):
    out = tmp_path / "pair"
    (out / "body.tif").mkdir(parents=True)
    proc = _run("generate", out, "--size", 64)
    _one_line_error(proc, "body.tif", "is a directory")
    assert sorted(os.listdir(out)) == ["body.tif"]  # no dye.tif, no truth.json, no temporary
    (out / "body.tif").rmdir()
    (out / "dye.tif").mkdir()
    _one_line_error(_run("generate", out, "--size", 64), "dye.tif", "is a directory")
    assert sorted(os.listdir(out)) == ["dye.tif"]


def test_generate_publishes_the_pair_whole_or_not_at_all(tmp_path, monkeypatch):
    """A failure while the pair is renamed into place removes what this run renamed, and an old
    truth.json never stays beside a half-replaced pair."""
    old = generate(tmp_path, height=64, width=64, seed=1)
    real = _output.AtomicOutput.rename
    calls = {"n": 0}

    def rename(self):
        calls["n"] += 1
        if calls["n"] == 2:  # body.tif is in place, dye.tif fails
            raise OSError(errno.EIO, "Input/output error")
        real(self)

    monkeypatch.setattr(_output.AtomicOutput, "rename", rename)
    with pytest.raises(OutputError, match="an input/output error"):
        generate(tmp_path, height=64, width=64, seed=2, force=True)
    # The old body was replaced, then the new one removed; the old dye is no longer described by a
    # truth.json: the folder holds no pair anyone would trust.
    assert sorted(os.listdir(tmp_path)) == ["dye.tif"]
    assert old["seed"] == 1


def test_generate_refuses_an_existing_pair_without_force(tmp_path):
    out = tmp_path / "pair"
    assert _run("generate", out, "--size", 64, "--seed", 1, "-q").returncode == 0
    before = {n: (out / n).read_bytes() for n in os.listdir(out)}
    proc = _run("generate", out, "--size", 64, "--seed", 2)
    _one_line_error(proc, "already holds body.tif, dye.tif, truth.json", "--force")
    assert {n: (out / n).read_bytes() for n in os.listdir(out)} == before
    proc = _run("generate", out, "--size", 64, "--seed", 2, "--force", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["seed"] == 2
    assert json.loads((out / "truth.json").read_text())["seed"] == 2
    assert (out / "body.tif").read_bytes() != before["body.tif"]
    assert sorted(os.listdir(out)) == ["body.tif", "dye.tif", "truth.json"]


def test_generate_quiet_prints_nothing(tmp_path):
    proc = _run("generate", tmp_path / "p", "--size", 64, "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "" and proc.stderr == ""
    proc = _run("generate", tmp_path / "q", "--size", 64, "-q", "--json")
    assert json.loads(proc.stdout)["shape"] == [64, 64]  # --json still prints what it was asked


# -- item 2: an output that is an input; the picture's format ----------------------------------
def test_preview_and_detect_refuse_an_output_that_is_an_input(pair, tmp_path):
    body, dye = pair
    before = body.read_bytes(), dye.read_bytes()
    os.link(dye, tmp_path / "alias.png")  # another name of the dye file: the same inode
    spelled = body.parent / ".." / body.parent.name / "body.png"
    os.symlink(body, spelled)
    try:
        for args in (["preview", body, dye, "-o", spelled],
                     ["preview", body, dye, "-o", tmp_path / "alias.png"],
                     ["detect", body, dye, "--preview", tmp_path / "alias.png"]):
            _one_line_error(_run(*args), "the output is the input file")
    finally:
        os.unlink(spelled)
    assert (body.read_bytes(), dye.read_bytes()) == before


def test_convert_refuses_its_input_under_another_name(pair, tmp_path):
    body, _ = pair
    os.link(body, tmp_path / "same.tif")
    proc = _run("convert", tmp_path / "same.tif", tmp_path / "same.tif")
    _one_line_error(proc, "the output is the input file")
    os.link(body, tmp_path / "other-name.tif")
    _one_line_error(_run("convert", body, tmp_path / "other-name.tif"), "the output is the input")
    assert (tmp_path / "same.tif").read_bytes() == body.read_bytes()


MAGIC = {".png": (0, b"\x89PNG\r\n\x1a\n"), ".jpg": (0, b"\xff\xd8\xff"),
         ".jpeg": (0, b"\xff\xd8\xff"), ".tif": (0, b"II*\0"), ".tiff": (0, b"II*\0"),
         ".webp": (8, b"WEBP"), ".bmp": (0, b"BM")}


@pytest.mark.parametrize("suffix", sorted(MAGIC))
def test_preview_writes_the_format_its_suffix_names(pair, tmp_path, suffix):
    pytest.importorskip("PIL")
    from dragon_gpu.preview import preview

    body, dye = pair
    out = tmp_path / f"overlay{suffix.upper() if suffix == '.jpg' else suffix}"
    preview(body, dye, out, max_side=256)
    offset, magic = MAGIC[suffix]
    assert out.read_bytes()[offset:offset + len(magic)] == magic
    assert sorted(os.listdir(tmp_path)) == [out.name]


def test_preview_refuses_a_suffix_it_cannot_write(pair, tmp_path):
    body, dye = pair
    for name in ("overlay.xyz", "overlay"):
        proc = _run("preview", body, dye, "-o", tmp_path / name)
        _one_line_error(proc, "cannot tell the picture format", ".png, .jpg")
    proc = _run("detect", body, dye, "--preview", tmp_path / "o.gif")
    _one_line_error(proc, "cannot tell the picture format")
    assert proc.stdout == ""  # refused before counting
    assert os.listdir(tmp_path) == []


# -- item 5: a full disk or a file size limit -----------------------------------------------------
def _fsize_limit(nbytes):
    """preexec_fn: the child may not write a file past ``nbytes`` (SIGXFSZ is left at its
    default, which kills: the CLI itself must ignore it to report EFBIG)."""
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return limit


@pytest.mark.parametrize("fmt", ["tiff", "hdf5"])
def test_generate_past_ulimit_f_is_one_line_and_leaves_nothing(tmp_path, fmt):
    out = tmp_path / "pair"
    proc = _run("generate", out, "--size", 1024, "--format", fmt, "--compression", "none",
                "--encoding", "u8", preexec_fn=_fsize_limit(200_000))
    _one_line_error(proc, "EFBIG", "nothing was left under its name")
    assert os.listdir(out) == []


@pytest.mark.parametrize("fmt", ["tiff", "hdf5"])
def test_convert_past_ulimit_f_is_one_line_and_leaves_nothing(pair, tmp_path, fmt):
    body, _ = pair
    target = tmp_path / ("b.tif" if fmt == "tiff" else "b.h5")
    # u8 without compression: 25,600 bytes of pixels, over the 8 KiB limit.
    proc = _run("convert", body, target, "--encoding", "u8", "--compression", "none",
                "--rows-per-strip", 16, preexec_fn=_fsize_limit(8192))
    _one_line_error(proc, str(target), "EFBIG")
    assert os.listdir(tmp_path) == []


def test_preview_past_ulimit_f_is_one_line_and_leaves_nothing(pair, tmp_path):
    body, dye = pair
    target = tmp_path / "o.bmp"  # uncompressed: the picture is larger than the limit
    proc = _run("preview", body, dye, "-o", target, "--max-side", 512,
                preexec_fn=_fsize_limit(16384))
    _one_line_error(proc, str(target), "EFBIG")
    assert os.listdir(tmp_path) == []


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KiB tmpfs (root only; skipped where mounting is not permitted)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    folder = tmp_path / "disk"
    folder.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.mark.parametrize("command", ["generate-tiff", "generate-hdf5", "convert-tiff",
                                     "convert-hdf5", "preview"])
def test_a_full_disk_is_one_line_and_leaves_nothing(pair, small_disk, command):
    body, dye = pair
    big = tmp = small_disk / "pair"
    args = {
        "generate-tiff": ["generate", big, "--size", 1024, "--encoding", "u8",
                          "--compression", "none"],
        "generate-hdf5": ["generate", big, "--size", 1024, "--encoding", "u8",
                          "--compression", "none", "--format", "hdf5"],
        "convert-tiff": ["convert", body, small_disk / "b.tif", "--encoding", "u16",
                         "--compression", "none"],
        "convert-hdf5": ["convert", body, small_disk / "b.h5", "--encoding", "u16",
                         "--compression", "none"],
        "preview": ["preview", body, dye, "-o", small_disk / "p.bmp", "--max-side", 2048],
    }[command]
    if command.startswith("convert"):
        # 160 x 160 u16 is 51 KiB: fill the disk first so that it does not fit.
        filler = small_disk / "filler"
        with open(filler, "wb") as fh:
            fh.write(b"\0" * (512 * 1024 - 32 * 1024))
    proc = _run(*args)
    _one_line_error(proc, "ENOSPC", "nothing was left under its name")
    names = sorted(n for n in os.listdir(small_disk) if n != "filler")
    assert names == (["pair"] if command.startswith("generate") else [])
    if command.startswith("generate"):
        assert os.listdir(tmp) == []


def test_a_full_disk_is_an_output_error_and_leaves_nothing(pair, tmp_path, monkeypatch):
    from dragon_gpu.convert import convert
    from dragon_gpu.io import writers

    def full(self, row_start, nrows, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers.TiffRowWriter, "append", full)
    with pytest.raises(OutputError, match=r"no space left on the device \(ENOSPC\)"):
        convert(pair[0], tmp_path / "b.tif")
    assert os.listdir(tmp_path) == []


def test_hdf5_write_errors_are_recognised_from_their_text():
    err = RuntimeError("Can't decrement id ref count (unable to extend file properly, errno = 28, "
                       "error message = 'No space left on device')")
    got = _output.translate_write_error(err, "x.h5")
    assert isinstance(got, OutputError) and "ENOSPC" in str(got) and str(got).startswith("x.h5: ")
    assert _output.translate_write_error(RuntimeError("a bug"), "x.h5") is None
    assert _output.translate_write_error(KeyboardInterrupt(), "x.h5") is None


# -- item 3: stale temporaries --------------------------------------------------------------------
def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_removes_stale_temporaries_of_its_own_outputs_only(pair, tmp_path):
    body, _ = pair
    host, dead = _output._host_tag(), _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale = f".b.tif.{host}-{dead}-0123abcd.part"
        live = f".b.tif.{host}-{sleeper.pid}-0123abcd.part"  # a writer that still runs
        others = [live, f".b.tif.otherhost-{dead}-0123abcd.part",  # another host's
                  f".c.tif.{host}-{dead}-0123abcd.part",           # another output's
                  ".b.tif.0123abcd.part", "b.tif.part"]              # not this pattern
        for name in [stale, *others]:
            (tmp_path / name).write_bytes(b"x" * 100)
        assert _run("convert", body, tmp_path / "b.tif").returncode == 0
        assert sorted(os.listdir(tmp_path)) == sorted(["b.tif", *others])
    finally:
        sleeper.kill()
        sleeper.wait()


# -- item 7: batch --out must be a regular file --------------------------------------------------
def _manifest(pair, tmp_path):
    body, dye = pair
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"id,body,dye\np1,{body},{dye}\n")
    return manifest


def test_batch_out_to_a_fifo_is_refused_up_front(pair, tmp_path):
    manifest = _manifest(pair, tmp_path)
    os.mkfifo(tmp_path / "R.csv")
    proc = _run("batch", manifest, "--out", tmp_path / "R.csv", "--workers", 1, timeout=60)
    _one_line_error(proc, "R.csv", "FIFO", "must be a regular file")
    assert stat.S_ISFIFO(os.lstat(tmp_path / "R.csv").st_mode)


def test_batch_out_to_a_device_is_refused_up_front(pair, tmp_path):
    manifest = _manifest(pair, tmp_path)
    _mknod_null(tmp_path / "null")
    proc = _run("batch", manifest, "--out", tmp_path / "null", "--workers", 1)
    _one_line_error(proc, "null", "character device", "must be a regular file")
    assert stat.S_ISCHR(os.lstat(tmp_path / "null").st_mode)



def test_batch_out_to_a_directory_is_refused_up_front(pair, tmp_path):
    manifest = _manifest(pair, tmp_path)
    (tmp_path / "R.csv").mkdir()
    proc = _run("batch", manifest, "--out", tmp_path / "R.csv", "--workers", 1)
    _one_line_error(proc, "R.csv", "is a directory; --out needs a file name")
    assert os.listdir(tmp_path / "R.csv") == []


# -- progress -------------------------------------------------------------------------------------
def test_the_progress_bar_labels_its_times():
    import io

    from rich.console import Console

    from dragon_gpu.cli.progress import ProgressBar as _ProgressBar

    sink = io.StringIO()
    console = Console(file=sink, force_terminal=True, width=160, color_system=None)
    with _ProgressBar("convert", console=console) as bar:
        bar.update(5, 10)
        bar._progress.refresh()
    text = sink.getvalue()
    assert "5/10 rows" in text and "elapsed 0:00:0" in text and "remaining" in text
