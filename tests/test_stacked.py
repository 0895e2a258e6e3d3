"""Stacked training: K models at once give what K separate fits give (up to rounding)."""
from __future__ import annotations

import pytest
import torch

from autoenc import ConfigError, data, fit, reconstruct
from autoenc.model import ModelConfig
from autoenc.training.stacked import StackedAutoencoder, fit_stacked
from autoenc.training.loop import TrainConfig, init_model
from interrupt import Stop, stop_after


@pytest.fixture(scope="module")
def splits(data_dir):
    return {name: (data.load(name, "train", data_dir)[0][:1500], data.load(name, "val", data_dir)[0][:400],
                   data.load(name, "test", data_dir)[0][:400]) for name in ("mnist", "fashion-mnist")}


@pytest.mark.parametrize("precision, rel", [("fp32", 1e-4), ("bf16", 2e-3)])
def test_a_stack_trains_what_separate_fits_train(splits, precision, rel):
    """Different seeds, penalties, noise and datasets in one stack; 1,500 images leave a partial
    last batch."""
    mnist, fashion = splits["mnist"], splits["fashion-mnist"]
    base = dict(epochs=3, device="cpu", precision=precision, threads=1)
    jobs = [(mnist[0], mnist[1], TrainConfig(seed=0, l1=1e-4, **base)),
            (fashion[0], fashion[1], TrainConfig(seed=1, l2=1e-4, **base)),
            (mnist[0], mnist[1], TrainConfig(seed=2, noise_var=(0.01, 0.25), **base))]
    mc = ModelConfig.preset(3, 15)
    stacked = fit_stacked(mc, jobs, progress=False)
    alone = [fit(mc, x, v, c, progress=False) for x, v, c in jobs]
    for s, a, (_, _, config), test in zip(stacked, alone, jobs, (mnist[2], fashion[2], mnist[2])):
        assert s.precision == a.precision == precision
        assert (s.epochs_run, s.best_epoch) == (a.epochs_run, a.best_epoch) == (3, 3)
        for key in ("train_loss", "val_loss", "val_psnr"):
            assert [h[key] for h in s.history] == pytest.approx([h[key] for h in a.history], rel=rel)
        sw, aw = s.model.state_dict(), a.model.state_dict()
        assert sw.keys() == aw.keys()
        for name, param in a.model.named_parameters():  # every weight, bias, batch-norm scale and shift
            if param is a.model.encoder[-2].bias and not config.l1:
                continue  # batch norm after the decoder's first layer cancels it: a gradient of rounding noise
            assert torch.allclose(sw[name], param, atol=50 * rel, rtol=0), name
        # the batch-norm statistics (computed from the weights) through the reconstructions
        assert float((reconstruct(s.model, test) - reconstruct(a.model, test)).abs().mean()) < 10 * rel
    assert not torch.equal(stacked[0].model.encoder[0].weight, stacked[2].model.encoder[0].weight)


