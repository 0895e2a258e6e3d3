"""Figures: image grids and plots as PNG files (matplotlib, no display needed)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from .files import atomic_write_bytes  # noqa: E402

GRID_IMAGES = 16  # how many fixed test images a grid shows


def grid_indices(n_images: int, count: int = GRID_IMAGES, seed: int = 0) -> list[int]:
    """`count` fixed, spread-out image indices of a split of n_images (the same for every model)."""
    g = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(n_images, generator=g)[:count].tolist())


SCALE = 2  # every figure is drawn at twice its display size, so it is sharp on high-DPI screens
DPI = 110 * SCALE  # pixels per inch: a figure's display size is its inches x 110 px


def save_figure(fig, path: str | Path, dpi: int = DPI, tight: bool = False) -> Path:
    """Render a matplotlib figure to PNG atomically (at `DPI`: twice its display size) and close it;
    returns the path. The plots lay themselves out (layout="constrained"), which draws them once;
    tight: crop to what is drawn instead (a second drawing pass; the image grids)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight" if tight else None)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


# One colour per phase, in every figure: the timeline, the seconds per trial, the regularization
# trade-off (l2, l1) and the denoising plots (the autoencoders' phases).
PHASE_COLOURS = {
    "grid": "#1f77b4", "l2": "#ff7f0e", "l1": "#2ca02c", "l2+l1": "#9467bd", "denoise": "#d62728",
    "blind": "#8c564b", "pca": "#7f7f7f", "baselines": "#17becf",
}
OTHER_COLOURS = ("#e377c2", "#bcbd22", "#393b79", "#637939", "#e7ba52", "#7b4173", "#6b6ecf", "#000000",
                 "#a55194", "#b5cf6b")  # for what is not a phase (the classical denoisers), no phase's hue
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
LINESTYLES = ("-", "--", "-.", ":")


def phase_colour(phase: str, i: int = 0):
    """The colour of a phase (PHASE_COLOURS); another phase name gets OTHER_COLOURS[i]."""
    return PHASE_COLOURS.get(phase, OTHER_COLOURS[i % len(OTHER_COLOURS)])


def _dodge(i: int, n: int, width: float) -> float:
    """Horizontal offset of series i of n, spread over `width`, so markers at one x never hide each
    other."""
    return 0.0 if n < 2 else (i - (n - 1) / 2) * width / (n - 1)


def image_grid(rows: list[torch.Tensor], image_shape: tuple[int, int], path: str | Path,
               row_labels: list[str] | None = None, title: str | None = None) -> Path:
    """Save a grid: each entry of `rows` is (K, D) images in [0, 1] drawn as one row of K images
    (e.g. originals above reconstructions, or clean / noisy / denoised). Returns the PNG path.

    The images are tiled into one array (2-pixel gaps) and drawn once, which keeps a grid to a
    fraction of a second."""
    h, w = image_shape
    gap, k = 2, rows[0].shape[0]
    mosaic = np.ones((len(rows) * (h + gap) - gap, k * (w + gap) - gap), dtype=np.float32)
    for r, images in enumerate(rows):
        arr = images.detach().float().clamp(0, 1).cpu().numpy().reshape(-1, h, w)
        for c in range(k):
            mosaic[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = arr[c]
    fig, ax = plt.subplots(figsize=(0.5 * k * (w + gap) / 28 + 1.2, 0.5 * len(rows) * (h + gap) / 28 + 0.4))
    ax.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(h + gap) * r + h / 2 for r in range(len(rows))])
    ax.set_yticklabels(row_labels or [""] * len(rows), fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path, tight=True)


_WIDE = (7.2, 3.9)  # inches at 110 px each: about 790 x 430 px on the page


