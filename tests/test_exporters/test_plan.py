"""The export plan and the pieces it reads: one check with one message each, before any work; one registry
mechanism refusing duplicates; one spec per format read by its exporter and its runner; every gate limit in
one place, quoted by the messages."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from lsnet_deploy import gates
from lsnet_deploy.accelerators.qnn_socs import QnnOptions
from lsnet_deploy.cli.export import with_option_flags
from lsnet_deploy.errors import UsageError
from lsnet_deploy.exporters import ExportOptions, ExportPlan, check_export, format_for_runtime, get_exporter
from lsnet_deploy.exporters import option_flags
from lsnet_deploy.exporters.exporter import Exporter
from lsnet_deploy.exporters.registry import exporter_classes, register_exporter
from lsnet_deploy.format_spec import FormatSpec, MetadataStore
from lsnet_deploy.option_fields import option
from lsnet_deploy.registry import Registry
from lsnet_deploy.runtimes import get_runtime, runtimes
from lsnet_deploy.runtimes.coreml_runner import CoreMLOptions
from lsnet_deploy.runtimes.tensorrt_runner import TensorRTOptions

from ..conftest import conformance_case, error_line, invoke_export as invoke

TINY = conformance_case("tiny")[0]


def test_the_plan_carries_what_was_checked(tmp_path):
    plan = check_export("coreml", ExportOptions(), tmp_path / "m.mlpackage")
    assert isinstance(plan, ExportPlan) and plan.exporter.name == "coreml"
    assert plan.options.half  # Core ML's own default (float16) made explicit once, in the plan
    assert plan.validation_runtime == "coreml" and plan.output == tmp_path / "m.mlpackage"
    assert plan.accelerator is None and plan.calibration is None


@pytest.mark.parametrize("batch", ["0", "-3"])
def test_a_bad_batch_has_one_message(tmp_path, batch):
    result = invoke("--weights", TINY, "--batch", batch, "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2
    assert f"--batch must be a positive integer, got {batch}" in error_line(result)
    with pytest.raises(UsageError, match=f"--batch must be a positive integer, got {batch}"):
        check_export("onnx", ExportOptions(batch=int(batch)))


@pytest.mark.parametrize("where", ["proc", "read_only", "missing"])
def test_an_output_that_cannot_be_written_is_refused_before_the_model_is_loaded(tmp_path, where):
    if where == "proc":
        output = Path("/proc/x.onnx")
    elif where == "missing":
        output = tmp_path / "no" / "such" / "x.onnx"
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        if os.access(folder, os.W_OK):  # root ignores the mode bits: use a read-only mount's twin, /proc
            output = Path("/proc/self/x.onnx")
        else:
            output = folder / "x.onnx"
    result = invoke("--weights", TINY, "-o", output)
    assert result.exit_code == 2, result.output
    line = error_line(result)
    assert "--output" in line, line
    assert "loading" not in result.output and "Traceback" not in result.output


def test_the_registry_refuses_a_second_format_of_the_same_name():
    class Clash(Exporter):
        name, aliases, suffix, runtime, extra = "litert", (), ".clash", "litert", "litert"

    with pytest.raises(ValueError, match="Clash claims 'litert', which format 'litert' already has"):
        register_exporter(Clash)

    class AliasClash(Exporter):
        name, aliases, suffix, runtime, extra = "brand-new", ("trt",), ".clash", "tensorrt", "tensorrt"
        default_for_runtime = False

    with pytest.raises(ValueError, match="AliasClash claims 'trt', which format 'tensorrt' already has"):
        register_exporter(AliasClash)
    assert "brand-new" not in exporter_classes()


def test_a_second_default_format_of_a_runtime_is_refused():
    class SecondOnnx(Exporter):
        name, suffix, runtime, extra = "second-onnx", ".second", "ort", "onnx"

    with pytest.raises(ValueError, match="default format of runtime 'ort', which format 'onnx' already is"):
        register_exporter(SecondOnnx)
    assert "second-onnx" not in exporter_classes()


def test_the_default_format_of_a_runtime_is_declared():
    assert format_for_runtime("ort") == "onnx" and not get_exporter("ort").default_for_runtime
    assert {format_for_runtime(cls.runtime) for cls in exporter_classes().values()} <= set(exporter_classes())


def test_one_registry_mechanism():
    registry = Registry("widget")
    registry.add("alpha", 1, ("a",))
    assert registry.get("A") == 1 and registry.canonical(" Alpha ") == "alpha"
    with pytest.raises(ValueError, match="beta claims 'a', which widget 'alpha' already has"):
        registry.add("beta", 2, ("a",))
    with pytest.raises(UsageError, match=r"unknown widget 'alph'; did you mean 'alpha'\? \(choose from: alpha\)"):
        registry.get("alph")


@pytest.mark.parametrize("fmt", ["litert", "executorch", "tensorrt"])
def test_the_exporter_and_the_runner_read_one_spec(fmt):
    exporter = get_exporter(fmt)
    spec = exporter.spec
    runner = get_runtime(spec.runtime)
    assert runner.spec is spec
    assert (exporter.name, exporter.aliases, exporter.file_suffixes(), exporter.extra) == (
        spec.name, spec.aliases, spec.suffixes, spec.extra)
    assert (runner.name, runner.aliases, runner.suffixes, runner.extra) == (
        spec.runtime, spec.runtime_aliases, spec.suffixes, spec.extra)
    assert exporter.supported_options == spec.options


def test_the_emulated_arm_runner_reads_the_native_spec():
    native = get_runtime("litert")
    assert [cls.suffixes for cls in runtimes().values() if getattr(cls, "native", None) is native] == [
        native.spec.suffixes] * 2  # litert-arm64 and litert-arm64-fp16


def test_an_option_the_spec_does_not_list_is_refused_with_its_flag():
    with pytest.raises(UsageError, match="--format litert does not accept --opset"):
        check_export("litert", ExportOptions(opset=17))


def test_every_limit_is_quoted_from_the_gates():
    from lsnet_deploy import verify
    from lsnet_deploy.cli.export import app  # noqa: F401  (the help text is built at import)
    from lsnet_deploy.exporters import calibration

    assert verify.MIN_TOP1["int8"] == gates.INT8_MIN_AGREEMENT and verify.TOLERANCES is gates.TOLERANCES
    assert gates.INT8_AGREEMENT_TEXT == "97%" and gates.AGREEMENT_RESOLUTION == 34
    assert gates.INT8_AGREEMENT_TEXT in gates.INT8_HELP
    assert gates.INT8_AGREEMENT_TEXT in gates.int8_agreement_failure(0.5, 10)
    assert ExportOptions().max_drop == gates.DEFAULT_MAX_DROP
    few = calibration.CalibrationSet(Path("c"), (Path("a"),) * 200, (Path("b"),) * 10, "0" * 64)
    assert any(f"fails the {gates.INT8_AGREEMENT_TEXT} agreement gate" in w for w in few.warnings())
    assert "80%" not in Path(verify.__file__).read_text()  # the stale figure is gone


def test_the_cli_flags_and_help_come_from_the_options_and_the_specs():
    from lsnet_deploy.exporters.options import OPTION_FLAGS

    text = " ".join(invoke("--help").stdout.split())
    assert "--workspace <float> Builder workspace in GiB. Formats: tensorrt." in text
    listed = text[text.index("--half float16"):]
    half = listed[:listed.index(" --int8 ")]
    assert "Formats: onnx, ort, executorch, coreml, tensorrt, litert" in half  # ort too (test_half_and_notes)
    assert all(flag in text for flag in OPTION_FLAGS.values())


def test_no_import_circle_between_the_pipeline_and_the_int8_search_or_the_metadata_and_the_runtimes():
    import ast

    import lsnet_deploy
    from lsnet_deploy import exporters, runtimes

    def imported(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names |= {node.module or "", *(f"{node.module}.{a.name}" if node.module else a.name
                                               for a in node.names)}
        return names

    assert not {"base", "pipeline", ".base", ".pipeline"} & imported(Path(exporters.__file__).with_name("int8_search.py"))
    for module in Path(runtimes.__file__).parent.glob("*.py"):
        assert not any("artifact_metadata" in name for name in imported(module)), module
    only_pipeline = [p.name for p in Path(exporters.__file__).parent.glob("*.py")
                     if p.name != "pipeline.py" and any("int8_search" in n for n in imported(p))]
    assert only_pipeline == []  # only the pipeline runs the int8 search
    assert Path(lsnet_deploy.__file__).with_name("artifact_metadata.py").read_text().count("from .runtimes import") == 1


# ---------------------------------------------------------------- a format's own options dataclass


def test_each_format_s_own_options_are_its_spec_s_dataclass():
    assert {name: cls.own_options for name, cls in exporter_classes().items() if cls.own_options} == {
        "coreml": CoreMLOptions, "tensorrt": TensorRTOptions, "qnn": QnnOptions}
    assert get_exporter("qnn").own_options is get_exporter("qnn").spec.own_options


@pytest.mark.parametrize(("fmt", "given", "flags"), [
    ("onnx", CoreMLOptions(deployment_target="ios17", float32=True), "--target, --float32"),
    ("qnn", TensorRTOptions(workspace=2.0), "--workspace"),
    ("onnx", QnnOptions(soc="SM8550"), "--soc"),  # without --accelerator htp, the SoC means nothing to onnx
])
def test_another_format_s_options_are_refused_by_their_flags(fmt, given, flags):
    with pytest.raises(UsageError, match=f"^--format {fmt} does not accept {flags}$"):
        check_export(fmt, ExportOptions(format_options=given))


def test_format_options_that_are_not_an_options_dataclass_are_refused():
    with pytest.raises(UsageError, match="format_options must be an options dataclass instance "
                                         r"\(qnn takes QnnOptions\), got dict"):
        check_export("qnn", ExportOptions(format_options={"soc": "SM8550"}))


def test_an_unset_foreign_options_object_changes_nothing():
    plan = check_export("onnx", ExportOptions(format_options=CoreMLOptions()))
    assert plan.exporter.name == "onnx"


def test_an_unknown_soc_fails_when_the_options_are_made():
    with pytest.raises(UsageError, match="unknown --soc 'SM865'.*SM8650"):
        QnnOptions(soc="SM865")


def test_the_cli_refuses_another_format_s_flag_in_one_line(tmp_path):
    result = invoke("--weights", TINY, "-f", "onnx", "--target", "ios17", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2 and error_line(result).endswith("--format onnx does not accept --target")
    result = invoke("--weights", TINY, "-f", "coreml", "--soc", "SM9999", "-o", tmp_path / "x.mlpackage")
    assert result.exit_code == 2 and "unknown --soc 'SM9999'" in error_line(result)
    assert not list(tmp_path.iterdir())


@dataclass(frozen=True)
class ToyOptions:
    knob: int | None = option(None, flag="--toy-knob", help="A toy knob.")
    quiet_mode: bool = option(True, flag="--no-toy-quiet", help="Turn the toy's quiet mode off.")


class ToyExporter(Exporter):
    spec = FormatSpec(name="toy", aliases=(), suffixes=(".toy",), extra="onnx", runtime="ort", description="toy",
                      metadata=MetadataStore.SIDECAR, own_options=ToyOptions)
    default_for_runtime = False


def test_a_new_format_s_options_become_flags_with_no_edit_to_the_cli(monkeypatch):
    real = exporter_classes()
    monkeypatch.setattr(option_flags, "exporter_classes", lambda: {**real, "toy": ToyExporter})
    monkeypatch.setattr(option_flags, "get_exporter",
                        lambda name: ToyExporter() if name == "toy" else get_exporter(name))
    flags = {flag.field.flag: flag for flag in option_flags.option_flags()}
    assert flags["--toy-knob"].formats == ("toy",) and flags["--toy-knob"].takers() == " Formats: toy."

    def command(**options):
        return options

    parameters = inspect.signature(with_option_flags(command)).parameters
    declared = parameters["knob"].annotation.__metadata__[0]  # typer.Option("--toy-knob", help=...)
    assert "--toy-knob" in (declared.default, *declared.param_decls) and declared.help == "A toy knob. Formats: toy."
    assert parameters["knob"].default is None
    assert parameters["quiet_mode"].default is False  # a flag that turns a True option off
    values = {name: parameter.default for name, parameter in parameters.items()}
    values.update(knob=3, quiet_mode=True)
    assert option_flags.options_from_flags("toy", values).format_options == ToyOptions(knob=3, quiet_mode=False)
    with pytest.raises(UsageError, match="^--format onnx does not accept --toy-knob, --no-toy-quiet$"):
        option_flags.options_from_flags("onnx", values)


def test_two_options_with_one_flag_are_refused_at_declaration(monkeypatch):
    @dataclass(frozen=True)
    class Clash:
        soc: str | None = option(None, flag="--chip")

    class ClashExporter(ToyExporter):
        spec = None
        own_options = Clash

    real = exporter_classes()
    monkeypatch.setattr(option_flags, "exporter_classes", lambda: {**real, "clash": ClashExporter})
    with pytest.raises(ValueError, match="option name 'soc' is declared by QnnOptions and Clash; rename one"):
        option_flags.option_flags()
