"""The protocol's noise model (autoenc.noise): moments, clipping, seeding, fixed test noise, blind
range, CLI parsing."""
from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autoenc.evaluation import noise
from autoenc.errors import ConfigError


def _images(n: int = 64, d: int = 784, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, d, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------------------------
# add_noise
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("var", noise.EVAL_VARIANCES)
def test_unclipped_noise_has_zero_mean_and_the_given_variance(var: float) -> None:
    x = _images(2000)  # 1.57 M draws
    e = (noise.add_noise(x, var, generator=1, clip=False) - x).double()
    n = e.numel()
    # 6 standard errors: the mean's is sigma/sqrt(n), the sample variance's is var*sqrt(2/n).
    assert abs(float(e.mean())) < 6 * math.sqrt(var / n)
    assert abs(float(e.var()) - var) < 6 * var * math.sqrt(2 / n)
    # and it is Gaussian: the fraction beyond 2 sigma is 4.55 %
    beyond = float((e.abs() > 2 * math.sqrt(var)).double().mean())
    assert abs(beyond - 0.0455) < 6 * math.sqrt(0.0455 * 0.9545 / n)


def test_clipped_noise_is_the_clipped_unclipped_noise_and_in_range() -> None:
    x = _images()
    clipped = noise.add_noise(x, 0.25, generator=7)
    raw = noise.add_noise(x, 0.25, generator=7, clip=False)
    assert clipped.min() >= 0 and clipped.max() <= 1
    assert raw.min() < 0 and raw.max() > 1  # sigma 0.5: clipping really happens
    assert torch.equal(clipped, raw.clamp(0, 1))


def test_same_seed_same_noise_different_seed_different_noise() -> None:
    x = _images()
    assert torch.equal(noise.add_noise(x, 0.09, 3), noise.add_noise(x, 0.09, 3))
    assert not torch.equal(noise.add_noise(x, 0.09, 3), noise.add_noise(x, 0.09, 4))
    gen = torch.Generator().manual_seed(3)
    first, second = noise.add_noise(x, 0.09, gen), noise.add_noise(x, 0.09, gen)
    assert torch.equal(first, noise.add_noise(x, 0.09, 3))  # an int seed = a fresh generator
    assert not torch.equal(first, second)  # a generator object advances


def test_zero_variance_returns_a_copy_and_input_is_untouched() -> None:
    x = _images()
    before = x.clone()
    out = noise.add_noise(x, 0.0, 0)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    noise.add_noise(x, 0.25, 0)
    assert torch.equal(x, before)


def test_dtype_is_kept_and_integer_input_becomes_float() -> None:
    assert noise.add_noise(_images().double(), 0.01, 0).dtype == torch.float64
    assert noise.add_noise(torch.zeros(2, 4, dtype=torch.uint8), 0.01, 0).dtype == torch.float32


@pytest.mark.parametrize("bad", [-0.01, 1.5, float("nan"), float("inf"), "x"])
def test_bad_variance_is_a_config_error(bad) -> None:
    with pytest.raises(ConfigError, match="variance"):
        noise.add_noise(_images(), bad, 0)


def test_bad_generator_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="generator"):
        noise.add_noise(_images(), 0.01, "seed")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_noise_is_drawn_on_the_images_device() -> None:
    x = _images().cuda()
    out = noise.add_noise(x, 0.09, 0)
    assert out.device == x.device
    assert noise.noisy_test_set(x, 0.09).device == x.device
    assert torch.equal(noise.noisy_test_set(x, 0.09).cpu(), noise.noisy_test_set(x.cpu(), 0.09))


def test_sigma_and_evaluation_grid() -> None:
    assert noise.sigma(0.09) == pytest.approx(0.3)
    assert noise.EVAL_VARIANCES == (0.01, 0.04, 0.09, 0.16, 0.25)
    assert [round(noise.sigma(v), 6) for v in noise.EVAL_VARIANCES] == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert noise.noise_label(0.09) == "sigma^2=0.09 (sigma=0.3)"
    assert "sigma uniform in [0.1, 0.5]" in noise.noise_label((0.01, 0.25))


