"""Evaluation: the protocol's metrics (PSNR in dB, SSIM, MSE, per-class PSNR, code sparsity).

All images are float tensors of shape (N, D) with pixels in [0, 1]; reconstructions are clipped
to [0, 1] before any metric, as the protocol says.
"""
from __future__ import annotations

import math

import numpy as np
import torch

PERFECT_PSNR_DB = 100.0  # the protocol's value for an image reconstructed exactly (MSE_i = 0)
ZERO_THRESHOLD = 1e-3  # |E_j| below this counts as a zero code entry


def mse_per_image(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image over its pixels, after clipping x_hat to [0, 1].

    Takes two (N, D) tensors with pixels in [0, 1]; returns N float64 values (pixel^2 units).
    """
    if x_hat.shape != x.shape:
        raise ValueError(f"x_hat has shape {tuple(x_hat.shape)} but x has {tuple(x.shape)}; they must match")
    diff = x_hat.detach().to(torch.float64).clamp(0, 1) - x.detach().to(torch.float64)
    return diff.pow(2).flatten(1).mean(1)


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB on the [0, 1] scale of each MSE value; an MSE of 0 counts as 100 dB."""
    safe = mse.clamp_min(1e-300)
    return torch.where(mse > 0, 10 * torch.log10(1.0 / safe), torch.full_like(mse, PERFECT_PSNR_DB))


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """The protocol's primary `psnr`: mean over images of 10*log10(1/MSE_i), in dB."""
    return float(psnr_from_mse(mse_per_image(x_hat, x)).mean())


def psnr_dataset(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """The protocol's `psnr_dataset`: 10*log10(1 / mean of all MSE_i), in dB (papers quote this)."""
    m = float(mse_per_image(x_hat, x).mean())
    return PERFECT_PSNR_DB if m == 0 else 10 * math.log10(1.0 / m)


def ssim(x_hat: torch.Tensor, x: torch.Tensor, image_shape: tuple[int, int]) -> float:
    """Mean SSIM over images (scikit-image defaults for 2-D images, data range 1); in [-1, 1]."""
    from skimage.metrics import structural_similarity

    a = x_hat.detach().float().clamp(0, 1).cpu().numpy().reshape(-1, *image_shape)
    b = x.detach().float().cpu().numpy().reshape(-1, *image_shape)
    return float(np.mean([structural_similarity(p, q, data_range=1.0) for p, q in zip(a, b)]))


@torch.no_grad()
def reconstruct(model: torch.nn.Module, x: torch.Tensor, batch: int = 4096,
                return_code: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run `model` (eval mode) over (N, D) inputs in [0, 1] in batches on the model's device.

    Returns the (N, D) reconstructions clipped to [0, 1] on the CPU, and the (N, L) codes when
    return_code is true.
    """
    model.eval()
    device = next(model.parameters()).device
    outs, codes = [], []
    for i in range(0, len(x), batch):
        z = model.encode(x[i:i + batch].to(device, torch.float32))
        outs.append(model.decode(z).float().clamp(0, 1).cpu())
        codes.append(z.float().cpu())
    out = torch.cat(outs) if outs else x.new_zeros(x.shape)
    if return_code:
        return out, (torch.cat(codes) if codes else x.new_zeros((0, 0)))
    return out


def code_sparsity(code: torch.Tensor, threshold: float = ZERO_THRESHOLD) -> dict:
    """Sparsity of (N, L) codes: fraction of entries with |E_j| < threshold, the number of units
    that are never active (|E_j| < threshold on every image), and the mean |E_j|."""
    small = code.abs() < threshold
    return {
        "zero_fraction": float(small.float().mean()),
        "dead_units": int(small.all(0).sum()),
        "mean_abs": float(code.abs().mean()),
    }


def per_class_psnr(x_hat: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                   class_names: list[str] | None = None) -> dict[str, float]:
    """Mean per-image PSNR (dB) per label value; keys are class names when given, else labels."""
    values = psnr_from_mse(mse_per_image(x_hat, x))
    out = {}
    for label in torch.unique(y).tolist():
        name = class_names[label] if class_names and 0 <= label < len(class_names) else str(label)
        out[name] = float(values[y == label].mean())
    return out


def image_metrics(x_hat: torch.Tensor, x: torch.Tensor, image_shape: tuple[int, int] | None = None,
                  y: torch.Tensor | None = None, class_names: list[str] | None = None) -> dict:
    """The protocol's quality metrics of outputs x_hat against clean x (both (N, D) in [0, 1]):
    psnr and psnr_dataset (dB), mse, ssim (when image_shape is given), per-class psnr (with y)."""
    mse = mse_per_image(x_hat, x)
    m = float(mse.mean())
    out = {
        "psnr": float(psnr_from_mse(mse).mean()),
        "psnr_dataset": PERFECT_PSNR_DB if m == 0 else 10 * math.log10(1.0 / m),
        "mse": m,
        "n_images": len(x),
    }
    if image_shape is not None:
        out["ssim"] = ssim(x_hat, x, image_shape)
    if y is not None:
        out["per_class_psnr"] = per_class_psnr(x_hat, x, y, class_names)
    return out


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
             image_shape: tuple[int, int] | None = None, x_in: torch.Tensor | None = None,
             class_names: list[str] | None = None) -> dict:
    """Evaluate an autoencoder on clean images x (N, D) in [0, 1].

    x_in: the model's inputs when they differ from x (noisy images, for a denoiser); the outputs
    are always scored against the clean x. Returns `image_metrics` plus "code": the code's
    sparsity (`code_sparsity`).
    """
    x_hat, code = reconstruct(model, x if x_in is None else x_in, return_code=True)
    out = image_metrics(x_hat, x, image_shape, y, class_names)
    out["code"] = code_sparsity(code)
    return out
