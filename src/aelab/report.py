"""The study report: one self-contained `report.html` and a `report.md` from a study folder.

    html_path, md_path = write_report("runs/lab")

The report is built from what the study wrote (results.json, denoising.json, summary.json and
the trial folders; see `aelab.study`), so it works for any study: one or two datasets, with or
without denoising, with failed trials, and while the study is still running (trials finished
since the last results.json are read from their own result.json files).

Each section is one function returning a list of blocks (headings, paragraphs, tables, figures);
`render.render_html` and `render.render_md` turn the same blocks into the two files. Every image of
report.html is an embedded base64 PNG (no scripts, no fonts, nothing from the network);
report.md references the same PNGs as files in `report_files/` next to it.

Units: PSNR in dB on the [0, 1] pixel scale, noise as the variance sigma^2 on that scale.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import figures
from .render import (FILES_DIR, Bullets, Details, Figure, Gallery, Heading, Para, Table, _referenced,
                     render_html, render_md)
from .runs import atomic_write_text

PSNR_LABEL = "psnr = mean over test images of per-image PSNR (dB)"
PSNR_DATASET_LABEL = "psnr_dataset = PSNR of the mean MSE (dB), what papers quote"
AE_METHODS = ("dae", "dae-blind", "ae")  # the autoencoder rows of the denoising table
AE_LABELS = {"dae": "dae (per-level)", "dae-blind": "dae-blind (all levels)",
             "ae": "ae (plain, noisy input)"}
TOLERANCE_DB = 0.05  # PSNR changes smaller than this count as "no change" in the generated text
DASH = "–"
SECTION_FAILED = "This section could not be built from the study's files"


# ------------------------------------------------------------------------------------------
# reading a study folder
# ------------------------------------------------------------------------------------------

@dataclass
class Study:
    """Everything the report reads from a study folder.

    config: the study config dict; summary: summary.json (or {}); rows: a row per compression
    trial (kind "ae" or "pca") plus failed trials of any kind; denoising: a row per dataset x
    noise variance x method; baselines: the classical-denoiser trial results (kind "baselines");
    datasets: in the study's order; partial: whether trials are missing or newer than
    results.json; trials_done / trials_total: counts (total None when unknown)."""

    path: Path
    files: Path
    config: dict
    summary: dict
    rows: list[dict]
    denoising: list[dict]
    baselines: list[dict]
    datasets: list[str]
    partial: bool
    trials_done: int
    trials_total: int | None


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def _read_config(study_dir: Path, summary: dict) -> dict:
    if isinstance(summary.get("study"), dict):
        return summary["study"]
    import yaml

    try:
        config = yaml.safe_load((study_dir / "study.yaml").read_text())
    except (OSError, yaml.YAMLError):  # no study.yaml (yet): report without it
        return {}
    return config if isinstance(config, dict) else {}


def _trial_results(study_dir: Path) -> list[tuple[float, dict]]:
    """(modification time, result) of every readable trials/*/result.json."""
    found = []
    for path in sorted((study_dir / "trials").glob("*/result.json")):
        result = _read_json(path, None)
        if isinstance(result, dict) and "id" in result:
            found.append((path.stat().st_mtime, {k: v for k, v in result.items() if k != "trial"}))
    return found


def _count_total(config: dict) -> int | None:
    try:
        from .study import count_trials, study_from_dict

        return count_trials(study_from_dict(dict(config)))
    except Exception:  # a config this version cannot rebuild: the count is unknown
        return None


def _denoising_from_trials(rows: list[dict], baselines: list[dict], variances: list[float]) -> list[dict]:
    """The denoising table rebuilt from trial results (used while results are partial): the same
    rows as the study's denoising.json (dataset, noise_var, sigma, method, detail, psnr, ...)."""
    keys = ("psnr", "psnr_dataset", "ssim", "n_images", "subset_psnr", "subset_psnr_dataset", "subset_images")
    out = []
    datasets = list(dict.fromkeys([r.get("dataset") for r in rows + baselines]))
    for dataset in datasets:
        ok = [r for r in rows if r.get("dataset") == dataset and r.get("status") == "ok" and r.get("kind") == "ae"]
        best_plain = _best_by_val([r for r in ok if r.get("phase") == "grid"])
        for var in variances:
            def add(method, detail, score, seconds=None):
                if score is not None:
                    out.append({"dataset": dataset, "noise_var": var, "sigma": round(math.sqrt(var), 4),
                                "method": method, "detail": detail, "seconds": seconds,
                                **{k: score.get(k) for k in keys}})

            for b in baselines:
                if b.get("dataset") == dataset and _same(b.get("noise_var"), var) and b.get("status") == "ok":
                    for m in b.get("rows", []):
                        add(m.get("method"), "", m, m.get("seconds"))
            for r in ok:
                nv = r.get("noise_var")
                if nv is None or (not isinstance(nv, list) and not _same(nv, var)):
                    continue
                score = next((s for s in r.get("denoising") or [] if _same(s.get("noise_var"), var)), None)
                add("dae-blind" if isinstance(nv, list) else "dae",
                    f"widths {r.get('widths')}, L={r.get('latent')}", score, r.get("seconds"))
            if best_plain is not None:
                score = next((s for s in best_plain.get("denoising") or [] if _same(s.get("noise_var"), var)), None)
                add("ae", f"best plain autoencoder (depth {best_plain.get('depth')}, L={best_plain.get('latent')})",
                    score)
    return out


