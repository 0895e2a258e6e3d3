"""Classical baselines (autoenc.baselines): PCA, the linear denoiser, the filter denoisers, parameter
selection on validation, and the study's entry point. Synthetic smooth images (three Gaussian blobs
per 28x28 image) stand in for the data; with real data (AUTOENC_DATA_DIR) the protocol's reference
figures are checked too."""
from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from autoenc.evaluation import baselines as B
from autoenc.evaluation import metrics as E
from autoenc.evaluation import noise
from autoenc.errors import ConfigError

SHAPE = (28, 28)
VAR = 0.09


def blobs(n: int, seed: int, size: int = 28) -> torch.Tensor:
    """n smooth images (n, size*size) in [0, 1]: three Gaussian blobs of random place, width, height."""
    g = torch.Generator().manual_seed(seed)
    r = torch.arange(size, dtype=torch.float32)
    yy, xx = r[:, None], r[None, :]
    imgs = torch.zeros(n, size, size)
    for _ in range(3):
        cy, cx = torch.rand(2, n, 1, 1, generator=g) * (size - 12) + 6
        w = torch.rand(n, 1, 1, generator=g) * 2.5 + 1.5
        a = torch.rand(n, 1, 1, generator=g) * 0.6 + 0.4
        imgs += a * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * w ** 2))
    return imgs.clamp(0, 1).reshape(n, -1)


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: on a busy 2-core machine, threaded eigh runs 20x slower than serial."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def synth():
    """Train (3,000), validation (48) and test (32) blob images, and the noisy val/test at VAR."""
    x_train, x_val, x_test = blobs(3000, 0), blobs(48, 1), blobs(32, 2)
    return {"train": x_train, "val": x_val, "test": x_test,
            "noisy_val": noise.noisy_validation_set(x_val, VAR),
            "noisy_test": noise.noisy_test_set(x_test, VAR)}


# --------------------------------------------------------------------------------------------
# PCA
# --------------------------------------------------------------------------------------------

def test_pca_full_rank_reconstructs_exactly_and_error_falls_with_k() -> None:
    x = blobs(300, 5, size=8)  # D = 64
    full = B.fit_pca(x, 64)
    assert torch.allclose(full.reconstruct(x), x, atol=1e-5)
    assert torch.allclose(full.components @ full.components.T, torch.eye(64, dtype=torch.float64), atol=1e-10)
    assert torch.all(full.variances[:-1] >= full.variances[1:])
    errors = [float(E.mse_per_image(full.truncate(k).reconstruct(x), x).mean()) for k in (1, 2, 4, 8, 16, 32, 64)]
    assert all(a > b for a, b in zip(errors, errors[1:]))
    # the variances are those of the data along the components
    codes = full.encode(x)
    assert torch.allclose(codes.var(0), full.variances, rtol=1e-6, atol=1e-12)
    assert torch.allclose(B.fit_pca(x, 5).components.abs(), full.components[:5].abs(), atol=1e-8)


def test_pca_refuses_more_components_than_the_images_span() -> None:
    x = torch.rand(100, 784)
    with pytest.raises(ConfigError, match=r"PCA k=500 needs at least k \+ 1 = 501 training images .* got 100"):
        B.fit_pca(x, 500)
    assert B.fit_pca(x, 99).k == 99
    with pytest.raises(ConfigError, match=r"x_train has pixels from [0-9.]+ to [0-9.]+; autoenc.s pixels are in \[0, 1\]"):
        B.fit_pca(x * 255, 10)


def test_pca_rejects_bad_k() -> None:
    x = blobs(20, 0, size=8)
    for bad in (0, 65, 2.5, True):
        with pytest.raises(ConfigError, match="PCA k="):
            B.fit_pca(x, bad)
    with pytest.raises(ConfigError, match="between 1 and 3"):
        B.fit_pca(x, 3).truncate(4)


def test_pca_reconstruction_scores_match_the_metric() -> None:
    x = blobs(200, 3)
    pca = B.fit_pca(x, 20)
    rows = B.pca_reconstruction_scores(pca, x, [5, 20])
    assert rows[0]["k"] == 5 and rows[0]["psnr"] < rows[1]["psnr"]
    assert rows[1]["psnr"] == pytest.approx(E.psnr(pca.reconstruct(x), x))
    assert rows[1]["psnr_dataset"] == pytest.approx(E.psnr_dataset(pca.reconstruct(x), x))


