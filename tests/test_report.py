"""The study report (autoenc.report): on the quick study and on small hand-made study folders.

The hand-made folders (`make_study`) hold the files a study writes (summary.json, results.json,
denoising.json, trials/<id>/...) with chosen numbers, so each test knows the right answer and
runs in a second; the quick study checks the same on real output.
"""
from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from autoenc.report import findings
from autoenc.report import sections as report
from autoenc.figures import image_grid

SECTIONS = ["Findings", "Compression", "Regularization", "Image grids", "Training curves", "Per-class PSNR",
            "Time per trial", "How the trials were scheduled"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------
# hand-made study folders
# ------------------------------------------------------------------------------------------

_PNGS: dict[int, bytes] = {}


def _grid_png(path: Path, rows: int = 2) -> None:
    """A small image grid PNG (made once per row count, then copied)."""
    if rows not in _PNGS:
        g = torch.Generator().manual_seed(rows)
        image_grid([torch.rand(4, 16, generator=g) for _ in range(rows)], (4, 4), path)
        _PNGS[rows] = path.read_bytes()
    path.write_bytes(_PNGS[rows])


def _ae_row(dataset: str, phase: str, depth: int, latent: int, psnr: float, l2: float = 0.0, l1: float = 0.0,
            noise_var=None, val_offset: float = 0.0, gap: float = 0.3, noisy: float = -0.4,
            zero: float = 0.001, variances=(), subset: int = 0) -> dict:
    widths = [256, 128] if depth == 3 else [512, 384, 256, 128]
    tag = f"d{depth}-L{latent}" + (f"-l2_{l2:g}" if l2 else "") + (f"-l1_{l1:g}" if l1 else "")
    if noise_var is not None:
        tag += f"-blind{noise_var[0]:g}_{noise_var[1]:g}" if isinstance(noise_var, list) else f"-noise{noise_var:g}"
    den = [{"noise_var": v, "sigma": math.sqrt(v), "psnr": psnr - 10 * v, "psnr_dataset": psnr - 10 * v - 0.4,
            "ssim": 0.5, "n_images": 300, "noisy_psnr": 10 - 10 * math.log10(v),
            **({"subset_psnr": psnr - 10 * v + 0.05, "subset_psnr_dataset": psnr - 10 * v - 0.35,
                "subset_ssim": 0.5, "subset_images": subset} if subset else {})} for v in variances]
    return {
        "id": f"{dataset}-{tag}-0000abcd", "phase": phase, "kind": "ae", "dataset": dataset, "depth": depth,
        "widths": widths, "latent": latent, "l2": l2, "l1": l1, "noise_var": noise_var,
        "psnr": psnr, "psnr_dataset": psnr - 0.5, "ssim": 0.7, "mse": 10 ** (-psnr / 10),
        "val_psnr": psnr + val_offset, "train_psnr": psnr + gap, "noisy_psnr": psnr + noisy,
        "code_zero_fraction": zero, "code_dead_units": 0, "code_mean_abs": 0.5, "epochs_run": 3, "best_epoch": 3,
        "seconds": 1.5, "parameters": 1000 * depth + latent, "seed": 0, "status": "ok",
        "per_class_psnr": {str(c): psnr + 0.1 * c - 0.45 for c in range(10)}, "denoising": den,
        "run_dir": "run", "wall_seconds": 2.0,
    }


def _pca_row(dataset: str, k: int, psnr: float) -> dict:
    return {"id": f"{dataset}-pca-k{k}-0000abcd", "phase": "pca", "kind": "pca", "dataset": dataset, "depth": None,
            "widths": [], "latent": k, "l2": 0.0, "l1": 0.0, "noise_var": None, "psnr": psnr,
            "psnr_dataset": psnr - 0.4, "ssim": 0.6, "val_psnr": psnr, "train_psnr": psnr + 0.1,
            "noisy_psnr": psnr - 0.3, "seconds": 0.5, "parameters": k * 785, "seed": 0, "status": "ok",
            "per_class_psnr": {str(c): psnr for c in range(10)}, "wall_seconds": 0.6}


def _baselines(dataset: str, var: float, full: int = 300, subset: int = 100) -> dict:
    def b(method, psnr, param=None, name=None, n=full, note=""):
        return {"method": method, "var": var, "sigma": math.sqrt(var), "param": param, "param_name": name,
                "psnr": psnr, "psnr_dataset": None if psnr is None else psnr - 0.2, "ssim": 0.5,
                "n_images": n, "subset": n < full, "seconds": 0.3, "note": note}

    rows = [b("noisy", -10 * math.log10(var)), b("gaussian", 17.0 - 10 * var, 0.7, "sigma_px"),
            b("nlm", 17.5 - 10 * var, 0.05, "h", n=subset), b("linear", 18.0 - 10 * var),
            b("bm3d", None, n=0, note="bm3d is not installed (pip install bm3d)")]
    return {"id": f"{dataset}-baselines-noise{var:g}-0000abcd", "kind": "baselines", "phase": "baselines",
            "dataset": dataset, "noise_var": var, "rows": rows, "status": "ok", "wall_seconds": 3.0}


def _denoising_rows(rows: list[dict], baselines: list[dict], variances) -> list[dict]:
    out = []
    for b in baselines:
        for m in b["rows"]:
            out.append({"dataset": b["dataset"], "noise_var": b["noise_var"], "sigma": m["sigma"],
                        "method": m["method"], "detail": "", "seconds": m["seconds"],
                        **{k: m.get(k) for k in ("psnr", "psnr_dataset", "ssim", "n_images")},
                        "subset_psnr": None, "subset_psnr_dataset": None, "subset_images": None})
    for r in rows:
        if r["kind"] != "ae" or r.get("noise_var") is None:
            continue
        for s in r["denoising"]:
            if isinstance(r["noise_var"], list) or s["noise_var"] == r["noise_var"]:
                out.append({"dataset": r["dataset"], "noise_var": s["noise_var"], "sigma": s["sigma"],
                            "method": "dae-blind" if isinstance(r["noise_var"], list) else "dae",
                            "detail": "", "seconds": 1.0,
                            **{k: s.get(k) for k in ("psnr", "psnr_dataset", "ssim", "n_images", "subset_psnr",
                                                     "subset_psnr_dataset", "subset_images")}})
    return out


def make_study(root: Path, datasets=("mnist",), denoising: bool = True, failed: bool = False, pca: bool = True) -> Path:
    """A finished study folder with known numbers.

    Per dataset: depth 3 at L=15 / 30 (psnr 18 / 20), depth 5 at L=15 / 30 (17.5 / 21: depth 5
    loses at L=15 and wins at L=30, and validation picks depth 5, L=30); PCA 16 / 19; l2 1e-5 and
    1e-4, l1 1e-5 and 1e-4, l2+l1; with denoising: a per-level denoiser at 0.04 and 0.16, a blind
    one, baselines (nlm on a 100-image subset, bm3d not installed). failed: one l1 trial failed.
    pca=False: a study with `pca: false` (no PCA rows). The test subset is 300 images.
    """
    root.mkdir(parents=True, exist_ok=True)
    variances = [0.04, 0.16] if denoising else []
    rows, baselines = [], []
    for ds in datasets:
        grid = [_ae_row(ds, "grid", 3, 15, 18.0, variances=variances, subset=100),
                _ae_row(ds, "grid", 3, 30, 20.0, variances=variances, subset=100),
                _ae_row(ds, "grid", 5, 15, 17.5, variances=variances, subset=100),
                _ae_row(ds, "grid", 5, 30, 21.0, variances=variances, subset=100)]
        rows += grid + ([_pca_row(ds, 15, 16.0), _pca_row(ds, 30, 19.0)] if pca else [])
        if denoising:
            rows += [_ae_row(ds, "denoise", 5, 30, 21.0, noise_var=v, variances=variances, subset=100)
                     for v in variances]
            rows += [_ae_row(ds, "blind", 5, 30, 20.9, noise_var=[0.04, 0.16], variances=variances, subset=100)]
            baselines += [_baselines(ds, v) for v in variances]
        rows += [_ae_row(ds, "l2", 5, 30, 21.05, l2=1e-5, val_offset=0.1, gap=0.2, noisy=-0.2),
                 _ae_row(ds, "l2", 5, 30, 20.5, l2=1e-4, gap=0.05, noisy=-0.1),
                 _ae_row(ds, "l1", 5, 30, 20.95, l1=1e-5, zero=0.2, gap=0.35, noisy=-0.45),
                 _ae_row(ds, "l1", 5, 30, 20.0, l1=1e-4, zero=0.6)]
        if failed:
            bad = rows.pop()
            rows.append({"id": bad["id"], "kind": "ae", "phase": "l1", "dataset": ds, "status": "failed",
                         "error": "TrainingError: loss became NaN at epoch 2", "attempts": 2})
        rows.append(_ae_row(ds, "l2+l1", 5, 30, 21.02, l2=1e-5, l1=1e-5, val_offset=0.05, zero=0.15))
    for r in rows + baselines:
        folder = root / "trials" / r["id"]
        (folder / "run").mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps({**r, "trial": {"id": r["id"]}}))
        if r.get("kind") == "ae" and r.get("status") == "ok":
            _grid_png(folder / "grid.png")
            np.save(folder / "code_values.npy", np.random.default_rng(0).normal(size=(50, r["latent"])).astype(
                np.float32) * (1 - r["code_zero_fraction"]), allow_pickle=False)
            (folder / "run" / "history.jsonl").write_text("".join(
                json.dumps({"epoch": e, "train_loss": 0.1 / e, "val_loss": 0.1 / e,
                            "val_psnr": r["val_psnr"] - 3 + e, "lr": 1e-3, "seconds": 0.5}) + "\n"
                for e in range(1, 4)))
            if r["noise_var"] is not None:
                for v in variances:
                    _grid_png(folder / f"denoise_{v:g}.png", rows=3)
    ae_rows = [r for r in rows if r.get("kind") in ("ae", "pca")]
    config = {"name": "synthetic", "datasets": list(datasets), "depths": [3, 5], "latents": [15, 30],
              "epochs": {"3": 3, "5": 3}, "l2": [1e-5, 1e-4], "l1": [1e-5, 1e-4], "combined": True, "pca": pca,
              "denoising": ({"variances": variances, "blind": [0.04, 0.16], "architecture": "best", "model": {},
                             "train": {}, "baselines": ["noisy", "gaussian", "nlm", "linear", "bm3d"], "subset": 100}
                            if denoising else None),
              "subset": {"train": 2000, "val": 300, "test": 300}, "robustness_var": 0.01}
    failed_list = [{"id": r["id"], "phase": r["phase"], "dataset": r["dataset"], "error": r["error"],
                    "attempts": r["attempts"]} for r in rows if r.get("status") == "failed"]
    summary = {"study": config, "trials_total": len(rows) + len(baselines), "trials_done": len(rows) + len(baselines),
               "failed": failed_list, "choices": {}, "wall_seconds": 42.0}
    (root / "summary.json").write_text(json.dumps(summary))
    (root / "results.json").write_text(json.dumps(ae_rows))
    (root / "denoising.json").write_text(json.dumps(_denoising_rows(rows, baselines, variances)))
    return root


