"""LiteRT runner for ``.tflite`` models (ai-edge-litert's interpreter, XNNPACK on the CPU).

This is the interpreter Android apps embed (``com.google.ai.edge.litert``), so what it measures here carries
over in kind to phones. lsnet-export writes its metadata map into the flatbuffer's ``metadata`` vector as
one entry, ``lsnet_metadata``, whose buffer is the map as a JSON object; ``read_metadata`` reads it back
with the TFLite schema classes alone (no interpreter).

``LITERT`` declares the format once; the runner here and ``exporters/litert_format.py`` both read it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import LsnetDeployError, RuntimeUnavailableError, UsageError, first_line, require
from ..format_spec import FormatSpec, MetadataStore
from ..metadata_codec import METADATA_ENTRY as METADATA_NAME  # the flatbuffer metadata entry of the map
from ..metadata_codec import parse_metadata_map
from ..quiet import native_stderr_captured
from .base import InputMetadata, Runner, static_dims
from .registry import register_runtime

LITERT = FormatSpec(
    name="litert",
    aliases=("tflite", "tfl"),
    suffixes=(".tflite",),
    extra="litert",
    runtime="litert",
    runtime_aliases=("tflite", "tfl"),
    description="LiteRT / TensorFlow Lite flatbuffer via litert-torch (Android apps, embedded Linux)",
    metadata=MetadataStore.ENTRY,
    options=frozenset({"half", "int8", "calib"}),
)


def tflite_schema():
    """The TFLite flatbuffer schema classes shipped with ai-edge-litert."""
    return require("ai_edge_litert.schema_py_generated", LITERT.extra, "to read .tflite files")


def metadata_entries(data: bytes) -> dict[str, bytes]:
    """Every entry of a TFLite model's ``metadata`` vector: name -> buffer bytes.

    Args:
        data: the whole ``.tflite`` file.

    Raises:
        LsnetDeployError: the bytes are not a TFLite flatbuffer.
    """
    schema = tflite_schema()
    try:
        model = schema.Model.GetRootAs(data, 0)
        entries = {}
        for i in range(model.MetadataLength()):
            entry = model.Metadata(i)
            buffer = model.Buffers(entry.Buffer())
            if buffer.Offset() > 1:  # data stored after the flatbuffer (models over 2 GB)
                raw = data[buffer.Offset():buffer.Offset() + buffer.Size()]
            else:
                raw = buffer.DataAsNumpy().tobytes() if buffer.DataLength() else b""
            entries[(entry.Name() or b"").decode()] = raw
        return entries
    except Exception as exc:  # flatbuffers raises struct/Index errors on garbage
        raise LsnetDeployError(f"cannot read the TFLite flatbuffer ({first_line(exc)}); re-export the model") from None


def ordered_outputs(details: list[dict]) -> list[dict]:
    """Output details in the model's output order: litert-torch names them ``..._output_<i>_...``."""
    def position(entry: tuple[int, dict]) -> tuple[int, int]:
        found = re.search(r"output_(\d+)", entry[1].get("name", ""))
        return (int(found.group(1)) if found else entry[0], entry[0])

    return [d for _, d in sorted(enumerate(details), key=position)]


