"""Model, regularizers, trainer, run folders: real effects on small subsets of real (or generated) data."""
from __future__ import annotations

import copy
import json
import math
import os
import platform
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file

from autoenc import ConfigError, TrainingError, data, evaluate, fit, load_run, psnr, reconstruct, train_run
from autoenc.evaluation.baselines import fit_pca
from autoenc.model import PRESETS, DenseAutoencoder, ModelConfig
from autoenc.files import atomic_save_tensors
from autoenc.training.stacked import fit_stacked
from autoenc.training.device import denormals_flushed
from autoenc.training.loop import (TrainConfig, adam_step, batch_norm_inputs, build_optimizer, evaluate_loss, init_model,
                                   learning_rate, recompute_batch_norm)
from interrupt import Stop, stop_after

N_TRAIN, N_VAL, N_TEST = 4000, 500, 500


@pytest.fixture(scope="module")
def mnist(data_dir):
    x_train, _ = data.load("mnist", "train", data_dir)
    x_val, _ = data.load("mnist", "val", data_dir)
    x_test, y_test = data.load("mnist", "test", data_dir)
    return x_train[:N_TRAIN], x_val[:N_VAL], x_test[:N_TEST], y_test[:N_TEST]


@pytest.fixture(scope="module")
def trained(mnist):
    """One depth-3, L=15 model trained briefly; shared by several tests."""
    x_train, x_val, _, _ = mnist
    return fit(ModelConfig.preset(3, 15), x_train, x_val, TrainConfig(epochs=8, threads=2), progress=False)


@pytest.mark.parametrize("before", [False, True])
def test_training_leaves_the_callers_denormal_mode_as_it_found_it(mnist, before):
    """Training flushes denormals for speed; the flag belongs to the caller's CPU thread (numpy
    reads it too), so fit and fit_stacked put it back, also when they fail."""
    import numpy as np

    x_train, x_val, _, _ = mnist
    mc, config = ModelConfig.preset(3, 15), TrainConfig(epochs=1, threads=1)
    try:
        torch.set_flush_denormal(before)
        fit(mc, x_train[:512], x_val[:64], config, progress=False)
        assert denormals_flushed() is before
        fit_stacked(mc, [(x_train[:512], x_val[:64], config)] * 2, progress=False)
        assert denormals_flushed() is before
        with pytest.raises(Stop):
            fit(mc, x_train[:512], x_val[:64], TrainConfig(epochs=2, threads=1), progress=False,
                on_epoch=stop_after(1))
        assert denormals_flushed() is before
        assert (float(np.float32(1e-40) * np.float32(1.0)) == 0.0) is before
    finally:
        torch.set_flush_denormal(False)


def test_training_leaves_the_callers_thread_count_as_it_found_it(mnist):
    """fit(threads=1) must not leave the process on one thread: numbers depend on the thread
    count, so a later fit with threads=None would differ from the same fit in a fresh process."""
    x_train, x_val, _, _ = mnist
    mc = ModelConfig.preset(3, 15)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        fit(mc, x_train[:512], x_val[:64], TrainConfig(epochs=1, threads=1), progress=False)
        assert torch.get_num_threads() == 2
        fit_stacked(mc, [(x_train[:512], x_val[:64], TrainConfig(epochs=1, threads=1))] * 2, progress=False)
        assert torch.get_num_threads() == 2
        with pytest.raises(Stop):
            fit(mc, x_train[:512], x_val[:64], TrainConfig(epochs=2, threads=1), progress=False,
                on_epoch=stop_after(1))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_under_a_float64_default_dtype_gives_the_float32_numbers_and_keeps_the_default(mnist, precision):
    """A notebook that ran torch.set_default_dtype(torch.float64) got float64 models whose first
    step failed deep in F.linear (expected m1 and m2 to have the same dtype)."""
    x_train, x_val, _, _ = mnist
    mc, config = ModelConfig.preset(3, 15), TrainConfig(epochs=1, threads=1, precision=precision)
    expected = fit(mc, x_train[:512], x_val[:64], config, progress=False)
    expected_stacked = fit_stacked(mc, [(x_train[:512], x_val[:64], config)], progress=False)[0]
    try:
        torch.set_default_dtype(torch.float64)
        result = fit(mc, x_train[:512], x_val[:64], config, progress=False)
        assert torch.get_default_dtype() == torch.float64
        stacked = fit_stacked(mc, [(x_train[:512], x_val[:64], config)], progress=False)[0]
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(torch.float32)
    assert next(result.model.parameters()).dtype == torch.float32
    assert result.history == [dict(r, seconds=result.history[0]["seconds"],
                                   train_seconds=result.history[0]["train_seconds"]) for r in expected.history]
    assert stacked.history[0]["val_loss"] == expected_stacked.history[0]["val_loss"]


def test_the_budget_probe_leaves_the_callers_random_state_as_it_found_it():
    """budget_epochs builds and trains a throw-away model: it drew from torch's global generator,
    so a notebook's next torch.rand after it gave other numbers than without it."""
    from autoenc.training.loop import budget_epochs

    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    assert budget_epochs(ModelConfig.preset(3, 15), TrainConfig(threads=1), 1000, 1.0, probe_steps=2) >= 1
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_budget_epochs_refuses_a_budget_that_is_not_a_finite_positive_number(seconds):
    """--budget-seconds inf ended in a traceback (OverflowError: cannot convert float infinity to integer)."""
    from autoenc.errors import ConfigError
    from autoenc.training.loop import budget_epochs

    with pytest.raises(ConfigError, match="must be a finite number of seconds > 0"):
        budget_epochs(ModelConfig.preset(3, 15), TrainConfig(threads=1), 1000, seconds, probe_steps=2)


def test_presets_follow_the_protocol():
    m3 = DenseAutoencoder(ModelConfig.preset(3, 30))
    m5 = DenseAutoencoder(ModelConfig.preset(5, 30))
    shapes3 = [tuple(lin.weight.shape[::-1]) for lin in m3.dense_layers()]
    assert shapes3 == [(784, 256), (256, 128), (128, 30), (30, 128), (128, 256), (256, 784)]
    shapes5 = [tuple(lin.weight.shape[::-1]) for lin in m5.dense_layers()]
    assert shapes5[:5] == [(784, 512), (512, 384), (384, 256), (256, 128), (128, 30)]
    assert shapes5[5:] == [(30, 128), (128, 256), (256, 384), (384, 512), (512, 784)]
    assert ModelConfig.preset(5, 30).depth == 5 and ModelConfig.preset(3, 100).depth == 3
    # the protocol's weight counts (issue 6): 474,624 and 1,465,856 weights at L=30
    assert sum(lin.weight.numel() for lin in m3.dense_layers()) == 474_624
    assert sum(lin.weight.numel() for lin in m5.dense_layers()) == 1_465_856


