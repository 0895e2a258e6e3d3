"""Evaluation: the protocol's metrics (PSNR in dB, SSIM, MSE, per-class PSNR, code sparsity).

All images are float tensors of shape (N, D) with pixels in [0, 1]; reconstructions are clipped
to [0, 1] before any metric, as the protocol says.
"""
from __future__ import annotations

import math

import torch

from ..errors import ConfigError

PERFECT_PSNR_DB = 100.0  # the protocol's value for an image reconstructed exactly (MSE_i = 0)
ZERO_THRESHOLD = 1e-3  # |E_j| below this counts as a zero code entry (on the code's own scale)
SMALL_RELATIVE = 0.01  # |E_j| below this fraction of its image's largest |E_j| counts as inactive


def check_images(x, name: str, dim: int | None = None, pixels: bool = True, values: bool = True) -> None:
    """Refuse what is not a batch of images as autoenc takes them: a float torch tensor (N, D) (D =
    dim when given) of finite values, with pixels in [0, 1] when `pixels` (clean images; a
    denoiser's unclipped noisy inputs may leave that range). Raises ConfigError naming `name`, the
    problem and the fix; 0-255 pixels would otherwise give confidently wrong PSNRs around -38 dB.
    values=False checks the type, shape and dtype only (no pass over the pixels)."""
    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{name} is a {type(x).__name__}, not a torch tensor; convert it, e.g. "
                          f"torch.from_numpy(a).float() / 255 for uint8 pixels (autoenc.load gives tensors)")
    want = f"(N, {dim})" if dim is not None else "(N, D)"
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        hint = ("; flatten images with x.reshape(len(x), -1)" if x.ndim > 2 else "")
        raise ConfigError(f"{name} has shape {tuple(x.shape)}; expected {want}{hint}")
    if not x.is_floating_point():
        raise ConfigError(f"{name} has dtype {x.dtype}; give float pixels in [0, 1] "
                          f"(x.float() / 255 for 0-255 images)")
    if not values:
        return
    check_values(x, name, pixels)


def check_values(x: torch.Tensor, name: str, pixels: bool = True) -> None:
    """The value half of `check_images`, for a tensor of any shape and dtype: ConfigError naming
    `name` when it holds values that are not finite or, when `pixels`, pixels outside [0, 1]
    (0-255 images). One pass over x; nothing to check in an empty tensor."""
    if x.numel() == 0:
        return
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(f"{name} has values that are not finite (NaN or inf); pixels must be in [0, 1]")
    if pixels and (lo < 0 or hi > 1):
        raise ConfigError(f"{name} has pixels from {lo:g} to {hi:g}; autoenc's pixels are in [0, 1] "
                          f"(divide 0-255 images by 255)")


