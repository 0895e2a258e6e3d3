"""Results tables of runs: a row per run folder (its config and metrics) from any mix of sweep
folders, run folders, study folders and globs; pivots, the formats to print them in, and psnr
against latent size as a plot. Runs of another dataset or protocol (test images, inputs) are
grouped apart, never averaged together. PSNR in dB (mean per-image psnr unless named otherwise).
"""
from __future__ import annotations

import glob
import html
import json
import math
from pathlib import Path

import pandas as pd

from ..config import PRESETS
from ..errors import ConfigError

CONFIG_COLUMNS = ["dataset", "model", "widths", "latent", "activation", "norm", "regularizer", "l2", "l1", "noise",
                  "noise_var", "trainer", "epochs", "batch_size", "lr", "seed", "backend"]
METRIC_COLUMNS = ["psnr", "psnr_dataset", "ssim", "val_psnr", "epochs_run", "best_epoch", "seconds", "parameters",
                  "test_images", "scored_on", "status", "run"]
PROTOCOL = ["dataset", "test_images", "scored_on"]  # runs compare only within one of these groups


def _read(path: Path):
    try:
        return json.loads(path.read_text()) if path.suffix == ".json" else _yaml(path)
    except (OSError, ValueError):
        return None


def _yaml(path: Path):
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def is_run(folder: Path) -> bool:
    """A run folder: one `autoenc train` made (.hydra/config.yaml) or any with the engine's config.json."""
    return (folder / ".hydra" / "config.yaml").is_file() or (folder / "config.json").is_file()


def find_runs(paths: list[str | Path]) -> list[Path]:
    """The run folders in `paths` (run folders, or folders holding them at any depth; globs
    expanded), in order, each once. A path that matches nothing is a ConfigError."""
    found: list[Path] = []
    for given in paths:
        matches = sorted(Path(p) for p in glob.glob(str(given))) or [Path(given)]
        for path in matches:
            if not path.exists():
                raise ConfigError(f"{given}: no such file or folder")
            if path.is_dir() and is_run(path):
                found.append(path)
            elif path.is_dir():
                found += sorted({p.parent.parent if p.parent.name == ".hydra" else p.parent
                                 for p in path.rglob("*") if p.name in ("config.yaml", "config.json")
                                 and is_run(p.parent.parent if p.parent.name == ".hydra" else p.parent)})
    runs = list(dict.fromkeys(p.resolve() for p in found))
    if not runs:
        raise ConfigError(f"no run folders in {', '.join(map(str, paths))}: give sweep folders (multirun/...), run "
                          f"folders (outputs/...) or study folders")
    return runs


def _model_name(widths: list[int]) -> str:
    for depth, preset in PRESETS.items():
        if tuple(widths) == preset:
            return f"deep{depth}"
    return "w" + "-".join(map(str, widths))


