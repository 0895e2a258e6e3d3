"""backend=keras: the Keras model against the torch model (same function, the protocol's penalties),
its schedule, a run folder made by `autoenc train backend=keras` and scored by the project's metric
code, resume after kill -9, parity with torch on a small subset, the study, and the one line a user
without the extra gets."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("keras", reason="backend=keras needs the keras extra: pip install 'autoenc[keras]'")

from autoenc import data, fit  # noqa: E402
from autoenc.cli import main  # noqa: E402
from autoenc.evaluation.metrics import image_metrics, psnr, reconstruct  # noqa: E402
from autoenc.model import ModelConfig  # noqa: E402
from autoenc.training import TrainConfig  # noqa: E402
from autoenc.training import keras_backend as kb  # noqa: E402
from autoenc.training.loop import init_model, learning_rate  # noqa: E402

# TensorFlow's import gave absl's log handler the sys.stderr of that moment: pytest's capture
# file. absl closes that stream when logging is reconfigured (Hydra does, at every run) while a
# test's capsys stands in for sys.stderr, which would close pytest's capture under later tests.
import absl.logging  # noqa: E402

absl.logging.get_absl_handler().python_handler.setStream(sys.__stderr__)

keras = kb.keras
N_TRAIN, N_VAL, N_TEST = 4000, 500, 1000
# trainer=seed (Glorot init, ReLU, Adam 1e-3 constant) on a subset, 10 epochs
SEED_RECIPE = ["trainer=seed", "trainer.epochs=10", f"dataset.train_images={N_TRAIN}",
               f"dataset.val_images={N_VAL}", f"dataset.test_images={N_TEST}", "trainer.threads=1"]


def autoenc(capsys, cwd: Path, *args: str) -> tuple[int, str, str]:
    """`autoenc ARGS` in this process, in folder `cwd`: (exit status, stdout, stderr)."""
    before = os.getcwd()
    os.chdir(cwd)
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(before)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """TensorFlow's threads, set before its first operation: fixed for the process from then on,
    so every Keras training in this process asks for this number (threads=1)."""
    kb.set_threads(1)


@pytest.fixture(scope="module")
def mnist(data_dir):
    return tuple(data.load("mnist", split, data_dir)[0][:n]
                 for split, n in (("train", N_TRAIN), ("val", N_VAL), ("test", N_TEST)))


# ---- the model: the torch model's function and the protocol's penalties ----------------------------

@pytest.mark.parametrize("mc", [
    ModelConfig.preset(3, 30),  # the recipe: batch norm, SiLU, orthogonal
    ModelConfig.preset(3, 30, activation="relu", latent_activation="relu", norm="none", init="glorot"),
    ModelConfig(widths=(64,), latent=8, activation="leaky_relu", latent_activation="gelu", norm="layer",
                init="default"),
    ModelConfig.preset(3, 30, decoder_norm="none", unit_code_columns=True),  # the study's penalty model
], ids=["recipe", "seed", "layer-norm", "penalty-model"])
def test_with_the_torch_weights_the_keras_model_computes_the_same_function_and_the_protocols_penalties(mnist, mc):
    """Weights copied from the torch model (batch-norm statistics included): the same outputs, and
    the L2 and L1 terms Keras adds to a batch loss equal the protocol's l2 * sum ||W||^2 and
    l1 * mean_batch sum_j |E_j| to 1e-6 relative; one training step's loss is reconstruction + both."""
    x = mnist[0][:256]
    l1, l2 = 3e-4, 2e-5
    torch_model = init_model(mc, 0, torch.device("cpu"))
    with torch.no_grad():
        torch_model.train()
        torch_model(x)  # batch-norm statistics that are not the initial ones
    torch_model.eval()
    model = kb.build(mc, l2=l2, l1=l1, seed=1)
    kb.load_torch_weights(model, torch_model)
    with torch.no_grad():
        out = torch_model(x).numpy()
        l1_term = l1 * float(torch_model.encode(x).double().abs().sum(1).mean())
        l2_term = l2 * float(sum(m.weight.double().pow(2).sum() for m in torch_model.dense_layers()))
    assert np.abs(np.asarray(model(x.numpy(), training=False)) - out).max() < 1e-5  # the penalties of this call:
    code_layer = model.get_layer("encoder").get_layer("code")
    activity = float(sum(code_layer.losses))
    kernels = float(sum(model.losses)) - activity
    assert activity == pytest.approx(l1_term, rel=1e-6) and kernels == pytest.approx(l2_term, rel=1e-6)
    # one step at learning rate 0: its loss, with batch statistics, as the torch step computes it
    torch_model.train()
    with torch.no_grad():
        code = torch_model.encode(x)
        step = float(torch.nn.functional.mse_loss(torch_model.decode(code), x)) + \
            l1 * float(code.double().abs().sum(1).mean()) + l2_term
    model.compile(optimizer=keras.optimizers.Adam(0.0), loss="mse")
    assert float(model.train_on_batch(x.numpy(), x.numpy())) == pytest.approx(step, rel=1e-6)


