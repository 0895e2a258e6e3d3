"""What a study found: read a study folder, select its rows, and state the findings in words.

    study = load_study("outputs/lab")
    for dataset in study.datasets:
        print(findings_text(study, dataset))

`load_study` reads what the study wrote (results.json, denoising.json, summary.json and the
trial folders; see `autoenc.study`), so it works for any study: one or two datasets, with or
without denoising, with failed trials, and while the study is still running (trials finished
since the last results.json are read from their own result.json files). The selection and
formatting helpers here are shared with `autoenc.report`, which lays the same numbers out as tables
and figures. The findings are generated from the numbers, never written by hand.

Units: PSNR in dB on the [0, 1] pixel scale, noise as the variance sigma^2 on that scale.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .render import FILES_DIR

PSNR_LABEL = "psnr = mean over test images of per-image PSNR (dB)"
PSNR_DATASET_LABEL = "psnr_dataset = PSNR of the mean MSE (dB), what papers quote"
AE_METHODS = ("dae", "dae-blind", "ae")  # the autoencoder rows of the denoising table
AE_LABELS = {"dae": "dae (per-level)", "dae-blind": "dae-blind (all levels)",
             "ae": "ae (plain, noisy input)"}
TOLERANCE_DB = 0.05  # PSNR changes under this, as shown to 0.01 dB, count as "no change" (`change_sign`)
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


def _denoising_from_trials(rows: list[dict], baselines: list[dict], variances: list[float]) -> list[dict]:
    """The denoising table rebuilt from trial results (used while results are partial): the same
    rows as the study's denoising.json (dataset, noise_var, sigma, method, detail, psnr, ...)."""
    keys = ("psnr", "psnr_dataset", "ssim", "n_images", "subset_psnr", "subset_psnr_dataset", "subset_images")
    out = []
    datasets = list(dict.fromkeys([r.get("dataset") for r in rows + baselines]))
    for dataset in datasets:
        ok = [r for r in rows if r.get("dataset") == dataset and r.get("status") == "ok" and r.get("kind") == "ae"]
        best_plain = best_by_val([r for r in ok if r.get("phase") == "grid"])
        for var in variances:
            def add(method, detail, score, seconds=None):
                if score is not None:
                    out.append({"dataset": dataset, "noise_var": var, "sigma": round(math.sqrt(var), 4),
                                "method": method, "detail": detail, "seconds": seconds,
                                **{k: score.get(k) for k in keys}})

            for b in baselines:
                if b.get("dataset") == dataset and equal_floats(b.get("noise_var"), var) and b.get("status") == "ok":
                    for m in b.get("rows", []):
                        add(m.get("method"), "", m, m.get("seconds"))
            for r in ok:
                nv = r.get("noise_var")
                if nv is None or (not isinstance(nv, list) and not equal_floats(nv, var)):
                    continue
                score = next((s for s in r.get("denoising") or [] if equal_floats(s.get("noise_var"), var)), None)
                add("dae-blind" if isinstance(nv, list) else "dae",
                    f"widths {r.get('widths')}, L={r.get('latent')}", score, r.get("seconds"))
            if best_plain is not None:
                score = next((s for s in best_plain.get("denoising") or [] if equal_floats(s.get("noise_var"), var)), None)
                add("ae", f"best plain autoencoder (depth {best_plain.get('depth')}, L={best_plain.get('latent')})",
                    score)
    return out


STUDY_FILES = ("study.yaml", "summary.json", "results.json")  # what a study folder holds (study.yaml first)


