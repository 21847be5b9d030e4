"""Where LSNet-T's time goes on ONNX Runtime (CPU, spinning off), operator by operator and stage by
stage, beside MobileNetV3-Large.

Each model runs in a session with ``enable_profiling`` (the JSON trace of every kernel) and
``optimized_model_filepath`` (the graph after ONNX Runtime's fusions and its blocked-layout pass, which is
what the trace's node names refer to). A node's stage is read from the ``pkg.torch.onnx.name_scopes``
metadata the dynamo exporter writes (the top-level module it came from); nodes ONNX Runtime adds
(``ReorderInput``/``ReorderOutput`` layout changes, fused nodes under new names) take the stage of the
tensors they read or write. FLOPs (2 per multiply-add of Conv, Gemm and MatMul) come from the original
graph with inferred shapes.

Usage: python benchmarks/profile_onnx.py [--peers DIR] [--iters 100] [--threads 2] [--batch 1] [--workdir DIR]
       [--model NAME=PATH ...]
"""

from __future__ import annotations

import argparse
import ast
import collections
import copy
import json
from pathlib import Path

import numpy as np
import onnx
from onnx import shape_inference

from cached_export import cached_export
from interleave import add_workdir_argument, workdir_of
from peers import add_peers_argument, peer_artifacts
from profile_common import print_table

from lsnet_deploy.exporters import ExportOptions

#: ONNX Runtime operators that only move data between layouts
LAYOUT_OPS = ("ReorderInput", "ReorderOutput", "Transpose", "Reshape", "Concat", "Slice", "Split", "Pad")
#: lsnet_t's non-empty stages (blocks1 has depth 0)
LSNET_T_STAGES = ["patch_embed", "blocks2", "blocks3", "blocks4", "head"]
MOBILENET_STAGES = {"conv_stem": "stem", "bn1": "stem", "conv_head": "head", "global_pool": "head",
                    "norm_head": "head", "act2": "head", "flatten": "head", "classifier": "head"}


def node_stage(node: onnx.NodeProto) -> str | None:
    """The top-level module a node came from (``blocks.3`` for timm's blocks), from the exporter's scopes."""
    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
    if scopes is None:
        return None
    names = [s for s in ast.literal_eval(scopes) if s]
    if not names:
        return None
    top = names[0]
    if top == "blocks" and len(names) > 1:  # timm: blocks.0 .. blocks.6
        top = names[1]
    return MOBILENET_STAGES.get(top, top)


def _is_strided_depthwise(node: onnx.NodeProto) -> bool:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    return node.op_type == "Conv" and attrs.get("group", 1) > 1 and list(attrs.get("strides", [1])) == [2, 2]


def lsnet_walk_stages(model: onnx.ModelProto, stages: list[str]) -> list[str]:
    """Stages of an LSNet graph whose scopes were lost (onnxsim drops node metadata), from its structure:
    the graph is one chain of stages in topological order; each stage after ``patch_embed`` opens with
    a stride-2 depthwise convolution, and ``head`` opens at the last global pooling."""
    nodes = list(model.graph.node)
    pools = [i for i, n in enumerate(nodes) if n.op_type in ("GlobalAveragePool", "ReduceMean")]
    head_start = pools[-1] if pools else len(nodes)
    index, out = 0, []
    for i, node in enumerate(nodes):
        if i >= head_start:
            out.append("head")
            continue
        if _is_strided_depthwise(node) and index + 1 < len(stages) - 1:
            index += 1
        out.append(stages[index])
    return out


def tensor_stages(model: onnx.ModelProto, lsnet_stages: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Stage of every node name and of every tensor an original node writes. Scoped graphs use the
    exporter's scopes (unscoped nodes, such as the pooling torch exports outside any module, take the
    stage of the tensor they read); graphs without scopes are walked as LSNet (``lsnet_walk_stages``)."""
    scoped = any(node_stage(n) for n in model.graph.node)
    walked = None if scoped else lsnet_walk_stages(model, lsnet_stages)
    by_node, by_tensor = {}, {}
    for i, node in enumerate(model.graph.node):
        if walked is not None:
            stage = walked[i]
        else:
            stage = node_stage(node) or next((by_tensor[t] for t in node.input if t in by_tensor), "head")
        by_node[node.name] = stage
        for out in node.output:
            by_tensor[out] = stage
    return by_node, by_tensor


def node_flops(model: onnx.ModelProto) -> dict[str, int]:
    """FLOPs (2 per multiply-add) of each Conv, Gemm and MatMul node at batch 1, from inferred shapes."""
    model = copy.deepcopy(model)
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1  # a dynamic batch counted at 1
    del model.graph.value_info[:]
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
        shapes[info.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    out = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        sizes = [shapes.get(n) for n in (*node.input[:2], node.output[0])]
        if any(s is None or None in s for s in sizes):
            continue
        a, b, y = sizes
        if node.op_type == "Conv":
            out[node.name] = 2 * int(np.prod(y)) * int(np.prod(b[1:]))  # every output reads Cin/groups * kh * kw
        elif node.op_type in ("Gemm", "MatMul"):
            out[node.name] = 2 * int(np.prod(y)) * a[-1]
    return out


def profile(path: Path, batch: int, iters: int, threads: int, workdir: Path) -> dict:
    """Run ``path`` with ONNX Runtime's profiler; returns per-node times and the optimized graph."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    options.enable_profiling = True
    options.profile_file_prefix = str(workdir / f"{path.stem}_profile")
    optimized = workdir / f"{path.stem}.optimized.onnx"
    options.optimized_model_filepath = str(optimized)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: np.random.default_rng(0).standard_normal((batch, 3, 224, 224),
                                                                                  dtype=np.float32)}
    for _ in range(iters):
        session.run(None, feed)
    trace = json.loads(Path(session.end_profiling()).read_text())
    times = collections.defaultdict(list)
    runs = []
    for event in trace:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            times[event["name"][: -len("_kernel_time")]].append((event["args"]["op_name"], event["dur"]))
        elif event.get("cat") == "Session" and event["name"] == "model_run":
            runs.append(event["dur"])
    nodes = {name: (vals[0][0], float(np.median([d for _, d in vals[1:] or vals])) / 1e3)
             for name, vals in times.items()}
    return {"nodes": nodes, "run_ms": float(np.median(runs[1:] or runs)) / 1e3, "optimized": onnx.load(str(optimized))}


