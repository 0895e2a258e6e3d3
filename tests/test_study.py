"""The study: YAML validation, planning, the quick preset end to end, and resuming after SIGKILL."""
from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from autoenc import ConfigError
from autoenc.config import values_set
from conftest import quick_config
from generated import python_with_checksums
from autoenc.study import (StudyConfig, TIMING_COLUMNS, by_priority, count_trials, plan, preset,
                         run_study, stack_groups, study_from_dict)


def _rows(path: Path) -> list[dict]:
    with open(path) as fh:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(fh)]


# ---- configuration -------------------------------------------------------------------------

@pytest.mark.parametrize("mapping, words", [
    ({"latnets": [15]}, ["study.latnets is not a key of study", "latents"]),
    ({"depths": [4]}, ["study.depths=[4]", "3 and/or 5"]),
    ({"l2": [-1e-5]}, ["study.l2=[-1e-05]", "> 0"]),
    ({"epochs": {3: 0}}, ["study.epochs", "per depth"]),
    ({"datasets": ["cifar"]}, ["study.datasets", "cifar", "mnist, fashion-mnist"]),
    ({"model": {"activation": "swish9"}}, ["study.model.activation=swish9", "silu"]),
    ({"train": {"lr": -1}}, ["study.train.lr=-1", "> 0"]),
    ({"train": {"epochs": 3}}, ["study.train.epochs=3", "top level"]),
    ({"denoising": {"variances": [2.0]}}, ["study.denoising.variances", "(0, 1]"]),
    ({"denoising": {"baselines": ["bm4d"]}}, ["study.denoising.baselines", "bm4d", "linear"]),
    ({"denoising": {"architecture": {"depth": 3}}}, ["study.denoising.architecture", "latent: L"]),
    ({"denoising": {"blind": [0.2, 0.1]}}, ["study.denoising.blind", "low < high"]),
    ({"denoising": {"variances": [], "blind": [0.01, 0.09]}}, ["study.denoising.blind", "denoising.variances",
                                                               "empty"]),
    ({"model": {"widths": [64, 32]}}, ["study.model.widths", "depths and latents"]),
    ({"model": {"latent": 5}}, ["study.model.latent", "depths and latents"]),
    ({"train": {"l2": 1.0e-5}}, ["study.train.l2", "study.l2"]),
    ({"denoising": {"model": {"widths": [64]}}}, ["study.denoising.model.widths", "denoising.architecture"]),
    ({"denoising": {"train": {"l1": 1.0e-5}}}, ["study.denoising.train.l1", "without penalties"]),
    ({"denoising": {"architecture": {"widths": "512,256", "latent": 100}}}, ["study.denoising.architecture",
                                                                            "widths: [w1, w2, ...]"]),
    ({"denoising": {"architecture": {"widths": [512.7, 256], "latent": 100}}}, ["study.denoising.architecture"]),
    ({"denoising": {"architecture": {"widths": [512, 256], "latent": 0}}}, ["study.denoising.architecture"]),
    ({"denoising": {"blind_epochs_factor": 0}}, ["study.denoising.blind_epochs_factor=0", "(0, 100]"]),
    ({"workers": "zero"}, ["study.workers=zero", "auto"]),
    ({"stack": 0}, ["study.stack=0", ">= 1"]),
    ({"stack": "many"}, ["study.stack=many", "auto", "on a GPU"]),
    ({"latents": [15, "thirty"]}, ["study.latents=[15, 'thirty']", "latent sizes"]),
    ({"denoising": {"variances": [0.1, 0.3, 9]}}, ["study.denoising.variances", "(0, 1]"]),
    ({"l1": [1e-4, float("inf")]}, ["study.l1", "inf"]),
    ({"denoising": "many"}, ["study.denoising=many", "a mapping"]),
])
def test_a_bad_study_names_the_key_the_value_and_what_is_allowed(mapping, words):
    with pytest.raises(ConfigError) as err:
        study_from_dict(mapping)
    message = str(err.value)
    assert all(w in message for w in words), message


def test_budgets_left_null_take_the_studys(monkeypatch):
    """gpu_epochs null is the study's epochs on a GPU; denoising.epochs / gpu_epochs null are the
    study's budgets; set budgets stay as set, and a study reads back as itself."""
    import autoenc.study.planner as study_mod

    for on_gpu in (False, True):
        monkeypatch.setattr(study_mod, "on_gpu", lambda c, on_gpu=on_gpu: on_gpu)
        small = study_from_dict({"epochs": {3: 3, 5: 2}, "gpu_epochs": None,
                                 "denoising": {"epochs": None, "gpu_epochs": None}})
        assert [study_mod._epochs(small, d, denoise) for d in (3, 5) for denoise in (False, True)] == [3, 3, 2, 2]
        own = study_from_dict({"epochs": 3, "gpu_epochs": 9, "denoising": {"epochs": 7, "gpu_epochs": 11}})
        assert [study_mod._epochs(own, 3), study_mod._epochs(own, 3, True)] == ([9, 11] if on_gpu else [3, 7])
        lab = study_from_dict({})  # the lab's defaults: 10 / 100 epochs, denoisers 10 / 100
        assert [study_mod._epochs(lab, 3), study_mod._epochs(lab, 3, True)] == ([100, 100] if on_gpu else [10, 10])
        assert study_from_dict(small.to_dict()) == small  # study.yaml reads back as the same study