def check_study_folder(study_dir: str | Path) -> Path:
    """Raise ConfigError unless study_dir is a study folder: one holding study.yaml (what `autoenc
    study` writes before any trial starts) or the summary.json / results.json a study writes.
    A training run folder (config.json) and an empty folder are not. Returns the path."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise ConfigError(f"{study_dir} is not a study folder: no such directory. Run a study into it first: "
                          f"`autoenc study hydra.run.dir={study_dir}` (or `autoenc study study=quick hydra.run.dir="
                          f"{study_dir}`)")
    if any((study_dir / name).is_file() for name in STUDY_FILES):
        return study_dir
    run_folder = (study_dir / "config.json").is_file()
    what = ("it is a training run folder (config.json): `autoenc evaluate` scores one of those" if run_folder else
            "it is empty" if not any(study_dir.iterdir()) else "nor the summary.json or results.json a study writes")
    out = "DIR" if run_folder else str(study_dir)
    raise ConfigError(f"{study_dir} is not a study folder: it holds no study.yaml ({what}). A report is built "
                      f"from a study's folder: run `autoenc study hydra.run.dir={out}` (or `autoenc study study=quick "
                      f"hydra.run.dir={out}`), which writes the report; `autoenc report {out}` rebuilds it")


def load_study(study_dir: str | Path) -> Study:
    """Read a study folder (finished, partial or still running) into a `Study`.

    results.json and denoising.json are the source; trial results written after them (a study
    still running or interrupted) are added from trials/*/result.json. A folder that is not a
    study (no study.yaml, summary.json or results.json: a run folder, an empty folder) raises
    ConfigError naming it (`check_study_folder`)."""
    study_dir = check_study_folder(study_dir)
    summary = _read_json(study_dir / "summary.json", {})
    summary = summary if isinstance(summary, dict) else {}
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
                 and (not wanted or any(equal_floats(r.get("noise_var"), v) for v in wanted))]
    if not datasets:
        datasets = list(dict.fromkeys(r.get("dataset") for r in rows + baselines))
    denoising = _read_json(study_dir / "denoising.json", None)
    if not isinstance(denoising, list) or fresh:
        variances = (den_cfg or {}).get("variances") or sorted(
            {s.get("noise_var") for r in rows for s in r.get("denoising") or []} - {None})
        denoising = _denoising_from_trials(rows, baselines, variances) if den_cfg is not None else []
    total = summary.get("trials_total")
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

def equal_floats(a, b) -> bool:
    """True when a and b are both numbers within 1e-9 (noise variances read back from JSON)."""
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) < 1e-9


def is_number(v) -> bool:
    """True for a finite int or float (not a bool, None, NaN or a string)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def best_by_val(rows: list[dict]) -> dict | None:
    """The row with the highest validation psnr (dB), or None when no row has one."""
    rows = [r for r in rows if is_number(r.get("val_psnr"))]
    return max(rows, key=lambda r: r["val_psnr"]) if rows else None


def db(v) -> str:
    """A PSNR (dB) or other float to 2 decimals, a negative one (a train−test gap) with the minus
    sign `signed` writes (−0.33, not -0.33); a dash when missing."""
    return f"{v:.2f}".replace("-", "−") if is_number(v) else DASH


def signed(v, digits: int = 2) -> str:
    """A difference with its sign (+0.12, −0.40, ±0.00 when it rounds to zero); a dash when missing."""
    if not is_number(v):
        return DASH
    if round(v, digits) == 0:
        return f"±{0:.{digits}f}"
    return f"{v:+.{digits}f}".replace("-", "−")


def fmt_pct(v) -> str:
    """A fraction in [0, 1] as a percentage with 2 decimals; a dash when missing."""
    return f"{100 * v:.2f} %" if is_number(v) else DASH


def fmt_int(v) -> str:
    """A count with thousands separators; a dash when missing."""
    return f"{int(v):,}" if is_number(v) else DASH


def fmt_secs(v) -> str:
    """Seconds to one decimal; a dash when missing."""
    return f"{v:.1f}" if is_number(v) else DASH


def fmt_duration(seconds: float) -> str:
    """A time in seconds as "0.4 s" (under 10 s), "42 s" or, from 90 s on, "12.5 min (750 s)";
    "< 0.1 s" for a positive time that rounds to 0.0."""
    if 0 < seconds < 0.05:
        return "< 0.1 s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def _strength(v) -> str:
    return f"{v:g}" if is_number(v) and v else "0"


def fmt_csv(values) -> str:
    """A list as "a, b, c" ("none" when empty); a dash for None."""
    if not isinstance(values, (list, tuple)):
        return DASH if values is None else str(values)
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) if values else "none"


def slug(text: str) -> str:
    """Lower-case letters and digits joined by "-": an HTML anchor or a file name."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


def dataset_name(dataset: str) -> str:
    """A dataset's display name: its name, or a data file's stem for a path."""
    return Path(dataset).stem if ("/" in dataset or "\\" in dataset) else dataset


def ok_rows(study: Study, dataset: str, kind: str | None = None, phase: str | None = None) -> list[dict]:
    """The finished rows of a dataset, optionally only one trial kind ("ae", "pca") and phase."""
    return [r for r in study.rows if r.get("dataset") == dataset and r.get("status") == "ok"
            and (kind is None or r.get("kind") == kind) and (phase is None or r.get("phase") == phase)]


def grid_rows(study: Study, dataset: str) -> list[dict]:
    """The finished compression-grid autoencoders of a dataset, by depth then latent size."""
    return sorted(ok_rows(study, dataset, "ae", "grid"), key=lambda r: (r.get("depth") or 0, r.get("latent") or 0))


def pca_rows(study: Study, dataset: str) -> dict[int, dict]:
    """The finished PCA baselines of a dataset, by k (= L)."""
    return {r.get("latent"): r for r in ok_rows(study, dataset, "pca")}


def winner(study: Study, dataset: str) -> dict | None:
    """The grid autoencoder validation chose (highest val psnr; the summary's choice when known)."""
    rows = grid_rows(study, dataset)
    chosen = ((study.summary.get("choices") or {}).get(dataset) or {}).get("grid") or {}
    match = [r for r in rows if r.get("id") == chosen.get("id")]
    return match[0] if match else best_by_val(rows)


def arch_label(r: dict) -> str:
    """"depth 3, L = 30" for a result row."""
    return f"depth {r.get('depth')}, L = {r.get('latent')}"


def regularization_rows(study: Study, dataset: str) -> list[tuple[str, dict]]:
    """(setting label, row) of every regularization setting tried on the winner's architecture:
    "none" (the winner itself), each l2, each l1 and l2+l1, in that order."""
    best = winner(study, dataset)
    if best is None:
        return []
    same = [r for r in ok_rows(study, dataset, "ae") if r.get("phase") in ("l2", "l1", "l2+l1")
            and r.get("latent") == best.get("latent") and r.get("widths") == best.get("widths")]
    out = [("none", best)]
    for phase in ("l2", "l1", "l2+l1"):
        mine = sorted([r for r in same if r.get("phase") == phase], key=lambda r: (r.get("l2") or 0, r.get("l1") or 0))
        for r in mine:
            label = {"l2": f"l2 = {_strength(r.get('l2'))}", "l1": f"l1 = {_strength(r.get('l1'))}",
                     "l2+l1": f"l2 = {_strength(r.get('l2'))} + l1 = {_strength(r.get('l1'))}"}[phase]
            out.append((label, r))
    return out


def chosen_ids(study: Study, dataset: str) -> dict[str, str]:
    """{phase: trial id} of the best l2 and the best l1 value tried, on validation psnr (from the
    summary, else computed): the values the study's l2+l1 trial combines. Whether validation
    prefers one to no regularization at all is `regularizer_choices`."""
    choices = (study.summary.get("choices") or {}).get(dataset) or {}
    out = {}
    for phase in ("l2", "l1"):
        pick = (choices.get(phase) or {}).get("id")
        if pick is None:
            best = best_by_val(ok_rows(study, dataset, "ae", phase))
            pick = best.get("id") if best else None
        if pick:
            out[phase] = pick
    return out


def regularizer_choices(study: Study, dataset: str) -> dict[str, tuple[dict, bool]]:
    """{phase ("l2", "l1"): (the best value's row among those tried, whether validation chose it)}.

    Validation chooses a regularizer only when its best value's validation psnr is above the
    unregularized model's (both as shown, to 0.01 dB); otherwise it keeps none of it, even though
    the study's l2+l1 trial still combines the best values tried."""
    settings = regularization_rows(study, dataset)
    if not settings:
        return {}
    base, ids = settings[0][1], chosen_ids(study, dataset)
    out = {}
    for phase in ("l2", "l1"):
        row = next((r for _, r in settings if r.get("id") == ids.get(phase)), None)
        if row is not None:
            gain = shown_delta(row.get("val_psnr"), base.get("val_psnr"))
            out[phase] = (row, gain is not None and gain > 0)
    return out


def best_setting(settings: list[tuple[str, dict]]) -> dict | None:
    """The regularization setting (of `regularization_rows`) with the highest validation psnr as
    shown (to 0.01 dB); on a tie the earlier one, "none" first: a setting is best only when it is
    above the unregularized model as shown, the rule `regularizer_choices` chooses by. None when no
    setting has a validation psnr."""
    best = None
    for _, r in settings:
        if is_number(r.get("val_psnr")) and (best is None or round(r["val_psnr"], 2) > round(best["val_psnr"], 2)):
            best = r
    return best


def train_test_gap(r: dict):
    """Train minus test psnr (dB, of the values as shown, see `shown_delta`): how much better the
    model does on images it trained on."""
    return shown_delta(r.get("train_psnr"), r.get("psnr"))


def delta(a, b):
    """a - b (dB) when both are numbers, else None."""
    return a - b if is_number(a) and is_number(b) else None


def shown_delta(a, b, digits: int = 2, scale: float = 1.0):
    """The difference of a and b as the report shows them: scale * a and scale * b each rounded to
    `digits` decimals, then subtracted (None when either is missing). A difference printed beside
    rounded values then matches them: 0.07 % -> 0.11 % is +0.04 points, not the +0.05 of the
    unrounded fractions. scale=100 turns fractions into percentages (points)."""
    if not (is_number(a) and is_number(b)):
        return None
    return round(round(scale * a, digits) - round(scale * b, digits), digits)


def change_sign(d) -> int:
    """+1 for a rise, -1 for a fall, 0 for a tie: how the generated text classifies a PSNR difference
    d (dB) that it prints beside the words, d being the difference as shown (`shown_delta`, to 0.01
    dB). A tie is a change under TOLERANCE_DB as shown, so a printed +0.05 dB is a rise and a printed
    −0.04 dB a tie: the words agree with the number (a raw +0.0486 dB shown as +0.05 is a rise).
    Compared in hundredths of a dB, so a float just under 0.05 cannot turn a shown 0.05 into a tie."""
    steps, tolerance = round(100 * d), round(100 * TOLERANCE_DB)
    return 0 if abs(steps) < tolerance else (1 if steps > 0 else -1)


def noisy_drop(r: dict):
    """Noisy-input psnr minus clean test psnr (dB, usually negative; of the values as shown, see
    `shown_delta`): what the robustness check's noise costs this model. A model that is better on
    clean and noisy inputs alike has the same drop: it is better, not more robust."""
    return shown_delta(r.get("noisy_psnr"), r.get("psnr"))


def variances_of(study: Study, dataset: str) -> list[float]:
    """The noise variances sigma^2 ([0, 1] scale) of a dataset's denoising rows, ascending."""
    return sorted({d["noise_var"] for d in study.denoising if d.get("dataset") == dataset and is_number(d.get("noise_var"))})


def denoising_rows(study: Study, dataset: str, var: float) -> list[dict]:
    """The denoising rows (one per method) of a dataset at noise variance var."""
    return [d for d in study.denoising if d.get("dataset") == dataset and equal_floats(d.get("noise_var"), var)]


def full_images(rows: list[dict]) -> int:
    """The most test images any of the rows was scored on (the full test split)."""
    return max([d.get("n_images") or 0 for d in rows] or [0])


def test_images(study: Study, dataset: str) -> int | None:
    """How many test images a dataset's compression numbers are on (results rows: psnr, SSIM,
    per-class psnr, code sparsity, noisy-input psnr): the count the autoencoders' denoising scores
    record (the same images), else the study's subset.test; None when unknown (the whole split)."""
    counts = [s.get("n_images") for r in ok_rows(study, dataset) for s in r.get("denoising") or []]
    counts += [d.get("n_images") for d in study.denoising if d.get("dataset") == dataset]
    counts = [n for n in counts if is_number(n) and n > 0]
    if counts:
        return int(max(counts))
    n = (study.config.get("subset") or {}).get("test")
    return int(n) if is_number(n) else None


def test_images_text(study: Study, dataset: str) -> str:
    """Which test images a dataset's compression numbers are on, in words: "the first 1,000 test
    images (the study's subset.test)", "the 10,000 test images (the whole test split)"."""
    n, cap = test_images(study, dataset), (study.config.get("subset") or {}).get("test")
    if is_number(cap):
        return f"the first {n or cap:,} test images (the study's subset.test)"
    return f"the {n:,} test images (the whole test split)" if n else "the whole test split"


def has_pca(study: Study, dataset: str) -> bool:
    """Whether the report shows PCA for a dataset: the study runs it (pca: true) or has PCA rows."""
    return bool(study.config.get("pca")) or bool(pca_rows(study, dataset))


def on_subset(d: dict, full: int) -> bool:
    """Whether a denoising row was scored on a subset of the `full` test images."""
    return bool(d.get("subset")) or (is_number(d.get("n_images")) and 0 < d["n_images"] < full)


def baseline_info(study: Study, dataset: str, var: float, method: str) -> dict:
    """The classical denoiser's own result (chosen parameter, note) at one level, or {}."""
    for b in study.baselines:
        if b.get("dataset") == dataset and equal_floats(b.get("noise_var"), var):
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
        if a and b and is_number(a.get("psnr")) and is_number(b.get("psnr")):
            diffs.append((latent, shown_delta(b["psnr"], a["psnr"])))
    if not diffs:
        return ""
    text = (f"Depth {deep} minus depth {shallow} (test psnr): "
            + _list([f"{signed(d)} dB at L = {latent}" for latent, d in diffs]) + "; ")
    loses = [latent for latent, d in diffs if change_sign(d) < 0]
    wins = [latent for latent, d in diffs if change_sign(d) > 0]
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
        text += f"the two depths differ by less than {TOLERANCE_DB} dB everywhere"
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
        if cur is None or (is_number(r.get("val_psnr")) and r["val_psnr"] > (cur.get("val_psnr") or -math.inf)):
            out[r.get("latent")] = r
    return out


def _pca_sentence(study: Study, dataset: str) -> str:
    pca = pca_rows(study, dataset)
    margins = []
    for latent, r in sorted(best_per_latent(study, dataset).items()):
        p = pca.get(latent)
        if p and is_number(r.get("psnr")) and is_number(p.get("psnr")):
            margins.append((latent, shown_delta(r["psnr"], p["psnr"])))
    if not margins:
        return ""
    text = ("Margin over PCA with k = L (test psnr of the depth validation prefers at that L): "
            + _list([f"{signed(m)} dB at L = {latent}" for latent, m in margins]))
    text += _verdicts([(str(latent), m) for latent, m in margins], "; the autoencoder falls short of PCA at L = {}",
                      f"; it ties with PCA (within {TOLERANCE_DB} dB) at L = {{}}",
                      "; the autoencoder beats PCA at every L")
    return text + "."


def _verdicts(margins: list[tuple[str, float]], lose: str, tie: str, win: str) -> str:
    """The verdict on (label, margin in dB as shown) pairs, by the header's rule (a change under
    TOLERANCE_DB is a tie): `lose` and `tie` formatted with the labels they hold, `win` when
    neither holds any."""
    behind = [label for label, m in margins if change_sign(m) < 0]
    level = [label for label, m in margins if change_sign(m) == 0]
    return ((lose.format(_list(behind)) if behind else "") + (tie.format(_list(level)) if level else "")
            + ("" if behind or level else win))


def _regularization_sentences(study: Study, dataset: str) -> list[str]:
    settings = regularization_rows(study, dataset)
    if len(settings) < 2:
        return []
    base = settings[0][1]
    parts = []
    for label, r in settings[1:]:
        dd = delta(r.get("code_dead_units"), base.get("code_dead_units"))
        parts.append(
            f"{label}: psnr {signed(shown_delta(r.get('psnr'), base.get('psnr')))} dB, "
            f"zero code entries {fmt_pct(base.get('code_zero_fraction'))} → {fmt_pct(r.get('code_zero_fraction'))} "
            f"({signed(shown_delta(r.get('code_zero_fraction'), base.get('code_zero_fraction'), scale=100))} "
            "percentage points)"
            + (f", dead units {int(dd):+d}" if dd is not None and dd != 0 else "")
            + f", train−test gap {signed(shown_delta(train_test_gap(r), train_test_gap(base)))} dB, "
            f"drop from clean to noisy input {signed(noisy_drop(base))} → {signed(noisy_drop(r))} dB")
    text = ("Regularization on that architecture, each against the unregularized model: "
            + "; ".join(parts) + ".")
    picks, kept = [], []
    for phase, (row, chosen) in regularizer_choices(study, dataset).items():
        value = f"{phase} = {_strength(row.get(phase))}"
        if chosen:
            picks.append(f"{value} (validation psnr {db(row.get('val_psnr'))} dB, above the unregularized "
                         f"{db(base.get('val_psnr'))} dB)")
        else:
            kept.append(f"no {phase}: its best value tried, {value} (validation psnr {db(row.get('val_psnr'))} dB), "
                        f"is not above the unregularized {db(base.get('val_psnr'))} dB")
    if picks or kept:
        text += " Validation chose " + _list(picks + kept) + "."
    overall = best_setting(settings)
    if overall is not None:
        label = next(lbl for lbl, r in settings if r is overall)
        text += f" Best setting on validation overall: {label}."
    return [text]


def denoising_margins(study: Study, dataset: str) -> list[dict]:
    """Per noise variance: the best autoencoder against the strongest classical baseline, each
    baseline compared on its own test images (the AE's subset score for a subset baseline).

    Returns [{noise_var, sigma, ae_method, ae_psnr, baseline, baseline_psnr, margin (dB),
    n_images}] (psnr in dB; margin = AE minus baseline, of the two psnr as shown to 0.01 dB)."""
    out = []
    for var in variances_of(study, dataset):
        rows = denoising_rows(study, dataset, var)
        full = full_images(rows)
        aes = [d for d in rows if d.get("method") in AE_METHODS]
        cmp = []
        for b in rows:
            if b.get("method") in AE_METHODS or not is_number(b.get("psnr")):
                continue
            key = "subset_psnr" if on_subset(b, full) else "psnr"
            scored = [(a[key], a["method"]) for a in aes if is_number(a.get(key))]
            if scored:
                ae_psnr, ae_method = max(scored)
                cmp.append({"noise_var": var, "sigma": math.sqrt(var), "ae_method": ae_method, "ae_psnr": ae_psnr,
                            "baseline": b.get("method"), "baseline_psnr": b["psnr"],
                            "margin": shown_delta(ae_psnr, b["psnr"]), "n_images": b.get("n_images")})
        if cmp:
            out.append(min(cmp, key=lambda c: c["margin"]))
    return out


def _worse_than_noisy(study: Study, dataset: str) -> list[str]:
    """The noise levels at which the best autoencoder's psnr is below the noisy input's (the
    "noisy" baseline, on the same images), beyond a tie as shown: "σ² = 0.04 (12.10 dB against
    16.73 dB)"."""
    out = []
    for var in variances_of(study, dataset):
        rows = denoising_rows(study, dataset, var)
        noisy = next((d for d in rows if d.get("method") == "noisy" and is_number(d.get("psnr"))), None)
        full = full_images(rows)
        key = "subset_psnr" if noisy is not None and on_subset(noisy, full) else "psnr"
        scored = [d[key] for d in rows if d.get("method") in AE_METHODS and is_number(d.get(key))]
        if noisy is not None and scored and change_sign(shown_delta(max(scored), noisy["psnr"])) < 0:
            out.append(f"σ² = {var:g} ({db(max(scored))} dB against {db(noisy['psnr'])} dB)")
    return out


def _denoising_sentence(study: Study, dataset: str) -> str:
    margins = denoising_margins(study, dataset)
    if not margins:  # no classical baseline (denoising.baselines: []): the autoencoders' own numbers
        best = []
        for var in variances_of(study, dataset):
            scored = [(d["psnr"], d["method"]) for d in denoising_rows(study, dataset, var)
                      if d.get("method") in AE_METHODS and is_number(d.get("psnr"))]
            if scored:
                psnr_, method = max(scored)
                best.append(f"{db(psnr_)} dB ({method}) at σ² = {var:g} (σ = {math.sqrt(var):.2f})")
        if not best:
            return ""
        text = ("Denoising (psnr): no classical baseline was run, so there is nothing to compare the autoencoders "
                f"with; the best of them reaches {_list(best)}.")
    else:
        parts = []
        for m in margins:  # margin: of the two psnr as shown, so 0.00 is a tie, neither a lead nor a loss
            verb = "leads" if m["margin"] > 0 else "trails" if m["margin"] < 0 else "equals"
            parts.append(f"at σ² = {m['noise_var']:g} (σ = {m['sigma']:.2f}) the best autoencoder ({m['ae_method']}, "
                         f"{db(m['ae_psnr'])} dB) {verb} the best baseline ({m['baseline']}, "
                         f"{db(m['baseline_psnr'])} dB)" + (f" by {abs(m['margin']):.2f} dB" if m["margin"] else ""))
        text = "Denoising (psnr): " + "; ".join(parts) + "."
        text += _verdicts([(f"{m['noise_var']:g}", m["margin"]) for m in margins],
                          " The autoencoders lose at σ² = {}.",
                          f" The autoencoders tie with the best baseline (within {TOLERANCE_DB} dB) at σ² = {{}}.",
                          " The autoencoders win at every level.")
        worse = _worse_than_noisy(study, dataset)
        if worse:
            text += (" At " + _list(worse) + " even the best autoencoder's output is further from the clean images "
                     "than its noisy input: it adds error instead of removing it.")
    gaps = []
    for var in variances_of(study, dataset):
        rows = {d.get("method"): d for d in denoising_rows(study, dataset, var)}
        if "dae" in rows and "dae-blind" in rows:
            g = shown_delta(rows["dae-blind"].get("psnr"), rows["dae"].get("psnr"))
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


def has_grid(study: Study) -> bool:
    """Whether the study has a compression grid (depths and latents both non-empty; True when its
    config is unknown). Without one there is no winner, so no l2 / l1 trials and no per-class psnr."""
    c = study.config
    return not c or bool(c.get("depths", True)) and bool(c.get("latents", True))


NO_GRID = ("this study has no compression grid (depths or latents empty), so no architecture is chosen and "
           "no l2 or l1 trial runs: they are tried on the grid's best architecture")


def findings(study: Study, dataset: str) -> list[str]:
    """The generated findings of one dataset, one sentence group per topic (winner, depth, PCA,
    regularization, denoising); without a finished grid model (none yet, or a study without a
    grid) only the denoising findings, empty when there are none."""
    best = winner(study, dataset)
    if best is None:
        den = _denoising_sentence(study, dataset)
        return [den] if den else []
    items = [f"Validation chose {arch_label(best)} (validation psnr {db(best.get('val_psnr'))} dB); on "
             f"{test_images_text(study, dataset)} it reaches psnr {db(best.get('psnr'))} dB "
             f"(psnr_dataset {db(best.get('psnr_dataset'))} dB, SSIM {db(best.get('ssim'))})."]
    items += [s for s in (_depth_sentence(study, dataset), _pca_sentence(study, dataset)) if s]
    items += _regularization_sentences(study, dataset)
    den = _denoising_sentence(study, dataset)
    if den:
        items.append(den)
    return items


def findings_text(study: Study, dataset: str) -> str:
    """The generated findings of one dataset as one paragraph ("" when there are none yet)."""
    items = findings(study, dataset)
    return f"**{dataset_name(dataset)}**: " + " ".join(items) if items else ""