# --------------------------------------------------------------------------------------------
# The linear denoiser
# --------------------------------------------------------------------------------------------

def test_linear_denoiser_matches_the_gaussian_optimum() -> None:
    """x ~ N(mu, S), y = x + e, e ~ N(0, v I): the best estimator is mu + S (S + v I)^-1 (y - mu)."""
    g = torch.Generator().manual_seed(0)
    d, n, v = 12, 200_000, 0.04
    a = torch.randn(d, d, generator=g, dtype=torch.float64) * 0.1
    cov = a @ a.T + 0.01 * torch.eye(d, dtype=torch.float64)
    mu = torch.linspace(0.2, 0.8, d, dtype=torch.float64)
    x = mu + torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    y = x + math.sqrt(v) * torch.randn(n, d, generator=g, dtype=torch.float64)
    den = B.fit_linear_denoiser_pairs(x, y, ridge=0.0)
    w_opt = cov @ torch.linalg.inv(cov + v * torch.eye(d, dtype=torch.float64))
    assert torch.allclose(den.weight, w_opt, atol=0.01)
    assert torch.allclose(den.mean_x, mu, atol=0.005) and torch.allclose(den.mean_y, mu, atol=0.005)


def test_linear_denoiser_is_least_squares() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(500, 9, generator=g, dtype=torch.float64)
    y = (x + 0.3 * torch.randn(500, 9, generator=g, dtype=torch.float64)).clamp(0, 1)
    den = B.fit_linear_denoiser_pairs(x, y, ridge=0.0)
    design = torch.cat([y, torch.ones(500, 1, dtype=torch.float64)], 1)
    coef = torch.linalg.lstsq(design, x).solution  # (10, 9)
    assert torch.allclose(den.weight, coef[:9].T, atol=1e-9)
    fitted = den.mean_x + (y - den.mean_y) @ den.weight.T
    assert torch.allclose(fitted, design @ coef, atol=1e-9)


def test_fit_linear_denoiser_is_seeded(synth) -> None:
    a = B.fit_linear_denoiser(synth["train"][:500], VAR, seed=0)
    b = B.fit_linear_denoiser(synth["train"][:500], VAR, seed=0)
    c = B.fit_linear_denoiser(synth["train"][:500], VAR, seed=1)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    blind = B.fit_linear_denoiser(synth["train"][:500], (0.01, 0.25))
    assert blind.var == (0.01, 0.25)
    out = a(synth["noisy_test"])
    assert out.dtype == torch.float32 and out.shape == synth["noisy_test"].shape
    assert out.min() >= 0 and out.max() <= 1


# --------------------------------------------------------------------------------------------
# Each baseline beats the noisy input
# --------------------------------------------------------------------------------------------

# Test psnr (dB) at var 0.09 on the 32 blob images, measured when this test was written:
# noisy 12.90; gaussian 18.5, median 22.3, nlm 18.5, wavelet 18.2, tv 18.3, bm3d 19.0, pca 20.5,
# linear 25.4. (The clipped noise on the dark background is not zero-mean, which the median and
# the fitted denoisers handle best.) The asserted gains leave about 1.5 dB of slack.
NOISY_PSNR = 12.92
MIN_GAIN_DB = {"gaussian": 4.0, "median": 8.0, "nlm": 4.0, "wavelet": 4.0, "tv": 4.0, "bm3d": 4.5,
               "pca": 6.0, "linear": 11.0}


@pytest.mark.parametrize("method", list(MIN_GAIN_DB))
def test_each_baseline_improves_on_the_noisy_input(method: str, synth) -> None:
    if method == "bm3d" and not B.bm3d_available():
        pytest.skip(B.BM3D_MISSING_NOTE)
    model = {"pca": lambda: B.fit_pca(synth["train"], 200),
             "linear": lambda: B.fit_linear_denoiser(synth["train"], VAR)}.get(method, lambda: None)()
    n_val = 16 if method == "bm3d" else 48  # BM3D takes about 30 ms per image
    grid = (0.7, 1.0, 1.4) if method == "bm3d" else None
    sel = B.select_param(method, synth["noisy_val"][:n_val], synth["val"][:n_val], SHAPE, var=VAR,
                         model=model, grid=grid)
    out = B.apply_denoiser(method, sel.best, synth["noisy_test"], SHAPE, var=VAR, model=model)
    assert out.shape == synth["test"].shape and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1
    assert E.psnr(synth["noisy_test"], synth["test"]) == pytest.approx(NOISY_PSNR, abs=0.01)
    assert E.psnr(out, synth["test"]) > NOISY_PSNR + MIN_GAIN_DB[method]