@settings(max_examples=25, deadline=None)
@given(widths=st.lists(st.integers(1, 64), min_size=0, max_size=4), latent=st.integers(1, 40),
       latent_activation=st.sampled_from(["linear", "relu", "tanh"]), norm=st.sampled_from(["batch", "layer", "none"]))
def test_any_widths_build_and_reconstruct_in_unit_range(widths, latent, latent_activation, norm):
    model = DenseAutoencoder(ModelConfig(input_dim=49, widths=tuple(widths), latent=latent,
                                         latent_activation=latent_activation, norm=norm)).eval()
    x = torch.rand(5, 49)
    z = model.encode(x)
    out = model.decode(z)
    assert z.shape == (5, latent) and out.shape == (5, 49)
    assert float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1
    if latent_activation == "relu":
        assert float(z.detach().min()) >= 0


@pytest.mark.parametrize("kwargs, words", [
    ({"activation": "swish2"}, ["activation", "swish2", "relu"]),
    ({"latent": 0}, ["latent=0", ">= 1"]),
    ({"norm": "group"}, ["norm", "batch"]),
    # a float width was truncated (512.7 -> 512), a string or a number a ValueError / TypeError from int()
    ({"widths": (512.7, 256)}, ["widths", "512.7", "whole numbers", "[512, 256]"]),
    ({"widths": "512,256"}, ["widths=512,256", "whole numbers"]),
    ({"widths": 512}, ["widths=512", "whole numbers"]),
])
def test_bad_model_config_names_the_field(kwargs, words):
    with pytest.raises(ConfigError) as err:
        ModelConfig(**kwargs)
    assert all(w in str(err.value) for w in words)


@pytest.mark.parametrize("kwargs, words", [
    ({"l2": -1e-4}, ["l2", ">= 0"]),
    ({"l1": float("nan")}, ["l1", "finite"]),
    ({"lr": 0.0}, ["lr", "> 0"]),
    ({"epochs": 0}, ["epochs", ">= 1"]),
    ({"schedule": "step"}, ["schedule", "onecycle"]),
    ({"loss": "l1"}, ["loss", "mse", "bce"]),
    ({"noise_var": 2.0}, ["noise_var", "(0, 1]"]),
    ({"noise_var": (0.2, 0.1)}, ["noise_var=(0.2, 0.1)", "[low, high]"]),
    ({"patience_start": 1.0}, ["patience_start", "[0, 1)"]),
    ({"bn_images": -1}, ["bn_images", "0 (running averages) or a whole number >= 2"]),
    # each was accepted or misnamed: lr=-1 said ">= 0" (0 is refused too), bn_images=1 skipped the
    # recompute without a word, noise_clip "no" (a string) counted as true
    ({"lr": -1.0}, ["lr=-1.0", "> 0"]),
    ({"bn_images": 1}, ["bn_images=1", ">= 2"]),
    ({"noise_clip": "no"}, ["noise_clip=no", "true or false"]),
])
def test_bad_train_config_names_the_field(kwargs, words):
    with pytest.raises(ConfigError) as err:
        TrainConfig(**kwargs)
    assert all(w in str(err.value) for w in words), str(err.value)


def test_schedule_warms_up_then_decays():
    c = TrainConfig(lr=1e-2, warmup=0.1)
    lrs = [learning_rate(c, s, 1000) for s in range(1000)]
    assert lrs[0] == pytest.approx(1e-3)
    assert max(lrs) == pytest.approx(1e-2, rel=1e-3) and lrs.index(max(lrs)) == 100
    assert lrs[-1] < 2e-5 and all(a >= b for a, b in zip(lrs[100:], lrs[101:]))


def test_training_lowers_the_loss_and_beats_the_mean_image_and_pca(trained, mnist, real_data):
    x_train, _, x_test, _ = mnist
    losses = [h["train_loss"] for h in trained.history]
    assert losses[-1] < 0.5 * losses[0]
    model_psnr = psnr(reconstruct(trained.model, x_test), x_test)
    mean_psnr = psnr(x_train.mean(0, keepdim=True).expand_as(x_test), x_test)
    pca_psnr = psnr(fit_pca(x_train, 15).reconstruct(x_test), x_test)
    assert model_psnr > mean_psnr + 4, (model_psnr, mean_psnr)
    if real_data:  # generated blobs are nearly low-rank: PCA is hard to beat there
        assert model_psnr > pca_psnr + 0.5, (model_psnr, pca_psnr)


@pytest.mark.parametrize("patience_start, counting_from", [(0.0, 0), (0.5, 6)])
def test_early_stopping_counts_from_patience_start_and_restores_the_best_epoch(mnist, patience_start,
                                                                              counting_from):
    x_train, x_val, _, _ = mnist
    x_val = 1 - x_val  # inverted digits: validation gets worse as the model learns the training digits
    config = TrainConfig(epochs=12, patience=2, patience_start=patience_start, threads=2)
    result = fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == losses.index(min(losses)) + 1
    # stops as soon as `patience` counted epochs pass without a better validation loss
    assert result.epochs_run == max(result.best_epoch, counting_from) + config.patience < config.epochs
    val_loss, _ = evaluate_loss(result.model, x_val, x_val, config)
    assert val_loss == pytest.approx(min(losses), rel=1e-6)


def test_validation_objective_carries_the_penalties_like_the_training_loss(trained, mnist):
    _, x_val, _, _ = mnist
    model = trained.model
    plain, psnr_plain = evaluate_loss(model, x_val, x_val, TrainConfig(precision="fp32"))
    penalized, psnr_penalized = evaluate_loss(model, x_val, x_val, TrainConfig(precision="fp32", l1=1e-3, l2=1e-4))
    with torch.no_grad():
        l1_term = 1e-3 * float(model.encode(x_val).abs().sum(1).mean())
        l2_term = 1e-4 * float(model.weight_sq_norm())
    assert l1_term > 0.1 * plain and l2_term > 0.1 * plain  # both terms matter at these strengths
    assert penalized == pytest.approx(plain + l1_term + l2_term, rel=1e-5)
    assert psnr_penalized == psnr_plain  # psnr is the reconstruction's, penalties or not


