"""XNNPACK and Vulkan placement of ExecuTorch programs (``.pte``), read from the program itself.

An ExecuTorch program's ``forward`` is a list of instructions: a *delegate call* hands a whole subgraph to
a backend (XNNPACK on the CPU, Vulkan on the GPU) that was compiled into the file at export; a *kernel
call* runs one operator on ExecuTorch's portable CPU kernels. What the program runs on an accelerator is
therefore written in the file: one delegate call of that backend and no kernel calls means the whole model
runs there. The operators inside a delegate are in the backend's own opaque payload, so the report counts
delegate calls and the operators outside them (the export's ``details`` count the operators inside).
"""

from __future__ import annotations

import collections
from pathlib import Path

from ..errors import UsageError, require
from .report import PlacementReport

#: accelerator name -> the backend id ExecuTorch records in the program
BACKENDS = {"xnnpack": "XnnpackBackend", "vulkan": "VulkanBackend"}
#: the method apps call (the metadata method is a constant, not a computation)
METHOD = "forward"


def probe_xnnpack(path: Path, **options) -> PlacementReport:
    """XNNPACK delegation of a ``.pte`` program's ``forward``.

    Raises:
        MissingDependencyError: executorch is not installed.
        UsageError: the file is not an ExecuTorch program.
    """
    return _probe(Path(path), "xnnpack")


def probe_vulkan(path: Path, **options) -> PlacementReport:
    """Vulkan delegation of a ``.pte`` program's ``forward``.

    Raises:
        MissingDependencyError: executorch is not installed.
        UsageError: the file is not an ExecuTorch program.
    """
    return _probe(Path(path), "vulkan")


def program_calls(path: Path) -> tuple[collections.Counter, collections.Counter]:
    """What ``forward`` runs: (backend id -> delegate calls, operator name -> kernel calls outside any delegate).

    Raises:
        UsageError: the file is not an ExecuTorch program, or has no ``forward``.
    """
    require("executorch.exir", "executorch", "to read ExecuTorch programs")
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        program = deserialize_pte_binary(path.read_bytes())
    except Exception as exc:
        raise UsageError(f"{path} is not an ExecuTorch program: {str(exc).splitlines()[0] if str(exc) else exc}") \
            from exc
    program = getattr(program, "program", program)
    plan = next((p for p in program.execution_plan if p.name == METHOD), None)
    if plan is None:
        raise UsageError(f"{path} has no {METHOD!r} method")
    delegates, kernels = collections.Counter(), collections.Counter()
    for chain in plan.chains:
        for instruction in chain.instructions:
            kind = type(instruction.instr_args).__name__
            if kind == "DelegateCall":
                delegates[plan.delegates[instruction.instr_args.delegate_index].id] += 1
            elif kind == "KernelCall":
                operator = plan.operators[instruction.instr_args.op_index]
                kernels[operator.name + (f".{operator.overload}" if operator.overload else "")] += 1
    return delegates, kernels


def _probe(path: Path, accelerator: str) -> PlacementReport:
    from importlib.metadata import version

    backend = BACKENDS[accelerator]
    delegates, kernels = program_calls(path)
    others = {name: n for name, n in delegates.items() if name != backend}
    note = ""
    if not delegates.get(backend):
        lowered = ", ".join(f"{name} ({n} delegate call{'s' if n > 1 else ''})" for name, n in sorted(others.items()))
        note = (f"this program runs on {lowered or 'no delegate'}, not {backend}; export it with --accelerator "
                f"{accelerator}")
    elif others:
        note = "the rest runs on " + ", ".join(f"{name} ({n} delegate call{'s' if n > 1 else ''})"
                                              for name, n in sorted(others.items()))
    return PlacementReport(accelerator=accelerator, tool="ExecuTorch program (.pte delegate calls)",
                           tool_version=version("executorch"), partitions=delegates.get(backend, 0),
                           nodes_total=None, nodes_on_accelerator=None, fallback_ops=dict(kernels), note=note)
