"""What a study found, in words: the headline findings and each dataset's findings, generated from
the numbers (`report.results`), never written by hand.

    study = load_study("outputs/lab")
    for line in headlines(study):
        print(line)
    print(findings_text(study, "mnist"))

Every difference is taken between unrounded means over the seeds and rounded once; a difference
within its spread (sqrt(sd_a^2 + sd_b^2) over the seeds) is a tie, and with one seed on each side
it is given without a verdict (`results.Diff`).

Units: PSNR in dB on the [0, 1] pixel scale, noise as the variance sigma^2 on that scale.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

from ..config import values_set
from .results import (
    AE_METHODS,
    DASH,
    Diff,
    Stat,
    Study,
    arch_label,
    baseline_info,
    best_by_val,
    denoising_rows,
    diff,
    drop_rows,
    full_images,
    gap_rows,
    grid_arms,
    grid_reference,
    is_number,
    load_study,
    methods_of,
    num,
    ok_rows,
    pca_rows,
    regularization_arms,
    same_arm,
    stat,
    strength,
    variances_of,
    winner,
)

__all__ = ["findings", "findings_text", "headlines", "load_study"]

PSNR_LABEL = "psnr = mean over test images of per-image PSNR (dB)"
PSNR_DATASET_LABEL = "psnr_dataset = PSNR of the mean MSE (dB), what papers quote"
SPREAD_LABEL = ("a ± b = the mean over the training seeds ± their sample standard deviation; a difference is taken "
                "between unrounded means and rounded once, its spread is sqrt(sd₁² + sd₂²), and a difference within "
                "its spread counts as a tie")
AE_LABELS = {"dae": "dae (per-level)", "dae-blind": "dae-blind (all levels)", "ae": "ae (plain, noisy input)"}
SECTION_FAILED = "This section could not be built from the study's files"
NO_GRID = ("this study has no compression grid (depths or latents empty), so no architecture is chosen and "
           "no l2 or l1 trial runs: they are tried on the grid's best architecture")
ONE_SEED = "one seed: no spread to judge a tie by"
HOYER_LABEL = "Hoyer sparsity"
SMALL_LABEL = "entries < 1% of max"


# ------------------------------------------------------------------------------------------
# formatting
# ------------------------------------------------------------------------------------------

def db(v) -> str:
    """A PSNR (dB) or other float to 2 decimals (a true minus sign); a dash when missing."""
    return num(v, 2)


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


def stat_text(s: Stat | None, digits: int = 2) -> str:
    """A Stat as "mean ± sd" (one seed: the value); a dash when missing."""
    return s.text(digits) if s is not None else DASH


def diff_text(d: Diff | None, digits: int = 2) -> str:
    """A Diff as "+0.12 ± 0.05" (difference ± spread; one seed: "+0.12"); a dash when missing."""
    return d.text(digits) if d is not None else DASH


def verdict(d: Diff | None, above: str, below: str, tie: str = "tie") -> str:
    """The word for a difference: `above` (a beyond its spread above b), `below`, `tie` (within
    the spread), ONE_SEED without a spread; a dash when missing."""
    if d is None:
        return DASH
    return {1: above, -1: below, 0: tie, None: "one seed: no verdict"}[d.sign]


def _list(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _by_sign(pairs: list[tuple[str, Diff]], above: str, below: str, tie: str) -> str:
    """The verdict over (label, Diff) pairs: "<above> at L = 15 and 30, <below> at ... and <tie>
    at ..." (only the groups that occur; "<above> at every ..." when all are); "" when no pair has
    a spread (one seed)."""
    judged = [(lbl, d) for lbl, d in pairs if d.sign is not None]
    if not judged:
        return ""
    groups = [(above, [lbl for lbl, d in judged if d.sign == 1]), (below, [lbl for lbl, d in judged if d.sign == -1]),
              (tie, [lbl for lbl, d in judged if d.sign == 0])]
    for word, labels in groups:
        if len(labels) == len(pairs) > 1:
            return f"{word} at every one"
    return _list([f"{word} at {_list(labels)}" for word, labels in groups if labels])


# ------------------------------------------------------------------------------------------
# the comparisons
# ------------------------------------------------------------------------------------------

def depth_comparison(study: Study, dataset: str) -> list[dict]:
    """Per latent size L with both depths: {latent, shallow, deep (depths), a, b (their psnr Stats),
    diff (deep minus shallow psnr, dB)}; [] with fewer than two depths."""
    groups = grid_arms(study, dataset)
    depths = sorted({a[0].get("depth") for a in groups if a[0].get("depth") is not None})
    if len(depths) < 2:
        return []
    shallow, deep = depths[0], depths[-1]
    by = {(a[0].get("depth"), a[0].get("latent")): a for a in groups}
    out = []
    for latent in sorted({a[0].get("latent") for a in groups}):
        s, d = by.get((shallow, latent)), by.get((deep, latent))
        if s and d:
            a, b = stat(s, "psnr"), stat(d, "psnr")
            if a is not None and b is not None:
                out.append({"latent": latent, "shallow": shallow, "deep": deep, "a": a, "b": b, "diff": Diff(b, a)})
    return out


def best_per_latent(study: Study, dataset: str) -> dict[int, list[dict]]:
    """{L: the grid arm with the highest mean validation psnr at that latent size}."""
    out: dict[int, list[list[dict]]] = {}
    for a in grid_arms(study, dataset):
        out.setdefault(a[0].get("latent"), []).append(a)
    return {latent: best_by_val(groups) for latent, groups in out.items() if best_by_val(groups)}


def pca_margins(study: Study, dataset: str) -> list[dict]:
    """Per L with PCA: {latent, arm (the depth validation prefers at L), ae, pca (psnr Stats; PCA's
    of its one fit), diff (autoencoder minus PCA psnr, dB)}."""
    pca = pca_rows(study, dataset)
    out = []
    for latent, arm in sorted(best_per_latent(study, dataset).items()):
        p = pca.get(latent)
        a, b = stat(arm, "psnr"), stat([p], "psnr") if p else None
        if a is not None and b is not None:
            out.append({"latent": latent, "arm": arm, "ae": a, "pca": b, "diff": Diff(a, b)})
    return out


def regularizer_choices(study: Study, dataset: str) -> dict[str, tuple[list[dict], bool, Diff]]:
    """{phase ("l2", "l1"): (the best strength's arm among those tried, whether validation prefers it
    to none: its mean validation psnr is above the unregularized model's, the Diff of the two)}.

    The study's l2+l1 trial combines the best strengths tried even when validation prefers none."""
    settings = regularization_arms(study, dataset)
    if not settings:
        return {}
    base = settings[0][1]
    out = {}
    for phase in ("l2", "l1"):
        mine = [a for label, a in settings[1:] if a[0].get("phase") == phase]
        best = best_by_val(mine)
        if best is not None:
            d = diff(stat(best, "val_psnr"), stat(base, "val_psnr"))
            out[phase] = (best, d is not None and d.value > 0, d)
    return out


def best_setting(settings: list[tuple[str, list[dict]]]) -> list[dict] | None:
    """The regularization setting (of `regularization_arms`) with the highest mean validation psnr;
    "none" on a tie with it (a setting is best only above the unregularized model). None when no
    setting has a validation psnr."""
    return best_by_val([a for _, a in settings])


def claims(base: list[dict], arm: list[dict]) -> dict:
    """One regularization setting against the unregularized model: {psnr, noisy, gap, drop (the
    Diffs of test psnr, noisy-input psnr, train−test gap and clean-to-noisy drop, dB), overfitting
    and robustness (words)}. Less overfitting: a narrower gap beyond its spread. More robust: a
    higher noisy-input psnr and a smaller drop, both beyond their spreads; a higher noisy-input psnr
    alone is "better on noisy inputs, not more robust", a smaller drop with a lower noisy-input psnr
    is "a smaller drop but worse on noisy inputs"."""
    d = {"psnr": diff(stat(arm, "psnr"), stat(base, "psnr")),
         "noisy": diff(stat(arm, "noisy_psnr"), stat(base, "noisy_psnr")),
         "gap": diff(stat(gap_rows(arm), "gap"), stat(gap_rows(base), "gap")),
         "drop": diff(stat(drop_rows(arm), "drop"), stat(drop_rows(base), "drop"))}
    gap, noisy, drop = d["gap"], d["noisy"], d["drop"]
    if gap is None or noisy is None or drop is None:
        d.update(overfitting=DASH, robustness=DASH)
        return d
    d["overfitting"] = {-1: "less overfitting (narrower gap)", 1: "more overfitting (wider gap)",
                        0: "overfitting unchanged (gap within the spread)", None: f"no verdict ({ONE_SEED})"}[gap.sign]
    if noisy.sign is None:
        d["robustness"] = f"no verdict ({ONE_SEED})"
    elif noisy.sign > 0 and drop.sign > 0:
        d["robustness"] = "more robust (higher noisy-input psnr, smaller drop)"
    elif noisy.sign > 0:
        d["robustness"] = "better on noisy inputs, not more robust: the drop is not smaller"
    elif drop.sign > 0:
        d["robustness"] = "a smaller drop but worse on noisy inputs: not more robust"
    elif noisy.sign < 0:
        d["robustness"] = "less robust (lower noisy-input psnr)"
    else:
        d["robustness"] = "robustness unchanged (within the spread)"
    return d


def denoising_margins(study: Study, dataset: str) -> list[dict]:
    """Per noise variance: the best autoencoder (highest mean psnr) against the strongest baseline,
    each baseline compared on its own test images (a baseline run on the fixed subset only, BM3D,
    against the autoencoder's scores on that subset).

    Returns [{noise_var, sigma, ae_method, ae, baseline, base (psnr Stats), margin (Diff: AE minus
    baseline, dB), ssim_ae, ssim_base, ssim_margin (the same for SSIM), on_subset, n_images}]."""
    out = []
    for var in variances_of(study, dataset):
        rows = denoising_rows(study, dataset, var)
        by = methods_of(rows)
        aes = {m: rs for m, rs in by.items() if m in AE_METHODS}
        cmp = []
        for method, rs in by.items():
            if method in AE_METHODS:
                continue
            subset = stat(rs, "psnr") is None
            key, skey = ("subset_psnr", "subset_ssim") if subset else ("psnr", "ssim")
            base = stat(rs, key)
            scored = [(stat(a, key), m, a) for m, a in aes.items() if stat(a, key) is not None]
            if base is None or not scored:
                continue
            ae, ae_method, ae_rows = max(scored, key=lambda s: s[0].mean)
            cmp.append({"noise_var": var, "sigma": math.sqrt(var), "ae_method": ae_method, "ae": ae,
                        "baseline": method, "base": base, "margin": Diff(ae, base),
                        "ssim_ae": stat(ae_rows, skey), "ssim_base": stat(rs, skey),
                        "ssim_margin": diff(stat(ae_rows, skey), stat(rs, skey)), "on_subset": subset,
                        "n_images": rs[0].get("subset_images" if subset else "n_images")})
        if cmp:
            out.append(min(cmp, key=lambda c: c["margin"].value))
    return out


def worse_than_noisy(study: Study, dataset: str) -> list[tuple[float, Diff]]:
    """(σ², the best autoencoder's psnr minus the noisy input's) where the best autoencoder is below
    its noisy input beyond the spread (one seed: below at all): it adds error."""
    out = []
    for var in variances_of(study, dataset):
        by = methods_of(denoising_rows(study, dataset, var))
        noisy = stat(by.get("noisy", []), "psnr")
        best = max([s for m in AE_METHODS if (s := stat(by.get(m, []), "psnr")) is not None],
                   key=lambda s: s.mean, default=None)
        d = diff(best, noisy)
        if d is not None and (d.sign == -1 or (d.sign is None and d.value < 0)):
            out.append((var, d))
    return out


def blind_gaps(study: Study, dataset: str) -> list[tuple[float, Diff]]:
    """(σ², blind minus per-level denoiser psnr) at every level with both."""
    out = []
    for var in variances_of(study, dataset):
        by = methods_of(denoising_rows(study, dataset, var))
        d = diff(stat(by.get("dae-blind", []), "psnr"), stat(by.get("dae", []), "psnr"))
        if d is not None:
            out.append((var, d))
    return out


def budget_note(study: Study) -> dict:
    """How the autoencoders' budgets ended: {models, at_last (best validation epoch = the last epoch
    of the whole budget: still improving), stopped (early stopping ended them)}."""
    ae = [r for r in study.rows if r.get("kind") == "ae" and r.get("status") == "ok" and is_number(r.get("best_epoch"))
          and is_number(r.get("epochs_run"))]
    budget = [r for r in ae if not is_number(r.get("epochs")) or r["epochs_run"] >= r["epochs"]]
    return {"models": len(ae), "at_last": sum(r["best_epoch"] == r["epochs_run"] for r in budget),
            "stopped": len(ae) - len(budget)}


# ------------------------------------------------------------------------------------------
# findings in words
# ------------------------------------------------------------------------------------------

def compression_clause(study: Study, dataset: str) -> str:
    best = winner(study, dataset)
    if best is None:
        return ""
    text = (f"validation chose {arch_label(best[0])}: psnr {stat_text(stat(best, 'psnr'))} dB, SSIM "
            f"{stat_text(stat(best, 'ssim'), 3)}")
    margins = pca_margins(study, dataset)
    mine = next((m for m in margins if same_arm(m["arm"], best)), None)
    if mine is not None:
        text += f", {diff_text(mine['diff'])} dB over PCA with k = {mine['latent']}"
    words = _by_sign([(f"L = {m['latent']}", m["diff"]) for m in margins], "above", "below", "tied")
    if words:
        text += "; against PCA with k = L the best depth at each L is " + words.replace("every one", "every L")
    return text


def depth_clause(study: Study, dataset: str) -> str:
    rows = depth_comparison(study, dataset)
    if not rows:
        return ""
    shallow, deep = rows[0]["shallow"], rows[0]["deep"]
    text = (f"depth {deep} − depth {shallow}: "
            + ", ".join(f"{diff_text(r['diff'])} dB at L = {r['latent']}" for r in rows))
    words = _by_sign([(f"L = {r['latent']}", r["diff"]) for r in rows], "wins", "loses", "ties")
    text += f"; depth {deep} {words}".replace("every one", "every L") if words else ""
    epochs = {d: sorted({r.get("epochs_run") for a in grid_arms(study, dataset) for r in a
                         if r.get("depth") == d} - {None}) for d in (shallow, deep)}
    if epochs[shallow] and epochs[deep] and epochs[shallow] != epochs[deep]:
        text += (f" (budgets differ: depth {shallow} ran {'/'.join(map(str, epochs[shallow]))} epochs, depth {deep} "
                 f"{'/'.join(map(str, epochs[deep]))})")
    return text


def _choice_text(study: Study, dataset: str, phase: str) -> str:
    choice = regularizer_choices(study, dataset).get(phase)
    if choice is None:
        return ""
    arm, chosen, d = choice
    value = f"{phase} = {strength(arm[0].get(phase))}"
    return (f"; validation prefers {value} (validation psnr {diff_text(d)} dB over none)" if chosen else
            f"; validation prefers none to every {phase} tried")


def l1_clause(study: Study, dataset: str) -> str:
    settings = regularization_arms(study, dataset)
    mine = [(label, a) for label, a in settings if a[0].get("phase") == "l1"]
    if not mine:
        return ""
    base = settings[0][1]
    parts = [f"{label}: {stat_text(stat(arm, 'code_hoyer'))} (psnr {diff_text(claims(base, arm)['psnr'])} dB)"
             for label, arm in mine]
    return (f"{HOYER_LABEL} of the code {stat_text(stat(base, 'code_hoyer'))} without l1; " + ", ".join(parts)
            + _choice_text(study, dataset, "l1"))


def l2_clause(study: Study, dataset: str) -> str:
    settings = regularization_arms(study, dataset)
    mine = [(label, a) for label, a in settings if a[0].get("phase") == "l2"]
    if not mine:
        return ""
    base = settings[0][1]
    parts = []
    for label, arm in mine:
        c = claims(base, arm)
        parts.append(f"{label}: psnr {diff_text(c['psnr'])} dB, noisy-input psnr {diff_text(c['noisy'])} dB"
                     + (f" ({c['robustness']})" if c["noisy"] is not None and c["noisy"].sign is not None else ""))
    return "against none, " + "; ".join(parts) + _choice_text(study, dataset, "l2")


def denoising_clause(study: Study, dataset: str) -> str:
    margins = denoising_margins(study, dataset)
    if not margins:  # no classical baseline (denoising.baselines: []): the autoencoders' own numbers
        best = []
        for var in variances_of(study, dataset):
            by = methods_of(denoising_rows(study, dataset, var))
            scored = [(s, m) for m in AE_METHODS if (s := stat(by.get(m, []), "psnr")) is not None]
            if scored:
                s, method = max(scored, key=lambda t: t[0].mean)
                best.append(f"{stat_text(s)} dB ({method}) at σ² = {var:g} (σ = {math.sqrt(var):.2f})")
        if not best:
            return ""
        return ("no classical baseline was run, so there is nothing to compare the autoencoders with; the best of "
                f"them reaches {_list(best)}")
    parts = [f"{diff_text(m['margin'])} dB at σ² = {m['noise_var']:g} ({m['ae_method']} − {m['baseline']}"
             + (" on the subset" if m["on_subset"] else "") + ")" for m in margins]
    text = "the best autoencoder − the strongest baseline (psnr): " + ", ".join(parts)
    words = _by_sign([(f"σ² = {m['noise_var']:g}", m["margin"]) for m in margins], "win", "lose", "tie")
    ssim = [m for m in margins if m["ssim_margin"] is not None]
    if ssim:
        text += "; SSIM: " + ", ".join(f"{stat_text(m['ssim_ae'], 3)} against {stat_text(m['ssim_base'], 3)} at "
                                       f"σ² = {m['noise_var']:g}" for m in ssim)
    ssim_words = _by_sign([(f"σ² = {m['noise_var']:g}", m["ssim_margin"]) for m in ssim], "win", "lose", "tie")
    if words:
        text += f"; by psnr the autoencoders {words}".replace("every one", "every level")
    if ssim_words:
        text += f", by SSIM they {ssim_words}".replace("every one", "every level")
    worse = worse_than_noisy(study, dataset)
    if worse:
        text += ("; at " + _list([f"σ² = {v:g} ({diff_text(d)} dB against the noisy input)" for v, d in worse])
                 + " even the best autoencoder's output is further from the clean images than its noisy input: it "
                   "adds error instead of removing it")
    gaps = blind_gaps(study, dataset)
    if gaps:
        text += ("; the blind denoiser − the per-level ones: "
                 + ", ".join(f"{diff_text(d)} dB at σ² = {v:g}" for v, d in gaps))
    return text


TOPICS = (("Compression", compression_clause), ("Depth", depth_clause), ("L1 on the code", l1_clause),
          ("L2 on the weights", l2_clause), ("Denoising", denoising_clause))


def headlines(study: Study) -> list[str]:
    """The five headline findings (compression, depth, L1, L2, denoising), each across the
    datasets: "**Depth.** mnist: ...; fashion-mnist: ..." (topics without numbers left out)."""
    out = []
    for topic, clause in TOPICS:
        parts = [f"{dataset_name(d)}: {text}" for d in study.datasets if (text := clause(study, d))]
        if parts:
            out.append(f"**{topic}.** " + " — ".join(parts) + ".")
    return out


def findings(study: Study, dataset: str) -> list[str]:
    """The generated findings of one dataset, one sentence per topic (compression, depth, L1, L2,
    denoising); without a finished grid model only the denoising one; [] when there are none."""
    out = []
    for topic, clause in TOPICS:
        text = clause(study, dataset)
        if text:
            out.append(f"{topic}: {text}.")
    return out


def findings_text(study: Study, dataset: str) -> str:
    """The generated findings of one dataset as one paragraph ("" when there are none yet)."""
    items = findings(study, dataset)
    return f"**{dataset_name(dataset)}**: " + " ".join(items) if items else ""


def caveats(study: Study) -> list[str]:
    """What limits the findings: models still improving when their budget ended, the denoisers'
    budgets and their architecture against the grid's, and a single seed."""
    out = []
    note = budget_note(study)
    if note["models"]:
        out.append(f"{note['at_last']} of {note['models']} autoencoders had their best validation epoch at their "
                   "last one: still improving when the budget ended, so every psnr here is that budget's, not the "
                   "architecture's limit" + (f"; {note['stopped']} stopped early" if note["stopped"] else "") + ".")
    for dataset in study.datasets:
        dens = [r for r in ok_rows(study, dataset, "ae") if r.get("phase") in ("denoise", "blind")]
        if not dens:
            continue
        per = sorted({r.get("epochs_run") for r in dens if r.get("phase") == "denoise"} - {None})
        blind = sorted({r.get("epochs_run") for r in dens if r.get("phase") == "blind"} - {None})
        best = winner(study, dataset)
        arch = (f"widths {dens[0].get('widths')}, L = {dens[0].get('latent')}")
        differs = best is not None and (best[0].get("widths"), best[0].get("latent")) != (
            dens[0].get("widths"), dens[0].get("latent"))
        text = f"{dataset_name(dataset)}: the denoisers are {arch}"
        if differs:
            text += (f", another architecture than the compression grid's choice (widths {best[0].get('widths')}, "
                     f"L = {best[0].get('latent')})")
        if per and blind and per != blind:
            text += (f"; the blind denoiser trained {'/'.join(map(str, blind))} epochs against "
                     f"{'/'.join(map(str, per))} for the per-level ones")
        out.append(text + ".")
    for dataset in study.datasets:
        grid = grid_reference(study, dataset)
        settings = regularization_arms(study, dataset)
        d = diff(stat(settings[0][1], "psnr"), stat(grid, "psnr")) if grid is not None and settings else None
        if d is not None:
            out.append(f"{dataset_name(dataset)}: the penalties act on the model {values_set(study.config.get('penalty_model') or {})}, "
                       f"whose unpenalized psnr is {diff_text(d)} dB against the grid's own model (the price of a "
                       "code whose scale matters).")
    seeds = sorted({r.get("seed") for r in study.rows if r.get("kind") == "ae" and is_number(r.get("seed"))})
    if len(seeds) == 1:
        out.append(f"Every autoencoder ran with one training seed ({seeds[0]}): no difference here has a spread, so "
                   "none is called a win, a loss or a tie; run the study with seeds: 2 or more.")
    return out


def method_definitions() -> dict[str, str]:
    """What each denoising method of the report is, in words (the autoencoders and every baseline)."""
    return {
        "dae": "a denoising autoencoder trained at that noise level (supervised: noisy input, clean target)",
        "dae-blind": "one denoising autoencoder trained on a range of noise levels",
        "ae": "the compression grid's chosen autoencoder (trained on clean images) fed the noisy images",
        "noisy": "the noisy input itself, unchanged",
        "gaussian": "a Gaussian filter; its width sigma_px (pixels) chosen on the validation split",
        "median": "a median filter over a size × size square; the size chosen on validation",
        "nlm": "non-local means (scikit-image, 5×5 patches), h = c · σ with c chosen on validation",
        "wavelet": "BayesShrink wavelet soft thresholding (scikit-image, db2, 2 levels); the noise level given "
                   "to it chosen on validation",
        "tv": "total-variation denoising (Chambolle, scikit-image); its weight chosen on validation",
        "bm3d": "BM3D (the bm3d package); run on a fixed subset of the test images (it is slow), the noise level "
                "given to it chosen on validation",
        "pca": "projection on the first k principal components of the clean training images, k chosen on "
               "validation",
        "linear": "an affine LMMSE denoiser x̂ = mean + C_xy C_yy⁻¹ (y − mean_y) with the covariances fitted on "
                  "clean/noisy training pairs: supervised (it learns from the same pairs as a denoiser), not a "
                  "classical filter",
    }


def chosen_parameter(study: Study, dataset: str, var: float, method: str) -> str:
    """The parameter validation chose for a baseline at one level ("sigma_px = 0.7"), a dash if none."""
    info = baseline_info(study, dataset, var, method)
    param = info.get("param")
    if is_number(param) and info.get("param_name"):
        return f"{info['param_name']} = {param:g}"
    return str(param) if param is not None else DASH


def full_split_images(study: Study, dataset: str) -> int:
    """The test images the denoising rows of a dataset were scored on at most (the whole split)."""
    return max([full_images(denoising_rows(study, dataset, v)) for v in variances_of(study, dataset)] or [0])