def test_the_default_study_is_the_lab():
    c = preset("lab")
    assert c.datasets == ["mnist", "fashion-mnist"] and c.depths == [3, 5] and c.latents == [15, 30, 50, 100]
    assert c.l2 == [1e-6, 1e-5, 1e-4] and c.l1 == [1e-5, 1e-4, 1e-3] and c.combined and c.pca
    assert values_set(c.penalty_model) == {"decoder_norm": "none", "unit_code_columns": True}
    assert c.denoising.variances == [0.01, 0.04, 0.09, 0.16, 0.25]
    assert c.seeds == 2 and c.gpu_seeds == 5
    # per dataset: 8 grid + 8 regularization (3 l2, 3 l1, l2+l1 and their unpenalized reference) + 5
    # denoisers + 1 blind autoencoders, each once per seed, 4 PCA and 5 levels x 9 baselines once
    assert count_trials(c) == 2 * (2 * (8 + 8 + 5 + 1) + 4 + 45) == len(plan(c, {})) + 2 * 2 * 8  # 8 wait for the grid
    # the denoisers: a wider net than the presets, planned from the start; the blind one gets twice the epochs
    den = [t for t in plan(c, {}) if t.phase in ("denoise", "blind")]
    assert len(den) == 2 * 2 * 6
    assert all(t.spec["model"]["widths"] == [512, 256] and t.spec["model"]["latent"] == 100 for t in den)
    per_level = {t.spec["train"]["epochs"] for t in den if t.phase == "denoise"}
    assert {t.spec["train"]["epochs"] for t in den if t.phase == "blind"} == {2 * e for e in per_level}
    # architecture "best" waits for the grid's winner
    best = study_from_dict({"denoising": {"architecture": "best"}})
    assert not [t for t in plan(best, {}) if t.phase in ("denoise", "blind")]


# ---- planning ------------------------------------------------------------------------------

def _fake_result(trial, val_psnr: float) -> dict:
    m = trial.spec.get("model", {})
    t = trial.spec.get("train", {})
    return {"id": trial.id, "kind": trial.kind, "phase": trial.phase, "dataset": trial.dataset, "status": "ok",
            "depth": len(m.get("widths", [])) + 1, "widths": m.get("widths"), "latent": m.get("latent"),
            "l2": t.get("l2", 0.0), "l1": t.get("l1", 0.0), "val_psnr": val_psnr}


def test_plan_picks_the_best_architecture_then_the_best_strengths_on_validation():
    c = study_from_dict({"datasets": ["mnist"], "latents": [15, 30], "denoising": None, "pca": False, "seeds": 1})
    first = plan(c, {})
    assert [t.phase for t in first] == ["grid"] * 4
    assert plan(c, {}) == first  # deterministic
    scores = {("d5", 30): 24.0, ("d3", 30): 23.0, ("d3", 15): 20.0, ("d5", 15): 20.5}
    done = {}
    for t in first:
        key = (f"d{len(t.spec['model']['widths']) + 1}", t.spec["model"]["latent"])
        done[t.id] = _fake_result(t, scores[key])
    second = [t for t in plan(c, done) if t.id not in done]
    # the penalized trials, and their reference without a penalty, on the study's penalty_model
    assert [t.phase for t in second] == ["unpenalized"] + ["l2"] * 3 + ["l1"] * 3
    assert all(t.spec["model"]["widths"] == [512, 384, 256, 128] and t.spec["model"]["latent"] == 30 for t in second)
    assert all(t.spec["model"]["decoder_norm"] == "none" and t.spec["model"]["unit_code_columns"] for t in second)
    assert (second[0].spec["train"]["l1"], second[0].spec["train"]["l2"]) == (0.0, 0.0)
    for t, v in zip(second, [23.5, 23.0, 24.5, 23.9, 22.0, 24.2, 23.0]):
        done[t.id] = _fake_result(t, v)
    third = [t for t in plan(c, done) if t.id not in done]
    assert len(third) == 1 and third[0].phase == "l2+l1"
    assert third[0].spec["train"]["l2"] == 1e-5 and third[0].spec["train"]["l1"] == 1e-4
    done[third[0].id] = _fake_result(third[0], 24.0)
    assert len(plan(c, done)) == count_trials(c) == 12
    grid_model = study_from_dict({"datasets": ["mnist"], "latents": [15, 30], "denoising": None, "pca": False,
                                  "seeds": 1, "penalty_model": {}})  # the grid's model: its choice is the reference
    assert [t.phase for t in plan(grid_model, done) if t.phase != "grid"] == ["l2"] * 3 + ["l1"] * 3
    assert count_trials(grid_model) == 11