def optimized_stages(optimized: onnx.ModelProto, by_node: dict[str, str], by_tensor: dict[str, str]) -> dict[str, str]:
    """Stage of every node of the optimized graph (by its own name, else the tensors it reads or writes)."""
    stages = {}
    for node in optimized.graph.node:
        # ONNX Runtime's blocked-layout nodes are named after the original tensor they compute
        plain = node.name.removesuffix("_nchwc")
        stage = by_node.get(node.name) or by_tensor.get(plain) or by_node.get(plain)
        if stage is None:
            stage = next((by_tensor[t] for t in (*node.output, *node.input) if t in by_tensor), None)
        if stage is None:  # a node between two ONNX Runtime-made tensors: look one hop back
            stage = next((stages[n.name] for n in optimized.graph.node if stages.get(n.name)
                          and set(n.output) & set(node.input)), "other")
        stages[node.name] = stage
        for out in node.output:
            by_tensor.setdefault(out, stage)
    return stages


def report(name: str, path: Path, args, workdir: Path) -> float:
    original = onnx.load(str(path))
    by_node, by_tensor = tensor_stages(original, LSNET_T_STAGES)
    flops = node_flops(original)
    result = profile(path, args.batch, args.iters, args.threads, workdir)
    stages = optimized_stages(result["optimized"], by_node, by_tensor)
    per_type, per_stage = collections.defaultdict(lambda: [0, 0.0]), collections.defaultdict(lambda: [0, 0.0, 0.0, 0])
    for node, (op, ms) in result["nodes"].items():
        per_type[op][0] += 1
        per_type[op][1] += ms
        stage = per_stage[stages.get(node, "other")]
        stage[0] += 1
        stage[1] += ms
        if op in LAYOUT_OPS:
            stage[2] += ms
            stage[3] += 1
    stage_flops = collections.Counter()
    for node, f in flops.items():
        stage_flops[by_node.get(node, "other")] += f * args.batch
    node_ms = sum(ms for _, ms in result["nodes"].values())
    rows = [(op, n, ms, f"{100 * ms / node_ms:.1f}%") for op, (n, ms) in sorted(per_type.items(), key=lambda kv: -kv[1][1])]
    rows.append(("between operators", "", result["run_ms"] - node_ms, ""))
    rows.append(("run (median)", sum(n for n, _ in per_type.values()), result["run_ms"], ""))
    print_table(("operator", "count", "ms", "share of node time"), rows,
                f"{name}: ONNX Runtime CPU, {args.threads} threads, spinning off, batch {args.batch}, per operator type")
    order = list(dict.fromkeys(by_node.values()))
    rows = [(stage, per_stage[stage][0], per_stage[stage][1], per_stage[stage][2], per_stage[stage][3],
             stage_flops[stage] / 1e9, stage_flops[stage] / 1e6 / per_stage[stage][1] if per_stage[stage][1] else 0.0)
            for stage in order + [s for s in per_stage if s not in order]]
    print_table(("stage", "nodes", "ms", "layout ms", "layout nodes", "GFLOP", "GFLOP/s"), rows, f"{name}: per stage")
    total_flops = sum(stage_flops.values())
    print(f"  {total_flops / 1e9:.3f} GFLOP, {total_flops / 1e6 / result['run_ms']:.1f} GFLOP/s over the run; "
          f"optimized graph: {len(result['optimized'].graph.node)} nodes")
    return result["run_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    add_workdir_argument(parser)
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH", help="more .onnx files")
    add_peers_argument(parser)
    args = parser.parse_args()
    with workdir_of(args) as workdir:
        # a static batch, as the default export has: ONNX Runtime blocks the residual Sums only when it
        # can see that both inputs have one shape
        default = cached_export(workdir, "onnx", ExportOptions(validate=False, batch=args.batch))
        models = {"lsnet_t": default, **dict(m.split("=", 1) for m in args.model)}
        if args.batch == 1:  # the peer files are batch 1
            models.update(peer_artifacts(args.peers, ".onnx"))
        runs = {name: report(name, Path(path), args, workdir) for name, path in models.items()}
        if "mobilenetv3_large_100" in runs:
            print(f"\nrun lsnet_t / mobilenetv3_large_100 (profiled, not interleaved): "
                  f"{runs['lsnet_t'] / runs['mobilenetv3_large_100']:.2f}")


if __name__ == "__main__":
    main()
