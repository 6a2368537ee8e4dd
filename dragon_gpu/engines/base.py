"""The engine interface: count a pair of readers over planned row blocks."""

from __future__ import annotations

import abc
from typing import Sequence

import numpy as np

from ..io.base import Encoding, MaskReader
from ..model import Counts, RowRange, Tick


class Engine(abc.ABC):
    """Counts body, dye and dye-in-body pixels of a pair.

    An engine owns its driver loop (the CPU engine prefetches blocks on a thread; the CUDA engine
    streams them through pinned buffers), but every engine must return exactly the counts of the
    reference :func:`dragon_gpu.engines.cpu.count_block` summed over the blocks.
    """

    #: the ``backend`` of the JSON result: ``"cpu"`` or ``"cuda:N[,M]"``.
    name: str

    @abc.abstractmethod
    def count_pair(self, body: MaskReader, body_enc: Encoding, dye: MaskReader, dye_enc: Encoding,
                   blocks: Sequence[RowRange], progress: Tick | None = None) -> Counts:
        """Sum of the counts of ``blocks``; ``progress(rows)`` is called as rows are done."""

    def histogram(self, readers: Sequence[MaskReader], blocks: Sequence[RowRange],
                  progress: Tick | None = None) -> np.ndarray:
        """Exact histogram of one plane reader (uint8: 256 bins, uint16: 65536), or the joint
        histogram of two uint8 plane readers (65536 bins, index ``body << 8 | dye``), over
        ``blocks``; ``int64``, equal bit for bit to the sum of
        :func:`dragon_gpu.engines.cpu_hist.histogram_block` /
        :func:`~dragon_gpu.engines.cpu_hist.joint_histogram_block` over the blocks.

        This default streams on the CPU; an engine with its own kernels overrides it.
        """
        from ..io._decode import decode_workers
        from .cpu_hist import stream_histogram

        return stream_histogram(readers, blocks, decode_workers(), progress=progress)