def test_every_autoencoder_trial_runs_once_per_seed_and_validation_chooses_by_the_mean():
    """seeds: 2 runs each autoencoder trial with training seeds 0 and 1 (the test noise stays seed 0's);
    the seed-0 trials are those of seeds: 1, ids included; the architecture and the strengths are
    chosen on the mean validation psnr over the seeds, once every seed is in."""
    base = {"datasets": ["mnist"], "latents": [15, 30], "denoising": None, "pca": False, "l2": [1e-5],
            "l1": [1e-5, 1e-4]}
    one, two = study_from_dict({**base, "seeds": 1}), study_from_dict({**base, "seeds": 2})
    grid = plan(two, {})
    assert [t.spec["train"]["seed"] for t in grid] == [0] * 4 + [1] * 4
    assert {t.spec["context"]["seed"] for t in grid} == {0}
    assert [t.id for t in grid[:4]] == [t.id for t in plan(one, {})]
    assert all(t.id.split("-")[-2] == "s1" for t in grid[4:])
    # seed 0 prefers depth 5 at L = 30, seed 1 depth 3 by more: the mean prefers depth 3
    val = {(5, 30, 0): 24.0, (3, 30, 0): 23.9, (5, 30, 1): 23.0, (3, 30, 1): 24.1}
    done = {t.id: _fake_result(t, val.get((len(t.spec["model"]["widths"]) + 1, t.spec["model"]["latent"],
                                           t.spec["train"]["seed"]), 20.0)) for t in grid}
    first_only = {i: r for i, r in done.items() if i in {t.id for t in grid[:4]}}
    assert [t.phase for t in plan(two, first_only)] == ["grid"] * 8  # the choice waits for every seed
    penalized = [t for t in plan(two, done) if t.id not in done]
    assert [(t.phase, t.spec["train"]["seed"]) for t in penalized] == (
        [("unpenalized", 0), ("unpenalized", 1), ("l2", 0), ("l2", 1)] + [("l1", 0), ("l1", 1)] * 2)
    assert {(tuple(t.spec["model"]["widths"]), t.spec["model"]["latent"]) for t in penalized} == {((256, 128), 30)}
    # l1 = 1e-4 wins on the mean (23.0 and 25.0) though l1 = 1e-5 wins seed 0 (23.5 against 23.0)
    l1 = {(1e-5, 0): 23.5, (1e-5, 1): 23.5, (1e-4, 0): 23.0, (1e-4, 1): 25.0}
    for t in penalized:
        done[t.id] = _fake_result(t, l1.get((t.spec["train"]["l1"], t.spec["train"]["seed"]), 22.0))
    combined = [t for t in plan(two, done) if t.id not in done]
    assert [(t.phase, t.spec["train"]["l1"], t.spec["train"]["seed"]) for t in combined] == [
        ("l2+l1", 1e-4, 0), ("l2+l1", 1e-4, 1)]
    assert count_trials(two) == 2 * count_trials(one) == len(plan(two, done))


def test_trial_ids_change_with_their_config():
    a = plan(study_from_dict({"datasets": ["mnist"], "denoising": None}), {})
    d5 = StudyConfig().epochs[5]  # keep depth 5 at its default: only depth-3 trials change
    b = plan(study_from_dict({"datasets": ["mnist"], "denoising": None, "epochs": {3: 41, 5: d5}}), {})
    same = {t.id for t in a} & {t.id for t in b}
    assert same == {t.id for t in a if t.kind == "pca" or len(t.spec["model"]["widths"]) == 4}


def test_stack_auto_stacks_on_a_gpu_and_leaves_the_cpu_trials_as_they_were(monkeypatch):
    import autoenc.study.planner as study
    import autoenc.study.runner as runner

    one = {"device": "cpu", "seeds": 1, "gpu_seeds": 1}
    on_cpu = plan(study_from_dict(one), {})
    assert [t.id for t in on_cpu] == [t.id for t in plan(study_from_dict({**one, "stack": 1}), {})]
    monkeypatch.setattr(study, "on_gpu", lambda c: True)
    monkeypatch.setattr(runner, "on_gpu", lambda c: True)
    on_gpu = plan(study_from_dict(one), {})
    assert [t.spec.get("stack") for t in on_gpu if t.phase == "grid"] == [study.GPU_STACK] * 16
    assert {t.id for t in on_gpu if t.kind == "ae"}.isdisjoint(t.id for t in on_cpu)


def test_stack_groups_are_fixed_by_the_plan_not_by_timing():
    c = study_from_dict({"stack": 4, "seeds": 1})
    plain = plan(study_from_dict({"stack": 1, "seeds": 1}), {})
    first = plan(c, {})
    assert all(len(g) == 1 for g in stack_groups(plain))  # stack 1: every trial alone, as before
    assert "stack" not in plain[0].spec and {t.id for t in plain}.isdisjoint({t.id for t in first if t.kind == "ae"})
    groups = stack_groups(first)
    assert [[t.id for t in g] for g in stack_groups(plan(c, {}))] == [[t.id for t in g] for g in groups]
    grid = [g for g in groups if g[0].phase == "grid"]
    assert len(grid) == 4 and all(len(g) == 4 for g in grid)  # one depth: its 4 latents, then the other dataset's
    for g in grid:
        assert len({t.dataset for t in g}) == 1 and [t.spec["model"]["latent"] for t in g] == [15, 30, 50, 100]
        assert all({**t.spec["model"], "latent": 0} == {**g[0].spec["model"], "latent": 0} for t in g)
    assert [(g[0].phase, g[0].dataset, len(g)) for g in groups if g[0].phase in ("denoise", "blind")] == [
        ("blind", "mnist", 1), ("denoise", "mnist", 4), ("denoise", "mnist", 1),
        ("blind", "fashion-mnist", 1), ("denoise", "fashion-mnist", 4), ("denoise", "fashion-mnist", 1)]
    assert all(len(g) == 1 for g in groups if g[0].kind != "ae")
    done = {t.id: _fake_result(t, 20.0 + t.spec["model"]["latent"] / 100) for t in first if t.phase == "grid"}
    penalized = [g for g in stack_groups(plan(c, done)) if g[0].phase in ("unpenalized", "l2", "l1")]
    assert [(g[0].dataset, [t.phase for t in g]) for g in penalized] == [
        ("mnist", ["unpenalized", "l2", "l2", "l2"]), ("mnist", ["l1", "l1", "l1"]),
        ("fashion-mnist", ["unpenalized", "l2", "l2", "l2"]), ("fashion-mnist", ["l1", "l1", "l1"])]