def load_study(study_dir: str | Path) -> Study:
    """Read a study folder (finished, partial or still running) into a `Study`.

    results.json and denoising.json are the source; trial results written after them (a study
    still running or interrupted) are added from trials/*/result.json."""
    study_dir = Path(study_dir)
    summary = _read_json(study_dir / "summary.json", {})
    config = _read_config(study_dir, summary)
    results_path = study_dir / "results.json"
    rows = _read_json(results_path, None)
    have_results = isinstance(rows, list)
    rows = [r for r in rows if isinstance(r, dict)] if have_results else []
    stamp = results_path.stat().st_mtime if have_results else -math.inf
    datasets = list(config.get("datasets") or []) or list(dict.fromkeys(r.get("dataset") for r in rows))
    trials = [(t, r) for t, r in _trial_results(study_dir) if not datasets or r.get("dataset") in datasets]
    known = {r.get("id") for r in rows}
    fresh = [r for t, r in trials if t > stamp and r.get("id") not in known]
    rows += [r for r in fresh if r.get("kind") in ("ae", "pca") or r.get("status") != "ok"]
    den_cfg = config.get("denoising") if isinstance(config.get("denoising"), dict) else None
    wanted = (den_cfg or {}).get("variances")
    baselines = [r for _, r in trials if r.get("kind") == "baselines" and r.get("status") == "ok"
                 and (not wanted or any(_same(r.get("noise_var"), v) for v in wanted))]
    if not datasets:
        datasets = list(dict.fromkeys(r.get("dataset") for r in rows + baselines))
    denoising = _read_json(study_dir / "denoising.json", None)
    if not isinstance(denoising, list) or fresh:
        variances = (den_cfg or {}).get("variances") or sorted(
            {s.get("noise_var") for r in rows for s in r.get("denoising") or []} - {None})
        denoising = _denoising_from_trials(rows, baselines, variances) if den_cfg is not None else []
    total = summary.get("trials_total") or _count_total(config)
    done = len({r.get("id") for r in rows} | {b.get("id") for b in baselines})
    if isinstance(summary.get("trials_done"), int) and not fresh:
        done = summary["trials_done"]
    partial = bool(fresh) or not have_results or (total is not None and done < total)
    return Study(path=study_dir, files=study_dir / FILES_DIR, config=config, summary=summary, rows=rows,
                 denoising=[d for d in denoising if isinstance(d, dict)], baselines=baselines, datasets=datasets,
                 partial=partial, trials_done=done, trials_total=total)


# ------------------------------------------------------------------------------------------
# small helpers: selecting rows and formatting numbers
# ------------------------------------------------------------------------------------------

def _same(a, b) -> bool:
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) < 1e-9


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _best_by_val(rows: list[dict]) -> dict | None:
    rows = [r for r in rows if _num(r.get("val_psnr"))]
    return max(rows, key=lambda r: r["val_psnr"]) if rows else None


def db(v) -> str:
    """A PSNR (dB) or other float to 2 decimals; a dash when missing."""
    return f"{v:.2f}" if _num(v) else DASH


def signed(v, digits: int = 2) -> str:
    """A difference with its sign (+0.12, −0.40, ±0.00 when it rounds to zero); a dash when missing."""
    if not _num(v):
        return DASH
    if round(v, digits) == 0:
        return f"±{0:.{digits}f}"
    return f"{v:+.{digits}f}".replace("-", "−")


def _pct(v) -> str:
    return f"{100 * v:.2f} %" if _num(v) else DASH


def _int(v) -> str:
    return f"{int(v):,}" if _num(v) else DASH


def _secs(v) -> str:
    return f"{v:.1f}" if _num(v) else DASH


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def _strength(v) -> str:
    return f"{v:g}" if _num(v) and v else "0"


def _csv(values) -> str:
    if not isinstance(values, (list, tuple)):
        return DASH if values is None else str(values)
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) if values else "none"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def _name(dataset: str) -> str:
    return Path(dataset).stem if ("/" in dataset or "\\" in dataset) else dataset


def _ok(study: Study, dataset: str, kind: str | None = None, phase: str | None = None) -> list[dict]:
    return [r for r in study.rows if r.get("dataset") == dataset and r.get("status") == "ok"
            and (kind is None or r.get("kind") == kind) and (phase is None or r.get("phase") == phase)]


def grid_rows(study: Study, dataset: str) -> list[dict]:
    """The finished compression-grid autoencoders of a dataset, by depth then latent size."""
    return sorted(_ok(study, dataset, "ae", "grid"), key=lambda r: (r.get("depth") or 0, r.get("latent") or 0))


def pca_rows(study: Study, dataset: str) -> dict[int, dict]:
    """The finished PCA baselines of a dataset, by k (= L)."""
    return {r.get("latent"): r for r in _ok(study, dataset, "pca")}


def winner(study: Study, dataset: str) -> dict | None:
    """The grid autoencoder validation chose (highest val psnr; the summary's choice when known)."""
    rows = grid_rows(study, dataset)
    chosen = ((study.summary.get("choices") or {}).get(dataset) or {}).get("grid") or {}
    match = [r for r in rows if r.get("id") == chosen.get("id")]
    return match[0] if match else _best_by_val(rows)


def _arch(r: dict) -> str:
    return f"depth {r.get('depth')}, L = {r.get('latent')}"