def test_batch_norm_statistics_are_those_of_the_seeded_training_sample(trained, mnist):
    x_train = mnist[0]
    model = trained.model  # fit set its statistics from a seeded random sample of the training inputs
    again = copy.deepcopy(model)
    threads = torch.get_num_threads()
    try:  # on the training's 2 threads: in bf16 the sums' rounding depends on how they are split
        torch.set_num_threads(2)
        recompute_batch_norm(again, batch_norm_inputs(x_train, TrainConfig()), trained.precision)
    finally:
        torch.set_num_threads(threads)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms and not again.training
    for a, b in zip(norms, [m for m in again.modules() if isinstance(m, torch.nn.BatchNorm1d)]):
        assert torch.allclose(a.running_mean, b.running_mean, rtol=1e-5, atol=1e-7)
        assert torch.allclose(a.running_var, b.running_var, rtol=1e-5, atol=1e-7)
    # with those statistics eval mode computes what train mode computes on the same images
    # (up to the N/(N-1) of the stored unbiased variance)
    x = x_train[:4000]
    fresh = copy.deepcopy(model)
    recompute_batch_norm(fresh, x, "fp32")
    with torch.no_grad():
        eval_out = fresh.eval()(x)
        train_out = fresh.train()(x)
    assert float((eval_out - train_out).abs().max()) < 1e-3


def test_l1_raises_the_scale_invariant_sparsity_of_the_code(mnist):
    """On the lab's L1 design (no normalization in the decoder, unit-norm code columns) the penalty
    makes the code sparser on scales a shrinking code cannot fake: Hoyer's sparsity (0.24 -> 0.45
    when measured) and the fraction of entries under 1% of their image's largest (1.8% -> 6.5%)."""
    x_train, x_val, x_test, _ = mnist
    mc = ModelConfig.preset(3, 30, decoder_norm="none", unit_code_columns=True)
    codes = {}
    for l1 in (0.0, 1e-3):
        r = fit(mc, x_train, x_val, TrainConfig(epochs=4, threads=2, l1=l1), progress=False)
        codes[l1] = evaluate(r.model, x_test)["code"]
    assert codes[1e-3]["hoyer"] > codes[0.0]["hoyer"] + 0.1, codes
    assert codes[1e-3]["small_fraction"] > 2 * codes[0.0]["small_fraction"], codes


def test_l2_makes_the_weights_smaller(mnist):
    x_train, x_val, _, _ = mnist
    norms = {}
    for l2 in (0.0, 1e-3):
        r = fit(ModelConfig.preset(3, 30), x_train, x_val, TrainConfig(epochs=3, l2=l2, threads=2), progress=False)
        norms[l2] = float(r.model.weight_sq_norm().detach())
    assert norms[1e-3] < 0.7 * norms[0.0], norms


@pytest.mark.parametrize("l2", [0.0, 1e-3])
def test_the_lean_adam_step_is_optimizer_step_to_the_bit(mnist, l2):
    """fit's adam_step skips torch.optim's bookkeeping, not any arithmetic: weights and Adam state
    after steps at changing learning rates equal those of optimizer.step(), and it drops the
    gradients as zero_grad(set_to_none=True) does."""
    x = mnist[0][:64]
    cpu = torch.device("cpu")
    models = [init_model(ModelConfig.preset(3, 15), 0, cpu) for _ in range(2)]
    optimizers = [build_optimizer(m, TrainConfig(l2=l2), cpu, 1e-3) for m in models]
    for step in range(5):
        lr = 1e-3 * (1 + step)
        for lean, model, optimizer in zip((False, True), models, optimizers):
            (model(x) - x).pow(2).mean().backward()
            if lean:
                adam_step(optimizer, lr)
                assert all(p.grad is None for p in model.parameters())
            else:
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
    a, b = (m.state_dict() for m in models)
    assert all(torch.equal(a[k], b[k]) for k in a)
    start = init_model(ModelConfig.preset(3, 15), 0, cpu).state_dict()
    assert not torch.equal(a["encoder.0.weight"], start["encoder.0.weight"])
    sa, sb = (o.state_dict() for o in optimizers)
    assert sa["param_groups"] == sb["param_groups"]
    assert all(torch.equal(sa["state"][i][k], sb["state"][i][k]) for i in sa["state"] for k in sa["state"][i])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_same_seed_same_numbers_other_seed_other_numbers(mnist, precision):
    x_train, x_val, _, _ = mnist
    x_train = x_train[:1000]
    runs = [fit(ModelConfig.preset(3, 15), x_train, x_val,
                TrainConfig(epochs=2, seed=s, threads=1, precision=precision), progress=False)
            for s in (3, 3, 4)]
    assert runs[0].precision == precision
    a, b, c = (r.model.state_dict() for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    assert runs[0].history[-1]["val_loss"] == runs[1].history[-1]["val_loss"]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_resumed_training_equals_an_uninterrupted_one(mnist, tmp_path, precision):
    x_train, x_val, _, _ = mnist
    x_train = x_train[:1500]
    config = TrainConfig(epochs=4, threads=1, noise_var=0.05, precision=precision)
    whole = fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False)

    ckpt = tmp_path / "checkpoint.safetensors"
    with pytest.raises(Stop):
        fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt,
            on_epoch=stop_after(2), checkpoint_seconds=0)
    assert ckpt.exists()
    resumed = fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt)
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h["val_loss"] for h in whole.history] == [h["val_loss"] for h in resumed.history]
    with pytest.raises(ConfigError, match=r"another configuration \(model latent 30 \(checkpoint: 15\)\); rerun"):
        fit(ModelConfig.preset(3, 30), x_train, x_val, config, progress=False, checkpoint_path=ckpt)
    # a checkpoint of an older format (other parameters) is refused
    with safe_open(str(ckpt), framework="pt") as fh:
        meta, tensors = json.loads(fh.metadata()["autoenc"]), {k: fh.get_tensor(k) for k in fh.keys()}
    meta["format"] = "1"
    atomic_save_tensors(ckpt, tensors, metadata={"autoenc": json.dumps(meta)})
    with pytest.raises(ConfigError, match="checkpoint format '1', this autoenc reads '3'; delete it"):
        fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt)