def test_trials_that_others_wait_for_take_free_workers_first():
    c = preset("lab")
    first = plan(c, {})
    done = {t.id: _fake_result(t, 20.0 + t.spec["model"]["latent"] / 100) for t in first
            if t.phase == "grid" and t.dataset == "mnist"}
    ready = [g[0] for g in by_priority(stack_groups(plan(c, done))) if g[0].id not in done]
    # the other grid, then the penalized trials the combined one waits for, then the other
    # autoencoders, then the short CPU trials; plan order within each (each autoencoder once per seed)
    assert [(t.phase, t.dataset) for t in ready[:30]] == [("grid", "fashion-mnist")] * 16 + [
        ("unpenalized", "mnist")] * 2 + [("l2", "mnist")] * 6 + [("l1", "mnist")] * 6
    assert [t.phase for t in ready[30:54]] == (["blind"] * 2 + ["denoise"] * 10) * 2
    assert [t.phase for t in ready[54:]] == ["baselines"] * 90 + ["pca"] * 8
    assert [t.id for t in ready if t.phase == "baselines"] == [t.id for t in first if t.phase == "baselines"]


def study_files(folder: Path, study: dict) -> Path:
    """A config folder for `autoenc study --config-dir FOLDER study=NAME`: study/<name>.yaml holding
    `study` on top of the lab (Hydra's defaults list)."""
    import yaml

    (folder / "study").mkdir(parents=True, exist_ok=True)
    (folder / "study" / f"{study['name']}.yaml").write_text(yaml.safe_dump(
        {"defaults": ["lab", "_self_"], **study}, sort_keys=False))
    return folder


ONE_SEED = {"seeds": 1, "gpu_seeds": 1,  # the studies below test the running, not the seeds or the penalty model
            "penalty_model": {"decoder_norm": None, "unit_code_columns": None}}
SMALL_STUDY = {
    "name": "small", "datasets": ["mnist"], "depths": [3], "latents": [15], "epochs": 1, "l2": [1e-5],
    "l1": [1e-5], "subset": {"train": 1000, "val": 200, "test": 200}, **ONE_SEED,
    "denoising": {"variances": [0.04], "blind": None, "baselines": ["noisy"], "subset": 20, "epochs": 1}}


def test_a_study_runs_a_released_trial_before_the_queued_ones(data_dir, tmp_path, monkeypatch):
    """Inline, trial by trial: the l2 and l1 trials (which the combined one waits for) run as soon
    as the grid is in, before the denoiser, the baselines and PCA that were ready all along; and
    each trial starts with the finished ones' results already written."""
    import autoenc.study.executors as executors

    ran, written = [], []  # phase of each trial, and the trials in summary.json as it started
    real = executors.run_trial
    summary_file = tmp_path / "order" / "summary.json"

    def recording(trial, *args, **kwargs):
        ran.append(trial["phase"])
        written.append(json.loads(summary_file.read_text())["trials_done"] if summary_file.exists() else 0)
        return real(trial, *args, **kwargs)

    monkeypatch.setattr(executors, "run_trial", recording)
    config = study_from_dict(SMALL_STUDY)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(3)  # the trials (one thread each) ran in this process: it keeps its own count
        summary = run_study(config, tmp_path / "order", data_dir=data_dir, workers=1, progress=False)
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(threads)
    assert summary["trials_done"] == 7
    assert ran == ["grid", "l2", "l1", "denoise", "l2+l1", "baselines", "pca"]
    assert written == list(range(7))  # the results of every finished trial, before the next one ran


def test_a_study_without_its_data_stops_before_any_trial_and_says_how_to_get_it(tmp_path, monkeypatch, capsys):
    """Missing data is one clear error up front, not a failed trial per model and baseline."""
    import autoenc.study.executors as executors
    from autoenc import DataError
    from autoenc.cli import main

    ran = []
    monkeypatch.setattr(executors, "run_trial", lambda trial, *a, **k: ran.append(trial["id"]))
    empty = tmp_path / "no-data"
    empty.mkdir()
    with pytest.raises(DataError, match="dataset 'mnist' not found") as err:
        run_study(study_from_dict(SMALL_STUDY), tmp_path / "s", data_dir=empty, workers=1, progress=False)
    assert "AUTOENC_DATA_DIR" in str(err.value) and "autoenc data fetch mnist" in str(err.value)
    assert ran == [] and not (tmp_path / "s").exists()  # nor a half-made folder (study.yaml, .lock)

    conf = study_files(tmp_path / "conf", SMALL_STUDY)
    with pytest.raises(SystemExit) as stop:
        main(["study", "--config-dir", str(conf), "study=small", f"hydra.run.dir={tmp_path / 'cli'}",
              f"data_dir={empty}", "workers=1"])
    assert stop.value.code == 2 and ran == []
    assert capsys.readouterr().err.startswith("error: dataset 'mnist' not found")
    assert not (tmp_path / "cli").exists()