def regularization_rows(study: Study, dataset: str) -> list[tuple[str, dict]]:
    """(setting label, row) of every regularization setting tried on the winner's architecture:
    "none" (the winner itself), each l2, each l1 and l2+l1, in that order."""
    best = winner(study, dataset)
    if best is None:
        return []
    same = [r for r in _ok(study, dataset, "ae") if r.get("phase") in ("l2", "l1", "l2+l1")
            and r.get("latent") == best.get("latent") and r.get("widths") == best.get("widths")]
    out = [("none", best)]
    for phase in ("l2", "l1", "l2+l1"):
        mine = sorted([r for r in same if r.get("phase") == phase], key=lambda r: (r.get("l2") or 0, r.get("l1") or 0))
        for r in mine:
            label = {"l2": f"l2 = {_strength(r.get('l2'))}", "l1": f"l1 = {_strength(r.get('l1'))}",
                     "l2+l1": f"l2 = {_strength(r.get('l2'))} + l1 = {_strength(r.get('l1'))}"}[phase]
            out.append((label, r))
    return out


def _chosen_ids(study: Study, dataset: str) -> dict[str, str]:
    """{phase: trial id} of validation's choice for l2 and l1 (from the summary, else computed)."""
    choices = (study.summary.get("choices") or {}).get(dataset) or {}
    out = {}
    for phase in ("l2", "l1"):
        pick = (choices.get(phase) or {}).get("id")
        if pick is None:
            best = _best_by_val(_ok(study, dataset, "ae", phase))
            pick = best.get("id") if best else None
        if pick:
            out[phase] = pick
    return out


def _gap(r: dict):
    """Train minus test psnr (dB): how much better the model does on images it trained on."""
    t, p = r.get("train_psnr"), r.get("psnr")
    return t - p if _num(t) and _num(p) else None


def _delta(a, b):
    return a - b if _num(a) and _num(b) else None


def _variances(study: Study, dataset: str) -> list[float]:
    return sorted({d["noise_var"] for d in study.denoising if d.get("dataset") == dataset and _num(d.get("noise_var"))})


def _den_rows(study: Study, dataset: str, var: float) -> list[dict]:
    return [d for d in study.denoising if d.get("dataset") == dataset and _same(d.get("noise_var"), var)]


def _full_images(rows: list[dict]) -> int:
    return max([d.get("n_images") or 0 for d in rows] or [0])


def _on_subset(d: dict, full: int) -> bool:
    return bool(d.get("subset")) or (_num(d.get("n_images")) and 0 < d["n_images"] < full)


def _baseline_info(study: Study, dataset: str, var: float, method: str) -> dict:
    """The classical denoiser's own result (chosen parameter, note) at one level, or {}."""
    for b in study.baselines:
        if b.get("dataset") == dataset and _same(b.get("noise_var"), var):
            for m in b.get("rows") or []:
                if m.get("method") == method:
                    return m
    return {}




# ------------------------------------------------------------------------------------------
# findings: generated from the numbers
# ------------------------------------------------------------------------------------------

def _list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _depth_sentence(study: Study, dataset: str) -> str:
    rows = grid_rows(study, dataset)
    depths = sorted({r.get("depth") for r in rows if r.get("depth") is not None})
    if len(depths) < 2:
        return ""
    shallow, deep = depths[0], depths[-1]
    by = {(r.get("depth"), r.get("latent")): r for r in rows}
    diffs = []
    for latent in sorted({r.get("latent") for r in rows}):
        a, b = by.get((shallow, latent)), by.get((deep, latent))
        if a and b and _num(a.get("psnr")) and _num(b.get("psnr")):
            diffs.append((latent, b["psnr"] - a["psnr"]))
    if not diffs:
        return ""
    text = (f"Depth {deep} minus depth {shallow} (test psnr): "
            + _list([f"{signed(d)} dB at L = {latent}" for latent, d in diffs]) + "; ")
    loses = [latent for latent, d in diffs if d < -TOLERANCE_DB]
    wins = [latent for latent, d in diffs if d > TOLERANCE_DB]
    if loses and not wins:
        text += f"depth {deep} loses at every L it was tried" if len(loses) == len(diffs) else (
            f"depth {deep} loses at L = {_list([str(v) for v in loses])} and ties elsewhere")
    elif wins and not loses:
        text += f"depth {deep} wins at every L" if len(wins) == len(diffs) else (
            f"depth {deep} wins at L = {_list([str(v) for v in wins])} and ties elsewhere")
    elif wins and loses:
        text += (f"depth {deep} wins at L = {_list([str(v) for v in wins])} but loses at "
                 f"L = {_list([str(v) for v in loses])}")
    else:
        text += f"the two depths are within {TOLERANCE_DB} dB everywhere"
    epochs = {d: sorted({r.get("epochs_run") for r in rows if r.get("depth") == d} - {None}) for d in (shallow, deep)}
    if epochs[shallow] and epochs[deep] and epochs[shallow] != epochs[deep]:
        text += (f" (budgets differ: depth {shallow} ran {'/'.join(map(str, epochs[shallow]))} epochs, depth {deep} "
                 f"{'/'.join(map(str, epochs[deep]))})")
    return text + "."


def best_per_latent(study: Study, dataset: str) -> dict[int, dict]:
    """{L: the grid autoencoder with the highest validation psnr at that latent size}."""
    out = {}
    for r in grid_rows(study, dataset):
        cur = out.get(r.get("latent"))
        if cur is None or (_num(r.get("val_psnr")) and r["val_psnr"] > (cur.get("val_psnr") or -math.inf)):
            out[r.get("latent")] = r
    return out


def _pca_sentence(study: Study, dataset: str) -> str:
    pca = pca_rows(study, dataset)
    margins = []
    for latent, r in sorted(best_per_latent(study, dataset).items()):
        p = pca.get(latent)
        if p and _num(r.get("psnr")) and _num(p.get("psnr")):
            margins.append((latent, r["psnr"] - p["psnr"]))
    if not margins:
        return ""
    text = ("Margin over PCA with k = L (test psnr of the depth validation prefers at that L): "
            + _list([f"{signed(m)} dB at L = {latent}" for latent, m in margins]))
    behind = [str(latent) for latent, m in margins if m < 0]
    if behind:
        text += f"; the autoencoder falls short of PCA at L = {_list(behind)}"
    else:
        text += "; the autoencoder beats PCA at every L"
    return text + "."


