"""Silencing converters that print progress and warnings of their own (torch.onnx, onnxsim, coremltools).

Their chatter would break ``--json`` output and bury our one-line messages. What they print is kept
and returned, so a failure can still show it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Iterator


@contextlib.contextmanager
def silenced() -> Iterator[io.StringIO]:
    """Capture stdout/stderr writes from Python code and mute warnings and logging inside the block."""
    buffer = io.StringIO()
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            warnings.simplefilter("ignore")
            yield buffer
    finally:
        logging.disable(previous)
