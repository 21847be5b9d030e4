"""Comparing an artifact's outputs with PyTorch's: one report, explicit tolerances.

Modelled on Polygraphy's ``CompareFunc.simple``: max absolute error, max error relative to the reference's
largest magnitude (the conformance definition), cosine similarity and top-1 agreement.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

# each precision's tolerance and top-1 floor are the gates' (one place for every limit)
from .gates import FLOAT32_TOLERANCE, MIN_TOP1, TOLERANCES

#: what a NaN or infinite output means, by the side that has it (``ComparisonReport.nonfinite``)
NONFINITE_CAUSES = {
    "reference": "the PyTorch model itself outputs NaN or inf: its weights hold NaN/inf values (a diverged "
                 "training run or a damaged file), so no artifact can follow it; fix the checkpoint",
    "artifact": "the artifact outputs NaN or inf where PyTorch does not: a numerical overflow in this format "
                "or precision",
}


@dataclass
class ComparisonReport:
    """How closely candidate outputs follow reference outputs."""

    samples: int
    max_abs: float
    max_rel: float
    cosine: float
    top1_agreement: float
    tolerance: float | None
    min_top1: float
    #: ``"reference"`` or ``"artifact"`` when that side output NaN or inf (the reference first), else None
    nonfinite: str | None = None

    @property
    def passed(self) -> bool:
        """True when every output is finite and the error and the top-1 agreement are both within bounds."""
        within = self.tolerance is None or self.max_rel <= self.tolerance
        return self.nonfinite is None and within and self.top1_agreement >= self.min_top1

    @property
    def cause(self) -> str | None:
        """Why the comparison cannot pass whatever the export does differently (NaN or inf outputs), else None."""
        return NONFINITE_CAUSES[self.nonfinite] if self.nonfinite else None

    def summary(self) -> str:
        """One line for terminals."""
        verdict = "ok" if self.passed else "FAILED"
        if self.nonfinite:
            who = "PyTorch" if self.nonfinite == "reference" else "the artifact"
            return f"{verdict}: {who} outputs NaN or inf on {self.samples} samples"
        tol = f" (limit {self.tolerance:g})" if self.tolerance is not None else ""
        return (f"{verdict}: max rel error {self.max_rel:.2e}{tol}, max abs {self.max_abs:.2e}, "
                f"cosine {self.cosine:.6f}, top-1 agreement {self.top1_agreement:.0%} on {self.samples} samples")

    def to_dict(self) -> dict:
        """JSON-ready form, verdict included."""
        return {**asdict(self), "passed": self.passed}


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, precision: str = "float32",
                    classifies: bool = True) -> ComparisonReport:
    """Compare two (N, ...) output arrays (class scores, embeddings, feature maps).

    Args:
        reference: outputs of the PyTorch model.
        candidate: outputs of the exported artifact for the same inputs.
        precision: the artifact's precision, which selects the tolerance and the top-1 floor.
        classifies: the outputs are class scores; otherwise top-1 agreement is reported but not required.

    Raises:
        ValueError: when the shapes differ.
    """
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.shape != cand.shape:
        raise ValueError(f"output shapes differ: reference {ref.shape}, artifact {cand.shape}")
    ref2 = ref.reshape(ref.shape[0], -1) if ref.ndim > 1 else ref.reshape(1, -1)
    cand2 = cand.reshape(ref2.shape)
    nonfinite = ("reference" if not np.isfinite(ref2).all() else "artifact" if not np.isfinite(cand2).all()
                 else None)
    if nonfinite:  # NaN compares false with everything: no error, cosine or argmax would mean anything
        nan = float("nan")
        return ComparisonReport(samples=ref2.shape[0], max_abs=nan, max_rel=nan, cosine=nan, top1_agreement=0.0,
                                tolerance=TOLERANCES.get(precision, FLOAT32_TOLERANCE),
                                min_top1=MIN_TOP1.get(precision, 1.0) if classifies else 0.0, nonfinite=nonfinite)
    diff = np.abs(ref2 - cand2)
    scale = max(float(np.abs(ref2).max()), 1e-12)
    denom = np.linalg.norm(ref2, axis=1) * np.linalg.norm(cand2, axis=1)
    cosine = np.where(denom > 0, (ref2 * cand2).sum(axis=1) / np.maximum(denom, 1e-30), 1.0)
    top1 = float(np.mean(ref2.argmax(axis=1) == cand2.argmax(axis=1)))
    return ComparisonReport(samples=ref2.shape[0], max_abs=float(diff.max()), max_rel=float(diff.max() / scale),
                            cosine=float(cosine.min()), top1_agreement=top1,
                            tolerance=TOLERANCES.get(precision, FLOAT32_TOLERANCE),
                            min_top1=MIN_TOP1.get(precision, 1.0) if classifies else 0.0)


@dataclass
class OutputsReport:
    """The comparisons of a multi-output artifact, one per output; it passes when every one passes.

    Its summary fields are those of the worst output, so it reads like a ``ComparisonReport``.
    """

    reports: dict[str, ComparisonReport]

    def _worst(self) -> ComparisonReport:
        return max(self.reports.values(), key=lambda r: r.max_rel)

    @property
    def passed(self) -> bool:
        """True when every output is within bounds."""
        return all(r.passed for r in self.reports.values())

    @property
    def samples(self) -> int:
        return self._worst().samples

    @property
    def max_abs(self) -> float:
        return max(r.max_abs for r in self.reports.values())

    @property
    def max_rel(self) -> float:
        """The largest error of any output, each relative to its own largest magnitude."""
        return self._worst().max_rel

    @property
    def cosine(self) -> float:
        return min(r.cosine for r in self.reports.values())

    @property
    def tolerance(self) -> float | None:
        return self._worst().tolerance

    @property
    def cause(self) -> str | None:
        """The first output's NaN/inf cause (``ComparisonReport.cause``), else None."""
        return next((r.cause for r in self.reports.values() if r.cause), None)

    @property
    def top1_agreement(self) -> float:
        """The agreement of the class-score outputs (1.0 when there are none)."""
        gated = [r.top1_agreement for r in self.reports.values() if r.min_top1 > 0]
        return min(gated) if gated else 1.0

    def summary(self) -> str:
        """One line: the verdict, then each output's max relative error."""
        verdict = "ok" if self.passed else "FAILED"
        worst = self._worst()
        tol = f" (limit {worst.tolerance:g} each)" if worst.tolerance is not None else ""
        parts = ", ".join(f"{name} {r.max_rel:.2e}{'' if r.passed else ' FAILED'}" for name, r in self.reports.items())
        return f"{verdict}: max rel error per output{tol}: {parts}; on {worst.samples} samples"

    def to_dict(self) -> dict:
        """JSON-ready form: the worst output's fields, the verdict, and every output's report."""
        worst = self._worst()
        return {**asdict(worst), "passed": self.passed, "outputs": {n: r.to_dict() for n, r in self.reports.items()}}