def _regularization_sentences(study: Study, dataset: str) -> list[str]:
    settings = regularization_rows(study, dataset)
    if len(settings) < 2:
        return []
    base = settings[0][1]
    parts = []
    for label, r in settings[1:]:
        dz = _delta(r.get("code_zero_fraction"), base.get("code_zero_fraction"))
        dd = _delta(r.get("code_dead_units"), base.get("code_dead_units"))
        parts.append(
            f"{label}: psnr {signed(_delta(r.get('psnr'), base.get('psnr')))} dB, "
            f"zero code entries {signed(100 * dz) if dz is not None else DASH} percentage points"
            + (f", dead units {int(dd):+d}" if dd is not None and dd != 0 else "")
            + f", train−test gap {signed(_delta(_gap(r), _gap(base)))} dB, "
            f"noisy-input psnr {signed(_delta(r.get('noisy_psnr'), base.get('noisy_psnr')))} dB")
    text = ("Regularization on that architecture, each against the unregularized model: "
            + "; ".join(parts) + ".")
    chosen = _chosen_ids(study, dataset)
    picks = []
    for phase in ("l2", "l1"):
        row = next((r for _, r in settings if r.get("id") == chosen.get(phase)), None)
        if row is not None:
            better = _num(row.get("val_psnr")) and _num(base.get("val_psnr")) and row["val_psnr"] > base["val_psnr"]
            picks.append(f"{phase} = {_strength(row.get(phase))} (validation psnr {db(row.get('val_psnr'))} dB, "
                         f"{'above' if better else 'not above'} the unregularized {db(base.get('val_psnr'))} dB)")
    if picks:
        text += " Validation chose " + _list(picks) + "."
    overall = _best_by_val([r for _, r in settings])
    if overall is not None:
        label = next(lbl for lbl, r in settings if r is overall)
        text += f" Best setting on validation overall: {label}."
    return [text]


def denoising_margins(study: Study, dataset: str) -> list[dict]:
    """Per noise variance: the best autoencoder against the strongest classical baseline, each
    baseline compared on its own test images (the AE's subset score for a subset baseline).

    Returns [{noise_var, sigma, ae_method, ae_psnr, baseline, baseline_psnr, margin (dB),
    n_images}] (psnr in dB; margin = AE minus baseline)."""
    out = []
    for var in _variances(study, dataset):
        rows = _den_rows(study, dataset, var)
        full = _full_images(rows)
        aes = [d for d in rows if d.get("method") in AE_METHODS]
        cmp = []
        for b in rows:
            if b.get("method") in AE_METHODS or not _num(b.get("psnr")):
                continue
            key = "subset_psnr" if _on_subset(b, full) else "psnr"
            scored = [(a[key], a["method"]) for a in aes if _num(a.get(key))]
            if scored:
                ae_psnr, ae_method = max(scored)
                cmp.append({"noise_var": var, "sigma": math.sqrt(var), "ae_method": ae_method, "ae_psnr": ae_psnr,
                            "baseline": b.get("method"), "baseline_psnr": b["psnr"],
                            "margin": ae_psnr - b["psnr"], "n_images": b.get("n_images")})
        if cmp:
            out.append(min(cmp, key=lambda c: c["margin"]))
    return out


def _denoising_sentence(study: Study, dataset: str) -> str:
    margins = denoising_margins(study, dataset)
    if not margins:
        return ""
    parts = []
    for m in margins:
        verb = "leads" if m["margin"] > 0 else "trails"
        parts.append(f"at σ² = {m['noise_var']:g} (σ = {m['sigma']:.2f}) the best autoencoder ({m['ae_method']}, "
                     f"{db(m['ae_psnr'])} dB) {verb} the best baseline ({m['baseline']}, {db(m['baseline_psnr'])} dB) "
                     f"by {abs(round(m['ae_psnr'], 2) - round(m['baseline_psnr'], 2)):.2f} dB")  # as shown
    text = "Denoising (psnr): " + "; ".join(parts) + "."
    losses = [f"{m['noise_var']:g}" for m in margins if m["margin"] <= 0]
    if losses:
        text += f" The autoencoders lose at σ² = {_list(losses)}."
    else:
        text += " The autoencoders win at every level."
    gaps = []
    for var in _variances(study, dataset):
        rows = {d.get("method"): d for d in _den_rows(study, dataset, var)}
        if "dae" in rows and "dae-blind" in rows:
            g = _delta(rows["dae-blind"].get("psnr"), rows["dae"].get("psnr"))
            if g is not None:
                gaps.append((var, g))
    if gaps:
        worst = min(gaps, key=lambda t: t[1])
        levels = _list([f"{signed(g)} dB at σ² = {v:g}" for v, g in gaps])
        if worst[1] < 0:
            text += (f" The blind denoiser minus the per-level ones: {levels}; it is at most {-worst[1]:.2f} dB "
                     "behind.")
        else:
            text += f" The blind denoiser minus the per-level ones: {levels}; it is never behind."
    return text