def test_models_that_differ_in_latent_size_share_a_stack_padded_with_zeros(splits):
    """Latents 15 and 30 (the L1 penalty on the narrower one): each model trains what it trains
    alone, and the padded code units of the narrower one stay exactly zero with zero gradients."""
    mnist, fashion = splits["mnist"], splits["fashion-mnist"]
    base = dict(epochs=2, device="cpu", precision="fp32", threads=1)
    configs = [ModelConfig.preset(3, 15), ModelConfig.preset(3, 30)]
    jobs = [(mnist[0], mnist[1], TrainConfig(seed=0, l1=1e-4, l2=1e-5, **base)),
            (fashion[0], fashion[1], TrainConfig(seed=1, **base))]
    stacked = fit_stacked(configs, jobs, progress=False)
    for s, mc, (x, v, c) in zip(stacked, configs, jobs):
        a = fit(mc, x, v, c, progress=False)
        assert s.model.config == mc and s.model.encoder[-2].weight.shape == (mc.latent, 128)
        for key in ("train_loss", "val_loss", "val_psnr"):
            assert [h[key] for h in s.history] == pytest.approx([h[key] for h in a.history], rel=1e-4)

    models = [init_model(mc, seed, torch.device("cpu")).train() for seed, mc in enumerate(configs)]
    stack = StackedAutoencoder(models)
    code_layer = 2  # dense layers at depth 3: 784->256, 256->128, 128->L (the code), L->128, ...
    assert stack.weights[code_layer].shape == (2, 30, 128) and stack.weights[code_layer + 1].shape == (2, 128, 30)
    code, out = stack(torch.rand(2, 784, 64))
    (out.square().sum() + code.abs().sum()).backward()  # an L1 term on the codes too
    assert torch.equal(code[0, 15:], torch.zeros(15, 64))
    assert not stack.weights[code_layer][0, 15:].any() and not stack.weights[code_layer].grad[0, 15:].any()
    assert not stack.weights[code_layer + 1][0, :, 15:].any() and not stack.weights[code_layer + 1].grad[0, :, 15:].any()
    assert stack.weights[code_layer].grad[1].abs().sum() > 0
    with pytest.raises(ConfigError, match="differ only in their latent size.*widths"):
        fit_stacked([ModelConfig.preset(3, 15), ModelConfig.preset(5, 15)], jobs, progress=False)


def test_the_penalty_design_stacks_and_keeps_its_code_columns_at_unit_norm(splits):
    """The lab's L1 design (no normalization in the decoder, unit-norm code columns), latents 15
    and 30 in one stack with an L1 penalty: each model trains what it trains alone, and what each
    code unit writes into the decoder keeps unit norm (the padded units of the narrower one: zero)."""
    from autoenc.model import UnitColumnLinear, unit_columns

    mnist = splits["mnist"]
    base = dict(epochs=2, device="cpu", precision="fp32", threads=1, l1=1e-4)
    configs = [ModelConfig.preset(3, L, decoder_norm="none", unit_code_columns=True) for L in (15, 30)]
    jobs = [(mnist[0], mnist[1], TrainConfig(seed=s, **base)) for s in (0, 1)]
    stacked = fit_stacked(configs, jobs, progress=False)
    for s, mc, (x, v, c) in zip(stacked, configs, jobs):
        a = fit(mc, x, v, c, progress=False)
        first = s.model.decoder[0]
        assert isinstance(first, UnitColumnLinear) and first.bias is not None
        assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in s.model.decoder)
        assert torch.allclose(unit_columns(first.weight).norm(dim=0), torch.ones(mc.latent), atol=1e-5)
        for key in ("train_loss", "val_loss", "val_psnr"):
            assert [h[key] for h in s.history] == pytest.approx([h[key] for h in a.history], rel=1e-4)
    models = [init_model(mc, seed, torch.device("cpu")).train() for seed, mc in enumerate(configs)]
    stack = StackedAutoencoder(models)
    code, out = stack(torch.rand(2, 784, 64))
    (out.square().sum() + code.abs().sum()).backward()
    code_columns = stack.weights[3]  # L -> 128: the decoder's first layer
    assert not code_columns[0, :, 15:].any() and not code_columns.grad[0, :, 15:].any()
    assert torch.allclose(unit_columns(code_columns[1]).norm(dim=0), torch.ones(30), atol=1e-5)