# --------------------------------------------------------------------------------------------
# The fixed test / validation noise
# --------------------------------------------------------------------------------------------

def test_noisy_test_set_is_fixed_whatever_the_global_rng() -> None:
    x = _images()
    torch.manual_seed(123)
    a = noise.noisy_test_set(x, 0.09)
    torch.manual_seed(999)
    torch.rand(10)
    b = noise.noisy_test_set(x, 0.09)
    assert torch.equal(a, b)
    assert a.min() >= 0 and a.max() <= 1


def test_noisy_test_set_depends_on_level_seed_and_split() -> None:
    x = _images()
    a = noise.noisy_test_set(x, 0.09)
    assert not torch.equal(a, noise.noisy_test_set(x, 0.09, seed=1))
    assert not torch.equal(a, noise.noisy_validation_set(x, 0.09))
    # the same clean images at every level, with independent noise (not a rescaled copy)
    e1 = noise.noisy_test_set(x, 0.04, clip=False) - x
    e2 = noise.noisy_test_set(x, 0.16, clip=False) - x
    corr = torch.corrcoef(torch.stack([e1.flatten(), e2.flatten()]))[0, 1]
    assert abs(float(corr)) < 0.02
    # 0.3**2 is not exactly 0.09 but names the same level
    assert torch.equal(a, noise.noisy_test_set(x, 0.3 ** 2))


def test_derived_seed_is_a_stable_protocol_constant() -> None:
    # Changing this changes every published test score: only on purpose.
    assert noise.derived_seed(0, 0.09) == 3866231216229073235
    assert noise.derived_seed(0, 0.09, "val") != noise.derived_seed(0, 0.09)
    assert 0 <= noise.derived_seed(2**40, 1.0) < 2**63


# --------------------------------------------------------------------------------------------
# Blind range
# --------------------------------------------------------------------------------------------

def test_blind_range_gives_each_image_its_own_sigma_within_the_range() -> None:
    lo, hi = 0.01, 0.25
    x = torch.zeros(400, 4096)
    raw = noise.add_noise_range(x, (lo, hi), generator=5, clip=False)
    row_std = raw.double().std(dim=1)
    tol = 4 * 0.5 * math.sqrt(2 / 4096)  # 4 standard errors of a sample std at sigma 0.5 (relative 1/sqrt(2n))
    assert row_std.min() > math.sqrt(lo) * (1 - tol) and row_std.max() < math.sqrt(hi) * (1 + tol)
    # the sigmas drawn first from the same generator are the ones used
    sig = noise.sample_sigmas(400, (lo, hi), torch.Generator().manual_seed(5))
    assert torch.allclose(row_std.float(), sig, rtol=4 * math.sqrt(1 / (2 * 4096)))
    # sigma (not the variance) is uniform: its mean is the midpoint 0.3 and it spreads over the range
    many = noise.sample_sigmas(100_000, (lo, hi), 0)
    assert abs(float(many.mean()) - 0.3) < 0.002
    assert float(many.min()) >= 0.1 and float(many.max()) <= 0.5
    assert float(many.min()) < 0.101 and float(many.max()) > 0.499
    clipped = noise.add_noise_range(_images(), (lo, hi), 5)
    assert clipped.min() >= 0 and clipped.max() <= 1


def test_blind_range_is_seeded_and_validated() -> None:
    x = _images()
    assert torch.equal(noise.add_noise_range(x, (0.01, 0.25), 1), noise.add_noise_range(x, (0.01, 0.25), 1))
    assert torch.equal(noise.add_noise_spec(x, (0.01, 0.25), 1), noise.add_noise_range(x, (0.01, 0.25), 1))
    assert torch.equal(noise.add_noise_spec(x, 0.09, 1), noise.add_noise(x, 0.09, 1))
    with pytest.raises(ConfigError, match="lower variance must be below"):
        noise.add_noise_range(x, (0.25, 0.01), 1)
    with pytest.raises(ConfigError):
        noise.add_noise_range(x, (0.0, 0.25), 1)