def test_a_study_writing_to_a_file_reports_each_finished_trial_on_a_line(data_dir, tmp_path, capsys):
    """Without a terminal there are no progress bars, so a long study logged to a file says what
    finished as it goes: a line per trial with its test psnr and seconds. progress=False: silent."""
    import re

    run_study(study_from_dict(SMALL_STUDY), tmp_path / "s", data_dir=data_dir, workers=1)
    lines = capsys.readouterr().err.splitlines()
    rows = {r["id"]: r for r in _rows(tmp_path / "s" / "results.csv")}
    assert [line.split("]")[0] for line in lines] == [f"[{k}/7" for k in range(1, 8)]
    for line in lines:
        m = re.fullmatch(r"\[\d/7\] (\S+) ok: (?:psnr (\d+\.\d\d) dB( \(clean inputs\), denoising psnr \d+\.\d\d dB "
                         r"at sigma\^2=0\.04)?, |denoising psnr \d+\.\d\d dB at sigma\^2=0\.04, )?\d+\.\d s", line)
        assert m, line
        if m.group(1) in rows:  # an autoencoder or PCA: its psnr as results.csv has it
            assert m.group(2) == f"{float(rows[m.group(1)]['psnr']):.2f}"
            assert bool(m.group(3)) == (rows[m.group(1)]["noise_var"] != "")  # a denoiser's line is labelled
    assert sum(" psnr " in line for line in lines) == 7  # the one baseline trial ("noisy") too

    run_study(study_from_dict(SMALL_STUDY), tmp_path / "quiet", data_dir=data_dir, workers=1,
              progress=False)
    assert capsys.readouterr().err == ""


def test_a_trial_line_gives_a_failed_trials_first_error_line():
    from autoenc.study import trial_line

    failed = {"id": "mnist-l1-x", "status": "failed", "error": "TrainingError: loss became nan\n(details)"}
    assert trial_line(3, 7, failed) == "[3/7] mnist-l1-x failed: TrainingError: loss became nan"
    assert trial_line(3, 7, {"id": "x", "status": "failed"}) == "[3/7] x failed: unknown error"
    two_methods = {"id": "b", "status": "ok", "wall_seconds": 2.04, "rows": [{"psnr": 20.0}, {"psnr": 21.0}]}
    assert trial_line(4, 7, two_methods) == "[4/7] b ok: 2.0 s"


def test_the_study_command_names_why_its_trials_failed(data_dir, tmp_path, monkeypatch, capsys):
    """Trials that fail leave the rest of the study running; the command then exits 1 and prints
    each distinct error once, with how many trials it stopped and one of their ids."""
    import autoenc.study.executors as executors
    from autoenc import TrainingError
    from autoenc.cli import main

    real = executors.run_trial

    def failing_penalties(trial, *args, **kwargs):
        if trial["phase"] in ("l2", "l1"):
            raise TrainingError(f"the training loss became nan at epoch 1\n(the {trial['phase']} trial)")
        return real(trial, *args, **kwargs)

    monkeypatch.setattr(executors, "run_trial", failing_penalties)
    conf = study_files(tmp_path / "conf", SMALL_STUDY)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        main(["study", "--config-dir", str(conf), "study=small", f"hydra.run.dir={out}", f"data_dir={data_dir}",
              "workers=1"])
    captured = capsys.readouterr()
    assert stop.value.code == 1, captured.err
    assert "6/7 trials, 2 failed" in captured.out  # the combined l2+l1 trial waits for them: not run
    failed_ids = sorted(r["id"] for r in _rows(out / "results.csv") if r["status"] == "failed")
    assert len(failed_ids) == 2
    lines = captured.err.splitlines()
    lines = lines[lines.index("failed trials:"):]
    assert lines[1].startswith("  2 x TrainingError: the training loss became nan at epoch 1  (e.g. ")
    assert lines[1].split("(e.g. ")[1].rstrip(")") in failed_ids
    assert "(the l1 trial)" not in captured.err  # first lines only; the whole message is in results.csv
    assert "results.csv" in lines[-1] and "rerun the same command" in lines[-1]


@pytest.mark.slow
def test_a_stacked_study_gives_the_plain_studys_numbers_up_to_rounding(data_dir, tmp_path):
    """Every autoencoder trial in a stack of 2 (grid across datasets, penalties and denoisers per
    dataset): the same numbers in any executor, after a lost result, and within rounding of the
    trials trained alone."""
    spec = {"name": "stacked", "datasets": ["mnist", "fashion-mnist"], "depths": [3], "latents": [15],
            "epochs": 2, "l2": [1e-5], "l1": [1e-5], "combined": False, "pca": False, **ONE_SEED,
            "subset": {"train": 1500, "val": 300, "test": 300},
            "denoising": {"variances": [0.04, 0.16], "blind": None, "baselines": ["noisy"], "subset": 50, "epochs": 2}}
    plain = run_study(study_from_dict(spec), tmp_path / "plain", data_dir=data_dir, workers=1, progress=False)
    stacked = study_from_dict({**spec, "stack": 2})
    inline = run_study(stacked, tmp_path / "inline", data_dir=data_dir, workers=1, progress=False)
    pool = run_study(stacked, tmp_path / "pool", data_dir=data_dir, workers=2, progress=False)
    assert plain["trials_done"] == inline["trials_done"] == pool["trials_done"] == 14
    assert _rows(tmp_path / "pool" / "results.csv") == _rows(tmp_path / "inline" / "results.csv")
    rows = json.loads((tmp_path / "inline" / "results.json").read_text())
    assert sorted(r.get("stacked") for r in rows if r["kind"] == "ae") == [2] * 10
    alone = {(r["phase"], r["dataset"], r["l2"], r["l1"], str(r["noise_var"])): r
             for r in json.loads((tmp_path / "plain" / "results.json").read_text())}
    for r in rows:
        if r["kind"] == "ae":
            twin = alone[(r["phase"], r["dataset"], r["l2"], r["l1"], str(r["noise_var"]))]
            assert r["psnr"] == pytest.approx(twin["psnr"], abs=0.02) and r["psnr"] != twin["psnr"]
    # a lost result of one model of a stack: its stack trains again, whole, and gives it back to the bit
    lost = next(r for r in rows if r["phase"] == "l1" and r["dataset"] == "fashion-mnist")
    trial = tmp_path / "inline" / "trials" / lost["id"]
    (trial / "result.json").unlink()
    for f in (trial / "run").iterdir():
        f.unlink()
    run_study(stacked, tmp_path / "inline", data_dir=data_dir, workers=1, progress=False)
    assert _rows(tmp_path / "inline" / "results.csv") == _rows(tmp_path / "pool" / "results.csv")