def test_each_model_of_a_stack_stops_early_on_its_own_validation(splits):
    x_train = splits["mnist"][0]
    noise = torch.rand(300, 784, generator=torch.Generator().manual_seed(0))
    base = dict(epochs=8, device="cpu", precision="fp32", threads=1, patience=1, patience_start=0.0)
    # validated on training images it improves every epoch; validated on noise it soon gets worse
    jobs = [(x_train, x_train[:300], TrainConfig(seed=0, **base)), (x_train, noise, TrainConfig(seed=1, **base))]
    stacked = fit_stacked(ModelConfig.preset(3, 15), jobs, progress=False)
    alone = [fit(ModelConfig.preset(3, 15), x, v, c, progress=False) for x, v, c in jobs]
    assert [r.epochs_run for r in stacked] == [r.epochs_run for r in alone]
    assert [r.best_epoch for r in stacked] == [r.best_epoch for r in alone]
    assert stacked[0].epochs_run == 8 and stacked[1].epochs_run < 8
    for r in stacked:  # the rule of fit: stop `patience` epochs after the best one
        losses = [h["val_loss"] for h in r.history]
        assert r.best_epoch == 1 + losses.index(min(losses))
        assert r.epochs_run == min(8, r.best_epoch + 1)


def test_the_stacked_module_computes_each_model_on_its_slice():
    models = [init_model(ModelConfig.preset(3, 15, input_dim=49), seed, torch.device("cpu")).train()
              for seed in (0, 1)]
    stack = StackedAutoencoder(models)
    x = torch.rand(2, 32, 49)
    code, out = stack(x.transpose(1, 2).contiguous())
    for k, model in enumerate(models):
        assert torch.allclose(code[k].T, model.encoder(x[k]), atol=1e-5)
        assert torch.allclose(out[k].T, model(x[k]), atol=1e-5)
    with torch.no_grad():
        stack.weights[0][1].mul_(2)
    stack.unstack_into(models)
    assert torch.equal(models[1].encoder[0].weight, stack.weights[0][1])


@pytest.mark.parametrize("change, words", [
    ({"epochs": 4}, ["share training epochs", "job 0 has 3", "job 1 has 4", "separate stacks"]),
    ({"lr": 1e-3}, ["share training lr", "None", "0.001"]),
    ({"images": 1000}, ["training splits of one size", "1500", "1000"]),
])
def test_models_that_cannot_share_a_stack_are_refused_by_name(splits, change, words):
    x_train, x_val, _ = splits["mnist"]
    second = {k: v for k, v in change.items() if k != "images"}
    jobs = [(x_train, x_val, TrainConfig(epochs=3, device="cpu")),
            (x_train[:change.get("images", len(x_train))], x_val, TrainConfig(**{"epochs": 3, "device": "cpu",
                                                                                 "seed": 1, **second}))]
    with pytest.raises(ConfigError) as err:
        fit_stacked(ModelConfig.preset(3, 15), jobs, progress=False)
    for w in words:
        assert w in str(err.value)
    with pytest.raises(ConfigError, match="norm 'batch' or 'none', not 'layer'"):
        fit_stacked(ModelConfig.preset(3, 15, norm="layer"), jobs[:1], progress=False)
    with pytest.raises(ConfigError, match="need training bn_images > 0"):
        fit_stacked(ModelConfig.preset(3, 15), [(x_train, x_val, TrainConfig(epochs=3, bn_images=0))], progress=False)


def test_a_resumed_stack_equals_an_uninterrupted_one(splits, tmp_path):
    """Interrupted in the last of 5 epochs, after one model has stopped early (the checkpoint of
    epoch 4 holds it stopped): the resumed stack ends with the same weights, histories and best
    epochs, bit for bit."""
    x_train, x_val, _ = splits["mnist"]
    noise = torch.rand(300, 784, generator=torch.Generator().manual_seed(0))
    base = dict(epochs=5, device="cpu", precision="fp32", threads=1, patience=1, patience_start=0.0)
    jobs = [(x_train, x_val, TrainConfig(seed=0, l1=1e-4, **base)),
            (x_train, noise, TrainConfig(seed=1, noise_var=0.05, **base))]
    mc = ModelConfig.preset(3, 15)
    whole = fit_stacked(mc, jobs, progress=False)
    assert whole[1].epochs_run < 4 and whole[0].epochs_run == 5  # validated on noise, the second stops early

    ckpt = tmp_path / "stack.safetensors"
    with pytest.raises(Stop):
        fit_stacked(mc, jobs, progress=False, checkpoint_path=ckpt, on_epoch=stop_after(5), checkpoint_seconds=0)
    resumed = fit_stacked(mc, jobs, progress=False, checkpoint_path=ckpt)
    for w, r in zip(whole, resumed):
        assert (w.epochs_run, w.best_epoch) == (r.epochs_run, r.best_epoch)
        assert [h["val_loss"] for h in w.history] == [h["val_loss"] for h in r.history]
        a, b = w.model.state_dict(), r.model.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match=r"another configuration \(train of model 1 l1 0.0 \(checkpoint: 0.0001\);"
                                          r".*or delete it"):
        fit_stacked(mc, jobs[::-1], progress=False, checkpoint_path=ckpt)


