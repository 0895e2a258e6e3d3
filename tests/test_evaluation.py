"""The metrics against their references: SSIM against scikit-image's structural_similarity."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import structural_similarity

from autoenc.evaluation.metrics import ssim, ssim_per_image


@settings(max_examples=30, deadline=None)
@given(h=st.integers(7, 30), w=st.integers(7, 30), n=st.integers(1, 5), noise=st.floats(0.0, 0.8),
       seed=st.integers(0, 2**16))
def test_ssim_is_scikit_images_for_every_image(h, w, n, noise, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, h * w, generator=g, dtype=torch.float64)
    x[:, : w] = 0.0  # a flat stripe: windows with no variance, where the constants decide
    x_hat = x + noise * torch.randn(n, h * w, generator=g, dtype=torch.float64)  # beyond [0, 1]: clipped
    expected = [structural_similarity(a.reshape(h, w), b.reshape(h, w), data_range=1.0)
                for a, b in zip(x_hat.clamp(0, 1).numpy(), x.numpy())]
    assert ssim_per_image(x_hat, x, (h, w)).numpy() == pytest.approx(expected, abs=1e-12)
    assert ssim(x_hat.float(), x.float(), (h, w)) == pytest.approx(np.mean(expected), abs=1e-6)


def test_ssim_of_an_image_with_itself_is_1_and_small_images_are_refused():
    x = torch.rand(3, 28 * 28)
    assert ssim_per_image(x, x, (28, 28)).tolist() == pytest.approx([1.0] * 3, abs=1e-12)
    with pytest.raises(ValueError, match="at least 7x7 pixels; these are 5x5"):
        ssim(torch.rand(2, 25), torch.rand(2, 25), (5, 5))
    with pytest.raises(ValueError, match=r"both must be \(N, 784\)"):
        ssim(torch.rand(2, 784), torch.rand(3, 784), (28, 28))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_model_on_cuda_is_scored_there_with_the_cpus_numbers():
    import copy

    from autoenc.evaluation.denoising import score_levels
    from autoenc.evaluation.metrics import evaluate
    from autoenc.model import DenseAutoencoder, ModelConfig

    torch.manual_seed(0)
    model = DenseAutoencoder(ModelConfig.preset(3, 15))
    x = torch.rand(3000, 784) ** 3
    y = torch.randint(0, 10, (3000,))
    cpu = evaluate(model, x, y, (28, 28))
    gpu = evaluate(copy.deepcopy(model).cuda(), x, y, (28, 28))
    for key in ("psnr", "psnr_dataset", "ssim", "mse"):
        assert gpu[key] == pytest.approx(cpu[key], rel=1e-5), key
    assert gpu["per_class_psnr"] == pytest.approx(cpu["per_class_psnr"], rel=1e-5)
    assert gpu["code"]["dead_units"] == cpu["code"]["dead_units"]
    on_cpu = score_levels(model, x, [0.04], (28, 28), subset=500)
    on_gpu = score_levels(copy.deepcopy(model).cuda(), x, [0.04], (28, 28), subset=500)
    assert on_gpu[0] == pytest.approx(on_cpu[0], rel=1e-5)


def test_an_output_with_nan_values_scores_nan_not_a_perfect_100_db():
    from autoenc.evaluation.metrics import image_metrics, psnr

    x = torch.rand(4, 784)
    x_hat = x.clone()
    x_hat[0] = float("nan")
    assert psnr(x, x) == 100.0  # exact: the protocol's 100 dB
    assert np.isnan(psnr(x_hat, x)) and np.isnan(image_metrics(x_hat, x)["psnr_dataset"])


@pytest.mark.parametrize("change, words", [
    (lambda x, y: {"x": x * 255}, r"^x has pixels from [0-9.]+ to [0-9.]+; autoenc's pixels are in \[0, 1\] \(divide 0-255"),
    (lambda x, y: {"x": x.index_put((torch.tensor([0]), torch.tensor([0])), torch.tensor(float("nan")))},
     "^x has values that are not finite"),
    (lambda x, y: {"x": x.reshape(-1, 28, 28)}, r"^x has shape \(20, 28, 28\); expected \(N, 784\); flatten"),
    (lambda x, y: {"y": y[:5]}, r"^y has shape \(5,\); give one label per image of x: \(20,\)"),
    (lambda x, y: {"image_shape": (16, 16)}, r"^image_shape \(16, 16\) has 256 pixels but the images have 784"),
    (lambda x, y: {"x_in": x[:3]}, "^x_in has 3 images but x has 20"),
])
def test_evaluate_refuses_inputs_that_do_not_fit_naming_the_argument(change, words):
    from autoenc import ConfigError, evaluate
    from autoenc.model import DenseAutoencoder, ModelConfig

    model = DenseAutoencoder(ModelConfig.preset(3, 15))
    x, y = torch.rand(20, 784), torch.randint(0, 10, (20,))
    args = {"x": x, "y": y, "image_shape": (28, 28), **change(x, y)}
    with pytest.raises(ConfigError, match=words):
        evaluate(model, args.pop("x"), **args)


def test_the_metrics_refuse_clean_images_outside_0_1():
    from autoenc import ConfigError
    from autoenc.evaluation.metrics import psnr

    x = torch.rand(3, 784)
    with pytest.raises(ConfigError, match=r"^x \(the clean images\) has pixels from"):
        psnr(x, x * 255)
    assert psnr(x * 255, x) < 10  # outputs are clipped to [0, 1] first, as the protocol says: no error


@pytest.mark.parametrize("change, words", [
    (lambda x: x.numpy(), r"^x is a ndarray, not a torch tensor; convert it"),
    (lambda x: x.reshape(-1, 28, 28), r"^x has shape \(20, 28, 28\); expected \(N, 784\); flatten"),
    (lambda x: (x * 255).to(torch.uint8), r"^x has dtype torch.uint8; give float pixels in \[0, 1\] \(x.float\(\) / 255"),
    (lambda x: x[:, :100], r"^x has shape \(20, 100\); expected \(N, 784\)"),
])
def test_reconstruct_refuses_inputs_that_are_not_the_models_images(change, words):
    """autoenc.reconstruct takes (N, D) float pixels like every other public function: a numpy array or
    (N, 28, 28) images were an AttributeError / matmul RuntimeError from inside torch, and uint8
    0-255 pixels came back as confident, wrong reconstructions."""
    from autoenc import ConfigError, reconstruct
    from autoenc.model import DenseAutoencoder, ModelConfig

    model = DenseAutoencoder(ModelConfig.preset(3, 15))
    x = torch.rand(20, 784)
    assert reconstruct(model, x).shape == (20, 784)
    with pytest.raises(ConfigError, match=words):
        reconstruct(model, change(x))


def test_reconstruct_and_evaluate_leave_the_model_in_the_mode_it_came_in():
    from autoenc.evaluation.metrics import evaluate, reconstruct
    from autoenc.model import DenseAutoencoder, ModelConfig

    torch.manual_seed(0)
    model = DenseAutoencoder(ModelConfig(input_dim=49, widths=(16,), latent=4))
    x = torch.rand(20, 49)
    model.train()
    out = reconstruct(model, x)
    assert model.training and all(m.training for m in model.modules())
    model.eval()
    assert torch.equal(out, reconstruct(model, x))  # it ran in eval mode (batch norm's running statistics)
    model.train()
    model.encoder[1].eval()  # a mixed state is kept module by module
    evaluate(model, x, None, (7, 7))
    assert model.training and not model.encoder[1].training and model.decoder[1].training
    model.eval()
    evaluate(model, x)
    assert not any(m.training for m in model.modules())


@pytest.mark.parametrize("call, words", [
    (lambda x: __import__("autoenc").psnr(x.numpy(), x), r"^x_hat is a ndarray, not a torch tensor"),
    (lambda x: __import__("autoenc").psnr_dataset((x * 255).to(torch.uint8), x), r"^x_hat has dtype torch.uint8"),
    (lambda x: __import__("autoenc").psnr(x[:0], x[:0]), r"holds no images"),
    (lambda x: __import__("autoenc").psnr_dataset(x[:0], x[:0]), r"holds no images"),
    (lambda x: __import__("autoenc.evaluation.metrics").evaluation.metrics.ssim(x[:0], x[:0], (28, 28)), r"holds no images"),
    (lambda x: __import__("autoenc.evaluation.metrics").evaluation.metrics.per_class_psnr(x, x, torch.rand(len(x))), r"integer label"),
])
def test_the_metrics_refuse_outputs_that_are_not_float_tensors_and_empty_sets(call, words):
    """A numpy x_hat was an AttributeError from inside torch, uint8 0-255 outputs were clipped to
    0/1 and scored without a word, no images at all scored NaN, float labels became class keys."""
    from autoenc import ConfigError

    with pytest.raises(ConfigError, match=words):
        call(torch.rand(6, 784))


@pytest.mark.parametrize("change, words", [
    ({"y": torch.rand(20)}, r"^y has dtype torch.float32; give integer class labels"),
    ({"x": torch.rand(0, 784), "y": None}, r"^x holds no images"),
])
def test_evaluate_refuses_float_labels_and_no_images(change, words):
    from autoenc import ConfigError, evaluate
    from autoenc.model import DenseAutoencoder, ModelConfig

    model = DenseAutoencoder(ModelConfig.preset(3, 15))
    args = {"x": torch.rand(20, 784), "y": torch.randint(0, 10, (20,)), **change}
    with pytest.raises(ConfigError, match=words):
        evaluate(model, args.pop("x"), **args)


@pytest.mark.parametrize("batch", [0, -1, 2.5, True])
def test_reconstruct_refuses_a_batch_size_below_1(batch):
    # 0 was a ValueError from range(), -1 ran silently
    from autoenc import ConfigError, reconstruct
    from autoenc.model import DenseAutoencoder, ModelConfig

    with pytest.raises(ConfigError, match="batch=.*whole number >= 1"):
        reconstruct(DenseAutoencoder(ModelConfig.preset(3, 15)), torch.rand(4, 784), batch=batch)


@pytest.mark.parametrize("scale", [1e-4, 0.37, 3.0, 1e3])
def test_a_code_scaled_by_a_constant_has_the_same_sparsity(scale):
    """Hoyer's sparsity, the fraction of entries under 1% of their image's largest and the dead
    units do not move when the code is multiplied by a constant (a penalty that only shrinks the
    code cannot raise them); the fraction under the fixed 1e-3 does."""
    from autoenc.evaluation.metrics import code_sparsity

    g = torch.Generator().manual_seed(0)
    code = torch.randn(400, 30, generator=g) * (torch.rand(400, 30, generator=g) < 0.4)
    code[:, 7] = 0  # a dead unit
    a, b = code_sparsity(code), code_sparsity(code * scale)
    assert b["hoyer"] == pytest.approx(a["hoyer"], rel=1e-6)
    assert b["small_fraction"] == a["small_fraction"] and b["dead_units"] == a["dead_units"] == 1
    assert b["mean_abs"] == pytest.approx(scale * a["mean_abs"], rel=1e-6)
    assert 0.6 < a["small_fraction"] < 0.7 and 0.4 < a["hoyer"] < 0.7
    if scale < 1e-2:
        assert b["zero_fraction"] == 1.0 > a["zero_fraction"]


def test_hoyer_sparsity_is_0_for_equal_magnitudes_and_1_for_one_unit():
    from autoenc.evaluation.metrics import code_sparsity

    dense = code_sparsity(torch.tensor([[1.0, -1.0, 1.0, -1.0]] * 3))
    one = code_sparsity(torch.tensor([[0.0, 5.0, 0.0, 0.0], [-2.0, 0.0, 0.0, 0.0]]))
    assert dense["hoyer"] == pytest.approx(0.0, abs=1e-12) and dense["small_fraction"] == 0.0
    assert one["hoyer"] == pytest.approx(1.0) and one["small_fraction"] == 0.75 and one["dead_units"] == 2
