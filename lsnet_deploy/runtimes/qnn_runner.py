"""The ``qnn`` runtime: ONNX Runtime with Qualcomm's QNN execution provider on the Hexagon HTP (the NPU).

The QNN EP ships as a plugin library (``onnxruntime-qnn``, the ``qnn`` extra) that ONNX Runtime loads once
per process. On a Snapdragon device it runs on the NPU; on an x86-64 host the same library compiles the
model for the HTP and runs it on Qualcomm's x86 emulation of the HTP (in float16 for float models, as the
NPU does), which is what validates ``--format qnn`` artifacts here.

It runs ``--format qnn`` artifacts (ONNX Runtime EPContext models: one ``EPContext`` node holding the
compiled HTP context binary) and plain ONNX files, which the EP compiles when the session starts. CPU
fallback is disabled: a model the HTP cannot take whole fails to load rather than run partly on the CPU.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path


from ..accelerators.qnn_socs import QnnOptions, get_soc
from ..errors import RuntimeUnavailableError, first_line, require
from ..format_spec import FormatSpec, MetadataStore
from .base import InputMetadata, Runner, static_dims
from .ep_context import QNN_EXTRA, is_context_model
from .onnxruntime_runner import OrtSessionIO, read_onnx_metadata
from .registry import register_runtime

EP_NAME = "QNNExecutionProvider"
EXTRA = QNN_EXTRA
#: the default file suffix of QNN EPContext models (``--format qnn``)
CONTEXT_SUFFIX = ".qnn.onnx"
#: the format, declared once: the runner here and ``exporters/qnn_format.py`` both read it
QNN = FormatSpec(
    name="qnn",
    aliases=("qnn-htp", "snapdragon"),
    suffixes=(CONTEXT_SUFFIX,),
    extra=EXTRA,
    runtime="qnn",
    runtime_aliases=("qnn-htp",),
    description=("Snapdragon NPU (Hexagon HTP): ONNX Runtime EPContext model compiled for one --soc, "
                 "run with the QNN EP; validated on Qualcomm's HTP emulator"),
    metadata=MetadataStore.NATIVE_MAP,
    options=frozenset({"half", "int8", "calib", "opset", "simplify"}),
    own_options=QnnOptions,
)
_REGISTER_LOCK = threading.Lock()
#: QNN EP options: the int8 input's QuantizeLinear and the output's DequantizeLinear run on the HTP too
#: (the EP leaves them to the CPU by default, which would split a compiled context from two CPU nodes)
WHOLE_GRAPH_OPTIONS = {"offload_graph_io_quantization": "0"}


def qnn_devices():
    """ONNX Runtime's QNN EP devices, registering the plugin library first (once per process).

    Raises:
        MissingDependencyError: onnxruntime or onnxruntime-qnn is not installed.
        RuntimeUnavailableError: the library loaded but offers no device.
    """
    ort = require("onnxruntime", EXTRA, "to run models with the QNN execution provider")
    plugin = require("onnxruntime_qnn", EXTRA, "Qualcomm's QNN execution provider, HTP compiler and emulator")
    with _REGISTER_LOCK:
        devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
        if not devices:  # registering the same library twice in one process raises
            try:
                ort.register_execution_provider_library(EP_NAME, plugin.get_library_path())
            except Exception as exc:
                raise RuntimeUnavailableError(f"ONNX Runtime cannot load the QNN execution provider: "
                                              f"{first_line(exc)}") from None
            devices = [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]
    if not devices:
        raise RuntimeUnavailableError("the QNN execution provider offers no device here")
    return devices


def qnn_session_options(soc, allow_fallback: bool = False, threads: int | None = None,
                        context_path: Path | None = None, record_assignment: bool = False):
    """ONNX Runtime session options that put a model on the HTP of ``soc`` (a ``qnn_socs.Soc``).

    Args:
        soc: the SoC to compile for.
        allow_fallback: let nodes the HTP cannot take run on the CPU (default: loading such a model fails).
        threads: intra-op threads of the session (what runs on the CPU, the emulator's host side).
        context_path: write the compiled model there as an EPContext model, binary embedded.
        record_assignment: record which EP each node went to (``get_provider_graph_assignment_info``).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3 if allow_fallback or context_path is None else 4
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not allow_fallback:
        options.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    if record_assignment:
        options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    if context_path is not None:
        options.add_session_config_entry("ep.context_enable", "1")
        options.add_session_config_entry("ep.context_embed_mode", "1")
        options.add_session_config_entry("ep.context_file_path", str(context_path))
    options.add_provider_for_devices(qnn_devices(), {**soc.provider_options(), **WHOLE_GRAPH_OPTIONS})
    return options


def qnn_session(path: Path, options):
    """An InferenceSession of ``path`` with ``options`` (from ``qnn_session_options``), its native
    chatter (the emulator's banner, the EP's unsupported-node list) kept off the terminal."""
    import onnxruntime as ort

    with native_output_captured():
        return ort.InferenceSession(str(path), options)


@contextlib.contextmanager
def native_output_captured():
    """Keep what native code writes to file descriptors 1 and 2 inside the block off the terminal: the
    HTP emulator prints a banner on stdout when it starts (which would break ``--json``), and the EP
    logs its unsupported nodes on stderr (reported through ``get_provider_graph_assignment_info``)."""
    import os
    import sys
    import tempfile

    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = [os.dup(1), os.dup(2)]
    except (OSError, ValueError):  # no real descriptors (some embedded interpreters): nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def compile_context_model(source: Path, target: Path, soc) -> None:
    """Compile the ONNX model ``source`` for ``soc``'s HTP and write the EPContext model ``target``
    (one file, the context binary embedded; the source's ``metadata_props`` carried over).

    Raises:
        RuntimeUnavailableError / MissingDependencyError: no QNN EP here.
        Exception: ONNX Runtime's own, when the HTP cannot take the model whole.
    """
    qnn_session(source, qnn_session_options(soc, context_path=target))
    if not target.is_file():
        raise RuntimeUnavailableError(f"the QNN execution provider wrote no EPContext model at {target}")


def accelerator_metadata(metadata: dict[str, str]) -> dict:
    """The artifact's ``accelerator`` metadata entry (``{"name": "htp", "soc": ...}``), or ``{}``."""
    import json

    try:
        record = json.loads(metadata.get("accelerator", "{}"))
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def soc_of(metadata: dict[str, str], requested: str | None = None):
    """The SoC to run on: ``requested`` (``--soc``), else the one the artifact was compiled or checked
    for (its ``accelerator`` metadata), else the default."""
    return get_soc(requested or accelerator_metadata(metadata).get("soc"))


@register_runtime
class QnnRunner(OrtSessionIO, Runner):
    """Runs an ONNX model on the Hexagon HTP through ONNX Runtime's QNN execution provider.

    Args:
        path: a ``--format qnn`` EPContext model, or a plain ONNX file (compiled when activated).
        soc: the SoC (``SM8650``...) to compile for or emulate; default the one the artifact names.
        threads: intra-op threads of the session.
        allow_fallback: let operators the HTP cannot take run on the CPU; default: only for an artifact
            exported with ``--allow-fallback`` (its ``accelerator`` metadata says so).
    """

    spec = QNN
    #: plain-suffix files this runtime claims when their content says so (``claims``)
    sniffed_suffixes = (".onnx",)
    title = "ONNX Runtime QNN EP (Hexagon HTP; emulated on x86)"

    def __init__(self, path: str | Path, soc: str | None = None, threads: int | None = None,
                 allow_fallback: bool | None = None):
        super().__init__()
        self.path = Path(path)
        self.soc_name = soc
        self.threads = threads
        self.allow_fallback = allow_fallback
        self.session = None
        self.input_name = None
        self.soc = None

    @classmethod
    def claims(cls, path: str | Path) -> bool:
        """A ``.onnx`` file this runtime runs rather than plain ONNX Runtime: a QNN EPContext model."""
        return is_context_model(path)

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, str]:
        """``metadata_props`` of the ONNX file (an EPContext model keeps its source's)."""
        return read_onnx_metadata(path)

    @classmethod
    def resolve_device(cls, requested: str | None, provider: str | None = None) -> str:
        """The NPU: ``htp`` on a Snapdragon, ``htp-emulated`` on an x86-64 host (Qualcomm's emulator: its
        timings say nothing about a phone's)."""
        import platform

        return "htp-emulated" if platform.machine().lower() in ("x86_64", "amd64") else "htp"

    def _activate(self) -> None:
        if not self.path.is_file():
            raise RuntimeUnavailableError(f"{self.path} does not exist")
        metadata = self.read_metadata(self.path)
        self.soc = soc_of(metadata, self.soc_name)
        fallback = self.allow_fallback
        if fallback is None:
            fallback = bool(accelerator_metadata(metadata).get("allow_fallback"))
        options = qnn_session_options(self.soc, allow_fallback=fallback, threads=self.threads)
        try:
            self.session = qnn_session(self.path, options)
        except Exception as exc:  # onnxruntime raises its own Fail/EPFail types
            hint = ("; the HTP cannot take the whole model: export it with lsnet-export --accelerator htp to "
                    "see which operators fall back" if "fallback to CPU EP has been explicitly disabled" in str(exc)
                    else "")
            raise RuntimeUnavailableError(f"the QNN execution provider cannot load {self.path} for "
                                          f"{self.soc.name} ({self.soc.arch}): {first_line(exc)}{hint}") from None
        self.input_name = self.session.get_inputs()[0].name

    def input_metadata(self) -> InputMetadata | None:
        """The session's first input (float32 in every precision)."""
        if self.session is None:
            return None
        first = self.session.get_inputs()[0]
        return static_dims(first.shape), "float16" if first.type == "tensor(float16)" else "float32"

    def info(self) -> dict:
        import onnxruntime
        import onnxruntime_qnn

        soc = self.soc
        return {"runtime": self.runtime, "runtime_version": onnxruntime.__version__,
                "qnn_ep_version": onnxruntime_qnn.__version__,
                "soc": soc.name if soc else self.soc_name, "htp_arch": soc.arch if soc else None,
                "threads": self.threads}