def test_the_graphed_stack_path_runs_on_a_cpu_with_a_stand_in_capture(splits, monkeypatch):
    """fit_stacked's CUDA-graph path but the capture: the stand-in records what is captured and
    returns the module, so the numbers must be those of the eager stack."""
    import autoenc.training.stacked as stacked

    x_train, x_val, _ = splits["mnist"]
    jobs = [(x_train, x_val, TrainConfig(epochs=2, device="cpu", threads=1, seed=s)) for s in (0, 1)]
    eager = fit_stacked(ModelConfig.preset(3, 15), jobs, progress=False)
    captured, replays = [], []

    class Replay(torch.nn.Module):  # what the graphed module is called for: full batches only
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            replays.append(tuple(x.shape))
            return self.module(x)

    def stand_in(module, sample_args):
        captured.append((type(module).__name__, tuple(sample_args[0].shape)))
        return Replay(module)

    monkeypatch.setattr(stacked, "use_cuda_graphs", lambda requested, device: True)
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", stand_in)
    graphed = fit_stacked(ModelConfig.preset(3, 15), jobs, progress=False)
    assert captured == [("StackedAutoencoder", (2, 784, 256))]  # (models, pixels, batch)
    assert replays == [(2, 784, 256)] * 10  # 5 full batches of 1,500 images per epoch; the 6th runs eagerly
    for a, b in zip(eager, graphed):
        assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]


def test_a_stack_in_whole_step_mode_trains_what_the_eager_stack_trains(splits, tmp_path, whole_step_graphs):
    """fit_stacked's whole-step graph path on a CPU (`whole_step_graphs`: everything but the
    CUDA calls): models of different latents and penalties, float32 (the graph's learning rate
    is a float32 tensor, so the numbers agree to rounding), and a resume from the stack's checkpoint."""
    x_train, x_val, _ = splits["mnist"]
    configs = [ModelConfig.preset(3, 15), ModelConfig.preset(3, 50)]
    jobs = [(x_train, x_val, TrainConfig(epochs=3, device="cpu", threads=1, precision="fp32", seed=s, l1=l1, l2=l2))
            for s, l1, l2 in ((0, 0.0, 1e-5), (1, 1e-4, 0.0))]
    eager = fit_stacked(configs, jobs, progress=False, cuda_graphs=False)
    replays = whole_step_graphs
    graphed = fit_stacked(configs, jobs, progress=False)
    assert len(replays) == 15  # 5 full batches of 1,500 images per epoch; the 6th runs eagerly
    for a, b in zip(eager, graphed):
        assert [h["val_loss"] for h in b.history] == pytest.approx([h["val_loss"] for h in a.history], rel=1e-5)

    ckpt = tmp_path / "stack.safetensors"
    with pytest.raises(Stop):
        fit_stacked(configs, jobs, progress=False, checkpoint_path=ckpt, on_epoch=stop_after(2), checkpoint_seconds=0)
    resumed = fit_stacked(configs, jobs, progress=False, checkpoint_path=ckpt)
    for a, b in zip(graphed, resumed):
        assert [h["val_loss"] for h in b.history] == [h["val_loss"] for h in a.history]