def as_arrays(outputs) -> list[np.ndarray]:
    """A model's or runner's outputs (a tensor, array, or a tuple/list/dict of them) as float32 arrays."""
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    arrays = []
    for out in outputs:
        if isinstance(out, (list, tuple, dict)):
            arrays.extend(as_arrays(out))
        else:
            out = out.detach().float().cpu().numpy() if hasattr(out, "detach") else out
            arrays.append(np.asarray(out, dtype=np.float32))
    return arrays


def compare_runner(runner, reference_model, inputs: list[np.ndarray], precision: str = "float32",
                   outputs: list[dict] | None = None) -> "ComparisonReport | OutputsReport":
    """Run ``inputs`` through an artifact's runner and through ``reference_model`` (PyTorch), and compare.

    Args:
        runner: an inactive ``lsnet_deploy.runtimes`` runner of the artifact (activated and released here).
        reference_model: the PyTorch model the artifact must follow (eval mode).
        inputs: (N, C, H, W) float32 batches.
        precision: the artifact's precision (selects the tolerance).
        outputs: the artifact's ``outputs`` metadata entries (names and kinds); with more than one, every
            output is compared on its own (each within the tolerance of its own largest magnitude) and an
            ``OutputsReport`` is returned. Top-1 agreement is required of logits only.
    """
    import torch

    if not outputs or len(outputs) == 1:
        classifies = not outputs or outputs[0]["kind"] == "logits"
        with torch.no_grad():
            expected = [as_arrays(reference_model(torch.from_numpy(x)))[0] for x in inputs]
        with runner:
            actual = [runner.infer(x) for x in inputs]
        return compare_outputs(np.concatenate(expected), np.concatenate(actual), precision, classifies)
    with torch.no_grad():
        expected = [as_arrays(reference_model(torch.from_numpy(x))) for x in inputs]
    with runner:
        actual = [runner.infer_outputs(x) for x in inputs]
    reports = {}
    for index, entry in enumerate(outputs):
        if any(len(got) != len(outputs) for got in actual):
            raise ValueError(f"the artifact returns {len(actual[0])} outputs, the model {len(outputs)}")
        reports[entry["name"]] = compare_outputs(np.concatenate([e[index] for e in expected]),
                                                 np.concatenate([a[index] for a in actual]), precision,
                                                 entry["kind"] == "logits")
    return OutputsReport(reports)
