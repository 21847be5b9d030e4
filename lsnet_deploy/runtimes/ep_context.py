"""ONNX Runtime EPContext models: telling one from a portable ONNX graph, and what to say when one is opened
by a runtime that cannot run it.

An EPContext model holds a compiled binary for one execution provider in an ``EPContext`` node. This project
writes them for the Snapdragon NPU only (``--format qnn``, run by the ``qnn`` runtime, installed by the
``qnn`` extra), so both the plain ONNX Runtime runner and the QNN runner read this module, and neither
imports the other for it.
"""

from __future__ import annotations

import mmap
from pathlib import Path

#: the extra that installs the QNN execution provider (the ``qnn`` format's and runtime's)
QNN_EXTRA = "qnn"
#: an ONNX NodeProto's ``op_type`` field (number 4, length 9) holding ``EPContext``, as protobuf encodes it
_EPCONTEXT_OP_TYPE = b'"\tEPContext'


def is_context_model(path: str | Path) -> bool:
    """Whether an ONNX file is an EPContext model (a compiled context binary, not a portable graph).

    Scans the file's bytes for the protobuf encoding of an ``EPContext`` node type rather than parsing it
    (cheap even for a 30 MB file, and needs no ``onnx``).
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return False
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(_EPCONTEXT_OP_TYPE) >= 0


def context_model_message(path: str | Path) -> str:
    """The one line that says a file is a QNN EPContext model and how to run it."""
    return (f"{path} is a QNN EPContext model (compiled for the Snapdragon NPU, the Hexagon HTP), which only "
            f"ONNX Runtime's QNN execution provider runs: use --runtime qnn "
            f"(pip install \"lsnet-deploy[{QNN_EXTRA}]\")")
