"""LZ4 inflate through NVIDIA DALI (``--gpu-decoder dali``), as an alternative to nvCOMP.

DALI's GPU decoders cover JPEG, JPEG 2000 and LZ4 (``fn.decoders.inflate``); its TIFF decoding
runs on the CPU. So DALI's role here is the HDF5 LZ4 filter: a pipeline whose
``external_source`` feeds one sample per LZ4 block of a row block (the compressed bytes, already
on the device) and its decoded size, ``fn.decoders.inflate`` inflates the batch on the GPU, and
each output is handed to CuPy without a copy through ``__cuda_array_interface__`` and placed in
the block's decoded buffer on the caller's stream.

The pipeline is built lazily (DALI imports and builds only when ``--gpu-decoder dali`` runs).
"""

from __future__ import annotations

import numpy as np

from ....errors import GpuUnavailableError


def load_dali():
    """``(nvidia.dali.fn, nvidia.dali.pipeline_def, nvidia.dali.types)``, or
    :class:`GpuUnavailableError` saying how to get DALI."""
    try:
        from nvidia.dali import fn, pipeline_def, types
    except ImportError as exc:
        raise GpuUnavailableError(
            f"NVIDIA DALI is not installed ({exc}); pip install 'dragon-gpu[dali]'") from None
    return fn, pipeline_def, types


def inflate_graph(fn, types, samples, shapes):
    """The DALI graph: LZ4 samples inflated on the GPU.

    ``samples`` and ``shapes`` are the external source callbacks; each call returns one batch:
    a list of 1-D uint8 device arrays (compressed LZ4 blocks, fed without a copy) and a list of
    1-element int32 host arrays (their decoded sizes; an argument input, so on the CPU). Kept
    apart from :class:`DaliLz4Decoder` so the graph can be built wherever DALI imports.
    """
    compressed = fn.external_source(source=samples, device="gpu", batch=True, no_copy=True,
                                    name="compressed")
    sizes = fn.external_source(source=shapes, device="cpu", batch=True, name="sizes")
    return fn.decoders.inflate(compressed, shape=sizes, algorithm="LZ4", dtype=types.UINT8)


class DaliLz4Decoder:
    """Inflates batches of LZ4 blocks with one DALI pipeline per device.

    Parameters
    ----------
    device : int
        CUDA device ordinal.
    max_batch : int
        Most LZ4 blocks of one row block (the pipeline's batch size).
    """

    codec = "lz4"

    def __init__(self, device: int, max_batch: int):
        fn, pipeline_def, types = load_dali()
        self._samples: list = []
        self._shapes: list = []
        self.device = device
        self.max_batch = max(1, int(max_batch))

        @pipeline_def(batch_size=self.max_batch, num_threads=1, device_id=int(device),
                      prefetch_queue_depth=1)
        def pipe():
            return inflate_graph(fn, types, lambda: self._samples.pop(0),
                                 lambda: self._shapes.pop(0))

        self._pipe = pipe()
        self._pipe.build()

    def decode(self, comp, comp_at, comp_size, out, dec_at, dec_size):
        """Inflate every entry into ``out`` (device arrays as for nvCOMP); returns the sizes.

        Entries go through the pipeline ``max_batch`` at a time. DALI runs on its own stream and
        its outputs are ready when ``run`` returns; each is copied into ``out`` on the current
        CuPy stream before the pipeline runs again and may reuse its memory.
        """
        import cupy

        sizes: list[int] = []
        for lo in range(0, len(comp_at), self.max_batch):
            part = slice(lo, lo + self.max_batch)
            samples = [comp[int(a):int(a) + int(n)]
                       for a, n in zip(comp_at[part], comp_size[part])]
            shapes = [np.array([int(n)], dtype=np.int32) for n in dec_size[part]]
            self._samples.append(samples)
            self._shapes.append(shapes)
            (decoded,) = self._pipe.run()
            for i, (at, n) in enumerate(zip(dec_at[part], dec_size[part])):
                view = cupy.asarray(decoded[i]).reshape(-1)  # zero-copy: __cuda_array_interface__
                sizes.append(int(view.nbytes))
                keep = min(int(n), int(view.nbytes))
                out[int(at):int(at) + keep] = view[:keep]
            cupy.cuda.get_current_stream().synchronize()  # before the next run reuses outputs
        return sizes

    @staticmethod
    def decoded_sizes(handle) -> list[int]:
        return list(handle)
