"""The numbers of a study: read its folder, group its trials into arms (one setting, every training
seed), and compute the means, spreads and differences the report prints.

    study = load_study("outputs/lab")
    arm = winner(study, "mnist")             # the grid arm validation chose
    print(stat(arm, "psnr").text())          # "26.84 ± 0.03" (mean ± sd over the seeds)

`load_study` reads what the study wrote (results.json, denoising.json, summary.json and the trial
folders; see `autoenc.study`), so it works for any study: one or two datasets, one seed or
several, with or without denoising, with failed trials, and while the study is still running
(trials finished since the last results.json are read from their own result.json files).

Every difference is taken between unrounded means and rounded once, when printed (`Diff`). Its
spread is sqrt(sd_a^2 + sd_b^2), the sample standard deviations over the seeds of its two sides; a
difference within its spread is a tie; with one seed on each side there is no spread, and no
verdict.

Units: PSNR in dB on the [0, 1] pixel scale, noise as the variance sigma^2 on that scale.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..study.planner import arms
from .render import FILES_DIR

AE_METHODS = ("dae", "dae-blind", "ae")  # the autoencoder rows of the denoising table


# ------------------------------------------------------------------------------------------
# reading a study folder
# ------------------------------------------------------------------------------------------

@dataclass
class Study:
    """Everything the report reads from a study folder.

    config: the study config dict; summary: summary.json (or {}); rows: a row per compression
    trial (kind "ae" or "pca") plus failed trials of any kind; denoising: a row per dataset x
    noise variance x method (x seed for the autoencoders); baselines: the classical-denoiser trial
    results (kind "baselines"); datasets: in the study's order; partial: whether trials are
    missing or newer than results.json; trials_done / trials_total: counts (total None when
    unknown)."""

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


DENOISING_SCORES = ("psnr", "psnr_dataset", "ssim", "n_images", "subset_psnr", "subset_psnr_dataset", "subset_ssim",
                    "subset_images")


def _baseline_score(m: dict) -> dict:
    """A baseline's result as a denoising row's scores: one run on the fixed subset only has
    subset_* scores (and none on the whole split), as the study's denoising.json has them."""
    if m.get("subset"):
        return {"subset_psnr": m.get("psnr"), "subset_psnr_dataset": m.get("psnr_dataset"),
                "subset_ssim": m.get("ssim"), "subset_images": m.get("n_images")}
    return m


def _denoising_from_trials(rows: list[dict], baselines: list[dict], variances: list[float]) -> list[dict]:
    """The denoising table rebuilt from trial results (used while results are partial): the same
    rows as the study's denoising.json (dataset, noise_var, sigma, method, seed, detail, psnr, ...)."""
    out = []
    datasets = list(dict.fromkeys([r.get("dataset") for r in rows + baselines]))
    for dataset in datasets:
        ok = [r for r in rows if r.get("dataset") == dataset and r.get("status") == "ok" and r.get("kind") == "ae"]
        best_plain = best_by_val(arms([r for r in ok if r.get("phase") == "grid"])) or []
        for var in variances:
            def add(method, detail, score, seconds=None, seed=None):
                if score is not None:
                    out.append({"dataset": dataset, "noise_var": var, "sigma": round(math.sqrt(var), 4),
                                "method": method, "seed": seed, "detail": detail, "seconds": seconds,
                                **{k: score.get(k) for k in DENOISING_SCORES}})

            for b in baselines:
                if b.get("dataset") == dataset and equal_floats(b.get("noise_var"), var) and b.get("status") == "ok":
                    for m in b.get("rows", []):
                        add(m.get("method"), "", _baseline_score(m), m.get("seconds"))
            for r in ok:
                nv = r.get("noise_var")
                if nv is None or (not isinstance(nv, list) and not equal_floats(nv, var)):
                    continue
                score = next((s for s in r.get("denoising") or [] if equal_floats(s.get("noise_var"), var)), None)
                add("dae-blind" if isinstance(nv, list) else "dae",
                    f"widths {r.get('widths')}, L={r.get('latent')}", score, r.get("seconds"), r.get("seed"))
            for r in best_plain:
                score = next((s for s in r.get("denoising") or [] if equal_floats(s.get("noise_var"), var)), None)
                add("ae", f"best plain autoencoder (depth {r.get('depth')}, L={r.get('latent')})", score,
                    seed=r.get("seed"))
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
# numbers over seeds: Stat (one setting) and Diff (two settings)
# ------------------------------------------------------------------------------------------

def equal_floats(a, b) -> bool:
    """True when a and b are both numbers within 1e-9 (noise variances read back from JSON)."""
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(a - b) < 1e-9