# ------------------------------------------------------------------------------------------
# helpers to read a report back
# ------------------------------------------------------------------------------------------

def _no_broken_section(md: str) -> None:
    assert report.SECTION_FAILED not in md


def _images(html: str) -> list[str]:
    return re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", html)


def _assert_self_contained(html: str) -> None:
    srcs = _images(html)
    assert srcs, "the report has no images"
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1], validate=True)[:8] == PNG_MAGIC
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the report loads something from the network"
    assert "@import" not in html and "url(" not in html


def _md_tables(md: str) -> list[list[dict]]:
    """Every Markdown table of `md` as a list of {column: cell} rows."""
    tables, lines, i = [], md.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("| ") and i + 1 < len(lines) and re.match(r"^\|( -{3}:? \|)+$", lines[i + 1]):
            head = [c.strip() for c in lines[i].strip("|").split(" | ")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("| "):
                rows.append(dict(zip(head, [c.strip() for c in lines[i].strip("|").split(" | ")])))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def _winner(rows: list[dict], dataset: str) -> dict:
    grid = [r for r in rows if r["dataset"] == dataset and r["phase"] == "grid" and r["status"] == "ok"]
    return max(grid, key=lambda r: r["val_psnr"])


# ------------------------------------------------------------------------------------------
# the quick study
# ------------------------------------------------------------------------------------------

def test_quick_report_has_every_section(quick_study):
    html = (quick_study / "report.html").read_text()
    md = (quick_study / "report.md").read_text()
    _no_broken_section(md)
    for text in (html, md):
        for section in SECTIONS + ["Denoising"]:
            assert section in text, section
        assert report.PSNR_LABEL in text and report.PSNR_DATASET_LABEL in text
        assert "Failed trials" not in text
    assert "Partial results" not in md
    from autoenc.training.device import resolve_precision

    assert f"Training arithmetic: {resolve_precision('auto', torch.device('cpu'))} " in md
    for heading in SECTIONS + ["Denoising"]:
        assert re.search(rf"<h2 id=\"[a-z-]+\">{heading}", html), heading


def test_quick_report_is_self_contained(quick_study):
    html = (quick_study / "report.html").read_text()
    _assert_self_contained(html)
    md = (quick_study / "report.md").read_text()
    _no_broken_section(md)
    refs = re.findall(r"\]\((report_files/[^)]+)\)", md)
    assert len(refs) == len(_images(html))
    for ref in refs:
        assert (quick_study / ref).read_bytes()[:8] == PNG_MAGIC


def test_quick_md_tables_match_results(quick_study):
    rows = json.loads((quick_study / "results.json").read_text())
    tables = _md_tables((quick_study / "report.md").read_text())
    grid_tables = [t for t in tables if t and "depth" in t[0] and "psnr_dataset (dB)" in t[0]]
    cells = {(r["depth"], r["L"], r["psnr (dB)"], r["psnr_dataset (dB)"], r["SSIM"]) for t in grid_tables for r in t}
    grid = [r for r in rows if r["phase"] == "grid" and r["status"] == "ok"]
    assert grid
    for r in grid:
        assert (str(r["depth"]), str(r["latent"]), f"{r['psnr']:.2f}", f"{r['psnr_dataset']:.2f}",
                f"{r['ssim']:.2f}") in cells, r["id"]
    for r in [r for r in rows if r["kind"] == "pca"]:
        assert ("PCA", str(r["latent"]), f"{r['psnr']:.2f}", f"{r['psnr_dataset']:.2f}", f"{r['ssim']:.2f}") in cells
    reg = {(r["psnr (dB)"], r["train psnr (dB)"], r["zero code"]) for t in tables for r in t if "zero code" in r}
    for r in [r for r in rows if r["phase"] in ("l2", "l1", "l2+l1")]:
        assert (f"{r['psnr']:.2f}", f"{r['train_psnr']:.2f}", f"{100 * r['code_zero_fraction']:.2f} %") in reg
    den = json.loads((quick_study / "denoising.json").read_text())
    den_cells = {c for t in tables for r in t if "method" in r for c in r.values()}
    for d in den:
        assert f"{d['psnr']:.2f}" in den_cells and f"{d['psnr_dataset']:.2f}" in den_cells


def test_quick_findings_name_the_winner(quick_study):
    rows = json.loads((quick_study / "results.json").read_text())
    md = (quick_study / "report.md").read_text()
    _no_broken_section(md)
    findings = md.split("## Findings", 1)[1].split("\n## ", 1)[0]
    for dataset in ("mnist", "fashion-mnist"):
        best = _winner(rows, dataset)
        part = findings.split(f"**{dataset}**", 1)[1]
        assert f"Validation chose depth {best['depth']}, L = {best['latent']}" in part
        assert f"psnr {best['psnr']:.2f} dB" in part


def _num(cell: str) -> float:
    """A table cell ("19.92", "−0.56", "±0.00", "0.07 %") as a number."""
    return float(cell.replace("−", "-").replace("±", "").replace("+", "").replace(" %", ""))


def test_quick_report_is_consistent_with_its_own_numbers(quick_study):
    """On real output: every difference equals the difference of the values shown beside it, a ✓
    regularizer beats the unregularized model on validation, and the sections say which test
    images (the quick preset's 1,000) and which times they sum."""
    md = (quick_study / "report.md").read_text()
    _no_broken_section(md)
    tables = _md_tables(md)
    per_class = [t for t in tables if t and "difference (dB)" in t[0]]
    assert len(per_class) == 2
    for r in [r for t in per_class for r in t]:
        assert _num(r["difference (dB)"]) == pytest.approx(_num(r["autoencoder psnr (dB)"]) - _num(r["PCA psnr (dB)"]))
    for t in [t for t in tables if t and "vs PCA (dB)" in t[0]]:
        pca = {r["L"]: _num(r["psnr (dB)"]) for r in t if r["depth"] == "PCA"}
        for r in [r for r in t if r["depth"] != "PCA"]:
            assert _num(r["vs PCA (dB)"]) == pytest.approx(_num(r["psnr (dB)"]) - pca[r["L"]])
    for t in [t for t in tables if t and "zero code" in t[0]]:
        none = t[0]
        assert none["setting"] == "none"
        for r in t:
            assert _num(r["gap (dB)"]) == pytest.approx(_num(r["train psnr (dB)"]) - _num(r["psnr (dB)"]))
            noisy = next(v for k, v in r.items() if k.startswith("noisy-input psnr"))
            assert _num(r["drop (dB)"]) == pytest.approx(_num(noisy) - _num(r["psnr (dB)"]))
            if "✓" in r["validation"]:
                assert _num(r["val psnr (dB)"]) > _num(none["val psnr (dB)"]), r
            elif "not above none" in r["validation"]:
                assert _num(r["val psnr (dB)"]) <= _num(none["val psnr (dB)"]), r
    sparsity = re.findall(r"zero code entries ([\d.]+) % → ([\d.]+) % \(([−+±][\d.]+) percentage points\)", md)
    assert len(sparsity) == 6  # l2, l1, l2+l1 on two datasets
    for before, after, change in sparsity:
        assert _num(change) == pytest.approx(float(after) - float(before))
    for heading in ("Compression", "Per-class PSNR"):
        assert "the first 1,000 test images (the study's subset.test)" in _section(md, heading), heading
    assert "about 100 per class" in _section(md, "Per-class PSNR") and "Test split" not in md
    assert re.search(r"Training time of the 20 autoencoders, summed: [^;]+; fitting time of the 4 PCA models", md)
    assert "Wall time of every trial, summed over the 48 trials (autoencoders, PCA, the classical denoisers)" in md


# ------------------------------------------------------------------------------------------
# hand-made studies
# ------------------------------------------------------------------------------------------

def test_synthetic_report_findings_and_tables(tmp_path):
    study = make_study(tmp_path / "s")
    html_path, md_path = report.write_report(study)
    assert (html_path, md_path) == (study / "report.html", study / "report.md")
    md, html = md_path.read_text(), html_path.read_text()
    _no_broken_section(md)
    _assert_self_contained(html)
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert "Validation chose depth 5, L = 30" in text and "psnr 21.00 dB" in text
    assert "−0.50 dB at L = 15 and +1.00 dB at L = 30" in text
    assert "depth 5 wins at L = 30 but loses at L = 15" in text
    assert "+2.00 dB at L = 15 and +2.00 dB at L = 30" in text  # margin over PCA (depth 3 at L=15)
    assert "Validation chose l2 = 1e-05" in text and "l1 = 1e-05" in text
    # denoising: best AE against the strongest baseline, nlm compared on its subset
    margins = findings.denoising_margins(findings.load_study(study), "mnist")
    assert [m["baseline"] for m in margins] == ["linear", "linear"]
    assert margins[0]["margin"] == pytest.approx((21.0 - 0.4) - (18.0 - 0.4))
    assert "leads the best baseline (linear" in text
    # the table marks the subset rows, shows the AEs on the subset and bm3d as not run with its note
    assert "100 (subset)" in md and "on the subset" in md and "not run" in md
    assert "bm3d is not installed" in md
    assert "sigma_px = 0.7" in md and "h = 0.05" in md
    assert "widths [512, 384, 256, 128] with L = 30 (depth 5)" in md
    reg = [t for t in _md_tables(md) if t and "zero code" in t[0]][0]
    by = {r["setting"]: r for r in reg}
    assert list(by) == ["none", "l2 = 1e-05", "l2 = 0.0001", "l1 = 1e-05", "l1 = 0.0001", "l2 = 1e-05 + l1 = 1e-05"]
    assert "✓ l2" in by["l2 = 1e-05"]["validation"] and "★ best" in by["l2 = 1e-05"]["validation"]
    assert by["l1 = 1e-05"]["validation"] == "best l1 tried, not above none"
    assert not any("✓ l1" in r["validation"] for r in reg)
    assert by["l1 = 0.0001"]["zero code"] == "60.00 %"
    assert by["none"]["gap (dB)"] == "0.30"
    # the claim is tested per setting: l2 = 1e-4 narrows the gap and helps on noisy inputs
    assert "l2 = 0.0001: train−test gap 0.30 → 0.05 dB (narrower: less overfitting)" in md
    assert "supports the claim" in md and "does not support the claim" in md
    assert "Failed trials" not in md and "Partial results" not in md


def _edit_rows(study: Path, edit) -> None:
    """Rewrite results.json with edit(row) applied to every row (results.json stays the newest file)."""
    rows = json.loads((study / "results.json").read_text())
    for r in rows:
        edit(r)
    (study / "results.json").write_text(json.dumps(rows))


def _section(md: str, heading: str) -> str:
    return md.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("kind", ["empty", "run folder", "missing"])
def test_report_refuses_a_folder_that_is_not_a_study(tmp_path, kind, capsys):
    """An empty folder, a training run folder or no folder at all: an error naming the folder and
    what to run, exit status 2 from the CLI, and nothing written there."""
    from autoenc.cli import main
    from autoenc.errors import ConfigError

    folder = tmp_path / "mnist-d5-L30-s0"
    if kind != "missing":
        folder.mkdir()
    if kind == "run folder":
        (folder / "config.json").write_text(json.dumps({"dataset": "mnist"}))
        (folder / "history.jsonl").write_text("")
    before = sorted(p.name for p in folder.iterdir()) if folder.exists() else None
    with pytest.raises(ConfigError) as err:
        report.write_report(folder)
    message = str(err.value)
    assert message.startswith(f"{folder} is not a study folder")
    assert "autoenc study hydra.run.dir=" in message
    if kind != "missing":
        assert "it holds no study.yaml" in message
        assert ("training run folder (config.json)" in message) == (kind == "run folder")
        assert ("it is empty" in message) == (kind == "empty")
        with pytest.raises(SystemExit) as stop:
            main(["report", str(folder)])
        assert stop.value.code == 2 and f"error: {folder} is not a study folder" in capsys.readouterr().err
    assert (sorted(p.name for p in folder.iterdir()) if folder.exists() else None) == before


def test_a_regularizer_is_chosen_only_when_it_beats_no_regularization(tmp_path):
    """The best l2 tried (validation psnr 21.15 dB) beats the unregularized 21.00 dB: chosen. The
    best l1 tried (20.95 dB, then 21.004 dB: 21.00 as shown) does not: validation keeps no l1, and
    neither the findings nor the table mark it as chosen."""
    study = make_study(tmp_path / "s", denoising=False)
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert ("Validation chose l2 = 1e-05 (validation psnr 21.15 dB, above the unregularized 21.00 dB) and no l1: "
            "its best value tried, l1 = 1e-05 (validation psnr 20.95 dB), is not above the unregularized 21.00 dB."
            ) in text
    assert "Validation chose l1" not in text
    _edit_rows(study, lambda r: r.update(val_psnr=21.004) if r["id"] == "mnist-d5-L30-l1_1e-05-0000abcd" else None)
    choices = findings.regularizer_choices(findings.load_study(study), "mnist")
    assert {p: (r["id"], chosen) for p, (r, chosen) in choices.items()} == {
        "l2": ("mnist-d5-L30-l2_1e-05-0000abcd", True), "l1": ("mnist-d5-L30-l1_1e-05-0000abcd", False)}
    _, md_path = report.write_report(study)
    reg = {r["setting"]: r["validation"] for t in _md_tables(md_path.read_text()) if t and "zero code" in t[0]
           for r in t}
    assert reg == {"none": "", "l2 = 1e-05": "✓ l2 ★ best", "l2 = 0.0001": "",
                   "l1 = 1e-05": "best l1 tried, not above none", "l1 = 0.0001": "", "l2 = 1e-05 + l1 = 1e-05": ""}


def test_the_best_setting_overall_follows_the_choice_as_shown(tmp_path):
    """l2 = 1e-5 at validation psnr 21.004 dB shows as 21.00, the unregularized model's: validation
    keeps no l2, so the best setting overall is none (it said l2 = 1e-05, beside "not above")."""
    study = make_study(tmp_path / "s", denoising=False)
    val = {"mnist-d5-L30-l2_1e-05-0000abcd": 21.004, "mnist-d5-L30-l2_1e-05-l1_1e-05-0000abcd": 21.003}
    _edit_rows(study, lambda r: r.update(val_psnr=val[r["id"]]) if r["id"] in val else None)
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert "no l2: its best value tried, l2 = 1e-05 (validation psnr 21.00 dB), is not above" in text
    assert "Best setting on validation overall: none." in text
    _, md_path = report.write_report(study)
    reg = {r["setting"]: r["validation"] for t in _md_tables(md_path.read_text()) if t and "zero code" in t[0]
           for r in t}
    assert reg["none"] == "★ best" and reg["l2 = 1e-05"] == "best l2 tried, not above none"


def test_no_code_histogram_without_l1(tmp_path):
    """A study with l2 only (l1: []): the histogram "with and without l1" would show one curve under
    that title, so the report leaves it out."""
    study = make_study(tmp_path / "s", denoising=False)
    rows = [r for r in json.loads((study / "results.json").read_text()) if r["phase"] not in ("l1", "l2+l1")]
    (study / "results.json").write_text(json.dumps(rows))
    for trial in (study / "trials").iterdir():
        if "-l1_" in trial.name:
            shutil.rmtree(trial)
    md = report.write_report(study)[1].read_text()
    _no_broken_section(md)
    assert "l2 = 0.0001" in _section(md, "Regularization")
    assert "code-histogram" not in md and "with each l1" not in md


def test_robustness_is_the_drop_from_clean_to_noisy_input(tmp_path):
    """l1 = 1e-5 made 0.30 dB better on clean and on noisy inputs alike (21.00 -> 21.30, 20.60 ->
    20.90): the same −0.40 dB drop, so not more robust, although its noisy-input psnr rose."""
    study = make_study(tmp_path / "s", denoising=False)
    _edit_rows(study, lambda r: r.update(psnr=21.3, noisy_psnr=20.9, train_psnr=21.6)
               if r["id"] == "mnist-d5-L30-l1_1e-05-0000abcd" else None)
    _, md_path = report.write_report(study)
    claim = _section(md_path.read_text(), "Regularization").split("**Testing the claim**", 1)[1]
    assert ("robustness on the drop from clean to noisy input against the unregularized model's drop (−0.40 dB), "
            "not on noisy-input psnr alone") in claim
    assert ("l1 = 1e-05: train−test gap 0.30 → 0.30 dB (unchanged); drop from clean to noisy input "
            "−0.40 → −0.40 dB (±0.00 dB, unchanged; noisy-input psnr 20.60 → 20.90 dB, clean psnr 21.00 → 21.30 dB): "
            "does not support the claim.") in claim
    # l2 = 1e-4 (psnr 20.50, noisy 20.40): a drop of −0.10 dB against −0.40 dB is more robust
    assert "−0.40 → −0.10 dB (+0.30 dB, smaller: more robust" in claim
    reg = {r["setting"]: r for t in _md_tables(md_path.read_text()) if t and "zero code" in t[0] for r in t}
    assert [reg[k]["drop (dB)"] for k in ("none", "l1 = 1e-05", "l2 = 0.0001")] == ["−0.40", "−0.40", "−0.10"]


def test_differences_are_those_of_the_values_shown(tmp_path):
    """Zero code fractions 0.000654 and 0.00114 show as 0.07 % and 0.11 %: their difference is
    stated as +0.04 points (the unrounded one is +0.0486, which rounds to +0.05)."""
    assert findings.shown_delta(0.00114, 0.000654, scale=100) == pytest.approx(0.04)
    assert findings.shown_delta(19.2349, 20.9451) == pytest.approx(-1.72)  # 19.23 − 20.95 as shown, not −1.71
    assert findings.shown_delta(None, 1.0) is None
    study = make_study(tmp_path / "s", denoising=False)
    zero = {"mnist-d5-L30-0000abcd": 0.000654, "mnist-d5-L30-l1_1e-05-0000abcd": 0.00114}
    _edit_rows(study, lambda r: r.update(code_zero_fraction=zero[r["id"]]) if r["id"] in zero else None)
    _, md_path = report.write_report(study)
    md = md_path.read_text()
    assert "l1 = 1e-05: psnr −0.05 dB, zero code entries 0.07 % → 0.11 % (+0.04 percentage points)" in md
    reg = {r["setting"]: r for t in _md_tables(md) if t and "zero code" in t[0] for r in t}
    assert (reg["none"]["zero code"], reg["l1 = 1e-05"]["zero code"]) == ("0.07 %", "0.11 %")


def test_a_negative_gap_has_the_same_minus_sign_as_every_difference(tmp_path):
    """A train psnr below test psnr gives a negative gap: −0.10 in the table and the claim, like the
    drop column beside it (it was -0.10 with a hyphen there)."""
    assert findings.db(-0.1) == "−0.10" and findings.db(21.0) == "21.00"
    study = make_study(tmp_path / "s", denoising=False)
    _edit_rows(study, lambda r: r.update(train_psnr=20.85) if r["id"] == "mnist-d5-L30-l1_1e-05-0000abcd" else None)
    md = report.write_report(study)[1].read_text()
    reg = {r["setting"]: r for t in _md_tables(md) if t and "zero code" in t[0] for r in t}
    assert reg["l1 = 1e-05"]["gap (dB)"] == "−0.10"
    assert "l1 = 1e-05: train−test gap 0.30 → −0.10 dB" in md
    assert not re.search(r"(?<![\w.])-\d", _section(md, "Regularization"))


def test_ties_are_decided_on_the_difference_as_shown(tmp_path):
    """A change shown as +0.05 dB (raw +0.0486) is a change, not a tie: ties are changes under
    TOLERANCE_DB (0.05 dB) as shown, so the words beside a printed difference never contradict it."""
    assert [findings.change_sign(d) for d in (0.05, -0.05, 0.04, -0.04, 0.0, 1.2)] == [1, -1, 0, 0, 0, 1]
    assert findings.change_sign(findings.shown_delta(21.2986, 20.95)) == 1  # 21.30 − 20.95: +0.35
    study = make_study(tmp_path / "s", denoising=False)
    l1 = "mnist-d5-L30-l1_1e-05-0000abcd"  # psnr 20.95; the unregularized model: gap 0.30, drop −0.40 dB
    psnr = {"mnist-d5-L15-0000abcd": 18.0486}  # depth 3 at L = 15: 18.00, so depth 5 minus depth 3 is +0.05
    _edit_rows(study, lambda r: r.update(psnr=psnr[r["id"]]) if r["id"] in psnr else
               r.update(train_psnr=20.95 + 0.3486, noisy_psnr=20.95 - 0.3514) if r["id"] == l1 else None)
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert "Depth 5 minus depth 3 (test psnr): +0.05 dB at L = 15 and +1.00 dB at L = 30; depth 5 wins at every L" in text
    _, md_path = report.write_report(study)
    claim = _section(md_path.read_text(), "Regularization").split("**Testing the claim**", 1)[1]
    assert ("l1 = 1e-05: train−test gap 0.30 → 0.35 dB (wider: more overfitting); drop from clean to noisy input "
            "−0.40 → −0.35 dB (+0.05 dB, smaller: more robust; noisy-input psnr 20.60 → 20.60 dB, clean psnr "
            "21.00 → 20.95 dB): partly supports the claim.") in claim
    psnr["mnist-d5-L15-0000abcd"] = 17.9551  # shown 17.96: −0.04 dB, a tie
    _edit_rows(study, lambda r: r.update(psnr=psnr[r["id"]]) if r["id"] in psnr else None)
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert "−0.04 dB at L = 15 and +1.00 dB at L = 30; depth 5 wins at L = 30 and ties elsewhere" in text


def test_a_margin_over_pca_of_zero_as_shown_is_not_a_win(tmp_path):
    study = make_study(tmp_path / "s", denoising=False)
    _edit_rows(study, lambda r: r.update(psnr=19.004) if r["id"].startswith("mnist-pca-k30") else None)
    ahead = findings.findings_text(findings.load_study(study), "mnist")
    _edit_rows(study, lambda r: r.update(psnr=20.996) if r["id"].startswith("mnist-pca-k30") else None)
    tied = findings.findings_text(findings.load_study(study), "mnist")  # the autoencoder: 21.00 as shown
    _edit_rows(study, lambda r: r.update(psnr=20.97) if r["id"].startswith("mnist-pca-k30") else None)
    near = findings.findings_text(findings.load_study(study), "mnist")  # +0.03 dB: a tie by the header's rule
    assert "beats PCA at every L" in ahead and "ties with PCA" not in ahead
    for text, margin in ((tied, "±0.00"), (near, "+0.03")):
        assert f"{margin} dB at L = 30; it ties with PCA (within 0.05 dB) at L = 30." in text
        assert "beats PCA at every L" not in text


def _denoise_with(study: Path, arch: dict, widths: list[int], latent: int) -> str:
    """The Denoising section of report.md after the study's denoising.architecture is set to arch and
    its denoisers to widths / latent (the compression winner stays depth 5, widths [512, 384, 256, 128],
    L = 30)."""
    summary = json.loads((study / "summary.json").read_text())
    summary["study"]["denoising"]["architecture"] = arch
    (study / "summary.json").write_text(json.dumps(summary))
    _edit_rows(study, lambda r: r.update(widths=widths, latent=latent, depth=len(widths) + 1)
               if r["phase"] in ("denoise", "blind") else None)
    _, md = report.write_report(study)
    return " ".join(_section(md.read_text(), "Denoising").split())


def test_denoiser_architecture_is_compared_with_the_winner_as_it_is(tmp_path):
    """denoising.architecture equal to the grid's winner is said to be the same; a different one is
    described by what differs, and "a wider first layer denoises better" only when it is wider."""
    study = make_study(tmp_path / "s")
    same = _denoise_with(study, {"depth": 5, "latent": 30}, [512, 384, 256, 128], 30)
    assert ("The denoisers use widths [512, 384, 256, 128] with L = 30 (depth 5), set by the study's "
            "denoising.architecture {'depth': 5, 'latent': 30}, the same as the compression study's best "
            "(validation psnr); trained 3 epochs.") in same
    assert "not the compression study's best" not in same and "wider" not in same
    narrower = _denoise_with(study, {"depth": 3, "latent": 30}, [256, 128], 30)
    assert ("set by the study's denoising.architecture {'depth': 3, 'latent': 30}, not the compression study's "
            "best (widths [512, 384, 256, 128], L = 30): a narrower first layer (256 units against 512) and fewer "
            "hidden layers (2 against 4); trained 3 epochs.") in narrower
    assert "wider" not in narrower and "denoises better" not in narrower
    wider = _denoise_with(study, {"widths": [1024, 384, 256, 128], "latent": 100}, [1024, 384, 256, 128], 100)
    assert ("not the compression study's best (widths [512, 384, 256, 128], L = 30): a wider first layer (1024 "
            "units against 512) and a larger code (L = 100 against 30); a wider first layer denoises better "
            "(docs/recipe.md, \"Denoisers\"); trained 3 epochs.") in wider
    inner = _denoise_with(study, {"widths": [512, 256, 256, 64], "latent": 15}, [512, 256, 256, 64], 15)
    assert ("best (widths [512, 384, 256, 128], L = 30): other inner widths ([256, 256, 64] against [384, 256, "
            "128]) and a smaller code (L = 15 against 30); trained") in inner


def test_a_denoising_margin_of_zero_as_shown_is_a_tie(tmp_path):
    """The best autoencoder at σ² = 0.04 (dae, 20.60 dB) against linear at 20.604 dB (20.60 as shown):
    the margin is 0.00 dB, so it equals the baseline; it neither trails it nor loses there."""
    study = make_study(tmp_path / "s")
    rows = json.loads((study / "denoising.json").read_text())
    for d in rows:
        if d["method"] == "linear" and d["noise_var"] == 0.04:
            d["psnr"] = 20.604
    (study / "denoising.json").write_text(json.dumps(rows))
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert ("at σ² = 0.04 (σ = 0.20) the best autoencoder (dae, 20.60 dB) equals the best baseline (linear, "
            "20.60 dB); at σ² = 0.16 (σ = 0.40) the best autoencoder (dae, 19.40 dB) leads the best baseline "
            "(linear, 16.40 dB) by 3.00 dB. The autoencoders tie with the best baseline (within 0.05 dB) at σ² = 0.04.") in text
    assert "trails" not in text and "lose at" not in text and "win at every level" not in text
    for d in rows:
        if d["method"] == "linear" and d["noise_var"] == 0.04:
            d["psnr"] = 20.57  # 0.03 dB behind the autoencoder: under the header's 0.05 dB, a tie
    (study / "denoising.json").write_text(json.dumps(rows))
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert "leads the best baseline (linear, 20.57 dB) by 0.03 dB" in text
    assert "tie with the best baseline (within 0.05 dB) at σ² = 0.04." in text and "win at every level" not in text


@pytest.mark.parametrize("gpu, words", [
    ({"3": 100, "5": 100}, "epochs (depth 3: 3, depth 5: 3 on a CPU; depth 3: 100, depth 5: 100 on a GPU);"),
    (None, "epochs (depth 3: 3, depth 5: 3);"),  # null: a GPU trains the same epochs
    ({"3": 3, "5": 3}, "epochs (depth 3: 3, depth 5: 3);"),
])
def test_the_header_gives_the_gpu_budget_beside_the_cpu_one(tmp_path, gpu, words):
    study = findings.load_study(make_study(tmp_path / "s", denoising=False))
    study.config["gpu_epochs"] = gpu
    assert words in str(report.header_section(study))


def test_sections_say_which_test_images_they_are_on(tmp_path):
    """The compression and per-class numbers are on the study's test subset (300 images here),
    and the report says so instead of "test split"; without a subset it says the whole split."""
    study = make_study(tmp_path / "s")
    _, md_path = report.write_report(study)
    md = md_path.read_text()
    assert "Test split" not in md
    assert ("every grid cell; test scores on the first 300 test images (the study's subset.test), val psnr on the "
            "validation images") in _section(md, "Compression")
    assert "scored on the first 300 test images (the study's subset.test), about 30 per class." in _section(
        md, "Per-class PSNR")
    assert "on the first 300 test images (the study's subset.test) it reaches psnr 21.00 dB" in _section(md, "Findings")
    assert "train psnr on the first 2,000 training images" in _section(md, "Regularization")  # subset.train 2,000
    summary = json.loads((study / "summary.json").read_text())
    del summary["study"]["subset"]
    (study / "summary.json").write_text(json.dumps(summary))
    md = report.write_report(study)[1].read_text()
    assert "scored on the 300 test images (the whole test split), about 30 per class." in md  # n from denoising
    assert "train psnr on the first 10,000 training images" in md


def test_a_study_without_pca_shows_no_pca_and_sub_second_times(tmp_path):
    study = make_study(tmp_path / "s", denoising=False, pca=False)
    _edit_rows(study, lambda r: r.update(seconds=0.04))
    _, md_path = report.write_report(study)
    md = md_path.read_text()
    _no_broken_section(md)
    for heading in ("Findings", "Compression", "Per-class PSNR"):
        assert "PCA" not in _section(md, heading), heading
    grid = [t for t in _md_tables(md) if t and "psnr_dataset (dB)" in t[0] and "depth" in t[0]][0]
    assert list(grid[0]) == ["depth", "L", "val psnr (dB)", "psnr (dB)", "psnr_dataset (dB)", "SSIM",
                             "epochs (best)", "seconds", "parameters", "chosen"]
    per_class = [t for t in _md_tables(md) if t and "class" in t[0]][0]
    assert list(per_class[0]) == ["class", "autoencoder psnr (dB)"]
    assert "Training time of the 9 autoencoders, summed: 0.4 s (training and fitting only" in md  # 9 × 0.04 s
    assert "fitting time of the" not in md


def test_data_without_labels_has_no_per_class_section(tmp_path):
    """Your own .npz without y: the rows carry no per-class psnr, so the report has no "Per-class
    PSNR" section at all (no heading or contents entry over an empty section)."""
    study = make_study(tmp_path / "s", denoising=False)
    _edit_rows(study, lambda r: r.update(per_class_psnr={}))
    for trial in (study / "trials").iterdir():
        result = json.loads((trial / "result.json").read_text())
        (trial / "result.json").write_text(json.dumps({**result, "per_class_psnr": {}}))
    os.utime(study / "results.json")  # results.json stays the newest file
    html_path, md_path = report.write_report(study)
    md, html = md_path.read_text(), html_path.read_text()
    _no_broken_section(md)
    assert "Per-class" not in md and "Per-class" not in html and "per-class" not in html
    assert "## Training curves" in md and "## Time per trial" in md


def test_a_study_without_a_grid_states_its_denoising_findings(tmp_path):
    """depths: [] with a fixed denoiser architecture: no grid, so no winner, l2 / l1 or curves; the
    findings still compare the denoisers with the baselines, and no section says "yet" of what the
    study never runs."""
    study = make_study(tmp_path / "s")
    gone = {"grid", "l2", "l1", "l2+l1"}
    for trial in (study / "trials").iterdir():
        if json.loads((trial / "result.json").read_text()).get("phase") in gone:
            shutil.rmtree(trial)
    rows = [r for r in json.loads((study / "results.json").read_text()) if r["phase"] not in gone]
    summary = json.loads((study / "summary.json").read_text())
    summary["study"].update(depths=[], denoising={**summary["study"]["denoising"],
                                                  "architecture": {"depth": 5, "latent": 30}})
    summary.update(trials_total=len(rows) + 2, trials_done=len(rows) + 2)
    (study / "summary.json").write_text(json.dumps(summary))
    (study / "results.json").write_text(json.dumps(rows))
    md = report.write_report(study)[1].read_text()
    _no_broken_section(md)
    found = _section(md, "Findings")
    assert "at σ² = 0.04 (σ = 0.20) the best autoencoder" in found
    assert "this study has no compression grid" in found and "No finished compression model yet" not in found
    assert "yet" not in md.split("## Time per trial")[0]
    assert "this study has no compression grid" in _section(md, "Regularization")


def test_denoising_without_baselines_is_still_a_finding(tmp_path):
    """denoising.baselines: []: the findings say there is no baseline and give the autoencoders'
    best psnr per level, instead of leaving denoising out of the findings without a word."""
    study = make_study(tmp_path / "s")
    rows = [d for d in json.loads((study / "denoising.json").read_text()) if d["method"] in report.AE_METHODS]
    (study / "denoising.json").write_text(json.dumps(rows))
    for trial in (study / "trials").iterdir():
        if "baselines" in trial.name:
            shutil.rmtree(trial)
    os.utime(study / "results.json")
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert ("Denoising (psnr): no classical baseline was run, so there is nothing to compare the autoencoders with; "
            "the best of them reaches 20.60 dB (dae) at σ² = 0.04 (σ = 0.20) and 19.40 dB (dae) at σ² = 0.16 "
            "(σ = 0.40).") in text
    assert "The blind denoiser minus the per-level ones" in text


def test_the_findings_say_when_the_autoencoders_make_the_noisy_images_worse(tmp_path):
    """A denoiser that scores below its noisy input (a short training, a strong penalty) makes the
    images worse: the findings say so, not only that it trails the best baseline."""
    study = make_study(tmp_path / "s")
    assert "adds error instead of removing it" not in findings.findings_text(findings.load_study(study), "mnist")
    rows = json.loads((study / "denoising.json").read_text())
    for d in rows:
        if d["method"] == "noisy" and d["noise_var"] == 0.04:
            d["psnr"] = 21.0  # above the best autoencoder's 20.60 dB at this level
    (study / "denoising.json").write_text(json.dumps(rows))
    os.utime(study / "results.json")
    text = findings.findings_text(findings.load_study(study), "mnist")
    assert ("At σ² = 0.04 (20.60 dB against 21.00 dB) even the best autoencoder's output is further from the clean "
            "images than its noisy input: it adds error instead of removing it.") in text
    assert "σ² = 0.16 (19.40 dB against" not in text


def test_the_two_time_totals_say_what_they_sum(tmp_path):
    """12 autoencoders: a stack of the 4 grid trials (8 s, which each of them records) and 8 more of
    1.5 s: 20 s of training; 2 PCA fits of 0.5 s. Whole trials: 12 × 2.0 + 2 × 0.6 + 2 baseline
    trials × 3.0 = 31.2 s of wall time."""
    study = make_study(tmp_path / "s")
    _edit_rows(study, lambda r: r.update(seconds=8.0, stacked=4) if r["phase"] == "grid" else None)
    _, md_path = report.write_report(study)
    md = md_path.read_text()
    assert ("Training time of the 12 autoencoders, summed: 20 s; fitting time of the 2 PCA models, summed: 1.0 s "
            "(training and fitting only: not evaluation, not the classical denoisers;") in md
    assert ("Wall time of every trial, summed over the 16 trials (autoencoders, PCA, the classical denoisers): 31 s. "
            "A trial's wall time is all of it") in _section(md, "Time per trial")
    assert "Training/fitting time" not in md and "of trial wall time in all" not in md
    assert [findings.fmt_duration(s) for s in (0.0, 0.01, 0.36, 9.94, 42.0, 750.0)] == [
        "0.0 s", "< 0.1 s", "0.4 s", "9.9 s", "42 s", "12.5 min (750 s)"]  # sub-second times are not "0 s"


def test_the_schedule_shows_what_each_worker_did_in_the_latest_run(tmp_path):
    """Timestamps chosen so every figure is known: worker A trains a stack of two grid models from
    2 to 12 s and scores them until 13 and 14 s; worker B fits PCA from 1 to 3 s and runs one
    baseline trial from 3 to 9 s; a trial of an earlier run of the study is left out."""
    study = make_study(tmp_path / "s", denoising=False)
    t0 = 1_700_000_000.0
    summary = json.loads((study / "summary.json").read_text())
    (study / "summary.json").write_text(json.dumps({**summary, "started_at": t0}))
    rows = json.loads((study / "results.json").read_text())
    stack = [r for r in rows if r["phase"] == "grid"][:2]
    pca = [r for r in rows if r["kind"] == "pca"][:2]
    for r, end in zip(stack, (13.0, 14.0)):
        r.update(worker="host:1", started_at=t0 + 2, trained_at=t0 + 12, finished_at=t0 + end, seconds=9.0)
    pca[0].update(worker="host:2", started_at=t0 + 1, finished_at=t0 + 3)
    pca[1].update(worker="host:2", started_at=t0 - 50, finished_at=t0 - 40)  # the earlier run
    (study / "results.json").write_text(json.dumps(rows))
    baseline = {"id": "mnist-baselines-noise0.04-tv-0000abcd", "kind": "baselines", "phase": "baselines",
                "dataset": "mnist", "noise_var": 0.04, "rows": [], "status": "ok", "wall_seconds": 6.0,
                "worker": "host:2", "started_at": t0 + 3, "finished_at": t0 + 9}
    (study / "trials" / baseline["id"]).mkdir(parents=True)
    (study / "trials" / baseline["id"] / "result.json").write_text(json.dumps({**baseline, "trial": {}}))

    jobs, stats = report.timeline(findings.load_study(study))
    assert [(j["worker"], j["start"], j["trained"], j["end"], j["trials"]) for j in jobs] == [
        ("host:2", 1.0, None, 3.0, 1), ("host:1", 2.0, 12.0, 14.0, 2), ("host:2", 3.0, None, 9.0, 1)]
    assert stats["trials"] == 4 and stats["workers"] == 2 and stats["span"] == 14.0
    capacity = 2 * 14.0
    assert stats["training"] == pytest.approx(10 / capacity) and stats["evaluation"] == pytest.approx(2 / capacity)
    assert stats["other"] == pytest.approx(8 / capacity) and stats["busy"] == pytest.approx(20 / capacity)
    assert stats["first_start"] == 1.0 and stats["last_ae_end"] == 14.0
    assert stats["setup_median"] == pytest.approx(1.0)  # 10 s from start to trained, 9 s of it epochs
    _, md_path = report.write_report(study)
    md = md_path.read_text()
    _no_broken_section(md)
    schedule = md.split("## How the trials were scheduled", 1)[1].split("\n## ", 1)[0]
    assert "4 trials (1 stack of trials trained together) on 2 workers, 14 s" in schedule
    assert "busy 71% of that time: training autoencoders 36%, scoring them 7%, PCA and the classical baselines 29%" \
        in schedule
    assert "first trial started after 1.0 s" in schedule and "last autoencoder was done at 14.0 s" in schedule
    assert "(report_files/timeline.png)" in schedule and (study / "report_files" / "timeline.png").is_file()


def test_a_study_without_timestamps_says_it_has_no_timeline(tmp_path):
    study = make_study(tmp_path / "s", denoising=False)
    assert report.timeline(findings.load_study(study)) == ([], {})
    _, md_path = report.write_report(study)
    assert "No trial of the latest run has a timeline" in md_path.read_text()


def test_two_datasets_and_markdown_images(tmp_path):
    study = make_study(tmp_path / "s", datasets=("mnist", "fashion-mnist"))
    _, md_path = report.write_report(study)
    md = md_path.read_text()
    _no_broken_section(md)
    assert "**mnist**" in md and "**fashion-mnist**" in md
    refs = re.findall(r"\]\((report_files/[^)]+)\)", md)
    assert len(refs) == len(set(refs)) and all((study / r).is_file() for r in refs)
    stale = study / "report_files" / "old.png"
    stale.write_bytes(PNG_MAGIC)
    report.write_report(study)
    assert not stale.exists(), "figures no longer referenced are removed"


def test_failed_trial_is_listed(tmp_path):
    study = make_study(tmp_path / "s", failed=True)
    html_path, md_path = report.write_report(study)
    md = md_path.read_text()
    _no_broken_section(md)
    assert "## Failed trials" in md and "loss became NaN at epoch 2" in md
    assert "mnist-d5-L30-l1_0.0001-0000abcd" in md.split("## Failed trials", 1)[1]
    assert "1 failed" in md
    assert "Failed trials" in html_path.read_text()


def test_study_without_denoising(tmp_path):
    study = make_study(tmp_path / "s", denoising=False)
    html_path, md_path = report.write_report(study)
    md, html = md_path.read_text(), html_path.read_text()
    _no_broken_section(md)
    assert "Denoising" not in md and "Denoising" not in html
    for section in SECTIONS:
        assert f"## {section}" in md


def test_partial_study_renders(tmp_path):
    """A study stopped early: no results.json / denoising.json / summary.json yet, some trials
    missing; the report is built from the trial folders and says it is partial."""
    study = make_study(tmp_path / "s")
    for name in ("results.json", "denoising.json", "summary.json"):
        (study / name).unlink()
    for trial in (study / "trials").iterdir():
        if "-l1_" in trial.name or "blind" in trial.name or "d5-L15" in trial.name:
            shutil.rmtree(trial)
    (study / "study.yaml").write_text("name: partial\ndatasets: [mnist]\ndepths: [3, 5]\nlatents: [15, 30]\n"
                                      "denoising:\n  variances: [0.04, 0.16]\n")
    _, md_path = report.write_report(study)
    md = md_path.read_text()
    _no_broken_section(md)
    assert "Partial results" in md and "autoenc study report: partial" in md
    assert "Validation chose depth 5, L = 30" in md
    assert f"**{report.AE_LABELS['dae-blind']}**" not in md and f"**{report.AE_LABELS['dae']}**" in md
    assert "| 5 | 15 |" not in md  # the missing grid cell is simply absent


def test_running_study_adds_trials_newer_than_results(tmp_path):
    """While a study runs, trials that finished after results.json was written are shown too."""
    study = make_study(tmp_path / "s", denoising=False)
    rows = json.loads((study / "results.json").read_text())
    late = [r for r in rows if r["phase"] == "l2+l1"]
    (study / "results.json").write_text(json.dumps([r for r in rows if r["phase"] != "l2+l1"]))
    old = time.time() - 60
    os.utime(study / "results.json", (old, old))
    stale = study / "trials" / "mnist-stale-trial"  # an older leftover not in results.json: ignored
    stale.mkdir()
    (stale / "result.json").write_text(json.dumps({**late[0], "id": "mnist-stale-trial", "phase": "grid"}))
    os.utime(stale / "result.json", (old - 60, old - 60))
    _, md_path = report.write_report(study)
    md = md_path.read_text()
    _no_broken_section(md)
    assert "l2 = 1e-05 + l1 = 1e-05" in md
    assert "Partial results" in md
    assert "mnist-stale-trial" not in md


def test_empty_study_renders(tmp_path):
    study = tmp_path / "empty"
    study.mkdir()
    (study / "study.yaml").write_text("name: empty\ndatasets: [mnist]\n")
    html_path, md_path = report.write_report(study)
    md = md_path.read_text()
    _no_broken_section(md)
    assert "Partial results" in md and "No finished compression model yet" in md
    assert "<script" not in html_path.read_text()


def test_cli_report(tmp_path, capsys):
    from autoenc.cli import main

    study = make_study(tmp_path / "s", denoising=False)
    with pytest.raises(SystemExit) as stop:
        main(["report", str(study)])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"wrote {study / 'report.html'} and ")
    assert (study / "report.html").is_file() and (study / "report.md").is_file()


def test_a_failing_section_does_not_stop_the_report(tmp_path, monkeypatch):
    def broken_section(study):
        raise RuntimeError("unexpected numbers")

    monkeypatch.setattr(report, "SECTIONS", (report.findings_section, broken_section, report.failed_section))
    study = make_study(tmp_path / "s", denoising=False)
    _, md_path = report.write_report(study)
    md = md_path.read_text()
    assert "## Findings" in md and "## Broken" in md
    assert f"{report.SECTION_FAILED} (RuntimeError: unexpected numbers)" in md
