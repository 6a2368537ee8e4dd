"""Batched inflate of a block's entries with nvCOMP's Python API (``nvidia-nvcomp-cu12/13`` 6.x).

The entries of a block lie in one device buffer of compressed bytes and decode into one device
buffer; :func:`nvcomp.as_arrays` carves both into batches by offset tables (no copies), and one
``Codec.decode`` call inflates the whole batch on the given CUDA stream. Streams are raw
(``BitstreamKind.RAW``): raw deflate bodies (the zlib header and trailer are handled by the
caller), Zstandard frames, LZ4 blocks. Decoded sizes are known from the file's layout, so the
decompression config is built from them and the call does not wait for the GPU (where nvCOMP
refuses that config, each call lets it parse the streams instead).
"""

from __future__ import annotations

import numpy as np

from ....errors import GpuUnavailableError
from ....io.codecs import CODECS

#: our codec name -> nvCOMP algorithm name (the codec table's GPU column).
ALGORITHMS = {c.name: c.nvcomp for c in CODECS if c.nvcomp is not None}


def load_nvcomp():
    """The ``nvidia.nvcomp`` module, or :class:`GpuUnavailableError` saying how to get it."""
    try:
        from nvidia import nvcomp
    except ImportError as exc:
        raise GpuUnavailableError(
            f"nvCOMP is not installed ({exc}); pip install 'dragon-gpu[gpu]'") from None
    return nvcomp


class BatchDecoder:
    """One codec on one device and stream; :meth:`decode` inflates a batch of entries.

    Parameters
    ----------
    codec : str
        ``"deflate"``, ``"zstd"`` or ``"lz4"``.
    device : int
        CUDA device ordinal.
    stream_ptr : int
        The CUDA stream (``cupy.cuda.Stream.ptr``) the decode runs on.
    """

    def __init__(self, codec: str, device: int, stream_ptr: int):
        self._nv = load_nvcomp()
        self.codec = codec
        self._stream = int(stream_ptr)
        self._preconfigured = True
        self._codec = self._nv.Codec(algorithm=ALGORITHMS[codec], device_id=int(device),
                                     cuda_stream=self._stream,
                                     bitstream_kind=self._nv.BitstreamKind.RAW)

    def decode(self, comp, comp_at: np.ndarray, comp_size: np.ndarray, out, dec_at: np.ndarray,
               dec_size: np.ndarray):
        """Queue the inflate of every entry; returns a handle for :meth:`decoded_sizes`.

        ``comp`` and ``out`` are device arrays (``__cuda_array_interface__``); entry ``i`` reads
        ``comp_size[i]`` bytes at ``comp_at[i]`` and writes ``dec_size[i]`` bytes at ``dec_at[i]``.
        """
        nv = self._nv
        sizes = [int(v) for v in dec_size]
        srcs = nv.as_arrays(comp, [int(v) for v in comp_at], [int(v) for v in comp_size],
                            cuda_stream=self._stream)
        outs = nv.as_arrays(out, [int(v) for v in dec_at], sizes, cuda_stream=self._stream)
        if self._preconfigured:
            try:
                config = self._codec.decompression_config(self._codec.compression_config(sizes))
                return self._codec.decode(srcs, out=outs, decompression_config=config)
            except Exception:
                # A build that cannot configure a RAW decode from sizes parses the streams
                # itself (one stream synchronisation a call); damage still fails below.
                self._preconfigured = False
        return self._codec.decode(srcs, out=outs)

    @staticmethod
    def decoded_sizes(handle) -> list[int]:
        """Bytes each entry decoded to (waits for the decode)."""
        return [int(v) for v in handle.buffer_sizes]