def test_a_corrupt_checkpoint_is_refused_naming_the_file_and_the_fix(mnist, tmp_path):
    """A checkpoint cut short (a copy, a full disk) or emptied: a ConfigError saying to delete it,
    not a SafetensorError from deep in safetensors."""
    x_train, x_val, _, _ = mnist
    config = TrainConfig(epochs=2, threads=1)
    ckpt = tmp_path / "checkpoint.safetensors"
    with pytest.raises(Stop):
        fit(ModelConfig.preset(3, 15), x_train[:500], x_val, config, progress=False, checkpoint_path=ckpt,
            on_epoch=stop_after(1), checkpoint_seconds=0)
    blob = ckpt.read_bytes()
    for cut in (blob[:len(blob) // 2], b""):
        ckpt.write_bytes(cut)
        with pytest.raises(ConfigError, match="checkpoint.safetensors is not a readable checkpoint .*; delete it"):
            fit(ModelConfig.preset(3, 15), x_train[:500], x_val, config, progress=False, checkpoint_path=ckpt)


def test_a_temp_file_left_by_a_writer_killed_mid_write_is_removed_by_the_next_write(tmp_path):
    """A process killed inside an atomic write leaves its temp file (a stack checkpoint: 236 MB); the
    next write of the same file removes it, but not the temp files of live writers or other hosts."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from autoenc import files

    ckpt = tmp_path / "checkpoint.safetensors"
    killed = subprocess.run([sys.executable, "-c", "import os, sys; from pathlib import Path; "
                             "from autoenc.files import _temp_beside; fd, tmp = _temp_beside(Path(sys.argv[1])); "
                             "os.write(fd, bytes(1000)); print(tmp); os._exit(9)", str(ckpt)],
                            capture_output=True, text=True)
    left = Path(killed.stdout.strip())
    assert killed.returncode == 9 and left.is_file() and left.name.startswith(".checkpoint.safetensors.")
    fd, live = files._temp_beside(ckpt)  # this process's, still being written
    os.close(fd)
    elsewhere = tmp_path / ".checkpoint.safetensors.otherhost-1.abcd.tmp"
    elsewhere.write_bytes(b"")
    atomic_save_tensors(ckpt, {"w": torch.zeros(2)})
    assert not left.exists() and Path(live).exists() and elsewhere.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([ckpt.name, Path(live).name, elsewhere.name])


def test_a_resume_keeps_the_precision_and_device_type_the_training_began_in(mnist, tmp_path, monkeypatch):
    """precision "auto" resolves by machine (bf16 where the CPU computes it natively): a training
    begun in bf16 and resumed where auto means fp32 goes on in bf16 and equals the uninterrupted
    run (it mixed the two before); a checkpoint of another device type is refused by name."""
    from autoenc.training import device as training

    x_train, x_val, _, _ = mnist
    x_train = x_train[:1000]
    config = TrainConfig(epochs=3, threads=1, precision="auto")
    monkeypatch.setattr(training, "resolve_precision", lambda precision, device: "bf16")
    whole = fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False)
    ckpt = tmp_path / "checkpoint.safetensors"
    with pytest.raises(Stop):
        fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt,
            on_epoch=stop_after(1), checkpoint_seconds=0)
    monkeypatch.setattr(training, "resolve_precision", lambda precision, device: "fp32")  # another machine
    resumed = fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt)
    assert whole.precision == resumed.precision == "bf16"
    assert [h["val_loss"] for h in whole.history] == [h["val_loss"] for h in resumed.history]

    ckpt.unlink(missing_ok=True)
    with pytest.raises(Stop):
        fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt,
            on_epoch=stop_after(1), checkpoint_seconds=0)
    with safe_open(str(ckpt), framework="pt") as fh:
        meta, tensors = json.loads(fh.metadata()["autoenc"]), {k: fh.get_tensor(k) for k in fh.keys()}
    assert (meta["device"], meta["precision"]) == ("cpu", "fp32")
    atomic_save_tensors(ckpt, tensors, metadata={"autoenc": json.dumps({**meta, "device": "cuda"})})
    with pytest.raises(ConfigError, match="was written by a training on cuda; this one trains on cpu: resume it on "
                                          "a machine with cuda"):
        fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt)


def test_checkpoints_are_written_every_checkpoint_seconds_and_a_resume_from_any_gives_the_same_numbers(
        mnist, tmp_path, monkeypatch):
    """The training state is saved only when checkpoint_seconds have passed since the last save
    (a stack's checkpoint costs as much as its epoch on a GPU); whichever epoch it holds, or none,
    the resumed run ends with the uninterrupted run's numbers."""
    from autoenc.training import loop as training
    from autoenc.training.loop import checkpoint_interval

    x_train, x_val, _, _ = mnist
    x_train = x_train[:1000]
    config = TrainConfig(epochs=5, threads=1, precision="fp32")
    whole = fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False)

    clock, saved = {"now": 0.0}, []
    real_save = training.save_checkpoint

    def save(path, *args):
        saved.append(args[6])  # the epochs done
        real_save(path, *args)

    def epoch_of_20_seconds(row, model):  # the clock stands still but for 20 s after each epoch
        clock["now"] += 20.0
        if row["epoch"] == 4:
            raise Stop

    ckpt = tmp_path / "checkpoint.safetensors"
    with monkeypatch.context() as patch:
        patch.setattr(training, "save_checkpoint", save)
        patch.setattr(training.time, "perf_counter", lambda: clock["now"])
        with pytest.raises(Stop):  # every 35 s: after epoch 3 (40 s in), not 1, 2 or 4 (20 s after the save)
            fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt,
                on_epoch=epoch_of_20_seconds, checkpoint_seconds=35)
    assert saved == [3]
    resumed = fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in whole.history]
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)

    never = tmp_path / "never.safetensors"
    with pytest.raises(Stop):
        fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=never,
            on_epoch=epoch_of_20_seconds, checkpoint_seconds=math.inf)
    assert not never.exists()  # nothing to resume from: a rerun starts over

    assert checkpoint_interval() == 30.0 and checkpoint_interval(0) == 0.0 and checkpoint_interval(7) == 7.0
    for bad in (-2, math.nan):
        with pytest.raises(ConfigError, match="checkpoint_seconds=.* is not allowed: the seconds between"):
            fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt,
                checkpoint_seconds=bad)


