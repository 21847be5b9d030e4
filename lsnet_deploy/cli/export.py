"""``lsnet-export``: turn an LSNet checkpoint into a validated, self-describing deployment artifact."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..accuracy import CLASS_MAP_HELP
from ..errors import UsageError
from ..exporters.option_flags import option_flags, options_from_flags
from ..exporters.pipeline import arm_formats
from ..exporters.registry import exporter_classes
from ..models.ska import EXPORTABLE_SKA_FORMS, check_ska_form
from ..recipe import INTERPOLATIONS, apply_recipe, given_fields, read_recipe_card
from .export_entry import PROG
from .export_entry import main as entry_main
from .option_parameters import option_parameter, with_parameters
from .common import JsonParseErrors, cli_errors, err, human_size, json_errors, parse_imgsz, resolve_model
from ..models.backbone import check_bias_mode, normalize_out_indices
from ..exporters import export_model
from ..metadata import decode_metadata, read_labels
from ..models.outputs import ClassifierOutputs, parse_outputs
from ..accelerators.report import PlacementReport


def _format_help() -> str:
    formats = "; ".join(f"{name}{' (' + ', '.join(cls.aliases) + ')' if cls.aliases else ''}: {cls.suffix}, "
                        f"{cls.description}" for name, cls in exporter_classes().items())
    return f"Target format. {formats}."


def _ska_help() -> str:
    autos = ", ".join(f"{cls.ska_auto} for {name}" for name, cls in exporter_classes().items())
    return (f"SKA formulation: auto (the form measured fastest for the format: {autos}) or one of "
            f"{', '.join(EXPORTABLE_SKA_FORMS)}. All give the same outputs.")


def _validate_on_help() -> str:
    return ("Where the artifact is validated and --data-gated: host (this machine's runtime, default) or arm (the "
            "aarch64 build of the format's runtime under qemu, Cortex-A76 kernels as on a phone; formats "
            f"{', '.join(arm_formats())}; set up once with python -m lsnet_deploy.arm.setup).")


#: the help of the shared options whose text reads the registries around them (the others' is declared
#: with the option)
HELP_WRITTEN_HERE = {"ska": _ska_help, "validate_on": _validate_on_help, "class_map": lambda: CLASS_MAP_HELP}

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Export an LSNet model to a validated, self-describing deployment artifact.")

TASKS = ("classification", "features")
TASK_HELP = ("classification (default): the classifier; features: the backbone, one output per stage "
             "(stage1..stage4, metadata lists each stride and channel count), any --imgsz. Every format takes "
             "features except --int8 (validated on class predictions) and Core ML image inputs (use "
             "--tensor-input).")
BIAS_HELP = ("With --task features: attention bias semantics. table resamples the offset table to the "
             "exported grid; matrix resizes the gathered (N, N) bias bicubically, as the reference detection "
             "code does. Default: matrix for detector checkpoints, table otherwise.")


def task_options(task: str, out_indices: str, bias_mode: str | None, outputs: str | None, labels) -> dict:
    """The model-building arguments of ``--task`` and its options, checked before anything is loaded.

    Raises:
        UsageError: an unknown task, options of the other task, bad out indices or bias mode.
    """
    if task not in TASKS:
        raise UsageError(f"unknown --task {task!r}; choose {' or '.join(TASKS)}")
    if task == "classification":
        if bias_mode is not None or out_indices != "0,1,2,3":
            raise UsageError("--bias-mode and --out-indices shape a backbone; add --task features")
        return {}
    if outputs is not None or labels is not None:
        raise UsageError("--outputs and --labels describe a classifier; --task features outputs the stage maps")
    try:
        indices = [int(i) for i in out_indices.replace(" ", "").split(",") if i]
    except ValueError:
        raise UsageError(f"--out-indices {out_indices!r} is not a list of stage numbers; use e.g. 0,1,2,3") from None
    return {"features_only": True, "out_indices": normalize_out_indices(indices),
            "bias_mode": check_bias_mode(bias_mode) if bias_mode is not None else None}


RECIPE_WHERE = ("Default: what the checkpoint's training args record, else timm's ImageNet eval recipe (the "
                "summary says which). Written into the metadata; calibration, --data and lsnet-predict follow it.")
MEAN_HELP = "Per-channel mean on the 0-1 scale: 3 numbers (0.485,0.456,0.406), one number, or 'imagenet'. " + RECIPE_WHERE
STD_HELP = "Per-channel std on the 0-1 scale: 3 numbers (0.229,0.224,0.225), one number, or 'imagenet'."
INTERPOLATION_HELP = f"Resize filter the model was trained with: {', '.join(INTERPOLATIONS)}."
CROP_PCT_HELP = "Centre-crop fraction: resize to size / crop_pct, then crop (1 keeps the whole resized picture)."
CROP_MODE_HELP = "center (aspect kept, short side resized) or squash (both sides resized)."
RECIPE_CARD_HELP = ("JSON card with mean, std, interpolation, crop_pct, crop_mode (top level or under pretrained_cfg, "
                    "as in timm's config.json); the recipe flags override it.")


def _option_parameters() -> list[inspect.Parameter]:
    """A keyword parameter per derived option flag (``exporters.option_flags``): its flag, help and default
    from the option's declaration, with the formats that take it."""
    return [option_parameter(flag.field, (HELP_WRITTEN_HERE[flag.field.name]() if flag.field.name in HELP_WRITTEN_HERE
                                          else flag.field.help_text()) + flag.takers())
            for flag in option_flags()]