def findings(study: Study, dataset: str) -> list[str]:
    """The generated findings of one dataset, one sentence group per topic (winner, depth, PCA,
    regularization, denoising); empty when the dataset has no finished grid model yet."""
    best = winner(study, dataset)
    if best is None:
        return []
    items = [f"Validation chose {_arch(best)} (validation psnr {db(best.get('val_psnr'))} dB); on the test "
             f"split it reaches psnr {db(best.get('psnr'))} dB (psnr_dataset {db(best.get('psnr_dataset'))} dB, "
             f"SSIM {db(best.get('ssim'))})."]
    items += [s for s in (_depth_sentence(study, dataset), _pca_sentence(study, dataset)) if s]
    items += _regularization_sentences(study, dataset)
    den = _denoising_sentence(study, dataset)
    if den:
        items.append(den)
    return items


def findings_text(study: Study, dataset: str) -> str:
    """The generated findings of one dataset as one paragraph ("" when there are none yet)."""
    items = findings(study, dataset)
    return f"**{_name(dataset)}**: " + " ".join(items) if items else ""


# ------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------

def header_section(study: Study) -> list:
    """Title, what the study ran and how far it got, and the two PSNR definitions."""
    c = study.config
    total = "?" if study.trials_total is None else str(study.trials_total)
    wall = study.summary.get("wall_seconds_total", study.summary.get("wall_seconds"))
    train_secs = sum(r.get("seconds") or 0 for r in study.rows if _num(r.get("seconds")))
    lines = [f"Datasets: {', '.join(_name(d) for d in study.datasets) or DASH}. "
             f"Trials done: {study.trials_done} of {total}"
             + (f", {len(failed_trials(study))} failed" if failed_trials(study) else "") + ". "
             + (f"Wall time over every run of the study: {_duration(wall)}. " if _num(wall) else "")
             + f"Training/fitting time summed over trials: {_duration(train_secs)}."]
    epochs = c.get("epochs")
    depths = [str(d) for d in c.get("depths") or []]
    if isinstance(epochs, dict):
        epochs = ", ".join(f"depth {k}: {v}" for k, v in epochs.items() if not depths or str(k) in depths)
    grid = (f"Grid: depths {_csv(c.get('depths'))} × latent sizes {_csv(c.get('latents'))}; epochs ({epochs}); "
            f"l2 {_csv(c.get('l2'))}; l1 {_csv(c.get('l1'))}"
            + ("; subsets " + ", ".join(f"{k} {v:,}" for k, v in c["subset"].items()) if c.get("subset") else "")
            + f"; robustness check at noise variance σ² = {c.get('robustness_var', 0.01)}.")
    lines.append(grid)
    precisions = sorted({r["precision"] for r in study.rows if r.get("precision")})
    if precisions:
        lines.append(f"Training arithmetic: {' and '.join(precisions)} (bf16 = bfloat16 autocast, what precision "
                     "`auto` picks on a CPU with native bf16); every score is computed in float32.")
    blocks: list = [Heading(1, f"aelab study report: {c.get('name', study.path.name)}")]
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


def findings_section(study: Study) -> list:
    """Generated findings, one paragraph per dataset."""
    blocks: list = [Heading(2, "Findings", "findings"),
                    Para("Generated from the numbers below (psnr in dB; changes under "
                         f"{TOLERANCE_DB} dB count as ties).")]
    for dataset in study.datasets:
        items = findings(study, dataset)
        if items:
            blocks += [Para(f"**{_name(dataset)}**"), Bullets(items)]
    if len(blocks) == 2:
        blocks.append(Para("No finished compression model yet."))
    return blocks


def compression_section(study: Study) -> list:
    """Per dataset: psnr against latent size (a line per depth, PCA dashed) and the grid table."""
    blocks: list = [Heading(2, "Compression: depth × latent size", "compression"),
                    Para(f"Test split, no regularization. Table: {PSNR_LABEL}; {PSNR_DATASET_LABEL}; "
                         "vs PCA = psnr minus PCA's psnr with k = L; epochs run (best epoch by validation loss); "
                         "seconds of training.")]
    for dataset in study.datasets:
        rows = grid_rows(study, dataset)
        pca = pca_rows(study, dataset)
        if not rows and not pca:
            continue
        blocks.append(Heading(3, _name(dataset)))
        series: dict = {}
        for r in rows:
            if _num(r.get("psnr")):
                xs, ys = series.setdefault(f"depth {r.get('depth')}", ([], []))
                xs.append(r.get("latent"))
                ys.append(r["psnr"])
        pca_line = None
        if pca:
            ks = sorted(k for k in pca if _num(pca[k].get("psnr")))
            pca_line = (ks, [pca[k]["psnr"] for k in ks])
        name = f"{_slug(dataset)}-psnr-vs-latent.png"
        figures.plot_psnr_vs_latent(series, study.files / name, pca=pca_line,
                                    title=f"{_name(dataset)}: test psnr against latent size")
        blocks.append(Figure(name, f"{_name(dataset)}: psnr (mean per-image, dB) against latent size L; "
                                   "a line per depth, PCA dashed."))
        table = []
        best = winner(study, dataset)
        for r in rows:
            p = pca.get(r.get("latent"), {})
            table.append([str(r.get("depth")), str(r.get("latent")), db(r.get("val_psnr")), db(r.get("psnr")),
                          db(r.get("psnr_dataset")), db(r.get("ssim")), signed(_delta(r.get("psnr"), p.get("psnr"))),
                          f"{r.get('epochs_run', DASH)} ({r.get('best_epoch', DASH)})", _secs(r.get("seconds")),
                          _int(r.get("parameters")), "✓" if best is not None and r is best else ""])
        for k in sorted(pca):
            p = pca[k]
            table.append(["PCA", str(k), db(p.get("val_psnr")), db(p.get("psnr")), db(p.get("psnr_dataset")),
                          db(p.get("ssim")), DASH, DASH, _secs(p.get("seconds")), _int(p.get("parameters")), ""])
        blocks.append(Table(["depth", "L", "val psnr (dB)", "psnr (dB)", "psnr_dataset (dB)", "SSIM", "vs PCA (dB)",
                             "epochs (best)", "seconds", "parameters", "chosen"], table,
                            numeric={1, 2, 3, 4, 5, 6, 7, 8, 9},
                            caption=f"{_name(dataset)}: every grid cell (✓ = chosen on validation psnr)."))
    return blocks