# --------------------------------------------------------------------------------------------
# parse_noise_var
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("0.09", 0.09), (" 1 ", 1.0), ("1e-2", 0.01),
    ("0.01:0.25", (0.01, 0.25)), ("0.01 : 0.25", (0.01, 0.25)),
    ("0.01,0.04,0.09", [0.01, 0.04, 0.09]), ("0.25, 0.01", [0.25, 0.01]),
])
def test_parse_noise_var_valid(text: str, expected) -> None:
    got = noise.parse_noise_var(text)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("text, message", [
    ("0.5:0.1", "--noise-var '0.5:0.1': the lower variance must be below the upper, as in 0.01:0.25"),
    ("0.1:0.1", "lower variance must be below the upper"),
    ("abc", "'abc' is not a number"),
    ("0", "must be in (0, 1]"),
    ("-0.1", "must be in (0, 1]"),
    ("1.5", "must be in (0, 1]"),
    ("nan", "must be in (0, 1]"),
    ("inf", "must be in (0, 1]"),
    ("", "is empty"),
    ("0.01,,0.04", "empty item"),
    ("0.1:0.2:0.3", "exactly two variances"),
    ("0.01:0.04,0.09", "not both"),
])
def test_parse_noise_var_invalid(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        noise.parse_noise_var(text)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_parse_noise_var_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="^--train-noise 'x'"):
        noise.parse_noise_var("x", flag="--train-noise")


TRAIN_FORMS = ("variance", "range")   # what `autoenc train --noise-var` takes
DENOISE_FORMS = ("variance", "list")  # what `autoenc denoise --noise-var` takes


@pytest.mark.parametrize("accept, refused, ending", [
    (TRAIN_FORMS, "0.01,0.04", "; give a variance like 0.09 or a blind range like 0.01:0.25"),
    (DENOISE_FORMS, "0.01:0.25", "; give a variance like 0.09 or a comma list like 0.01,0.04,0.09"),
])
@pytest.mark.parametrize("text", ["x", "", "2", "0.01,,0.04", "0.01:0.04,0.09", None])
def test_each_commands_noise_messages_name_only_the_forms_it_takes(accept, refused, ending, text) -> None:
    text = refused if text is None else text  # the form the other command takes
    with pytest.raises(ConfigError) as info:
        noise.parse_noise_var(text, accept=accept)
    assert repr(text) in str(info.value)
    assert str(info.value).endswith(ending)


def test_each_command_takes_its_forms_and_refuses_the_others_saying_what_they_are() -> None:
    assert noise.parse_noise_var("0.01:0.25", accept=TRAIN_FORMS) == (0.01, 0.25)
    assert noise.parse_noise_var("0.09", accept=TRAIN_FORMS) == 0.09
    assert noise.parse_noise_var("0.01,0.09", accept=DENOISE_FORMS) == [0.01, 0.09]
    with pytest.raises(ConfigError, match=r"^--noise-var '0.01,0.04' is a list of variances, which this command "
                                          r"does not take; give a variance like 0.09 or a blind range"):
        noise.parse_noise_var("0.01,0.04", accept=TRAIN_FORMS)
    with pytest.raises(ConfigError, match=r"^--noise-var '0.01:0.25' is a blind range, which this command does "
                                          r"not take; give a variance like 0.09 or a comma list"):
        noise.parse_noise_var("0.01:0.25", accept=DENOISE_FORMS)
    with pytest.raises(ConfigError, match=r"is a single variance.*give a comma list like 0.01,0.04,0.09$"):
        noise.parse_noise_var("0.09", accept=("list",))
    with pytest.raises(ValueError, match="choose forms from variance, range, list"):
        noise.parse_noise_var("0.09", accept=("lists",))


def test_inputs_label_says_clean_or_which_noise() -> None:
    assert noise.inputs_label(None) == "clean inputs"
    assert noise.inputs_label(0.09) == "noisy inputs sigma^2=0.09 (sigma=0.3)"
    assert noise.inputs_label((0.01, 0.25)) == "noisy inputs sigma^2 in [0.01, 0.25] (sigma uniform in [0.1, 0.5])"


