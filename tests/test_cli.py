"""The command line: Hydra's train (a run, a sweep, their folders, resume, refusals), compare,
evaluate, denoise, data; what each printed psnr is on."""
from __future__ import annotations

import dataclasses
import json
import re
import sys
from pathlib import Path

import pytest

from autoenc import data
from autoenc.cli import main
from autoenc.evaluation import baselines, noise
from autoenc.evaluation.metrics import psnr, psnr_dataset, reconstruct
from autoenc.runs import load_run

TINY = ["dataset.train_images=1500", "dataset.val_images=300", "dataset.test_images=300", "trainer.epochs=1",
        "trainer.threads=1"]
SCORE = r"test psnr (\d+\.\d\d) dB on (.+?), psnr_dataset (\d+\.\d\d) dB, ssim (\d\.\d{4})"


@dataclasses.dataclass
class Result:
    code: int
    out: str
    err: str


def autoenc(capsys, *args: str) -> Result:
    """Run `autoenc ARGS` in this process: its exit status and what it printed."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def train(cwd: Path, data_dir: Path, *overrides: str) -> Path:
    """`autoenc train TINY OVERRIDES` in `cwd`; the run folder it made."""
    import os

    before = os.getcwd()
    os.chdir(cwd)
    try:
        with pytest.raises(SystemExit) as stop:
            main(["train", *TINY, f"data_dir={data_dir}", *overrides])
    finally:
        os.chdir(before)
    assert stop.value.code == 0
    (folder,) = [p for p in (cwd / "outputs").iterdir() if (p / ".hydra" / "overrides.yaml").read_text().strip()
                 == "\n".join(f"- {o}" for o in [*TINY, f"data_dir={data_dir}", *overrides])]
    return folder


@pytest.fixture(scope="module")
def trained(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A per-level denoiser (sigma^2 0.09), a blind one (0.04..0.16) and a plain autoencoder, each
    trained by `autoenc train` for one epoch on a small subset: their run folders."""
    root = tmp_path_factory.mktemp("cli-runs")
    return {"level": train(root, data_dir, "latent=15", "noise=gaussian", "noise.var=0.09"),
            "blind": train(root, data_dir, "latent=15", "noise=blind", "noise.range=[0.04,0.16]"),
            "plain": train(root, data_dir, "latent=15")}


def _scores(text: str) -> list[tuple[str, float, float]]:
    """(what the score is on, psnr, psnr_dataset) of each score printed, in order."""
    return [(m.group(2), float(m.group(1)), float(m.group(3))) for m in re.finditer(SCORE, text)]


# ---- one run: its folder, its scores, resume and reuse -------------------------------------------

def test_a_run_folder_holds_hydras_files_the_model_its_metrics_and_figures(trained) -> None:
    folder = trained["plain"]
    assert re.fullmatch(r"mnist-deep3-L15-s0-[0-9a-f]{6}", folder.name)
    assert re.fullmatch(r"mnist-deep3-L15-noise0\.09-s0-[0-9a-f]{6}", trained["level"].name)
    assert re.fullmatch(r"mnist-deep3-L15-blind0\.04_0\.16-s0-[0-9a-f]{6}", trained["blind"].name)
    names = {p.name for p in folder.iterdir()}
    assert {".hydra", "train.log", "config.json", "model.safetensors", "history.jsonl", "metrics.json", "grid.png",
            "curves.png"} <= names and "checkpoint.safetensors" not in names
    assert {p.name for p in (folder / ".hydra").iterdir()} == {"config.yaml", "overrides.yaml", "hydra.yaml"}
    metrics = json.loads((folder / "metrics.json").read_text())
    assert {"psnr", "psnr_dataset", "ssim", "per_class_psnr", "code", "val_psnr", "epochs_run", "best_epoch",
            "train_seconds", "parameters", "n_images"} <= set(metrics)
    assert metrics["n_images"] == 300 and metrics["epochs_run"] == 1 and 5 < metrics["psnr"] < 40
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    assert metrics["val_psnr"] == history[0]["val_psnr"]
    log = (folder / "train.log").read_text()
    assert "epoch 1/1: train loss" in log and f"test psnr {metrics['psnr']:.2f} dB on clean inputs" in log
    # a denoiser: clean / noisy / denoised grids at each level it trained for
    assert {p.name for p in trained["blind"].glob("denoise_*.png")} == {"denoise_0.04.png", "denoise_0.09.png",
                                                                         "denoise_0.16.png"}