def _claim_verdict(label: str, r: dict, base: dict) -> str:
    dgap = _delta(_gap(r), _gap(base))
    dnoisy = _delta(r.get("noisy_psnr"), base.get("noisy_psnr"))
    if dgap is None or dnoisy is None:
        return f"{label}: not enough numbers to test the claim."
    overfit = ("narrower: less overfitting" if dgap < -TOLERANCE_DB else
               "wider: more overfitting" if dgap > TOLERANCE_DB else "unchanged")
    robust = ("more robust" if dnoisy > TOLERANCE_DB else "less robust" if dnoisy < -TOLERANCE_DB else "unchanged")
    supported = (dgap < -TOLERANCE_DB) + (dnoisy > TOLERANCE_DB)
    verdict = {2: "supports the claim", 1: "partly supports the claim", 0: "does not support the claim"}[supported]
    return (f"{label}: train−test gap {db(_gap(base))} → {db(_gap(r))} dB ({overfit}); psnr on noisy inputs "
            f"{db(base.get('noisy_psnr'))} → {db(r.get('noisy_psnr'))} dB ({signed(dnoisy)} dB, {robust}): {verdict}.")


def regularization_section(study: Study) -> list:
    """Per dataset: every setting tried with psnr, sparsity, gap and robustness; the code
    histogram with and without l1; the robustness/overfitting claim tested per setting."""
    var = study.config.get("robustness_var", 0.01)
    blocks: list = [Heading(2, "Regularization", "regularization"),
                    Para(f"On each dataset's best architecture (validation psnr). {PSNR_LABEL}; {PSNR_DATASET_LABEL}. "
                         "zero code = fraction of code entries with |E_j| < 1e-3 on the test split; dead units = "
                         "code units never active; train psnr on the first 10,000 training images; gap = train psnr "
                         f"minus test psnr; noisy-input psnr = test psnr when the inputs carry noise of variance "
                         f"σ² = {var} (σ = {math.sqrt(var):.2f}).")]
    for dataset in study.datasets:
        settings = regularization_rows(study, dataset)
        if not settings:
            continue
        chosen = _chosen_ids(study, dataset)
        overall = _best_by_val([r for _, r in settings])
        blocks.append(Heading(3, f"{_name(dataset)} ({_arch(settings[0][1])})"))
        table = []
        for label, r in settings:
            marks = [f"✓ {p}" for p, i in chosen.items() if i == r.get("id")]
            if r is overall:
                marks.append("★ best")
            table.append([label, db(r.get("val_psnr")), db(r.get("psnr")), db(r.get("psnr_dataset")),
                          _pct(r.get("code_zero_fraction")), _int(r.get("code_dead_units")), db(r.get("train_psnr")),
                          db(_gap(r)), db(r.get("noisy_psnr")), " ".join(marks)])
        blocks.append(Table(["setting", "val psnr (dB)", "psnr (dB)", "psnr_dataset (dB)", "zero code", "dead units",
                             "train psnr (dB)", "gap (dB)", f"noisy-input psnr σ²={var:g} (dB)", "validation"],
                            table, numeric=set(range(1, 9)),
                            caption=f"{_name(dataset)}: ✓ l2 / ✓ l1 = the value validation chose for that "
                                    "regularizer; ★ = the best setting on validation psnr."))
        hist = _code_histogram(study, dataset, settings)
        if hist:
            blocks.append(hist)
        if len(settings) > 1:
            base = settings[0][1]
            blocks.append(Para("**Testing the claim** that regularization \"improved robustness and prevented "
                               f"overfitting\" (unregularized gap {db(_gap(base))} dB, changes under "
                               f"{TOLERANCE_DB} dB count as unchanged): "
                               + " ".join(_claim_verdict(label, r, base) for label, r in settings[1:])))
    if len(blocks) == 2:
        blocks.append(Para("No regularization results yet."))
    return blocks


def _code_histogram(study: Study, dataset: str, settings: list[tuple[str, dict]]) -> Figure | None:
    codes = {}
    for label, r in settings:
        if label == "none" or r.get("phase") in ("l1", "l2+l1"):
            path = study.path / "trials" / str(r.get("id")) / "code_values.npy"
            try:
                codes[label if label != "none" else "no regularization"] = np.load(path, allow_pickle=False)
            except (OSError, ValueError):
                continue
    if not codes:
        return None
    name = f"{_slug(dataset)}-code-histogram.png"
    n = next(iter(codes.values())).shape[0]
    figures.plot_code_histogram(codes, study.files / name, title=f"{_name(dataset)}: code values with and without l1")
    return Figure(name, f"{_name(dataset)}: histogram of the code values E_j of the first {n:,} test images, "
                        "without regularization and with each l1 (log-scaled counts).")