#: give ``export`` (which takes ``**options``) a parameter per option flag, for typer to read
with_option_flags = with_parameters(_option_parameters)


@app.command(cls=JsonParseErrors)
@with_option_flags
def export(
    format: Annotated[str, typer.Option("--format", "-f", help=_format_help())] = "onnx",
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="Variant name (default lsnet_t; with "
                                                 "--weights the checkpoint decides and this must match).")] = None,
    weights: Annotated[Optional[str], typer.Option("--weights", "-w", help="Checkpoint path or hf-hub:ORG/REPO[/FILE].")] = None,
    imgsz: Annotated[Optional[str], typer.Option("--imgsz", help="Input size: 224 or H,W (default: the checkpoint's).")] = None,
    mean: Annotated[Optional[str], typer.Option("--mean", help=MEAN_HELP)] = None,
    std: Annotated[Optional[str], typer.Option("--std", help=STD_HELP)] = None,
    interpolation: Annotated[Optional[str], typer.Option("--interpolation", help=INTERPOLATION_HELP)] = None,
    crop_pct: Annotated[Optional[float], typer.Option("--crop-pct", help=CROP_PCT_HELP)] = None,
    crop_mode: Annotated[Optional[str], typer.Option("--crop-mode", help=CROP_MODE_HELP)] = None,
    recipe_card: Annotated[Optional[Path], typer.Option("--recipe-card", help=RECIPE_CARD_HELP)] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Output path (default <model><suffix> here).")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="Class names: one per line, or a JSON list.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON result object on stdout.")] = False,
    task: Annotated[str, typer.Option("--task", help=TASK_HELP)] = "classification",
    out_indices: Annotated[str, typer.Option("--out-indices", help="With --task features: the stages to output "
                                             "(0..3, strides 8, 16, 32, 64), e.g. 1,2,3.")] = "0,1,2,3",
    bias_mode: Annotated[Optional[str], typer.Option("--bias-mode", help=BIAS_HELP)] = None,
    outputs: Annotated[Optional[str], typer.Option("--outputs", help="Classifier outputs: logits, embedding (the "
                                                   "pooled, projected features the head reads) or "
                                                   "logits,embedding.")] = None,
    **options,
) -> None:
    """Export, validate against PyTorch, and write the artifact atomically."""
    with cli_errors(PROG), json_errors(json_output):
        size = parse_imgsz(imgsz)
        # bad recipe values fail here, before any model is loaded
        recipe_values = given_fields(mean=mean, std=std, interpolation=interpolation, crop_pct=crop_pct,
                                     crop_mode=crop_mode)
        if recipe_card is not None:
            read_recipe_card(recipe_card)
        recipe_line: list[str] = []

        try:
            check_ska_form(options["ska"])
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        choices = options_from_flags(format, options, labels=read_labels(labels) if labels is not None else None)

        def progress(message: str) -> None:
            err(f"{PROG}: {message} ...")

        backbone = task_options(task, out_indices, bias_mode, outputs, labels)
        if choices.dynamic_hw and task != "features":
            raise UsageError("--dynamic-hw exports backbones only (--task features --bias-mode matrix): a "
                             "classifier's attention bias table is tied to one token grid")
        if choices.dynamic_hw and bias_mode == "table":
            raise UsageError("--dynamic-hw needs --bias-mode matrix: the table mode resamples the offset table "
                             "for one grid at build time; export with --bias-mode matrix or a fixed --imgsz")
        selected = parse_outputs(outputs) if outputs is not None else None

        def build():
            progress(f"loading {weights or model or 'lsnet_t'}")
            built = resolve_model(model, weights, size, **backbone)
            recipe_line.append(apply_recipe(built, card=recipe_card, **recipe_values))
            return ClassifierOutputs(built, selected) if selected else built

        result = export_model(build, format, output, choices, progress)
        for warning in result.warnings:
            err(f"warning: {warning}")

    if json_output:
        typer.echo(json.dumps({"ok": True, **result.to_dict(), "recipe_source": recipe_line[0]}))
        return
    _print_summary(result, recipe_line[0])


