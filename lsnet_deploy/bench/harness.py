"""Running a plan: build each candidate's runner, feed it a batch of the right shape, time it, record it.

Runners come from ``lsnet_deploy.runtimes`` (``runner_for`` for artifacts, ``TorchRunner`` for models),
so every runtime is loaded and called the same way; the clock is ``timing.measure_interleaved``. A
model asked for on another runtime is exported on the fly through the shared export path (as
ultralytics' benchmark mode does), validated, and timed like any artifact.

``run_plan`` yields the records of each group (one batch size) as soon as that group is measured, so a
caller can write them before the next group starts.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..version import __version__
from ..accuracy import agreement, evaluate, resolve_class_mapping, shared_labels
from ..artifact_metadata import read_artifact_metadata
from ..errors import LsnetDeployError, MissingDependencyError, RuntimeUnavailableError, UsageError, first_line
from ..model_choice import resolve_model
from ..quiet import silenced
from ..runtimes import get_runtime, runner_for
from ..runtimes.base import Runner
from ..runtimes.torch_runner import TorchRunner
from .plan import BenchPlan, CandidateSpec
from .provenance import artifact_size, cpu_model, cuda_device_info, file_sha256, machine_info, now_utc
from .results import SCHEMA
from .stats import ratio, summarize
from .timing import Clock, measure_interleaved

Progress = Callable[[str], None]

DEFAULT_IMGSZ = (224, 224)


@dataclass
class Prepared:
    """A candidate ready to time: its active runner, input batch and what is known about it."""

    spec: CandidateSpec
    runner: Runner
    device: str
    model_name: str
    precision: str
    source: dict
    metadata: dict | None = None
    artifact: Path | None = None
    input_shape_hint: tuple[int, ...] | None = None
    input: np.ndarray | None = None
    output_shape: list[int] | None = None
    notes: list[str] = field(default_factory=list)


def _quiet(_: str) -> None:
    pass


def resolve_device(spec: CandidateSpec, requested: str | None) -> str:
    """The device a candidate runs on: ``--device`` where its runtime has a choice, else its own.

    Raises:
        UsageError: a device the runtime cannot use, naming the candidate.
    """
    try:
        return get_runtime(spec.runtime).resolve_device(requested, spec.provider)
    except UsageError as exc:
        raise UsageError(f"{spec.label}: {exc}") from None


def artifact_metadata(runner, path: Path) -> tuple[dict | None, str | None]:
    """The metadata embedded in an artifact or in its ``<file>.json`` sidecar, decoded, and where it was
    found; (None, reason) when there is none or it cannot be read (it is provenance, not a requirement)."""
    try:
        with silenced():
            found = read_artifact_metadata(path, runner=runner)
    except LsnetDeployError as exc:
        return None, f"metadata unreadable: {exc}"
    if not found.fields:
        return None, None
    fields = dict(found.fields)
    labels = fields.pop("labels", None)
    if isinstance(labels, list):
        fields["labels_count"] = len(labels)  # a thousand class names in every result line help nobody
    return fields, found.source


def declared_input(runner) -> tuple[list[int | None], str] | None:
    """(shape with None for dynamic dimensions, dtype name) that the loaded artifact declares, if known."""
    try:
        return runner.input_metadata()
    except Exception:  # a runtime that cannot say: the metadata and the request decide the shape
        return None


def input_shape(label: str, declared: list[int | None] | None, metadata: dict | None, batch: int | None,
                imgsz: tuple[int, int] | None) -> tuple[int, ...]:
    """The (N, C, H, W) batch to feed: the artifact's fixed dimensions, the requested ones where free.

    Raises:
        UsageError: a requested batch or size that the artifact's fixed shape does not allow.
    """
    shape = list(declared) if declared else None
    if shape is None and metadata and isinstance(metadata.get("input_shape"), list):
        shape = [d if isinstance(d, int) and d > 0 else None for d in metadata["input_shape"]]
    if shape is None or len(shape) != 4:
        shape = [None, 3, None, None]
    fixed_batch, channels, height, width = shape
    if batch is not None and fixed_batch is not None and batch != fixed_batch:
        raise UsageError(f"{label} has a fixed batch of {fixed_batch}, not {batch}; export it with "
                         f"--batch {batch} or --dynamic, or drop --batch")
    if imgsz is not None and height is not None and (height, width) != tuple(imgsz):
        raise UsageError(f"{label} takes {height}x{width} images, not {imgsz[0]}x{imgsz[1]}; export it for that "
                         "size or drop --imgsz")
    if height is None or width is None:
        height, width = imgsz or (tuple(metadata["input_size"]) if metadata and metadata.get("input_size")
                                  else DEFAULT_IMGSZ)
    return (fixed_batch or batch or 1, channels or 3, int(height), int(width))


def _model_runner_class():
    class ResidentInputTorchRunner(TorchRunner):
        """A TorchRunner that uploads its (unchanging) input batch once, as the reference speed script
        does; otherwise a 2048-image batch would time a gigabyte host-to-device copy every iteration."""

        _cached = None

        def _infer(self, x: np.ndarray) -> np.ndarray:
            import torch

            if self._cached is None or self._cached[0] is not x:
                self._cached = (x, torch.from_numpy(np.ascontiguousarray(x)).to(self.device, self.dtype))
            with torch.inference_mode():
                return self.model(self._cached[1]).float().cpu().numpy()

    return ResidentInputTorchRunner


def _build_model(spec: CandidateSpec, plan: BenchPlan, progress: Progress):
    progress(f"building {spec.label}")
    return resolve_model(spec.model, spec.weights, plan.imgsz, warn=False)


def _prepare_model(spec: CandidateSpec, plan: BenchPlan, batch: int | None, device: str, workdir: Path,
                   progress: Progress) -> Prepared:
    from ..exporters import ExportOptions, export_model, format_for_runtime, get_exporter
    from ..exporters.prepare import prepare_model

    precision = plan.precision or "float32"
    if spec.runtime == "torch":
        net = _build_model(spec, plan, progress)
        ska = "shifted_slices" if plan.ska == "auto" else plan.ska
        prepared = prepare_model(net, ska, fuse=True)
        cls = _model_runner_class() if plan.protocol == "paper" else TorchRunner
        try:
            runner = cls(prepared, device=device, precision=precision, threads=plan.threads)
        except ValueError as exc:
            raise UsageError(str(exc).replace("precision", "--precision", 1)) from None
        source = _model_source(spec, net)
        source.update(ska_form=ska, fused=True)
        item = Prepared(spec, runner, device, _model_name(spec, net), precision, source,
                        input_shape_hint=(batch or 1, net.in_chans, *net.img_size))
        if plan.protocol == "paper":
            item.notes.append("input uploaded to the device once (reference speed script)")
        item.notes.extend(getattr(net, "load_notes", None) or [])
        return item
    try:
        fmt = format_for_runtime(spec.runtime)
    except UsageError:
        raise UsageError(f"cannot run a model on runtime {spec.runtime!r}: no export format makes its "
                         "artifacts; export one yourself") from None
    if precision not in ("float32", "float16"):
        raise UsageError(f"--precision {precision} cannot be exported on the fly; export the artifact yourself")
    options = ExportOptions(batch=batch or 1, half=precision == "float16", ska=plan.ska)
    exporter = get_exporter(fmt)
    target = workdir / f"{spec.label.replace('/', '_').replace(':', '_')}{exporter.suffix}"
    built = []

    def build():  # export_model checks the options and this machine first, then builds the model
        built.append(_build_model(spec, plan, progress))
        progress(f"exporting {_model_name(spec, built[0])} to {exporter.name} for {spec.label}")
        return built[0]

    with silenced():
        result = export_model(build, exporter.name, target, options)
    net = built[0]
    model_name = _model_name(spec, net)
    artifact_spec = CandidateSpec(label=spec.label, runtime=spec.runtime, path=str(result.path),
                                  provider=spec.provider, name=model_name)
    item = _prepare_artifact(artifact_spec, plan, device)
    item.spec = spec
    item.source = {**_model_source(spec, net), "exported_to": exporter.name, "ska_form": result.ska_form,
                   "artifact_sha256": item.source["sha256"], "artifact_size_bytes": item.source["size_bytes"]}
    item.notes.extend(result.notes)
    return item


def _model_name(spec: CandidateSpec, net) -> str:
    return spec.name or spec.model or (Path(spec.weights).stem if spec.weights else net.variant)


def _model_source(spec: CandidateSpec, net) -> dict:
    return {"kind": "model", "model": spec.model, "variant": getattr(net, "variant", None), "weights": spec.weights,
            "weights_sha256": getattr(net, "checkpoint_sha256", None) or "random-init"}


def _prepare_artifact(spec: CandidateSpec, plan: BenchPlan, device: str) -> Prepared:
    path = Path(spec.path)
    if not path.exists():
        raise UsageError(f"artifact {path} does not exist")
    options = {"threads": plan.threads, "provider": spec.provider, "spinning": plan.spinning, "device": device}
    runner = runner_for(path, spec.runtime, **options)
    source = {"kind": "artifact", "path": str(path.resolve()), "file": path.name, "format": path.suffix.lstrip("."),
              "sha256": file_sha256(path), "size_bytes": artifact_size(path)}
    return Prepared(spec, runner, device, spec.name or path.stem, plan.precision or "", source, artifact=path)


def _activate(item: Prepared) -> None:
    try:
        with silenced():
            item.runner.activate()
    except (RuntimeUnavailableError, MissingDependencyError) as exc:
        raise RuntimeUnavailableError(f"{item.spec.label}: cannot run here: {exc}") from None
    except LsnetDeployError:
        raise
    except ImportError as exc:
        raise RuntimeUnavailableError(f"{item.spec.label}: cannot run here: {exc}") from None


def prepare(spec: CandidateSpec, plan: BenchPlan, batch: int | None, workdir: Path,
            progress: Progress = _quiet) -> Prepared:
    """Build and activate one candidate and make its input batch.

    Raises:
        UsageError: a shape, precision or device that does not fit the candidate.
        RuntimeUnavailableError: the runtime, provider or device is not available here.
    """
    device = resolve_device(spec, plan.device)
    try:
        if spec.is_model:
            item = _prepare_model(spec, plan, batch, device, workdir, progress)
        else:
            item = _prepare_artifact(spec, plan, device)
    except (RuntimeUnavailableError, MissingDependencyError) as exc:  # e.g. an on-the-fly TensorRT build
        raise RuntimeUnavailableError(f"{spec.label}: cannot run here: {exc}") from None
    progress(f"loading {spec.label} ({spec.runtime}{', ' + spec.provider if spec.provider else ''}, {device})")
    _activate(item)
    try:
        _make_input(item, plan, batch)
    except BaseException:
        item.runner.deactivate()
        raise
    return item


def _make_input(item: Prepared, plan: BenchPlan, batch: int | None) -> None:
    """Read the artifact's metadata and declared input, check the request against them, make the batch."""
    spec = item.spec
    if item.artifact is None:
        shape, dtype = item.input_shape_hint, "float32"
    else:
        item.metadata, where = artifact_metadata(item.runner, item.artifact)
        if item.metadata is not None:
            item.source["metadata_source"] = where
        elif where:
            item.notes.append(where)
        declared = declared_input(item.runner)
        shape = input_shape(spec.label, declared[0] if declared else None, item.metadata, batch, plan.imgsz)
        dtype = declared[1] if declared else "float32"
        own = (item.metadata or {}).get("precision") or ("float16" if dtype == "float16" else "float32")
        if plan.precision and not spec.is_model and plan.precision != own:
            raise UsageError(f"{spec.label} is a {own} artifact, not {plan.precision}; --precision applies to "
                             "--model runs (export a --half artifact to time float16)")
        item.precision = own
    rng = np.random.default_rng(plan.seed)
    item.input = rng.standard_normal(shape, dtype=np.float32).astype(dtype, copy=False)


