"""The protocol's noise model for denoising: clipped additive white Gaussian noise.

A noisy image is clip(x + e, 0, 1) with e drawn i.i.d. from N(0, sigma^2) per pixel. Images are
float tensors of shape (N, D) with pixels in [0, 1]. Users give the noise as the **variance**
sigma^2 on that [0, 1] scale (0.09 means sigma = 0.3, i.e. about 77 of 255 grey levels).

Three ways to draw noise:

- `add_noise(x, var, generator)`: one fixed variance (training pairs, the "fixed level" models).
- `add_noise_range(x, (lo, hi), generator)`: the blind range; each image gets its own sigma,
  drawn uniformly between sqrt(lo) and sqrt(hi) (sigma is uniform, not the variance).
- `noisy_test_set(x, var, seed)` / `noisy_validation_set(...)`: the protocol's fixed evaluation
  noise, the same tensor on every call, so every method (autoencoder or baseline) is scored on
  exactly the same noisy images.
"""
from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Sequence

import torch

from ..errors import ConfigError

EVAL_VARIANCES: tuple[float, ...] = (0.01, 0.04, 0.09, 0.16, 0.25)
"""The protocol's evaluation grid of noise variances sigma^2 (sigma 0.1 to 0.5)."""

NoiseSpec = float | tuple[float, float]
"""A fixed variance sigma^2, or a blind range (lo, hi) of variances."""


# ---------------------------------------------------------------------------------------------
# Validation helpers
# ---------------------------------------------------------------------------------------------

def check_variance(var: float, *, allow_zero: bool = True, name: str = "noise variance") -> float:
    """Return `var` as a float after checking it is a finite variance in [0, 1] (or (0, 1]).

    Raises ConfigError naming the value and the allowed range otherwise.
    """
    try:
        value = float(var)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} {var!r} is not a number; give the variance sigma^2 in (0, 1], e.g. 0.09") from None
    low = "[0, 1]" if allow_zero else "(0, 1]"
    if not math.isfinite(value) or value < 0 or value > 1 or (value == 0 and not allow_zero):
        raise ConfigError(
            f"{name} {var!r} is not allowed: it must be a finite variance sigma^2 in {low} "
            "on the [0, 1] pixel scale, e.g. 0.09 for sigma 0.3"
        )
    return value


def check_variance_range(var_range: Sequence[float], name: str = "noise variance range") -> tuple[float, float]:
    """Return (lo, hi) as floats after checking 0 < lo < hi <= 1; raises ConfigError otherwise."""
    if len(var_range) != 2:
        raise ConfigError(f"{name} {tuple(var_range)!r} must be two variances (lo, hi), e.g. (0.01, 0.25)")
    lo = check_variance(var_range[0], allow_zero=False, name=f"{name} lower end")
    hi = check_variance(var_range[1], allow_zero=False, name=f"{name} upper end")
    if not lo < hi:
        raise ConfigError(f"{name} {(lo, hi)!r}: the lower variance must be below the upper, as in (0.01, 0.25)")
    return lo, hi


def sigma(var: float) -> float:
    """The noise standard deviation sigma = sqrt(var) for a variance sigma^2 on the [0, 1] scale."""
    return math.sqrt(check_variance(var))


def noise_label(spec: NoiseSpec) -> str:
    """A short human label for a fixed variance or a blind range, e.g. 'sigma^2=0.09 (sigma=0.3)'."""
    if isinstance(spec, (tuple, list)):
        lo, hi = check_variance_range(spec)
        return f"sigma^2 in [{lo:g}, {hi:g}] (sigma uniform in [{math.sqrt(lo):.3g}, {math.sqrt(hi):.3g}])"
    var = check_variance(spec)
    return f"sigma^2={var:g} (sigma={math.sqrt(var):.3g})"


def inputs_label(spec: NoiseSpec | None) -> str:
    """What a score was computed on, for printed lines: 'clean inputs' (spec None), or the noisy
    inputs of a variance or blind range, e.g. 'noisy inputs sigma^2=0.09 (sigma=0.3)'."""
    return "clean inputs" if spec is None else f"noisy inputs {noise_label(spec)}"


# ---------------------------------------------------------------------------------------------
# Drawing noise
# ---------------------------------------------------------------------------------------------

