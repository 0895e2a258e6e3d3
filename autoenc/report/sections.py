"""The study report: one self-contained `report.html` and a `report.md` from a study folder.

    html_path, md_path = write_report("outputs/lab")

The report is built from what the study wrote, as `findings.load_study` reads it, so it works for
any study: one or two datasets, with or without denoising, with failed trials, and while the study
is still running. The findings paragraph comes from `autoenc.findings`; this module lays out the
tables and figures.

Each section is one function returning a list of blocks (headings, paragraphs, tables, figures);
`render.render_html` and `render.render_md` turn the same blocks into the two files. Every image of
report.html is an embedded base64 PNG (no scripts, no fonts, nothing from the network);
report.md references the same PNGs as files in `report_files/` next to it.

Units: PSNR in dB on the [0, 1] pixel scale, noise as the variance sigma^2 on that scale.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import figures
from ..files import atomic_write_bytes, atomic_write_text
from ..study.trials import TRAIN_EVAL_IMAGES
from .findings import (
    AE_LABELS,
    AE_METHODS,
    DASH,
    NO_GRID,
    PSNR_DATASET_LABEL,
    PSNR_LABEL,
    SECTION_FAILED,
    TOLERANCE_DB,
    Study,
    arch_label,
    baseline_info,
    best_setting,
    change_sign,
    dataset_name,
    db,
    denoising_rows,
    equal_floats,
    findings,
    fmt_csv,
    fmt_duration,
    fmt_int,
    fmt_pct,
    fmt_secs,
    full_images,
    grid_rows,
    has_grid,
    has_pca,
    is_number,
    load_study,
    noisy_drop,
    ok_rows,
    on_subset,
    pca_rows,
    regularization_rows,
    regularizer_choices,
    shown_delta,
    signed,
    slug,
    test_images,
    test_images_text,
    train_test_gap,
    variances_of,
    winner,
)
from .render import (
    Bullets,
    Details,
    Figure,
    Gallery,
    Heading,
    Para,
    Table,
    referenced,
    render_html,
    render_md,
)

# ------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------

def header_section(study: Study) -> list:
    """Title, what the study ran and how far it got, and the two PSNR definitions."""
    c = study.config
    total = "?" if study.trials_total is None else str(study.trials_total)
    wall = study.summary.get("wall_seconds_total", study.summary.get("wall_seconds"))
    lines = [f"Datasets: {', '.join(dataset_name(d) for d in study.datasets) or DASH}. "
             f"Trials done: {study.trials_done} of {total}"
             + (f", {len(failed_trials(study))} failed" if failed_trials(study) else "") + ". "
             + (f"Wall time over every run of the study: {fmt_duration(wall)}. " if is_number(wall) else "")
             + _training_time_text(study)]
    depths = [str(d) for d in c.get("depths") or []]

    def per_depth(budget) -> str:
        if isinstance(budget, dict):
            return ", ".join(f"depth {k}: {v}" for k, v in budget.items() if not depths or str(k) in depths)
        return str(budget)

    epochs = per_depth(c.get("epochs"))
    if c.get("gpu_epochs") and per_depth(c["gpu_epochs"]) != epochs:  # the budget a GPU trains for instead
        epochs = f"{epochs} on a CPU; {per_depth(c['gpu_epochs'])} on a GPU"
    grid = (f"Grid: depths {fmt_csv(c.get('depths'))} × latent sizes {fmt_csv(c.get('latents'))}; epochs ({epochs}); "
            f"l2 {fmt_csv(c.get('l2'))}; l1 {fmt_csv(c.get('l1'))}"
            + ("; subsets " + ", ".join(f"{k} {v:,}" for k, v in c["subset"].items()) if c.get("subset") else "")
            + f"; robustness check at noise variance σ² = {c.get('robustness_var', 0.01)}.")
    lines.append(grid)
    if c.get("backend", "torch") != "torch":
        lines.append(f"Autoencoders trained with backend={c['backend']} (Keras 3 on TensorFlow's CPU build, "
                     "docs/keras.md), scored by the same metric code as torch models.")
    precisions = sorted({r["precision"] for r in study.rows if r.get("precision")})
    if precisions:
        lines.append(f"Training arithmetic: {' and '.join(precisions)} (bf16 = bfloat16 autocast, what precision "
                     "`auto` picks on a CPU with native bf16); every score is computed in float32.")
    blocks: list = [Heading(1, f"autoenc study report: {c.get('name', study.path.name)}")]
    if study.partial:
        note = (" Some trials failed, and trials that build on a failed one were not run; rerun the study to "
                "retry them." if failed_trials(study) else "")
        blocks.append(Para(f"**Partial results**: {study.trials_done} of {total} trials have finished; "
                           f"every table and figure below shows what exists so far.{note}"))
    blocks += [Para(line) for line in lines]
    blocks.append(Para(f"**Two PSNR definitions** (both on the [0, 1] pixel scale; reconstructions clipped to "
                       f"[0, 1]): **{PSNR_LABEL}**; **{PSNR_DATASET_LABEL}**. `psnr` is the primary one; every "
                       f"table says which it shows. Noise is given as the variance σ² on the [0, 1] scale."))
    return blocks


def _training_time_text(study: Study) -> str:
    """The header's sentence on time spent training (seconds): the autoencoders' training summed
    over their trials (a stack's training time, which each of its K trials records, counts once)
    and PCA's fitting summed over its trials. Evaluation and the classical denoisers are left out:
    the "Time per trial" section sums whole trials."""
    ae = [r for r in study.rows if r.get("kind") == "ae" and is_number(r.get("seconds"))]
    pca = [r for r in study.rows if r.get("kind") == "pca" and is_number(r.get("seconds"))]
    ae_secs = sum(r["seconds"] / max(1, int(r.get("stacked") or 1)) for r in ae)
    pca_secs = sum(r["seconds"] for r in pca)
    text = f"Training time of the {len(ae)} autoencoder{'s' if len(ae) != 1 else ''}, summed: {fmt_duration(ae_secs)}"
    if pca:
        text += (f"; fitting time of the {len(pca)} PCA model{'s' if len(pca) != 1 else ''}, summed: "
                 f"{fmt_duration(pca_secs)}")
    return (text + " (training and fitting only: not evaluation, not the classical denoisers; \"Time per trial\" sums "
            "each trial's whole wall time).")


def findings_section(study: Study) -> list:
    """Generated findings, one paragraph per dataset."""
    blocks: list = [Heading(2, "Findings", "findings"),
                    Para("Generated from the numbers below (psnr in dB; changes under "
                         f"{TOLERANCE_DB} dB count as ties).")]
    for dataset in study.datasets:
        items = findings(study, dataset)
        if items:
            blocks += [Para(f"**{dataset_name(dataset)}**"), Bullets(items)]
    if not has_grid(study):
        blocks.append(Para(f"No compression findings: {NO_GRID}."))
    elif len(blocks) == 2:
        blocks.append(Para("No finished compression model yet."))
    return blocks


def compression_section(study: Study) -> list:
    """Per dataset: psnr against latent size (a line per depth, PCA dashed when the study has PCA)
    and the grid table, each saying which test images the numbers are on."""
    any_pca = any(has_pca(study, d) for d in study.datasets)
    blocks: list = [Heading(2, "Compression: depth × latent size", "compression"),
                    Para(f"No regularization. Table: {PSNR_LABEL}; {PSNR_DATASET_LABEL}; "
                         + ("vs PCA = psnr minus PCA's psnr with k = L; " if any_pca else "")
                         + "epochs run (best epoch by validation loss); seconds of training.")]
    for dataset in study.datasets:
        rows = grid_rows(study, dataset)
        pca = pca_rows(study, dataset)
        if not rows and not pca:
            continue
        with_pca = has_pca(study, dataset)
        images = test_images_text(study, dataset)
        blocks.append(Heading(3, dataset_name(dataset)))
        series: dict = {}
        for r in rows:
            if is_number(r.get("psnr")):
                xs, ys = series.setdefault(f"depth {r.get('depth')}", ([], []))
                xs.append(r.get("latent"))
                ys.append(r["psnr"])
        pca_line = None
        if pca:
            ks = sorted(k for k in pca if is_number(pca[k].get("psnr")))
            pca_line = (ks, [pca[k]["psnr"] for k in ks])
        name = f"{slug(dataset)}-psnr-vs-latent.png"
        figures.plot_psnr_vs_latent(series, study.files / name, pca=pca_line,
                                    title=f"{dataset_name(dataset)}: test psnr against latent size")
        blocks.append(Figure(name, f"{dataset_name(dataset)}: psnr (mean per-image, dB) on {images} against latent "
                                   "size L; a line per depth" + (", PCA dashed." if pca_line else ".")))
        table = []
        best = winner(study, dataset)
        for r in rows:
            p = pca.get(r.get("latent"), {})
            table.append([str(r.get("depth")), str(r.get("latent")), db(r.get("val_psnr")), db(r.get("psnr")),
                          db(r.get("psnr_dataset")), db(r.get("ssim"))]
                         + ([signed(shown_delta(r.get("psnr"), p.get("psnr")))] if with_pca else [])
                         + [f"{r.get('epochs_run', DASH)} ({r.get('best_epoch', DASH)})", fmt_secs(r.get("seconds")),
                            fmt_int(r.get("parameters")), "✓" if best is not None and r is best else ""])
        for k in sorted(pca):
            p = pca[k]
            table.append(["PCA", str(k), db(p.get("val_psnr")), db(p.get("psnr")), db(p.get("psnr_dataset")),
                          db(p.get("ssim")), DASH, DASH, fmt_secs(p.get("seconds")), fmt_int(p.get("parameters")), ""])
        columns = (["depth", "L", "val psnr (dB)", "psnr (dB)", "psnr_dataset (dB)", "SSIM"]
                   + (["vs PCA (dB)"] if with_pca else []) + ["epochs (best)", "seconds", "parameters", "chosen"])
        blocks.append(Table(columns, table, numeric=set(range(1, len(columns) - 1)),
                            caption=f"{dataset_name(dataset)}: every grid cell; test scores on {images}, val psnr "
                                    "on the validation images; ✓ = chosen on validation psnr."))
    return blocks


def _claim_verdict(label: str, r: dict, base: dict) -> str:
    """One setting against the unregularized model: overfitting as the change of the train−test
    gap, robustness as the change of the drop from clean to noisy input (noisy-input psnr minus
    clean psnr), both in dB of the values as shown. A model better on clean and noisy inputs alike
    keeps its drop: better, not more robust."""
    dgap = shown_delta(train_test_gap(r), train_test_gap(base))
    ddrop = shown_delta(noisy_drop(r), noisy_drop(base))
    if dgap is None or ddrop is None:
        return f"{label}: not enough numbers to test the claim."
    gap_sign, drop_sign = change_sign(dgap), change_sign(ddrop)  # of the differences as shown
    overfit = {-1: "narrower: less overfitting", 1: "wider: more overfitting", 0: "unchanged"}[gap_sign]
    robust = {1: "smaller: more robust", -1: "larger: less robust", 0: "unchanged"}[drop_sign]
    supported = (gap_sign < 0) + (drop_sign > 0)
    verdict = {2: "supports the claim", 1: "partly supports the claim", 0: "does not support the claim"}[supported]
    return (f"{label}: train−test gap {db(train_test_gap(base))} → {db(train_test_gap(r))} dB ({overfit}); "
            f"drop from clean to noisy input {signed(noisy_drop(base))} → {signed(noisy_drop(r))} dB "
            f"({signed(ddrop)} dB, {robust}; "
            f"noisy-input psnr {db(base.get('noisy_psnr'))} → {db(r.get('noisy_psnr'))} dB, clean psnr "
            f"{db(base.get('psnr'))} → {db(r.get('psnr'))} dB): {verdict}.")


def _train_images(study: Study) -> int:
    """How many training images the train psnr is on: the first 10,000 (`trials.TRAIN_EVAL_IMAGES`),
    fewer when the study's subset.train is smaller."""
    cap = (study.config.get("subset") or {}).get("train")
    return min(TRAIN_EVAL_IMAGES, int(cap)) if is_number(cap) else TRAIN_EVAL_IMAGES


def regularization_section(study: Study) -> list:
    """Per dataset: every setting tried with psnr, sparsity, gap and robustness; the code
    histogram with and without l1; the robustness/overfitting claim tested per setting."""
    var = study.config.get("robustness_var", 0.01)
    blocks: list = [Heading(2, "Regularization", "regularization"),
                    Para(f"On each dataset's best architecture (validation psnr). {PSNR_LABEL}; {PSNR_DATASET_LABEL}. "
                         "Scored on the test images each table's caption names. zero code = fraction of code "
                         "entries with |E_j| < 1e-3 on those test images; dead units = code units never active; "
                         f"train psnr on the first {_train_images(study):,} training images; gap = train psnr minus "
                         "test psnr; noisy-input psnr = test psnr when the inputs carry noise of variance "
                         f"σ² = {var} (σ = {math.sqrt(var):.2f}); "
                         "drop = noisy-input psnr minus clean psnr, what that noise costs the model.")]
    for dataset in study.datasets:
        settings = regularization_rows(study, dataset)
        if not settings:
            continue
        choices = regularizer_choices(study, dataset)
        overall = best_setting(settings)
        blocks.append(Heading(3, f"{dataset_name(dataset)} ({arch_label(settings[0][1])})"))
        table = []
        for label, r in settings:
            marks = [f"✓ {p}" if chosen else f"best {p} tried, not above none"
                     for p, (row, chosen) in choices.items() if row is r]
            if r is overall:
                marks.append("★ best")
            table.append([label, db(r.get("val_psnr")), db(r.get("psnr")), db(r.get("psnr_dataset")),
                          fmt_pct(r.get("code_zero_fraction")), fmt_int(r.get("code_dead_units")),
                          db(r.get("train_psnr")), db(train_test_gap(r)), db(r.get("noisy_psnr")),
                          signed(noisy_drop(r)), " ".join(marks)])
        blocks.append(Table(["setting", "val psnr (dB)", "psnr (dB)", "psnr_dataset (dB)", "zero code", "dead units",
                             "train psnr (dB)", "gap (dB)", f"noisy-input psnr σ²={var:g} (dB)", "drop (dB)",
                             "validation"],
                            table, numeric=set(range(1, 10)),
                            caption=f"{dataset_name(dataset)}: scored on {test_images_text(study, dataset)}. "
                                    "✓ l2 / ✓ l1 = validation chose that value: the best of "
                                    "the values tried, and above the unregularized model (none) on validation psnr; "
                                    "\"best l2 tried, not above none\" = the best value tried, which validation does "
                                    "not prefer to no l2 (the l2 + l1 trial still combines the best values tried); "
                                    "★ = the best setting on validation psnr."))
        hist = _code_histogram(study, dataset, settings)
        if hist:
            blocks.append(hist)
        if len(settings) > 1:
            base = settings[0][1]
            blocks.append(Para("**Testing the claim** that regularization \"improved robustness and prevented "
                               f"overfitting\" (unregularized gap {db(train_test_gap(base))} dB, changes under "
                               f"{TOLERANCE_DB} dB count as unchanged). Overfitting is judged on the train−test gap; "
                               "robustness on the drop from clean to noisy input against the unregularized model's "
                               f"drop ({signed(noisy_drop(base))} dB), not on noisy-input psnr alone: a model that "
                               "gains "
                               "as much on clean as on noisy inputs is better, not more robust. "
                               + " ".join(_claim_verdict(label, r, base) for label, r in settings[1:])))
    if len(blocks) == 2:
        blocks.append(Para(f"None: {NO_GRID}." if not has_grid(study) else "No regularization results yet."))
    return blocks


def _code_histogram(study: Study, dataset: str, settings: list[tuple[str, dict]]) -> Figure | None:
    """The code values of the unregularized model beside each setting with l1 (None unless there
    are both: a study without l1 has no "with and without l1" to show)."""
    codes = {}
    for label, r in settings:
        if label == "none" or r.get("phase") in ("l1", "l2+l1"):
            path = study.path / "trials" / str(r.get("id")) / "code_values.npy"
            try:
                codes[label if label != "none" else "no regularization"] = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                continue
    if len(codes) < 2 or "no regularization" not in codes:  # nothing to compare: no l1 setting (or no baseline)
        return None
    name = f"{slug(dataset)}-code-histogram.png"
    n = next(iter(codes.values())).shape[0]
    figures.plot_code_histogram(codes, study.files / name, title=f"{dataset_name(dataset)}: code values with and without l1")
    return Figure(name, f"{dataset_name(dataset)}: histogram of the code values E_j of the first {n:,} test images, "
                        "without regularization and with each l1 (log-scaled counts).")


def _copy_png(study: Study, source: Path, name: str) -> bool:
    try:
        data = source.read_bytes()
    except OSError:
        return False
    atomic_write_bytes(study.files / name, data)
    return True


def grids_section(study: Study) -> list:
    """Per dataset: original-above-reconstruction grids of every depth and latent size."""
    blocks: list = [Heading(2, "Image grids", "grids"),
                    Para("The same 16 test images for every model: originals (top row) above reconstructions "
                         "(bottom row).")]
    for dataset in study.datasets:
        shown = []
        for r in grid_rows(study, dataset):
            name = f"{r['id']}-grid.png"
            if _copy_png(study, study.path / "trials" / r["id"] / "grid.png", name):
                shown.append(Figure(name, f"{arch_label(r)}: psnr {db(r.get('psnr'))} dB, "
                                          f"psnr_dataset {db(r.get('psnr_dataset'))} dB"))
        if shown:
            blocks += [Heading(3, dataset_name(dataset)), Gallery(shown)]
    if len(blocks) == 2 and not has_grid(study):
        blocks.append(Para("None: the grids are the grid models', and this study has no compression grid "
                           "(the denoisers' grids are under Denoising)."))
    return blocks


def _history(study: Study, r: dict) -> list[dict]:
    path = study.path / "trials" / str(r.get("id")) / str(r.get("run_dir") or "run") / "history.jsonl"
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def curves_section(study: Study) -> list:
    """Per dataset: validation psnr per epoch of every grid model."""
    blocks: list = [Heading(2, "Training curves", "curves")]
    for dataset in study.datasets:
        curves = {}
        for r in grid_rows(study, dataset):
            hist = [h for h in _history(study, r) if is_number(h.get("val_psnr"))]
            if hist:
                curves[f"depth {r.get('depth')}, L={r.get('latent')}"] = (
                    [h.get("epoch") for h in hist], [h["val_psnr"] for h in hist])
        if curves:
            name = f"{slug(dataset)}-training-curves.png"
            figures.plot_training_curves(curves, study.files / name,
                                         title=f"{dataset_name(dataset)}: validation psnr per epoch")
            blocks.append(Figure(name, f"{dataset_name(dataset)}: validation psnr (mean per-image, dB) per epoch, "
                                       "one line per grid model."))
    if len(blocks) == 1:
        blocks.append(Para("None: the curves are the grid models', and this study has no compression grid."
                           if not has_grid(study) else "No training histories yet."))
    return blocks


def per_class_section(study: Study) -> list:
    """Per dataset: per-class psnr of the chosen model, beside PCA with k = its L when the study has
    PCA, on the test images the dataset's compression numbers are on (how many per class). Absent
    (no heading) when no dataset has per-class numbers (data without labels, no grid model yet)."""
    any_pca = any(has_pca(study, d) for d in study.datasets)
    blocks: list = [Heading(2, "Per-class PSNR", "per-class"),
                    Para(f"{PSNR_LABEL}, per class, of the model validation chose"
                         + (", beside PCA with k = L." if any_pca else ".")
                         + " Each caption says how many test images the classes share.")]
    for dataset in study.datasets:
        best = winner(study, dataset)
        per = (best or {}).get("per_class_psnr") or {}
        if not per:
            continue
        with_pca = has_pca(study, dataset)
        pca = pca_rows(study, dataset).get(best.get("latent"), {}).get("per_class_psnr") or {}
        names = list(per)
        label = f"autoencoder ({arch_label(best)})"
        series = {label: [per[n] for n in names]}
        if pca:
            series[f"PCA k = {best.get('latent')}"] = [pca.get(n) for n in names]
        name = f"{slug(dataset)}-per-class.png"
        figures.plot_per_class(names, series, study.files / name, title=f"{dataset_name(dataset)}: psnr per class")
        count = test_images(study, dataset)
        images = test_images_text(study, dataset) + (f", about {count / len(names):,.0f} per class" if count else "")
        rows = [[n, db(per[n])] + ([db(pca.get(n)), signed(shown_delta(per[n], pca.get(n)))] if with_pca else [])
                for n in names]
        columns = ["class", "autoencoder psnr (dB)"] + (["PCA psnr (dB)", "difference (dB)"] if with_pca else [])
        blocks += [Heading(3, dataset_name(dataset)),
                   Figure(name, f"{dataset_name(dataset)}: psnr (mean per-image, dB) per class."),
                   Table(columns, rows, numeric=set(range(1, len(columns))),
                         caption=f"{dataset_name(dataset)}: scored on {images}.")]
    return blocks if len(blocks) > 2 else []


def _trial_times(study: Study) -> list[dict]:
    out = []
    for r in study.rows + study.baselines:
        secs = r.get("wall_seconds") if is_number(r.get("wall_seconds")) else r.get("seconds")
        out.append({"id": r.get("id"), "dataset": r.get("dataset"), "phase": r.get("phase"),
                    "status": r.get("status"), "seconds": r.get("seconds"), "wall": secs,
                    "epochs": r.get("epochs_run")})
    return out


def time_section(study: Study) -> list:
    """Seconds per trial: a total per phase, a bar chart and the full table."""
    times = _trial_times(study)
    blocks: list = [Heading(2, "Time per trial", "time")]
    if not times:
        return blocks + [Para("No finished trials yet.")]
    total = sum(t["wall"] for t in times if is_number(t["wall"]))
    kinds = {r.get("kind") for r in study.rows + study.baselines}
    names = [name for k, name in (("ae", "autoencoders"), ("pca", "PCA"), ("baselines", "the classical denoisers"))
             if k in kinds]
    blocks.append(Para(f"Wall time of every trial, summed over the {len(times)} trials ({', '.join(names)}): "
                       f"{fmt_duration(total)}. A trial's wall time is all of it: training, "
                       "evaluation (test metrics, denoising levels) and figures, so this sum is longer than the "
                       "header's training and fitting time; trials run side by side, so the study's own wall time "
                       "can be shorter. Train seconds = training or fitting only."))
    phases: dict = {}
    order = {d: i for i, d in enumerate(study.datasets)}
    for t in sorted(times, key=lambda t: order.get(t["dataset"], len(order))):
        key = (dataset_name(t["dataset"] or ""), t["phase"])
        n, s = phases.get(key, (0, 0.0))
        phases[key] = (n + 1, s + (t["wall"] if is_number(t["wall"]) else 0.0))
    per_phase = [[d, p, str(n), fmt_secs(s)] for (d, p), (n, s) in phases.items()]
    per_phase.append(["all", "", str(len(times)), fmt_secs(total)])
    blocks.append(Table(["dataset", "phase", "trials", "wall seconds"], per_phase, numeric={2, 3}))
    name = "trial-seconds.png"
    figures.plot_seconds([str(t["id"]) for t in times], [t["wall"] if is_number(t["wall"]) else 0.0 for t in times],
                         study.files / name, groups=[str(t["phase"]) for t in times], title="wall seconds per trial")
    blocks.append(Figure(name, "Wall seconds per trial, coloured by phase."))
    rows = [[str(t["id"]), dataset_name(t["dataset"] or ""), str(t["phase"]), str(t["status"]),
             fmt_int(t["epochs"]), fmt_secs(t["seconds"]), fmt_secs(t["wall"])] for t in times]
    blocks.append(Details(f"Every trial ({len(times)})",
                          [Table(["trial", "dataset", "phase", "status", "epochs", "train seconds", "wall seconds"],
                                 rows, numeric={4, 5, 6})]))
    return blocks


def timeline(study: Study) -> tuple[list[dict], dict]:
    """What the workers did in the study's latest run, from its trials' timestamps.

    Returns (jobs, stats). A job is what one worker ran at once (a trial, or a stack of trials
    trained together): {"worker", "phase", "kind", "trials", "start", "trained", "setup", "end"}, in
    seconds since the run started (summary.json's started_at; else the first trial's start).
    "trained" is when an autoencoder job's training ended (None for other kinds); "setup" its
    seconds before the first epoch (data, model, CUDA graphs). stats (empty when no trial of the
    run has timestamps): jobs, trials, workers, span (s, from the run's start to its last result),
    first_start and last_ae_end (s), busy, training, evaluation and other (fractions of workers x
    span: all work; autoencoders training; autoencoders being scored; PCA and the classical
    baselines), setup_median (s)."""
    origin = study.summary.get("started_at")
    rows = [r for r in study.rows + study.baselines if is_number(r.get("started_at")) and is_number(r.get("finished_at"))]
    if is_number(origin):
        rows = [r for r in rows if r["started_at"] >= origin - 1e-3]  # earlier runs of a resumed study: not this one
    elif rows:
        origin = min(r["started_at"] for r in rows)
    jobs: dict[tuple, dict] = {}
    for r in sorted(rows, key=lambda r: r["finished_at"]):
        job = jobs.setdefault((r.get("worker"), r["started_at"]), {
            "worker": str(r.get("worker")), "phase": str(r.get("phase")), "kind": r.get("kind"), "trials": 0,
            "start": r["started_at"] - origin, "trained": None, "setup": None, "end": 0.0})
        job["trials"] += 1
        job["end"] = max(job["end"], r["finished_at"] - origin)
        if is_number(r.get("trained_at")):
            job["trained"] = r["trained_at"] - origin
            if is_number(r.get("seconds")):  # a resumed training's seconds include earlier runs: no setup then
                job["setup"] = max(0.0, job["trained"] - job["start"] - r["seconds"])
    jobs_list = sorted(jobs.values(), key=lambda j: (j["start"], j["worker"]))
    if not jobs_list:
        return [], {}
    span = max(j["end"] for j in jobs_list)
    workers = len({j["worker"] for j in jobs_list})
    capacity = max(span * workers, 1e-9)
    training = sum(j["trained"] - j["start"] for j in jobs_list if j["trained"] is not None)
    evaluation = sum(j["end"] - j["trained"] for j in jobs_list if j["trained"] is not None)
    other = sum(j["end"] - j["start"] for j in jobs_list if j["trained"] is None)
    ae_ends = [j["end"] for j in jobs_list if j["kind"] == "ae"]
    setups = [j["setup"] for j in jobs_list if j["setup"] is not None]
    stats = {"jobs": len(jobs_list), "trials": len(rows), "workers": workers, "span": span,
             "first_start": min(j["start"] for j in jobs_list), "last_ae_end": max(ae_ends) if ae_ends else None,
             "busy": (training + evaluation + other) / capacity, "training": training / capacity,
             "evaluation": evaluation / capacity, "other": other / capacity,
             "setup_median": float(np.median(setups)) if setups else None}
    return jobs_list, stats


def schedule_text(jobs: list[dict], st: dict) -> str:
    """The report's sentence on a run's schedule, from `timeline`'s (jobs, stats) (stats not
    empty): trials, stacks and workers, the span to the last result, the workers' busy share by
    kind of work (%), the first trial's start, the last autoencoder's end and the median set-up
    before a training's first epoch (s). Benchmarks print it too."""
    stacks = sum(j["trials"] > 1 for j in jobs)
    text = (f"The study's latest run: {st['trials']} trials"
            + (f" ({stacks} stack{'s' if stacks != 1 else ''} of trials trained together)" if stacks else "")
            + f" on {st['workers']} worker{'s' if st['workers'] != 1 else ''}, {fmt_duration(st['span'])} from the "
            f"run's start to its last result. The workers were busy {100 * st['busy']:.0f}% of that time: "
            f"training autoencoders {100 * st['training']:.0f}%, scoring them {100 * st['evaluation']:.0f}%, "
            f"PCA and the classical baselines {100 * st['other']:.0f}%. The first trial started after "
            f"{st['first_start']:.1f} s (the workers starting)")
    if st["last_ae_end"] is not None:
        text += f"; the last autoencoder was done at {st['last_ae_end']:.1f} s"
    if st["setup_median"] is not None:
        text += (f"; an autoencoder's training spent a median {st['setup_median']:.1f} s before its first epoch "
                 "(data and model, and on a GPU the CUDA graphs)")
    return text + "."


def schedule_section(study: Study) -> list:
    """How the latest run's trials were scheduled: what kept the workers busy, and a timeline."""
    jobs, st = timeline(study)
    blocks: list = [Heading(2, "How the trials were scheduled", "schedule")]
    if not jobs:
        return blocks + [Para("No trial of the latest run has a timeline (trials written before autoenc recorded one, "
                              "or none ran in it).")]
    blocks.append(Para(schedule_text(jobs, st)))
    name = "timeline.png"
    figures.plot_timeline(jobs, study.files / name, title="trials per worker over the run")
    blocks.append(Figure(name, "Each worker's trials over the latest run, coloured by phase; the paler end of an "
                               "autoencoder's bar is its evaluation (test metrics, denoising levels, grids)."))
    return blocks


def _level_header(var: float) -> str:
    return f"σ²={var:g} (σ={math.sqrt(var):.2f})"


def _architecture_change(den: dict, best: dict) -> str | None:
    """How the denoisers' architecture (a result row: widths, latent L) differs from the compression
    study's best, in words ("a wider first layer (512 units against 256) and a larger code (L = 100
    against 30)"); None when the widths and L are the same. Only a wider first layer cites the
    recipe's finding that one denoises better (docs/recipe.md, "Denoisers")."""
    dw, bw = list(den.get("widths") or []), list(best.get("widths") or [])
    dl, bl = den.get("latent"), best.get("latent")
    if dw == bw and dl == bl:
        return None
    parts, wider = [], bool(dw and bw and dw[0] > bw[0])
    if dw and bw and dw[0] != bw[0]:
        parts.append(f"a {'wider' if wider else 'narrower'} first layer ({dw[0]} units against {bw[0]})")
    if len(dw) != len(bw):
        parts.append(f"{'more' if len(dw) > len(bw) else 'fewer'} hidden layers ({len(dw)} against {len(bw)})")
    elif dw[1:] != bw[1:]:
        parts.append(f"other inner widths ({dw[1:]} against {bw[1:]})")
    if is_number(dl) and is_number(bl) and dl != bl:
        parts.append(f"a {'larger' if dl > bl else 'smaller'} code (L = {dl} against {bl})")
    if not parts:  # a row without widths or L: nothing to compare
        return "an architecture that differs from it"
    text = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]
    return text + ("; a wider first layer denoises better (docs/recipe.md, \"Denoisers\")" if wider else "")


