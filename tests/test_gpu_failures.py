"""The CUDA engine's failure handling on a real GPU (what the stand-in for CuPy can only model).

Marked ``gpu``: each test skips itself where GPU 0 is not usable. These check against the real
driver what ``test_gpu_robust_fake.py`` checks against the model: a real sticky fault is one line
with no destructor tracebacks, the launcher's checks stop a misaligned launch before it faults,
and ``--device 1`` leaves GPU 0 without a context.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from dragon_gpu.engines.gpu import KernelLauncher, device_count, has_gpu
from tests.helpers import python_env
from tests.helpers.engine_cases import make_encoding

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not has_gpu(0), reason="GPU 0 is not usable (no CuPy, driver "
                                                        "or device)")]


def test_launcher_stops_a_misaligned_launch_before_it_faults():
    import cupy

    from dragon_gpu.engines.gpu._context import on_device

    enc = make_encoding("u16", 64, 100, True)

    def run():
        launch = KernelLauncher(0, enc, enc)
        buf = cupy.zeros(8 * 128 + 16, dtype=cupy.uint8)
        counters = cupy.zeros(3, dtype=cupy.uint64)
        with pytest.raises(ValueError, match="not 16-byte aligned"):
            launch(buf[2:], buf, 8, counters)
        launch(buf, buf, 8, counters)  # the context is still alive
        return [int(v) for v in counters.get()]

    assert on_device(0, run) == [8 * 64, 0, 0]  # zeros: all body (< 100), no dye (>= 100)


FAULT = """
import gc, sys
import numpy as np
from tests.helpers.engine_cases import ArrayReader, make_encoding
from dragon_gpu.engines.gpu import CudaEngine, _engine
from dragon_gpu.errors import DragonError
from dragon_gpu.engines import select_engine
from dragon_gpu.model import RowRange
e = make_encoding("u16", 64, 100, True)
a = np.zeros((8, 64), np.uint16)
eng = CudaEngine([0])
real = _engine.KernelLauncher.__call__
_engine._check_buffer = lambda *args: None  # let a misaligned launch through: a real fault
_engine.KernelLauncher.__call__ = lambda self, b, d, rows, c: real(self, b[2:], d, rows, c)
try:
    eng.count_pair(ArrayReader(a, e), e, ArrayReader(a, e), e, [RowRange(0, 8)])
    print("no error")
except DragonError as exc:
    print("error:", exc)
gc.collect()
print(select_engine("0").name)  # the dead GPU is refused, with one warning line
"""


def test_a_real_sticky_fault_is_one_line_and_the_gpu_is_refused_after(tmp_path):
    script = tmp_path / "fault.py"
    script.write_text(FAULT)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, env=python_env())
    out = run.stdout.splitlines()
    assert run.returncode == 0, run.stderr
    assert out[0].startswith("error: GPU 0 failed: ") and out[1] == "cpu", run.stdout
    assert "Exception ignored" not in run.stderr, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and "failed earlier in this process" in lines[0], run.stderr


CONTEXTS = """
import ctypes, sys
import numpy as np
from tests.helpers.engine_cases import ArrayReader, make_encoding
from dragon_gpu.engines import select_engine
from dragon_gpu.model import RowRange
e = make_encoding("u8", 64, 100, True)
a = np.zeros((8, 64), np.uint8)
engine = select_engine("1", require_gpu=True)
engine.count_pair(ArrayReader(a, e), e, ArrayReader(a, e), e, [RowRange(0, 8)])
cuda = ctypes.CDLL("libcuda.so.1")
flags, active = ctypes.c_uint(), ctypes.c_int()
for device in (0, 1):
    assert cuda.cuDevicePrimaryCtxGetState(device, ctypes.byref(flags), ctypes.byref(active)) == 0
    print(device, active.value)
"""


@pytest.mark.skipif(device_count() < 2 or not has_gpu(1), reason="needs 2 GPUs")
def test_device_1_creates_no_context_on_gpu_0(tmp_path):
    script = tmp_path / "contexts.py"
    script.write_text(CONTEXTS)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, env=python_env())
    assert run.returncode == 0, run.stderr
    assert run.stdout.split("\n")[:2] == ["0 0", "1 1"], run.stdout


def test_the_pinned_ring_stays_out_of_cupys_pinned_pool():
    import cupy

    from tests.helpers.engine_cases import ArrayReader, numpy_counts, random_block
    from dragon_gpu.engines.gpu import CudaEngine
    from dragon_gpu.model import RowRange

    pool = cupy.get_default_pinned_memory_pool()
    pool.free_all_blocks()
    rng = np.random.default_rng(600)
    body, body_enc = random_block(rng, "u8", 300, 1000)
    dye, dye_enc = random_block(rng, "packed", 300, 1000)
    got = CudaEngine([0]).count_pair(ArrayReader(body, body_enc), body_enc,
                                     ArrayReader(dye, dye_enc), dye_enc,
                                     [RowRange(r, r + 50) for r in range(0, 300, 50)])
    assert (got.body, got.dye, got.dye_in_body) == numpy_counts(body, body_enc, dye, dye_enc)
    assert pool.n_free_blocks() == 0  # nothing was pinned through the pool, nothing stays