def test_the_keras_schedule_is_the_recipes_learning_rate():
    """Keras's CosineDecay with warm-up gives `learning_rate`'s values, to float32 rounding (1e-6 of
    the peak: Keras computes the schedule in float32)."""
    for config in (TrainConfig(), TrainConfig(schedule="cosine", lr=3e-3), TrainConfig(warmup=0.3, lr=1e-2),
                   TrainConfig(schedule="constant", lr=1e-3)):
        total, peak = 2150, config.lr or 1e-2
        lr = kb.schedule(config, total, depth=3)
        for step in (0, 1, 100, 214, 215, 1000, 2000, 2149):
            want = learning_rate(config, step, total, depth=3)
            got = float(lr(step)) if callable(lr) else lr
            assert abs(got - want) <= 1e-6 * peak, (config.schedule, step, got, want)


# ---- a run: its folder, resume after kill -9, the project's scores, evaluate, compare ----------------

@pytest.fixture(scope="module")
def seed_recipe(mnist):
    """trainer=seed on the subset, seeds 0 and 1, by each backend's `fit`: {backend: [result, result]}."""
    x_train, x_val, _ = mnist
    mc = ModelConfig.preset(3, 30, activation="relu", norm="none", init="glorot")
    configs = [TrainConfig(epochs=10, lr=1e-3, schedule="constant", patience=0, bn_images=0, seed=seed, threads=1)
               for seed in (0, 1)]
    return {"torch": [fit(mc, x_train, x_val, c, progress=False) for c in configs],
            "keras": [kb.fit(mc, x_train, x_val, c, progress=False) for c in configs]}