def first_inference(item: Prepared) -> None:
    """Run one batch (a warm-up iteration) and turn a runtime's exception into one clear line."""
    try:
        with silenced():
            out = item.runner.infer(item.input)
            item.runner.synchronize()
    except LsnetDeployError:
        raise
    except Exception as exc:  # runtimes raise their own types with multi-line messages
        raise LsnetDeployError(f"{item.spec.label}: inference failed on a {list(item.input.shape)} "
                               f"{item.input.dtype} batch: {first_line(exc)}") from None
    item.output_shape = list(np.shape(out))
    if not np.all(np.isfinite(out)):
        item.notes.append("outputs contain NaN or Inf")


def device_name(device: str, info: dict) -> str:
    """A readable name of what ran the model (the GPU's name on CUDA, the CPU's model otherwise)."""
    if device.startswith("cuda"):
        return info.get("gpu") or cuda_device_info(device).get("gpu") or "CUDA GPU"
    if device == "apple":
        return "Apple Neural Engine/GPU/CPU"
    return cpu_model()


def build_record(item: Prepared, samples: list[float], plan: BenchPlan, group: dict, machine: dict) -> dict:
    """One result line: statistics, settings and provenance of one candidate in one group."""
    stats = summarize(samples, batch=int(item.input.shape[0]))
    try:
        info = dict(item.runner.info())
    except Exception:
        info = {"runtime": item.spec.runtime}
    record = {
        "schema": SCHEMA,
        "time": group["time"],
        "run_id": group["run_id"],
        "group": group["index"],
        "position": group["labels"].index(item.spec.label),
        "label": item.spec.label,
        "model": item.model_name,
        "architecture": (item.metadata or {}).get("model") or item.source.get("variant"),
        "runtime": item.spec.runtime,
        "runtime_version": info.get("runtime_version"),
        "provider": info.get("provider"),
        "device": item.device,
        "device_name": device_name(item.device, info),
        "precision": item.precision,
        "batch": int(item.input.shape[0]),
        "input_shape": list(item.input.shape),
        "input_dtype": str(item.input.dtype),
        "output_shape": item.output_shape,
        "threads": info.get("threads"),
        "source": item.source,
        "metadata": item.metadata,
        "runtime_info": info,
        "settings": plan.settings(),
        "stats": stats.to_dict(),
        "interleaved_with": group["labels"],
        "first_label": group["labels"][0],
        "ratio_to_first": None,
        "notes": item.notes,
        "machine": machine,
        "target": "local",
        "lsnet_deploy_version": __version__,
    }
    if item.device.startswith("cuda"):
        record["cuda"] = cuda_device_info(item.device)
    if plan.keep_samples:
        record["samples_ms"] = [round(s * 1e3, 6) for s in samples]
    return record