def _denoiser_architecture(study: Study, dataset: str) -> str:
    dens = [r for r in ok_rows(study, dataset, "ae") if r.get("phase") in ("denoise", "blind")]
    if not dens:
        return ""
    r = dens[0]
    den_cfg = study.config.get("denoising") or {}
    arch = den_cfg.get("architecture", "best")
    if arch == "best":
        source = "the compression study's best architecture (validation psnr)"
    else:
        source = f"set by the study's denoising.architecture {arch}"
        best = winner(study, dataset)
        change = None if best is None else _architecture_change(r, best)
        if best is not None and change is None:
            source += ", the same as the compression study's best (validation psnr)"
        elif best is not None:
            source += (f", not the compression study's best (widths {best.get('widths')}, L = {best.get('latent')}): "
                       f"{change}")
    text = (f"The denoisers use widths {r.get('widths')} with L = {r.get('latent')} (depth {r.get('depth')}), "
            f"{source}")
    if den_cfg.get("model"):
        text += f", with model settings {den_cfg['model']}"
    epochs = sorted({d.get("epochs_run") for d in dens if d.get("epochs_run") is not None})
    if epochs:
        text += f"; trained {'/'.join(map(str, epochs))} epochs"
    per_level = [d for d in dens if d.get("phase") == "denoise"]
    blind = [d for d in dens if d.get("phase") == "blind"]
    text += f". {len(per_level)} per-level denoiser(s), each trained at its own σ²"
    if blind and isinstance(blind[0].get("noise_var"), list):
        lo, hi = blind[0]["noise_var"]
        text += f"; one blind denoiser trained on noise of variance σ² between {lo:g} and {hi:g}"
    return text + "."