@pytest.fixture(scope="module")
def keras_run(data_dir, tmp_path_factory) -> Path:
    """`autoenc train backend=keras` (the seed recipe on the subset, seed 0) killed with SIGKILL after
    its first checkpoint, then the same command again: its run folder."""
    from generated import python_with_checksums

    root = tmp_path_factory.mktemp("keras-run")
    args = ["train", "backend=keras", *SEED_RECIPE, "trainer.checkpoint_seconds=0", f"data_dir={data_dir}"]
    proc = subprocess.Popen(python_with_checksums() + args, cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while not list(root.glob("outputs/*/checkpoint.safetensors")) and time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the training ended before its first checkpoint: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (folder,) = (root / "outputs").iterdir()
    assert not (folder / "metrics.json").exists()
    before = os.getcwd()
    os.chdir(root)
    try:
        with pytest.raises(SystemExit) as done:
            main(args)
    finally:
        os.chdir(before)
    assert done.value.code == 0
    return folder


def test_a_killed_keras_run_resumes_from_its_checkpoint_to_the_numbers_of_an_uninterrupted_one(keras_run,
                                                                                               seed_recipe, mnist):
    """The killed and resumed run against `keras_backend.fit` of the same config in one go."""
    whole = seed_recipe["keras"][0]
    history = [json.loads(line) for line in (keras_run / "history.jsonl").read_text().splitlines()]
    assert [(h["train_loss"], h["val_loss"]) for h in history] == [(h["train_loss"], h["val_loss"])
                                                                   for h in whole.history]
    metrics = json.loads((keras_run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 10 and metrics["psnr"] == psnr(reconstruct(whole.model, mnist[2]), mnist[2])


def test_a_keras_run_folder_is_a_torch_ones_plus_model_keras_scored_by_the_projects_metric_code(keras_run, mnist):
    folder = keras_run
    assert folder.name.startswith("mnist-deep3-L30-seed-keras-s0-")
    names = {p.name for p in folder.iterdir()}
    assert {".hydra", "train.log", "config.json", "model.keras", "history.jsonl", "metrics.json", "grid.png",
            "curves.png"} <= names and not names & {"checkpoint.safetensors", "model.safetensors"}
    config = json.loads((folder / "config.json").read_text())
    assert config["backend"] == "keras" and config["model"]["init"] == "glorot"
    assert config["keras"]["keras"] == keras.__version__ and config["keras"]["jit_compile"] is False
    metrics = json.loads((folder / "metrics.json").read_text())
    # plain Keras reads the model (no autoenc class in it); its outputs, scored by autoenc's metric code
    plain = keras.saving.load_model(folder / "model.keras", compile=False)
    x_test = mnist[2]
    out = torch.from_numpy(np.asarray(plain.predict(x_test.numpy(), batch_size=1000, verbose=0)))
    expected = image_metrics(out, x_test, (28, 28))
    for key in ("psnr", "psnr_dataset", "ssim"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-6), key
    assert metrics["n_images"] == N_TEST and 10 < metrics["psnr"] < 30
    assert metrics["parameters"] == init_model(ModelConfig(**config["model"]), 0, torch.device("cpu")).num_parameters()


def test_evaluate_reuse_and_compare_take_a_keras_run_as_a_torch_one(keras_run, data_dir, capsys, tmp_path):
    folder = keras_run
    before = json.loads((folder / "metrics.json").read_text())
    code, out, err = autoenc(capsys, tmp_path, "evaluate", str(folder), "--data-dir", str(data_dir))
    assert code == 0, err
    assert f"psnr {before['psnr']:.2f} dB" in out
    assert json.loads((folder / "metrics.json").read_text())["psnr"] == before["psnr"]
    mtime = (folder / "model.keras").stat().st_mtime_ns
    code, out, err = autoenc(capsys, folder.parent.parent, "train", "backend=keras", *SEED_RECIPE,
                             "trainer.checkpoint_seconds=0", f"data_dir={data_dir}")
    assert code == 0 and f"reusing the finished run {folder}" in out + err
    assert (folder / "model.keras").stat().st_mtime_ns == mtime
    code, out, err = autoenc(capsys, tmp_path, "compare", str(folder), "--format", "csv")
    assert code == 0, err
    header, row = out.strip().splitlines()[:2]
    assert row.split(",")[header.split(",").index("backend")] == "keras"


# ---- parity with torch ------------------------------------------------------------------------------

def test_keras_and_torch_reach_the_same_psnr_with_the_seed_recipe(seed_recipe, mnist):
    """trainer=seed, seeds 0 and 1, 4,000 training images, 10 epochs: the backends' mean test psnr
    within 0.5 dB. Different random streams (init, order), so only the level can agree: the runs of
    one backend spread by 0.15-0.2 dB (sd over 4 seeds on this subset), so the difference of two
    two-seed means has an sd of about 0.17 dB; 0.5 dB is 3 of them. The finer checks are the
    function, penalty and schedule tests above (docs/keras.md has the full-data parity)."""
    x_test = mnist[2]
    scores = {k: [psnr(reconstruct(r.model, x_test), x_test) for r in results] for k, results in seed_recipe.items()}
    means = {k: sum(v) / len(v) for k, v in scores.items()}
    assert abs(means["torch"] - means["keras"]) < 0.5, scores


# ---- the study ---------------------------------------------------------------------------------------

def test_a_keras_study_names_its_trials_apart_and_never_stacks_them():
    from autoenc.config import StudyJob, check_study_job
    from autoenc.study import preset
    from autoenc.study.planner import plan

    torch_trials = {t.id: t for t in plan(preset("quick"), {})}
    keras_trials = plan(preset("quick", ["study.backend=keras", "study.stack=8"]), {})
    ae = [t for t in keras_trials if t.kind == "ae"]
    assert ae and all(t.spec["backend"] == "keras" and "stack" not in t.spec for t in ae)
    assert all("backend" not in t.spec for t in torch_trials.values())  # torch ids as they were
    assert not {t.id for t in ae} & {t.id for t in torch_trials.values()}
    assert {t.id for t in keras_trials if t.kind != "ae"} <= {t.id for t in torch_trials.values()}  # PCA, baselines
    job = StudyJob(study=preset("quick"), backend="keras")  # `autoenc study study=quick backend=keras`
    check_study_job(job)
    assert job.study.backend == "keras"


def test_a_keras_study_trial_trains_and_scores_like_a_torch_one(data_dir, tmp_path):
    from autoenc.study import preset
    from autoenc.study.planner import plan
    from autoenc.study.trials import run_trial

    c = preset("quick", ["study.backend=keras", "study.datasets=[mnist]", "study.latents=[8]", "study.epochs=2",
                         "study.subset={train: 1000, val: 200, test: 200}", "study.threads=1", "study.seeds=1"])
    (trial,) = [t for t in plan(c, {}) if t.kind == "ae" and t.phase == "grid" and t.spec["model"]["widths"] == [256, 128]]
    row = run_trial(trial.to_dict(), tmp_path, data_dir)
    assert row["status"] == "ok" and row["epochs_run"] == 2 and 5 < row["psnr"] < 30
    assert (tmp_path / "trials" / trial.id / "run" / "model.keras").is_file()


# ---- without the extra ---------------------------------------------------------------------------------

def test_backend_keras_without_keras_installed_is_one_line_saying_what_to_install(data_dir, tmp_path, capsys,
                                                                                  monkeypatch):
    from autoenc import training

    for name in ("keras", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)  # `import keras` raises ImportError, as when not installed
    monkeypatch.delitem(sys.modules, "autoenc.training.keras_backend")
    monkeypatch.delattr(training, "keras_backend")
    for args in (["train", "backend=keras"], ["study", "study=quick", "backend=keras"]):
        code, out, err = autoenc(capsys, tmp_path, *args, f"data_dir={data_dir}")
        assert code == 2 and err.count("\n") == 1, err
        assert err.startswith("error: backend=keras needs Keras and TensorFlow") and \
            err.rstrip().endswith("pip install 'autoenc[keras]'")
        assert list(tmp_path.iterdir()) == []
    run = tmp_path / "run"  # a Keras run folder, as another machine wrote it
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"dataset": "mnist", "image_shape": [28, 28], "backend": "keras",
                                                 "model": ModelConfig().to_dict(), "train": TrainConfig().to_dict()}))
    (run / "model.keras").write_bytes(b"")
    code, out, err = autoenc(capsys, tmp_path, "evaluate", str(run), "--data-dir", str(data_dir))
    assert code == 2 and err.count("\n") == 1 and err.rstrip().endswith("pip install 'autoenc[keras]'"), err