def test_cuda_graphs_are_refused_on_a_cpu(mnist):
    x_train, x_val, _, _ = mnist
    config = TrainConfig(epochs=1, device="cpu", threads=1)
    with pytest.raises(ConfigError, match="cuda_graphs=True needs a CUDA device"):
        fit(ModelConfig.preset(3, 15), x_train[:600], x_val, config, progress=False, cuda_graphs=True)


def test_cuda_graphs_are_the_default_on_cuda_only():
    from autoenc.training.device import use_cuda_graphs

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert use_cuda_graphs(None, cuda) and not use_cuda_graphs(None, cpu) and not use_cuda_graphs(False, cuda)
    assert use_cuda_graphs("step", cuda) == "step" and use_cuda_graphs(True, cuda) is True
    with pytest.raises(ConfigError, match="cuda_graphs='step' needs a CUDA device"):
        use_cuda_graphs("step", cpu)
    with pytest.raises(ConfigError, match="cuda_graphs='yes'; give True, False, \"step\" or None"):
        use_cuda_graphs("yes", cuda)


def test_the_graphed_step_path_runs_on_a_cpu_with_a_stand_in_capture(mnist, monkeypatch):
    """Everything of fit's CUDA-graph path but the capture itself: a stand-in for
    make_graphed_callables runs the warm-up passes the real one runs (they move the batch-norm
    running averages, which validation uses when bn_images is 0) and returns the module."""
    import autoenc.training.loop as training

    x_train, x_val, _, _ = mnist
    config = TrainConfig(epochs=2, device="cpu", threads=1, bn_images=0, precision="bf16", l1=1e-5)
    eager = fit(ModelConfig.preset(3, 15), x_train[:1000], x_val, config, progress=False)
    captured, replays = [], []

    def stand_in(module, sample_args):
        assert torch.is_autocast_enabled("cpu") and not torch.is_autocast_cache_enabled()  # bf16, no cache
        for _ in range(3):
            outputs = module(*sample_args)
            torch.autograd.grad(outputs[1].sum(), list(module.parameters()))
        captured.append(sample_args[0].shape)

        def replay(x):  # called for the full batches only
            replays.append(tuple(x.shape))
            return module(x)
        return replay

    monkeypatch.setattr(training, "use_cuda_graphs", lambda requested, device: True)
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", stand_in)
    graphed = fit(ModelConfig.preset(3, 15), x_train[:1000], x_val, config, progress=False)
    assert captured == [(256, 784)]
    assert replays == [(256, 784)] * 6  # 3 full batches of 1,000 images per epoch; the 4th runs eagerly
    assert [h["val_loss"] for h in graphed.history] == [h["val_loss"] for h in eager.history]


def test_the_whole_step_graph_path_runs_on_a_cpu_with_a_stand_in_capture(mnist, tmp_path, whole_step_graphs):
    """Everything of the whole-step path but the capture: its warm-up steps move Adam's state and
    the batch-norm running averages (validation uses them when bn_images is 0), which must be put
    back; the learning rate reaches Adam as a float32 tensor, so the numbers agree to rounding."""
    x_train, x_val, _, _ = mnist
    # float32: in bf16 the learning rate's rounding flips some bf16 roundings (3e-4 of the val loss)
    config = TrainConfig(epochs=3, device="cpu", threads=1, bn_images=0, precision="fp32", l1=1e-5, l2=1e-5)
    eager = fit(ModelConfig.preset(3, 15), x_train[:1000], x_val, config, progress=False, cuda_graphs=False)
    replays = whole_step_graphs
    graphed = fit(ModelConfig.preset(3, 15), x_train[:1000], x_val, config, progress=False)
    assert len(replays) == 9  # 3 full batches of 1,000 images per epoch; the 4th runs eagerly
    assert [h["val_loss"] for h in graphed.history] == pytest.approx([h["val_loss"] for h in eager.history],
                                                                     rel=1e-5)
    assert [h["train_loss"] for h in graphed.history] == pytest.approx([h["train_loss"] for h in eager.history],
                                                                       rel=1e-5)

    ckpt = tmp_path / "checkpoint.safetensors"  # the resumed run captures the loaded Adam state
    with pytest.raises(Stop):
        fit(ModelConfig.preset(3, 15), x_train[:1000], x_val, config, progress=False, checkpoint_path=ckpt,
            on_epoch=stop_after(2), checkpoint_seconds=0)
    resumed = fit(ModelConfig.preset(3, 15), x_train[:1000], x_val, config, progress=False, checkpoint_path=ckpt)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in graphed.history]


def test_a_denoiser_keeps_the_forward_and_backward_graphs_in_whole_step_mode(mnist, monkeypatch, whole_step_graphs):
    x_train, x_val, _, _ = mnist
    config = TrainConfig(epochs=1, device="cpu", threads=1, noise_var=0.1)
    replays = whole_step_graphs
    captured = []

    def stand_in(module, sample_args):
        captured.append(tuple(sample_args[0].shape))
        return module
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", stand_in)
    fit(ModelConfig.preset(3, 15), x_train[:600], x_val, config, progress=False)
    assert captured == [(256, 784)] and replays == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("graphs, precision, noise_var", [
    (True, "fp32", (0.01, 0.25)), (True, "bf16", (0.01, 0.25)),  # forward/backward graphs, a blind denoiser
    ("step", "fp32", None)])  # the whole step (no input noise)
