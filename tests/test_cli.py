"""The command line's own behaviour: what each printed psnr is on, the noise forms each command takes,
`autoenc denoise`'s progress and its subset column, the study's help and per-trial lines."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from autoenc import data
from autoenc.evaluation import baselines, noise
from autoenc.cli import main
from autoenc.evaluation.metrics import psnr, psnr_dataset, reconstruct
from autoenc.runs import load_run

SCORE = r"test psnr (\d+\.\d\d) dB on (.+), psnr_dataset (\d+\.\d\d) dB, ssim (\d\.\d{4})"


def _train(data_dir: Path, out: Path, *extra: str, quiet: bool = True):
    args = ["train", "--dataset", "mnist", "--latent", "15", "--epochs", "1", "--threads", "1",
            "--data-dir", str(data_dir), "--out", str(out), *extra] + (["--quiet"] if quiet else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A per-level denoiser (sigma^2 0.09, trained without --quiet: its epoch lines logged), a blind one
    (0.04:0.16) and a plain autoencoder, each trained by `autoenc train` for one epoch: folder and output."""
    root = tmp_path_factory.mktemp("cli-runs")
    return {"level": (root / "level", _train(data_dir, root / "level", "--noise-var", "0.09", quiet=False)),
            "blind": (root / "blind", _train(data_dir, root / "blind", "--noise-var", "0.04:0.16")),
            "plain": (root / "plain", _train(data_dir, root / "plain"))}


def _scores(stdout: str) -> list[tuple[str, float, float]]:
    """(what the score is on, psnr, psnr_dataset) of each score `autoenc train` printed, in order."""
    return [(m.group(2), float(m.group(1)), float(m.group(3))) for m in re.finditer(SCORE, stdout)]


def test_train_says_what_each_psnr_is_on_and_scores_both_kinds_of_denoiser_alike(trained, data_dir) -> None:
    """Every model: its score on clean inputs; a denoiser also on the fixed noisy test images at the
    noise it trained on (a blind one at each protocol level in its range), the same way for both kinds."""
    x_test, _ = data.load("mnist", "test", data_dir)
    for kind, levels in (("level", [0.09]), ("blind", [0.04, 0.09, 0.16]), ("plain", [])):
        out, result = trained[kind]
        lines = result.stdout.splitlines()
        assert lines[0].startswith(f"{out}: best epoch 1/1, ") and len(lines) == 1 + len(levels)
        assert all(line.startswith("  denoising: test psnr ") for line in lines[1:])
        scores = _scores(result.stdout)
        assert [on for on, _, _ in scores] == ["clean inputs"] + [noise.inputs_label(v) for v in levels]
        model = load_run(out)
        clean = reconstruct(model, x_test)
        assert scores[0][1:] == (round(psnr(clean, x_test), 2), round(psnr_dataset(clean, x_test), 2))
        for (_, p, _), v in zip(scores[1:], levels):
            assert p == round(psnr(reconstruct(model, noise.noisy_test_set(x_test, v)), x_test), 2)
        # metrics.json is `autoenc evaluate`'s, and its noise_var says what it is on
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["noise_var"] == (0.09 if kind == "level" else None)
        shown = dict((on, p) for on, p, _ in scores)[noise.inputs_label(metrics["noise_var"])]
        assert round(metrics["psnr"], 2) == shown


def test_a_denoisers_epoch_lines_say_the_val_psnr_is_on_noisy_inputs(trained) -> None:
    (line,) = trained["level"][1].stderr.splitlines()
    assert re.fullmatch(r"epoch 1/1: train loss \d\.\d{5}, val psnr \d+\.\d\d dB on noisy inputs "
                        r"sigma\^2=0\.09 \(sigma=0\.3\), \d+\.\d s", line), line


def test_evaluate_says_what_its_psnr_is_on(trained, data_dir) -> None:
    runner = CliRunner()
    for kind, args, on in (("level", [], "noisy inputs sigma^2=0.09 (sigma=0.3)"),
                           ("level", ["--noise-var", "0.16"], "noisy inputs sigma^2=0.16 (sigma=0.4)"),
                           ("blind", [], "clean inputs")):
        out = trained[kind][0]
        result = runner.invoke(main, ["evaluate", str(out), "--data-dir", str(data_dir), *args])
        assert result.exit_code == 0, result.output
        metrics = json.loads((out / "metrics.json").read_text())
        assert result.stdout.startswith(f"{out} on test, {on}: psnr {metrics['psnr']:.2f} dB, ")


