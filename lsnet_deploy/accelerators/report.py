"""What an accelerator's own tool says about one artifact: where each operator runs.

One ``PlacementReport`` per (artifact, accelerator), whatever the tool behind it (Qualcomm's HTP compiler
through ONNX Runtime's QNN EP, ONNX Runtime's mobile checker for NNAPI and Core ML, LiteRT's analyzer for
its GPU delegate, ExecuTorch's partitioners). ``lsnet-export --accelerator`` gates on it, ``lsnet-inspect``
prints it and ``--json`` carries ``to_dict()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PlacementReport:
    """Where one artifact's operators run on one accelerator, as the accelerator's own tool reported it.

    Attributes:
        accelerator: the accelerator's name (``htp``, ``nnapi``, ``coreml``, ``gpu``, ``vulkan``, ``xnnpack``).
        tool: what answered, e.g. ``onnxruntime-qnn (QNN HTP compiler, v75 emulated)``.
        tool_version: that tool's version string.
        partitions: subgraphs the accelerator takes (1 = the whole model in one piece); None if unknown.
        nodes_total: operators in the artifact's graph; None if the tool does not count them.
        nodes_on_accelerator: operators the accelerator takes; None if unknown.
        fallback_ops: operator type -> count of the operators left to the CPU (empty when whole).
        verified: False when the verdict is reasoned rather than produced by the tool on this machine
            (e.g. Core ML's Neural Engine placement, which needs macOS); ``note`` says why.
        note: one line a user should read (what could not be checked, what the fallback costs).
    """

    accelerator: str
    tool: str
    tool_version: str
    partitions: int | None
    nodes_total: int | None
    nodes_on_accelerator: int | None
    fallback_ops: dict[str, int] = field(default_factory=dict)
    verified: bool = True
    note: str = ""

    @property
    def whole(self) -> bool:
        """The accelerator takes the whole model in one partition, nothing left to the CPU."""
        return self.partitions == 1 and not self.fallback_ops

    def fallback_summary(self) -> str:
        """``"Pad x3, InstanceNormalization x2"``, or ``"none"``."""
        if not self.fallback_ops:
            return "none"
        return ", ".join(f"{op} x{n}" for op, n in sorted(self.fallback_ops.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self) -> str:
        """One line for the export summary and ``lsnet-inspect``."""
        where = ("whole model" if self.whole else "partitions unknown" if self.partitions is None
                 else f"{self.partitions} partition(s)")
        counted = (f", {self.nodes_on_accelerator}/{self.nodes_total} nodes"
                   if self.nodes_total is not None and self.nodes_on_accelerator is not None else "")
        text = f"{self.accelerator}: {where}{counted}; falls back: {self.fallback_summary()} [{self.tool} {self.tool_version}]"
        if not self.verified:
            text += " (not verified here)"
        return text + (f"; {self.note}" if self.note else "")

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"accelerator": self.accelerator, "tool": self.tool, "tool_version": self.tool_version,
                "partitions": self.partitions, "nodes_total": self.nodes_total,
                "nodes_on_accelerator": self.nodes_on_accelerator, "fallback_ops": dict(self.fallback_ops),
                "whole": self.whole, "verified": self.verified, "note": self.note}