def test_cuda_graphs_give_the_numbers_of_the_eager_steps(mnist, tmp_path, graphs, precision, noise_var):
    x_train, x_val, _, _ = mnist
    x_train = x_train[:1000]  # 3 full batches of 256 (replayed graphs) and one of 232 (eager)
    config = TrainConfig(epochs=3, device="cuda", precision=precision, noise_var=noise_var, l1=1e-5, l2=1e-5,
                         bn_images=0 if noise_var is None else 4096)
    eager = fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, cuda_graphs=False)
    graphed = fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, cuda_graphs=graphs)
    assert [h["val_loss"] for h in graphed.history] == pytest.approx([h["val_loss"] for h in eager.history], rel=1e-5)
    a, b = eager.model.state_dict(), graphed.model.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=1e-5) for k in a)

    ckpt = tmp_path / "checkpoint.safetensors"  # a resumed graphed run captures the loaded weights (and Adam's state)
    with pytest.raises(Stop):
        fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt,
            on_epoch=stop_after(2), cuda_graphs=graphs, checkpoint_seconds=0)
    resumed = fit(ModelConfig.preset(3, 15), x_train, x_val, config, progress=False, checkpoint_path=ckpt,
                  cuda_graphs=graphs)
    assert [h["val_loss"] for h in resumed.history] == pytest.approx([h["val_loss"] for h in graphed.history],
                                                                     rel=1e-5)


def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16(monkeypatch):
    from autoenc.training.loop import resolve_precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("fp32", cpu) == "fp32" and resolve_precision("bf16", cuda) == "bf16"
    assert resolve_precision("auto", cuda) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", cpu) == "fp32"


def test_bf16_trains_as_well_as_fp32_for_the_same_epochs(mnist):
    x_train, x_val, x_test, _ = mnist
    runs = {p: fit(ModelConfig.preset(3, 30), x_train, x_val, TrainConfig(epochs=4, threads=2, precision=p),
                   progress=False) for p in ("fp32", "bf16")}
    a, b = (runs[p].model.state_dict() for p in ("fp32", "bf16"))
    assert not all(torch.equal(a[k], b[k]) for k in a)  # bf16 really computed in bf16
    scores = {p: psnr(reconstruct(r.model, x_test), x_test) for p, r in runs.items()}
    assert abs(scores["bf16"] - scores["fp32"]) < 0.3, scores


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")
def test_freed_training_memory_stays_in_the_process():
    import resource

    from autoenc.training.device import keep_freed_memory

    assert keep_freed_memory()

    def step():  # like a training step: many ~1 MiB activations, all freed together at the end
        held = [torch.empty(1 << 18).fill_(1.0) for _ in range(16)]
        del held

    step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(40):
        step()
    # glibc's defaults hand the freed 16 MiB back every time: about 8,000 page faults here
    assert resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < 2000


def test_a_non_finite_loss_stops_with_the_epoch_and_a_lower_lr(mnist):
    x_train, x_val, _, _ = mnist
    with pytest.raises(TrainingError) as err:
        fit(ModelConfig.preset(3, 15, norm="none"), x_train[:512], x_val, TrainConfig(epochs=3, lr=1e30, threads=1),
            progress=False)
    message = str(err.value)
    assert "epoch 1" in message and "lower the learning rate" in message and "trainer.lr=1e+29" in message


@pytest.mark.parametrize("make, words", [
    (lambda x: torch.rand(10, 100), r"x_train has shape \(10, 100\) but the model takes 784 pixels per image; "
                                    r"build it for 100-pixel images, e\.g\. ModelConfig\.preset\(depth, latent, "
                                    r"input_dim=100\)"),
    (lambda x: x.index_put((torch.tensor([3]), torch.tensor([5])), torch.tensor(float("nan"))), "not finite"),
    (lambda x: x * 255, r"x_train has pixels from 0 to 255; autoenc's pixels are in \[0, 1\] \(divide 0-255 images by 255\)"),
    (lambda x: x * 2 - 1, r"x_train has pixels from -1 to 1; autoenc's pixels are in \[0, 1\]"),
    (lambda x: (x * 255).to(torch.uint8), r"x_train has dtype torch.uint8; give float pixels in \[0, 1\] \(x.float\(\) / 255"),
    (lambda x: x.numpy(), r"x_train is a ndarray, not a torch tensor; convert it, e\.g\. torch\.from_numpy"),
    (lambda x: x.reshape(-1, 28, 28), r"x_train has shape \(64, 28, 28\); expected \(N, 784\); flatten images"),
])
def test_bad_inputs_are_refused_naming_the_problem_and_the_fix(mnist, make, words):
    """Not one of these trains: 0-255 pixels used to train without complaint to a val psnr of -38 dB."""
    x_train, x_val, _, _ = mnist
    with pytest.raises(ConfigError, match=words):
        fit(ModelConfig.preset(3, 15), make(x_train[:64].clone()), x_val, TrainConfig(epochs=1), progress=False)


@pytest.mark.parametrize("n, batch_size, words", [
    (257, 256, r"257 training images in batches of 256 leave a last batch of one image, which batch norm cannot "
               r"train on; choose another batch size, e\.g\. 257 \(trainer\.batch_size"),
    (64, 1, r"64 training images in batches of 1 leave batches of one image.*e\.g\. 2 "),
    (1, 256, r"x_train holds one image, which batch norm cannot train on"),
    (0, 256, r"x_train has shape \(0, 784\); expected \(N>0, 784\): training needs images"),
])
def test_a_training_split_batch_norm_cannot_train_on_is_refused_up_front(mnist, n, batch_size, words):
    """A last batch of one image (55,000 MNIST images in batches of 97, 63, 81...) used to stop at the end of
    the first epoch with PyTorch's "Expected more than 1 value per channel"; an empty split with a
    ZeroDivisionError. Both fit and fit_stacked refuse them before training, with the fix."""
    x_train, x_val, _, _ = mnist
    config = TrainConfig(epochs=1, batch_size=batch_size, threads=1)
    with pytest.raises(ConfigError, match=words):
        fit(ModelConfig.preset(3, 15), x_train[:n], x_val, config, progress=False)
    with pytest.raises(ConfigError, match=words):
        fit_stacked(ModelConfig.preset(3, 15), [(x_train[:n], x_val, config)], progress=False)
    if n > 1:  # without batch norm, the same split trains
        fit(ModelConfig.preset(3, 15, norm="layer"), x_train[:n], x_val[:50], config, progress=False)


def test_bce_loss_and_relu_code_train(mnist):
    x_train, x_val, x_test, _ = mnist
    r = fit(ModelConfig.preset(3, 30, latent_activation="relu"), x_train[:2000], x_val,
            TrainConfig(epochs=3, loss="bce", threads=2), progress=False)
    assert r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    assert float(r.model.encode(x_test).detach().min()) >= 0
    assert psnr(reconstruct(r.model, x_test), x_test) > 14


