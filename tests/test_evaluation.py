"""The metrics against their references: SSIM against scikit-image's structural_similarity."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import structural_similarity

from aelab.evaluation import ssim, ssim_per_image


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