def _denoising_table(study: Study, dataset: str, variances: list[float]) -> tuple[Table, list[str], bool]:
    """The methods x levels table (psnr and psnr_dataset per level), the notes of skipped or
    subset methods, and whether any baseline ran on a subset."""
    per_var = {v: denoising_rows(study, dataset, v) for v in variances}
    full = max([full_images(rows) for rows in per_var.values()] or [0])
    methods = list(dict.fromkeys(d.get("method") for rows in per_var.values() for d in rows))
    methods = [m for m in methods if m not in AE_METHODS] + [m for m in AE_METHODS if m in methods]
    notes, any_subset, subset_n = [], False, 0
    table = []
    for method in methods:
        cells, images = [], set()
        for v in variances:
            d = next((x for x in per_var[v] if x.get("method") == method), None)
            if d is None or not is_number(d.get("psnr")):
                cells += ["not run", ""] if d is not None else [DASH, DASH]
                info = baseline_info(study, dataset, v, method)
                note = (d or {}).get("note") or info.get("note") or (d or {}).get("detail")
                if d is not None and note and f"{method}: {note}" not in notes:
                    notes.append(f"{method}: {note}")
                continue
            cells += [db(d.get("psnr")), db(d.get("psnr_dataset"))]
            if on_subset(d, full):
                any_subset = True
                subset_n = d.get("n_images") or subset_n
                images.add(f"{d.get('n_images'):,} (subset)")
            else:
                images.add(f"{d.get('n_images'):,}" if is_number(d.get("n_images")) else DASH)
        label = AE_LABELS.get(method, method)
        table.append([f"**{label}**" if method in AE_METHODS else label, ", ".join(sorted(images)) or DASH] + cells)
    if any_subset:
        for method in [m for m in AE_METHODS if m in methods]:
            cells, n = [], None
            for v in variances:
                d = next((x for x in per_var[v] if x.get("method") == method), {})
                cells += [db(d.get("subset_psnr")), db(d.get("subset_psnr_dataset"))]
                n = n or d.get("subset_images")
            table.append([f"**{AE_LABELS[method]}, on the subset**", f"{n:,} (subset)" if is_number(n) else DASH] + cells)
    columns = ["method", "test images"]
    for v in variances:
        columns += [f"{_level_header(v)} psnr", f"{_level_header(v)} psnr_dataset"]
    caption = (f"{dataset_name(dataset)}: psnr of each method's output against the clean test images ({PSNR_LABEL}; "
               f"{PSNR_DATASET_LABEL}). Autoencoders in bold.")
    if any_subset:
        caption += (f" Rows marked (subset) are scored on the fixed subset of {subset_n:,} test images the slow "
                    "baselines run on; the autoencoders are shown on that subset too.")
    return Table(columns, table, numeric=set(range(2, len(columns))), caption=caption), notes, any_subset


