"""The goals of every benchmark script, in one table: the scripts print from it, docs/measurements.md's
goals table is generated from it (``python benchmarks/goals.py --markdown``) and a test checks the two agree.

A goal is a bound on one measured figure: a latency ratio from one interleaved run (medians, LSNet-T at 224,
batch 1, 2 threads unless the goal says otherwise), or a top-1 drop in points. ``issue`` names the issue
that set it.

Two earlier float32 goals were replaced by stricter ones of a later issue, under the same conditions
(batch 1, 2 threads, one interleaved run, MobileNetV3-Large as the peer): ExecuTorch <= 1.8 (issue 4, the
phone and GPU formats) became <= 1.40, and ONNX Runtime <= 1.40 (issue 3, the ONNX export) became <= 1.30,
both in issue 15 (float32 profiles and speed). The later goal is the one kept: it is what issue 15
was resolved against, and meeting it meets the older one.

``qnn_goals.py`` and ``arm_accuracy.py`` read their accuracy goals from here by precision, through
``accuracy_limits(script)`` (``{"float16": 0.5, "int8": 1.0}``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass


@dataclass(frozen=True)
class Goal:
    """One goal: ``measure`` (the figure, as the script prints it) must be at most ``limit``.

    Attributes:
        key: the name scripts look the goal up by.
        script: the benchmark script that measures it (file name in benchmarks/).
        runtime: where it is measured.
        measure: what the figure is (a ratio of medians, or a top-1 drop in points).
        limit: the bound (``measure <= limit`` meets the goal).
        issue: the issue that set the goal.
        precision: for accuracy goals, the artifact precision the limit applies to (None for speed goals).
    """

    key: str
    script: str
    runtime: str
    measure: str
    limit: float
    issue: int
    precision: str | None = None

    def verdict(self, value: float) -> str:
        """``"goal <= 0.75: met"`` or ``"... MISSED"`` for a measured ``value``."""
        return f"goal <= {self.limit:g}: {'met' if value <= self.limit else 'MISSED'}"


GOALS: tuple[Goal, ...] = (
    # float32 speed, LSNet-T default export
    Goal("onnx.default_vs_naive", "bench_onnx.py", "ONNX Runtime CPU, spinning off",
         "default export / `--ska reference --no-fuse` export", 0.75, 3),
    Goal("onnx.vs_mobilenetv3", "bench_onnx.py", "ONNX Runtime CPU, spinning off",
         "default export / MobileNetV3-Large", 1.30, 15),
    Goal("executorch.vs_mobilenetv3", "bench_executorch.py", "ExecuTorch XNNPACK",
         "default export / MobileNetV3-Large", 1.40, 15),
    Goal("litert.vs_mobilenetv3", "bench_litert.py", "LiteRT XNNPACK",
         "default export / MobileNetV3-Large", 1.45, 11),
    # int8 speed
    Goal("onnx.int8_vs_float32", "bench_onnx_int8.py", "ONNX Runtime CPU, spinning off",
         "int8 / float32 (both default exports)", 0.55, 10),
    Goal("onnx.int8_vs_mobilenetv3_int8", "bench_onnx_int8.py", "ONNX Runtime CPU, spinning off",
         "int8 / MobileNetV3-Large int8", 1.0, 10),
    Goal("executorch.int8_vs_float32", "bench_executorch.py", "ExecuTorch XNNPACK",
         "int8 / float32 (both default exports)", 0.60, 10),
    Goal("executorch.int8_vs_mobilenetv3_int8", "bench_executorch.py", "ExecuTorch XNNPACK",
         "int8 / MobileNetV3-Large int8", 1.5, 10),
    Goal("litert.int8_vs_float32", "bench_litert.py", "LiteRT XNNPACK",
         "int8 / float32 (both default exports)", 0.5, 11),
    Goal("litert.int8_vs_mobilenetv4_int8", "bench_litert.py", "LiteRT XNNPACK",
         "int8 / MobileNetV4-Conv-Small int8", 2.5, 11),
    # preprocessing must not dominate
    Goal("preprocess.vs_inference", "bench_preprocess.py", "ONNX Runtime CPU",
         "preprocessing / inference, per picture (\"must not dominate\")", 1.0, 6),
    # accuracy on accelerators and ARM (top-1 drop from PyTorch float32, points)
    Goal("qnn.float16_drop", "qnn_goals.py", "QNN HTP (x86 emulator)", "top-1 drop from PyTorch float32, points",
         0.5, 22, "float16"),
    Goal("qnn.int8_drop", "qnn_goals.py", "QNN HTP (x86 emulator)", "top-1 drop from PyTorch float32, points",
         1.0, 22, "int8"),
    Goal("arm.float32_drop", "arm_accuracy.py", "ARM runtimes", "top-1 drop from PyTorch float32, points",
         0.5, 26, "float32"),
    Goal("arm.float16_drop", "arm_accuracy.py", "ARM runtimes", "top-1 drop from PyTorch float32, points",
         0.5, 26, "float16"),
    Goal("arm.int8_drop", "arm_accuracy.py", "ARM runtimes", "top-1 drop from PyTorch float32, points",
         1.0, 26, "int8"),
)

_BY_KEY = {goal.key: goal for goal in GOALS}


def goal(key: str) -> Goal:
    """The goal named ``key``.

    Raises:
        KeyError: no such goal (the message lists them).
    """
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"no goal {key!r}; goals: {', '.join(_BY_KEY)}") from None


def report(key: str, value: float) -> str:
    """One printed line: the goal's measure, the value and the verdict."""
    found = goal(key)
    return f"{found.measure:55s} {value:6.2f}   ({found.verdict(value)})"


def accuracy_limits(script: str) -> dict[str, float]:
    """``{precision: limit}`` of a script's accuracy goals (the form qnn_goals.py and arm_accuracy.py use)."""
    return {g.precision: g.limit for g in GOALS if g.script == script and g.precision is not None}


def markdown_table() -> str:
    """The goals as the markdown table docs/measurements.md carries (between its ``goals`` markers)."""
    lines = ["| script | runtime | figure | goal | set by |", "|---|---|---|---|---|"]
    for g in GOALS:
        figure = g.measure + (f" ({g.precision})" if g.precision else "")
        lines.append(f"| `benchmarks/{g.script}` | {g.runtime} | {figure} | <= {g.limit:g} | issue {g.issue} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print docs/measurements.md's goals table")
    args = parser.parse_args()
    if args.markdown:
        print(markdown_table())
    else:
        for g in GOALS:
            print(f"{g.key:40s} <= {g.limit:<5g} {g.script}: {g.measure}")


if __name__ == "__main__":
    main()
