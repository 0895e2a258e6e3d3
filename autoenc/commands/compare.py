"""`autoenc compare PATH...`: the results table of any runs (sweep folders, run folders, study
folders, globs), as a table, a pivot grid, CSV, Markdown or HTML, and psnr against latent size.

    autoenc compare multirun/latent=15,30,50,100-3f2a1c
    autoenc compare outputs/* multirun/... --pivot latent model --pca
"""
from __future__ import annotations

import argparse
import sys

from ..errors import AutoencError
from ..files import atomic_write_text
from ..report import tables

FORMATS = ("table", "csv", "markdown", "html")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autoenc compare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", metavar="PATH", help="sweep, run or study folders, or globs of them")
    p.add_argument("--pivot", nargs=2, metavar=("ROWS", "COLS"),
                   help="a grid of --value (mean over runs per cell), e.g. --pivot latent model")
    p.add_argument("--value", default="psnr", help="the number a pivot shows (default: psnr, dB)")
    p.add_argument("--sort", metavar="COLUMN", help="sort the rows by this column (psnr: best first)")
    p.add_argument("--format", choices=FORMATS, default="table", help="how to print (default: table)")
    p.add_argument("--out", metavar="FILE", help="write there instead of printing (format from --format)")
    p.add_argument("--plot", metavar="FILE.png", help="draw psnr against latent size, a line per model and dataset")
    p.add_argument("--pca", action="store_true", help="add PCA with k = L as a reference (pca_psnr, a PCA column)")
    p.add_argument("--data-dir", help="where the datasets are, for --pca (default: $AUTOENC_DATA_DIR, the cache)")
    return p


def render(frame, fmt: str, title: str, index: bool) -> str:
    """One table in `fmt` (csv, markdown, html) as text."""
    if fmt == "csv":
        return frame.to_csv(index=index)
    if fmt == "markdown":
        return (f"**{title}**\n\n" if title else "") + tables.to_markdown(frame, index=index) + "\n"
    return (f"<h3>{title}</h3>\n" if title else "") + tables.to_html(frame, index=index) + "\n"


def main(args: list[str]) -> int:
    ns = parser().parse_args(args)
    try:
        frame = tables.runs_table(ns.paths)
        if ns.pca:
            frame = tables.with_pca(frame, ns.data_dir)
        if ns.sort:
            if ns.sort not in frame.columns:
                raise AutoencError(f"--sort {ns.sort}: no such column; columns: {', '.join(frame.columns)}")
            frame = frame.sort_values(ns.sort, ascending=ns.sort not in ("psnr", "psnr_dataset", "ssim", "val_psnr"))
        parts = []
        for title, part in tables.groups(frame):
            if ns.pivot:
                grid = tables.pivot(part, *ns.pivot, value=ns.value)
                if ns.pca and ns.pivot[0] == "latent":
                    grid["PCA (k=L)"] = part.groupby("latent")["pca_psnr"].mean()
                parts.append((f"{title}: {ns.value} (dB), {ns.pivot[0]} x {ns.pivot[1]}", grid, True))
            else:
                parts.append((title, part, False))
        if ns.plot:
            path = tables.plot_psnr_vs_latent(frame, ns.plot, ns.value)
            print(f"wrote {path}", file=sys.stderr)
        if ns.format == "table" and not ns.out:
            for title, part, index in parts:
                tables.print_table(part, title, index=index)
            return 0
        fmt = "markdown" if ns.format == "table" else ns.format
        if fmt == "csv" and len(parts) > 1 and not ns.pivot:
            text = frame.to_csv(index=False)  # one CSV: the protocol columns tell the groups apart
        else:
            text = "\n".join(render(part, fmt, title if len(parts) > 1 or fmt != "csv" else "", index)
                             for title, part, index in parts)
        if ns.out:
            atomic_write_text(ns.out, text)
            print(f"wrote {ns.out}", file=sys.stderr)
        else:
            sys.stdout.write(text)
    except AutoencError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