def test_run_folder_round_trip_gives_identical_reconstructions(data_dir, tmp_path):
    out = tmp_path / "run"
    run = train_run("mnist", ModelConfig.preset(3, 15), TrainConfig(epochs=1, threads=2), out, data_dir,
                    progress=False, subset={"train": 1000, "val": 200})
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "history.jsonl",
                                                 "metrics.json", "grid.png"}
    assert not (out / "checkpoint.safetensors").exists()
    mask = os.umask(0)
    os.umask(mask)
    assert {(p.name, p.stat().st_mode & 0o777) for p in out.iterdir()} == {(p.name, 0o666 & ~mask) for p in out.iterdir()}
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["widths"] == list(PRESETS[3]) and config["train"]["epochs"] == 1
    x_test, _ = data.load("mnist", "test", data_dir)
    again = load_run(out)
    assert torch.equal(reconstruct(run.model, x_test[:300]), reconstruct(again, x_test[:300]))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["psnr"] == pytest.approx(psnr(reconstruct(again, x_test), x_test), abs=1e-6)
    assert metrics["psnr"] >= metrics["psnr_dataset"]
    # a second call with the same config returns the finished run; another config is refused
    assert train_run("mnist", ModelConfig.preset(3, 15), TrainConfig(epochs=1, threads=2), out, data_dir,
                     progress=False, subset={"train": 1000, "val": 200}).path == out
    with pytest.raises(ConfigError, match="another configuration"):
        train_run("mnist", ModelConfig.preset(3, 30), TrainConfig(epochs=1), out, data_dir, progress=False)


def test_a_run_trained_on_a_subset_is_evaluated_on_that_subset(data_dir, tmp_path):
    """train_run's subset ("use only the first n images of a split") holds for its test score too, and
    `autoenc evaluate` of a study trial's run gives the study's number: both scored all 10,000 test
    images before, whatever subset.test said."""
    from autoenc import evaluate_run

    out = tmp_path / "run"
    run = train_run("mnist", ModelConfig.preset(3, 15), TrainConfig(epochs=1, threads=2), out, data_dir,
                    progress=False, subset={"train": 600, "val": 100, "test": 50})
    x_test, _ = data.load("mnist", "test", data_dir)
    first = x_test[:50]
    assert run.metrics["n_images"] == 50
    assert run.metrics["psnr"] == pytest.approx(psnr(reconstruct(run.model, first), first), abs=1e-6)
    assert evaluate_run(out, "test", data_dir)["n_images"] == 50
    assert evaluate_run(out, "val", data_dir)["n_images"] == 100
    assert evaluate_run(out, "train", data_dir)["n_images"] == 600


def test_a_finished_run_without_its_test_metrics_is_scored_again(data_dir, tmp_path):
    """`autoenc train` killed between saving the run and writing metrics.json, or a run that
    `autoenc evaluate --split val --noise-var` scored since: the rerun scores the test split again
    instead of failing (KeyError 'psnr') or printing the other metrics as the test psnr."""
    from autoenc.runs import evaluate_run

    out = tmp_path / "run"
    args = ("mnist", ModelConfig.preset(3, 15), TrainConfig(epochs=1, threads=2), out, data_dir)
    kwargs = {"progress": False, "subset": {"train": 500, "val": 100}}
    test = train_run(*args, **kwargs).metrics
    (out / "metrics.json").unlink()
    assert train_run(*args, **kwargs).metrics == test
    evaluate_run(out, "val", data_dir, noise_var=0.25)
    assert train_run(*args, **kwargs).metrics == test
    assert json.loads((out / "metrics.json").read_text()) == test


def test_your_own_data_replaced_under_the_same_path_is_not_taken_for_the_old(tmp_path):
    """A run (or a study trial) on your own .npz records what the data held: after the file is
    replaced, the rerun refuses the old run, saying why, and a study plans new trials, instead
    of returning the model trained on the old data as the result."""
    import numpy as np

    from autoenc.study import plan, study_from_dict

    path = tmp_path / "own.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=(rng.random((200, 8, 8)) * 255).astype(np.uint8))
    out = tmp_path / "run"
    args = (str(path), ModelConfig(input_dim=64, widths=(16,), latent=4), TrainConfig(epochs=1, threads=1), out)
    train_run(*args, progress=False, evaluate_on=None)
    assert train_run(*args, progress=False, evaluate_on=None).path == out  # the same data: the finished run
    spec = {"name": "own", "datasets": [str(path)], "depths": [3], "latents": [4], "epochs": 1, "l2": [], "l1": [],
            "combined": False, "pca": True, "denoising": None}
    before = {t.id for t in plan(study_from_dict(spec), {})}
    os.utime(path, ns=(0, 0))  # touched, same content: the same trials
    assert {t.id for t in plan(study_from_dict(spec), {})} == before
    np.savez(path, x=(rng.random((200, 8, 8)) * 255).astype(np.uint8))
    with pytest.raises(ConfigError, match="another configuration .it differs in data_sha256 .the data at this path"):
        train_run(*args, progress=False, evaluate_on=None)
    assert not {t.id for t in plan(study_from_dict(spec), {})} & before


def test_a_run_on_your_own_data_given_by_a_relative_path_evaluates_from_any_folder(tmp_path, monkeypatch):
    """config.json records your own data's absolute path: `autoenc evaluate RUN` from another folder
    found no 'data/own.npz' ("unknown dataset")."""
    import numpy as np

    from autoenc.runs import evaluate_run

    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "own.npz", x=(np.random.default_rng(0).random((200, 8, 8)) * 255).astype(np.uint8))
    monkeypatch.chdir(tmp_path)
    run = train_run("data/own.npz", ModelConfig(input_dim=64, widths=(16,), latent=4), TrainConfig(epochs=1, threads=1),
                    tmp_path / "run", progress=False)
    assert run.config["dataset"] == str(tmp_path / "data" / "own.npz")
    monkeypatch.chdir(tmp_path / "data")
    assert evaluate_run(tmp_path / "run")["psnr"] == run.metrics["psnr"]