def test_train_and_denoise_name_only_the_noise_forms_they_take(trained, data_dir) -> None:
    runner = CliRunner()
    train = runner.invoke(main, ["train", "--noise-var", "0.01,0.04", "--data-dir", str(data_dir)])
    assert train.exit_code == 2
    assert train.stderr.strip() == ("error: --noise-var '0.01,0.04' is a list of variances, which this command "
                                    "does not take; give a variance like 0.09 or a blind range like 0.01:0.25")
    bad = runner.invoke(main, ["train", "--noise-var", "x", "--data-dir", str(data_dir)])
    assert bad.exit_code == 2 and "list" not in bad.stderr and "blind range like 0.01:0.25" in bad.stderr
    run_dir = str(trained["level"][0])
    denoise = runner.invoke(main, ["denoise", run_dir, "--noise-var", "0.01:0.25", "--data-dir", str(data_dir)])
    assert denoise.exit_code == 2
    assert denoise.stderr.strip() == ("error: --noise-var '0.01:0.25' is a blind range, which this command does "
                                      "not take; give a variance like 0.09 or a comma list like 0.01,0.04,0.09")
    bad = runner.invoke(main, ["denoise", run_dir, "--noise-var", "x", "--data-dir", str(data_dir)])
    assert bad.exit_code == 2 and "range" not in bad.stderr and "comma list like" in bad.stderr


