"""The engine interface: count a pair of readers over planned row blocks."""

from __future__ import annotations

import abc
from typing import Callable, Sequence

from ..io.base import Encoding, MaskReader
from ..model import Counts, RowRange

Progress = Callable[[int], None]


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
                   blocks: Sequence[RowRange], progress: Progress | None = None) -> Counts:
        """Sum of the counts of ``blocks``; ``progress(rows)`` is called as rows are done."""
