"""The study report: one self-contained `report.html` and a `report.md` from a study folder.

    html_path, md_path = write_report("outputs/lab")

The report reads like a results section: the header (what ran, on what, with which libraries,
and the files beside the report), five headline findings with one summary table, then
compression, regularization and denoising, the details (image grids, training curves, per-class
psnr), and an appendix (every run with its configuration, time per trial, scheduling). It is
built from what the study wrote, as `results.load_study` reads it, so it works for any study: one
or two datasets, one seed or several, with or without denoising, with failed trials, and while
the study is still running. The words come from `report.findings`; this module lays out the
tables and figures.

Each section is one function returning a list of blocks (headings, paragraphs, tables, figures);
`render.render_html` and `render.render_md` turn the same blocks into the two files. Every image
of report.html is an embedded base64 PNG (nothing from the network); report.md references the same
PNGs as files in `report_files/` next to it.

Every number over seeds is "mean ± sd"; every difference is taken between unrounded means and
rounded once (`results.Diff`).

Units: PSNR in dB on the [0, 1] pixel scale, noise as the variance sigma^2 on that scale.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from .. import figures
from ..config import values_set
from ..files import atomic_write_bytes, atomic_write_text
from ..study.trials import TRAIN_EVAL_IMAGES
from .findings import (
    AE_LABELS,
    HOYER_LABEL,
    NO_GRID,
    PSNR_DATASET_LABEL,
    PSNR_LABEL,
    SECTION_FAILED,
    SMALL_LABEL,
    SPREAD_LABEL,
    best_setting,
    caveats,
    chosen_parameter,
    claims,
    dataset_name,
    db,
    denoising_margins,
    depth_comparison,
    diff_text,
    fmt_csv,
    fmt_duration,
    fmt_int,
    fmt_secs,
    full_split_images,
    headlines,
    method_definitions,
    pca_margins,
    regularizer_choices,
    slug,
    stat_text,
    verdict,
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
from .results import (
    AE_METHODS,
    DASH,
    Study,
    arch_label,
    baseline_info,
    denoising_rows,
    diff,
    equal_floats,
    gap_rows,
    grid_arms,
    grid_reference,
    has_grid,
    has_pca,
    is_number,
    load_study,
    methods_of,
    ok_rows,
    pca_rows,
    regularization_arms,
    same_arm,
    seeds,
    stat,
    strength,
    subset_images,
    test_images,
    test_images_text,
    variances_of,
    winner,
)

__all__ = [
    "AE_LABELS",
    "AE_METHODS",
    "PSNR_DATASET_LABEL",
    "PSNR_LABEL",
    "SECTIONS",
    "SECTION_FAILED",
    "build_blocks",
    "schedule_text",
    "timeline",
    "write_report",
]


# ------------------------------------------------------------------------------------------
# header and headline findings
# ------------------------------------------------------------------------------------------

def _seeds_text(study: Study) -> str:
    listed = seeds(study)
    if not listed:
        return ""
    if len(listed) == 1:
        return f"Seeds: one training seed ({listed[0]}) per autoencoder trial. "
    return (f"Seeds: {len(listed)} training seeds ({', '.join(map(str, listed))}): every autoencoder trial ran once "
            "per seed; PCA and the classical baselines, which have no training seed, once. ")


def _environment_text(study: Study) -> str:
    env = study.summary.get("environment")
    if not isinstance(env, dict):
        return "Ran on: not recorded (a study written before autoenc recorded its machine and libraries)."
    hardware = f"{env.get('cpu', 'unknown CPU')}, {env.get('cores', '?')} cores"
    hardware += f", GPU {env['gpu']}" if env.get("gpu") else ", no GPU used"
    precisions = sorted({r["precision"] for r in study.rows if r.get("precision")})
    if precisions:
        hardware += f"; training arithmetic {' and '.join(precisions)}, every score in float32"
    libs = ", ".join(f"{k} {v}" for k, v in (env.get("libraries") or {}).items())
    commit = env.get("commit") or "unknown commit (not a git checkout)"
    return (f"Ran on: {hardware}. Software: autoenc {env.get('autoenc', '?')} at commit {commit}; Python "
            f"{env.get('python', '?')}; {libs}; {env.get('platform', '')}.")


def header_section(study: Study) -> list:
    """Title, what the study ran and on what, the files beside the report, and how to read the numbers."""
    c = study.config
    total = "?" if study.trials_total is None else str(study.trials_total)
    wall = study.summary.get("wall_seconds_total", study.summary.get("wall_seconds"))
    lines = [f"Datasets: {', '.join(dataset_name(d) for d in study.datasets) or DASH}. "
             f"Trials done: {study.trials_done} of {total}"
             + (f", {len(failed_trials(study))} failed" if failed_trials(study) else "") + ". "
             + _seeds_text(study)
             + (f"Wall time over every run of the study: {fmt_duration(wall)}. " if is_number(wall) else "")
             + _training_time_text(study)]
    depths = [str(d) for d in c.get("depths") or []]

    def per_depth(budget) -> str:
        if isinstance(budget, dict):
            return ", ".join(f"depth {k}: {v}" for k, v in budget.items() if not depths or str(k) in depths)
        return str(budget)

    epochs = per_depth(c.get("epochs"))
    subset = values_set(c.get("subset") or {})
    if c.get("gpu_epochs") and per_depth(c["gpu_epochs"]) != epochs:  # the budget a GPU trains for instead
        epochs = f"{epochs} on a CPU; {per_depth(c['gpu_epochs'])} on a GPU"
    lines.append(f"Grid: depths {fmt_csv(c.get('depths'))} × latent sizes {fmt_csv(c.get('latents'))}; epochs "
                 f"({epochs}); l2 {fmt_csv(c.get('l2'))}; l1 {fmt_csv(c.get('l1'))}"
                 + ("; subsets " + ", ".join(f"{k} {v:,}" for k, v in subset.items()) if subset else "")
                 + f"; robustness check at noise variance σ² = {c.get('robustness_var', 0.01)}.")
    if c.get("backend", "torch") != "torch":
        lines.append(f"Autoencoders trained with backend={c['backend']} (Keras 3 on TensorFlow's CPU build, "
                     "docs/keras.md), scored by the same metric code as torch models.")
    precisions = sorted({r["precision"] for r in study.rows if r.get("precision")})
    if precisions:
        lines.append(f"Training arithmetic: {' and '.join(precisions)} (bf16 = bfloat16 autocast, what precision "
                     "`auto` picks on a CPU with native bf16); every score is computed in float32.")
    lines.append(_environment_text(study))
    files = [f"[{name}]({name}) ({what})" for name, what in (
        ("results.csv", "a row per trial: its configuration and scores"),
        ("denoising.csv", "a row per dataset, noise level, method and seed"),
        ("study.yaml", "the study's configuration")) if (study.path / name).is_file()]
    if files:
        lines.append("Beside this report: " + ", ".join(files) + "; every number here can be recomputed from them.")
    blocks: list = [Heading(1, f"autoenc study report: {c.get('name', study.path.name)}")]
    if study.partial:
        note = (" Some trials failed, and trials that build on a failed one were not run; rerun the study to "
                "retry them." if failed_trials(study) else "")
        blocks.append(Para(f"**Partial results**: {study.trials_done} of {total} trials have finished; "
                           f"every table and figure below shows what exists so far.{note}"))
    blocks += [Para(line) for line in lines]
    blocks.append(Para(f"**Reading the numbers** (PSNR on the [0, 1] pixel scale, reconstructions clipped to "
                       f"[0, 1]): **{PSNR_LABEL}**, the primary one; **{PSNR_DATASET_LABEL}**. Noise is the variance "
                       f"σ² on the [0, 1] scale. **{SPREAD_LABEL}**."))
    return blocks


def _training_time_text(study: Study) -> str:
    """The header's sentence on time spent training (seconds): the autoencoders' training summed
    over their trials (a stack's training time, which each of its K trials records, counts once)
    and PCA's fitting summed over its trials. Evaluation and the classical denoisers are left out:
    the appendix's "Time per trial" sums whole trials."""
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


def _summary_rows(study: Study) -> list[tuple[str, dict[str, str]]]:
    """The summary table: (what, {dataset: cell}) per row."""
    rows: dict[str, dict[str, str]] = {}

    def put(what: str, dataset: str, cell: str) -> None:
        rows.setdefault(what, {})[dataset] = cell

    for dataset in study.datasets:
        best = winner(study, dataset)
        if best is not None:
            put("chosen architecture (validation)", dataset, arch_label(best[0]))
            put("its test psnr (dB)", dataset, stat_text(stat(best, "psnr")))
            put("its test SSIM", dataset, stat_text(stat(best, "ssim"), 3))
        for m in pca_margins(study, dataset):
            if same_arm(m["arm"], best):
                put("its psnr minus PCA with k = L (dB)", dataset, diff_text(m["diff"]))
        depth = depth_comparison(study, dataset)
        if depth:
            put(f"depth {depth[0]['deep']} minus depth {depth[0]['shallow']}, test psnr (dB)", dataset,
                "; ".join(f"L = {r['latent']}: {diff_text(r['diff'])}" for r in depth))
        settings = regularization_arms(study, dataset)
        base = settings[0][1] if settings else None
        for phase in ("l1", "l2"):
            mine = [(label, a) for label, a in settings if a[0].get("phase") == phase]
            if not mine:
                continue
            label, arm = mine[-1]  # the strongest
            c = claims(base, arm)
            put(f"strongest {phase} minus none: test psnr (dB)", dataset, f"{label}: {diff_text(c['psnr'])}")
            if phase == "l1":
                put(f"strongest l1: {HOYER_LABEL} (none → l1)", dataset,
                    f"{stat_text(stat(base, 'code_hoyer'))} → {stat_text(stat(arm, 'code_hoyer'))}")
            else:
                put("strongest l2 minus none: noisy-input psnr (dB)", dataset, f"{label}: {diff_text(c['noisy'])}")
        margins = denoising_margins(study, dataset)
        if margins:
            put("best autoencoder minus strongest baseline, denoising psnr (dB)", dataset,
                "; ".join(f"σ² = {m['noise_var']:g}: {diff_text(m['margin'])}" for m in margins))
            if any(m["ssim_margin"] is not None for m in margins):
                put("the same, SSIM", dataset, "; ".join(f"σ² = {m['noise_var']:g}: {diff_text(m['ssim_margin'], 3)}"
                                                         for m in margins if m["ssim_margin"] is not None))
    return list(rows.items())


def headline_section(study: Study) -> list:
    """The five headline findings (across the datasets), what limits them, and the summary table."""
    blocks: list = [Heading(2, "Headline findings", "findings"),
                    Para("Generated from the numbers in the sections below. A difference is called a win, a loss "
                         "or a tie by the seeds' spread (a tie: within it).")]
    items = headlines(study)
    if items:
        blocks.append(Bullets(items))
    elif not has_grid(study):
        blocks.append(Para(f"No compression findings: {NO_GRID}."))
    else:
        blocks.append(Para("No finished compression model yet."))
    limits = caveats(study)
    if limits:
        blocks.append(Para("**What limits them**: " + " ".join(limits)))
    summary = _summary_rows(study)
    if summary:
        names = [dataset_name(d) for d in study.datasets]
        blocks.append(Table(["finding"] + names, [[what] + [cells.get(d, DASH) for d in study.datasets]
                                                  for what, cells in summary],
                            caption="Summary: mean ± sd over the seeds; differences ± their spread (test split, "
                                    "psnr in dB)."))
    if not has_grid(study) and items:
        blocks.append(Para(f"No compression findings: {NO_GRID}."))
    return blocks


# ------------------------------------------------------------------------------------------
# compression
# ------------------------------------------------------------------------------------------

def compression_section(study: Study) -> list:
    """Per dataset: psnr against latent size (a line per depth with ±sd bars, PCA dashed), the grid
    table (mean ± sd over the seeds) and the depth comparison."""
    any_pca = any(has_pca(study, d) for d in study.datasets)
    blocks: list = [Heading(2, "Compression: depth × latent size", "compression"),
                    Para(f"No regularization. {PSNR_LABEL}; {PSNR_DATASET_LABEL}; "
                         + ("vs PCA = psnr minus PCA's psnr with k = L; " if any_pca else "")
                         + "epochs run (best epoch by validation loss), over the seeds; seconds of training per seed. "
                           "Validation chooses the architecture by its mean validation psnr over the seeds.")]
    for dataset in study.datasets:
        groups = grid_arms(study, dataset)
        pca = pca_rows(study, dataset)
        if not groups and not pca:
            continue
        with_pca = has_pca(study, dataset)
        images = test_images_text(study, dataset)
        blocks.append(Heading(3, dataset_name(dataset)))
        series: dict = {}
        for a in groups:
            s = stat(a, "psnr")
            if s is not None:
                xs, ys, sds = series.setdefault(f"depth {a[0].get('depth')}", ([], [], []))
                xs.append(a[0].get("latent"))
                ys.append(s.mean)
                sds.append(s.sd)
        pca_line = None
        if pca:
            ks = sorted(k for k in pca if is_number(pca[k].get("psnr")))
            pca_line = (ks, [pca[k]["psnr"] for k in ks])
        name = f"{slug(dataset)}-psnr-vs-latent.png"
        figures.plot_psnr_vs_latent(series, study.files / name, pca=pca_line,
                                    title=f"{dataset_name(dataset)}: test psnr against latent size")
        blocks.append(Figure(name, f"{dataset_name(dataset)}: psnr (mean per-image, dB) on {images} against latent "
                                   "size L; a line per depth, bars ± sd over the seeds"
                                   + (", PCA dashed." if pca_line else ".")))
        best = winner(study, dataset)
        table = []
        for a in groups:
            r = a[0]
            p = pca.get(r.get("latent"))
            vs = diff(stat(a, "psnr"), stat([p], "psnr")) if p else None
            epochs = "/".join(map(str, sorted({x.get("epochs_run") for x in a} - {None}))) or DASH
            best_epochs = "/".join(map(str, sorted({x.get("best_epoch") for x in a} - {None}))) or DASH
            table.append([str(r.get("depth")), str(r.get("latent")), str(len(a)), stat_text(stat(a, "val_psnr")),
                          stat_text(stat(a, "psnr")), stat_text(stat(a, "psnr_dataset")),
                          stat_text(stat(a, "ssim"), 3)]
                         + ([diff_text(vs)] if with_pca else [])
                         + [f"{epochs} ({best_epochs})", stat_text(stat(a, "seconds"), 1), fmt_int(r.get("parameters")),
                            "✓" if same_arm(a, best) else ""])
        for k in sorted(pca):
            p = pca[k]
            table.append(["PCA", str(k), DASH, db(p.get("val_psnr")), db(p.get("psnr")), db(p.get("psnr_dataset")),
                          f"{p['ssim']:.3f}" if is_number(p.get("ssim")) else DASH, DASH, DASH,
                          fmt_secs(p.get("seconds")), fmt_int(p.get("parameters")), ""])
        columns = (["depth", "L", "seeds", "val psnr (dB)", "psnr (dB)", "psnr_dataset (dB)", "SSIM"]
                   + (["vs PCA (dB)"] if with_pca else []) + ["epochs (best)", "seconds", "parameters", "chosen"])
        blocks.append(Table(columns, table, numeric=set(range(1, len(columns) - 1)),
                            caption=f"{dataset_name(dataset)}: every grid cell, mean ± sd over the seeds; test scores "
                                    f"on {images}, val psnr on the validation images; ✓ = chosen on mean validation "
                                    "psnr."))
        depth = depth_comparison(study, dataset)
        if depth:
            shallow, deep = depth[0]["shallow"], depth[0]["deep"]
            blocks.append(Table(
                ["L", f"depth {shallow} psnr (dB)", f"depth {deep} psnr (dB)", f"depth {deep} − depth {shallow} (dB)",
                 "verdict"],
                [[str(r["latent"]), stat_text(r["a"]), stat_text(r["b"]), diff_text(r["diff"]),
                  verdict(r["diff"], f"depth {deep} wins", f"depth {deep} loses", "tie (within the spread)")]
                 for r in depth], numeric={0, 1, 2, 3},
                caption=f"{dataset_name(dataset)}: depth {deep} against depth {shallow} at each L (test psnr, mean ± sd "
                        "over the seeds; the difference ± its spread)."))
    return blocks


# ------------------------------------------------------------------------------------------
# regularization
# ------------------------------------------------------------------------------------------

def _train_images(study: Study) -> int:
    """How many training images the train psnr is on: the first 10,000 (`trials.TRAIN_EVAL_IMAGES`),
    fewer when the study's subset.train is smaller."""
    cap = values_set(study.config.get("subset") or {}).get("train")
    return min(TRAIN_EVAL_IMAGES, int(cap)) if is_number(cap) else TRAIN_EVAL_IMAGES


def _regularization_intro(study: Study) -> str:
    """What the penalties are, which model they act on and why, and how sparsity is measured."""
    own = values_set(study.config.get("penalty_model") or {})
    text = ("The penalties of the protocol: **l1** × the batch mean of Σ_j |E_j| on the code E, **l2** × the sum of "
            "the squared dense weights. ")
    if own:
        text += f"The penalized trials and their reference without a penalty (**none**) use the model {own}"
        if own.get("decoder_norm") == "none":
            text += (": no normalization in the decoder, so the code's scale reaches the reconstruction"
                     + (", and the decoder's first layer uses its weight columns at unit norm, so no code unit can "
                        "shrink while its outgoing weights grow" if own.get("unit_code_columns") else ""))
            text += (". An L1 penalty then cannot be met by shrinking the code, only by using fewer units "
                     "(docs/recipe.md, \"The L1 penalty\"); with batch norm after the decoder's first layer, as in "
                     "the compression grid's model (its row: **grid's model**), L1 only shrinks the code")
        text += ". "
    text += (f"Sparsity is measured on scales that do not move when the code is multiplied by a constant: "
             f"**{HOYER_LABEL}**, the mean over test images of (√L − ‖E‖₁/‖E‖₂)/(√L − 1) (0: every unit equally "
             f"large, 1: one unit carries the code), and **{SMALL_LABEL}**, the fraction of code entries below 1% of "
             "their image's largest |E_j|; **mean |E|** is the code's own scale; **dead units**: units below 1% of "
             "the largest on every test image. L2 on a dense layer that batch norm follows changes only that "
             "layer's effective step size: batch norm undoes any scaling of its weights, so weight decay shrinks "
             "them and Adam's steps, of a fixed size, grow relative to them. It penalizes for real only the layers "
             "whose scale reaches the output: in the grid's model only the output layer (the code layer feeds batch "
             "norm too), in a decoder without normalization also the code layer and the decoder's hidden layers "
             "(but not a first layer with unit-norm columns, which is scale-invariant as well).")
    return text


def regularization_section(study: Study) -> list:
    """Per dataset: every setting's psnr and scale-invariant sparsity (the trade-off table and plot),
    then the overfitting and robustness claims tested per setting."""
    var = study.config.get("robustness_var", 0.01)
    blocks: list = [Heading(2, "Regularization", "regularization"), Para(_regularization_intro(study)),
                    Para(f"On each dataset's chosen architecture; mean ± sd over the seeds. {PSNR_LABEL}. train psnr "
                         f"on the first {_train_images(study):,} training images; gap = train psnr minus test psnr; "
                         f"noisy-input psnr = test psnr when the inputs carry noise of variance σ² = {var} "
                         f"(σ = {math.sqrt(var):.2f}); drop = noisy-input psnr minus clean psnr. Differences against "
                         "none ± their spread.")]
    for dataset in study.datasets:
        settings = regularization_arms(study, dataset)
        if not settings:
            continue
        choices = regularizer_choices(study, dataset)
        overall = best_setting(settings)
        base = settings[0][1]
        blocks.append(Heading(3, f"{dataset_name(dataset)} ({arch_label(base[0])})"))
        table = []
        grid = grid_reference(study, dataset)
        rows = ([("grid's model", grid)] if grid is not None else []) + settings
        for label, arm in rows:
            marks = [f"✓ {p}" if chosen else f"best {p} tried, not above none"
                     for p, (row, chosen, _) in choices.items() if same_arm(row, arm)]
            if same_arm(arm, overall):
                marks.append("★ best")
            c = claims(base, arm)
            table.append([label, str(len(arm)), stat_text(stat(arm, "val_psnr")), stat_text(stat(arm, "psnr")),
                          DASH if arm is base else diff_text(c["psnr"]),
                          stat_text(stat(arm, "code_hoyer")), stat_text(stat(arm, "code_small_fraction", 100), 1),
                          stat_text(stat(arm, "code_mean_abs"), 3), stat_text(stat(arm, "code_dead_units"), 1),
                          " ".join(marks)])
        blocks.append(Table(["setting", "seeds", "val psnr (dB)", "psnr (dB)", "psnr − none (dB)", HOYER_LABEL,
                             f"{SMALL_LABEL} (%)", "mean |E|", "dead units", "validation"],
                            table, numeric=set(range(1, 9)),
                            caption=f"{dataset_name(dataset)}: psnr against the code's sparsity per setting, scored on "
                                    f"{test_images_text(study, dataset)}."
                                    + (" grid's model = the compression grid's choice, without a penalty, on the "
                                       "grid's own model (not a setting validation chooses among)." if grid else "")
                                    + " ✓ l2 / ✓ l1 = validation prefers that "
                                    "strength: the best tried, its mean validation psnr above none's; \"best l2 tried, "
                                    "not above none\" = the best strength tried, which validation does not prefer to "
                                    "none (the l2 + l1 trial still combines the best strengths tried); ★ = the best "
                                    "setting on mean validation psnr."))
        trade = _tradeoff_figure(study, dataset, settings)
        if trade:
            blocks.append(trade)
        hist = _code_histogram(study, dataset, settings)
        if hist:
            blocks.append(hist)
        if len(settings) > 1:
            rows = []
            for label, arm in settings[1:]:
                c = claims(base, arm)
                rows.append([label, stat_text(stat(gap_rows(arm), "gap")), diff_text(c["gap"]),
                             stat_text(stat(arm, "noisy_psnr")), diff_text(c["noisy"]), diff_text(c["drop"]),
                             _claim_words(c)])
            blocks.append(Table(["setting", "gap (dB)", "gap − none (dB)", f"noisy-input psnr σ²={var:g} (dB)",
                                 "noisy-input psnr − none (dB)", "drop − none (dB)", "verdict"], rows,
                                numeric={1, 2, 3, 4, 5},
                                caption=f"{dataset_name(dataset)}: the claim that regularization \"improved robustness "
                                        "and prevented overfitting\", per setting (none: gap "
                                        f"{stat_text(stat(gap_rows(base), 'gap'))} dB, noisy-input psnr "
                                        f"{stat_text(stat(base, 'noisy_psnr'))} dB). Less overfitting = a narrower "
                                        "gap; more robust = a higher noisy-input psnr and a smaller drop, each beyond "
                                        "its spread: a model better on clean and noisy inputs alike is better, not more "
                                        "robust, and a smaller drop at a lower noisy-input psnr is no gain."))
    if len(blocks) == 3:
        blocks.append(Para(f"None: {NO_GRID}." if not has_grid(study) else "No regularization results yet."))
    return blocks


def _claim_words(c: dict) -> str:
    """The overfitting and robustness verdicts of `findings.claims`, once when neither has one."""
    if c["gap"] is not None and c["gap"].sign is None:
        return "one seed: no verdict"
    return f"{c['overfitting']}; {c['robustness']}"


def _tradeoff_figure(study: Study, dataset: str, settings: list[tuple[str, list[dict]]]) -> Figure | None:
    """psnr against Hoyer sparsity, a point per setting (None without a setting besides none)."""
    points: dict[str, list] = {}
    for label, arm in settings:
        h, p = stat(arm, "code_hoyer"), stat(arm, "psnr")
        if h is None or p is None:
            continue
        phase = "none" if label == "none" else arm[0].get("phase")
        short = label if label == "none" else label.replace(" + ", "+")
        points.setdefault(phase, []).append((short, h.mean, h.sd, p.mean, p.sd))
    if len(points) < 2:
        return None
    for phase in ("l2", "l1"):  # each penalty's line starts at none, its strength 0
        if phase in points and "none" in points:
            points[phase] = points["none"][:1] + points[phase]
    name = f"{slug(dataset)}-regularization-tradeoff.png"
    figures.plot_tradeoff(points, study.files / name,
                          title=f"{dataset_name(dataset)}: psnr against the code's sparsity per strength")
    return Figure(name, f"{dataset_name(dataset)}: test psnr against {HOYER_LABEL} per setting (bars ± sd over the "
                        "seeds); each penalty's line runs from none through its strengths.")


def _code_histogram(study: Study, dataset: str, settings: list[tuple[str, list[dict]]]) -> Figure | None:
    """The code values of the unregularized model beside each setting with l1 (first seed; None
    unless there are both: a study without l1 has no "with and without l1" to show)."""
    codes = {}
    for label, arm in settings:
        if label == "none" or arm[0].get("phase") in ("l1", "l2+l1"):
            path = study.path / "trials" / str(arm[0].get("id")) / "code_values.npy"
            try:
                codes[label if label != "none" else "no regularization"] = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                continue
    if len(codes) < 2 or "no regularization" not in codes:  # nothing to compare: no l1 setting (or no baseline)
        return None
    name = f"{slug(dataset)}-code-histogram.png"
    n = next(iter(codes.values())).shape[0]
    figures.plot_code_histogram(codes, study.files / name,
                                title=f"{dataset_name(dataset)}: code values with and without l1")
    return Figure(name, f"{dataset_name(dataset)}: histogram of the code values E_j of the first {n:,} test images, "
                        "without regularization and with each l1 (the first seed's models; log-scaled counts).")


# ------------------------------------------------------------------------------------------
# denoising
# ------------------------------------------------------------------------------------------

def _level_header(var: float) -> str:
    return f"σ²={var:g} (σ={math.sqrt(var):.2f})"


def _denoiser_text(study: Study, dataset: str) -> str:
    dens = [r for r in ok_rows(study, dataset, "ae") if r.get("phase") in ("denoise", "blind")]
    if not dens:
        return ""
    r = dens[0]
    den_cfg = study.config.get("denoising") or {}
    arch = den_cfg.get("architecture", "best")
    source = ("the compression grid's chosen architecture (validation psnr)" if arch == "best" else
              f"set by the study's denoising.architecture {arch}")
    best = winner(study, dataset)
    if arch != "best" and best is not None:
        b = best[0]
        same = (b.get("widths"), b.get("latent")) == (r.get("widths"), r.get("latent"))
        source += (", the same as the compression grid's choice" if same else
                   f": **another architecture than the compression grid's choice** (widths {b.get('widths')}, "
                   f"L = {b.get('latent')}), so the plain autoencoder (ae) and the denoisers differ in more than "
                   "their training noise")
    text = f"The denoisers are widths {r.get('widths')} with L = {r.get('latent')} (depth {r.get('depth')}), {source}"
    if den_cfg.get("model"):
        text += f", with model settings {den_cfg['model']}"
    per = sorted({d.get("epochs_run") for d in dens if d.get("phase") == "denoise"} - {None})
    blind = [d for d in dens if d.get("phase") == "blind"]
    blind_epochs = sorted({d.get("epochs_run") for d in blind} - {None})
    text += "." + (f" The per-level denoisers trained {'/'.join(map(str, per))} epochs, each at its own σ²" if per else "")
    if blind and isinstance(blind[0].get("noise_var"), list):
        lo, hi = blind[0]["noise_var"]
        text += (f"; the blind denoiser trained **{'/'.join(map(str, blind_epochs))} epochs** on noise of variance σ² "
                 f"between {lo:g} and {hi:g}" + (f", against {'/'.join(map(str, per))} for the per-level ones "
                                                  "(it learns every level at once)" if per and per != blind_epochs
                                                  else ""))
    n_seeds = len({d.get("seed") for d in dens})
    return text + f". Each ran with {n_seeds} seed{'s' if n_seeds != 1 else ''}."


def _method_cell(method: str) -> str:
    label = AE_LABELS.get(method, method)
    return f"**{label}**" if method in AE_METHODS else label


def _denoising_table(study: Study, dataset: str, variances: list[float], subset: bool) -> Table | None:
    """Methods x levels, psnr and SSIM per level (mean ± sd over seeds for the autoencoders): on the
    whole test split, or (subset) on the fixed subset every method, BM3D included, is scored on."""
    full = full_split_images(study, dataset)
    by_var = {v: methods_of(denoising_rows(study, dataset, v)) for v in variances}
    methods = list(dict.fromkeys(m for by in by_var.values() for m in by))
    methods = [m for m in methods if m not in AE_METHODS] + [m for m in AE_METHODS if m in methods]
    key, skey = ("subset_psnr", "subset_ssim") if subset else ("psnr", "ssim")
    table, n = [], 0
    for method in methods:
        cells, any_number = [], False
        for v in variances:
            rs = by_var[v].get(method, [])
            p, s = stat(rs, key), stat(rs, skey)
            any_number |= p is not None
            cells += [stat_text(p), stat_text(s, 3)]
            n = n or max([d.get("subset_images" if subset else "n_images") or 0 for d in rs] or [0])
        if any_number:
            table.append([_method_cell(method)] + cells)
    if not table:
        return None
    columns = ["method"]
    for v in variances:
        columns += [f"{_level_header(v)} psnr", f"{_level_header(v)} SSIM"]
    where = (f"on the fixed subset of {n:,} test images that every method, the slow ones (BM3D) included, is scored on"
             if subset else f"on the whole test split ({full:,} images)")
    return Table(columns, table, numeric=set(range(1, len(columns))),
                 caption=f"{dataset_name(dataset)}: denoising {where}: psnr (dB, {PSNR_LABEL.split(' = ')[1]}) and SSIM "
                         "of each method's output against the clean images; autoencoders in bold, mean ± sd over "
                         "their seeds.")


def _psnr_dataset_table(study: Study, dataset: str, variances: list[float]) -> Table | None:
    by_var = {v: methods_of(denoising_rows(study, dataset, v)) for v in variances}
    methods = list(dict.fromkeys(m for by in by_var.values() for m in by))
    rows = []
    for method in methods:
        cells = []
        for v in variances:
            rs = by_var[v].get(method, [])
            s = stat(rs, "psnr_dataset")
            cells.append(stat_text(s) if s is not None else (stat_text(stat(rs, "subset_psnr_dataset")) + " (subset)"
                                                              if stat(rs, "subset_psnr_dataset") else DASH))
        rows.append([_method_cell(method)] + cells)
    if not rows:
        return None
    return Table(["method"] + [_level_header(v) for v in variances], rows, numeric=set(range(1, len(variances) + 1)),
                 caption=f"{dataset_name(dataset)}: {PSNR_DATASET_LABEL}, on the whole test split ((subset): the "
                         "method ran on the fixed subset only).")


def _margins_table(study: Study, dataset: str) -> Table | None:
    margins = denoising_margins(study, dataset)
    if not margins:
        return None
    rows = []
    for m in margins:
        rows.append([_level_header(m["noise_var"]), f"{m['ae_method']}: {stat_text(m['ae'])}",
                     f"{m['baseline']}{' (subset)' if m['on_subset'] else ''}: {stat_text(m['base'])}",
                     diff_text(m["margin"]), verdict(m["margin"], "autoencoder wins", "autoencoder loses", "tie"),
                     f"{stat_text(m['ssim_ae'], 3)} / {stat_text(m['ssim_base'], 3)}", diff_text(m["ssim_margin"], 3)])
    return Table(["level", "best autoencoder psnr (dB)", "strongest baseline psnr (dB)", "margin (dB)", "verdict",
                  "SSIM (autoencoder / baseline)", "SSIM margin"], rows, numeric={3, 6},
                 caption=f"{dataset_name(dataset)}: the best autoencoder against the strongest baseline at each level "
                         "(the one it beats by the least), on the baseline's test images ((subset): the fixed "
                         "subset); margin = autoencoder minus baseline ± its spread.")


def denoising_section(study: Study) -> list:
    """Per dataset: what each method is, the denoisers' set-up, the margins over the strongest
    baseline, psnr against noise variance, the methods x levels tables (whole split and the subset,
    psnr and SSIM), psnr_dataset, the baselines' parameters and the grids. Empty when the study has
    no denoising results."""
    if not study.denoising:
        return []
    present = {d.get("method") for d in study.denoising}
    defs = method_definitions()
    blocks: list = [Heading(2, "Denoising", "denoising"),
                    Para("Every method sees the same noisy test images (noise of variance σ², clipped to [0, 1], "
                         "drawn once from a fixed seed); its score is the PSNR (and SSIM) of its output against the "
                         "clean image. Each parameter is chosen on the validation split, per level."),
                    Bullets([f"**{AE_LABELS.get(m, m)}**: {defs[m]}" for m in defs if m in present])]
    for dataset in study.datasets:
        variances = variances_of(study, dataset)
        if not variances:
            continue
        blocks.append(Heading(3, dataset_name(dataset)))
        text = _denoiser_text(study, dataset)
        if text:
            blocks.append(Para(text))
        margins = _margins_table(study, dataset)
        if margins:
            blocks.append(margins)
        series: dict = {}
        phases: dict = {}
        for v in variances:
            for method, rs in methods_of(denoising_rows(study, dataset, v)).items():
                s, subset = stat(rs, "psnr"), False
                if s is None:
                    s, subset = stat(rs, "subset_psnr"), True
                if s is None:
                    continue
                label = method + (" (subset)" if subset else "")
                xs, ys, sds = series.setdefault(label, ([], [], []))
                xs.append(v)
                ys.append(s.mean)
                sds.append(s.sd)
                if method in AE_METHODS:
                    phases[label] = {"dae": "denoise", "dae-blind": "blind", "ae": "grid"}[method]
        name = f"{slug(dataset)}-denoising.png"
        figures.plot_denoising(series, study.files / name, phases=phases,
                               title=f"{dataset_name(dataset)}: denoising psnr against noise variance")
        subset_n = max(subset_images(denoising_rows(study, dataset, v)) for v in variances)
        blocks.append(Figure(name, f"{dataset_name(dataset)}: psnr (mean per-image, dB) against noise variance σ²; "
                                   "autoencoders thick, bars ± sd over their seeds"
                                   + (f"; (subset) = a method run on the fixed subset of {subset_n:,} test images only"
                                      if any(k.endswith("(subset)") for k in series) else "") + "."))
        for subset in (False, True):
            table = _denoising_table(study, dataset, variances, subset)
            if table:
                blocks.append(table)
        skipped = _skipped_methods(study, dataset, variances)
        if skipped:
            blocks.append(Para("Not run: " + "; ".join(skipped) + "."))
        extra = [t for t in (_psnr_dataset_table(study, dataset, variances),
                             _parameter_table(study, dataset, variances)) if t]
        if extra:
            blocks.append(Details("psnr_dataset per method, and each baseline's chosen parameter", extra))
        shown = _denoising_grids(study, dataset, variances)
        if shown:
            blocks += [Para("Denoising grids (first seed): clean (top), noisy (middle), denoised (bottom); the same "
                            "images at every level."), Gallery(shown)]
    return blocks


def _skipped_methods(study: Study, dataset: str, variances: list[float]) -> list[str]:
    """Baselines the study asked for that produced no number at all (bm3d not installed), with why."""
    out = []
    for v in variances:
        for method, rs in methods_of(denoising_rows(study, dataset, v)).items():
            if method in AE_METHODS or stat(rs, "psnr") or stat(rs, "subset_psnr"):
                continue
            note = baseline_info(study, dataset, v, method).get("note") or rs[0].get("detail") or "no score"
            line = f"{method}: {note}"
            if line not in out:
                out.append(line)
    return out


def _parameter_table(study: Study, dataset: str, variances: list[float]) -> Table | None:
    rows = []
    methods = list(dict.fromkeys(m.get("method") for b in study.baselines if b.get("dataset") == dataset
                                 for m in b.get("rows") or []))
    for method in methods:
        cells = [chosen_parameter(study, dataset, v, method) for v in variances]
        if any(c != DASH for c in cells):
            rows.append([method] + cells)
    if not rows:
        return None
    return Table(["method"] + [_level_header(v) for v in variances], rows,
                 caption=f"{dataset_name(dataset)}: each baseline's parameter, chosen on the validation split per level.")


def _denoising_grids(study: Study, dataset: str, variances: list[float]) -> list[Figure]:
    shown = []
    dens = [r for r in ok_rows(study, dataset, "ae") if r.get("phase") in ("denoise", "blind")]
    first = min((r.get("seed") for r in dens if is_number(r.get("seed"))), default=None)
    dens = [r for r in dens if r.get("seed") == first]
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


# ------------------------------------------------------------------------------------------
# details: grids, curves, per class
# ------------------------------------------------------------------------------------------

def _copy_png(study: Study, source: Path, name: str) -> bool:
    try:
        data = source.read_bytes()
    except OSError:
        return False
    atomic_write_bytes(study.files / name, data)
    return True


def _first_seed(arm: list[dict]) -> dict:
    return min(arm, key=lambda r: r.get("seed") if is_number(r.get("seed")) else 0)


def grids_section(study: Study) -> list:
    """Per dataset: original-above-reconstruction grids of every depth and latent size (first seed)."""
    blocks: list = [Heading(2, "Image grids", "grids"),
                    Para("The same 16 test images for every model (the first seed's): originals (top row) above "
                         "reconstructions (bottom row).")]
    for dataset in study.datasets:
        shown = []
        for a in grid_arms(study, dataset):
            r = _first_seed(a)
            name = f"{r['id']}-grid.png"
            if _copy_png(study, study.path / "trials" / r["id"] / "grid.png", name):
                shown.append(Figure(name, f"{arch_label(r)}: psnr {db(r.get('psnr'))} dB, "
                                          f"psnr_dataset {db(r.get('psnr_dataset'))} dB (seed {r.get('seed', 0)})"))
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
    """Per dataset: validation psnr per epoch of every grid model (first seed)."""
    blocks: list = [Heading(2, "Training curves", "curves")]
    for dataset in study.datasets:
        curves = {}
        for a in grid_arms(study, dataset):
            r = _first_seed(a)
            hist = [h for h in _history(study, r) if is_number(h.get("val_psnr"))]
            if hist:
                curves[f"depth {r.get('depth')}, L={r.get('latent')}"] = (
                    [h.get("epoch") for h in hist], [h["val_psnr"] for h in hist])
        if curves:
            name = f"{slug(dataset)}-training-curves.png"
            figures.plot_training_curves(curves, study.files / name,
                                         title=f"{dataset_name(dataset)}: validation psnr per epoch")
            blocks.append(Figure(name, f"{dataset_name(dataset)}: validation psnr (mean per-image, dB) per epoch, "
                                       "one line per grid model (the first seed's)."))
    if len(blocks) == 1:
        blocks.append(Para("None: the curves are the grid models', and this study has no compression grid."
                           if not has_grid(study) else "No training histories yet."))
    return blocks


def per_class_section(study: Study) -> list:
    """Per dataset: per-class psnr of the chosen model (mean over its seeds), beside PCA with k = its
    L when the study has PCA, on the test images the dataset's compression numbers are on (how
    many per class). Absent (no heading) when no dataset has per-class numbers (data without
    labels, no grid model yet)."""
    any_pca = any(has_pca(study, d) for d in study.datasets)
    blocks: list = [Heading(2, "Per-class PSNR", "per-class"),
                    Para(f"{PSNR_LABEL}, per class, of the model validation chose (mean ± sd over its seeds)"
                         + (", beside PCA with k = L." if any_pca else ".")
                         + " Each caption says how many test images the classes share.")]
    for dataset in study.datasets:
        best = winner(study, dataset)
        if best is None or not best[0].get("per_class_psnr"):
            continue
        names = list(best[0]["per_class_psnr"])
        per = {n: stat([{"v": (r.get("per_class_psnr") or {}).get(n)} for r in best], "v") for n in names}
        with_pca = has_pca(study, dataset)
        pca = pca_rows(study, dataset).get(best[0].get("latent"), {}).get("per_class_psnr") or {}
        label = f"autoencoder ({arch_label(best[0])})"
        series = {label: [per[n].mean if per[n] else None for n in names]}
        if pca:
            series[f"PCA k = {best[0].get('latent')}"] = [pca.get(n) for n in names]
        name = f"{slug(dataset)}-per-class.png"
        figures.plot_per_class(names, series, study.files / name, title=f"{dataset_name(dataset)}: psnr per class")
        count = test_images(study, dataset)
        images = test_images_text(study, dataset) + (f", about {count / len(names):,.0f} per class" if count else "")
        rows = [[n, stat_text(per[n])]
                + ([db(pca.get(n)), diff_text(diff(per[n], stat([{"v": pca.get(n)}], "v")))] if with_pca else [])
                for n in names]
        columns = ["class", "autoencoder psnr (dB)"] + (["PCA psnr (dB)", "difference (dB)"] if with_pca else [])
        blocks += [Heading(3, dataset_name(dataset)),
                   Figure(name, f"{dataset_name(dataset)}: psnr (mean per-image, dB) per class."),
                   Table(columns, rows, numeric=set(range(1, len(columns))),
                         caption=f"{dataset_name(dataset)}: scored on {images}.")]
    return blocks if len(blocks) > 2 else []


# ------------------------------------------------------------------------------------------
# appendix: runs, time, schedule
# ------------------------------------------------------------------------------------------

RUN_COLUMNS = (("dataset", "dataset"), ("phase", "phase"), ("depth", "depth"), ("L", "latent"),
               ("penalty", "penalty"), ("noise σ²", "noise_var"), ("seed", "seed"), ("activation", "activation"),
               ("norm (encoder / decoder)", "norm"), ("init", "init"), ("schedule", "schedule"), ("lr", "lr"),
               ("batch", "batch_size"), ("epochs (best)", "epochs"), ("psnr (dB)", "psnr"),
               ("val psnr (dB)", "val_psnr"), ("seconds", "seconds"))


def _run_cell(r: dict, key: str) -> str:
    v = r.get(key)
    if key in ("psnr", "val_psnr"):
        return db(v)
    if key == "seconds":
        return fmt_secs(v)
    if key == "penalty":
        parts = [f"{k} {strength(r.get(k))}" for k in ("l2", "l1") if is_number(r.get(k)) and r.get(k)]
        return " + ".join(parts) or ("none" if r.get("kind") == "ae" else DASH)
    if key == "noise_var":
        return f"{v[0]:g}–{v[1]:g}" if isinstance(v, list) else (f"{v:g}" if is_number(v) else DASH)
    if key == "lr":
        return f"{v:g}" if is_number(v) else DASH
    if key == "epochs":
        budget = v if is_number(v) else r.get("epochs_run")
        return DASH if budget is None else f"{budget} ({r.get('best_epoch', DASH)})"
    if key == "dataset":
        return dataset_name(str(v))
    if key == "norm" and v is not None:
        dec = r.get("decoder_norm") or v
        return f"{v} / {dec}" + (", unit code columns" if r.get("unit_code_columns") else "")
    return DASH if v is None or v == "" else str(v)


def runs_section(study: Study) -> list:
    """Every finished autoencoder and PCA trial with its full configuration, as one sortable table."""
    rows = [r for r in study.rows if r.get("status") == "ok" and r.get("kind") in ("ae", "pca")]
    blocks: list = [Heading(2, "Appendix: every run", "runs")]
    if not rows:
        return blocks + [Para("No finished run yet.")]
    links = [f"[{n}]({n})" for n in ("results.csv", "denoising.csv", "study.yaml") if (study.path / n).is_file()]
    blocks.append(Para(f"{len(rows)} runs (autoencoders and PCA), each with its configuration: click a column's head "
                       "to sort by it. The classical denoisers are in denoising.csv"
                       + (f"; the files: {', '.join(links)}" if links else "") + ". Each trial's folder "
                       "(trials/<id>/, the last column) holds its run, its result.json and its figures."))
    table = [[_run_cell(r, key) for _, key in RUN_COLUMNS] + [str(r.get("id"))] for r in rows]
    blocks.append(Table([name for name, _ in RUN_COLUMNS] + ["trial"], table,
                        numeric={i for i, (_, key) in enumerate(RUN_COLUMNS)
                                 if key in ("depth", "latent", "seed", "lr", "batch_size", "epochs", "psnr", "val_psnr",
                                            "seconds")},
                        caption="Every run: lr is the peak learning rate; epochs the budget (the best epoch by "
                                "validation loss); psnr on the test images; seconds of training.",
                        sortable=True))
    return blocks


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
    blocks: list = [Heading(2, "Appendix: time per trial", "time")]
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
                                 rows, numeric={4, 5, 6}, sortable=True)]))
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
    blocks: list = [Heading(2, "Appendix: how the trials were scheduled", "schedule")]
    if not jobs:
        return blocks + [Para("No trial of the latest run has a timeline (trials written before autoenc recorded one, "
                              "or none ran in it).")]
    blocks.append(Para(schedule_text(jobs, st)))
    name = "timeline.png"
    figures.plot_timeline(jobs, study.files / name, title="trials per worker over the run")
    blocks.append(Figure(name, "Each worker's trials over the latest run, coloured by phase; the paler end of an "
                               "autoencoder's bar is its evaluation (test metrics, denoising levels, grids)."))
    return blocks


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


SECTIONS = (headline_section, compression_section, regularization_section, denoising_section, grids_section,
            curves_section, per_class_section, failed_section, runs_section, time_section, schedule_section)


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
    """Write <study_dir>/report.html (self-contained: inline CSS and script, embedded PNGs, no
    network) and <study_dir>/report.md (with its figures in <study_dir>/report_files/), both
    atomically.

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