# ---- the quick study end to end ----------------------------------------------------------

def test_the_quick_study_writes_every_trial_and_its_results(quick_study):
    c = preset("quick")
    summary = json.loads((quick_study / "summary.json").read_text())
    assert summary["trials_done"] == summary["trials_total"] == count_trials(c)
    assert summary["failed"] == []
    rows = json.loads((quick_study / "results.json").read_text())
    grid = [r for r in rows if r["phase"] == "grid"]
    assert len(grid) == len(c.datasets) * len(c.depths) * len(c.latents) * c.seeds
    for r in rows:
        assert 5 < r["psnr"] < 60 and r["psnr"] >= r["psnr_dataset"] - 1e-9
    for dataset in c.datasets:  # the architecture with the best mean validation psnr over the seeds
        arms: dict = {}
        for r in grid:
            if r["dataset"] == dataset:
                arms.setdefault((r["depth"], r["latent"]), []).append(r)
        best = max(arms.values(), key=lambda arm: sum(r["val_psnr"] for r in arm) / len(arm))
        assert len(best) == c.seeds and summary["choices"][dataset]["grid"]["ids"] == [r["id"] for r in best]
        regs = [r for r in rows if r["dataset"] == dataset and r["phase"] in ("l2", "l1", "l2+l1")]
        assert {(r["depth"], r["latent"]) for r in regs} == {(best[0]["depth"], best[0]["latent"])}
    den = json.loads((quick_study / "denoising.json").read_text())
    methods = {r["method"] for r in den}
    assert {"noisy", "linear", "dae", "dae-blind", "ae"} <= methods
    for r in den:
        if r["method"] == "linear":
            noisy = next(x for x in den if x["method"] == "noisy" and x["dataset"] == r["dataset"]
                         and x["noise_var"] == r["noise_var"])
            assert r["psnr"] > noisy["psnr"] + 3
    assert (quick_study / "report.html").is_file()


def test_every_trial_of_the_quick_study_says_when_and_where_it_ran(quick_study):
    from autoenc.study.executors import default_workers

    start = json.loads((quick_study / "summary.json").read_text())["started_at"]
    results = [json.loads(p.read_text()) for p in quick_study.glob("trials/*/result.json")]
    assert len(results) == count_trials(preset("quick"))
    for r in results:
        assert start <= r["started_at"] <= r["finished_at"] <= time.time(), r["id"]
        assert (r["trained_at"] is not None) == (r["kind"] == "ae")
        if r["kind"] == "ae":
            assert r["started_at"] < r["trained_at"] <= r["finished_at"]
            assert r["trained_at"] - r["started_at"] >= r["seconds"] - 0.01  # the epochs happened in between
    # one trial at a time per worker, and every worker of the pool had trials
    by_worker: dict[str, list] = {}
    for r in results:
        by_worker.setdefault(r["worker"], []).append((r["started_at"], r["finished_at"]))
    if not torch.cuda.is_available():  # (on a GPU the CPU-only trials have a pool of their own)
        assert len(by_worker) == default_workers(preset("quick").threads, on_gpu=False)
    for spans in by_worker.values():
        spans.sort()
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))


def test_rerunning_a_finished_study_trains_nothing(quick_study, data_dir, tmp_path):
    study = tmp_path / "quick"
    shutil.copytree(quick_study, study)  # copy2: the files keep their times
    before = {p: p.stat().st_mtime_ns for p in study.glob("trials/*/result.json")}
    first = json.loads((study / "summary.json").read_text())
    summary = run_study(quick_config(), study, data_dir=data_dir, progress=False)
    assert {p: p.stat().st_mtime_ns for p in study.glob("trials/*/result.json")} == before
    # the wall time adds up over runs (the summaries written during a run keep the earlier total)
    assert summary["wall_seconds_total"] == pytest.approx(first["wall_seconds_total"] + summary["wall_seconds"], abs=0.11)
    # the report's timeline keeps showing the run that trained them
    assert json.loads((study / "summary.json").read_text())["started_at"] == first["started_at"]


def test_damaged_summary_or_trial_results_are_rewritten_not_a_traceback(data_dir, tmp_path):
    """summary.json cut short or not an object, a result.json that is JSON but not an object: the
    rerun and `autoenc report` take them as not written (the trial runs again, the summary is
    rewritten) instead of stopping with a JSONDecodeError or AttributeError."""
    from autoenc.report.sections import write_report

    spec = {"name": "tiny", "datasets": ["mnist"], "depths": [3], "latents": [15], "epochs": 1, "l2": [], "l1": [],
            "combined": False, "pca": False, "subset": {"train": 600, "val": 200, "test": 200}, "denoising": None,
            "workers": 1, **ONE_SEED}
    config = study_from_dict(spec)
    first = run_study(config, tmp_path, data_dir=data_dir, progress=False)
    (result,) = tmp_path.glob("trials/*/result.json")
    for summary in ('{"trials_total": 1, "tri', "[1]"):
        (tmp_path / "summary.json").write_text(summary)
        result.write_text("[]")
        write_report(tmp_path)
        again = run_study(config, tmp_path, data_dir=data_dir, progress=False)
        assert again["trials_done"] == 1 and [r["psnr"] for r in again["rows"]] == [r["psnr"] for r in first["rows"]]
        assert json.loads(result.read_text())["psnr"] == first["rows"][0]["psnr"]