def _copy_png(study: Study, source: Path, name: str) -> bool:
    try:
        data = source.read_bytes()
    except OSError:
        return False
    from .runs import atomic_write_bytes

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
                shown.append(Figure(name, f"{_arch(r)}: psnr {db(r.get('psnr'))} dB, "
                                          f"psnr_dataset {db(r.get('psnr_dataset'))} dB"))
        if shown:
            blocks += [Heading(3, _name(dataset)), Gallery(shown)]
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
            hist = [h for h in _history(study, r) if _num(h.get("val_psnr"))]
            if hist:
                curves[f"depth {r.get('depth')}, L={r.get('latent')}"] = (
                    [h.get("epoch") for h in hist], [h["val_psnr"] for h in hist])
        if curves:
            name = f"{_slug(dataset)}-training-curves.png"
            figures.plot_training_curves(curves, study.files / name,
                                         title=f"{_name(dataset)}: validation psnr per epoch")
            blocks.append(Figure(name, f"{_name(dataset)}: validation psnr (mean per-image, dB) per epoch, "
                                       "one line per grid model."))
    if len(blocks) == 1:
        blocks.append(Para("No training histories yet."))
    return blocks


def per_class_section(study: Study) -> list:
    """Per dataset: per-class psnr of the chosen model beside PCA with k = its L."""
    blocks: list = [Heading(2, "Per-class PSNR", "per-class"),
                    Para(f"Test split, {PSNR_LABEL}, per class, of the model validation chose, beside PCA with k = L.")]
    for dataset in study.datasets:
        best = winner(study, dataset)
        per = (best or {}).get("per_class_psnr") or {}
        if not per:
            continue
        pca = pca_rows(study, dataset).get(best.get("latent"), {}).get("per_class_psnr") or {}
        names = list(per)
        label = f"autoencoder ({_arch(best)})"
        series = {label: [per[n] for n in names]}
        if pca:
            series[f"PCA k = {best.get('latent')}"] = [pca.get(n) for n in names]
        name = f"{_slug(dataset)}-per-class.png"
        figures.plot_per_class(names, series, study.files / name, title=f"{_name(dataset)}: psnr per class")
        rows = [[n, db(per[n]), db(pca.get(n)), signed(_delta(per[n], pca.get(n)))] for n in names]
        blocks += [Heading(3, _name(dataset)),
                   Figure(name, f"{_name(dataset)}: psnr (mean per-image, dB) per class."),
                   Table(["class", "autoencoder psnr (dB)", "PCA psnr (dB)", "difference (dB)"], rows,
                         numeric={1, 2, 3})]
    return blocks


def _trial_times(study: Study) -> list[dict]:
    out = []
    for r in study.rows + study.baselines:
        secs = r.get("wall_seconds") if _num(r.get("wall_seconds")) else r.get("seconds")
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
    total = sum(t["wall"] for t in times if _num(t["wall"]))
    blocks.append(Para(f"{len(times)} trials, {total:.0f} s ({total / 60:.1f} min) of trial wall time in all "
                       "(trials may run side by side, so the study's wall time can be shorter). Wall = the whole "
                       "trial (training, evaluation, figures); train = training or fitting only."))
    phases: dict = {}
    order = {d: i for i, d in enumerate(study.datasets)}
    for t in sorted(times, key=lambda t: order.get(t["dataset"], len(order))):
        key = (_name(t["dataset"] or ""), t["phase"])
        n, s = phases.get(key, (0, 0.0))
        phases[key] = (n + 1, s + (t["wall"] if _num(t["wall"]) else 0.0))
    per_phase = [[d, p, str(n), _secs(s)] for (d, p), (n, s) in phases.items()]
    per_phase.append(["all", "", str(len(times)), _secs(total)])
    blocks.append(Table(["dataset", "phase", "trials", "wall seconds"], per_phase, numeric={2, 3}))
    name = "trial-seconds.png"
    figures.plot_seconds([str(t["id"]) for t in times], [t["wall"] if _num(t["wall"]) else 0.0 for t in times],
                         study.files / name, groups=[str(t["phase"]) for t in times], title="wall seconds per trial")
    blocks.append(Figure(name, "Wall seconds per trial, coloured by phase."))
    rows = [[str(t["id"]), _name(t["dataset"] or ""), str(t["phase"]), str(t["status"]),
             _int(t["epochs"]), _secs(t["seconds"]), _secs(t["wall"])] for t in times]
    blocks.append(Details(f"Every trial ({len(times)})",
                          [Table(["trial", "dataset", "phase", "status", "epochs", "train seconds", "wall seconds"],
                                 rows, numeric={4, 5, 6})]))
    return blocks


def _level_header(var: float) -> str:
    return f"σ²={var:g} (σ={math.sqrt(var):.2f})"


