"""Classical baselines every report shows: PCA compression and the denoising baselines.

Images are float tensors of shape (N, D) with pixels in [0, 1] (D = H*W, `image_shape` = (H, W));
PSNR is in dB on the [0, 1] scale (`evaluation.psnr`, clipped first); noise levels are variances
sigma^2 on the [0, 1] scale, as in `autoenc.noise`.

Compression: `fit_pca(x_train, k)` -> `PCA` (encode / decode / reconstruct).

Denoising (`METHODS`, each maps noisy (N, D) images to denoised (N, D) images in [0, 1]):

- ``noisy``: the noisy input itself (the floor every denoiser must beat).
- ``gaussian``: Gaussian filter (scipy.ndimage), parameter sigma in pixels.
- ``median``: median filter over a size x size square (scipy.ndimage); size 1 is the identity.
- ``nlm``: skimage non-local means, fast mode, patch 5x5, search distance 6 (suits 28x28); the
  parameter is c in h = c * sigma (sigma the true noise sigma). skimage's sigma argument (which
  subtracts 2 sigma^2 from patch distances) is left at 0: the clipped noise has a smaller
  variance than sigma^2, and with the subtraction the best h on validation collapses towards 0.
- ``wavelet``: skimage BayesShrink, soft thresholding, 'db2' wavelet, 2 levels, rescale_sigma=True;
  the parameter multiplies the true noise sigma given to skimage (the choice of wavelet, levels
  and rule: docs/recipe.md).
- ``tv``: skimage total variation (Chambolle), parameter weight.
- ``bm3d``: the optional `bm3d` package (profile 'np', single thread); the parameter multiplies the
  true noise sigma given as sigma_psd. The transform-variance FFT domain is 8x8 (profile nf=8)
  instead of the package's 32x32: on 28x28 images it is much faster at nearly the same psnr
  (docs/speed.md). Absent package -> skipped with a note.
- ``pca``: projection of the noisy image on the first k principal components of the clean
  training images, k chosen on validation.
- ``linear``: the best linear (affine) denoiser x_hat = mean_x + C_xy C_yy^-1 (y - mean_y), the
  covariances fitted in float64 on (clean, noisy) training pairs drawn with the same clipped
  noise model, with a tiny ridge (1e-6 * mean variance) for stability. No parameter.

Every parameter is chosen on the validation split (clean validation images plus
`noise.noisy_validation_set` noise) per noise level, maximizing mean `psnr` over a grid that is
searched for its peak (about half of its values scored: the grid's best whenever psnr rises to
one peak and falls after it, as in every selection of the default study); when the best value
lies at a grid edge the grid is extended (up to a few steps) so the choice is an interior optimum
where one exists. Test scores use `noise.noisy_test_set`, the same noisy images the autoencoders
see. BM3D (the slow one) runs on a fixed subset of the test split (`subset_indices`:
the first `subset` entries of a fixed random permutation, sorted) and selects on 200 validation
images; the others run on the whole test split (nlm selects on 500 validation images, wavelet
and tv on 1,000, the vectorized ones on all 5,000). `BaselineResult.subset` says which. Every
method is also scored on that fixed subset (`BaselineResult.subset_psnr`, ...), so all of them,
BM3D included, compare on the same images; score an autoencoder on them with
`x_test[subset_indices(len(x_test), result.subset_images)]` (`denoise.score_levels` does).
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError
from . import metrics as evaluation
from . import noise

METHODS: tuple[str, ...] = ("noisy", "gaussian", "median", "nlm", "wavelet", "tv", "bm3d", "pca", "linear")
"""All denoising baselines, in report order."""

SUBSET_SEED = 0
"""Seed of the fixed permutation that defines the test/validation subsets of slow baselines."""

BM3D_MISSING_NOTE = "bm3d not installed: pip install 'autoenc[bm3d]'"

NLM_PATCH_SIZE, NLM_PATCH_DISTANCE = 5, 6
WAVELET_NAME, WAVELET_LEVELS, WAVELET_METHOD = "db2", 2, "BayesShrink"
BM3D_NF = 8


@dataclass(frozen=True)
class MethodInfo:
    """How a baseline is parameterized and run.

    param_name: what the parameter means (None: no parameter); grid: default validation grid,
    increasing strength; per_image: a Python loop over images (slow); uses_subset: runs on the
    test subset when one is asked for; val_size: validation images used to choose the parameter
    (None: all); lower/upper: hard bounds when the grid is extended past an edge.
    """

    name: str
    param_name: str | None
    grid: tuple = ()
    per_image: bool = False
    uses_subset: bool = False
    val_size: int | None = None
    lower: float = 0.0
    upper: float = math.inf
    integer: bool = False


METHOD_INFO: dict[str, MethodInfo] = {
    "noisy": MethodInfo("noisy", None),
    "gaussian": MethodInfo("gaussian", "sigma_px", (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2, 1.4, 1.7, 2.0),
                           lower=0.05, upper=10.0),
    "median": MethodInfo("median", "size", (1, 3, 5, 7), lower=1, upper=15, integer=True),
    "nlm": MethodInfo("nlm", "h_over_sigma", (0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.2),
                      per_image=True, val_size=500, lower=0.02, upper=10.0),
    "wavelet": MethodInfo("wavelet", "sigma_mult", (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0, 1.2, 1.5),
                          per_image=True, val_size=1000, lower=0.02, upper=10.0),
    "tv": MethodInfo("tv", "weight", (0.03, 0.05, 0.07, 0.1, 0.14, 0.2, 0.28, 0.4, 0.56),
                     per_image=True, val_size=1000, lower=0.002, upper=20.0),
    "bm3d": MethodInfo("bm3d", "sigma_mult", (0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0),
                       per_image=True, uses_subset=True, val_size=200, lower=0.02, upper=10.0),
    "pca": MethodInfo("pca", "k", (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 100, 120, 150, 200, 250, 300),
                      lower=1, upper=math.inf, integer=True),
    "linear": MethodInfo("linear", None),
}


# =============================================================================================
# PCA
# =============================================================================================

@dataclass
class PCA:
    """Principal components of a set of images.

    mean: (D,) float64 pixel means; components: (k, D) float64 orthonormal rows, by decreasing
    variance; variances: (k,) float64 variance (pixel^2) along each component.
    """

    mean: torch.Tensor
    components: torch.Tensor
    variances: torch.Tensor

    @property
    def k(self) -> int:
        """Number of components."""
        return self.components.shape[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes (N, k) float64 of images x (N, D) in [0, 1] (another D is a ConfigError)."""
        evaluation.check_images(x, "x", self.mean.shape[0], pixels=False, values=False)
        return (x.detach().to(torch.float64).cpu() - self.mean) @ self.components.T

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images (N, D) float32 (not clipped) from codes z (N, k)."""
        return (z.to(torch.float64).cpu() @ self.components + self.mean).to(torch.float32)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """decode(encode(x)): the projection of x (N, D) on the k components, float32, not clipped."""
        return self.decode(self.encode(x))

    def truncate(self, k: int) -> PCA:
        """The PCA with only the first k components (1 <= k <= self.k)."""
        if not 1 <= k <= self.k:
            raise ConfigError(f"PCA k={k} is not allowed: it must be between 1 and {self.k}")
        return PCA(self.mean, self.components[:k], self.variances[:k])


def fit_pca(x_train: torch.Tensor, k: int) -> PCA:
    """Fit PCA with k components on training images x_train (N, D) in [0, 1].

    Uses the float64 covariance (chunked) and torch.linalg.eigh; seconds for 55,000 x 784 on
    one CPU core. k must be in [1, D] and below N (N images span at most N - 1 directions around
    their mean; more components would be arbitrary). Returns a PCA (float64 on the CPU).
    """
    evaluation.check_images(x_train, "x_train")
    x = x_train.detach().cpu()
    n, d = x.shape
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 1 <= k <= d:
        raise ConfigError(f"PCA k={k!r} is not allowed: it must be an integer between 1 and D={d}")
    if n < 2:
        raise ConfigError(f"PCA needs at least 2 training images; got {n}")
    if k > n - 1:
        raise ConfigError(f"PCA k={k} needs at least k + 1 = {k + 1} training images (N images span at most N - 1 "
                          f"directions around their mean); got {n}: give more images or a smaller k")
    mean = _chunked_mean(x)
    cov = _chunked_cross(x, x, mean, mean) / (n - 1)
    evals, evecs = torch.linalg.eigh(cov)
    order = torch.argsort(evals, descending=True)[:k]
    return PCA(mean=mean, components=evecs[:, order].T.contiguous(), variances=evals[order].clamp_min(0))


_CHUNK = 8192


def _chunked_mean(x: torch.Tensor) -> torch.Tensor:
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    for i in range(0, x.shape[0], _CHUNK):
        total += x[i:i + _CHUNK].to(torch.float64).sum(0)
    return total / x.shape[0]


def _chunked_cross(a: torch.Tensor, b: torch.Tensor, mean_a: torch.Tensor, mean_b: torch.Tensor) -> torch.Tensor:
    """sum_i (a_i - mean_a)^T (b_i - mean_b) in float64, (D_a, D_b)."""
    out = torch.zeros(a.shape[1], b.shape[1], dtype=torch.float64)
    for i in range(0, a.shape[0], _CHUNK):
        ca = a[i:i + _CHUNK].to(torch.float64) - mean_a
        cb = b[i:i + _CHUNK].to(torch.float64) - mean_b
        out += ca.T @ cb
    return out


def pca_reconstruction_scores(pca: PCA, x_test: torch.Tensor, ks: Sequence[int]) -> list[dict[str, float]]:
    """The compression baseline: psnr / psnr_dataset (dB) of PCA reconstructions for each k in ks.

    pca must have at least max(ks) components; x_test (N, D) in [0, 1]. Returns one dict per k
    with keys k, psnr, psnr_dataset (reconstructions clipped to [0, 1] by the metric).
    """
    out = []
    for k in ks:
        rec = pca.truncate(int(k)).reconstruct(x_test)
        out.append({"k": int(k), "psnr": evaluation.psnr(rec, x_test),
                    "psnr_dataset": evaluation.psnr_dataset(rec, x_test)})
    return out


# =============================================================================================
# Linear denoiser
# =============================================================================================

@dataclass
class LinearDenoiser:
    """The best affine denoiser x_hat = mean_x + W (y - mean_y), W = C_xy C_yy^-1.

    mean_x, mean_y: (D,) float64; weight: (D, D) float64; var: the noise it was fitted for
    (a variance sigma^2, or a (lo, hi) blind range; None when fitted from given pairs).
    """

    mean_x: torch.Tensor
    mean_y: torch.Tensor
    weight: torch.Tensor
    var: Any = None

    def __call__(self, noisy: torch.Tensor) -> torch.Tensor:
        """Denoise noisy images (N, D) in [0, 1]; returns float32 (N, D) clipped to [0, 1] on noisy's device.
        Another D than the one fitted is a ConfigError."""
        evaluation.check_images(noisy, "noisy", self.mean_y.shape[0], pixels=False, values=False)
        y = noisy.detach().to(torch.float64).cpu()
        out = (y - self.mean_y) @ self.weight.T + self.mean_x
        return out.clamp_(0, 1).to(torch.float32).to(noisy.device)


def fit_linear_denoiser_pairs(x_clean: torch.Tensor, y_noisy: torch.Tensor, ridge: float = 1e-6) -> LinearDenoiser:
    """Least-squares affine map from noisy y (N, D) to clean x (N, D), fitted in float64.

    C_yy gets ridge * mean(diag C_yy) added on its diagonal. With ridge=0 this is exactly ordinary
    least squares of x on [y, 1]. Returns a LinearDenoiser. Pairs of other shapes, fewer than 2
    pairs, or noisy images that are all the same (nothing to regress on) are a ConfigError.
    """
    evaluation.check_images(x_clean, "x_clean", pixels=False)
    evaluation.check_images(y_noisy, "y_noisy", x_clean.shape[1], pixels=False)
    if x_clean.shape != y_noisy.shape:
        raise ConfigError(f"x_clean {tuple(x_clean.shape)} and y_noisy {tuple(y_noisy.shape)} differ in shape; "
                          f"give one noisy image per clean image")
    if len(x_clean) < 2:
        raise ConfigError(f"the linear denoiser needs at least 2 (clean, noisy) pairs to fit its covariances; "
                          f"got {len(x_clean)}")
    x, y = x_clean.detach().cpu(), y_noisy.detach().cpu()
    mean_x, mean_y = _chunked_mean(x), _chunked_mean(y)
    c_yy = _chunked_cross(y, y, mean_y, mean_y)
    if not float(torch.diagonal(c_yy).sum()) > 0:
        raise ConfigError(f"the {len(y)} noisy images are all the same, so the linear denoiser has nothing to "
                          f"fit; give noisy images that differ (and a ridge > 0 for few of them)")
    c_yx = _chunked_cross(y, x, mean_y, mean_x)
    d = c_yy.shape[0]
    c_yy += ridge * float(torch.diagonal(c_yy).mean()) * torch.eye(d, dtype=torch.float64)
    weight = torch.linalg.solve(c_yy, c_yx).T.contiguous()  # C_xy C_yy^-1 (C_yy symmetric)
    return LinearDenoiser(mean_x=mean_x, mean_y=mean_y, weight=weight)


def fit_linear_denoiser(x_clean_train: torch.Tensor, var: noise.NoiseSpec, seed: int = 0,
                        ridge: float = 1e-6) -> LinearDenoiser:
    """Fit the best linear denoiser for noise `var` on clean training images (N, D) in [0, 1].

    var: a variance sigma^2 (or a (lo, hi) blind range). One clipped noisy copy of every training
    image is drawn from a generator seeded with noise.derived_seed(seed, var, "linear-train").
    Returns a LinearDenoiser.
    """
    if isinstance(var, (tuple, list)):
        lo, hi = noise.check_variance_range(var)
        gen_seed = noise.derived_seed(seed, hi, f"linear-train-range-from-{lo:.10g}")
    else:
        gen_seed = noise.derived_seed(seed, noise.check_variance(var, allow_zero=False), "linear-train")
    gen = torch.Generator().manual_seed(gen_seed)
    x = x_clean_train.detach().cpu().to(torch.float32)
    y = noise.add_noise_spec(x, var, gen)
    den = fit_linear_denoiser_pairs(x, y, ridge=ridge)
    den.var = var
    return den


# =============================================================================================
# Applying a denoiser
# =============================================================================================

def check_param(method: str, value: Any) -> Any:
    """Refuse a parameter `method` cannot take, with a ConfigError naming it, what it means and
    what is allowed: a whole number >= 1 for an integer parameter (median size, pca k), a finite
    number > 0 otherwise (scikit-image's tv divided by a weight of 0, scipy's median failed on a
    size of 0, a NaN gaussian sigma returned the noisy input, a negative grid value broke the
    grid extension with a ZeroDivisionError; a size of 2.7 was silently 2). Methods without a
    parameter take anything (it is ignored). Returns the value."""
    info = METHOD_INFO[method]
    if info.param_name is None:
        return value
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if info.integer:
        if not real or not math.isfinite(value) or value != int(value) or value < 1:
            raise ConfigError(f"baseline {method!r}: {info.param_name}={value!r} is not allowed; it must be a "
                              f"whole number >= 1, e.g. {info.grid[1]}")
    elif not real or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"baseline {method!r}: {info.param_name}={value!r} is not allowed; it must be a "
                          f"finite number > 0, e.g. {info.grid[len(info.grid) // 2]}")
    return value


def _check_shape(images: torch.Tensor, image_shape: Sequence[int], name: str = "noisy") -> tuple[int, int]:
    evaluation.check_images(images, name, pixels=False, values=False)
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 2 or images.dim() != 2 or shape[0] * shape[1] != images.shape[1]:
        raise ConfigError(f"image_shape {tuple(image_shape)} does not match images of shape "
                          f"{tuple(images.shape)}; give (H, W) with H*W = D")
    return shape


def _as_stack(images: torch.Tensor, image_shape: tuple[int, int]) -> np.ndarray:
    return images.detach().cpu().to(torch.float64).numpy().reshape(len(images), *image_shape)


def _from_stack(stack: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    out = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32)).reshape(stack.shape[0], like.shape[1])
    return out.clamp_(0, 1).to(like.device)


def _per_image(fn: Callable[[np.ndarray], np.ndarray], stack: np.ndarray) -> np.ndarray:
    out = np.empty_like(stack)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, img in enumerate(stack):
            out[i] = fn(img)
    return out


def bm3d_available() -> bool:
    """True when the optional `bm3d` package can be imported."""
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


def _noise_sigma(var: float | None, method: str) -> float:
    if var is None:
        raise ConfigError(f"baseline {method!r} needs the noise variance var (sigma^2 on the [0, 1] scale)")
    return noise.sigma(var)


def _gaussian(stack, param, var, model):
    from scipy.ndimage import gaussian_filter
    return gaussian_filter(stack, sigma=(0, float(param), float(param)), mode="reflect")


def _median(stack, param, var, model):
    from scipy.ndimage import median_filter
    size = int(param)
    return stack.copy() if size == 1 else median_filter(stack, size=(1, size, size), mode="reflect")


def _nlm(stack, param, var, model):
    from skimage.restoration import denoise_nl_means
    s = _noise_sigma(var, "nlm")
    return _per_image(lambda im: denoise_nl_means(im, patch_size=NLM_PATCH_SIZE, patch_distance=NLM_PATCH_DISTANCE,
                                                  h=float(param) * s, sigma=0.0, fast_mode=True), stack)


def _wavelet(stack, param, var, model):
    from skimage.restoration import denoise_wavelet
    s = _noise_sigma(var, "wavelet") * float(param)
    return _per_image(lambda im: denoise_wavelet(im, sigma=s, wavelet=WAVELET_NAME, mode="soft",
                                                 wavelet_levels=WAVELET_LEVELS, method=WAVELET_METHOD,
                                                 rescale_sigma=True), stack)


def _tv(stack, param, var, model):
    from skimage.restoration import denoise_tv_chambolle
    return _per_image(lambda im: denoise_tv_chambolle(im, weight=float(param)), stack)


def _bm3d(stack, param, var, model):
    import bm3d
    profile = bm3d.BM3DProfile()
    profile.num_threads = 1
    profile.nf = BM3D_NF
    s = _noise_sigma(var, "bm3d") * float(param)
    return _per_image(lambda im: np.asarray(bm3d.bm3d(im, sigma_psd=s, profile=profile)).reshape(im.shape), stack)


_STACK_FUNCS = {"gaussian": _gaussian, "median": _median, "nlm": _nlm, "wavelet": _wavelet, "tv": _tv, "bm3d": _bm3d}


def apply_denoiser(method: str, param: Any, noisy: torch.Tensor, image_shape: Sequence[int],
                   var: float | None = None, model: PCA | LinearDenoiser | None = None) -> torch.Tensor:
    """Denoise noisy images (N, D) in [0, 1] with one baseline; returns float32 (N, D) in [0, 1].

    method: one of METHODS. param: its parameter (see METHOD_INFO[method].param_name; None for
    noisy and linear; `check_param` says what is allowed). image_shape: (H, W) with H*W = D. var: the true noise variance sigma^2
    (needed by nlm, wavelet, bm3d). model: a fitted PCA with at least `param` components (pca) or
    a LinearDenoiser (linear). bm3d raises ConfigError when the package is not installed.
    """
    shape = _check_shape(noisy, image_shape)
    if method in METHOD_INFO:
        check_param(method, param)
    if method == "noisy":
        return noisy.detach().to(torch.float32).clamp(0, 1)
    if method == "pca":
        if not isinstance(model, PCA):
            raise ConfigError("baseline 'pca' needs model=fit_pca(clean training images, k_max)")
        return model.truncate(int(param)).reconstruct(noisy).clamp_(0, 1).to(noisy.device)
    if method == "linear":
        if not isinstance(model, LinearDenoiser):
            raise ConfigError("baseline 'linear' needs model=fit_linear_denoiser(clean training images, var)")
        return model(noisy)
    if method not in _STACK_FUNCS:
        raise ConfigError(f"unknown baseline {method!r}; choose from {', '.join(METHODS)}")
    if method == "bm3d" and not bm3d_available():
        raise ConfigError(BM3D_MISSING_NOTE)
    stack = _STACK_FUNCS[method](_as_stack(noisy, shape), param, var, model)
    return _from_stack(stack, noisy)


# =============================================================================================
# Parameter selection
# =============================================================================================

@dataclass
class Selection:
    """Result of choosing a parameter on validation images.

    best: the chosen parameter; best_psnr: its mean validation psnr (dB); scores: (param, psnr)
    pairs in increasing parameter order, every value tried; at_edge: the best is still at an edge
    of the (extended) grid although the method's bounds allow going further (a hard bound such
    as median size 1, the identity, does not count).
    """

    best: Any
    best_psnr: float
    scores: list[tuple[Any, float]]
    at_edge: bool


def _extend_value(info: MethodInfo, values: list, side: str, limit: float) -> Any | None:
    """One more grid value beyond the low or high edge, or None at a hard bound.

    Real parameters step geometrically (the ratio of the two edge values, rounded to 6 decimals),
    integer ones arithmetically (the difference of the two edge values).
    """
    if len(values) < 2:
        return None
    if side == "high":
        a, b = values[-2], values[-1]
        new = b + (b - a) if info.integer else round(b * b / a, 6)
        new = min(new, info.upper, limit)
        return new if new > b else None
    a, b = values[0], values[1]
    new = a - (b - a) if info.integer else round(a * a / b, 6)
    new = max(new, info.lower)
    return new if new < a else None


def select_param(method: str, noisy_val: torch.Tensor, clean_val: torch.Tensor, image_shape: Sequence[int],
                 var: float | None = None, grid: Sequence | None = None,
                 model: PCA | LinearDenoiser | None = None, extend: int = 4, exhaustive: bool = False) -> Selection:
    """Choose a baseline's parameter maximizing mean psnr (dB) on validation images.

    noisy_val / clean_val: (N, D) in [0, 1]; grid: candidate values (default METHOD_INFO grid);
    var: the noise variance (for nlm, wavelet, bm3d); model: the fitted PCA (its k bounds the
    grid) for pca. The grid is searched for its peak (`_peak_search`: 5 of 12 values, 4 of 9;
    the best value of the whole grid whenever validation psnr rises to one peak and falls after
    it, as every curve of the default study did); exhaustive=True scores every value. When the
    best value lies at an edge of the grid, up to `extend` more values are tried beyond that edge
    (within the method's bounds). Ties go to the smaller value. Methods without a parameter
    return best=None.
    """
    info = METHOD_INFO.get(method)
    if info is None:
        raise ConfigError(f"unknown baseline {method!r}; choose from {', '.join(METHODS)}")
    if info.param_name is None:
        out = apply_denoiser(method, None, noisy_val, image_shape, var=var, model=model)
        p = evaluation.psnr(out, clean_val)
        return Selection(best=None, best_psnr=p, scores=[(None, p)], at_edge=False)
    values = sorted(set(check_param(method, v) for v in (grid if grid is not None else info.grid)))
    limit = model.k if (method == "pca" and isinstance(model, PCA)) else math.inf
    values = [v for v in values if v <= limit]
    if not values:
        tried = list(grid if grid is not None else info.grid)
        raise ConfigError(f"grid {tried} for baseline {method!r} has no usable value"
                          + (f": the pca has only {limit} components; fit it on more images or give a grid of "
                             f"k <= {limit}" if limit < math.inf else ""))
    scores: dict[Any, float] = {}

    def score(v: Any) -> float:
        if v not in scores:
            out = apply_denoiser(method, v, noisy_val, image_shape, var=var, model=model)
            scores[v] = evaluation.psnr(out, clean_val)
        return scores[v]

    def best_tried() -> Any:
        tried = [v for v in values if v in scores]
        return max(tried, key=lambda v: (scores[v], -values.index(v)))

    def edge(best: Any) -> str | None:
        return "low" if best == values[0] else "high" if best == values[-1] else None

    if exhaustive:
        for v in values:
            score(v)
    else:
        _peak_search(len(values), lambda i: score(values[i]))

    for _ in range(extend):
        side = edge(best_tried())
        new = None if side is None else _extend_value(info, values, side, limit)
        if new is None:
            break
        values = [new] + values if side == "low" else values + [new]
        score(new)
    best = best_tried()
    side = edge(best) if len(values) > 1 else None
    at_edge = side is not None and _extend_value(info, values, side, limit) is not None
    return Selection(best=_plain(best), best_psnr=scores[best],
                     scores=[(_plain(v), scores[v]) for v in values if v in scores], at_edge=at_edge)


def _peak_search(n: int, score: Callable[[int], float]) -> None:
    """Score enough of the indices 0..n-1 (score(i) caches its value) that the best scored index
    is the best of all when the scores rise to one peak and fall after it: a golden-section
    search on the indices, then every index of the last three. A tie between the two probes says
    nothing about where the peak is, so then every index left is scored."""
    lo, hi = 0, n - 1
    while hi - lo > 2:
        a = lo + round((hi - lo) * 0.382)
        b = max(a + 1, lo + round((hi - lo) * 0.618))
        sa, sb = score(a), score(b)
        if sa == sb:
            break
        lo, hi = (a, hi) if sa < sb else (lo, b)
    for i in range(lo, hi + 1):
        score(i)


def _plain(v: Any) -> Any:
    """JSON-friendly Python scalar."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


# =============================================================================================
# The study's entry point
# =============================================================================================

def subset_indices(n_total: int, size: int | None, seed: int = SUBSET_SEED) -> torch.Tensor:
    """The protocol's fixed subset of a split: the first `size` entries of a fixed permutation, sorted.

    n_total: images in the split; size: subset size (None or >= n_total: all images, in order).
    Returns int64 indices. The permutation depends only on (n_total, seed), so the same subset is
    used by every method; score an autoencoder on x[subset_indices(len(x), n)] and its noisy
    counterpart noisy_test_set(x, var, seed)[subset_indices(len(x), n)].
    """
    for name, value in (("n_total", n_total), ("subset size", size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0):
            raise ConfigError(f"{name} {value!r} is not allowed: it must be a whole number of images"
                              + (" (or None for all images)" if name == "subset size" else ""))
    if size is None or size >= n_total:
        return torch.arange(n_total)
    if size < 1:
        raise ConfigError(f"subset size {size} is not allowed: it must be at least 1 (or None for all images)")
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=gen)[:size].sort().values


@dataclass
class BaselineResult:
    """One denoising baseline scored at one noise level on the test split.

    method: a METHODS name; var / sigma: the noise variance sigma^2 and sigma ([0, 1] scale);
    param / param_name: the chosen parameter (None when the method has none); psnr and
    psnr_dataset (dB) and ssim of the output against the clean test images (None when skipped);
    n_images: test images scored; subset: True when those are subset_indices(n_test, n_images);
    subset_psnr, subset_psnr_dataset (dB), subset_ssim, subset_images: the same scores on the fixed
    subset of the test split (`subset_indices`; None / 0 when no subset was asked for), which every
    method and the autoencoders are scored on, so a method run on the subset only (bm3d: its psnr
    is its subset_psnr) compares with every other on the same images;
    seconds: wall time to fit, select and apply; seconds_per_1000: time to denoise 1,000 test
    images; val_psnr: the chosen parameter's validation psnr; val_images: validation images used;
    val_scores: [param, validation psnr] for every value tried; note: anything a reader must know.
    """

    method: str
    var: float
    sigma: float
    param: Any = None
    param_name: str | None = None
    psnr: float | None = None
    psnr_dataset: float | None = None
    ssim: float | None = None
    n_images: int = 0
    subset: bool = False
    subset_psnr: float | None = None
    subset_psnr_dataset: float | None = None
    subset_ssim: float | None = None
    subset_images: int = 0
    seconds: float = 0.0
    seconds_per_1000: float | None = None
    val_psnr: float | None = None
    val_images: int = 0
    val_scores: list = field(default_factory=list)
    note: str = ""

    @property
    def detail(self) -> str:
        """The chosen parameter and the note, for tables (e.g. "h/sigma=0.7")."""
        chosen = f"{self.param_name}={self.param}" if self.param_name else ""
        return "; ".join(x for x in (chosen, self.note) if x)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable dict of every field, plus `detail`."""
        return {**dataclasses.asdict(self), "detail": self.detail}


def _report(progress: bool | Callable[[str], None], msg: str) -> None:
    if callable(progress):
        progress(msg)
    elif progress:
        print(f"[baselines] {msg}", file=sys.stderr, flush=True)


def denoising_pca(x_train: torch.Tensor) -> PCA:
    """The PCA the "pca" denoising baseline projects on: fitted on clean training images x_train
    (N, D) in [0, 1] with as many components as its validation grid may pick (at most D and N - 1).
    Fit it once and pass it to every denoising_baselines call on the same x_train."""
    return fit_pca(x_train, min(x_train.shape[1], max(METHOD_INFO["pca"].grid) * 2, len(x_train) - 1))


def denoising_baselines(x_train: torch.Tensor, x_val: torch.Tensor, x_test: torch.Tensor,
                        var: float | Sequence[float], image_shape: Sequence[int], seed: int = 0,
                        methods: Sequence[str] | None = None, subset: int | None = 1000,
                        progress: bool | Callable[[str], None] = False, with_ssim: bool = True,
                        pca: PCA | None = None,
                        on_result: Callable[[BaselineResult], None] | None = None) -> list[BaselineResult]:
    """Score every denoising baseline at one or more noise levels, the protocol's way.

    x_train / x_val / x_test: clean (N, D) images in [0, 1] of the three splits; var: a noise
    variance sigma^2 or a sequence of them; image_shape: (H, W). The test noise is
    noise.noisy_test_set(x_test, var, seed) and the validation noise
    noise.noisy_validation_set(x_val, var, seed), so autoencoders scored with the same seed see
    the same noisy images. methods: names from METHODS (default all; bm3d without the package
    gives a result with psnr None and a note; one name may be given as a string). subset: test
    images for slow methods (bm3d), see subset_indices; None scores all; the other methods are
    scored on the whole split and on this subset too (subset_psnr, ...). pca:
    denoising_pca(x_train), fitted once for several calls (its rows' seconds then leave the
    fit out).
    progress: True prints a line per method to stderr, or pass a callable taking the line.
    on_result: called with each BaselineResult as soon as it is done (for progress bars).
    with_ssim: also compute SSIM. Returns one BaselineResult per
    (variance, method), variances in the order given.
    """
    variances = list(var) if isinstance(var, (list, tuple)) else [var]
    variances = [noise.check_variance(v, allow_zero=False) for v in variances]
    methods = list(METHODS if methods is None else [methods] if isinstance(methods, str) else methods)
    for m in methods:
        if m not in METHOD_INFO:
            raise ConfigError(f"unknown baseline {m!r}; choose from {', '.join(METHODS)}")
    shape = _check_shape(x_test, image_shape, "x_test")
    for name, x in (("x_train", x_train), ("x_val", x_val), ("x_test", x_test)):
        evaluation.check_images(x, name, shape[0] * shape[1])
        if len(x) == 0:
            raise ConfigError(f"{name} holds no images; every split needs some (the baselines fit on x_train, "
                              f"choose their parameters on x_val and are scored on x_test)")
    if "linear" in methods and len(x_train) < 2:
        raise ConfigError(f"the linear baseline needs at least 2 training images; x_train has {len(x_train)}")
    if pca is not None and pca.mean.shape[0] != shape[0] * shape[1]:
        raise ConfigError(f"pca was fitted on {pca.mean.shape[0]}-pixel images but these have {shape[0] * shape[1]}; "
                          f"fit it on these images' x_train: denoising_pca(x_train)")
    x_train, x_val, x_test = (t.detach().cpu().to(torch.float32) for t in (x_train, x_val, x_test))

    pca_seconds = 0.0
    if "pca" in methods and pca is None:
        t0 = time.perf_counter()
        pca = denoising_pca(x_train)
        pca_seconds = time.perf_counter() - t0
        _report(progress, f"PCA fitted with k={pca.k} in {pca_seconds:.1f} s")

    results = []
    for v in variances:
        noisy_val = noise.noisy_validation_set(x_val, v, seed)
        noisy_test = noise.noisy_test_set(x_test, v, seed)
        for m in methods:
            r = _run_one(m, v, x_train, x_val, noisy_val, x_test, noisy_test, shape, seed, subset, with_ssim, pca)
            if m == "pca":
                r.seconds = round(r.seconds + pca_seconds, 3)  # the shared fit counts for every level
            results.append(r)
            _report(progress, f"var={v:g} {m}: psnr={_fmt(r.psnr)} dB param={r.param} "
                              f"on {r.n_images} images in {r.seconds:.1f} s {r.note}".rstrip())
            if on_result is not None:
                on_result(r)
    return results


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _run_one(method: str, var: float, x_train: torch.Tensor, x_val: torch.Tensor, noisy_val: torch.Tensor,
             x_test: torch.Tensor, noisy_test: torch.Tensor, shape: tuple[int, int], seed: int,
             subset: int | None, with_ssim: bool, pca: PCA | None) -> BaselineResult:
    info = METHOD_INFO[method]
    result = BaselineResult(method=method, var=var, sigma=round(math.sqrt(var), 6), param_name=info.param_name)
    if method == "bm3d" and not bm3d_available():
        result.note = BM3D_MISSING_NOTE
        return result
    t0 = time.perf_counter()
    notes = []
    model: PCA | LinearDenoiser | None = None
    if method == "pca":
        model = pca
    elif method == "linear":
        model = fit_linear_denoiser(x_train, var, seed=seed)

    val_idx = subset_indices(len(x_val), info.val_size)
    sel = select_param(method, noisy_val[val_idx], x_val[val_idx], shape, var=var, model=model)
    if sel.at_edge:
        notes.append(f"best {info.param_name} at the edge of the grid tried")
    result.param, result.val_psnr, result.val_images = sel.best, sel.best_psnr, len(val_idx)
    result.val_scores = [[p, round(s, 4)] for p, s in sel.scores]

    idx = subset_indices(len(x_test), subset if info.uses_subset else None)
    sub_idx = subset_indices(len(x_test), subset) if subset else None
    result.subset = len(idx) < len(x_test)
    clean, noisy_in = x_test[idx], noisy_test[idx]
    t1 = time.perf_counter()
    out = apply_denoiser(method, sel.best, noisy_in, shape, var=var, model=model)
    result.seconds_per_1000 = round((time.perf_counter() - t1) / len(idx) * 1000, 4)
    result.psnr = evaluation.psnr(out, clean)
    result.psnr_dataset = evaluation.psnr_dataset(out, clean)
    if with_ssim:
        result.ssim = evaluation.ssim(out, clean, shape)
    result.n_images = len(idx)
    if sub_idx is not None:  # the fixed subset every method is also scored on (the same images as `idx` for bm3d)
        part = slice(None) if info.uses_subset else sub_idx
        sub_out, sub_clean = out[part], x_test[sub_idx]
        result.subset_psnr = evaluation.psnr(sub_out, sub_clean)
        result.subset_psnr_dataset = evaluation.psnr_dataset(sub_out, sub_clean)
        result.subset_ssim = evaluation.ssim(sub_out, sub_clean, shape) if with_ssim else None
        result.subset_images = len(sub_idx)
    result.seconds = round(time.perf_counter() - t0, 3)
    if result.subset:
        notes.append(f"scored on the fixed subset of {len(idx)} test images (subset_indices)")
    result.note = "; ".join(notes)
    return result