def test_denoise_logs_each_score_and_compares_every_method_on_the_subset(trained, data_dir, monkeypatch) -> None:
    """Without a terminal, a line per finished level and method (none with --quiet); the table says
    which rows are on the fixed subset only, and subset_psnr is every row's psnr on that subset."""
    # median stands in for bm3d (about 30 ms per image) as the method that runs on the subset only
    monkeypatch.setitem(baselines.METHOD_INFO, "median",
                        dataclasses.replace(baselines.METHOD_INFO["median"], uses_subset=True))
    out = trained["level"][0]
    args = ["denoise", str(out), "--noise-var", "0.04,0.09", "--baselines", "noisy,median", "--subset", "50",
            "--data-dir", str(data_dir)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    n = len(data.load("mnist", "test", data_dir)[0])
    lines = result.stderr.splitlines()
    expected = [(v, m) for v in ("0.04 (sigma=0.2)", "0.09 (sigma=0.3)") for m in ("this model", "noisy", "median")]
    assert len(lines) == len(expected)
    for k, (line, (v, m)) in enumerate(zip(lines, expected), 1):
        on = "the fixed subset of 50 test images" if m == "median" else f"{n:,} test images"
        assert re.fullmatch(rf"\[{k}/6\] sigma\^2={re.escape(v)} {m}: psnr \d+\.\d\d dB on {on}, \d+\.\d s", line), line

    rows = json.loads((out / "denoise.json").read_text())
    idx = baselines.subset_indices(n, 50)
    x_test, _ = data.load("mnist", "test", data_dir)
    for r in rows:
        assert r["subset_images"] == 50 and r["subset"] == (r["method"] == "median")
        if r["method"] == "noisy":
            noisy = noise.noisy_test_set(x_test, r["noise_var"])
            assert r["subset_psnr"] == pytest.approx(psnr(noisy[idx], x_test[idx]), abs=1e-9)
            assert r["psnr"] == pytest.approx(psnr(noisy, x_test), abs=1e-9)
        if r["method"] == "median":
            assert r["n_images"] == 50 and r["subset_psnr"] == r["psnr"]
    table = (out / "denoise.md").read_text()
    assert "| images | psnr | psnr_dataset | ssim | subset_psnr |" in table
    assert table.count("| 50 (subset) |") == 2 and table.count(f"| {n:,} |") == 4
    assert "subset_psnr: every row on the same fixed subset of 50 test images" in table

    quiet = CliRunner().invoke(main, args + ["--quiet"])
    assert quiet.exit_code == 0 and quiet.stderr == ""


def test_a_variance_above_the_protocols_levels_gets_a_note_in_case_it_was_meant_as_sigma(trained, data_dir) -> None:
    """--noise-var 0.3 is accepted as the variance it is, with a note saying so and what sigma 0.3
    would be (0.09); within the protocol's levels, no note."""
    assert noise.sigma_hint(0.3) == ("note: --noise-var 0.3 is the variance sigma^2 (sigma = 0.548), above the "
                                     "protocol's levels (up to 0.25, sigma 0.5); for sigma = 0.3 give 0.09")
    assert noise.sigma_hint((0.01, 0.4)).startswith("note: --noise-var 0.4 is the variance")
    assert noise.sigma_hint([0.01, 0.25]) is None and noise.sigma_hint(None) is None
    run_dir = str(trained["level"][0])
    result = CliRunner().invoke(main, ["denoise", run_dir, "--noise-var", "0.04,0.3", "--baselines", "none",
                                       "--data-dir", str(data_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("note: --noise-var 0.3 is the variance sigma^2 (sigma = 0.548)")


def test_evaluate_noise_var_0_scores_a_denoiser_on_clean_inputs(trained, data_dir) -> None:
    """A per-level denoiser is scored at its own variance by default; --noise-var 0 scores it on
    clean inputs (it was labelled "noisy inputs sigma^2=0"), and a variance outside [0, 1] is refused."""
    out = trained["level"][0]
    result = CliRunner().invoke(main, ["evaluate", str(out), "--noise-var", "0", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert ", clean inputs: psnr" in result.output and "sigma^2=0" not in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    x_test, _ = data.load("mnist", "test", data_dir)
    assert metrics["noise_var"] is None
    assert metrics["psnr"] == pytest.approx(psnr(reconstruct(load_run(out), x_test), x_test), abs=1e-6)
    bad = CliRunner().invoke(main, ["evaluate", str(out), "--noise-var", "-0.1", "--data-dir", str(data_dir)])
    assert bad.exit_code == 2 and "noise_var -0.1 is not allowed" in bad.stderr


def test_denoise_fits_the_pca_baseline_once_for_every_level(trained, data_dir, monkeypatch) -> None:
    """The PCA projection baseline is fitted on the training split once, not once per level, and
    scores what a fit of its own at each level scores."""
    fits = []
    monkeypatch.setattr(baselines, "fit_pca", lambda *a, _fit=baselines.fit_pca: fits.append(a[1]) or _fit(*a))
    out = trained["plain"][0]
    result = CliRunner().invoke(main, ["denoise", str(out), "--noise-var", "0.04,0.16", "--baselines", "pca",
                                       "--subset", "50", "--data-dir", str(data_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(fits) == 1
    rows = [r for r in json.loads((out / "denoise.json").read_text()) if r["method"] == "pca"]
    x_train, x_val, x_test = (data.load("mnist", split, data_dir)[0] for split in ("train", "val", "test"))
    for r in rows:
        alone = baselines.denoising_baselines(x_train, x_val, x_test, r["noise_var"], (28, 28), methods=["pca"],
                                              subset=50, with_ssim=False)[0]
        assert (r["param"], r["psnr"], r["subset_psnr"]) == (alone.param, alone.psnr, alone.subset_psnr)
    assert len(rows) == 2 and len(fits) == 3


def test_denoise_refuses_an_unknown_baseline_before_scoring_anything(trained, data_dir) -> None:
    out = trained["blind"][0]
    # a negative --seed too, as train refuses it (the test noise's seed; it was taken as given)
    result = CliRunner().invoke(main, ["denoise", str(out), "--seed", "-1", "--data-dir", str(data_dir)])
    assert result.exit_code == 2 and "Invalid value for '--seed': -1 is not in the range x>=0" in result.output
    # --subset 0 too (it was refused after the first level, in words for Python: "or None for all images")
    result = CliRunner().invoke(main, ["denoise", str(out), "--subset", "0", "--data-dir", str(data_dir)])
    assert result.exit_code == 2 and "Invalid value for '--subset': 0 is not in the range x>=1" in result.output
    assert not (out / "denoise.json").exists()
    result = CliRunner().invoke(main, ["denoise", str(out), "--baselines", "noisy,bm4d", "--data-dir", str(data_dir)])
    assert result.exit_code == 2 and result.stderr.startswith("error: unknown baseline 'bm4d'; choose from noisy, ")
    assert result.stderr.strip() == "error: unknown baseline 'bm4d'; choose from " + ", ".join(baselines.METHODS)
    assert not (out / "denoise.json").exists() and not list(out.glob("denoise_*.png"))
    # an empty item was dropped: "" and "," ran no baseline at all, without a word
    for methods, problem in (("", "is empty"), (",", "has an empty item"), ("noisy,,linear", "has an empty item")):
        result = CliRunner().invoke(main, ["denoise", str(out), "--baselines", methods, "--data-dir", str(data_dir)])
        assert result.exit_code == 2, result.output
        assert f"Invalid value for '--baselines': {methods!r} {problem}; give a comma list" in result.stderr
    assert not (out / "denoise.json").exists()


def test_the_study_help_gives_the_quick_presets_measured_time() -> None:
    result = CliRunner().invoke(main, ["study", "--help"])
    assert result.exit_code == 0
    assert "quick: under 2 minutes on 2 cores" in " ".join(result.output.split())


def test_the_denoise_help_names_the_default_baselines_and_every_choice() -> None:
    """`autoenc denoise --help` said neither which baselines run without --baselines nor which exist."""
    help_text = " ".join(CliRunner().invoke(main, ["denoise", "--help"]).output.split())
    assert "[default: noisy,linear]" in help_text
    assert all(m in help_text for m in baselines.METHODS)


def test_a_study_trial_line_says_what_a_denoisers_psnr_is_on() -> None:
    from autoenc.study import trial_line

    base = {"status": "ok", "wall_seconds": 9.14, "psnr": 20.071}
    levels = [{"noise_var": v, "psnr": p} for v, p in ((0.01, 26.1), (0.04, 23.404), (0.09, 21.0), (0.25, 17.9))]
    plain = {**base, "id": "a", "noise_var": None, "denoising": levels}
    assert trial_line(1, 48, plain) == "[1/48] a ok: psnr 20.07 dB, 9.1 s"
    level = {**base, "id": "mnist-w512-256-L100-noise0.04", "noise_var": 0.04, "denoising": levels}
    assert trial_line(13, 48, level) == ("[13/48] mnist-w512-256-L100-noise0.04 ok: psnr 20.07 dB (clean inputs), "
                                         "denoising psnr 23.40 dB at sigma^2=0.04, 9.1 s")
    blind = {**base, "id": "b", "noise_var": [0.04, 0.09], "denoising": levels}
    assert trial_line(14, 48, blind) == ("[14/48] b ok: psnr 20.07 dB (clean inputs), "
                                         "denoising psnr 21.00-23.40 dB at sigma^2 0.04-0.09, 9.1 s")
    # the levels scored, not the training range: a blind [0.02, 0.2] one is scored at 0.04 and 0.09 here
    wide = {**blind, "noise_var": [0.02, 0.2]}
    assert trial_line(14, 48, wide).endswith("denoising psnr 21.00-23.40 dB at sigma^2 0.04-0.09, 9.1 s")
    one = {**blind, "noise_var": [0.02, 0.05]}  # one level inside: shown as that level's
    assert trial_line(14, 48, one).endswith("denoising psnr 23.40 dB at sigma^2=0.04, 9.1 s")
    method = {"id": "c", "status": "ok", "wall_seconds": 0.44, "noise_var": 0.04,
              "rows": [{"method": "noisy", "psnr": 16.734, "n_images": 10000, "subset": False}]}
    assert trial_line(20, 48, method) == "[20/48] c ok: denoising psnr 16.73 dB at sigma^2=0.04, 0.4 s"
    bm3d = {**method, "rows": [{"method": "bm3d", "psnr": 22.1, "n_images": 1000, "subset": True}]}
    assert trial_line(21, 48, bm3d) == ("[21/48] c ok: denoising psnr 22.10 dB at sigma^2=0.04 on the fixed subset "
                                        "of 1,000 test images, 0.4 s")


def test_study_refuses_workers_below_one(monkeypatch) -> None:
    """--workers 0 (or -2) is refused by name, as the study file's `workers: 0` is; it used to run the
    study one trial at a time as if no --workers had been given."""
    import autoenc.study as study_mod

    ran = []
    monkeypatch.setattr(study_mod, "run_study", lambda *a, **k: ran.append(k) or {
        "failed": [], "trials_done": 0, "trials_total": 0})
    for value in ("0", "-2"):
        result = CliRunner().invoke(main, ["study", "--preset", "quick", "--out", "unused", "--workers", value])
        assert result.exit_code == 2 and "--workers" in result.output, result.output
    assert ran == []


def test_study_refuses_ray_options_without_the_ray_executor(monkeypatch) -> None:
    """--gpus-per-trial, --cpus-per-trial and --address are Ray's (docs/ray.md); without --executor ray
    they were silently ignored (a study given --gpus-per-trial 1 ran as if it had not been)."""
    import autoenc.study as study_mod

    ran = []
    monkeypatch.setattr(study_mod, "run_study", lambda *a, **k: ran.append(k) or {
        "failed": [], "trials_done": 0, "trials_total": 0})
    for extra in (["--gpus-per-trial", "1"], ["--cpus-per-trial", "2"], ["--address", "auto"]):
        result = CliRunner().invoke(main, ["study", "--preset", "quick", "--out", "unused", *extra])
        assert result.exit_code == 2 and extra[0] in result.output and "--executor ray" in result.output, result.output
    assert ran == []


def test_study_refuses_workers_with_the_ray_executor(monkeypatch) -> None:
    """Ray places trials by --cpus-per-trial / --gpus-per-trial; --workers with --executor ray was
    silently ignored (--workers 1 still ran a trial per CPU)."""
    import autoenc.study as study_mod

    ran = []
    monkeypatch.setattr(study_mod, "run_study", lambda *a, **k: ran.append(k) or {
        "failed": [], "trials_done": 0, "trials_total": 0})
    result = CliRunner().invoke(main, ["study", "--preset", "quick", "--out", "unused", "--executor", "ray",
                                       "--workers", "1"])
    assert result.exit_code == 2 and "--workers" in result.output and "--cpus-per-trial" in result.output, \
        result.output
    assert ran == []


def test_an_out_folder_the_file_system_refuses_is_one_line_naming_the_path(data_dir, tmp_path) -> None:
    """--out under a file (as a read-only folder or a full disk would): one error line naming the
    path and what to check, not an OSError traceback from pathlib."""
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "run"
    result = CliRunner().invoke(main, ["train", "--epochs", "1", "--out", str(out), "--data-dir", str(data_dir),
                                       "--quiet"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: cannot use {out}: Not a directory; check that the path (--out")
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_evaluate_on_a_study_or_trial_folder_points_at_the_run_folder_inside(tmp_path) -> None:
    """`autoenc evaluate STUDY_DIR` used to advise `autoenc train --out STUDY_DIR`, a run written into
    the study's folder; it names what the folder is and where its run folders are."""
    study = tmp_path / "study"
    (study / "trials" / "t1" / "run").mkdir(parents=True)
    (study / "study.yaml").write_text("name: x\n")
    (study / "trials" / "t1" / "run" / "config.json").write_text("{}")
    (study / "trials" / "p1").mkdir()
    (study / "trials" / "p1" / "result.json").write_text("{}")
    for folder, words in ((study, f"it is a study folder: its autoencoders' run folders are {study}/trials/"),
                          (study / "trials" / "t1", f"its run folder is {study}/trials/t1/run"),
                          (study / "trials" / "p1", "a study trial without a model")):
        result = CliRunner().invoke(main, ["evaluate", str(folder)])
        assert result.exit_code == 2 and words in result.stderr and "autoenc train --out" not in result.stderr


def test_ctrl_c_during_train_says_how_to_resume(data_dir, tmp_path, monkeypatch) -> None:
    """As `autoenc study` does: exit status 130 and how to resume, not click's bare "Aborted!"."""
    from autoenc import runs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "train_run", interrupted)
    result = CliRunner().invoke(main, ["train", "--epochs", "1", "--out", str(tmp_path / "run"), "--data-dir",
                                       str(data_dir), "--quiet"])
    assert result.exit_code == 130
    assert "interrupted: rerun the same command to resume from the last checkpoint in" in result.stderr
    assert "Aborted" not in result.output


def test_rerunning_a_budget_seconds_training_keeps_its_measured_epochs(data_dir, tmp_path, monkeypatch) -> None:
    """--budget-seconds measures the epochs that fit; timing varies, so the rerun of the same command
    (to resume an interrupted run, or on a finished one) measured other epochs, a configuration the
    folder's checkpoint or run did not match: it keeps the epochs recorded in the folder."""
    import autoenc.cli as cli
    from autoenc.model import ModelConfig
    from autoenc.runs import recorded_epochs
    from autoenc.training.loop import TrainConfig, fit

    measured = iter([1, 2])
    monkeypatch.setattr(cli, "budget_epochs", lambda *args: next(measured))
    out = tmp_path / "run"
    args = ["train", "--latent", "15", "--budget-seconds", "5", "--threads", "1", "--out", str(out),
            "--data-dir", str(data_dir), "--quiet"]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0, again.output
    assert "1 epochs, as measured when" in again.stdout and again.stdout.splitlines()[-1] == first.stdout.splitlines()[-1]

    from interrupt import Stop, stop_after
    x, _ = data.load("mnist", "train", data_dir)
    ckpt = tmp_path / "stopped" / "checkpoint.safetensors"
    ckpt.parent.mkdir()
    with pytest.raises(Stop):
        fit(ModelConfig.preset(3, 15), x[:300], x[300:400], TrainConfig(epochs=3, threads=1), progress=False,
            checkpoint_path=ckpt, checkpoint_seconds=0, on_epoch=stop_after(1))
    assert recorded_epochs(ckpt.parent) == 3 and recorded_epochs(tmp_path / "none") is None


@pytest.mark.parametrize("args", [["train", "--epochs", "1", "--out", ""], ["study", "--preset", "quick", "--out", " "],
                                  ["data", "fetch", "mnist", "--dest", ""], ["data", "check", "--data-dir", ""]])
def test_an_empty_folder_option_is_refused_not_taken_as_the_current_folder(args, tmp_path, monkeypatch) -> None:
    """Path("") is "."; `autoenc train --out ""` (an unset shell variable) wrote config.json, model.safetensors,
    metrics.json, ... into the current folder."""
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{args[-2]}'" in result.stderr and "is empty; give a folder" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_train_refuses_an_empty_noise_var_not_trains_a_plain_autoencoder(data_dir, tmp_path) -> None:
    """`--noise-var ""` (an unset shell variable) trained and scored a plain autoencoder without a word."""
    result = CliRunner().invoke(main, ["train", "--epochs", "1", "--noise-var", "", "--out", str(tmp_path / "run"),
                                       "--data-dir", str(data_dir), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "--noise-var '' is empty; give a variance like 0.09 or a blind range like 0.01:0.25" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, error", [
    (["--widths", ""], "Invalid value for '--widths': '': give hidden widths as whole numbers"),
    (["--widths", "512,,128"], "Invalid value for '--widths': '512,,128': give hidden widths as whole numbers"),
    (["--widths", "64", "--depth", "5"], "give --depth (a preset) or --widths (explicit hidden widths), not both"),
    (["--depth", "3", "--widths", "64"], "give --depth (a preset) or --widths (explicit hidden widths), not both")])
def test_train_refuses_an_empty_or_malformed_widths_and_widths_beside_depth(args, error, data_dir, tmp_path) -> None:
    """`--widths ""` trained the depth-3 preset, `--widths 64 --depth 5` a one-layer model, both without a word;
    a malformed list's error did not name --widths."""
    result = CliRunner().invoke(main, ["train", "--epochs", "1", *args, "--out", str(tmp_path / "run"),
                                       "--data-dir", str(data_dir), "--quiet"])
    assert result.exit_code == 2, result.output
    assert error in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_training_refused_before_its_first_epoch_leaves_no_empty_run_folder(data_dir, tmp_path, monkeypatch) -> None:
    """A setting `fit` refuses (here AUTOENC_CHECKPOINT_SECONDS; also --device cuda without a GPU) left the
    --out folder made, empty, behind; one that existed before stays."""
    monkeypatch.setenv("AUTOENC_CHECKPOINT_SECONDS", "-1")
    for out in (tmp_path / "new" / "run", tmp_path / "existing"):
        (tmp_path / "existing").mkdir(exist_ok=True)
        result = CliRunner().invoke(main, ["train", "--epochs", "1", "--threads", "1", "--out", str(out),
                                           "--data-dir", str(data_dir), "--quiet"])
        assert result.exit_code == 2, result.output
        assert "AUTOENC_CHECKPOINT_SECONDS is '-1'" in result.stderr
    assert not (tmp_path / "new" / "run").exists() and (tmp_path / "existing").is_dir()


def test_autoenc_data_dir_naming_a_file_is_named_in_the_error(tmp_path, monkeypatch) -> None:
    """It said "Invalid value for '--data-dir'", an option the user had not given."""
    (tmp_path / "data.gz").write_bytes(b"")
    monkeypatch.setenv("AUTOENC_DATA_DIR", str(tmp_path / "data.gz"))
    result = CliRunner().invoke(main, ["data", "check"])
    assert result.exit_code == 2, result.output
    assert f"Invalid value for AUTOENC_DATA_DIR: '{tmp_path / 'data.gz'}' is a file; set it to a folder" in result.stderr
    result = CliRunner().invoke(main, ["data", "check", "--data-dir", str(tmp_path / "data.gz")])
    assert result.exit_code == 2 and "Invalid value for '--data-dir'" in result.stderr
