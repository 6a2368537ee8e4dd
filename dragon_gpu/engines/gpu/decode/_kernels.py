"""The CUDA kernels of the decode path (a module of its own: the package and the decoding
engine both name them, and the engine module is imported by the package lazily)."""

#: the kernel sources of the decode path (``engines/gpu/kernels``).
DECODE_KERNEL_FILES = ("adler32.cu", "decode_filters.cu")
#: (file, kernel) for every kernel the decode path launches (``tools/check_nvrtc.py`` compiles
#: them all).
DECODE_KERNELS = (("decode_filters.cu", "reverse_bits"), ("decode_filters.cu", "undo_predictor"),
                  ("decode_filters.cu", "assemble_rows"), ("adler32.cu", "adler32_segments"))