def _style(ax, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


Series = dict  # {label: (xs, means, sds or None)}


def plot_psnr_vs_latent(series: dict[str, tuple[list[int], list[float], list[float] | None]], path: str | Path,
                        pca: tuple[list[int], list[float]] | None = None, title: str = "",
                        ylabel: str = "psnr (dB, mean per-image)") -> Path:
    """PSNR (dB) against latent size L, on a log-scaled L axis.

    series: {label (e.g. "depth 3"): (latent sizes, mean PSNR in dB, sd over seeds or None)}, one
    line each, with error bars of ±sd, each series shifted a little sideways and drawn with its own
    marker and line style so none hides another; pca: the PCA baseline (k = L, PSNR in dB), dashed
    grey. Returns the PNG path."""
    fig, ax = plt.subplots(figsize=_WIDE, layout="constrained")
    latents: set[int] = set()
    n = len(series)
    for i, (label, (xs, ys, sds)) in enumerate(series.items()):
        shifted = [x * 10 ** _dodge(i, n, 0.03) for x in xs]
        ax.errorbar(shifted, ys, yerr=sds, marker=MARKERS[i % len(MARKERS)], linestyle=LINESTYLES[i % 4],
                    linewidth=2, capsize=3, color=OTHER_COLOURS[(7 + i) % len(OTHER_COLOURS)], label=label,
                    markerfacecolor="none" if i % 2 else None)
        latents.update(xs)
    if pca is not None and pca[0]:
        ax.plot(pca[0], pca[1], linestyle="--", color=PHASE_COLOURS["pca"], marker="s", markersize=4, linewidth=1.4,
                label="PCA (k = L)")
        latents.update(pca[0])
    if latents:
        ax.set_xscale("log")
        ax.set_xticks(sorted(latents))
        ax.set_xticklabels([str(v) for v in sorted(latents)])
        ax.minorticks_off()
    _style(ax, title, "latent size L", ylabel)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_tradeoff(points: dict[str, list[tuple[str, float, float, float, float]]], path: str | Path,
                  title: str = "", xlabel: str = "Hoyer sparsity of the code (0: dense, 1: one unit)",
                  ylabel: str = "psnr (dB, mean per-image)") -> Path:
    """The regularization trade-off: test PSNR (dB) against the code's sparsity, one point per
    setting.

    points: {phase ("none", "l2", "l1", "l2+l1"): [(label, sparsity, sd, psnr, sd), ...]} in
    increasing strength; a phase's points are joined in that order, coloured by phase
    (PHASE_COLOURS; "none" black) and labelled with their strength. Returns the PNG path."""
    fig, ax = plt.subplots(figsize=_WIDE, layout="constrained")
    for i, (phase, pts) in enumerate(points.items()):
        colour = "black" if phase == "none" else phase_colour(phase)
        xs, xe = [p[1] for p in pts], [p[2] for p in pts]
        ys, ye = [p[3] for p in pts], [p[4] for p in pts]
        ax.errorbar(xs, ys, xerr=xe, yerr=ye, marker=MARKERS[i % len(MARKERS)], linestyle=LINESTYLES[i % 4],
                    color=colour, linewidth=1.6, capsize=3, label=phase, zorder=3 if phase == "none" else 2)
        for label, x, _, y, _ in pts:
            if label == "none" and phase != "none":  # a penalty's line starts at none's own point
                continue
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 4 + 8 * (i % 2)), fontsize=7,
                        color=colour)
    _style(ax, title, xlabel, ylabel)
    if points:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_training_curves(curves: dict[str, tuple[list[int], list[float]]], path: str | Path,
                         title: str = "", ylabel: str = "validation psnr (dB, mean per-image)") -> Path:
    """Validation PSNR (dB) per epoch, one line per model.

    curves: {label: (epochs, PSNR in dB)}. Returns the PNG path."""
    fig, ax = plt.subplots(figsize=_WIDE, layout="constrained")
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, marker="." if len(xs) < 30 else None, linewidth=1.6, label=label)
    _style(ax, title, "epoch", ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if curves:
        ax.legend(fontsize=7, ncol=2 if len(curves) > 4 else 1)
    return save_figure(fig, path)


def plot_code_histogram(codes: dict[str, np.ndarray], path: str | Path, title: str = "", bins: int = 80) -> Path:
    """Histogram of latent code values (one step outline per model, each its own line style) on a
    log-scaled count axis.

    codes: {label: array of code values (any shape, flattened)}. Returns the PNG path."""
    fig, ax = plt.subplots(figsize=_WIDE, layout="constrained")
    arrays = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in codes.items()}
    arrays = {k: v[np.isfinite(v)] for k, v in arrays.items() if v.size}
    if arrays:
        lo = min(float(v.min()) for v in arrays.values())
        hi = max(float(v.max()) for v in arrays.values())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
        for i, (label, values) in enumerate(arrays.items()):
            ax.hist(values, bins=edges, histtype="step", linewidth=1.6, linestyle=LINESTYLES[i % 4], label=label,
                    color="black" if i == 0 else OTHER_COLOURS[i % len(OTHER_COLOURS)])
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    _style(ax, title, "code value E_j", "count (log scale)")
    return save_figure(fig, path)