def test_denoising_baselines_end_to_end(synth) -> None:
    methods = ["noisy", "gaussian", "median", "tv", "pca", "linear", "bm3d"]
    results = B.denoising_baselines(synth["train"], synth["val"][:16], synth["test"], [VAR], SHAPE,
                                    methods=methods, subset=8)
    by = {r.method: r for r in results}
    assert [r.method for r in results] == methods
    one = B.denoising_baselines(synth["train"], synth["val"][:16], synth["test"], VAR, SHAPE, methods="noisy")
    assert [r.method for r in one] == ["noisy"]  # a string is one name (it was walked letter by letter: 'n')
    noisy = by["noisy"]
    # the noisy test images are the protocol's fixed ones
    assert noisy.psnr == pytest.approx(E.psnr(synth["noisy_test"], synth["test"]))
    assert noisy.psnr_dataset == pytest.approx(E.psnr_dataset(synth["noisy_test"], synth["test"]))
    assert noisy.n_images == 32 and not noisy.subset and noisy.param is None
    for m in ("gaussian", "median", "tv", "pca", "linear"):
        r = by[m]
        assert r.psnr > noisy.psnr + 3 and r.n_images == 32 and not r.subset
        assert r.ssim is not None and r.ssim > noisy.ssim
        assert r.var == VAR and r.sigma == pytest.approx(0.3) and r.seconds > 0
    assert by["pca"].param_name == "k" and isinstance(by["pca"].param, int)
    # the tv score is reproducible from the chosen parameter
    idx = B.subset_indices(32, None)
    tv = B.apply_denoiser("tv", by["tv"].param, synth["noisy_test"][idx], SHAPE)
    assert by["tv"].psnr == pytest.approx(E.psnr(tv, synth["test"][idx]))
    if B.bm3d_available():
        r = by["bm3d"]
        assert r.subset and r.n_images == 8 and "subset" in r.note
        idx = B.subset_indices(32, 8)
        out = B.apply_denoiser("bm3d", r.param, synth["noisy_test"][idx], SHAPE, var=VAR)
        assert r.psnr == pytest.approx(E.psnr(out, synth["test"][idx]))
    json.dumps([r.to_dict() for r in results])  # JSON-serializable


def test_every_baseline_is_also_scored_on_the_fixed_subset(synth) -> None:
    """subset_psnr is each method's psnr on the same fixed test images (subset_indices), so a method
    scored on the whole split compares with bm3d, which runs on those images only."""
    methods = ["noisy", "median", "linear"] + (["bm3d"] if B.bm3d_available() else [])
    seen = []
    results = B.denoising_baselines(synth["train"][:500], synth["val"][:8], synth["test"], VAR, SHAPE,
                                    methods=methods, subset=8, on_result=seen.append)
    assert seen == results  # each result handed over as it was done, in order
    idx = B.subset_indices(32, 8)
    clean, noisy_in = synth["test"][idx], synth["noisy_test"][idx]
    for r in results:
        assert r.subset_images == 8 and r.subset_ssim is not None
        if r.method == "bm3d":  # run on the subset only: its psnr is its subset_psnr
            assert r.subset and r.n_images == 8 and r.subset_psnr == r.psnr and r.subset_ssim == r.ssim
            continue
        assert not r.subset and r.n_images == 32 and r.subset_psnr != pytest.approx(r.psnr, abs=1e-6)
        out = noisy_in if r.method == "noisy" else B.apply_denoiser(
            r.method, r.param, noisy_in, SHAPE, var=VAR,
            model=B.fit_linear_denoiser(synth["train"][:500], VAR) if r.method == "linear" else None)
        assert r.subset_psnr == pytest.approx(E.psnr(out, clean), abs=1e-9)
        assert r.subset_psnr_dataset == pytest.approx(E.psnr_dataset(out, clean), abs=1e-9)
        assert r.to_dict()["subset_psnr"] == r.subset_psnr
    (full,) = B.denoising_baselines(synth["train"][:500], synth["val"][:8], synth["test"], VAR, SHAPE,
                                    methods=["noisy"], subset=None)
    assert full.subset_psnr is None and full.subset_images == 0  # no subset asked for, none scored


