"""Ask Qualcomm's HTP compiler (through ONNX Runtime's QNN EP) where an ONNX model's operators run.

The model is compiled for the SoC's HTP with CPU fallback allowed and ONNX Runtime's record of which EP
took each node (``session.record_ep_graph_assignment_info``, ``get_provider_graph_assignment_info``):
each subgraph the QNN EP took is one HTP partition, every node left to the CPU EP falls back. The node
counts are those ONNX Runtime partitions (after it inlines ONNX functions), so they can exceed the
graph's top-level node count. An EPContext model (``--format qnn``) is one node: the compiled binary.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..errors import RuntimeUnavailableError, first_line
from ..runtimes.qnn_runner import EP_NAME, qnn_session, qnn_session_options
from .qnn_socs import get_soc
from .report import PlacementReport

ACCELERATOR = "htp"
CPU_EP = "CPUExecutionProvider"


def probe_qnn_htp(path: Path, soc: str | None = None, **_options) -> PlacementReport:
    """Where the operators of the ONNX model at ``path`` run on a Snapdragon HTP.

    Args:
        path: an ONNX file (plain, or a QNN EPContext model).
        soc: the SoC to compile for (``SM8650``...; default ``qnn_socs.DEFAULT_SOC``).

    Returns:
        The placement: HTP partitions, nodes on the HTP, the operator types left to the CPU.

    Raises:
        UsageError: an unknown SoC.
        MissingDependencyError: the ``qnn`` extra is not installed.
        RuntimeUnavailableError: the QNN EP cannot compile the model at all.
    """
    import onnxruntime_qnn

    target = get_soc(soc)
    options = qnn_session_options(target, allow_fallback=True, record_assignment=True)
    try:
        session = qnn_session(Path(path), options)
    except Exception as exc:  # onnxruntime's own Fail/EPFail types
        raise RuntimeUnavailableError(f"the QNN HTP compiler ({target.name}, {target.arch}) cannot take "
                                      f"{path}: {first_line(exc)}") from None
    partitions, on_htp, fallback = 0, 0, Counter()
    for subgraph in session.get_provider_graph_assignment_info():
        nodes = subgraph.get_nodes()
        if subgraph.ep_name == EP_NAME:
            partitions += 1
            on_htp += len(nodes)
        else:
            fallback.update(node.op_type for node in nodes)
    note = ("" if not fallback else
            f"{sum(fallback.values())} node(s) run on the CPU between {partitions} HTP partition(s): each "
            "crossing copies activations between the NPU and the CPU")
    return PlacementReport(accelerator=ACCELERATOR,
                           tool=f"onnxruntime-qnn QNN HTP compiler ({target.name}, {target.arch})",
                           tool_version=onnxruntime_qnn.__version__, partitions=partitions,
                           nodes_total=on_htp + sum(fallback.values()), nodes_on_accelerator=on_htp,
                           fallback_ops=dict(fallback), note=note)
