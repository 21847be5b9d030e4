"""What to benchmark: the candidates and the settings, as plain data that travels to other machines.

A ``BenchPlan`` is built from the command line, run here by ``harness.run_plan`` or sent as JSON to a
remote harness (``bench.remote``), which runs exactly the same code. Nothing in it is machine-specific
except artifact paths, which a remote target rewrites after copying the files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from dataclasses import dataclass, field

from .timing import TimingPolicy

PROTOCOLS = ("latency", "paper")

#: the reference code's throughput method (THU-MIG/lsnet speed.py): fused float32 model on a GPU,
#: batch 2048, 5 s warm-up, timed until at least 10 s of synchronized iterations, images/s = batch/mean.
PAPER_PROTOCOL = {"device": "cuda", "batch": 2048, "imgsz": (224, 224), "precision": "float32",
                  "timing": TimingPolicy(warmup_iters=0, warmup_time=5.0, min_iters=1, min_time=10.0)}


@dataclass
class CandidateSpec:
    """One thing to time: an artifact file, or a PyTorch model built from a variant name/checkpoint.

    Attributes:
        label: the name shown in tables (unique within a plan).
        runtime: canonical runtime name (``torch``, ``ort``, ``executorch``, ``coreml``, ``tensorrt``).
        path: the artifact (None for a model).
        model: variant name for a model candidate (``lsnet_t``).
        weights: checkpoint path or hub id for a model candidate.
        provider: ONNX Runtime execution provider (``cpu``, ``cuda``, ``xnnpack``, ...).
        name: what results call the model: the artifact's file name without suffix, the variant, or the
            checkpoint's file name (set where the files are named, before any copy to another machine).
    """

    label: str
    runtime: str
    path: str | None = None
    model: str | None = None
    weights: str | None = None
    provider: str | None = None
    name: str | None = None

    @property
    def is_model(self) -> bool:
        """True for a PyTorch model (benchmarked in eager mode or exported on the fly)."""
        return self.path is None


@dataclass
class BenchPlan:
    """Everything one ``lsnet-bench`` call measures.

    Attributes:
        candidates: timed interleaved, the first being the reference of the ratios.
        batches: one interleaved group per batch size; None takes each artifact's own batch (1 if dynamic).
        imgsz: (H, W) for models and dynamic artifacts; None takes the artifact's or model's own.
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        threads: intra-op threads for every runtime (None: each runtime's default).
        precision: for models (``float32``, ``float16``, ``bfloat16``); for artifacts a check of what
            they contain. None: float32 for models, the artifact's own otherwise.
        ska: SKA form of model candidates (``auto``: the fastest standard form for the runtime).
        timing: warm-up and measurement lengths.
        protocol: ``latency`` or ``paper``.
        protocol_overrides: options the user changed from the protocol's values (recorded).
        spinning: let ONNX Runtime's idle threads spin (only with a single ONNX Runtime session).
        keep_samples: store every timed iteration in the results.
        seed: seed of the random input batch.
        data: an ImageFolder of labelled pictures: each candidate's top-1 / top-5 is measured there too,
            through its own runtime and preprocessing (None: latency only).
        data_limit: evaluate this many pictures, spread evenly over the folder (None: all).
        class_map: explicit folder -> class entries for ``data`` (``accuracy.parse_class_map``).
    """

    candidates: list[CandidateSpec]
    batches: list[int] | None = None
    imgsz: tuple[int, int] | None = None
    device: str = "cpu"
    threads: int | None = None
    precision: str | None = None
    ska: str = "auto"
    timing: TimingPolicy = field(default_factory=TimingPolicy)
    protocol: str = "latency"
    protocol_overrides: list[str] = field(default_factory=list)
    spinning: bool = False
    keep_samples: bool = False
    seed: int = 0
    data: Path | None = None
    data_limit: int | None = None
    class_map: str | None = None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        data = dataclasses.asdict(self)
        data["timing"] = self.timing.to_dict()
        data["imgsz"] = list(self.imgsz) if self.imgsz else None
        data["data"] = str(self.data) if self.data else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "BenchPlan":
        """Inverse of ``to_dict`` (unknown keys are ignored, so older harnesses accept newer plans)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        cand_fields = {f.name for f in dataclasses.fields(CandidateSpec)}
        values["candidates"] = [CandidateSpec(**{k: v for k, v in c.items() if k in cand_fields})
                                for c in data["candidates"]]
        values["timing"] = TimingPolicy.from_dict(data.get("timing") or {})
        if values.get("imgsz"):
            values["imgsz"] = tuple(values["imgsz"])
        return cls(**values)

    def settings(self) -> dict:
        """The settings recorded with every result of this plan."""
        return {"protocol": self.protocol, "protocol_overrides": list(self.protocol_overrides),
                "timing": self.timing.to_dict(), "ska": self.ska, "spinning": self.spinning, "seed": self.seed}