@pytest.mark.slow
def test_on_a_gpu_machine_cpu_trials_get_their_own_pool_and_the_same_numbers(data_dir, tmp_path, monkeypatch):
    import autoenc.study.executors as executors
    import autoenc.study.planner as study
    import autoenc.study.runner as runner

    config = study_from_dict({
        "name": "gpu-side", "datasets": ["mnist"], "depths": [3], "latents": [15], "epochs": 2, "gpu_epochs": 2,
        "l2": [], "l1": [], "stack": 1, "subset": {"train": 2000, "val": 500, "test": 500}, **ONE_SEED,
        "denoising": {"variances": [0.04], "blind": None, "baselines": ["noisy", "gaussian"], "subset": 50,
                      "epochs": 2, "gpu_epochs": 2}})
    inline = run_study(config, tmp_path / "inline", data_dir=data_dir, workers=1, progress=False)

    made = []

    def recording(*args, **kwargs):
        made.append(make(*args, **kwargs))
        return made[-1]

    make = executors.make_executor
    monkeypatch.setattr(runner, "make_executor", recording)
    monkeypatch.setattr(study, "on_gpu", lambda c: True)
    monkeypatch.setattr(runner, "on_gpu", lambda c: True)  # as on a GPU machine; the trials still train on the CPU
    monkeypatch.setattr(executors, "_cores", lambda: 3)
    monkeypatch.setattr(executors, "_memory_gib", lambda: 64)
    assert executors.default_workers(1, True) == 3 and executors.cpu_workers(1, True) == 3  # 3 trainers, 3 beside
    gpu = run_study(config, tmp_path / "gpu", data_dir=data_dir, progress=False)
    assert made[0].submitted == {"main": 2, "cpu": 3}  # grid + denoiser | PCA + 2 baselines
    assert executors.cpu_workers(1, False) == 0  # on a CPU machine one pool runs everything
    assert _rows(tmp_path / "gpu" / "results.csv") == _rows(tmp_path / "inline" / "results.csv")
    assert _rows(tmp_path / "gpu" / "denoising.csv") == _rows(tmp_path / "inline" / "denoising.csv")
    assert gpu["trials_done"] == inline["trials_done"] == 5


def test_cpu_only_trials_beside_gpu_trainers_get_every_core_at_the_lowest_priority(tmp_path, monkeypatch):
    import autoenc.study.executors as executors

    monkeypatch.setattr(executors, "_cores", lambda: 16)
    monkeypatch.setattr(executors, "_memory_gib", lambda: 128)
    assert executors.cpu_workers(1, True) == 16 and executors.cpu_workers(2, True) == 8
    monkeypatch.setattr(executors, "_memory_gib", lambda: 15)  # a laptop: one per 2 GiB
    assert executors.cpu_workers(1, True) == 7
    pool = executors.LocalPoolExecutor(tmp_path, None, workers=1, threads=1, cpu_workers=1)
    try:
        mine = os.nice(0)
        assert pool._pool.submit(os.nice, 0).result(timeout=60) == mine  # the trainers keep this priority
        assert pool._cpu_pool.submit(os.nice, 0).result(timeout=60) == min(19, mine + executors.CPU_POOL_NICE)
    finally:
        pool.shutdown()


def test_pool_workers_send_each_epochs_progress_to_the_driver(data_dir, tmp_path):
    """The progress bars of `autoenc study` read the workers' per-epoch messages from the pool's
    queue: one (trial id, epoch, epochs, val psnr) per epoch of a trial run in a worker."""
    import autoenc.study.executors as executors

    spec = {"name": "tiny", "datasets": ["mnist"], "depths": [3], "latents": [15], "epochs": 2, "l2": [], "l1": [],
            "combined": False, "pca": False, "subset": {"train": 600, "val": 200, "test": 200}, "denoising": None}
    trial = next(t for t in plan(study_from_dict(spec), {}) if t.kind == "ae").to_dict()
    pool = executors.LocalPoolExecutor(tmp_path, data_dir, workers=1, threads=1)
    try:
        row = pool.submit(trial).result(timeout=120)
        events, deadline = [], time.time() + 10
        while len(events) < 2 and time.time() < deadline:
            events += executors.drain(pool.events)
            time.sleep(0.05)
    finally:
        pool.shutdown()
    assert [(e[0], e[1], e[2]) for e in events] == [(trial["id"], 1, 2), (trial["id"], 2, 2)]
    assert events[-1][3] == pytest.approx(json.loads((tmp_path / "trials" / trial["id"] / "run" / "history.jsonl")
                                                     .read_text().splitlines()[-1])["val_psnr"])
    assert row["status"] == "ok"