def run_row(folder: Path) -> dict:
    """One run as a table row: its config (from .hydra/config.yaml, else config.json) and its
    metrics (metrics.json); status ok, failed (failed.json: error), or unfinished."""
    job = _read(folder / ".hydra" / "config.yaml") or {}
    eng = _read(folder / "config.json") or {}
    metrics = _read(folder / "metrics.json") or {}
    failed = _read(folder / "failed.json")
    model, train = eng.get("model", {}), eng.get("train", {})
    row: dict = {}
    if job:
        d, m, r, n, t = (job.get(k, {}) for k in ("dataset", "model", "regularizer", "noise", "trainer"))
        row.update(dataset=Path(d["path"]).stem if d.get("path") else d.get("name"), model=m.get("name"),
                   widths="-".join(map(str, m.get("widths", []))), latent=job.get("latent"),
                   activation=m.get("activation"), norm=m.get("norm"), regularizer=r.get("name"), l2=r.get("l2"),
                   l1=r.get("l1"), noise=n.get("name"),
                   noise_var=n.get("var") if n.get("name") == "gaussian" else
                   (f"{n['range'][0]:g}-{n['range'][1]:g}" if n.get("name") == "blind" else None),
                   trainer=t.get("name"), epochs=t.get("epochs"), batch_size=t.get("batch_size"), lr=t.get("lr"),
                   seed=job.get("seed"), backend=job.get("backend", "torch"))
    elif eng:
        nv = train.get("noise_var")
        row.update(dataset=Path(str(eng.get("dataset"))).stem if "/" in str(eng.get("dataset")) else eng.get("dataset"),
                   model=_model_name(model.get("widths", [])), widths="-".join(map(str, model.get("widths", []))),
                   latent=model.get("latent"), activation=model.get("activation"), norm=model.get("norm"),
                   regularizer="+".join(k for k in ("l2", "l1") if train.get(k)) or "none", l2=train.get("l2"),
                   l1=train.get("l1"), noise="none" if nv is None else "blind" if isinstance(nv, list) else "gaussian",
                   noise_var=f"{nv[0]:g}-{nv[1]:g}" if isinstance(nv, list) else nv, trainer=None,
                   epochs=train.get("epochs"), batch_size=train.get("batch_size"), lr=train.get("lr"),
                   seed=train.get("seed"), backend=eng.get("backend", "torch"))
    nv = metrics.get("noise_var")
    row.update({k: metrics.get(k) for k in ("psnr", "psnr_dataset", "ssim", "val_psnr", "epochs_run", "best_epoch",
                                            "parameters")})
    row.update(seconds=metrics.get("train_seconds"), test_images=metrics.get("n_images"),
               scored_on="clean" if metrics and nv is None else (f"noisy {nv:g}" if nv is not None else None),
               status="ok" if metrics else "failed" if failed else "unfinished", run=_shown(folder),
               error=(failed or {}).get("error"))
    return row


def _shown(folder: Path) -> str:
    """A run folder as it reads best: relative to the current folder when inside it."""
    try:
        return str(folder.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(folder)


def runs_table(paths: list[str | Path]) -> pd.DataFrame:
    """A DataFrame with a row per run folder in `paths` (`find_runs`), CONFIG_COLUMNS then
    METRIC_COLUMNS (and error, for failed runs)."""
    rows = [run_row(folder) for folder in find_runs(paths)]
    frame = pd.DataFrame(rows)
    columns = [c for c in CONFIG_COLUMNS + METRIC_COLUMNS + ["error"] if c in frame.columns]
    frame = frame[columns]
    if "error" in frame.columns and frame["error"].isna().all():
        frame = frame.drop(columns="error")
    return frame


def varying(frame: pd.DataFrame) -> list[str]:
    """The config columns whose value differs between rows (what a sweep swept)."""
    return [c for c in CONFIG_COLUMNS if c in frame.columns and frame[c].astype(str).nunique(dropna=False) > 1]


def sweep_table(frame: pd.DataFrame) -> pd.DataFrame:
    """A sweep's results.csv: the columns that vary first (rows sorted by them), then the others."""
    first = varying(frame)
    ordered = frame.sort_values(first, kind="stable") if first else frame
    return ordered[first + [c for c in frame.columns if c not in first]].reset_index(drop=True)


def groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """The runs split by protocol (dataset, test images, inputs scored): (title, rows) each."""
    keys = [k for k in PROTOCOL if k in frame.columns]
    if not keys or frame.empty:
        return [("runs", frame)]
    out = []
    for values, part in frame.groupby(keys, dropna=False, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        d = dict(zip(keys, values))
        n = d.get("test_images")
        title = ", ".join(str(x) for x in (
            d.get("dataset"), f"{int(n):,} test images" if isinstance(n, (int, float)) and not math.isnan(n) else None,
            f"{d.get('scored_on')} inputs" if isinstance(d.get("scored_on"), str) else None) if x)
        out.append((title or "runs", part))
    return out


def pivot(frame: pd.DataFrame, rows: str, cols: str, value: str = "psnr") -> pd.DataFrame:
    """`value` (mean over runs in a cell, e.g. over seeds) as a rows x cols grid."""
    for key in (rows, cols, value):
        if key not in frame.columns:
            raise ConfigError(f"--pivot {rows} {cols}: no column {key!r}; columns: {', '.join(frame.columns)}")
    ok = frame[frame["status"] == "ok"] if "status" in frame.columns else frame
    return ok.pivot_table(index=rows, columns=cols, values=value, aggfunc="mean")


def with_pca(frame: pd.DataFrame, data_dir: str | None = None) -> pd.DataFrame:
    """Add pca_psnr: PCA with k = each run's latent size, fitted on its dataset's training split,
    scored on the same test images (clean inputs)."""
    from .. import data
    from ..evaluation.baselines import fit_pca, pca_reconstruction_scores

    wanted = {(r.dataset, r.test_images, int(r.latent)) for r in frame.itertuples()
              if r.dataset in data.KNOWN_DATASETS and isinstance(r.latent, (int, float)) and not pd.isna(r.latent)}
    fitted, scores = {}, {}
    for dataset, n, latent in sorted(wanted, key=str):
        if dataset not in fitted:
            k = max(L for d, _, L in wanted if d == dataset)
            fitted[dataset] = fit_pca(data.load(dataset, "train", data_dir)[0], k)
        x_test = data.load(dataset, "test", data_dir)[0][:None if pd.isna(n) else int(n)]
        scores[(dataset, n, latent)] = pca_reconstruction_scores(fitted[dataset], x_test, [latent])[0]["psnr"]
    frame = frame.copy()
    frame["pca_psnr"] = [scores.get((r.dataset, r.test_images, int(r.latent))) if not pd.isna(r.latent) else None
                         for r in frame.itertuples()]
    return frame


def _cell(value, column: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and column.endswith("ssim"):
        return f"{value:.4f}"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    return str(value)


def to_markdown(frame: pd.DataFrame, index: bool = False) -> str:
    """A Markdown table (floats to 2 decimals)."""
    frame = frame.reset_index() if index else frame
    head = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(_cell(v, str(c)) for c, v in zip(head, row)) + " |"
              for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def to_html(frame: pd.DataFrame, index: bool = False) -> str:
    """An HTML table (floats to 2 decimals)."""
    frame = frame.reset_index() if index else frame
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v, str(c)))}</td>" for c, v in zip(frame.columns, row))
                   + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>"