def test_missing_bm3d_is_skipped_with_a_note(synth, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(B, "bm3d_available", lambda: False)
    (r,) = B.denoising_baselines(synth["train"][:100], synth["val"][:4], synth["test"][:4], 0.04, SHAPE,
                                 methods=["bm3d"])
    assert r.psnr is None and r.note == "bm3d not installed: pip install 'autoenc[bm3d]'"
    with pytest.raises(ConfigError, match="bm3d not installed"):
        B.apply_denoiser("bm3d", 1.0, synth["test"][:2], SHAPE, var=0.04)


# --------------------------------------------------------------------------------------------
# Parameter selection
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, grid", [("gaussian", (0.3, 0.6, 1.0, 1.5, 2.5)), ("tv", (0.02, 0.1, 0.3, 1.0)),
                                          ("median", (1, 3, 5, 7))])
def test_selection_picks_the_brute_force_best(method: str, grid, synth) -> None:
    nv, xv = synth["noisy_val"], synth["val"]
    sel = B.select_param(method, nv, xv, SHAPE, var=VAR, grid=grid, extend=0, exhaustive=True)
    brute = {p: E.psnr(B.apply_denoiser(method, p, nv, SHAPE, var=VAR), xv) for p in grid}
    best = max(brute, key=brute.get)
    assert sel.best == best and sel.best_psnr == pytest.approx(brute[best])
    assert [p for p, _ in sel.scores] == list(grid)
    assert [s for _, s in sel.scores] == pytest.approx([brute[p] for p in grid])


@pytest.mark.parametrize("method", ["gaussian", "tv", "pca"])
def test_the_peak_search_chooses_what_scoring_the_whole_grid_chooses_from_fewer_values(method: str, synth) -> None:
    xv = synth["val"]
    nv = noise.noisy_validation_set(xv, VAR, seed=1)  # a draw whose 48 images give every method a single peak
    model = B.fit_pca(synth["train"], 200) if method == "pca" else None
    whole = B.select_param(method, nv, xv, SHAPE, var=VAR, model=model, exhaustive=True)
    ps = [p for _, p in whole.scores]
    peak = ps.index(max(ps))
    assert all(a < b for a, b in zip(ps[:peak], ps[1:peak + 1])) and all(a > b for a, b in zip(ps[peak:], ps[peak + 1:]))
    searched = B.select_param(method, nv, xv, SHAPE, var=VAR, model=model)
    assert (searched.best, searched.best_psnr, searched.at_edge) == (whole.best, whole.best_psnr, whole.at_edge)
    assert len(searched.scores) <= len(whole.scores) // 2 + 1
    assert set(searched.scores) <= set(whole.scores)  # the same numbers for the values it scored


