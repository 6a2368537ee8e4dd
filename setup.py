"""The one part of the build that pyproject.toml cannot declare yet (setuptools' own table for
it is experimental): the CPU engine's one-pass counting kernel (dragon_gpu/engines/native.py).

It is compiled when a C compiler and the Python headers are present. ``optional=True``: where
they are not, the install goes on without it and NumPy counts, exactly and more slowly.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("dragon_gpu.engines._cpu_count", ["dragon_gpu/engines/_cpu_count.c"],
                             extra_compile_args=["-O3"], optional=True)])