def measure_group(items: list[Prepared], plan: BenchPlan, run_id: str, index: int,
                  clock: Clock = time.perf_counter) -> list[dict]:
    """Time prepared candidates interleaved and build their records, with ratios against the first."""
    samples = measure_interleaved([i.runner for i in items], [i.input for i in items], plan.timing, clock)
    group = {"run_id": run_id, "index": index, "time": now_utc(), "labels": [i.spec.label for i in items]}
    machine = machine_info()
    records = [build_record(item, s, plan, group, machine) for item, s in zip(items, samples)]
    first = records[0]["stats"]["median_ms"]
    for record in records:
        value = ratio(record["stats"]["median_ms"], first)
        record["ratio_to_first"] = round(value, 4) if value is not None else None
    return records


def accuracy_reference(plan: BenchPlan) -> str | None:
    """The checkpoint predictions are compared with (top-1 agreement): the first candidate's weights, if any."""
    return next((c.weights for c in plan.candidates if c.weights), None)


def accuracy_classes(items: list[Prepared], plan: BenchPlan):
    """The one class mapping of ``plan.data`` every candidate (and the checkpoint) is scored through: by
    the labels a candidate carries, else sorted folders, ``--class-map`` entries first. Resolved once the
    candidates are loaded, before any timing, so a folder set that does not fit fails early.

    Raises:
        UsageError: as ``accuracy.resolve_class_mapping``, or candidates carrying different labels.
    """
    labels = shared_labels([_accuracy_source(item) for item in items])
    counts = {shape[-1] for shape in (item.output_shape for item in items) if shape and len(shape) == 2}
    return resolve_class_mapping(plan.data, labels=labels, class_map=plan.class_map,
                                 num_classes=counts.pop() if len(counts) == 1 else None)