#: layers of the --int8-ranking shown in the summary (--json has them all)
RANKING_SHOWN = 10


def _print_summary(result, recipe_source: str) -> None:
    meta = decode_metadata(result.metadata)
    lines = [
        f"\nExport complete ({result.seconds:.1f}s)",
        f"  file        {result.path} ({human_size(result.size_bytes)})",
        f"  format      {result.format}, {result.precision}, SKA {result.ska_form}, "
        f"{'fused' if result.fused else 'not fused'}",
        f"  input       {meta.get('input_name')} {meta['input_shape']} {meta.get('channel_order')}, "
        f"mean {meta['mean']}, std {meta['std']}",
        f"  recipe      {meta['interpolation']}, crop {meta['crop_pct']:g} ({meta['crop_mode']}): {recipe_source}",
        f"  classes     {meta.get('num_classes')}" + (" (labels embedded)" if "labels" in meta else ""),
    ]
    described = meta.get("outputs") or []
    if [o["kind"] for o in described] not in ([], ["logits"]):
        lines.append("  outputs     " + ", ".join(
            f"{o['name']} {o['shape']}" + (f" stride {o['stride']}" if "stride" in o else "") for o in described))
    for note in result.notes:
        lines.append(f"  note        {note}")
    if result.validation is not None:
        lines.append(f"  validation  {result.validation.summary()}")
    else:
        lines.append(f"  validation  skipped: {result.validation_skipped}")
    validated_on = result.details.get("validated_on")
    if validated_on:
        lines.append(f"  gated on    {validated_on['runtime']}, {validated_on['kernels']}")
    accuracy = result.details.get("accuracy")
    if accuracy and "skipped" in accuracy:
        lines.append(f"  accuracy    not measured: {accuracy['skipped']}")
    elif accuracy:
        torch_acc, artifact = accuracy["pytorch"], accuracy["artifact"]
        lines.append(f"  accuracy    top-1 {artifact['top1']:.2f}% (PyTorch {torch_acc['top1']:.2f}%, drop "
                     f"{accuracy['drop']:.2f} <= {accuracy['max_drop']:g}), top-5 {artifact['top5']:.2f}% on "
                     f"{artifact['count']} images")
        if "classes" in accuracy:
            lines.append(f"  classes on  --data {accuracy['classes']['summary']}")
    if result.precision == "int8" and "int8_float_layers" in result.details:
        kept = result.details["int8_float_layers"]
        kept_as = result.details.get("int8_kept_as", "float")
        lines.append(f"  int8        {'all layers int8' if not kept else f'kept in {kept_as}: ' + ', '.join(kept)}")
    for rank, unit in enumerate(result.details.get("int8_ranking", [])[:RANKING_SHOWN], 1):
        lines.append(f"  {'sensitivity' if rank == 1 else '':<11} {rank:>2}. {unit['layer']}  error {unit['error']:.4f}")
    placement = result.details.get("placement")
    if placement:
        fields = {k: v for k, v in placement.items() if k != "whole"}
        lines.append(f"  placement   {PlacementReport(**fields).summary()}")
    emulated = result.details.get("accelerator_validation")
    if emulated:
        limit = f" (limit {emulated['tolerance']:g})" if emulated["tolerance"] is not None else ""
        lines.append(f"  emulated    {'ok' if emulated['passed'] else 'FAILED'}: max rel error "
                     f"{emulated['max_rel']:.2e}{limit}, top-1 agreement {emulated['top1_agreement']:.0%} on "
                     f"{emulated['samples']} samples, on the accelerator's emulator")
    for key, value in result.details.items():
        if key in ("trtexec", "sidecar", "ops_outside_delegate", "delegated_ops", "delegate_partitions",
                   "int8_top1_agreement"):
            lines.append(f"  {key:<11} {value}")
    lines.append(f"  next        lsnet-bench {result.path}    lsnet-predict {result.path} IMAGE")
    typer.echo("\n".join(lines))


def main() -> None:
    """Entry point of ``python -m lsnet_deploy.cli.export`` (the console script is ``export_entry.main``)."""
    entry_main()


if __name__ == "__main__":
    main()
