"""Denoising autoencoders against the classical denoisers, on the protocol's test noise.

    python benchmarks/denoise_table.py [--datasets mnist,fashion-mnist] [--depth 3] [--latent 100]
        [--widths 1024,512] [--epochs 60] [--out outputs/denoise_table] [--baselines all]

Trains one denoiser per noise variance in {0.01, 0.04, 0.09, 0.16, 0.25} and one blind denoiser
(sigma uniform in [0.1, 0.5]) per dataset, runs every baseline with its parameter chosen on the
validation split, and prints one table per dataset: psnr (mean per-image PSNR, dB) per method and
level, the margin of the per-level denoiser over the best baseline, and each method's seconds.
It runs as a study (autoenc.study) in --out, so an interrupted run resumes. With --from DIR it
trains nothing and prints the tables of a finished study's denoising part (e.g. the default
study's folder, whose denoisers use the compression part's best architecture).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from autoenc.config import BASELINES as ALL_BASELINES
from autoenc.config import DenoiseConfig, StudyConfig
from autoenc.study import run_study

LEVELS = [0.01, 0.04, 0.09, 0.16, 0.25]
TARGET = {"mnist": 1.5, "fashion-mnist": 0.7}  # issue 5: dB over the best baseline at sigma^2 >= 0.04


def _fmt(v) -> str:
    return "" if v is None else f"{v:.2f}"


def print_table(dataset: str, rows: list[dict]) -> None:
    """One Markdown table of psnr (dB) per method x level, with margins and seconds."""
    rows = [r for r in rows if r["dataset"] == dataset]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    print(f"\n### {dataset} (test split; psnr = mean per-image PSNR in dB; * = on the fixed 1,000-image subset)\n")
    print("| method | " + " | ".join(f"σ²={v:g} (σ={v ** 0.5:.1f})" for v in LEVELS) + " | seconds |")
    print("| --- |" + " --- |" * (len(LEVELS) + 1))
    for m in methods:
        cells, secs = [], 0.0
        for v in LEVELS:
            r = next((x for x in rows if x["method"] == m and x["noise_var"] == v), None)
            if r is None:
                cells.append("")
                continue
            # one blind model serves every level: count its training once
            secs = max(secs, r.get("seconds") or 0.0) if m == "dae-blind" else secs + (r.get("seconds") or 0.0)
            cells.append(_fmt(r["psnr"]) if r.get("psnr") is not None else
                         (_fmt(r.get("subset_psnr")) + "*" if r.get("subset_psnr") is not None else "n/a"))
        print(f"| {m} | " + " | ".join(cells) + f" | {secs:.0f} |")
    margins = []
    for v in LEVELS:
        dae = next((x["psnr"] for x in rows if x["method"] == "dae" and x["noise_var"] == v), None)
        base = [x["psnr"] for x in rows if x["noise_var"] == v and x["method"] in ALL_BASELINES
                and x["method"] != "noisy" and x.get("psnr") is not None]
        margins.append(None if dae is None or not base else dae - max(base))
    print("| **dae − best baseline** | " + " | ".join("" if m is None else f"{m:+.2f}" for m in margins) + " | |")
    blind = [next((x["psnr"] for x in rows if x["method"] == k and x["noise_var"] == v), None)
             for v in LEVELS for k in ("dae-blind", "dae")]
    gaps = [b - d for b, d in zip(blind[0::2], blind[1::2]) if b is not None and d is not None]
    print("| **dae-blind − dae** | " + " | ".join(f"{g:+.2f}" for g in gaps) + " | |")
    ok = all(m is not None and m >= TARGET.get(dataset, 0) for m, v in zip(margins, LEVELS) if v >= 0.04)
    print(f"\ntarget (dae ≥ best baseline + {TARGET.get(dataset, 0)} dB at σ² ≥ 0.04): {'met' if ok else 'NOT met'}; "
          f"blind within 0.5 dB of per-level everywhere: {'yes' if gaps and min(gaps) >= -0.5 else 'no'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="mnist,fashion-mnist")
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--widths", default=None, help="explicit hidden widths instead of --depth, e.g. 1024,512")
    ap.add_argument("--latent", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--baselines", default="all")
    ap.add_argument("--subset", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("outputs/denoise_table"))
    ap.add_argument("--from", dest="source", type=Path, default=None,
                    help="print the tables of this finished study folder instead of training")
    args = ap.parse_args()
    if args.source is not None:
        rows = json.loads((args.source / "denoising.json").read_text())
        for dataset in dict.fromkeys(r["dataset"] for r in rows):
            print_table(dataset, rows)
        return
    arch = ({"widths": [int(w) for w in args.widths.split(",")]} if args.widths else {"depth": args.depth})
    arch["latent"] = args.latent
    methods = list(ALL_BASELINES) if args.baselines == "all" else args.baselines.split(",")
    config = StudyConfig(name="denoise_table", datasets=args.datasets.split(","), depths=[], latents=[], pca=False,
                         l2=[], l1=[], denoising=DenoiseConfig(variances=LEVELS, blind=[0.01, 0.25], architecture=arch,
                                                              baselines=methods, subset=args.subset,
                                                              epochs=args.epochs, gpu_epochs=args.epochs))
    summary = run_study(config, args.out, workers=args.workers)
    print(f"architecture {arch}, {args.epochs} epochs; study folder {args.out}; "
          f"wall {summary.get('wall_seconds', 0):.0f} s")
    for dataset in config.datasets:
        print_table(dataset, json.loads((args.out / "denoising.json").read_text()))


if __name__ == "__main__":
    main()