def _accuracy_source(item: Prepared):
    return item.artifact if item.artifact is not None else item.runner.model


def measure_accuracy(items: list[Prepared], records: list[dict], plan: BenchPlan, classes,
                     progress: Progress = _quiet, references: dict | None = None) -> None:
    """Top-1 / top-5 of every candidate on ``plan.data``, each through its own runtime and preprocessing
    and scored through ``classes`` (``accuracy_classes``), added to its record as ``accuracy`` (with
    ``agreement`` against the checkpoint when one is known: the checkpoint is evaluated once per run, at
    ``--imgsz``, and each candidate's top-1 compared with its).

    Args:
        references: the checkpoint's report by path, kept across a run's batch groups (``run_plan``) so
            the reference is evaluated once per dataset, not once per group.
    """
    def measured(source, label: str, **options):
        streams = sys.stdout, sys.stderr  # silenced() captures the runtimes' chatter, not our progress

        def report_progress(done: int, total: int) -> None:
            if done == total or done % 500 < 50:
                with contextlib.redirect_stdout(streams[0]), contextlib.redirect_stderr(streams[1]):
                    progress(f"accuracy of {label}: {done}/{total} images")

        progress(f"accuracy of {label} on {plan.data}")
        with silenced():
            return evaluate(source, plan.data, limit=plan.data_limit, progress=report_progress, per_class=False,
                            classes=classes, **options)

    reference = accuracy_reference(plan)
    references = {} if references is None else references
    if reference and reference not in references:
        references[reference] = measured(reference, f"{Path(reference).name} (reference)", imgsz=plan.imgsz,
                                         threads=plan.threads)
    reference_report = references.get(reference) if reference else None
    for item, record in zip(items, records):
        options = {"runtime": item.spec.runtime, "threads": plan.threads} if item.artifact is not None else {}
        report = measured(_accuracy_source(item), item.spec.label, **options)
        record["accuracy"] = {"top1": round(report.top1, 4), "top5": round(report.top5, 4), "count": report.count,
                              "unreadable": report.unreadable,
                              "agreement": agreement(report, reference_report) if reference_report else None,
                              "agreement_with": Path(reference).name if reference else None,
                              "data": str(plan.data), "limit": plan.data_limit, "classes": classes.to_dict()}