def test_train_says_what_each_psnr_is_on_and_scores_both_kinds_of_denoiser_alike(trained, data_dir) -> None:
    """Every model: its score on clean inputs (a per-level denoiser: on its noisy inputs, as
    metrics.json); a denoiser also at each level it trained for, on the fixed noisy test images."""
    x_test = data.load("mnist", "test", data_dir)[0][:300]
    for kind, levels in (("level", [0.09]), ("blind", [0.04, 0.09, 0.16]), ("plain", [])):
        folder = trained[kind]
        scores = _scores((folder / "train.log").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        assert [on for on, _, _ in scores] == [noise.inputs_label(metrics["noise_var"])] + \
            [noise.inputs_label(v) for v in levels]
        assert metrics["noise_var"] == (0.09 if kind == "level" else None)
        model = load_run(folder)
        x_in = x_test if metrics["noise_var"] is None else noise.noisy_test_set(x_test, metrics["noise_var"])
        out = reconstruct(model, x_in)
        assert scores[0][1:] == (round(psnr(out, x_test), 2), round(psnr_dataset(out, x_test), 2))
        for (_, p, _), v in zip(scores[1:], levels):
            assert p == round(psnr(reconstruct(model, noise.noisy_test_set(x_test, v)), x_test), 2)
        assert [d["noise_var"] for d in metrics.get("denoising", [])] == levels


def test_the_same_command_reuses_a_finished_run_and_says_so(trained, data_dir, capsys, monkeypatch) -> None:
    folder = trained["plain"]
    weights = (folder / "model.safetensors").stat().st_mtime_ns
    monkeypatch.chdir(folder.parent.parent)
    result = autoenc(capsys, "train", *TINY, f"data_dir={data_dir}", "latent=15")
    assert result.code == 0, result.err
    assert f"reusing the finished run {folder}" in result.out
    assert (folder / "model.safetensors").stat().st_mtime_ns == weights


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_to_the_same_numbers(data_dir, tmp_path) -> None:
    """kill -9 after an epoch, then the same command: it resumes and ends with the numbers of a run
    that was never interrupted."""
    import signal
    import subprocess
    import time

    from generated import python_with_checksums

    args = ["train", "dataset.train_images=1500", "dataset.val_images=300", "dataset.test_images=300",
            "trainer.epochs=4", "trainer.threads=1", "trainer.checkpoint_seconds=0", "latent=8", f"data_dir={data_dir}"]
    for where in ("killed", "whole"):
        (tmp_path / where).mkdir()
    proc = subprocess.Popen(python_with_checksums() + args, cwd=tmp_path / "killed", stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not list((tmp_path / "killed").glob("outputs/*/checkpoint.safetensors")) and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (folder,) = (tmp_path / "killed" / "outputs").iterdir()
    assert not (folder / "metrics.json").exists()
    for where in ("killed", "whole"):
        done = subprocess.run(python_with_checksums() + args, cwd=tmp_path / where, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    (whole,) = (tmp_path / "whole" / "outputs").iterdir()
    assert whole.name == folder.name
    metrics = [json.loads((f / "metrics.json").read_text()) for f in (folder, whole)]
    assert metrics[0]["psnr"] == metrics[1]["psnr"] and metrics[0]["epochs_run"] == 4


# ---- refused commands: one line, status 2, nothing written ---------------------------------------

@pytest.mark.parametrize("args, error", [
    (["model=deep7"], "model=deep7 is not a model config; choose one of custom, deep3, deep5"),
    (["trainer.epochs=abc"], "trainer.epochs=abc is not allowed: a whole number >= 1"),
    (["trainer.epochs=0"], "trainer.epochs=0 is not allowed: a whole number >= 1"),
    (["latent=0"], "latent=0 is not allowed: a whole number >= 1"),
    (["foo=1"], "foo is not a key of train; allowed: dataset, model, regularizer"),
    (["+foo=1"], "foo is not a key of train; allowed: dataset, model, regularizer"),
    (["regularizer.l2=-1"], "regularizer.l2=-1.0 is not allowed: a finite number >= 0"),
    (["noise=gaussian", "noise.var=2"], "noise.var=2.0 is not allowed: a number in (0, 1]"),
    (["noise.var=0.09"], "noise.var=0.09 is given with noise=none; use noise=gaussian noise.var=0.09"),
    (["model.widths=[512,a]"], "model.widths=[512,a] is not allowed: a list of hidden widths"),
    (["dataset=custom"], "dataset=custom needs dataset.path=... (a folder of IDX files or an .npz file)"),
    (["dataset=cifar"], "dataset=cifar is not a dataset config; choose one of custom, fashion_mnist, mnist"),
    (["device=tpu"], "device=tpu is not allowed: auto, cpu, cuda or cuda:N"),
    (["-m", "latent=15,0"], "latent=0 is not allowed: a whole number >= 1"),
    (["trainer=fast"], "trainer=fast is not a trainer config; choose one of budget, default, seed"),
])
def test_a_bad_override_is_one_line_naming_it_with_status_2_and_nothing_written(args, error, tmp_path, capsys,
                                                                                 monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = autoenc(capsys, "train", *args)
    assert result.code == 2, result
    assert result.err.startswith(f"error: {error}") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err + result.out and "HYDRA_FULL_ERROR" not in result.err + result.out
    assert list(tmp_path.iterdir()) == []


def test_missing_data_is_refused_before_hydra_makes_a_folder(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = autoenc(capsys, "train", f"data_dir={tmp_path / 'none'}")
    assert result.code == 2 and result.err.startswith("error: dataset 'mnist' not found")
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_during_train_says_how_to_resume(data_dir, tmp_path, capsys, monkeypatch) -> None:
    from autoenc import runs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "train_run", interrupted)
    monkeypatch.chdir(tmp_path)
    result = autoenc(capsys, "train", *TINY, f"data_dir={data_dir}")
    assert result.code == 130
    assert "interrupted: rerun the same command to resume from the last checkpoint in" in result.err


def test_a_training_refused_at_its_start_leaves_no_run_folder(data_dir, tmp_path, capsys, monkeypatch) -> None:
    """A setting only the training can refuse (batches that leave one image for batch norm) is one
    line with status 2, and the folder Hydra made for it is gone."""
    monkeypatch.chdir(tmp_path)
    result = autoenc(capsys, "train", *TINY, f"data_dir={data_dir}", "trainer.batch_size=1")
    assert result.code == 2, result.err
    assert "leave batches of one image, which batch norm cannot train on" in result.out + result.err
    assert not any((tmp_path / "outputs").iterdir())


def test_help_and_the_composed_config(capsys) -> None:
    top = autoenc(capsys, "--help")
    assert top.code == 0 and all(word in top.out for word in ("train", "study", "compare", "evaluate", "denoise"))
    unknown = autoenc(capsys, "trian")
    assert unknown.code == 2 and unknown.err.startswith("error: unknown command 'trian'; choose one of train, ")
    help_text = autoenc(capsys, "train", "--help")
    assert help_text.code == 0 and "model: custom, deep3, deep5" in help_text.out
    assert "autoenc train model=deep5 latent=30" in help_text.out
    cfg = autoenc(capsys, "train", "--cfg", "job", "model=deep5", "trainer=seed")
    assert cfg.code == 0 and "widths:\n  - 512\n  - 384" in cfg.out and "activation: relu" in cfg.out
    assert "epochs: 20" in cfg.out and "lr: 0.001" in cfg.out
    from autoenc.commands.hydra_cli import sweep_folder

    resolved = autoenc(capsys, "train", "--cfg", "all", "--resolve", "model=deep5", "latent=30")  # the folders
    assert resolved.code == 0 and re.search(r"dir: outputs/mnist-deep5-L30-s0-[0-9a-f]{6}\n", resolved.out)
    assert f"dir: {sweep_folder(['model=deep5', 'latent=30'])}\n" in resolved.out
    hydra_only = autoenc(capsys, "train", "--cfg", "hydra", "--resolve", "latent=30")
    assert hydra_only.code == 0 and "dir: outputs/<named from the job's config>" in hydra_only.out


def test_every_shipped_config_composes_and_passes_the_schema() -> None:
    """Hydra's compose API on every option of every group (and the study presets)."""
    from hydra import compose, initialize_config_dir

    from autoenc.commands.hydra_cli import to_schema
    from autoenc.config import StudyJob, TrainJob, check_job, check_study_job, conf_dir, register_configs

    register_configs()
    needs = {"dataset=custom": ["dataset.path=/tmp/x.npz"], "model=custom": ["model.widths=[64,32]"]}
    with initialize_config_dir(config_dir=conf_dir(), version_base=None):
        for group in ("dataset", "model", "regularizer", "noise", "trainer"):
            for option in sorted(p.stem for p in (Path(conf_dir()) / group).glob("*.yaml")):
                override = f"{group}={option}"
                job = to_schema(compose("train", [override, *needs.get(override, [])]), TrainJob, check_job)
                assert getattr(job, group).name in (option, option.replace("_", "-"), "custom")
        for option in ("lab", "quick"):
            job = to_schema(compose("study", [f"study={option}"]), StudyJob, check_study_job)
            assert job.study.name == option


# ---- sweeps: results tables, resume, failures, launchers ------------------------------------------

def _csv(path: Path) -> list[dict]:
    import csv

    with open(path) as fh:
        return [{k: v for k, v in row.items() if k not in ("seconds", "run")} for row in csv.DictReader(fh)]


def test_a_sweep_writes_a_results_table_and_compare_pivots_it(data_dir, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = autoenc(capsys, "train", "-m", "latent=8,12", "model=deep3,deep5", *TINY, f"data_dir={data_dir}")
    assert result.code == 0, result.err
    (sweep,) = (tmp_path / "multirun").iterdir()
    assert sweep.name.startswith("latent=8,12+model=deep3,deep5+")
    rows = _csv(sweep / "results.csv")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert list(rows[0])[:3] == ["model", "widths", "latent"]  # the keys that vary first
    assert {(r["model"], r["latent"]) for r in rows} == {(m, L) for m in ("deep3", "deep5") for L in ("8", "12")}
    grid = autoenc(capsys, "compare", str(sweep), "--pivot", "latent", "model", "--format", "markdown")
    assert grid.code == 0, grid.err
    assert "| latent | deep3 | deep5 |" in grid.out
    for r in rows:
        line = next(line for line in grid.out.splitlines() if line.startswith(f"| {r['latent']} |"))
        cells = line.strip("|").split("|")
        assert f"{float(r['psnr']):.2f}" == cells[1 + ["deep3", "deep5"].index(r["model"])].strip()
    plot = autoenc(capsys, "compare", str(sweep), "--plot", str(tmp_path / "psnr.png"), "--format", "csv")
    assert plot.code == 0 and (tmp_path / "psnr.png").stat().st_size > 1000


def test_compare_mixes_run_folders_and_sweeps_and_keeps_other_protocols_apart(trained, data_dir, tmp_path, capsys,
                                                                              monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert autoenc(capsys, "train", "-m", "latent=8,12", *TINY, f"data_dir={data_dir}").code == 0
    (sweep,) = (tmp_path / "multirun").iterdir()
    result = autoenc(capsys, "compare", str(trained["plain"]), str(trained["level"]), str(sweep), "--format", "csv",
                     "--sort", "psnr")
    assert result.code == 0, result.err
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(result.out)))
    assert len(rows) == 4 and [float(r["psnr"]) for r in rows] == sorted((float(r["psnr"]) for r in rows),
                                                                         reverse=True)
    assert {r["scored_on"] for r in rows} == {"clean", "noisy 0.09"}
    table = autoenc(capsys, "compare", str(trained["plain"]), str(trained["level"]), "--pivot", "latent", "noise",
                    "--format", "markdown", "--pca", "--data-dir", str(data_dir))
    assert table.code == 0, table.err
    assert table.out.count("**mnist, 300 test images") == 2  # clean and noisy inputs: apart, not averaged
    assert "PCA (k=L)" in table.out
    missing = autoenc(capsys, "compare", str(tmp_path / "nothing"))
    assert missing.code == 2 and missing.err.startswith("error: ") and "nothing: no such file or folder" in missing.err


@pytest.mark.slow
def test_a_sweep_killed_after_its_first_job_resumes_and_equals_an_uninterrupted_one(data_dir, tmp_path) -> None:
    import signal
    import subprocess
    import time

    from generated import python_with_checksums

    args = ["train", "-m", "latent=8,12,16", "dataset.train_images=1500", "dataset.val_images=300",
            "dataset.test_images=300", "trainer.epochs=2", "trainer.threads=1", f"data_dir={data_dir}"]
    for where in ("killed", "whole"):
        (tmp_path / where).mkdir()
    proc = subprocess.Popen(python_with_checksums() + args, cwd=tmp_path / "killed", stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while not list((tmp_path / "killed").glob("multirun/*/*/metrics.json")) and time.time() < deadline:
        time.sleep(0.05)
    import os

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    (first,) = (tmp_path / "killed").glob("multirun/*/*/metrics.json")
    stamp = first.stat().st_mtime_ns
    for where in ("killed", "whole"):
        done = subprocess.run(python_with_checksums() + args, cwd=tmp_path / where, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
    assert first.stat().st_mtime_ns == stamp  # the finished job was reused, not trained again
    assert "reusing the finished run" in done.stdout or True
    (killed,) = (tmp_path / "killed" / "multirun").iterdir()
    (whole,) = (tmp_path / "whole" / "multirun").iterdir()
    assert killed.name == whole.name
    assert _csv(killed / "results.csv") == _csv(whole / "results.csv")


def test_a_failing_job_is_recorded_and_the_others_finish(data_dir, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = autoenc(capsys, "train", "-m", "trainer.batch_size=100,1", *TINY, f"data_dir={data_dir}")
    assert result.code == 1
    (sweep,) = (tmp_path / "multirun").iterdir()
    import csv

    with open(sweep / "results.csv") as fh:
        rows = {r["batch_size"]: r for r in csv.DictReader(fh)}
    assert rows["100"]["status"] == "ok" and float(rows["100"]["psnr"]) > 5
    assert rows["1"]["status"] == "failed" and "batch norm cannot train on" in rows["1"]["error"]


@pytest.mark.slow
def test_joblib_runs_the_jobs_side_by_side_with_the_cores_shared(data_dir, tmp_path, capsys, monkeypatch) -> None:
    import os

    monkeypatch.chdir(tmp_path)
    args = ["dataset.train_images=1500", "dataset.val_images=300", "dataset.test_images=300", "trainer.epochs=1"]
    result = autoenc(capsys, "train", "-m", "latent=8,12", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                     *args, f"data_dir={data_dir}")
    assert result.code == 0, result.err
    (sweep,) = (tmp_path / "multirun").iterdir()
    rows = _csv(sweep / "results.csv")
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    for config in sweep.glob("*/config.json"):
        assert json.loads(config.read_text())["train"]["threads"] == max(1, (os.cpu_count() or 1) // 2)


@pytest.mark.slow
def test_submitits_local_launcher_runs_a_sweep(data_dir, real_data, tmp_path, capsys, monkeypatch) -> None:
    """The SLURM path (hydra-submitit-launcher), through submitit's local executor."""
    if not real_data:
        pytest.skip("submitit's job processes see only the real datasets' checksums")
    monkeypatch.chdir(tmp_path)
    result = autoenc(capsys, "train", "-m", "latent=8,12", "hydra/launcher=submitit_local", *TINY,
                     f"data_dir={data_dir}")
    assert result.code == 0, result.err
    (sweep,) = (tmp_path / "multirun").iterdir()
    assert [r["status"] for r in _csv(sweep / "results.csv")] == ["ok", "ok"]


# ---- the commands that read what exists -----------------------------------------------------------

def test_evaluate_says_what_its_psnr_is_on(trained, data_dir, capsys) -> None:
    for kind, args, on in (("level", [], "noisy inputs sigma^2=0.09 (sigma=0.3)"),
                           ("level", ["--noise-var", "0.16"], "noisy inputs sigma^2=0.16 (sigma=0.4)"),
                           ("level", ["--noise-var", "0"], "clean inputs"),
                           ("blind", [], "clean inputs")):
        folder = trained[kind]
        result = autoenc(capsys, "evaluate", str(folder), "--data-dir", str(data_dir), *args)
        assert result.code == 0, result.err
        metrics = json.loads((folder / "metrics.json").read_text())
        assert result.out.startswith(f"{folder} on test (its first 300 images: the run's subset), {on}: psnr "
                                     f"{metrics['psnr']:.2f} dB, ")
    bad = autoenc(capsys, "evaluate", str(trained["level"]), "--noise-var", "-0.1", "--data-dir", str(data_dir))
    assert bad.code == 2 and "noise_var -0.1 is not allowed" in bad.err


def test_evaluate_on_a_study_or_trial_folder_points_at_the_run_folder_inside(tmp_path, capsys) -> None:
    study = tmp_path / "study"
    (study / "trials" / "t1" / "run").mkdir(parents=True)
    (study / "study.yaml").write_text("name: x\n")
    (study / "trials" / "t1" / "run" / "config.json").write_text("{}")
    (study / "trials" / "p1").mkdir()
    (study / "trials" / "p1" / "result.json").write_text("{}")
    for folder, words in ((study, f"it is a study folder: its autoencoders' run folders are {study}/trials/"),
                          (study / "trials" / "t1", f"its run folder is {study}/trials/t1/run"),
                          (study / "trials" / "p1", "a study trial without a model")):
        result = autoenc(capsys, "evaluate", str(folder))
        assert result.code == 2 and words in result.err


def test_denoise_logs_each_score_and_compares_every_method_on_the_subset(trained, data_dir, capsys,
                                                                        monkeypatch) -> None:
    """Without a terminal, a line per finished level and method (none with --quiet); the table says
    which rows are on the fixed subset only, and subset_psnr is every row's psnr on that subset."""
    monkeypatch.setitem(baselines.METHOD_INFO, "median",
                        dataclasses.replace(baselines.METHOD_INFO["median"], uses_subset=True))
    folder = trained["level"]
    args = ["denoise", str(folder), "--noise-var", "0.04,0.09", "--baselines", "noisy,median", "--subset", "50",
            "--data-dir", str(data_dir)]
    result = autoenc(capsys, *args)
    assert result.code == 0, result.err
    lines = result.err.splitlines()
    expected = [(v, m) for v in ("0.04 (sigma=0.2)", "0.09 (sigma=0.3)") for m in ("this model", "noisy", "median")]
    assert len(lines) == len(expected)
    for k, (line, (v, m)) in enumerate(zip(lines, expected), 1):
        on = "the fixed subset of 50 test images" if m == "median" else "300 test images"
        assert re.fullmatch(rf"\[{k}/6\] sigma\^2={re.escape(v)} {m}: psnr \d+\.\d\d dB on {on}, \d+\.\d s", line), line
    rows = json.loads((folder / "denoise.json").read_text())
    idx = baselines.subset_indices(300, 50)
    x_test = data.load("mnist", "test", data_dir)[0][:300]
    for r in rows:
        assert r["subset_images"] == 50 and r["subset"] == (r["method"] == "median")
        if r["method"] == "noisy":
            noisy = noise.noisy_test_set(x_test, r["noise_var"])
            assert r["subset_psnr"] == pytest.approx(psnr(noisy[idx], x_test[idx]), abs=1e-9)
    table = (folder / "denoise.md").read_text()
    assert table.count("| 50 (subset) |") == 2 and table.count("| 300 |") == 4
    quiet = autoenc(capsys, *args, "--quiet")
    assert quiet.code == 0 and quiet.err == ""


def test_denoise_refuses_bad_arguments_before_scoring_anything(trained, data_dir, capsys) -> None:
    folder = trained["blind"]
    for args, words in ((["--seed", "-1"], "--seed -1"), (["--subset", "0"], "--subset 0"),
                        (["--baselines", "noisy,bm4d"], "unknown baseline 'bm4d'; choose from noisy, "),
                        (["--baselines", "noisy,,linear"], "has an empty item"),
                        (["--noise-var", "0.01:0.25"], "--noise-var '0.01:0.25' is a blind range")):
        result = autoenc(capsys, "denoise", str(folder), "--data-dir", str(data_dir), *args)
        assert result.code == 2 and result.err.startswith("error: ") and words in result.err, result.err
    assert not (folder / "denoise.json").exists() and not list(folder.glob("denoise_0.01.png"))


def test_a_variance_above_the_protocols_levels_gets_a_note_in_case_it_was_meant_as_sigma(trained, data_dir,
                                                                                         capsys) -> None:
    assert noise.sigma_hint(0.3).startswith("note: --noise-var 0.3 is the variance sigma^2 (sigma = 0.548)")
    result = autoenc(capsys, "denoise", str(trained["level"]), "--noise-var", "0.04,0.3", "--baselines", "none",
                     "--data-dir", str(data_dir), "--quiet")
    assert result.code == 0, result.err
    assert result.err.startswith("note: --noise-var 0.3 is the variance sigma^2 (sigma = 0.548)")


def test_the_denoise_help_names_the_default_baselines_and_every_choice(capsys) -> None:
    result = autoenc(capsys, "denoise", "--help")
    text = " ".join(result.out.split())
    assert result.code == 0 and "(default: noisy,linear)" in text and all(m in text for m in baselines.METHODS)


def test_data_check_names_a_file_given_as_the_data_folder(tmp_path, capsys) -> None:
    (tmp_path / "data.gz").write_bytes(b"")
    result = autoenc(capsys, "data", "check", "--data-dir", str(tmp_path / "data.gz"))
    assert result.code == 2 and str(tmp_path / "data.gz") in result.err and "folder" in result.err


# ---- the study command: its options --------------------------------------------------------------

@pytest.mark.parametrize("args, error", [
    (["workers=0"], "workers=0 is not allowed: a whole number >= 1"),
    (["ray.gpus_per_trial=1"], "ray.* applies with executor=ray only"),
    (["executor=ray", "workers=1"], "workers applies to executor=local only"),
    (["study=lab2"], "study=lab2 is not a study config; choose one of lab, quick"),
    (["study.latents=[0]"], "study.latents=[0] is not allowed"),
])
def test_the_study_command_refuses_bad_settings_before_any_trial(args, error, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = autoenc(capsys, "study", *args)
    assert result.code == 2 and result.err.startswith(f"error: {error}"), result.err
    assert list(tmp_path.iterdir()) == []


def test_a_study_trial_line_says_what_a_denoisers_psnr_is_on() -> None:
    from autoenc.study import trial_line

    base = {"status": "ok", "wall_seconds": 9.14, "psnr": 20.071}
    levels = [{"noise_var": v, "psnr": p} for v, p in ((0.01, 26.1), (0.04, 23.404), (0.09, 21.0), (0.25, 17.9))]
    assert trial_line(1, 48, {**base, "id": "a", "noise_var": None, "denoising": levels}) == \
        "[1/48] a ok: psnr 20.07 dB, 9.1 s"
    level = {**base, "id": "m", "noise_var": 0.04, "denoising": levels}
    assert trial_line(13, 48, level) == "[13/48] m ok: psnr 20.07 dB (clean inputs), denoising psnr 23.40 dB at " \
                                        "sigma^2=0.04, 9.1 s"
    blind = {**base, "id": "b", "noise_var": [0.04, 0.09], "denoising": levels}
    assert trial_line(14, 48, blind) == ("[14/48] b ok: psnr 20.07 dB (clean inputs), "
                                         "denoising psnr 21.00-23.40 dB at sigma^2 0.04-0.09, 9.1 s")


@pytest.mark.slow
def test_the_installed_wheel_runs_from_an_empty_folder_with_its_configs(data_dir, real_data, tmp_path) -> None:
    """`pip install .` (not editable): the configs ship inside the wheel; a user's --config-dir adds
    a group option."""
    import subprocess

    if not real_data:
        pytest.skip("a fresh process sees only the real datasets' checksums")
    root = Path(__file__).resolve().parent.parent
    wheel = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path / "dist"), str(root)], capture_output=True, text=True)
    assert wheel.returncode == 0, wheel.stderr[-2000:]
    (whl,) = (tmp_path / "dist").glob("autoenc-*.whl")
    prefix = tmp_path / "prefix"
    # --ignore-installed: without it pip uninstalls the project from the environment running the tests
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--ignore-installed",
                                "--prefix", str(prefix), str(whl)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    site = next(prefix.glob("lib/python*/site-packages"))
    empty = tmp_path / "elsewhere"
    (empty / "mine" / "model").mkdir(parents=True)
    (empty / "mine" / "model" / "tiny.yaml").write_text("name: tiny\nwidths: [64]\n")
    env = {**__import__("os").environ, "PYTHONPATH": str(site), "AUTOENC_DATA_DIR": str(data_dir)}
    run = subprocess.run([str(prefix / "bin" / "autoenc"), "train", "latent=15", "trainer.epochs=1", *TINY[:3],
                          "--config-dir", "mine", "model=tiny"], cwd=empty, env=env, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:] + run.stdout[-2000:]
    (folder,) = (empty / "outputs").iterdir()
    assert folder.name.startswith("mnist-tiny-L15-") and (folder / "metrics.json").is_file()
    where = subprocess.run([sys.executable, "-c", "import autoenc, autoenc.config as c; print(autoenc.__file__); "
                            "print(c.conf_dir())"], cwd=empty, env=env, capture_output=True, text=True)
    assert where.stdout.splitlines()[0].startswith(str(site))
    assert where.stdout.splitlines()[1] == str(site / "autoenc" / "conf")
    still = subprocess.run([sys.executable, "-c", "import autoenc"], cwd=empty, capture_output=True, text=True)
    assert still.returncode == 0, "the test's own environment lost autoenc: " + still.stderr[-500:]