def _denoiser_architecture(study: Study, dataset: str) -> str:
    dens = [r for r in _ok(study, dataset, "ae") if r.get("phase") in ("denoise", "blind")]
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
        if best is not None:
            source += (f", not the compression study's best (widths {best.get('widths')}, L = {best.get('latent')}): "
                       "a wider first layer denoises better (docs/recipe.md, \"Denoisers\")")
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
    per_var = {v: _den_rows(study, dataset, v) for v in variances}
    full = max([_full_images(rows) for rows in per_var.values()] or [0])
    methods = list(dict.fromkeys(d.get("method") for rows in per_var.values() for d in rows))
    methods = [m for m in methods if m not in AE_METHODS] + [m for m in AE_METHODS if m in methods]
    notes, any_subset, subset_n = [], False, 0
    table = []
    for method in methods:
        cells, images = [], set()
        for v in variances:
            d = next((x for x in per_var[v] if x.get("method") == method), None)
            if d is None or not _num(d.get("psnr")):
                cells += ["not run", ""] if d is not None else [DASH, DASH]
                info = _baseline_info(study, dataset, v, method)
                note = (d or {}).get("note") or info.get("note") or (d or {}).get("detail")
                if d is not None and note and f"{method}: {note}" not in notes:
                    notes.append(f"{method}: {note}")
                continue
            cells += [db(d.get("psnr")), db(d.get("psnr_dataset"))]
            if _on_subset(d, full):
                any_subset = True
                subset_n = d.get("n_images") or subset_n
                images.add(f"{d.get('n_images'):,} (subset)")
            else:
                images.add(f"{d.get('n_images'):,}" if _num(d.get("n_images")) else DASH)
        label = AE_LABELS.get(method, method)
        table.append([f"**{label}**" if method in AE_METHODS else label, ", ".join(sorted(images)) or DASH] + cells)
    if any_subset:
        for method in [m for m in AE_METHODS if m in methods]:
            cells, n = [], None
            for v in variances:
                d = next((x for x in per_var[v] if x.get("method") == method), {})
                cells += [db(d.get("subset_psnr")), db(d.get("subset_psnr_dataset"))]
                n = n or d.get("subset_images")
            table.append([f"**{AE_LABELS[method]}, on the subset**", f"{n:,} (subset)" if _num(n) else DASH] + cells)
    columns = ["method", "test images"]
    for v in variances:
        columns += [f"{_level_header(v)} psnr", f"{_level_header(v)} psnr_dataset"]
    caption = (f"{_name(dataset)}: psnr of each method's output against the clean test images ({PSNR_LABEL}; "
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
            info = _baseline_info(study, dataset, v, method)
            param = info.get("param")
            cells.append(f"{info.get('param_name')} = {param:g}" if _num(param) and info.get("param_name")
                         else (f"{param}" if param is not None else DASH))
        if any(c != DASH for c in cells):
            rows.append([method] + cells)
    if not rows:
        return None
    return Table(["method"] + [_level_header(v) for v in variances], rows,
                 caption=f"{_name(dataset)}: each baseline's parameter, chosen on the validation split per level.")


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
        variances = _variances(study, dataset)
        if not variances:
            continue
        blocks.append(Heading(3, _name(dataset)))
        arch = _denoiser_architecture(study, dataset)
        if arch:
            blocks.append(Para(arch))
        table, notes, any_subset = _denoising_table(study, dataset, variances)
        series: dict = {}
        full = max(_full_images(_den_rows(study, dataset, v)) for v in variances)
        for v in variances:
            for d in _den_rows(study, dataset, v):
                if _num(d.get("psnr")):
                    label = d.get("method") + (" (subset)" if _on_subset(d, full) else "")
                    xs, ys = series.setdefault(label, ([], []))
                    xs.append(v)
                    ys.append(d["psnr"])
        name = f"{_slug(dataset)}-denoising.png"
        figures.plot_denoising(series, study.files / name, bold=set(AE_METHODS),
                               title=f"{_name(dataset)}: denoising psnr against noise variance")
        blocks.append(Figure(name, f"{_name(dataset)}: psnr (mean per-image, dB) against noise variance σ²; "
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
    dens = [r for r in _ok(study, dataset, "ae") if r.get("phase") in ("denoise", "blind")]
    dens.sort(key=lambda r: (r.get("phase") == "blind", r.get("noise_var") if _num(r.get("noise_var")) else 0))
    for r in dens:
        blind = r.get("phase") == "blind"
        for v in variances:
            if not blind and not _same(r.get("noise_var"), v):
                continue
            src = study.path / "trials" / r["id"] / f"denoise_{v:g}.png"
            name = f"{r['id']}-denoise_{v:g}.png"
            if _copy_png(study, src, name):
                score = next((s for s in r.get("denoising") or [] if _same(s.get("noise_var"), v)), {})
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
    rows = [[str(f.get("id")), _name(str(f.get("dataset"))), str(f.get("phase")), str(f.get("attempts", 1)),
             str(f.get("error") or "")] for f in failed]
    return [Heading(2, "Failed trials", "failed"),
            Para(f"{len(failed)} trial(s) failed on every attempt; rerun the study to retry them."),
            Table(["trial", "dataset", "phase", "attempts", "error"], rows, numeric={3})]


SECTIONS = (findings_section, compression_section, regularization_section, grids_section, curves_section,
            per_class_section, time_section, denoising_section, failed_section)


def build_blocks(study: Study) -> list:
    """Every section of the report, in order, as blocks (writes the figures into study.files)."""
    blocks = header_section(study)
    for section in SECTIONS:
        try:
            blocks += section(study)
        except Exception as exc:  # one odd result must not cost the whole report (or the study's end)
            name = section.__name__.removesuffix("_section").replace("_", " ")
            blocks += [Heading(2, name.capitalize(), _slug(name)),
                       Para(f"{SECTION_FAILED} ({type(exc).__name__}: {exc}).")]
    return blocks


def write_report(study_dir: str | Path) -> tuple[Path, Path]:
    """Write <study_dir>/report.html (self-contained: inline CSS, embedded PNGs, no network) and
    <study_dir>/report.md (with its figures in <study_dir>/report_files/), both atomically.

    Works on finished, partial and still-running studies. Returns (html path, md path)."""
    study = load_study(study_dir)
    study.files.mkdir(parents=True, exist_ok=True)
    blocks = build_blocks(study)
    keep = _referenced(blocks)
    for stale in study.files.glob("*.png"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)
    title = f"aelab report: {study.config.get('name', study.path.name)}"
    html_path, md_path = study.path / "report.html", study.path / "report.md"
    atomic_write_text(md_path, render_md(blocks))
    atomic_write_text(html_path, render_html(blocks, study.files, title))
    return html_path, md_path