def _parameter_table(study: Study, dataset: str, variances: list[float]) -> Table | None:
    rows = []
    methods = list(dict.fromkeys(m.get("method") for b in study.baselines if b.get("dataset") == dataset
                                 for m in b.get("rows") or []))
    for method in methods:
        cells = []
        for v in variances:
            info = baseline_info(study, dataset, v, method)
            param = info.get("param")
            cells.append(f"{info.get('param_name')} = {param:g}" if is_number(param) and info.get("param_name")
                         else (f"{param}" if param is not None else DASH))
        if any(c != DASH for c in cells):
            rows.append([method] + cells)
    if not rows:
        return None
    return Table(["method"] + [_level_header(v) for v in variances], rows,
                 caption=f"{dataset_name(dataset)}: each baseline's parameter, chosen on the validation split per level.")


def denoising_section(study: Study) -> list:
    """Per dataset: psnr against noise variance, the methods x levels table, the denoisers'
    architecture and their grids. Empty when the study has no denoising results."""
    if not study.denoising:
        return []
    blocks: list = [Heading(2, "Denoising", "denoising"),
                    Para("Every method sees the same noisy test images (noise of variance σ², clipped to [0, 1], "
                         "drawn once from a fixed seed); the score is the PSNR of its output against the clean image. "
                         "Autoencoders: **dae** = a denoising autoencoder trained at that noise level; **dae-blind** = "
                         "one denoising autoencoder trained on a range of levels; **ae** = the best plain "
                         "(compression) autoencoder fed the noisy images. Baselines: the noisy input itself and the "
                         "classical denoisers, each with its parameter chosen on the validation split.")]
    for dataset in study.datasets:
        variances = variances_of(study, dataset)
        if not variances:
            continue
        blocks.append(Heading(3, dataset_name(dataset)))
        arch = _denoiser_architecture(study, dataset)
        if arch:
            blocks.append(Para(arch))
        table, notes, any_subset = _denoising_table(study, dataset, variances)
        series: dict = {}
        full = max(full_images(denoising_rows(study, dataset, v)) for v in variances)
        for v in variances:
            for d in denoising_rows(study, dataset, v):
                if is_number(d.get("psnr")):
                    label = d.get("method") + (" (subset)" if on_subset(d, full) else "")
                    xs, ys = series.setdefault(label, ([], []))
                    xs.append(v)
                    ys.append(d["psnr"])
        name = f"{slug(dataset)}-denoising.png"
        figures.plot_denoising(series, study.files / name, bold=set(AE_METHODS),
                               title=f"{dataset_name(dataset)}: denoising psnr against noise variance")
        blocks.append(Figure(name, f"{dataset_name(dataset)}: psnr (mean per-image, dB) against noise variance σ²; "
                                   "autoencoders bold" + ("; (subset) = scored on the baselines' subset" if any_subset
                                                          else "") + "."))
        blocks.append(table)
        if notes:
            blocks.append(Para("Notes: " + "; ".join(notes) + "."))
        params = _parameter_table(study, dataset, variances)
        if params:
            blocks.append(params)
        shown = _denoising_grids(study, dataset, variances)
        if shown:
            blocks += [Para("Denoising grids: clean (top), noisy (middle), denoised (bottom); the same images at "
                            "every level."), Gallery(shown)]
    return blocks


