"""The runner contract every runtime follows (after Polygraphy's ``BaseRunner``).

A runner is built cheaply (nothing loaded), ``activate()`` loads the artifact, ``infer(x)`` runs one
batch and returns the logits as a NumPy array, ``deactivate()`` frees it. Use it as a context manager.
``synchronize()`` waits for queued device work (a no-op on CPUs) so a caller's clock can stop honestly.

Each runner class also declares what its runtime is, once, as class attributes and classmethods (the
way exporters declare their formats): its name and aliases, the artifact suffixes it runs, the pip extra
that installs it, how it reads an artifact's embedded metadata, and which device it runs on. The
registry (``registry.py``) and everything that needs those facts (suffix lookup, metadata, the benchmark
harness, help texts) read them from there.
"""

from __future__ import annotations

import abc
import inspect
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..format_spec import FormatSpec

#: (shape with None for dynamic dimensions, dtype name), as Polygraphy's ``get_input_metadata``
InputMetadata = tuple[list[int | None], str]


class Runner(abc.ABC):
    """Base class of all runtime runners."""

    #: short runtime name used on the command line and in results (``ort``, ``torch``, ...)
    name: ClassVar[str] = "base"
    #: other names the command line accepts (``onnxruntime`` for ``ort``)
    aliases: ClassVar[tuple[str, ...]] = ()
    #: artifact file types this runtime runs, lower case with the dot; empty for runtimes of models
    suffixes: ClassVar[tuple[str, ...]] = ()
    #: False: the runtime runs its suffixes only when named (``--runtime ort-arm64``) and another runtime stays
    #: their default (the emulated ARM builds of ``runtimes/arm_runners.py``)
    claims_suffixes: ClassVar[bool] = True
    #: the lsnet-deploy extra that installs the runtime (``pip install "lsnet-deploy[EXTRA]"``)
    extra: ClassVar[str | None] = None
    #: the runtime's name in prose, for help texts
    title: ClassVar[str] = ""
    #: the runner takes ``provider=`` (an execution provider; lsnet-bench --provider)
    takes_provider: ClassVar[bool] = False
    #: the runner takes ``spinning=`` (idle threads spin; sessions in one process then steal each other's cores)
    takes_spinning: ClassVar[bool] = False
    #: the format this runtime runs, declared once with its exporter: sets ``name`` (the spec's runtime),
    #: ``aliases`` (its runtime aliases), ``suffixes`` and ``extra`` (``__init_subclass__``)
    spec: ClassVar[FormatSpec | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is None:
            return
        declared = {"name": spec.runtime, "aliases": spec.runtime_aliases, "suffixes": spec.suffixes,
                    "extra": spec.extra}
        for attribute, value in declared.items():
            if attribute not in cls.__dict__:  # what the class body sets itself (a refinement) stays
                setattr(cls, attribute, value)

    def __init__(self):
        self.active = False

    @property
    def runtime(self) -> str:
        """The runtime name (``name``), as results record it."""
        return self.name

    # ------------------------------------------------------------------------ what the runtime is

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, str] | None:
        """The lsnet-export metadata embedded in an artifact (raw strings), or None when it embeds none.

        Args:
            path: the artifact.

        Raises:
            LsnetDeployError: the artifact cannot be parsed.
            MissingDependencyError: the library that reads it is not installed.
        """
        return None

    @classmethod
    def resolve_device(cls, requested: str | None, provider: str | None = None) -> str:
        """The device this runtime runs on, given ``--device`` (None: not given) and ``--provider``.

        Raises:
            UsageError: a device this runtime cannot use (the message names the fix).
        """
        return requested or "cpu"

    @classmethod
    def from_options(cls, path: str | Path, **options) -> "Runner":
        """Build (not activate) a runner for ``path`` from the common options.

        Each runner takes the options its constructor names (``threads``, ``provider``, ``spinning``,
        ``device``, ``compute_units``...); the others, and those left at None, are not its business.
        """
        accepted = inspect.signature(cls.__init__).parameters
        return cls(path, **{k: v for k, v in options.items() if k in accepted and v is not None})

    # ------------------------------------------------------------------------ lifecycle

    def __enter__(self) -> "Runner":
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        """Load the model; idempotent."""
        if not self.active:
            self._activate()
            self.active = True

    def deactivate(self) -> None:
        """Release the model; idempotent."""
        if self.active:
            self._deactivate()
            self.active = False

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run one batch (N, 3, H, W) and return the outputs as a float32 NumPy array."""
        if not self.active:
            raise RuntimeError(f"{type(self).__name__} is not active; call activate() or use it in a with block")
        return self._infer(x)

    def infer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Run one batch and return every output of the artifact, in its order, as float32 arrays."""
        if not self.active:
            raise RuntimeError(f"{type(self).__name__} is not active; call activate() or use it in a with block")
        return self._infer_outputs(x)

    def _infer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        """Every output; runners of multi-output artifacts override it (the default: ``infer``'s one)."""
        return [self._infer(x)]

    def input_metadata(self) -> InputMetadata | None:
        """The loaded model's input: (shape with None for dynamic dimensions, dtype name), None if unknown."""
        return None

    def synchronize(self) -> None:
        """Block until queued device work is done (CPU runners return at once)."""

    def info(self) -> dict:
        """Runtime name, version and settings, recorded with benchmark results."""
        return {"runtime": self.runtime}

    @abc.abstractmethod
    def _activate(self) -> None: ...

    @abc.abstractmethod
    def _deactivate(self) -> None: ...

    @abc.abstractmethod
    def _infer(self, x: np.ndarray) -> np.ndarray: ...


def static_dims(shape) -> list[int | None]:
    """A declared shape with every dynamic dimension (symbolic, -1, 0 or None) as None."""
    return [int(d) if isinstance(d, (int, np.integer)) and d > 0 else None for d in shape]