def mse_per_image(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each image over its pixels, after clipping x_hat to [0, 1].

    Takes two (N, D) tensors: outputs x_hat and clean images x with pixels in [0, 1] (anything
    else is a ConfigError, `check_images`); returns N float64 values (pixel^2 units) on x_hat's
    device (x is moved there: a GPU scores its own outputs without copying them back). An output
    with NaN values gives NaN, never a score.
    """
    _check_pair(x_hat, x)
    return _mse_per_image(x_hat, x)


def _check_pair(x_hat, x, image_shape: tuple[int, int] | None = None) -> None:
    """The checks every metric makes (one pass over x): clean images x (`check_images`), outputs
    x_hat of the same shape, and image_shape matching their pixels when given."""
    check_images(x, "x (the clean images)")
    if len(x) == 0:
        raise ConfigError("x (the clean images) holds no images; the metrics are means over images, give at least one")
    check_images(x_hat, "x_hat", pixels=False, values=False)  # a tensor of floats; NaN scores NaN, see mse_per_image
    shape = tuple(getattr(x_hat, "shape", ()))
    if image_shape is not None:
        d = math.prod(image_shape)
        if shape != x.shape or x.shape[-1] != d:
            raise ConfigError(f"x_hat has shape {shape} and x {tuple(x.shape)}; with image_shape {tuple(image_shape)} "
                              f"both must be (N, {d}): give the images' (height, width)")
    elif shape != x.shape:
        raise ConfigError(f"x_hat has shape {shape} but x has {tuple(x.shape)}; they must match")


def _mse_per_image(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    diff = x_hat.detach().to(torch.float64).clamp(0, 1) - x.detach().to(x_hat.device, torch.float64)
    return diff.pow(2).flatten(1).mean(1)


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB on the [0, 1] scale of each MSE value; an MSE of 0 counts as 100 dB, a NaN one
    (an output with NaN values) stays NaN."""
    safe = mse.clamp_min(1e-300)
    return torch.where(mse == 0, torch.full_like(mse, PERFECT_PSNR_DB), 10 * torch.log10(1.0 / safe))


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """The protocol's primary `psnr`: mean over images of 10*log10(1/MSE_i), in dB."""
    return float(psnr_from_mse(mse_per_image(x_hat, x)).mean())


def psnr_dataset(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """The protocol's `psnr_dataset`: 10*log10(1 / mean of all MSE_i), in dB (papers quote this)."""
    m = float(mse_per_image(x_hat, x).mean())
    return PERFECT_PSNR_DB if m == 0 else 10 * math.log10(1.0 / m)


SSIM_WINDOW, SSIM_K1, SSIM_K2 = 7, 0.01, 0.03  # scikit-image's defaults for 2-D images


def ssim_per_image(x_hat: torch.Tensor, x: torch.Tensor, image_shape: tuple[int, int],
                   batch: int = 4096) -> torch.Tensor:
    """SSIM of each image (N float64 values in [-1, 1]) as scikit-image's structural_similarity
    computes it with its defaults and data_range 1 (7x7 uniform window, K1 0.01, K2 0.03, sample
    covariance, mean over the pixels whose window fits in the image), for all images at once:
    scikit-image's one call per image took 1.7 s per 10,000 28x28 images (one thread), 75% of
    evaluating a study's trial; this takes 0.4 s. x_hat is clipped to [0, 1] first; (N, D) pixels in [0, 1].
    Computed on x_hat's device (x is moved there); returns the values on that device."""
    _check_pair(x_hat, x, image_shape)
    return _ssim_per_image(x_hat, x, image_shape, batch)


def _ssim_per_image(x_hat: torch.Tensor, x: torch.Tensor, image_shape: tuple[int, int],
                    batch: int = 4096) -> torch.Tensor:
    h, w = image_shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ConfigError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels; these are {h}x{w}")
    n_win = SSIM_WINDOW ** 2
    cov_norm = n_win / (n_win - 1)
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2  # (K * data range)^2 with data range 1
    out = []
    for i in range(0, len(x), batch):
        a = x_hat[i:i + batch].detach().to(torch.float64).clamp(0, 1).reshape(-1, h, w)
        b = x[i:i + batch].detach().to(x_hat.device, torch.float64).reshape(-1, h, w)
        mean = _window_means  # of each window around a pixel
        ua, ub = mean(a), mean(b)
        va = cov_norm * (mean(a * a) - ua * ua)
        vb = cov_norm * (mean(b * b) - ub * ub)
        vab = cov_norm * (mean(a * b) - ua * ub)
        s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua * ua + ub * ub + c1) * (va + vb + c2))
        out.append(s.flatten(1).mean(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64, device=x_hat.device)


def _window_means(t: torch.Tensor) -> torch.Tensor:
    """Mean of every SSIM_WINDOW x SSIM_WINDOW window of (N, H, W) images that fits inside them:
    (N, H - 6, W - 6) for the 7x7 window (two 1-D sums; 2-4x faster on a CPU than avg_pool2d)."""
    k = SSIM_WINDOW
    return t.unfold(-1, k, 1).sum(-1).unfold(-2, k, 1).sum(-1) / (k * k)


def ssim(x_hat: torch.Tensor, x: torch.Tensor, image_shape: tuple[int, int]) -> float:
    """Mean SSIM over images (scikit-image defaults for 2-D images, data range 1; `ssim_per_image`),
    in [-1, 1]."""
    return float(ssim_per_image(x_hat, x, image_shape).mean())


@torch.no_grad()
def reconstruct(model: torch.nn.Module, x: torch.Tensor, batch: int = 4096, return_code: bool = False,
                keep_on_device: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Run `model` (eval mode) over (N, D) inputs in [0, 1] in batches on the model's device.

    Returns the (N, D) float32 reconstructions clipped to [0, 1], and the (N, L) codes when
    return_code is true: on the CPU, or on the model's device with keep_on_device (to score them
    there: the metrics run on their inputs' device, and on a GPU that saves seconds per model).
    Inputs that are not a float (N, D) tensor (D: the model's input_dim) are a ConfigError naming
    the fix (`check_images`; their values are not scanned). The model runs in eval mode and is
    left in the mode it came in (a model in train mode, e.g. in on_epoch, stays in train mode).
    """
    check_images(x, "x", getattr(getattr(model, "config", None), "input_dim", None), values=False)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch={batch!r}: give the number of images per forward pass, a whole number >= 1")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        return _reconstruct(model, x, batch, return_code, keep_on_device)
    finally:
        for m, training in modes:
            m.training = training


def _reconstruct(model: torch.nn.Module, x: torch.Tensor, batch: int, return_code: bool,
                 keep_on_device: bool) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    device = next(model.parameters()).device
    home = device if keep_on_device else torch.device("cpu")
    outs, codes = [], []
    for i in range(0, len(x), batch):
        z = model.encode(x[i:i + batch].to(device, torch.float32))
        outs.append(model.decode(z).float().clamp(0, 1).to(home))
        codes.append(z.float().to(home))
    out = torch.cat(outs) if outs else torch.zeros(x.shape, device=home)
    if return_code:
        return out, (torch.cat(codes) if codes else torch.zeros((0, 0), device=home))
    return out


def code_sparsity(code: torch.Tensor, threshold: float = ZERO_THRESHOLD) -> dict:
    """Sparsity of (N, L) codes E.

    Scale-invariant (multiplying E by a constant leaves them unchanged, so a penalty that only
    shrinks the code does not move them): "hoyer", the mean over images of Hoyer's sparsity
    (sqrt(L) - ||E||_1 / ||E||_2) / (sqrt(L) - 1), 0 when every unit has the same magnitude, 1
    when one unit carries the whole code (an all-zero code counts as 1, and so does any code of
    L = 1); "small_fraction", the fraction of entries below SMALL_RELATIVE (1%) of their image's
    largest |E_j| (an all-zero code: all of them); "dead_units", the units below that on every image.
    On the code's own scale: "zero_fraction", entries with |E_j| < threshold; "mean_abs", the
    mean |E_j|."""
    a = code.detach().abs().to(torch.float64)
    n, latent = a.shape
    if n == 0 or latent == 0:
        return {"hoyer": math.nan, "small_fraction": math.nan, "dead_units": 0, "zero_fraction": math.nan,
                "mean_abs": math.nan}
    l1, l2 = a.sum(1), a.pow(2).sum(1).sqrt()
    root = math.sqrt(latent)
    if latent == 1:
        hoyer = torch.ones(n, dtype=torch.float64, device=a.device)
    else:
        ratio = torch.where(l2 > 0, l1 / l2.clamp_min(1e-300), torch.ones_like(l1))
        hoyer = ((root - ratio) / (root - 1)).clamp(0, 1)
    small = a < SMALL_RELATIVE * a.amax(1, keepdim=True)
    small |= (a.amax(1, keepdim=True) == 0)
    return {
        "hoyer": float(hoyer.mean()),
        "small_fraction": float(small.float().mean()),
        "dead_units": int(small.all(0).sum()),
        "zero_fraction": float((a < threshold).float().mean()),
        "mean_abs": float(a.mean()),
    }


def per_class_psnr(x_hat: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                   class_names: list[str] | None = None) -> dict[str, float]:
    """Mean per-image PSNR (dB) per label value; keys are class names when given, else labels.
    x_hat, x: (N, D) as for `psnr`; y: (N,) integer labels."""
    _check_pair(x_hat, x)
    if not isinstance(y, torch.Tensor) or y.shape != (len(x),) or y.is_floating_point() or y.dtype == torch.bool:
        raise ConfigError(f"y is {type(y).__name__} of shape {tuple(getattr(y, 'shape', ()))}, dtype "
                          f"{getattr(y, 'dtype', None)}; give one integer label per image: a ({len(x)},) int64 tensor")
    return _mean_by_label(psnr_from_mse(mse_per_image(x_hat, x)), y, class_names)


def _mean_by_label(values: torch.Tensor, y: torch.Tensor, class_names: list[str] | None) -> dict[str, float]:
    y = y.to(values.device)
    out = {}
    for label in torch.unique(y).tolist():
        name = class_names[label] if class_names and 0 <= label < len(class_names) else str(label)
        out[name] = float(values[y == label].mean())
    return out


def image_metrics(x_hat: torch.Tensor, x: torch.Tensor, image_shape: tuple[int, int] | None = None,
                  y: torch.Tensor | None = None, class_names: list[str] | None = None) -> dict:
    """The protocol's quality metrics of outputs x_hat against clean x (both (N, D) in [0, 1]):
    psnr and psnr_dataset (dB), mse, ssim (when image_shape is given), per-class psnr (with y);
    computed on x_hat's device."""
    _check_pair(x_hat, x, image_shape)
    return _image_metrics(x_hat, x, image_shape, y, class_names)


def _image_metrics(x_hat: torch.Tensor, x: torch.Tensor, image_shape: tuple[int, int] | None,
                   y: torch.Tensor | None, class_names: list[str] | None) -> dict:
    x = x.to(x_hat.device)  # once, for every metric below
    mse = _mse_per_image(x_hat, x)
    psnrs = psnr_from_mse(mse)
    m = float(mse.mean())
    out = {
        "psnr": float(psnrs.mean()),
        "psnr_dataset": PERFECT_PSNR_DB if m == 0 else 10 * math.log10(1.0 / m),
        "mse": m,
        "n_images": len(x),
    }
    if image_shape is not None:
        out["ssim"] = float(_ssim_per_image(x_hat, x, image_shape).mean())
    if y is not None:
        out["per_class_psnr"] = _mean_by_label(psnrs, y, class_names)
    return out


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
             image_shape: tuple[int, int] | None = None, x_in: torch.Tensor | None = None,
             class_names: list[str] | None = None) -> dict:
    """Evaluate an autoencoder on clean images x (N, D) in [0, 1] (y: their (N,) labels, for the
    per-class psnr; image_shape: (height, width), for SSIM). Inputs that do not fit are a
    ConfigError naming the argument (`check_images`).

    x_in: the model's inputs when they differ from x (noisy images, for a denoiser); the outputs
    are always scored against the clean x. Returns `image_metrics` plus "code": the code's
    sparsity (`code_sparsity`). The metrics are computed on the model's device.
    """
    dim = getattr(getattr(model, "config", None), "input_dim", None)
    check_images(x, "x", dim)
    if x_in is not None:
        check_images(x_in, "x_in", x.shape[1], pixels=False)
        if len(x_in) != len(x):
            raise ConfigError(f"x_in has {len(x_in)} images but x has {len(x)}; give the model's input for each")
    if y is not None and (not isinstance(y, torch.Tensor) or y.shape != (len(x),)):
        raise ConfigError(f"y has shape {tuple(getattr(y, 'shape', ()))}; give one label per image of x: ({len(x)},)")
    if y is not None and (y.is_floating_point() or y.is_complex() or y.dtype == torch.bool):
        raise ConfigError(f"y has dtype {y.dtype}; give integer class labels (autoenc.load's int64 labels), "
                          f"e.g. y.long() for whole-number floats")
    if len(x) == 0:
        raise ConfigError("x holds no images; evaluate scores means over images, give at least one")
    if image_shape is not None and math.prod(image_shape) != x.shape[1]:
        raise ConfigError(f"image_shape {tuple(image_shape)} has {math.prod(image_shape)} pixels but the images "
                          f"have {x.shape[1]}; give their (height, width), e.g. (28, 28) for 784")
    x_hat, code = reconstruct(model, x if x_in is None else x_in, return_code=True, keep_on_device=True)
    out = _image_metrics(x_hat, x, image_shape, y, class_names)  # x checked above: one pass, not two
    out["code"] = code_sparsity(code)
    return out