def _denoising_grids(study: Study, dataset: str, variances: list[float]) -> list[Figure]:
    shown = []
    dens = [r for r in ok_rows(study, dataset, "ae") if r.get("phase") in ("denoise", "blind")]
    dens.sort(key=lambda r: (r.get("phase") == "blind", r.get("noise_var") if is_number(r.get("noise_var")) else 0))
    for r in dens:
        blind = r.get("phase") == "blind"
        for v in variances:
            if not blind and not equal_floats(r.get("noise_var"), v):
                continue
            src = study.path / "trials" / r["id"] / f"denoise_{v:g}.png"
            name = f"{r['id']}-denoise_{v:g}.png"
            if _copy_png(study, src, name):
                score = next((s for s in r.get("denoising") or [] if equal_floats(s.get("noise_var"), v)), {})
                shown.append(Figure(name, f"{'blind denoiser' if blind else 'per-level denoiser'}, {_level_header(v)}: "
                                          f"psnr {db(score.get('psnr'))} dB"))
    return shown


def failed_trials(study: Study) -> list[dict]:
    """Failed trials (id, phase, dataset, error, attempts) from the summary and the rows."""
    seen, out = set(), []
    for f in list(study.summary.get("failed") or []) + [r for r in study.rows if r.get("status") not in (None, "ok")]:
        if f.get("id") not in seen:
            seen.add(f.get("id"))
            out.append(f)
    return out


