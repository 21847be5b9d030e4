"""``lsnet-bench``: latency of artifacts and models on every runtime, comparable and kept.

Two commands::

    lsnet-bench [run] ARTIFACT... [--model NAME] [options]   measure (``run`` may be left out)
    lsnet-bench report FILE... [--baseline ...] [--plot F]   tables and charts from results files

``lsnet-bench A B`` is ``lsnet-bench run A B``: anything that is not ``run``, ``report`` or a help flag
in first position starts a run. A file literally named ``report`` is benchmarked with
``lsnet-bench run report`` (or ``./report``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..accuracy import CLASS_MAP_HELP, class_folders, parse_class_map
from ..atomic import ensure_writable
from ..bench.phone import AdbRemoteTarget, PhoneOptions, PhoneTarget
from ..bench.phone_tools import parse_tool_options
from ..bench.plan import PAPER_PROTOCOL, PROTOCOLS, BenchPlan, CandidateSpec
from ..bench.plot import plot_latency
from ..bench.report import build_report, render_markdown, render_text
from ..bench.results import append_records, read_records
from ..bench.targets import DEFAULT_REMOTE_CACHE, target_for
from ..bench.timing import TimingPolicy
from ..errors import UsageError
from ..quiet import quiet_third_party_warnings
from ..runtimes import artifact_suffixes, canonical_runtime, get_runtime, runtime_for_path, runtimes
from .common import JsonParseErrors, cli_errors, err, json_errors, parse_imgsz, whole_command

PROG = "lsnet-bench"
COMMANDS = ("run", "report")
DEFAULT_OUTPUT = Path("lsnet-bench.jsonl")

_TITLES = [cls.title for cls in runtimes().values()]
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
                  help=f"Benchmark LSNet artifacts and models on {', '.join(_TITLES[:-1])} and {_TITLES[-1]} "
                       "with one clock, and compare the results. `lsnet-bench FILE...` is short for "
                       "`lsnet-bench run FILE...`.")


def _runtime_names() -> str:
    """``torch (pytorch), ort (onnxruntime, onnx), ...``: each runtime with its aliases."""
    return ", ".join(name + (f" ({', '.join(cls.aliases)})" if cls.aliases else "")
                     for name, cls in runtimes().items())


RUNTIME_HELP = (f"Runtime: {_runtime_names()}. For artifacts it overrides the one chosen from the suffix; with "
                "--model a comma list (torch,ort) times the model on each, exporting it on the fly for runtimes "
                "other than torch (default torch).")
ARTIFACTS_HELP = f"Artifact files ({', '.join(artifact_suffixes())}), timed interleaved; ratios are against the first."
PROTOCOL_HELP = ("latency (default): this tool's method. paper: the reference code's throughput method "
                 "(fused float32 model on a CUDA GPU, batch 2048, 5 s warm-up, at least 10 s timed, images/s "
                 "= batch / mean) to set numbers beside the published ones; options you pass override it and "
                 "are recorded.")


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _positive_ints(text: str | None, option: str) -> list[int] | None:
    if text is None:
        return None
    try:
        values = [int(v) for v in _split(text)]
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a number or a comma list of numbers") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"{option} must be positive integers, got {text!r}")
    return values


def _unique(labels: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label}#{seen[label]}")
    return out


def build_candidates(artifacts: list[Path], model: str | None, weights: str | None, runtime: str | None,
                     provider: str | None):
    """The candidates of a run, in command-line order (a --model first)."""
    def providers_of(rt: str) -> list[str | None]:
        return providers if get_runtime(rt).takes_provider else [None]

    asked = [canonical_runtime(r) for r in _split(runtime)]
    providers = _split(provider) or [None]
    specs: list[CandidateSpec] = []
    if model or weights:
        name = model or Path(weights).stem
        for rt in asked or ["torch"]:
            for prov in providers_of(rt):
                label = name if len(asked) <= 1 else f"{name}:{rt}"
                label += f":{prov}" if prov and len(providers) > 1 else ""
                specs.append(CandidateSpec(label=label, runtime=rt, model=model, weights=weights, provider=prov,
                                           name=name))
    if artifacts and len(asked) > 1:
        raise UsageError("--runtime takes one value with artifact files (a list is for --model)")
    stems = [path.stem for path in artifacts]
    for path in artifacts:
        # m.int8.onnx and m.int8.pte share a stem: such artifacts are labelled by file name instead
        shown = path.stem if stems.count(path.stem) == 1 else path.name
        if not path.exists():
            raise UsageError(f"artifact {path} does not exist")
        rt = asked[0] if asked else runtime_for_path(path)
        if rt == "torch":
            raise UsageError(f"{path}: the torch runtime times PyTorch models; use --model/--weights instead")
        for prov in providers_of(rt):
            label = shown + (f":{prov}" if prov and len(providers) > 1 else "")
            specs.append(CandidateSpec(label=label, runtime=rt, path=str(path), provider=prov, name=path.stem))
    if provider and not any(s.provider for s in specs):
        takers = [cls.title for cls in runtimes().values() if cls.takes_provider]
        raise UsageError(f"--provider selects an execution provider of {' or '.join(takers)}, but none of the "
                         "candidates runs on it")
    if not specs:
        raise UsageError("nothing to benchmark: give artifact files, or --model NAME (and/or --weights PATH)")
    for spec, label in zip(specs, _unique([s.label for s in specs])):
        spec.label = label
    return specs


def build_plan(specs, *, device, batch, imgsz, threads, precision, ska, warmup, warmup_time, iters, min_time,
               protocol, spinning, keep_samples):
    """Turn command-line options into a BenchPlan (protocol defaults applied, overrides recorded)."""
    protocol = protocol.lower()
    if protocol not in PROTOCOLS:
        raise UsageError(f"--protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    batches = _positive_ints(batch, "--batch")
    size = parse_imgsz(imgsz)
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    if precision is not None and precision not in ("float32", "float16", "bfloat16"):
        raise UsageError(f"--precision {precision!r}: choose float32, float16 or bfloat16")
    if warmup is not None and warmup < 0:
        raise UsageError(f"--warmup cannot be negative, got {warmup}")
    if iters is not None and iters < 1:
        raise UsageError(f"--iters must be at least 1, got {iters}")
    for value, option in ((warmup_time, "--warmup-time"), (min_time, "--min-time")):
        if value is not None and value < 0:
            raise UsageError(f"{option} cannot be negative, got {value}")
    overrides: list[str] = []
    if protocol == "paper":
        paper = PAPER_PROTOCOL
        given = {"device": device, "batch": batches, "imgsz": size, "precision": precision,
                 "warmup": warmup, "warmup_time": warmup_time, "iters": iters, "min_time": min_time}
        overrides = [k for k, v in given.items() if v is not None]
        device = device or paper["device"]
        batches = batches or [paper["batch"]]
        if any(s.is_model for s in specs):  # artifacts keep their own size and precision
            size = size or paper["imgsz"]
            precision = precision or paper["precision"]
        base = paper["timing"]
        timing = TimingPolicy(warmup_iters=base.warmup_iters if warmup is None else warmup,
                              warmup_time=base.warmup_time if warmup_time is None else warmup_time,
                              min_iters=base.min_iters if iters is None else iters,
                              min_time=base.min_time if min_time is None else min_time)
    else:
        timing = TimingPolicy.from_options(iters=iters, min_time=min_time, warmup=warmup, warmup_time=warmup_time)
    return BenchPlan(candidates=specs, batches=batches, imgsz=size, device=device, threads=threads,
                     precision=precision, ska=ska, timing=timing, protocol=protocol, protocol_overrides=overrides,
                     spinning=spinning, keep_samples=keep_samples)


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value < 10 else f"{value:.2f}" if value < 100 else f"{value:.1f}"


def render_group(records: list[dict]) -> str:
    """The table printed after each measured group."""
    head = ["Candidate", "Runtime", "Device", "Batch", "Median ms", "Mean ms", "p90 ms", "p99 ms", "Min ms",
            "Std ms", "img/s", "N", "Ratio"]
    accuracy = any(r.get("accuracy") for r in records)
    if accuracy:
        head += ["Top-1 %", "Top-5 %", "Images", "Agree %"]
    rows = [head]
    for r in records:
        s = r["stats"]
        runtime = r["runtime"] + (f" {str(r['provider']).replace('ExecutionProvider', '').lower()}"
                                  if r.get("provider") else "") + (f" {r['threads']}t" if r.get("threads") else "")
        rows.append([r["label"], runtime, r["device"], str(r["batch"]), _fmt_ms(s["median_ms"]),
                     _fmt_ms(s["mean_ms"]), _fmt_ms(s["p90_ms"]), _fmt_ms(s["p99_ms"]), _fmt_ms(s["min_ms"]),
                     _fmt_ms(s["std_ms"]), f"{s['throughput']:.1f}" if s.get("throughput") is not None else "-",
                     str(s["n"]),
                     f"{r['ratio_to_first']:.2f}x" if r.get("ratio_to_first") is not None else "-"])
        if accuracy:
            a = r.get("accuracy") or {}
            rows[-1] += [f"{a['top1']:.2f}" if a else "-", f"{a['top5']:.2f}" if a else "-", str(a.get("count", "-")),
                         f"{a['agreement']:.2f}" if a.get("agreement") is not None else "-"]
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    first = records[0]
    where = first.get("target", "local")
    center = "median" if all(r["stats"].get("median_ms") is not None for r in records) else "mean"
    lines.append(f"Ratio: {center} / {center} of {first['first_label']} (interleaved in this run). "
                 f"{first.get('device_name')} on {first['machine'].get('hostname')}"
                 + ("" if where == "local" else f" via {where}") + ".")
    mapping = next((r["accuracy"]["classes"] for r in records if (r.get("accuracy") or {}).get("classes")), None)
    if mapping:
        lines.append(f"Classes on --data {mapping['summary']}.")
    notes = sorted({f"{r['label']}: {n}" for r in records for n in r.get("notes", [])})
    lines += [f"note: {n}" for n in notes]
    return "\n".join(lines)


@app.command("run", cls=JsonParseErrors)
def run_command(
    artifacts: Annotated[Optional[list[Path]], typer.Argument(help=ARTIFACTS_HELP,
                                                              show_default=False, metavar="ARTIFACT")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Time a PyTorch model (variant name, e.g. "
                                                 "lsnet_t); it comes first, so ratios are against it.")] = None,
    weights: Annotated[Optional[str], typer.Option("--weights", "-w", help="Checkpoint for --model (path or "
                                                   "hf-hub:ORG/REPO); without it the model is randomly initialized, "
                                                   "which does not change its latency.")] = None,
    runtime: Annotated[Optional[str], typer.Option("--runtime", "-r", help=RUNTIME_HELP)] = None,
    provider: Annotated[Optional[str], typer.Option("--provider", help="ONNX Runtime execution provider(s): cpu, "
                                                    "cuda, tensorrt, xnnpack, coreml, openvino or a full name; a "
                                                    "comma list times each.")] = None,
    device: Annotated[Optional[str], typer.Option("--device", "-d", help="cpu, cuda or cuda:N (default: cuda:0 for "
                                                  "trt, the GPU for torch when there is one, else cpu).")] = None,
    batch: Annotated[Optional[str], typer.Option("--batch", "-b", help="Batch size, or a comma list (one interleaved "
                                                 "group each). Default: the artifact's, else 1.")] = None,
    imgsz: Annotated[Optional[str], typer.Option("--imgsz", help="Input size for models and dynamic artifacts: 224 "
                                                 "or H,W.")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", "-t", help="Intra-op threads for every runtime "
                                                   "(default: each runtime's own).")] = None,
    precision: Annotated[Optional[str], typer.Option("--precision", help="float32, float16 or bfloat16 for "
                                                     "--model; for artifacts a check of what they hold.")] = None,
    ska: Annotated[str, typer.Option("--ska", help="SKA form for --model (auto: the fastest standard form).")] = "auto",
    warmup: Annotated[Optional[int], typer.Option("--warmup", help="Untimed iterations per candidate, at least "
                                                  "(default 10).")] = None,
    warmup_time: Annotated[Optional[float], typer.Option("--warmup-time", help="Seconds of untimed iterations per "
                                                         "candidate, at least (default 0.5).")] = None,
    iters: Annotated[Optional[int], typer.Option("--iters", "-n", help="Timed iterations per candidate (exact, "
                                                 "unless --min-time is also given).")] = None,
    min_time: Annotated[Optional[float], typer.Option("--min-time", help="Seconds of timed iterations per candidate, "
                                                      "at least; the count adapts (default 2, at least 10 "
                                                      "iterations).")] = None,
    protocol: Annotated[str, typer.Option("--protocol", help=PROTOCOL_HELP)] = "latency",
    spinning: Annotated[bool, typer.Option("--spinning", help="Let ONNX Runtime's idle threads spin (lower latency "
                                           "for one session; refused with several).")] = False,
    output: Annotated[Path, typer.Option("--output", "-o", help="JSON Lines file the results are appended to.")] = DEFAULT_OUTPUT,
    no_save: Annotated[bool, typer.Option("--no-save", help="Do not append the results to --output.")] = False,
    keep_samples: Annotated[bool, typer.Option("--keep-samples", help="Store every timed iteration in the results.")] = False,
    data: Annotated[Optional[Path], typer.Option("--data", help="ImageFolder of labelled pictures: also measure each "
                                                 "candidate's top-1/top-5 there, through its own runtime "
                                                 "(agreement with --weights when given).")] = None,
    data_limit: Annotated[Optional[int], typer.Option("--data-limit", help="Evaluate this many pictures of --data, "
                                                      "spread evenly (default: all).")] = None,
    class_map: Annotated[Optional[str], typer.Option("--class-map", help=CLASS_MAP_HELP)] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print each result as a JSON line on stdout instead "
                                              "of tables.")] = False,
    host: Annotated[Optional[str], typer.Option("--host", help="Run on another machine over ssh (user@host, an "
                                                "~/.ssh/config alias or ssh://user@host:port); artifacts are copied "
                                                "there if needed, results are kept here.")] = None,
    ssh_option: Annotated[Optional[list[str]], typer.Option("--ssh-option", help="Extra ssh -o option, Key=Value "
                                                            "(repeatable): Port=2222, IdentityFile=~/.ssh/jetson.")] = None,
    remote_python: Annotated[Optional[str], typer.Option("--remote-python", help="Python with lsnet-deploy on --host "
                                                         "(default python3) or on an --adb Linux device.")] = None,
    remote_cache: Annotated[Optional[str], typer.Option("--remote-cache", help="Where --host keeps copied artifacts "
                                                        "(default ~/.cache/lsnet-deploy/bench).")] = None,
    adb: Annotated[Optional[str], typer.Option("--adb", help="Run on an Android (or Linux) device over adb: `--adb` "
                                               "alone uses the only attached device, `--adb SERIAL` one of several. "
                                               "With --device-tool the runtimes' own tools time the artifacts; with "
                                               "--remote-python, lsnet-deploy on the device does.",
                                               metavar="[SERIAL]")] = None,
    device_tool: Annotated[Optional[list[str]], typer.Option("--device-tool", help="Benchmark tool for --adb, NAME=PATH "
                                                             "(benchmark_model, executor_runner or pte_runner, "
                                                             "onnxruntime_perf_test) or a folder holding them; "
                                                             "repeatable. Pushed once, cached by hash.")] = None,
    device_dir: Annotated[Optional[str], typer.Option("--device-dir", help="Work folder on the --adb device (default "
                                                      "/data/local/tmp/lsnet-bench, /tmp/lsnet-bench on Linux).")] = None,
    cores: Annotated[str, typer.Option("--cores", help="CPUs the --adb tools are pinned to (taskset): big (every "
                                       "cluster but the slowest), little, all, or a hex mask such as f0.")] = PhoneOptions.cores,
    rounds: Annotated[int, typer.Option("--rounds", help="Tool runs per candidate on --adb, interleaved A B, A B ...; "
                                        f"--iters (default {PhoneOptions.iters} there) and --warmup (default "
                                        f"{PhoneOptions.warmup}) apply to each.")] = PhoneOptions.rounds,
    cool_below: Annotated[float, typer.Option("--cool-below", help="Before each --adb round, wait until the hottest SoC "
                                              "thermal zone is at most this many C (0: do not wait).")] = PhoneOptions.cool_below_c,
    cool_timeout: Annotated[float, typer.Option("--cool-timeout", help="Longest wait for --cool-below, seconds (then "
                                                "the round runs and the timeout is recorded).")] = PhoneOptions.cool_timeout_s,
    no_interleave: Annotated[bool, typer.Option("--no-interleave", help="On --adb, run every round of one candidate "
                                                "before the next (default: interleaved).")] = False,
    max_cv: Annotated[float, typer.Option("--max-cv", help="Flag an --adb round whose std/mean exceeds this.")] = PhoneOptions.max_cv,
    tool_arg: Annotated[Optional[list[str]], typer.Option("--tool-arg", help="Extra argument for every --adb tool run "
                                                          "(repeatable), e.g. --tool-arg=-i --tool-arg='backend_type|htp'"
                                                          ".")] = None,
    device_env: Annotated[Optional[list[str]], typer.Option("--device-env", help="KEY=VALUE environment of the --adb "
                                                            "tools (repeatable), e.g. LD_LIBRARY_PATH=/data/local/tmp/"
                                                            "qnn.")] = None,
    tool_timeout: Annotated[float, typer.Option("--tool-timeout", help="Longest one --adb tool run may take, "
                                                "seconds.")] = PhoneOptions.tool_timeout_s,
) -> None:
    """Time artifacts and/or a PyTorch model, interleaved, and append the results to a JSON Lines file."""
    with cli_errors(PROG), json_errors(json_output):
        if ssh_option and not host:
            raise UsageError("--ssh-option is used only with --host")
        if data is not None and host:
            raise UsageError("--data is measured on this machine; drop --host, or run lsnet-bench --data on the host")
        phone_given = _phone_options_given(device_tool=device_tool, device_dir=device_dir, cores=cores, rounds=rounds,
                                           cool_below=cool_below, cool_timeout=cool_timeout,
                                           no_interleave=no_interleave, max_cv=max_cv, tool_arg=tool_arg,
                                           device_env=device_env, tool_timeout=tool_timeout)
        if adb is not None:
            if host:
                raise UsageError("--adb and --host are two ways to reach a device; give one")
            if data is not None:
                raise UsageError("--data is measured on this machine; drop --adb")
            if device_tool and remote_python:
                raise UsageError("--device-tool runs the runtimes' own tools, --remote-python runs lsnet-deploy on the "
                                 "device; give one")
            if not device_tool and not remote_python:
                raise UsageError("--adb needs the device's benchmark tools (--device-tool NAME=PATH, see "
                                 "docs/phone_bench.md) or, on a Linux device with lsnet-deploy, --remote-python PATH")
            if remote_python and phone_given:
                raise UsageError(f"{', '.join(phone_given)} appl{'ies' if len(phone_given) == 1 else 'y'} to the "
                                 "device's own tools (--device-tool), not to --remote-python")
        elif phone_given:
            verb = "is" if len(phone_given) == 1 else "are"
            raise UsageError(f"{', '.join(phone_given)} {verb} used only with --adb")
        if not no_save:
            ensure_writable(output, "--output")  # before anything is built or timed
        if adb is not None and device_tool:
            _run_on_phone(artifacts=list(artifacts or []), model=model, weights=weights, runtime=runtime,
                          provider=provider, device=device, batch=batch, imgsz=imgsz, threads=threads,
                          precision=precision, warmup=warmup, warmup_time=warmup_time, iters=iters, min_time=min_time,
                          spinning=spinning, keep_samples=keep_samples, output=output, no_save=no_save,
                          json_output=json_output, protocol=protocol,
                          options=dict(serial=adb or None, tools=device_tool, device_dir=device_dir, cores=cores,
                                       rounds=rounds, cool_below_c=cool_below, cool_timeout_s=cool_timeout,
                                       interleave=not no_interleave, max_cv=max_cv, tool_args=list(tool_arg or []),
                                       device_env=list(device_env or []), tool_timeout_s=tool_timeout))
            return
        if data_limit is not None and data is None:
            raise UsageError("--data-limit is used only with --data")
        if data_limit is not None and data_limit < 1:
            raise UsageError(f"--data-limit must be at least 1, got {data_limit}")
        if class_map is not None and data is None:
            raise UsageError("--class-map maps the class folders of --data DIR; add --data")
        if data is not None:
            class_folders(data)  # a bad folder (or --class-map) fails before anything is timed
            if class_map is not None:
                parse_class_map(class_map)
        specs = build_candidates(list(artifacts or []), model, weights, runtime, provider)
        plan = build_plan(specs, device=device, batch=batch, imgsz=imgsz, threads=threads, precision=precision,
                          ska=ska, warmup=warmup, warmup_time=warmup_time, iters=iters, min_time=min_time,
                          protocol=protocol, spinning=spinning, keep_samples=keep_samples)
        plan = dataclasses.replace(plan, data=data, data_limit=data_limit, class_map=class_map)
        if plan.protocol == "paper" and plan.protocol_overrides:
            err(f"{PROG}: note: paper protocol with your {', '.join(plan.protocol_overrides)} (recorded)")
        if adb is not None:
            target = AdbRemoteTarget(adb or None, python=remote_python, cache_dir=remote_cache or DEFAULT_REMOTE_CACHE)
        else:
            target = target_for(host, python=remote_python or "python3", ssh_options=ssh_option, cache_dir=remote_cache)
        if model and not weights:
            err(f"{PROG}: note: no --weights, so {model} is randomly initialized (latency is the same)")
        _run_target(target, plan, output, no_save, json_output)


def _run_target(target, plan, output: Path, no_save: bool, json_output: bool) -> None:
    """Run a plan on a target, appending and printing each group as it arrives."""
    saved = 0
    for records in target.run(plan, lambda message: err(f"{PROG}: {message} ...")):
        if json_output:  # shown before saving: a disk that fills up does not lose what was measured
            for record in records:
                typer.echo(json.dumps(record))
        else:
            typer.echo(render_group(records))
        if not no_save:
            saved += append_records(output, records)
    if not no_save:
        err(f"{PROG}: appended {saved} result{'s' * (saved != 1)} to {output} "
            f"(lsnet-bench report {output})")


#: phone options and their defaults (an option differing from its default counts as given)
PHONE_DEFAULTS = {"device_tool": None, "device_dir": None, "cores": PhoneOptions.cores, "rounds": PhoneOptions.rounds,
                  "cool_below": PhoneOptions.cool_below_c, "cool_timeout": PhoneOptions.cool_timeout_s,
                  "no_interleave": False, "max_cv": PhoneOptions.max_cv, "tool_arg": None, "device_env": None,
                  "tool_timeout": PhoneOptions.tool_timeout_s}


def _phone_options_given(**values) -> list[str]:
    """The phone options set away from their defaults, as ``--option`` names."""
    return [f"--{name.replace('_', '-')}" for name, value in values.items()
            if value not in (PHONE_DEFAULTS[name], []) and name != "device_tool"] + \
        (["--device-tool"] if values.get("device_tool") else [])


def _run_on_phone(*, artifacts, model, weights, runtime, provider, device, batch, imgsz, threads, precision, warmup,
                  warmup_time, iters, min_time, spinning, keep_samples, output, no_save, json_output, protocol,
                  options) -> None:
    """``--adb --device-tool``: the artifacts timed by the runtimes' own tools on the device."""
    refused = {"--model/--weights": model or weights, "--runtime": runtime, "--device": device, "--imgsz": imgsz,
               "--precision": precision, "--warmup-time": warmup_time, "--min-time": min_time, "--spinning": spinning,
               "--batch": batch}
    given = [name for name, value in refused.items() if value]
    if given:
        raise UsageError(f"{', '.join(given)} do{'es' if len(given) == 1 else ''} not apply to the device's own tools: "
                         "each artifact runs with its own shape and precision, on the tool's chosen by its suffix; use "
                         "--iters, --warmup and --rounds for the counts")
    if protocol.lower() != "latency":
        raise UsageError("--protocol paper is a GPU throughput method; it does not apply to --adb")
    if threads is not None and threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}")
    specs = build_candidates(artifacts, None, None, None, None)
    providers = _split(provider) or [None]
    expanded = []
    for spec in specs:
        for prov in providers:
            label = spec.label + (f":{prov}" if prov and len(providers) > 1 else "")
            expanded.append(dataclasses.replace(spec, label=label, provider=prov))
    phone = PhoneOptions(**{**options, "tools": parse_tool_options(options["tools"]),
                            "iters": iters or PhoneOptions.iters, "warmup": PhoneOptions.warmup if warmup is None
                            else warmup})
    plan = build_plan(expanded, device=None, batch=None, imgsz=None, threads=threads, precision=None, ska="auto",
                      warmup=None, warmup_time=None, iters=None, min_time=None, protocol="latency", spinning=False,
                      keep_samples=keep_samples)
    _run_target(PhoneTarget(phone), plan, output, no_save, json_output)