def test_pool_workers_end_when_their_driver_is_killed_alone(tmp_path):
    """`kill -9` (or the OOM killer) on the study process alone, not its group: its workers end
    within seconds instead of finishing their trials beside a rerun's and then waiting forever."""
    driver = ("import os, sys, time; from autoenc.study.executors import LocalPoolExecutor; "
              "pool = LocalPoolExecutor(sys.argv[1], None, workers=2, threads=1); "
              "print(*{pool._pool.submit(time.sleep, 0.5) and pool._pool.submit(os.getpid).result(timeout=120) "
              "for _ in range(4)}, flush=True); time.sleep(300)")
    proc = subprocess.Popen([sys.executable, "-c", driver, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    workers = [int(w) for w in proc.stdout.readline().split()]
    assert workers
    proc.kill()
    proc.wait()
    deadline = time.time() + 20

    def alive(pid: int) -> bool:
        stat = Path(f"/proc/{pid}/stat")
        try:
            return stat.read_text().split()[2] != "Z"
        except OSError:
            return False
    while any(alive(w) for w in workers) and time.time() < deadline:
        time.sleep(0.2)
    left = [w for w in workers if alive(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, "pool workers outlived their killed driver"


# every phase of the lab (grid, the penalty model and its penalties, per-level and blind denoisers,
# baselines, PCA) with two seeds, in seconds per trial
MINI_LAB = {"name": "mini", "datasets": ["mnist"], "depths": [3], "latents": [15], "epochs": 2,
            "l2": [1e-5], "l1": [1e-4], "seeds": 2, "subset": {"train": 2000, "val": 300, "test": 300},
            "denoising": {"variances": [0.04], "blind": [0.04, 0.16], "baselines": ["noisy", "linear"],
                          "subset": 30, "epochs": 2}}


def _study_cmd(conf: Path, out: Path, data_dir: Path) -> list[str]:
    return python_with_checksums() + ["study", "--config-dir", str(conf), "study=mini", f"hydra.run.dir={out}",
                                      f"data_dir={data_dir}"]


@pytest.mark.slow
def test_a_study_killed_with_sigkill_resumes_to_the_same_results(data_dir, tmp_path):
    conf = study_files(tmp_path / "conf", MINI_LAB)
    reference = tmp_path / "reference"
    done = subprocess.run(_study_cmd(conf, reference, data_dir), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / "killed"
    total = json.loads((reference / "summary.json").read_text())["trials_total"]
    stop_after = random.Random().randint(1, total - 2)
    print(f"killing the study after {stop_after} of {total} finished trials")
    proc = subprocess.Popen(_study_cmd(conf, out, data_dir), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while len(list(out.glob("trials/*/result.json"))) < stop_after and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "results.csv").exists() or len(_rows(out / "results.csv")) < len(_rows(reference / "results.csv"))
    done = subprocess.run(_study_cmd(conf, out, data_dir), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _rows(out / "results.csv") == _rows(reference / "results.csv")
    assert _rows(out / "denoising.csv") == _rows(reference / "denoising.csv")


@pytest.mark.parametrize("signum, status, words, gap", [
    (signal.SIGINT, 130, "interrupted", None),
    (signal.SIGTERM, 143, "terminated (SIGTERM)", None),
    (signal.SIGINT, 130, "interrupted", 0.3),  # Ctrl-C pressed twice
    (signal.SIGTERM, 143, "terminated (SIGTERM)", 0.0),  # `timeout`: the process, then its process group
])
@pytest.mark.slow
def test_ctrl_c_or_sigterm_stops_cleanly_and_says_how_to_resume(data_dir, tmp_path, signum, status, words, gap):
    """Ctrl-C, or a batch scheduler's SIGTERM, sent to the whole process group as a terminal or a
    scheduler does, once or twice: the workers stop, finished trials stay, the run's wall time
    counts in the study's total, no traceback."""
    out = tmp_path / "interrupted"
    launched = time.perf_counter()
    proc = subprocess.Popen(_study_cmd(study_files(tmp_path / "conf", MINI_LAB), out, data_dir),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while not list(out.glob("trials/*/run/history.jsonl")) and time.time() < deadline:
        time.sleep(0.05)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    workers = [int(p) for p in children.read_text().split()] if children.exists() else []
    os.killpg(proc.pid, signum)
    if gap is not None:
        time.sleep(gap)
        os.killpg(proc.pid, signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status, err[-2000:]
    time.sleep(1)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()
                and Path(f"/proc/{w}/stat").read_text().split()[2] != "Z"], "worker processes left running"
    assert f"{words}: finished trials are saved in" in err and "rerun the same command to resume" in err
    assert "Traceback" not in err and "leaked semaphore" not in err and "Aborted" not in err
    summary = json.loads((out / "summary.json").read_text())
    assert 0.5 < summary["wall_seconds"] < time.perf_counter() - launched  # this run, up to the stop
    assert summary["wall_seconds_total"] == summary["wall_seconds"]  # the first run: the total is its time


def test_a_second_study_into_a_running_studys_folder_is_refused_until_the_first_ends(tmp_path, capsys, data_dir):
    """Two `autoenc study` into one folder trained the same trials twice, side by side; now the second
    is refused naming the process that holds the folder, and a killed holder frees it."""
    from autoenc.cli import main
    from autoenc.study import study_lock

    out = tmp_path / "study"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from autoenc.study import study_lock; cm = study_lock(Path(sys.argv[1])); "
                               "cm.__enter__(); print('held', flush=True); time.sleep(600)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit) as stop:
            main(["study", "study=quick", f"hydra.run.dir={out}", f"data_dir={data_dir}"])
        assert stop.value.code == 2
        assert f"another study is running in {out} (pid {holder.pid} on " in capsys.readouterr().out
        assert not (out / "study.yaml").exists()  # refused before writing anything
    finally:
        holder.kill()
        holder.wait()
    with study_lock(out):  # the killed holder's lock ended with it
        assert (out / ".lock").read_text().startswith(f"pid {os.getpid()} on ")