def failed_section(study: Study) -> list:
    """The failed trials with their errors (empty when none failed)."""
    failed = failed_trials(study)
    if not failed:
        return []
    rows = [[str(f.get("id")), dataset_name(str(f.get("dataset"))), str(f.get("phase")), str(f.get("attempts", 1)),
             str(f.get("error") or "")] for f in failed]
    return [Heading(2, "Failed trials", "failed"),
            Para(f"{len(failed)} trial(s) failed on every attempt; rerun the study to retry them."),
            Table(["trial", "dataset", "phase", "attempts", "error"], rows, numeric={3})]


SECTIONS = (findings_section, compression_section, regularization_section, grids_section, curves_section,
            per_class_section, time_section, schedule_section, denoising_section, failed_section)


def build_blocks(study: Study) -> list:
    """Every section of the report, in order, as blocks (writes the figures into study.files)."""
    blocks = header_section(study)
    for section in SECTIONS:
        try:
            blocks += section(study)
        except Exception as exc:  # one odd result must not cost the whole report (or the study's end)
            name = section.__name__.removesuffix("_section").replace("_", " ")
            blocks += [Heading(2, name.capitalize(), slug(name)),
                       Para(f"{SECTION_FAILED} ({type(exc).__name__}: {exc}).")]
    return blocks


def write_report(study_dir: str | Path) -> tuple[Path, Path]:
    """Write <study_dir>/report.html (self-contained: inline CSS, embedded PNGs, no network) and
    <study_dir>/report.md (with its figures in <study_dir>/report_files/), both atomically.

    Works on finished, partial and still-running studies. Returns (html path, md path)."""
    study = load_study(study_dir)
    study.files.mkdir(parents=True, exist_ok=True)
    blocks = build_blocks(study)
    keep = referenced(blocks)
    for stale in study.files.glob("*.png"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)
    title = f"autoenc report: {study.config.get('name', study.path.name)}"
    html_path, md_path = study.path / "report.html", study.path / "report.md"
    atomic_write_text(md_path, render_md(blocks))
    atomic_write_text(html_path, render_html(blocks, study.files, title))
    return html_path, md_path
