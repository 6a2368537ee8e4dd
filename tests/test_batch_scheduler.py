"""``--scheduler`` addresses: checked before anything starts, and an unreachable scheduler is one
line and exit 2 within the connect timeout, with no destructor noise from Dask's client."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from dragon_gpu.distributed import check_scheduler
from dragon_gpu.errors import UsageError


@pytest.mark.parametrize("address, problem", [
    ("bogus", "no port"),
    ("tcp://", "no host"),
    ("tcp://:8786", "no host"),
    ("", "it is empty"),
    ("   ", "it is empty"),
    ("foo://host:8786", "unknown protocol 'foo'"),
    ("tcp://host:port", "the port 'port' is not a number from 1 to 65535"),
    ("tcp://host:0", "is not a number from 1 to 65535"),
    ("host:65536", "is not a number from 1 to 65535"),
    ("tcp://host:\u0661\u0662", "is not a number"),  # Arabic-Indic digits are not a port
    ("tcp://[::1]", "no port"),
])
def test_bad_addresses_are_refused(address, problem):
    with pytest.raises(UsageError, match="expected 'local' or a scheduler address") as info:
        check_scheduler(address)
    assert problem in str(info.value)


@pytest.mark.parametrize("address", ["local", " local ", "tcp://10.0.0.5:8786", "10.0.0.5:8786",
                                     "tls://sched.example.org:8786", "tcp://[::1]:8786",
                                     "ucx://10.0.0.5:13337"])
def test_good_addresses_pass(address):
    assert check_scheduler(address) == address.strip()


def _batch(tmp_path, scheduler: str) -> subprocess.CompletedProcess:
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,body,dye\na,a.tif,b.tif\n")
    return subprocess.run([sys.executable, "-m", "dragon_gpu", "batch", str(manifest), "--out",
                           str(tmp_path / "R.csv"), "--scheduler", scheduler],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("address", ["bogus", "tcp://", "tcp://host:x"])
def test_cli_bad_address_is_one_line_and_writes_nothing(tmp_path, address):
    start = time.monotonic()
    proc = _batch(tmp_path, address)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("dragon-gpu: error: --scheduler: expected 'local' or a "
                                  f"scheduler address such as tcp://10.0.0.5:8786, got {address!r}")
    assert not (tmp_path / "R.csv").exists()
    assert time.monotonic() - start < 30  # not a connect timeout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_cli_refused_scheduler_is_one_line(tmp_path):
    pytest.importorskip("distributed")
    port = _free_port()  # nothing listens there
    proc = _batch(tmp_path, f"tcp://127.0.0.1:{port}")
    assert proc.returncode == 2
    assert proc.stderr == (f"dragon-gpu: error: --scheduler: cannot connect to the Dask "
                           f"scheduler at tcp://127.0.0.1:{port} (Connection refused)\n")
    assert not (tmp_path / "R.csv").exists()  # checked before the results file is opened


def test_a_silent_listener_is_one_line_within_the_timeout_without_noise():
    """Something accepts the connection but never speaks Dask: one error once the timeout has
    passed, and no "Exception ignored" from the client's destructor at exit."""
    pytest.importorskip("distributed")
    script = "\n".join([
        "import socket, time",
        "from dragon_gpu.distributed import connect",
        "from dragon_gpu.errors import UsageError",
        "server = socket.socket()",
        "server.bind(('127.0.0.1', 0))",
        "server.listen(8)",
        "port = server.getsockname()[1]",
        "start = time.monotonic()",
        "try:",
        "    with connect(f'tcp://127.0.0.1:{port}', timeout=2):",
        "        pass",
        "except UsageError as exc:",
        "    print('error:', exc)",
        "print('seconds:', time.monotonic() - start)",
    ])
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("error: scheduler: cannot connect to the Dask scheduler at "
                               "tcp://127.0.0.1:"), proc.stdout
    assert float(lines[1].split()[1]) < 10
    assert "Exception ignored" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