def run_plan(plan: BenchPlan, progress: Progress = _quiet) -> Iterator[list[dict]]:
    """Measure a plan, one group per batch size, yielding each group's records when it is done.

    Raises:
        UsageError, RuntimeUnavailableError, LsnetDeployError: as ``prepare`` and ``first_inference``.
    """
    labels = [c.label for c in plan.candidates]
    if not labels:
        raise UsageError("nothing to benchmark")
    if len(set(labels)) != len(labels):
        raise UsageError(f"candidate labels must be unique, got {labels}")
    spinning = [get_runtime(c.runtime) for c in plan.candidates if get_runtime(c.runtime).takes_spinning]
    if plan.spinning and len(spinning) > 1:
        title = " and ".join(sorted({cls.title for cls in spinning}))
        raise UsageError(f"--spinning makes {title} sessions in one process steal each other's cores; "
                         f"benchmark one {title} candidate at a time to use it")
    run_id = uuid.uuid4().hex[:12]
    references: dict = {}  # the checkpoint's accuracy, measured once for every batch group
    for index, batch in enumerate(plan.batches or [None]):
        with contextlib.ExitStack() as stack:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lsnet-bench-")))
            items = []
            for spec in plan.candidates:
                item = prepare(spec, plan, batch, workdir, progress)
                stack.callback(item.runner.deactivate)
                items.append(item)
            for item in items:
                first_inference(item)
            classes = accuracy_classes(items, plan) if plan.data is not None else None
            timing = plan.timing
            progress(f"timing {len(items)} candidate{'s' * (len(items) > 1)} interleaved, batch "
                     f"{items[0].input.shape[0]}: warm-up {timing.warmup_iters} iterations/{timing.warmup_time:g} s, "
                     f"then at least {timing.min_iters} iterations and {timing.min_time:g} s each")
            records = measure_group(items, plan, run_id, index)
            if plan.data is not None:
                measure_accuracy(items, records, plan, classes, progress, references)
        yield records