def is_number(v) -> bool:
    """True for a finite int or float (not a bool, None, NaN or a string)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def signed(v, digits: int = 2) -> str:
    """A difference with its sign (+0.12, −0.40, ±0.00 when it rounds to zero); a dash when missing."""
    if not is_number(v):
        return DASH
    if round(v, digits) == 0:
        return f"±{0:.{digits}f}"
    return f"{v:+.{digits}f}".replace("-", "−")


def num(v, digits: int = 2) -> str:
    """A number to `digits` decimals, a negative one with a true minus sign (−0.33); a dash when missing."""
    return f"{v:.{digits}f}".replace("-", "−") if is_number(v) else DASH


DASH = "–"


@dataclass
class Stat:
    """One number of a setting over its seeds: values (one per seed, unrounded), their mean and sd
    (the sample standard deviation, 0 for one seed)."""

    values: list[float]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return math.fsum(self.values) / len(self.values)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    def text(self, digits: int = 2) -> str:
        """"26.84 ± 0.03" (mean ± sd) for several seeds, "26.84" for one."""
        if self.n > 1:
            return f"{num(self.mean, digits)} ± {self.sd:.{digits}f}"
        return num(self.mean, digits)


def stat(rows: list[dict], key: str, scale: float = 1.0) -> Stat | None:
    """The Stat of rows[*][key] (times `scale`) over the rows that have it; None when none has."""
    values = [scale * r[key] for r in rows if is_number(r.get(key))]
    return Stat(values) if values else None


@dataclass
class Diff:
    """a minus b, two settings' Stats: value (of the unrounded means), spread (sqrt(sd_a^2 +
    sd_b^2); None when both have one seed) and sign (+1 a above b, -1 below, 0 a tie: |value| <=
    spread; None without a spread)."""

    a: Stat
    b: Stat

    @property
    def value(self) -> float:
        return self.a.mean - self.b.mean

    @property
    def spread(self) -> float | None:
        if self.a.n < 2 and self.b.n < 2:
            return None
        return math.sqrt(self.a.sd ** 2 + self.b.sd ** 2)

    @property
    def sign(self) -> int | None:
        if self.spread is None:
            return None
        if abs(self.value) <= self.spread:
            return 0
        return 1 if self.value > 0 else -1

    def text(self, digits: int = 2) -> str:
        """"+0.12 ± 0.05" (difference ± spread), "+0.12" without a spread."""
        if self.spread is None:
            return signed(self.value, digits)
        return f"{signed(self.value, digits)} ± {self.spread:.{digits}f}"


def diff(a: Stat | None, b: Stat | None) -> Diff | None:
    """a minus b, or None when either is missing."""
    return Diff(a, b) if a is not None and b is not None else None


# ------------------------------------------------------------------------------------------
# selecting rows: arms (a setting over its seeds, `study.planner.arms`)
# ------------------------------------------------------------------------------------------

def same_arm(a: list[dict] | None, b: list[dict] | None) -> bool:
    """Whether two arms are the same setting (their first rows' trial ids match)."""
    return bool(a) and bool(b) and a[0].get("id") == b[0].get("id")


def best_by_val(groups: list[list[dict]], key: str = "val_psnr") -> list[dict] | None:
    """The arm with the highest mean `key` (validation psnr) over its seeds; the first on ties;
    None when no arm has the number."""
    scored = [(stat(a, key).mean, i) for i, a in enumerate(groups) if stat(a, key) is not None]
    return groups[max(scored, key=lambda s: (s[0], -s[1]))[1]] if scored else None


def ok_rows(study: Study, dataset: str, kind: str | None = None, phase: str | None = None) -> list[dict]:
    """The finished rows of a dataset, optionally only one trial kind ("ae", "pca") and phase."""
    return [r for r in study.rows if r.get("dataset") == dataset and r.get("status") == "ok"
            and (kind is None or r.get("kind") == kind) and (phase is None or r.get("phase") == phase)]


def grid_arms(study: Study, dataset: str) -> list[list[dict]]:
    """The finished compression-grid arms of a dataset, by depth then latent size."""
    return sorted(arms(ok_rows(study, dataset, "ae", "grid")), key=lambda a: (a[0].get("depth") or 0,
                                                                              a[0].get("latent") or 0))


def pca_rows(study: Study, dataset: str) -> dict[int, dict]:
    """The finished PCA baselines of a dataset, by k (= L)."""
    return {r.get("latent"): r for r in ok_rows(study, dataset, "pca")}


def winner(study: Study, dataset: str) -> list[dict] | None:
    """The grid arm validation chose (the highest mean validation psnr; the summary's choice
    when known)."""
    groups = grid_arms(study, dataset)
    chosen = ((study.summary.get("choices") or {}).get(dataset) or {}).get("grid") or {}
    match = [a for a in groups if any(r.get("id") == chosen.get("id") for r in a)]
    return match[0] if match else best_by_val(groups)


def arch_label(r: dict) -> str:
    """"depth 3, L = 30" for a result row."""
    return f"depth {r.get('depth')}, L = {r.get('latent')}"


def strength(v) -> str:
    """A penalty strength as the config writes it (1e-05), "0" for none."""
    return f"{v:g}" if is_number(v) and v else "0"


def regularization_arms(study: Study, dataset: str) -> list[tuple[str, list[dict]]]:
    """(setting label, arm) of every regularization setting tried on the winner's architecture:
    "none" first (their reference: the penalized trials' model without a penalty, the
    "unpenalized" arm; the winner itself when the study penalizes the grid's own model), then each
    l2, each l1 and l2+l1, in that order."""
    best = winner(study, dataset)
    if best is None:
        return []
    same = [r for r in ok_rows(study, dataset, "ae") if r.get("phase") in ("unpenalized", "l2", "l1", "l2+l1")
            and r.get("latent") == best[0].get("latent") and r.get("widths") == best[0].get("widths")]
    reference = arms([r for r in same if r.get("phase") == "unpenalized"])
    out = [("none", reference[0] if reference else best)]
    for phase in ("l2", "l1", "l2+l1"):
        mine = sorted(arms([r for r in same if r.get("phase") == phase]),
                      key=lambda a: (a[0].get("l2") or 0, a[0].get("l1") or 0))
        for a in mine:
            r = a[0]
            label = {"l2": f"l2 = {strength(r.get('l2'))}", "l1": f"l1 = {strength(r.get('l1'))}",
                     "l2+l1": f"l2 = {strength(r.get('l2'))} + l1 = {strength(r.get('l1'))}"}[phase]
            out.append((label, a))
    return out


def grid_reference(study: Study, dataset: str) -> list[dict] | None:
    """The grid's chosen arm when the penalized trials ran on another model (their reference being
    the "unpenalized" arm), so the report can show what that model costs; None otherwise."""
    settings = regularization_arms(study, dataset)
    if not settings or settings[0][1][0].get("phase") != "unpenalized":
        return None
    return winner(study, dataset)


def gap_rows(arm: list[dict]) -> list[dict]:
    """Each seed's train minus test psnr (dB) as {"gap": value} rows (the Stat of an arm's gap)."""
    return [{"gap": r["train_psnr"] - r["psnr"]} for r in arm if is_number(r.get("train_psnr"))
            and is_number(r.get("psnr"))]


def drop_rows(arm: list[dict]) -> list[dict]:
    """Each seed's noisy-input minus clean-input test psnr (dB) as {"drop": value} rows: what the
    robustness check's noise costs the model."""
    return [{"drop": r["noisy_psnr"] - r["psnr"]} for r in arm if is_number(r.get("noisy_psnr"))
            and is_number(r.get("psnr"))]


def variances_of(study: Study, dataset: str) -> list[float]:
    """The noise variances sigma^2 ([0, 1] scale) of a dataset's denoising rows, ascending."""
    return sorted({d["noise_var"] for d in study.denoising if d.get("dataset") == dataset
                   and is_number(d.get("noise_var"))})


def denoising_rows(study: Study, dataset: str, var: float) -> list[dict]:
    """The denoising rows (a method's, each seed's) of a dataset at noise variance var."""
    return [d for d in study.denoising if d.get("dataset") == dataset and equal_floats(d.get("noise_var"), var)]


def methods_of(rows: list[dict]) -> dict[str, list[dict]]:
    """Denoising rows by method (the baselines first, in their order, then the autoencoders)."""
    out: dict[str, list[dict]] = {}
    for d in rows:
        out.setdefault(str(d.get("method")), []).append(d)
    order = [m for m in out if m not in AE_METHODS] + [m for m in AE_METHODS if m in out]
    return {m: out[m] for m in order}


def full_images(rows: list[dict]) -> int:
    """The most test images any of the denoising rows was scored on (the full test split)."""
    return max([d.get("n_images") or 0 for d in rows if is_number(d.get("n_images"))] or [0])


def subset_images(rows: list[dict]) -> int:
    """The size of the fixed subset the denoising rows were also scored on (0: none)."""
    return max([d.get("subset_images") or 0 for d in rows if is_number(d.get("subset_images"))] or [0])


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


def has_grid(study: Study) -> bool:
    """Whether the study has a compression grid (depths and latents both non-empty; True when its
    config is unknown). Without one there is no winner, so no l2 / l1 trials and no per-class psnr."""
    c = study.config
    return not c or bool(c.get("depths", True)) and bool(c.get("latents", True))


def baseline_info(study: Study, dataset: str, var: float, method: str) -> dict:
    """The classical denoiser's own result (chosen parameter, note) at one level, or {}."""
    for b in study.baselines:
        if b.get("dataset") == dataset and equal_floats(b.get("noise_var"), var):
            for m in b.get("rows") or []:
                if m.get("method") == method:
                    return m
    return {}


def seeds(study: Study) -> list[int]:
    """The study's training seeds (summary.json's; else those its rows carry)."""
    listed = study.summary.get("seeds")
    if isinstance(listed, list) and listed:
        return [int(s) for s in listed]
    return sorted({int(r["seed"]) for r in study.rows if r.get("kind") == "ae" and is_number(r.get("seed"))})
