"""Silencing converters that print progress and warnings of their own (torch.onnx, onnxsim, coremltools).

Their chatter would break ``--json`` output and bury our one-line messages. What they print is kept
and returned, so a failure can still show it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from typing import Callable, Iterator


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


#: third-party loggers whose warnings are known to be harmless for this tool: coremltools' untested-version
#: notices and its macOS-only native proxies, torchao's optional CUDA extensions, and a torch deprecation
#: notice torchao triggers. Their errors still show.
HARMLESS_WARNING_LOGGERS = ("coremltools", "torchao", "torch.utils._pytree")


def quiet_third_party_warnings() -> None:
    """Raise the known-chatty third-party loggers to ERROR (command-line tools call this at start).

    Library users keep their own logging configuration: only the console scripts call this.
    """
    for name in HARMLESS_WARNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def native_stderr_captured(replay_on_failure: bool = True) -> Iterator[Callable[[], str]]:
    """Capture what native code writes to file descriptor 2 inside the block (ExecuTorch's cpuinfo probe
    prints five lines from C++ the first time its threadpool starts; TensorFlow's and MLIR's logs during a
    LiteRT conversion); replay it if the block fails, unless the caller reports the failure itself. Yields a
    function that returns what was captured so far (for such a report)."""
    import os
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (some embedded interpreters): nothing to capture
        yield lambda: ""
        return
    with tempfile.TemporaryFile() as capture:
        def captured() -> str:
            capture.seek(0)
            return capture.read().decode(errors="replace")

        os.dup2(capture.fileno(), 2)
        failed = False
        try:
            yield captured
        except BaseException:
            failed = True
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            if failed and replay_on_failure:
                sys.stderr.write(captured())