def print_table(frame: pd.DataFrame, title: str = "", index: bool = False) -> None:
    """Print `frame` as a rich table on stdout."""
    from rich.console import Console
    from rich.table import Table

    frame = frame.reset_index() if index else frame
    table = Table(title=title or None, title_justify="left")
    for column in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[column])
        table.add_column(str(column), justify="right" if numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(_cell(v, str(c)) for c, v in zip(frame.columns, row)))
    Console(width=max(160, Console().width)).print(table)


def plot_psnr_vs_latent(frame: pd.DataFrame, path: str | Path, value: str = "psnr") -> Path:
    """psnr against latent size, one line per model and dataset (and backend, if several), PCA
    dashed when the frame has pca_psnr. Returns the PNG path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..figures import save_figure

    ok = frame[(frame["status"] == "ok") & frame["latent"].notna()]
    if ok.empty:
        raise ConfigError("--plot: no finished run with a latent size to plot")
    keys = ["dataset", "model"] + (["backend"] if ok["backend"].nunique() > 1 else [])
    fig, ax = plt.subplots(figsize=(7.2, 3.9), layout="constrained")
    for values, part in ok.groupby(keys, sort=True):
        line = part.groupby("latent")[value].mean()
        ax.plot(line.index, line.values, marker="o", linewidth=2, label=" ".join(map(str, values)))
    if "pca_psnr" in ok.columns:
        for dataset, part in ok.groupby("dataset"):
            line = part.groupby("latent")["pca_psnr"].mean()
            ax.plot(line.index, line.values, "k--", marker="s", markersize=4, linewidth=1.2, label=f"{dataset} PCA")
    ax.set_xticks(sorted(ok["latent"].unique()))
    ax.set_xlabel("latent size L")
    ax.set_ylabel(f"test {value} (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
