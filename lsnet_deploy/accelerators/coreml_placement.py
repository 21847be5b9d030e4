"""Apple Neural Engine placement of Core ML packages: what can be said off macOS.

Core ML decides per operation, on the device, whether the Neural Engine, the GPU or the CPU runs it; the
only tools that show the decision run on macOS (Xcode's performance report, ``MLComputePlan`` in Core ML
7+). Here the report lists the program's operations (coremltools reads the package on any OS) and says
what is known without a Mac: the Neural Engine computes in float16, so a float32 program
(``--float32``) runs on the GPU and CPU. Its verdict is never ``verified``.
"""

from __future__ import annotations

import collections
from pathlib import Path

from ..errors import UsageError, require
from .report import PlacementReport

#: MIL operations that only hold constants (not work any compute unit runs)
_CONSTANT_OPS = ("const",)
MACOS_NOTE = ("Neural Engine placement is decided by Core ML on the device: see it on macOS with Xcode's "
              "performance report or MLComputePlan")


def probe_neural_engine(path: Path, **options) -> PlacementReport:
    """What can be said here about a Core ML package's Neural Engine placement (``verified=False``).

    Raises:
        MissingDependencyError: coremltools is not installed.
        UsageError: the path is not an ML Program package.
    """
    ct = require("coremltools", "coreml", "to read Core ML packages")
    from importlib.metadata import version

    path = Path(path)
    try:
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as exc:
        raise UsageError(f"{path} is not a Core ML package coremltools can read: {str(exc).splitlines()[0]}") \
            from exc
    if spec.WhichOneof("Type") != "mlProgram" or "main" not in spec.mlProgram.functions:
        raise UsageError(f"{path} is not an ML Program (Core ML's neural-network models are not checked here)")
    from coremltools.proto import MIL_pb2

    float32_type = MIL_pb2.DataType.Value("FLOAT32")
    main = spec.mlProgram.functions["main"]
    operations = list(main.block_specializations[main.opset].operations)
    work = [op for op in operations if op.type not in _CONSTANT_OPS]
    types = collections.Counter(op.type for op in work)
    float32 = sum(1 for op in work if op.type != "cast"
                  and any(o.type.tensorType.dataType == float32_type for o in op.outputs))
    note = MACOS_NOTE
    if float32:
        note += (f"; {float32} of {len(work)} operations compute in float32, which the Neural Engine does not "
                 "(they run on the GPU or CPU)")
        if 2 * float32 > len(work):
            note += "; export without --float32 for a float16 program"
    return PlacementReport(accelerator="ane", tool="coremltools (program listing; placement needs macOS)",
                           tool_version=version("coremltools"), partitions=None, nodes_total=len(work),
                           nodes_on_accelerator=None, fallback_ops={}, verified=False,
                           note=note + f"; operations: {', '.join(f'{k} x{n}' for k, n in types.most_common(6))}")