@app.command("report")
def report_command(
    files: Annotated[list[Path], typer.Argument(help="Results files (JSON Lines) from any machines.",
                                                show_default=False, metavar="FILE")],
    baseline: Annotated[Optional[str], typer.Option("--baseline", help="Rows to compare with: model=NAME, "
                                                    "runtime=NAME, precision=NAME, device=TEXT, or a bare value; "
                                                    "rows of one architecture pair up across file names (m.onnx, "
                                                    "m.int8.onnx). Default: each row against the first candidate "
                                                    "of its own run.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="text or markdown.")] = "text",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the table to this file instead "
                                                   "of stdout.")] = None,
    plot: Annotated[Optional[Path], typer.Option("--plot", help="Also draw a latency chart (PNG; needs "
                                                 "lsnet-deploy[plot]).")] = None,
) -> None:
    """Tables grouped by device, runtime, model and precision, with ratios against a baseline."""
    with cli_errors(PROG):
        if fmt not in ("text", "markdown", "md"):
            raise UsageError(f"--format {fmt!r}: choose text or markdown")
        for path, option in ((output, "--output"), (plot, "--plot")):
            if path is not None:
                ensure_writable(path, option)
        records, skipped = read_records(files)
        for line in skipped:
            err(f"{PROG}: warning: {line}")
        rows, chosen = build_report(records, baseline)
        text = (render_markdown if fmt in ("markdown", "md") else render_text)(rows, chosen)
        if output is not None:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write {output}: {exc.strerror}") from None
            err(f"{PROG}: wrote {output}")
        else:
            typer.echo(text, nl=False)
        if plot is not None:
            plot_latency(rows, plot)
            err(f"{PROG}: wrote {plot}")


def _is_serial(word: str) -> bool:
    """Whether the word after ``--adb`` is a device serial rather than an option or an artifact."""
    if word.startswith("-") or word in COMMANDS or Path(word).exists():
        return False
    return not any(word.endswith(suffix) for suffix in artifact_suffixes())


def normalize_args(args: list[str]) -> list[str]:
    """Insert ``run`` unless the first argument names a command or asks for help, and give a bare
    ``--adb`` (no serial after it) an empty value: the only attached device."""
    args = list(args)
    out: list[str] = []
    for i, word in enumerate(args):
        out.append(word)
        if word == "--adb" and (i + 1 == len(args) or not _is_serial(args[i + 1])):
            out[-1] = "--adb="
    if not out or out[0] in COMMANDS or out[0] in ("--help", "-h"):
        return out
    return ["run", *out]


def main() -> None:
    """Console-script entry point."""
    quiet_third_party_warnings()
    with whole_command(PROG):
        app(args=normalize_args(sys.argv[1:]), prog_name=PROG)


if __name__ == "__main__":
    main()