@settings(max_examples=300, deadline=None)
@given(n=st.integers(1, 40), data=st.data())
def test_peak_search_finds_the_peak_of_any_single_peaked_sequence(n: int, data) -> None:
    peak = data.draw(st.integers(0, n - 1))
    steps = data.draw(st.lists(st.floats(1e-6, 1.0), min_size=n, max_size=n))
    values = [0.0] * n  # rising to the peak, falling after it
    for i in range(peak - 1, -1, -1):
        values[i] = values[i + 1] - steps[i]
    for i in range(peak + 1, n):
        values[i] = values[i - 1] - steps[i]
    seen: dict[int, float] = {}
    B._peak_search(n, lambda i: seen.setdefault(i, values[i]))
    assert max(seen, key=seen.get) == peak
    if len(set(values)) == n:  # two equal values (e.g. a symmetric peak) may tie the probes: then it scans
        assert len(seen) <= max(3, n) and (n < 12 or len(seen) <= n // 2 + 2)
    flat: dict[int, float] = {}  # all equal: nothing to go by, so every index is scored
    B._peak_search(n, lambda i: flat.setdefault(i, 1.0))
    assert sorted(flat) == list(range(n))


def test_selection_extends_a_grid_whose_best_is_at_an_edge(synth) -> None:
    nv, xv = synth["noisy_val"], synth["val"]
    sel = B.select_param("gaussian", nv, xv, SHAPE, grid=(0.2, 0.3), extend=6)  # best is near 1.2
    tried = [p for p, _ in sel.scores]
    assert tried[:2] == [0.2, 0.3] and len(tried) > 3 and not sel.at_edge
    assert 0.3 < sel.best < tried[-1]
    stuck = B.select_param("gaussian", nv, xv, SHAPE, grid=(0.2, 0.3), extend=1)
    assert stuck.at_edge and stuck.best == 0.45
    pca = B.fit_pca(synth["train"], 40)
    sel = B.select_param("pca", nv, xv, SHAPE, model=pca, grid=(30, 40, 500))  # k above the PCA's is dropped
    assert max(p for p, _ in sel.scores) <= 40
    median = B.select_param("median", synth["test"], synth["test"], SHAPE)  # clean input: identity wins
    assert median.best == 1 and not median.at_edge  # size 1 is a hard bound, not an open edge


def test_selection_and_application_validate_their_inputs(synth) -> None:
    x = synth["test"][:2]
    with pytest.raises(ConfigError, match="unknown baseline 'foo'"):
        B.apply_denoiser("foo", 1, x, SHAPE)
    with pytest.raises(ConfigError, match="unknown baseline 'foo'"):
        B.select_param("foo", x, x, SHAPE)
    with pytest.raises(ConfigError, match="image_shape"):
        B.apply_denoiser("gaussian", 1.0, x, (27, 28))
    with pytest.raises(ConfigError, match="needs the noise variance"):
        B.apply_denoiser("nlm", 0.5, x, SHAPE)
    with pytest.raises(ConfigError, match="needs model"):
        B.apply_denoiser("pca", 5, x, SHAPE)
    with pytest.raises(ConfigError, match="unknown baseline"):
        B.denoising_baselines(x, x, x, 0.09, SHAPE, methods=["gaussian", "bogus"])


@settings(max_examples=60, deadline=None)
@given(method=st.sampled_from(["gaussian", "median", "nlm", "wavelet", "tv", "pca"]),
       bad=st.one_of(st.floats(max_value=0.0), st.just(float("nan")), st.just(float("inf")),
                     st.sampled_from(["1", None, True, 2.7, 0.5])))
def test_a_parameter_the_method_cannot_take_is_refused_by_name(method, bad, synth) -> None:
    # tv's weight 0 was a ZeroDivisionError from scikit-image, median size 0 a RuntimeError from
    # scipy, a NaN gaussian sigma returned the noisy input, median size 2.7 ran as 2, a negative
    # grid value broke the grid extension (ZeroDivisionError)
    info = B.METHOD_INFO[method]
    if not info.integer and bad in (2.7, 0.5):
        return  # allowed for a real parameter
    x = synth["noisy_test"][:2]
    pca = B.fit_pca(synth["train"][:200], 20)
    with pytest.raises(ConfigError, match=f"baseline '{method}': {info.param_name}=.* is not allowed"):
        B.apply_denoiser(method, bad, x, SHAPE, var=VAR, model=pca)
    with pytest.raises(ConfigError, match=f"baseline '{method}': {info.param_name}=.* is not allowed"):
        B.select_param(method, x, synth["test"][:2], SHAPE, var=VAR, model=pca, grid=[info.grid[1], bad])


def test_the_baselines_refuse_splits_and_models_that_do_not_fit_naming_them(synth) -> None:
    # each was a RuntimeError from torch (sizes, reshape of 0 elements) or a _LinAlgError
    x, x28 = synth["test"][:8], synth["test"][:8]
    small = blobs(8, 3, size=7)  # 49-pixel images
    cases = [
        (lambda: B.denoising_baselines(small, x, x, VAR, SHAPE, methods=["linear"]), r"x_train has shape \(8, 49\)"),
        (lambda: B.denoising_baselines(x, x[:0], x, VAR, SHAPE, methods=["gaussian"]), "x_val holds no images"),
        (lambda: B.denoising_baselines(x, x, x[:0], VAR, SHAPE, methods=["gaussian"]), "x_test holds no images"),
        (lambda: B.denoising_baselines(x[:1], x, x, VAR, SHAPE, methods=["linear"]), "at least 2 training images"),
        (lambda: B.denoising_baselines(x, x, x, VAR, SHAPE, methods=["pca"], pca=B.fit_pca(small, 3)),
         "pca was fitted on 49-pixel images"),
        (lambda: B.denoising_baselines(x[:3], x, x, VAR, SHAPE, methods=["pca"]), "the pca has only 2 components"),
        (lambda: B.fit_pca(small, 3).reconstruct(x28), r"x has shape \(8, 784\); expected \(N, 49\)"),
        (lambda: B.fit_pca(small, 3).encode(small.numpy()), "x is a ndarray, not a torch tensor"),
        (lambda: B.fit_linear_denoiser(small, VAR)(x28), r"noisy has shape \(8, 784\); expected \(N, 49\)"),
        (lambda: B.fit_linear_denoiser_pairs(x, x[:3]), "differ in shape"),
        (lambda: B.fit_linear_denoiser_pairs(x[:1], x[:1]), "at least 2"),
        (lambda: B.fit_linear_denoiser_pairs(x, torch.zeros_like(x)), "noisy images are all the same"),
        (lambda: B.apply_denoiser("gaussian", 1.0, x.tolist(), SHAPE), "noisy is a list, not a torch tensor"),
    ]
    for call, words in cases:
        with pytest.raises(ConfigError, match=words):
            call()
    assert B.apply_denoiser("median", 3, x[:0], SHAPE).shape == (0, 784)  # no images: none out


def test_subset_indices_are_fixed_sorted_and_distinct() -> None:
    a = B.subset_indices(10_000, 1000)
    assert torch.equal(a, B.subset_indices(10_000, 1000))
    assert len(a) == 1000 and len(set(a.tolist())) == 1000 and torch.all(a[1:] > a[:-1])
    assert a.max() < 10_000 and a.min() >= 0
    assert torch.equal(B.subset_indices(10, None), torch.arange(10))
    assert torch.equal(B.subset_indices(10, 50), torch.arange(10))
    with pytest.raises(ConfigError):
        B.subset_indices(10, 0)


# --------------------------------------------------------------------------------------------
# The protocol's reference figures, on the real data
# --------------------------------------------------------------------------------------------

def test_reference_figures_on_mnist(real_data: bool, data_dir) -> None:
    """PCA k=30: 18.32 / 17.94 dB; linear denoiser at sigma^2 0.09: psnr_dataset 20.52 (noisy 13.32)."""
    if not real_data:
        pytest.skip("needs the real MNIST (set AUTOENC_DATA_DIR)")
    from autoenc import data

    x_train, _ = data.load("mnist", "train", data_dir=data_dir)
    x_test, _ = data.load("mnist", "test", data_dir=data_dir)
    pca = B.fit_pca(x_train, 30)
    rec = pca.reconstruct(x_test)
    assert E.psnr(rec, x_test) == pytest.approx(18.32, abs=0.05)
    assert E.psnr_dataset(rec, x_test) == pytest.approx(17.94, abs=0.05)
    noisy = noise.noisy_test_set(x_test, 0.09)
    assert E.psnr_dataset(noisy, x_test) == pytest.approx(13.32, abs=0.05)
    den = B.fit_linear_denoiser(x_train, 0.09)
    assert E.psnr_dataset(den(noisy), x_test) == pytest.approx(20.52, abs=0.1)


@settings(max_examples=50, deadline=None)
@given(n=st.one_of(st.integers(-5, -1), st.floats(0.5, 50.0), st.just("10"), st.just(True)),
       size=st.one_of(st.integers(1, 20), st.none()))
def test_subset_indices_refuse_what_is_not_a_count_of_images(n, size) -> None:
    # a negative split size was a RuntimeError from torch.randperm / arange, a float size a TypeError
    with pytest.raises(ConfigError, match="n_total .* is not allowed: it must be a whole number of images"):
        B.subset_indices(n, size)
    with pytest.raises(ConfigError, match="subset size .* is not allowed"):
        B.subset_indices(20, 2.5)