def make_generator(generator: torch.Generator | int, device: torch.device | str | None = None) -> torch.Generator:
    """Return `generator` itself, or a new torch.Generator on `device` seeded with the int given."""
    if isinstance(generator, torch.Generator):
        return generator
    if isinstance(generator, bool) or not isinstance(generator, int):
        raise ConfigError(f"generator {generator!r} must be a torch.Generator or an int seed")
    gen = torch.Generator(device=torch.device(device) if device is not None else "cpu")
    gen.manual_seed(generator)
    return gen


def _float_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.float32


def _standard_normal(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """N(0, 1) draws shaped like x, drawn on the generator's device and moved to x's device."""
    e = torch.randn(x.shape, generator=gen, device=gen.device, dtype=_float_dtype(x))
    return e.to(x.device)


def check_clean(x, name: str = "x") -> None:
    """Refuse what noise cannot be added to: a torch tensor (any shape, integer dtypes become
    float32) of clean pixels in [0, 1]. ConfigError naming `name` and the fix otherwise (0-255
    pixels came back as all-white noisy images, clip(x + e, 0, 1) = 1 almost everywhere)."""
    from .metrics import check_values

    if not isinstance(x, torch.Tensor):
        raise ConfigError(f"{name} is a {type(x).__name__}, not a torch tensor; convert it, e.g. "
                          f"torch.from_numpy(a).float() / 255 for uint8 pixels (autoenc.load gives tensors)")
    check_values(x, name)


def add_noise(x: torch.Tensor, var: float, generator: torch.Generator | int, clip: bool = True) -> torch.Tensor:
    """Return clip(x + e, 0, 1) with e ~ N(0, var) i.i.d. per pixel.

    x: (N, D) (or any shape) tensor, pixels in [0, 1] (anything else is a ConfigError,
    `check_clean`). var: the variance sigma^2 in [0, 1] on the
    [0, 1] scale; var = 0 returns a copy of x. generator: a torch.Generator (used as is; noise is
    drawn on its device and moved to x's) or an int seed (a new generator on x's device).
    clip=False returns x + e unclipped (for tests and analysis). Returns a new tensor, x unchanged.
    """
    check_variance(var)
    check_clean(x)
    return apply_noise(x, var, generator, clip)


def apply_noise(x: torch.Tensor, var: float, generator: torch.Generator | int, clip: bool = True) -> torch.Tensor:
    """add_noise without checking x (training's batches, checked once by `training.check_inputs`)."""
    var = check_variance(var)
    x = x.to(_float_dtype(x))
    if var == 0:
        return x.clone()
    gen = make_generator(generator, x.device)
    noisy = x + math.sqrt(var) * _standard_normal(x, gen)
    return noisy.clamp_(0, 1) if clip else noisy


def sample_sigmas(n: int, var_range: tuple[float, float], generator: torch.Generator | int,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """Draw n per-image noise standard deviations sigma ~ Uniform(sqrt(lo), sqrt(hi)).

    var_range: (lo, hi) variances sigma^2 with 0 < lo < hi <= 1. Returns a float32 tensor (n,)
    on `device` (default: the generator's device).
    """
    lo, hi = check_variance_range(var_range)
    gen = make_generator(generator, device)
    u = torch.rand(n, generator=gen, device=gen.device)
    s = math.sqrt(lo) + (math.sqrt(hi) - math.sqrt(lo)) * u
    return s.to(device) if device is not None else s


def add_noise_sigmas(x: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator | int,
                     clip: bool = True) -> torch.Tensor:
    """Return clip(x + sigmas[i] * z, 0, 1) per image i, z ~ N(0, 1) i.i.d. per pixel.

    x: (N, ...) pixels in [0, 1]; sigmas: (N,) standard deviations >= 0 on the [0, 1] scale.
    Other inputs are a ConfigError naming the argument and the fix.
    """
    check_clean(x)
    if not isinstance(sigmas, torch.Tensor) or sigmas.shape != (x.shape[0],):
        raise ConfigError(f"sigmas has shape {tuple(getattr(sigmas, 'shape', ()))}; expected a tensor "
                          f"({x.shape[0]},), one standard deviation per image")
    if len(sigmas) and not (torch.isfinite(sigmas).all() and float(sigmas.min()) >= 0):
        raise ConfigError("sigmas holds negative or non-finite values; give standard deviations sigma >= 0 "
                          "(the square roots of the variances sigma^2)")
    return apply_noise_sigmas(x, sigmas, generator, clip)


def apply_noise_sigmas(x: torch.Tensor, sigmas: torch.Tensor, generator: torch.Generator | int,
                      clip: bool = True) -> torch.Tensor:
    """add_noise_sigmas without checking its inputs (training's batches)."""
    x = x.to(_float_dtype(x))
    gen = make_generator(generator, x.device)
    scale = sigmas.to(device=x.device, dtype=x.dtype).reshape(-1, *([1] * (x.dim() - 1)))
    noisy = x + scale * _standard_normal(x, gen)
    return noisy.clamp_(0, 1) if clip else noisy


def add_noise_range(x: torch.Tensor, var_range: tuple[float, float], generator: torch.Generator | int,
                    clip: bool = True) -> torch.Tensor:
    """Blind-range noise: each image gets its own sigma ~ Uniform(sqrt(lo), sqrt(hi)), then as add_noise.

    x: (N, D) pixels in [0, 1]; var_range: (lo, hi) variances sigma^2, 0 < lo < hi <= 1. The
    generator (or int seed) draws the N sigmas first, then the pixel noise. Returns (N, D).
    x outside [0, 1] is a ConfigError (`check_clean`).
    """
    check_clean(x)
    x = x.to(_float_dtype(x))
    gen = make_generator(generator, x.device)
    sig = sample_sigmas(x.shape[0], var_range, gen)
    return apply_noise_sigmas(x, sig, gen, clip=clip)


def add_noise_spec(x: torch.Tensor, spec: NoiseSpec, generator: torch.Generator | int,
                   clip: bool = True) -> torch.Tensor:
    """add_noise for a float variance, add_noise_range for a (lo, hi) tuple of variances."""
    if isinstance(spec, (tuple, list)):
        return add_noise_range(x, tuple(spec), generator, clip=clip)
    return add_noise(x, spec, generator, clip=clip)


# ---------------------------------------------------------------------------------------------
# The protocol's fixed evaluation noise
# ---------------------------------------------------------------------------------------------

def derived_seed(seed: int, var: float, purpose: str = "test") -> int:
    """A 63-bit seed derived deterministically from (seed, var, purpose) (SHA-256, platform independent).

    var is rounded to 10 significant digits, so 0.09 and 0.3**2 give the same seed. A seed that
    is not a whole number is a ConfigError (1.5 gave seed 1's noise).
    """
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ConfigError(f"seed {seed!r} is not allowed: give a whole number, e.g. 0")
    key = f"autoenc-noise|{purpose}|{int(seed)}|{float(var):.10g}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") >> 1


def _fixed_noisy_set(x: torch.Tensor, var: float, seed: int, purpose: str, clip: bool) -> torch.Tensor:
    var = check_variance(var)
    check_clean(x)
    gen = torch.Generator(device="cpu").manual_seed(derived_seed(seed, var, purpose))
    noisy = apply_noise(x.detach().cpu(), var, gen, clip=clip)
    return noisy.to(x.device)


def noisy_test_set(x: torch.Tensor, var: float, seed: int = 0, clip: bool = True) -> torch.Tensor:
    """The protocol's fixed noisy test images: clip(x + e, 0, 1), e ~ N(0, var), from a fixed seed.

    x: the clean test images (N, D) in [0, 1]; var: the variance sigma^2. The noise comes from a
    CPU generator seeded with derived_seed(seed, var, "test"), so the result is identical on every
    call, process and device (it is moved to x's device afterwards), and every method scored with
    the same (seed, var) sees exactly the same noisy images. The clean images are the same at every
    level; the noise differs between levels (each level has its own derived seed, not a rescaled
    copy of one draw). To score on a subset, index the full result: noisy_test_set(x)[idx].
    Returns a new (N, D) tensor.
    """
    return _fixed_noisy_set(x, var, seed, "test", clip)


def noisy_validation_set(x: torch.Tensor, var: float, seed: int = 0, clip: bool = True) -> torch.Tensor:
    """Like noisy_test_set, for the validation split (its own derived seed, independent of the test noise).

    Used to choose baseline parameters and for early stopping of denoising autoencoders.
    """
    return _fixed_noisy_set(x, var, seed, "val", clip)


# ---------------------------------------------------------------------------------------------
# CLI parsing
# ---------------------------------------------------------------------------------------------

NOISE_FORMS: dict[str, str] = {
    "variance": "a variance like 0.09",
    "range": "a blind range like 0.01:0.25",
    "list": "a comma list like 0.01,0.04,0.09",
}
"""The forms a CLI noise string can take, as `parse_noise_var`'s `accept` names them, and how messages show them."""


def _forms(accept: Sequence[str]) -> str:
    """'a variance like 0.09, a blind range like 0.01:0.25, or ...': the accepted forms, for messages."""
    shown = [NOISE_FORMS[a] for a in accept]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + (", or " if len(shown) > 2 else " or ") + shown[-1]


def _parse_one(item: str, text: str, flag: str, forms: str) -> float:
    item = item.strip()
    if not item:
        raise ConfigError(f"{flag} {text!r} has an empty item; give {forms}")
    try:
        value = float(item)
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: {item!r} is not a number; give {forms}") from None
    if not math.isfinite(value) or not 0 < value <= 1:
        raise ConfigError(
            f"{flag} {text!r}: {item!r} is not allowed; each variance sigma^2 must be in (0, 1] "
            f"on the [0, 1] pixel scale (0.09 means sigma 0.3); give {forms}"
        )
    return value


def sigma_hint(spec: NoiseSpec | Sequence[float] | None) -> str | None:
    """A note for variances above the protocol's grid (EVAL_VARIANCES, up to 0.25 = sigma 0.5),
    where a standard deviation given by mistake lands ("0.3" meant as sigma 0.3 is variance 0.09):
    "note: --noise-var 0.3 is the variance sigma^2 (sigma = 0.548); for sigma = 0.3 give 0.09".
    None when every variance is within the grid."""
    values = [] if spec is None else list(spec) if isinstance(spec, (tuple, list)) else [spec]
    high = [v for v in values if v > max(EVAL_VARIANCES)]
    if not high:
        return None
    v = high[0]
    return (f"note: --noise-var {v:g} is the variance sigma^2 (sigma = {math.sqrt(v):.3g}), above the protocol's "
            f"levels (up to {max(EVAL_VARIANCES):g}, sigma 0.5); for sigma = {v:g} give {v * v:.4g}")


def parse_noise_var(text: str, flag: str = "--noise-var", accept: Sequence[str] = ("variance", "range", "list"),
                    ) -> float | tuple[float, float] | list[float]:
    """Parse a CLI noise string into a variance, a blind range, or a list of variances.

    "0.09" -> 0.09; "0.01:0.25" -> (0.01, 0.25) (blind range, sigma uniform between the square
    roots); "0.01,0.04,0.09" -> [0.01, 0.04, 0.09]. Every value is a variance sigma^2 in (0, 1] on
    the [0, 1] scale; a range needs lo < hi. accept: the forms the caller takes, from
    "variance", "range" and "list" (`NOISE_FORMS`); a string of another form is refused, and every
    message names only the accepted forms (`autoenc train` takes a variance or a range, `autoenc
    denoise` a variance or a list). Raises ConfigError naming the value and the accepted forms;
    `flag` is the option name used in the message.
    """
    unknown = [a for a in accept if a not in NOISE_FORMS]
    if unknown or not accept:
        raise ValueError(f"accept={tuple(accept)!r}: choose forms from {', '.join(NOISE_FORMS)}")
    forms = _forms(accept)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{flag} {text!r} is empty; give {forms}")
    s = text.strip()
    if ":" in s and "," in s:
        both = "range" in accept and "list" in accept
        raise ConfigError(f"{flag} {text!r}: " + ("use either a range lo:hi or a comma list, not both"
                                                   if both else "mixes ':' and ','") + f"; give {forms}")
    if ":" in s:
        if "range" not in accept:
            raise ConfigError(f"{flag} {text!r} is a blind range, which this command does not take; give {forms}")
        parts = s.split(":")
        if len(parts) != 2:
            raise ConfigError(f"{flag} {text!r}: a blind range has exactly two variances lo:hi, as in 0.01:0.25")
        lo, hi = (_parse_one(p, text, flag, forms) for p in parts)
        if not lo < hi:
            raise ConfigError(f"{flag} {text!r}: the lower variance must be below the upper, as in 0.01:0.25")
        return (lo, hi)
    if "," in s:
        if "list" not in accept:
            raise ConfigError(f"{flag} {text!r} is a list of variances, which this command does not take; "
                              f"give {forms}")
        return [_parse_one(p, text, flag, forms) for p in s.split(",")]
    if "variance" not in accept:
        raise ConfigError(f"{flag} {text!r} is a single variance, which this command does not take; give {forms}")
    return _parse_one(s, text, flag, forms)
