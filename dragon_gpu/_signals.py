"""SIGTERM handled as Ctrl-C is, so that a stopped command cleans up the same way.

Python's default SIGTERM ends the process at once: no ``finally`` runs, so the temporary files
of ``generate`` and ``convert`` would stay behind. While a command runs, SIGTERM instead raises
:class:`Terminated` in the main thread, a ``KeyboardInterrupt`` subclass: every cleanup written
for Ctrl-C (temporaries removed, reader and encoder threads joined, worker processes ended) runs
unchanged, and the CLI exits 143 (128 + 15) instead of 130. ``SIGXFSZ`` is ignored, so that
passing ``ulimit -f`` makes a write fail with ``EFBIG`` (one line, exit 2) instead of killing the
process and leaving its temporaries.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

EXIT_TERMINATED = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (raised where Ctrl-C raises ``KeyboardInterrupt``)."""


def _raise_terminated(signum, frame):
    # Once only: a second SIGTERM while the cleanup runs must not cut that cleanup short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated()


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` and SIGXFSZ is ignored.

    Outside the main thread (where Python cannot install handlers) nothing changes. The previous
    handlers are restored afterwards.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signal.SIGTERM: signal.signal(signal.SIGTERM, _raise_terminated)}
    if hasattr(signal, "SIGXFSZ"):
        saved[signal.SIGXFSZ] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