variances = st.floats(min_value=1e-6, max_value=1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(variances)
def test_parse_round_trips_any_variance(v: float) -> None:
    assert noise.parse_noise_var(repr(v)) == v


@settings(max_examples=200, deadline=None)
@given(variances, variances)
def test_parse_range_round_trips_or_explains(a: float, b: float) -> None:
    text = f"{a!r}:{b!r}"
    if a < b:
        assert noise.parse_noise_var(text) == (a, b)
    else:
        with pytest.raises(ConfigError, match="lower variance must be below the upper"):
            noise.parse_noise_var(text)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.:,-+eE naif ", max_size=12))
def test_parse_any_text_returns_valid_variances_or_a_config_error(text: str) -> None:
    try:
        got = noise.parse_noise_var(text)
    except ConfigError as exc:
        assert repr(text) in str(exc)
        return
    values = list(got) if isinstance(got, (tuple, list)) else [got]
    assert values and all(isinstance(v, float) and 0 < v <= 1 for v in values)
    if isinstance(got, tuple):
        assert got[0] < got[1]


_EVERY_WAY = {
    "add_noise": lambda x: noise.add_noise(x, 0.01, 0),
    "add_noise_range": lambda x: noise.add_noise_range(x, (0.01, 0.25), 0),
    "add_noise_sigmas": lambda x: noise.add_noise_sigmas(x, torch.full((len(x),), 0.1), 0),
    "add_noise_spec": lambda x: noise.add_noise_spec(x, 0.01, 0),
    "noisy_test_set": lambda x: noise.noisy_test_set(x, 0.01),
    "noisy_validation_set": lambda x: noise.noisy_validation_set(x, 0.01),
}


@pytest.mark.parametrize("way", list(_EVERY_WAY))
@settings(max_examples=20, deadline=None)
@given(top=st.floats(2.0, 255.0), dtype=st.sampled_from([torch.uint8, torch.float32, torch.float64]))
def test_pixels_outside_0_1_are_refused_not_noised_to_white(way, top, dtype) -> None:
    # 0-255 images came back as clip(x + e, 0, 1) = 1 almost everywhere, without a word
    x = (_images(8, 49) * top).to(dtype)
    x[0, 0] = top
    with pytest.raises(ConfigError, match=r"x has pixels from .*divide 0-255 images by 255"):
        _EVERY_WAY[way](x)
    with pytest.raises(ConfigError, match="not finite"):
        _EVERY_WAY[way](torch.full((2, 4), float("nan")))
    with pytest.raises(ConfigError, match="x is a ndarray, not a torch tensor"):
        _EVERY_WAY[way](_images(8, 49).numpy())
    assert _EVERY_WAY[way](_images(8, 49)).shape == (8, 49)  # pixels in [0, 1] are fine


def test_add_noise_sigmas_refuses_sigmas_that_are_not_one_standard_deviation_per_image() -> None:
    x = _images(4, 9)
    for bad, words in [(torch.full((3,), 0.1), r"sigmas has shape \(3,\); expected a tensor \(4,\)"),
                       ([0.1] * 4, r"sigmas has shape \(\)"),
                       (torch.tensor([0.1, -0.1, 0.1, 0.1]), "negative or non-finite"),
                       (torch.tensor([0.1, float("nan"), 0.1, 0.1]), "negative or non-finite")]:
        with pytest.raises(ConfigError, match=words):
            noise.add_noise_sigmas(x, bad, 0)


@pytest.mark.parametrize("seed", [1.5, 1.0, "1", None, True])
def test_the_fixed_noise_refuses_a_seed_that_is_not_a_whole_number(seed) -> None:
    # 1.5 gave seed 1's noise without a word; "a" was a ValueError from int()
    with pytest.raises(ConfigError, match="seed .* is not allowed: give a whole number"):
        noise.noisy_test_set(_images(4, 9), 0.09, seed=seed)
    import numpy as np
    assert torch.equal(noise.noisy_test_set(_images(4, 9), 0.09, seed=np.int64(1)),
                       noise.noisy_test_set(_images(4, 9), 0.09, seed=1))