@register_runtime
class LiteRTRunner(Runner):
    """Runs a ``.tflite`` model with LiteRT's interpreter.

    Args:
        path: the ``.tflite`` file.
        threads: interpreter threads (``num_threads``; None: LiteRT's default).
        xnnpack: apply LiteRT's default XNNPACK delegate (on by default, as on phones).
    """

    spec = LITERT
    title = "LiteRT"

    def __init__(self, path: str | Path, threads: int | None = None, xnnpack: bool = True, **options):
        super().__init__()
        self.path = Path(path)
        self.threads = threads
        self.xnnpack = xnnpack
        self.interpreter = None
        self._input = self._output = None

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, str] | None:
        """The ``lsnet_metadata`` entry of the flatbuffer's metadata vector, or None without one."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise LsnetDeployError(f"cannot read {path}: {exc.strerror}") from None
        raw = metadata_entries(data).get(METADATA_NAME)
        return None if raw is None else parse_metadata_map(raw.decode("utf-8"))

    @classmethod
    def resolve_device(cls, requested: str | None, provider: str | None = None) -> str:
        """Always the CPU (XNNPACK); GPU and NPU delegates are not wired here."""
        if requested and requested != "cpu":
            raise UsageError(f"LiteRT runs on the CPU here (XNNPACK); drop --device {requested}")
        return "cpu"

    def _activate(self) -> None:
        interpreter_module = require("ai_edge_litert.interpreter", self.extra, "to run .tflite models")
        resolver = interpreter_module.OpResolverType
        try:
            # the interpreter logs "Created TensorFlow Lite XNNPACK delegate" from C++; a failure is reported below
            with native_stderr_captured(replay_on_failure=False):
                self.interpreter = interpreter_module.Interpreter(
                    model_path=str(self.path), num_threads=self.threads,
                    experimental_op_resolver_type=(resolver.AUTO if self.xnnpack
                                                   else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
                self.interpreter.allocate_tensors()
        except Exception as exc:  # the interpreter raises ValueError/RuntimeError with C++ messages
            raise RuntimeUnavailableError(f"LiteRT cannot load {self.path}: {first_line(exc)}") from None
        self._input = self.interpreter.get_input_details()[0]
        self._output = ordered_outputs(self.interpreter.get_output_details())[0]

    def _deactivate(self) -> None:
        self.interpreter = self._input = self._output = None

    def _infer(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=self._input["dtype"])
        if tuple(x.shape) != tuple(self._input["shape"]):
            self.interpreter.resize_tensor_input(self._input["index"], list(x.shape))
            self.interpreter.allocate_tensors()
            self._input = self.interpreter.get_input_details()[0]
            self._output = ordered_outputs(self.interpreter.get_output_details())[0]
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        return np.asarray(self.interpreter.get_tensor(self._output["index"]), dtype=np.float32)

    def _infer_outputs(self, x: np.ndarray) -> list[np.ndarray]:
        self._infer(x)
        return [np.asarray(self.interpreter.get_tensor(d["index"]), dtype=np.float32)
                for d in ordered_outputs(self.interpreter.get_output_details())]

    def delegation(self) -> dict:
        """How the active interpreter split the graph: ``delegate_partitions`` (XNNPACK subgraphs) and
        ``ops_outside_delegate`` with their names (``outside_ops``, name -> count), run by TFLite's own kernels.

        The interpreter keeps the replaced operators in its node list; an operator ran outside a delegate
        when no delegate produces its outputs and they feed a delegate, a graph output or another such
        operator.
        """
        import collections

        nodes = self.interpreter._get_ops_details()
        delegates = [n for n in nodes if n["op_name"] == "DELEGATE"]
        delegated_out = {t for d in delegates for t in d["outputs"]}
        outputs = {d["index"] for d in self.interpreter.get_output_details()}
        needed = {t for d in delegates for t in d["inputs"]} | outputs
        outside: list[dict] = []
        candidates = [n for n in nodes if n["op_name"] != "DELEGATE" and not set(n["outputs"]) & delegated_out]
        changed = True
        while changed:
            changed = False
            for node in candidates:
                if node not in outside and set(node["outputs"]) & needed:
                    outside.append(node)
                    needed |= set(node["inputs"])
                    changed = True
        names = collections.Counter(n["op_name"] for n in outside)
        return {"delegate_partitions": len(delegates), "ops_outside_delegate": len(outside),
                "outside_ops": dict(names)}

    def input_metadata(self) -> InputMetadata | None:
        """The first input: ``shape_signature`` -1 dimensions as None, the NumPy dtype's name."""
        if self._input is None:
            return None
        shape = self._input.get("shape_signature", self._input["shape"])
        return static_dims(list(shape)), np.dtype(self._input["dtype"]).name

    def info(self) -> dict:
        from importlib import metadata

        try:
            version = metadata.version("ai-edge-litert")
        except metadata.PackageNotFoundError:
            version = None
        return {"runtime": self.runtime, "runtime_version": version, "threads": self.threads,
                "delegate": "xnnpack" if self.xnnpack else None}