def plot_per_class(class_names: list[str], series: dict[str, list[float]], path: str | Path,
                   title: str = "", ylabel: str = "psnr (dB, mean per-image)") -> Path:
    """Grouped bar chart of PSNR (dB) per class.

    class_names: the x labels; series: {label: one PSNR per class (None for missing)}. Returns the
    PNG path."""
    fig, ax = plt.subplots(figsize=_WIDE, layout="constrained")
    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(class_names))
    for i, (label, values) in enumerate(series.items()):
        vals = [np.nan if v is None else v for v in values]
        ax.bar(x + (i - (n - 1) / 2) * width, vals, width=width, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(class_names, rotation=30 if max((len(c) for c in class_names), default=0) > 3 else 0,
                       ha="right" if max((len(c) for c in class_names), default=0) > 3 else "center")
    finite = [v for vs in series.values() for v in vs if v is not None and np.isfinite(v)]
    if finite:
        ax.set_ylim(min(finite) - 1.0, max(finite) + 0.5)
    _style(ax, title, "class", ylabel)
    if series:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_seconds(labels: list[str], seconds: list[float], path: str | Path, groups: list[str] | None = None,
                 title: str = "") -> Path:
    """Horizontal bar chart of seconds per trial, coloured by group (e.g. the trial's phase).

    labels, seconds: one entry per trial (seconds of wall or training time); groups: a group name
    per trial for the colour and legend. Returns the PNG path."""
    height = min(16.0, 1.2 + 0.2 * len(labels))
    fig, ax = plt.subplots(figsize=(7.2, height), layout="constrained")
    groups = groups or [""] * len(labels)
    names = list(dict.fromkeys(groups))
    colours = {g: phase_colour(g, i) for i, g in enumerate(names)}
    y = np.arange(len(labels))[::-1]
    ax.barh(y, [s or 0.0 for s in seconds], color=[colours[g] for g in groups])
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=6 if len(labels) > 30 else 7)
    for g in names:
        if g:
            ax.barh([np.nan], [0], color=colours[g], label=g)
    _style(ax, title, "seconds", "")
    ax.grid(True, axis="y", alpha=0.0)
    if any(names):
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def plot_timeline(jobs: list[dict], path: str | Path, title: str = "") -> Path:
    """Which worker ran what when: one lane per worker, a bar per job from its start to its end
    (seconds since the study's run started), coloured by phase; an autoencoder's evaluation (from
    its training's end, "trained") is drawn paler than its training.

    jobs: dicts with "worker", "start", "end", "phase" and optionally "trained" (seconds), as
    `report.timeline` returns them. Returns the PNG path."""
    lanes = list(dict.fromkeys(j["worker"] for j in sorted(jobs, key=lambda j: j["start"])))
    fig, ax = plt.subplots(figsize=(7.2, min(12.0, 1.4 + 0.28 * len(lanes))), layout="constrained")
    phases = list(dict.fromkeys(j["phase"] for j in jobs))
    colours = {p: phase_colour(p, i) for i, p in enumerate(phases)}
    for j in jobs:
        y, colour = lanes.index(j["worker"]), colours[j["phase"]]
        trained = j.get("trained")
        if trained is None:
            ax.barh(y, j["end"] - j["start"], left=j["start"], color=colour, edgecolor="white", linewidth=0.3)
            continue
        ax.barh(y, trained - j["start"], left=j["start"], color=colour, edgecolor="white", linewidth=0.3)
        ax.barh(y, j["end"] - trained, left=trained, color=colour, alpha=0.4, edgecolor="white", linewidth=0.3)
    for p in phases:
        ax.barh([np.nan], [0], color=colours[p], label=p)
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([f"worker {i + 1}" for i in range(len(lanes))], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(left=0)  # the gap before the first bar is the workers' start-up
    _style(ax, title, "seconds since the run started", "")
    ax.grid(True, axis="y", alpha=0.0)
    if phases:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def plot_denoising(series: dict[str, tuple[list[float], list[float], list[float] | None]], path: str | Path,
                   phases: dict[str, str] | None = None, title: str = "",
                   ylabel: str = "psnr (dB, mean per-image)") -> Path:
    """PSNR (dB) of each denoising method against the noise variance sigma^2 ([0, 1] scale).

    series: {method label: (variances sigma^2, mean PSNR in dB, sd over seeds or None)}; phases:
    {label: phase} for the autoencoders, drawn thick in their phase's colour (PHASE_COLOURS); the
    baselines thin, each its own colour, marker and line style, and every series shifted a little
    sideways so no line hides another. The x ticks show sigma^2 and sigma. Returns the PNG path."""
    phases = phases or {}
    fig, ax = plt.subplots(figsize=_WIDE, layout="constrained")
    variances: set[float] = set()
    n = len(series)
    for i, (label, (xs, ys, sds)) in enumerate(series.items()):
        shifted = [x * 10 ** _dodge(i, n, 0.04) for x in xs]
        strong = label in phases
        ax.errorbar(shifted, ys, yerr=sds, marker=MARKERS[i % len(MARKERS)], markersize=5 if strong else 4,
                    linewidth=2.6 if strong else 1.2, linestyle=":" if label == "noisy" else LINESTYLES[i % 4],
                    color=phase_colour(phases[label]) if strong else OTHER_COLOURS[i % len(OTHER_COLOURS)],
                    capsize=3, label=label, zorder=3 if strong else 2)
        variances.update(xs)
    if variances:
        ticks = sorted(variances)
        ax.set_xscale("log")
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{v:g}\nσ={v ** 0.5:.2f}" for v in ticks])
        ax.minorticks_off()
    _style(ax, title, "noise variance σ²", ylabel)
    if series:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return save_figure(fig, path)