def test_a_corrupt_or_older_weights_file_is_refused(data_dir, tmp_path):
    out = tmp_path / "run"
    train_run("mnist", ModelConfig.preset(3, 15), TrainConfig(epochs=1, threads=2), out, data_dir, progress=False,
              subset={"train": 500, "val": 100}, evaluate_on=None)
    weights = out / "model.safetensors"
    atomic_save_tensors(weights, load_file(weights), metadata={"format": "pt", "autoenc": "1"})
    with pytest.raises(ConfigError, match="model.safetensors has weights format '1', this autoenc reads '3'"):
        load_run(out)
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ConfigError, match="model.safetensors .*corrupt .*; delete .*run and rerun the command that "
                                          "trained it"):
        load_run(out)


def test_a_damaged_metrics_or_history_file_is_rewritten_or_named(data_dir, tmp_path):
    """metrics.json cut short is an evaluation not yet written (autoenc evaluate, or the rerun of
    autoenc train, writes it again); a damaged history.jsonl is named with what to do. Neither is a
    JSONDecodeError traceback."""
    out = tmp_path / "run"
    args = ("mnist", ModelConfig.preset(3, 15), TrainConfig(epochs=1, threads=2), out, data_dir)
    kwargs = {"progress": False, "subset": {"train": 500, "val": 100}}
    test = train_run(*args, **kwargs).metrics
    for damaged in ('{"psnr": 2', "[]"):
        (out / "metrics.json").write_text(damaged)
        assert load_run(out) is not None
        assert train_run(*args, **kwargs).metrics == test
    with (out / "history.jsonl").open("a") as fh:
        fh.write('{"epoch": 2, ')
    with pytest.raises(ConfigError, match="history.jsonl is not one JSON object per line .*; delete it"):
        load_run(out)


def test_rerunning_a_training_into_a_folder_with_a_damaged_config_says_to_delete_it(data_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for damaged, words in (('{"dataset": "mn', "Unterminated string"), ("[1]", "not a JSON object")):
        (out / "config.json").write_text(damaged)
        with pytest.raises(ConfigError, match=f"config.json is not a valid run config .{words}.*delete the folder"):
            train_run("mnist", ModelConfig.preset(3, 15), TrainConfig(epochs=1, threads=1), out, data_dir,
                      progress=False)


@pytest.mark.parametrize("edit, words", [
    (lambda c: c.pop("dataset"), "no 'dataset'"),
    (lambda c: c.pop("train"), "no 'train'"),
    (lambda c: c.update(image_shape="28x28"), "image_shape='28x28': must be \\[height, width\\]"),
    (lambda c: c.update(image_shape=[28]), "image_shape=\\[28\\]"),
    (lambda c: c["model"].update(latent="15"), "ModelConfig latent='15'"),
    (lambda c: c["train"].update(epochs=1.5), "TrainConfig epochs=1.5"),
])
def test_a_hand_edited_run_config_is_refused_naming_the_file_and_the_field(data_dir, tmp_path, edit, words):
    """A config.json with a missing key or a value of the wrong type: one ConfigError naming the
    file and the field, not a KeyError or TypeError from deep in the evaluation."""
    out = tmp_path / "run"
    train_run("mnist", ModelConfig.preset(3, 15), TrainConfig(epochs=1, threads=2), out, data_dir, progress=False,
              subset={"train": 500, "val": 100}, evaluate_on=None)
    config = json.loads((out / "config.json").read_text())
    edit(config)
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match=f"config.json is not a valid run config \\({words}"):
        load_run(out)


def test_a_denoisers_noise_var_written_as_text_is_refused_by_name():
    from autoenc.runs import default_noise_var

    with pytest.raises(ConfigError, match="TrainConfig noise_var='0.09' is not allowed"):
        default_noise_var({"train": TrainConfig(noise_var=0.09).to_dict() | {"noise_var": "0.09"}})
    assert default_noise_var({"train": TrainConfig(noise_var=(0.01, 0.25)).to_dict()}) is None


def test_a_briefly_trained_denoiser_beats_its_noisy_input(mnist):
    from autoenc.evaluation import noise

    x_train, x_val, x_test, _ = mnist
    r = fit(ModelConfig.preset(3, 50), x_train, x_val, TrainConfig(epochs=4, noise_var=0.09, threads=2), progress=False)
    noisy = noise.noisy_test_set(x_test, 0.09)
    gain = psnr(reconstruct(r.model, noisy), x_test) - psnr(noisy, x_test)
    assert gain > 2.5, gain  # 2.96-3.10 dB over seeds 0-2 after these 4 short epochs
    # the blind denoiser trains on every level of its range
    blind = fit(ModelConfig.preset(3, 50), x_train, x_val, TrainConfig(epochs=4, noise_var=(0.01, 0.25), threads=2),
                progress=False)
    for var in (0.09, 0.25):  # at low noise a briefly trained model is limited by its own reconstruction
        noisy = noise.noisy_test_set(x_test, var)
        assert psnr(reconstruct(blind.model, noisy), x_test) > psnr(noisy, x_test) + 2


def test_blind_training_noise_matches_the_noise_model_and_weights_low_noise_up():
    from autoenc.evaluation import noise
    from autoenc.training.loop import corrupt_weighted, reconstruction_loss

    x = torch.rand(512, 784)
    config = TrainConfig(noise_var=(0.01, 0.25))
    noisy, weights = corrupt_weighted(x, config, torch.Generator().manual_seed(3))
    assert torch.equal(noisy, noise.add_noise_range(x, (0.01, 0.25), torch.Generator().manual_seed(3)))
    sigmas = noise.sample_sigmas(512, (0.01, 0.25), torch.Generator().manual_seed(3))
    assert weights.mean().item() == pytest.approx(1.0)
    assert weights[sigmas.argmin()] > 2.5 * weights[sigmas.argmax()]  # (0.1 + 0.25) / (0.1 + 0.01) at the ends
    out = torch.rand(512, 784)
    assert reconstruction_loss(out, x, "mse", torch.ones(512)).item() == pytest.approx(
        reconstruction_loss(out, x, "mse").item(), rel=1e-6)
    # a single variance keeps the plain mean
    assert corrupt_weighted(x, TrainConfig(noise_var=0.09), torch.Generator().manual_seed(3))[1] is None
