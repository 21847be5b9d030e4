"""``lsnet-inspect``: where an exported artifact's operators run on each phone accelerator, as the
accelerator's own tool says (partitions, operators placed, operators left to the CPU, tool and version)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..accelerators import artifact_format, inspect_artifact
from ..accelerators.targets import TARGETS, accelerator_option_kinds
from ..option_fields import made_from_flags, option_fields
from ..quiet import quiet_third_party_warnings
from .common import JsonParseErrors, cli_errors, json_errors, whole_command
from .option_parameters import option_parameter, with_parameters

PROG = "lsnet-inspect"


def _accelerator_help() -> str:
    rows = "; ".join(f"{t.name} ({'/'.join(t.formats)})" for t in TARGETS.values())
    return f"Accelerator to ask (repeatable; default: every one the file's format reaches): {rows}."


def _probe_parameters():
    """A flag per accelerator option (``--soc``...), declared by the accelerators' own options dataclasses."""
    return [option_parameter(field, f"{field.help_text()} Accelerators: {', '.join(names)}.")
            for kind, names in accelerator_option_kinds().items() for field in option_fields(kind)]


def probe_options(values: dict) -> dict:
    """The probes' keyword arguments from the flag values, each options dataclass made (and so checked:
    an unknown ``--soc`` fails here, with the closest one suggested)."""
    given = {}
    for kind in accelerator_option_kinds():
        given.update(dataclasses.asdict(made_from_flags(kind, values)))
    return given


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Report where an exported artifact's operators run on phone accelerators (NPU, GPU, "
                       "DSP), from each accelerator's own compiler, checker or partitioner.")


@app.command(cls=JsonParseErrors)
@with_parameters(_probe_parameters)
def inspect(
    file: Annotated[Path, typer.Argument(help="An exported artifact: .onnx, .ort, .tflite, .pte, .mlpackage.")],
    accelerator: Annotated[Optional[list[str]], typer.Option("--accelerator", "-a", help=_accelerator_help())] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    **options,
) -> None:
    """Ask each accelerator's tool where FILE's operators run."""
    with cli_errors(PROG), json_errors(json_output):
        probing = probe_options(options)
        fmt = artifact_format(file)
        reports = inspect_artifact(file, accelerator or None, **probing)
    if json_output:
        typer.echo(json.dumps({"ok": True, "file": str(file), "format": fmt,
                               "accelerators": [r.to_dict() for r in reports]}))
        return
    typer.echo(f"{file} ({fmt})")
    if not reports:
        typer.echo("  no accelerator probe applies to this format")
    for report in reports:
        _print_report(report)


def _print_report(report) -> None:
    if report.tool == "not available":
        typer.echo(f"  {report.accelerator}: {report.note}")
        return
    where = ("whole model (1 partition)" if report.whole
             else "partitions unknown" if report.partitions is None else f"{report.partitions} partition(s)")
    counted = (f", {report.nodes_on_accelerator}/{report.nodes_total} operators on it"
               if report.nodes_total is not None and report.nodes_on_accelerator is not None else "")
    typer.echo(f"  {report.accelerator}: {where}{counted}")
    typer.echo(f"    falls back to the CPU: {report.fallback_summary()}")
    typer.echo(f"    said by: {report.tool} {report.tool_version}".rstrip()
               + ("" if report.verified else " (not verified here)"))
    if report.note:
        typer.echo(f"    note: {report.note}")


def main() -> None:
    """Console-script entry point."""
    quiet_third_party_warnings()
    with whole_command(PROG):
        app(prog_name=PROG)


if __name__ == "__main__":
    main()
