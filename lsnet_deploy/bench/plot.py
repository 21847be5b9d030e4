"""A chart of latency per model, one bar per runtime and device (matplotlib, the ``plot`` extra)."""

from __future__ import annotations

from pathlib import Path

from ..atomic import ensure_writable, staged_output
from ..errors import UsageError, first_line, require
from .report import Row


#: bars spanning this factor or more (slowest / fastest) are drawn on a log axis, so short bars stay visible
LOG_AXIS_SPAN = 10.0


def axis_scale(values: list[float]) -> str:
    """``"log"`` when the positive ``values`` span ``LOG_AXIS_SPAN`` times or more, else ``"linear"``."""
    positive = [v for v in values if v is not None and v > 0]
    return "log" if positive and max(positive) / min(positive) >= LOG_AXIS_SPAN else "linear"


def plot_latency(rows: list[Row], path: str | Path, title: str | None = None) -> Path:
    """Draw median latency (bars; the mean for a phone tool that prints no median) with p90 whiskers, grouped by
    model, one colour per runtime on a device.

    Args:
        rows: report rows (``report.build_report``).
        path: the PNG (or any format matplotlib knows from the suffix) to write, atomically.
        title: chart title (default describes what is shown).

    The axis is logarithmic when the bars span ``LOG_AXIS_SPAN`` times or more (``axis_scale``).

    Returns:
        The written path.

    Raises:
        MissingDependencyError: matplotlib is not installed.
        UsageError: nothing to draw, or an unwritable path.
    """
    require("matplotlib", "plot", "to draw benchmark charts")
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib import pyplot as plt

    if not rows:
        raise UsageError("no benchmark results to plot")
    path = ensure_writable(path, "--plot")

    # a bar group per model, labelled with what was measured (file names with suffix, precision)
    artifacts: dict[tuple, list[str]] = {}
    for row in rows:
        names = artifacts.setdefault((row.model, row.precision, row.batch, row.input), [])
        if (row.artifact or row.model) not in names:
            names.append(row.artifact or row.model)

    def model_name(row: Row) -> str:
        names = sorted(artifacts[(row.model, row.precision, row.batch, row.input)])
        return f"{', '.join(names)} ({row.precision})\nbatch {row.batch}, {row.input}"

    def series_name(row: Row) -> str:
        return f"{row.runtime} on {row.device}"

    scale = axis_scale([row.stat(row.center_stat) for row in rows])
    models = list(dict.fromkeys(model_name(r) for r in rows))
    series = list(dict.fromkeys(series_name(r) for r in rows))
    height = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(10, max(3.0, 0.9 * len(models) * max(1, len(series)) ** 0.5 + 1.5)))
    colors = plt.get_cmap("tab10")
    for s_index, name in enumerate(series):
        ys, medians, whiskers = [], [], []
        for row in rows:
            if series_name(row) != name:
                continue
            ys.append(models.index(model_name(row)) + (s_index - (len(series) - 1) / 2) * height)
            median = row.stat(row.center_stat)  # a phone tool without a median is drawn at its mean
            medians.append(median)
            p90 = row.stat("p90_ms")
            whiskers.append(max(p90 - median, 0.0) if p90 is not None else 0.0)
        bars = ax.barh(ys, medians, height=height * 0.9, xerr=[[0] * len(whiskers), whiskers],
                       color=colors(s_index % 10), label=name, capsize=3)
        ax.bar_label(bars, labels=[f"{m:.2f}" for m in medians], padding=4, fontsize=8)
    ax.set_yticks(range(len(models)), models, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale(scale)
    ax.set_xlabel("latency per batch (ms): median, whisker to p90" + (", log scale" if scale == "log" else ""))
    ax.set_title(title or "lsnet-bench: latency per runtime and device (lower is faster)")
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)
    ax.margins(x=0.15)
    fig.tight_layout()
    try:
        with staged_output(path) as tmp:  # renamed into place whole, with normal file modes
            fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".").lower() or "png")
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot write chart {path}: {first_line(exc)}") from None
    finally:
        plt.close(fig)
    return path
