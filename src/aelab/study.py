"""Study: the whole lab as one resumable run of many trials, described by a YAML file.

A study is a set of trials planned from its config and from the results so far:

    1. grid       every dataset x depth x latent, no regularization        (+ PCA with k = L)
    2. l2, l1     each strength on the best grid architecture of its dataset (validation psnr)
    3. l2+l1      the best l2 together with the best l1                     (validation psnr)
    4. denoise    one denoiser per noise variance and one blind denoiser    (+ classical baselines)

`plan(config, done)` is a pure function: given the finished results it returns every trial whose
inputs are known, so a rerun makes the same choices and skips what is finished. Each trial
writes its run folder and `result.json` atomically under <out>/trials/<trial id>/; the study
then writes results.csv / results.json (a row per trial) and denoising.csv / denoising.json (a
row per dataset x noise variance x method), and the report.
"""
from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import math
import re
import signal
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import yaml

from . import data
from .errors import ConfigError
from .model import PRESETS, ModelConfig
from .runs import atomic_write_json, atomic_write_text
from .training import TrainConfig

# ------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------

ALL_BASELINES = ("noisy", "gaussian", "median", "nlm", "wavelet", "tv", "bm3d", "pca", "linear")


@dataclass
class DenoiseConfig:
    """The denoising part. variances: the evaluation grid (sigma^2 on the [0, 1] scale), one
    denoiser is trained per value; blind: (low, high) variance range of the blind denoiser (or
    None); architecture: a mapping {widths: [...], latent: L} / {depth: 3|5, latent: L} (default
    widths [512, 256], L = 100: wider than the presets, it denoises better, docs/recipe.md) or
    "best" (the compression part's best, by validation psnr); model, train: overrides of the model
    and training configs for the denoisers; baselines: methods to compare; subset: test images
    the slow baselines run on (the autoencoders are scored on the same subset too); epochs,
    gpu_epochs: the denoisers' budget per depth on a CPU and on a GPU (None: the study's; a study
    file that sets only some budgets, `study_from_dict`); blind_epochs_factor: the
    blind denoiser's budget as a multiple of those (it learns every level at once)."""

    variances: list[float] = field(default_factory=lambda: [0.01, 0.04, 0.09, 0.16, 0.25])
    blind: list[float] | None = field(default_factory=lambda: [0.01, 0.25])
    architecture: Any = field(default_factory=lambda: {"widths": [512, 256], "latent": 100})
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    baselines: list[str] = field(default_factory=lambda: list(ALL_BASELINES))
    subset: int = 1000
    epochs: Any = field(default_factory=lambda: {3: 50, 5: 30})
    gpu_epochs: Any = field(default_factory=lambda: {3: 100, 5: 100})
    blind_epochs_factor: float = 2.0


@dataclass
class StudyConfig:
    """A study. datasets, depths (3 and/or 5, the protocol's presets), latents: the grid;
    model / train: overrides of ModelConfig / TrainConfig for every trial; epochs: per-depth
    training budget {depth: epochs} on the CPU, gpu_epochs the same on a GPU (the "full"
    budget, 100 by default; None: epochs, as when a study file sets epochs alone); l2, l1: strengths tried on the best architecture; combined:
    also train the best l2 with the best l1; pca: PCA baselines at k = every latent; denoising:
    the denoising part (None to skip); subset: optional {train|val|test: n} to use only the
    first n images of a split (quick looks and tests); robustness_var: the noise variance of
    the robustness check of every compression model; seed: of every trial; threads: CPU threads
    per trial (the numbers depend on it, not on how trials are scheduled); workers: trials run
    side by side ("auto": what fits the cores); device: auto, cpu or cuda; stack: train up to this
    many autoencoder trials of one architecture and schedule at once, as one stacked model
    (`stack_groups`, `stacked.fit_stacked`: made for a GPU, where small models leave it idle;
    1 trains each trial alone; "auto", the default, is `GPU_STACK` on a GPU and 1 on a CPU; the
    numbers change by rounding, so it is part of each trial's identity)."""

    name: str = "lab"
    datasets: list[str] = field(default_factory=lambda: ["mnist", "fashion-mnist"])
    depths: list[int] = field(default_factory=lambda: [3, 5])
    latents: list[int] = field(default_factory=lambda: [15, 30, 50, 100])
    model: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    epochs: dict = field(default_factory=lambda: {3: 30, 5: 30})
    gpu_epochs: dict | None = field(default_factory=lambda: {3: 100, 5: 100})
    l2: list[float] = field(default_factory=lambda: [1e-6, 1e-5, 1e-4])
    l1: list[float] = field(default_factory=lambda: [1e-6, 1e-5, 1e-4])
    combined: bool = True
    pca: bool = True
    denoising: DenoiseConfig | None = field(default_factory=DenoiseConfig)
    subset: dict = field(default_factory=dict)
    robustness_var: float = 0.01
    seed: int = 0
    threads: int = 1
    workers: Any = "auto"
    device: str = "auto"
    stack: Any = "auto"

    def __post_init__(self) -> None:
        _validate(self)

    def to_dict(self) -> dict:
        """A plain dict (what a YAML file with every key would hold)."""
        return asdict(self)


def _bad(key: str, value, allowed: str) -> ConfigError:
    return ConfigError(f"study key '{key}': {value!r} is not allowed; {allowed}")


def _list_of(key: str, values, ok: Callable[[Any], bool], allowed: str) -> None:
    """Refuse `values` unless it is a list whose every item passes ok; the error names the first
    bad item and its position, not only the whole list."""
    if not isinstance(values, list):
        raise _bad(key, values, allowed)
    for i, v in enumerate(values, 1):
        if not ok(v):
            raise ConfigError(f"study key '{key}': item {i} of {values!r}, {v!r}, is not allowed; {allowed}")


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _positive_ints(key: str, values, allowed: str) -> None:
    _list_of(key, values, lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, allowed)


def _strengths(key: str, values) -> None:
    _list_of(key, values, lambda v: _number(v) and math.isfinite(v) and v > 0,
             "give a list of finite numbers > 0, e.g. [1e-6, 1e-5, 1e-4] (or [] to skip)")


def _variances(key: str, values) -> None:
    _list_of(key, values, lambda v: _number(v) and 0 < v <= 1,
             "give noise variances sigma^2 in (0, 1], e.g. [0.01, 0.04, 0.09, 0.16, 0.25]")


def _epochs_map(key: str, value) -> dict[int, int]:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return {3: value, 5: value}
    if isinstance(value, dict) and value and all(
            int(k) in PRESETS and isinstance(v, int) and not isinstance(v, bool) and v > 0
            for k, v in value.items() if str(k).isdigit()) and all(str(k).isdigit() for k in value):
        return {int(k): v for k, v in value.items()}
    raise _bad(key, value, "give epochs per depth, e.g. {3: 40, 5: 25}, or one whole number for both")


def _validate(c: StudyConfig) -> None:
    from .data import KNOWN_DATASETS

    if not isinstance(c.name, str) or not c.name:
        raise _bad("name", c.name, "give a non-empty name")
    if not isinstance(c.datasets, list) or not c.datasets or not all(isinstance(d, str) for d in c.datasets):
        raise _bad("datasets", c.datasets, f"give a list of datasets: {', '.join(KNOWN_DATASETS)} or paths")
    for d in c.datasets:
        if d not in KNOWN_DATASETS and not Path(d).exists():
            raise _bad("datasets", d, f"known datasets are {', '.join(KNOWN_DATASETS)}; or give a path to your data")
    _positive_ints("depths", c.depths, "choose from 3 and 5 (the protocol's presets), or [] to skip the grid")
    if any(d not in PRESETS for d in c.depths):
        raise _bad("depths", c.depths, "choose from 3 and 5 (the protocol's presets)")
    _positive_ints("latents", c.latents, "give a list of latent sizes, e.g. [15, 30, 50, 100], or [] to skip")
    if c.denoising is not None and c.denoising.architecture == "best" and not (c.depths and c.latents):
        raise _bad("denoising.architecture", "best", "without a grid (depths or latents empty) name the "
                   "denoisers' architecture, e.g. {depth: 3, latent: 100}")
    for key in ("model", "train", "subset"):
        if not isinstance(getattr(c, key), dict):
            raise _bad(key, getattr(c, key), "give a mapping of keys to values")
    for key in ("epochs", "noise_var", "seed", "device", "threads"):
        if key in c.train:
            raise _bad(f"train.{key}", c.train[key], f"set '{key}' at the top level of the study, not under train")
    _no_planned_keys("", c.model, c.train)
    _check_overrides("model", c.model, "train", c.train)
    c.epochs = _epochs_map("epochs", c.epochs)
    if c.gpu_epochs is not None:
        c.gpu_epochs = _epochs_map("gpu_epochs", c.gpu_epochs)
    _strengths("l2", c.l2)
    _strengths("l1", c.l1)
    for key in ("combined", "pca"):
        if not isinstance(getattr(c, key), bool):
            raise _bad(key, getattr(c, key), "give true or false")
    for k, v in c.subset.items():
        if k not in ("train", "val", "test") or not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise _bad(f"subset.{k}", v, "keys are train, val, test; values whole numbers >= 1")
    if not isinstance(c.robustness_var, (int, float)) or not 0 < c.robustness_var <= 1:
        raise _bad("robustness_var", c.robustness_var, "give a noise variance in (0, 1], e.g. 0.01")
    if not isinstance(c.seed, int) or isinstance(c.seed, bool) or c.seed < 0:
        raise _bad("seed", c.seed, "give a whole number >= 0")
    if not isinstance(c.threads, int) or isinstance(c.threads, bool) or c.threads < 1:
        raise _bad("threads", c.threads, "give a whole number >= 1 (CPU threads per trial)")
    if c.workers != "auto" and (not isinstance(c.workers, int) or isinstance(c.workers, bool) or c.workers < 1):
        raise _bad("workers", c.workers, "give 'auto' or a whole number >= 1")
    if c.stack != "auto" and (not isinstance(c.stack, int) or isinstance(c.stack, bool) or c.stack < 1):
        raise _bad("stack", c.stack, f"give 'auto' ({GPU_STACK} on a GPU, 1 on a CPU) or a whole number >= 1 "
                                     "(1: every trial trains alone)")
    if c.device not in ("auto", "cpu") and not str(c.device).startswith("cuda"):
        raise _bad("device", c.device, "give auto, cpu or cuda")
    if c.denoising is not None:
        _validate_denoising(c.denoising)


def _no_planned_keys(prefix: str, model: dict, train: dict) -> None:
    """Refuse the override keys the study sets for every trial itself (they would be silently
    replaced): the architecture (model input_dim, widths, latent) and the penalties (train l2, l1)."""
    if not isinstance(model, dict) or not isinstance(train, dict):
        return  # _check_overrides names the key
    where = "denoising.architecture" if prefix else "depths and latents (the denoisers': denoising.architecture)"
    for key in ("input_dim", "widths", "latent"):
        if key in model:
            raise _bad(f"{prefix}model.{key}", model[key], f"the study sets each trial's architecture from {where}; "
                       "input_dim comes from the dataset")
    for key in ("l2", "l1"):
        if key in train:
            raise _bad(f"{prefix}train.{key}", train[key], "the denoisers train without penalties" if prefix else
                       f"the study sets each trial's penalties: list the strengths to try in the top-level "
                       f"'{key}' key, e.g. {key}: [1e-5]")


def _check_overrides(*pairs) -> None:
    """model / train override mappings must name real fields with valid values."""
    for i in range(0, len(pairs), 2):
        key, overrides = pairs[i], pairs[i + 1]
        cls = ModelConfig if key.endswith("model") else TrainConfig
        allowed = {f.name for f in fields(cls)}
        for k in overrides:
            if k not in allowed:
                raise _bad(f"{key}.{k}", overrides[k], f"allowed keys under {key}: {', '.join(sorted(allowed))}")
        try:
            cls(**overrides)
        except ConfigError as exc:
            raise ConfigError(f"study key '{key}': {exc}") from None
        except TypeError as exc:
            raise ConfigError(f"study key '{key}': {exc}") from None


def _validate_denoising(d: DenoiseConfig) -> None:
    _variances("denoising.variances", d.variances)
    if d.blind is not None:
        if (not isinstance(d.blind, list) or len(d.blind) != 2) or not all(
                isinstance(v, (int, float)) and 0 < v <= 1 for v in d.blind) or d.blind[0] >= d.blind[1]:
            raise _bad("denoising.blind", d.blind, "give [low, high] noise variances with low < high, or null")
        if not d.variances:  # it is scored and selected at those levels: with none, its val psnr was NaN
            raise _bad("denoising.blind", d.blind, "the blind denoiser is scored at denoising.variances, which is "
                       "empty: give at least one level there, e.g. [0.04], or blind: null")
    arch = d.architecture
    if arch != "best":
        ok = isinstance(arch, dict) and set(arch) <= {"depth", "widths", "latent"} and "latent" in arch and (
            ("depth" in arch) != ("widths" in arch))
        if not ok or ("depth" in arch and arch["depth"] not in PRESETS):
            raise _bad("denoising.architecture", arch,
                       "give 'best', {depth: 3|5, latent: L} or {widths: [w1, w2, ...], latent: L}")
        if "widths" in arch:
            _positive_ints("denoising.architecture.widths", arch["widths"],
                           "give the hidden widths as a list of whole numbers >= 1, e.g. [512, 256]")
        latent = arch["latent"]
        if not isinstance(latent, int) or isinstance(latent, bool) or latent < 1:
            raise _bad("denoising.architecture.latent", latent, "give the latent size L, a whole number >= 1, e.g. 100")
    if not isinstance(d.baselines, list) or any(b not in ALL_BASELINES for b in d.baselines):
        raise _bad("denoising.baselines", d.baselines, f"choose from {', '.join(ALL_BASELINES)}")
    if not isinstance(d.subset, int) or isinstance(d.subset, bool) or d.subset < 1:
        raise _bad("denoising.subset", d.subset, "give a whole number of test images >= 1, e.g. 1000")
    f = d.blind_epochs_factor
    if isinstance(f, bool) or not isinstance(f, (int, float)) or not (0 < f <= 100):
        raise _bad("denoising.blind_epochs_factor", f, "give a number > 0 and at most 100, e.g. 2 (twice the per-level epochs)")
    for key in ("epochs", "gpu_epochs"):
        if getattr(d, key) is not None:
            setattr(d, key, _epochs_map(f"denoising.{key}", getattr(d, key)))
    for key in ("epochs", "noise_var", "seed", "device", "threads"):
        if key in d.train:
            raise _bad(f"denoising.train.{key}", d.train[key],
                       "set epochs with denoising.epochs; noise with denoising.variances / blind")
    _no_planned_keys("denoising.", d.model, d.train)
    _check_overrides("denoising.model", d.model, "denoising.train", d.train)


def _from_mapping(cls, data: dict, where: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values, found {type(data).__name__}")
    allowed = {f.name for f in fields(cls)}
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (value {data[unknown[0]]!r}); "
                          f"allowed keys: {', '.join(sorted(allowed))}")
    return dict(data)


def study_from_dict(data: dict, where: str = "study") -> StudyConfig:
    """Build and validate a StudyConfig from a mapping (as read from YAML).

    A budget the mapping sets applies to every budget it leaves out: with `epochs` and no
    `gpu_epochs`, a GPU trains the same epochs (not the default 100), and the denoisers, without
    their own `denoising.epochs`, train the study's; `denoising.epochs` without
    `denoising.gpu_epochs` holds on a GPU too; `gpu_epochs` alone is the denoisers' budget on a
    GPU as well (on a CPU they keep their default). (A quick study written with epochs {3: 3} would
    otherwise train 100 epochs on a GPU, and its denoisers 50 on a CPU.)

    Raises ConfigError naming the key, the value and what is allowed."""
    data = _from_mapping(StudyConfig, data or {}, where)
    if "epochs" in data:
        data.setdefault("gpu_epochs", None)  # None: the study's epochs on a GPU too
        if data.get("denoising", {}) is not None:
            den = data.setdefault("denoising", {})
            if isinstance(den, dict) and "epochs" not in den:
                den.update({"epochs": None, "gpu_epochs": den.get("gpu_epochs")})  # None: the study's budget
    elif data.get("gpu_epochs") is not None and data.get("denoising", {}) is not None:
        den = data.get("denoising", {})
        if isinstance(den, dict) and "epochs" not in den and "gpu_epochs" not in den:
            data["denoising"] = {**den, "gpu_epochs": data["gpu_epochs"]}  # a GPU's: the study's
    if "denoising" in data and data["denoising"] is not None:
        den = _from_mapping(DenoiseConfig, data["denoising"], f"{where}: key 'denoising'")
        if "epochs" in den:
            den.setdefault("gpu_epochs", None)  # None: its epochs on a GPU too
        data["denoising"] = DenoiseConfig(**den)
    return StudyConfig(**data)


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads 1e-5 (no dot) as a string; here it is the number everyone means."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)$|^[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$"""),
    list("-+0123456789."),
)


def load_study(path: str | Path) -> StudyConfig:
    """Read a study YAML file; a missing file, bad YAML or a bad key is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file {path} does not exist; give a YAML file or use --preset default|quick")
    try:
        with path.open(encoding="utf-8") as fh:  # a stream, so the error's position names the file
            data = yaml.load(fh, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a UTF-8 text file; give a study YAML file (docs/study.md)") from None
    if data is None:  # it ran the whole default lab (140 trials, 40 minutes on 2 cores) into runs/lab
        raise ConfigError(f"{path} is empty (or only comments): give the study's keys, e.g. name: and latents: "
                          f"(docs/study.md), or use --preset default for the whole lab")
    return study_from_dict(data, where=str(path))


def preset(name: str) -> StudyConfig:
    """The built-in studies: "default" (the whole lab) and "quick" (subsets, few epochs, about
    70 s on 2 cores: for a first look and for tests)."""
    if name == "default":
        return StudyConfig()
    if name == "quick":
        return StudyConfig(
            name="quick", latents=[15, 50], epochs={3: 6, 5: 6}, gpu_epochs={3: 6, 5: 6},
            l2=[1e-5], l1=[1e-5],
            subset={"train": 10000, "val": 1000, "test": 1000},
            denoising=DenoiseConfig(variances=[0.04, 0.16], blind=[0.04, 0.16],
                                    baselines=["noisy", "gaussian", "median", "tv", "pca", "linear"],
                                    subset=200, epochs={3: 6, 5: 6}, gpu_epochs={3: 6, 5: 6}))
    raise ConfigError(f"unknown study preset {name!r}; choose default or quick")


# ------------------------------------------------------------------------------------------
# planning: which trials, given what is finished
# ------------------------------------------------------------------------------------------

@dataclass
class Trial:
    """One unit of work. kind: "ae" (train and evaluate an autoencoder), "pca" or "baselines"
    (classical denoisers at one noise variance); phase: grid, l2, l1, l2+l1, denoise, blind, pca,
    baselines; spec: everything the trial needs (self-contained, so any worker can run it)."""

    id: str
    kind: str
    phase: str
    dataset: str
    spec: dict

    def to_dict(self) -> dict:
        """A JSON-ready dict: what a worker needs to run the trial (`trials.run_trial`)."""
        return asdict(self)


def _trial(kind: str, phase: str, dataset: str, tag: str, spec: dict) -> Trial:
    from .data import fingerprint

    held = fingerprint(dataset)  # your own data's content (None for a known dataset: ids unchanged)
    key = [kind, dataset, spec] + ([held] if held is not None else [])
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    name = Path(dataset).stem if "/" in dataset or "\\" in dataset else dataset
    return Trial(id=f"{name}-{tag}-{digest}", kind=kind, phase=phase, dataset=dataset, spec=spec)


def _context(c: StudyConfig) -> dict:
    """What every trial needs to know about the study (part of each trial's identity)."""
    den = c.denoising
    return {
        "subset": dict(sorted(c.subset.items())),
        "robustness_var": c.robustness_var,
        "eval_variances": list(den.variances) if den else [],
        "baseline_subset": den.subset if den else 0,
        "seed": c.seed,
        "threads": c.threads,
    }


def _on_gpu(c: StudyConfig) -> bool:
    from .training import resolve_device

    return resolve_device(c.device).type == "cuda"


# stack "auto" on a GPU: an H200 trained 3.4x (depth 3) and 3.3x as many models per second in
# stacks of 4 as one at a time, 10.4x and 9.3x in stacks of 16 (benchmarks/stack_speed.py, CUDA
# graphs); a study's groups hold up to 8 trials (the grid of one depth: 4 latents x 2 datasets),
# so 8 takes each whole
GPU_STACK = 8


def stack_size(c: StudyConfig) -> int:
    """How many same-architecture autoencoder trials train at once: c.stack, where "auto" is
    GPU_STACK on a GPU (small models leave it idle) and 1 on a CPU (where side-by-side
    single-thread trials do better, docs/speed.md)."""
    if c.stack == "auto":
        return GPU_STACK if _on_gpu(c) else 1
    return c.stack


def _epochs(c: StudyConfig, depth: int, denoise: bool = False) -> int:
    gpu = _on_gpu(c)
    table = None
    if denoise and c.denoising is not None:
        table = (c.denoising.gpu_epochs if gpu else None) or c.denoising.epochs
    table = table or ((c.gpu_epochs or c.epochs) if gpu else c.epochs)
    return table.get(depth, max(table.values()))


def _ae(c: StudyConfig, phase: str, dataset: str, arch: dict, l2: float = 0.0, l1: float = 0.0,
        noise_var=None) -> Trial:
    from .data import image_shape

    input_dim = math.prod(image_shape(dataset))
    widths = tuple(arch["widths"]) if "widths" in arch else PRESETS[arch["depth"]]
    denoise = noise_var is not None
    model = ModelConfig(**{**c.model, **(c.denoising.model if denoise else {}),
                           "input_dim": input_dim, "widths": widths, "latent": arch["latent"]})
    depth = len(widths) + 1
    epochs = _epochs(c, depth, denoise)
    if isinstance(noise_var, list):
        epochs = max(1, round(epochs * c.denoising.blind_epochs_factor))
    train = TrainConfig(**{**c.train, **(c.denoising.train if denoise else {}),
                           "epochs": epochs, "l2": l2, "l1": l1, "seed": c.seed,
                           "device": c.device, "threads": c.threads,
                           "noise_var": tuple(noise_var) if isinstance(noise_var, list) else noise_var})
    tag = (f"d{depth}" if "depth" in arch else "w" + "-".join(map(str, widths))) + f"-L{arch['latent']}"
    tag += (f"-l2_{l2:g}" if l2 else "") + (f"-l1_{l1:g}" if l1 else "")
    if denoise:
        tag += f"-blind{noise_var[0]:g}_{noise_var[1]:g}" if isinstance(noise_var, list) else f"-noise{noise_var:g}"
    spec = {"model": model.to_dict(), "train": train.to_dict(), "context": _context(c)}
    stack = stack_size(c)
    if stack > 1:
        from .stacked import unstackable

        if unstackable(model, train) is None:
            spec["stack"] = stack
    return _trial("ae", phase, dataset, tag, spec)


def stack_groups(trials: list[Trial]) -> list[list[Trial]]:
    """`plan`'s trials as the units that run: the autoencoder trials marked for stacking
    (spec "stack": K) that `plan` releases together and that share their architecture but for
    the latent size (`stacked.stack_envelope`) and the training fields a stack shares
    (`stacked.STACK_FIELDS`), in chunks of at most K in plan order; every other trial alone.
    Trials released together: the whole grid (both datasets: with K = 8, one stack per depth),
    and per dataset the l2 and l1 trials, the denoisers, the blind denoiser, the combined one.
    The groups depend only on the config and on finished results, never on timing, so each
    trial's stack, and its numbers, are the same in every run."""
    from .stacked import STACK_FIELDS

    keyed: dict[str, list[Trial]] = {}
    groups: list[list[Trial]] = []
    for t in trials:
        if t.kind != "ae" or "stack" not in t.spec:
            groups.append([t])
            continue
        release = "grid" if t.phase == "grid" else f"{t.dataset}/{'penalized' if t.phase in ('l2', 'l1') else t.phase}"
        shared = {k: t.spec["train"][k] for k in STACK_FIELDS}
        architecture = {k: v for k, v in t.spec["model"].items() if k != "latent"}
        key = json.dumps([release, architecture, shared, t.spec["context"], t.spec["stack"]], sort_keys=True)
        if key not in keyed or len(keyed[key]) == t.spec["stack"]:
            keyed[key] = []
            groups.append(keyed[key])
        keyed[key].append(t)
    return groups


# The order in which ready trials take free workers: first the ones other trials wait for (the
# grid, then the l2 and l1 trials that the combined one waits for), then the other autoencoders,
# then the short CPU trials, which fill the workers' last minutes. Only the order changes, never
# a trial's numbers (each trial fixes its own seed and threads).
PRIORITY = {"grid": 0, "l2": 1, "l1": 1, "blind": 2, "denoise": 2, "l2+l1": 2, "baselines": 3, "pca": 4}


def by_priority(groups: list[list[Trial]]) -> list[list[Trial]]:
    """`stack_groups` output in the order they should take free workers (`PRIORITY` by phase,
    then plan order)."""
    return sorted(groups, key=lambda group: PRIORITY.get(group[0].phase, 2))


def _best(rows: list[dict], key: str = "val_psnr") -> dict | None:
    """The row with the highest validation psnr (first one on ties); None when any is missing."""
    if not rows or any(r is None or r.get("status") != "ok" for r in rows):
        return None
    return max(rows, key=lambda r: r[key])


def grid_trials(c: StudyConfig, dataset: str) -> list[Trial]:
    """The compression grid of one dataset: every depth x latent, no regularization."""
    return [_ae(c, "grid", dataset, {"depth": d, "latent": L}) for d in c.depths for L in c.latents]


def plan(c: StudyConfig, done: dict[str, dict]) -> list[Trial]:
    """Every trial whose inputs are known, given finished results `done` (trial id -> result).

    Deterministic: the same config and the same results give the same list, in the same order."""
    trials: list[Trial] = []
    for dataset in c.datasets:
        grid = grid_trials(c, dataset)
        trials += grid
        if c.pca:
            trials += [_trial("pca", "pca", dataset, f"pca-k{L}", {"k": L, "context": _context(c)})
                       for L in c.latents]
        den = c.denoising
        if den is not None and den.baselines:
            # one trial per level and method: BM3D alone takes ~50 s of a level's ~125 s, so whole
            # levels left a long tail of single busy workers at the end of a study
            trials += [_trial("baselines", "baselines", dataset, f"baselines-noise{v:g}-{m}",
                              {"noise_var": v, "methods": [m], "context": _context(c)})
                       for v in den.variances for m in den.baselines]
        best = _best([done.get(t.id) for t in grid])
        if den is not None and den.architecture != "best":
            den_arch = dict(den.architecture)
        else:
            den_arch = _arch_of(best) if best else None
        if den is not None and den_arch is not None:  # the blind one first: the longest trial
            if den.blind:
                trials.append(_ae(c, "blind", dataset, den_arch, noise_var=list(den.blind)))
            trials += [_ae(c, "denoise", dataset, den_arch, noise_var=v) for v in den.variances]
        if best is None:
            continue
        arch = _arch_of(best)
        l2_trials = [_ae(c, "l2", dataset, arch, l2=v) for v in c.l2]
        l1_trials = [_ae(c, "l1", dataset, arch, l1=v) for v in c.l1]
        trials += l2_trials + l1_trials
        if c.combined and c.l2 and c.l1:
            best_l2 = _best([done.get(t.id) for t in l2_trials])
            best_l1 = _best([done.get(t.id) for t in l1_trials])
            if best_l2 and best_l1:
                trials.append(_ae(c, "l2+l1", dataset, arch, l2=best_l2["l2"], l1=best_l1["l1"]))
    return trials


def _arch_of(row: dict) -> dict:
    if row.get("depth") in PRESETS and tuple(row["widths"]) == PRESETS[row["depth"]]:
        return {"depth": row["depth"], "latent": row["latent"]}
    return {"widths": list(row["widths"]), "latent": row["latent"]}


def count_trials(c: StudyConfig) -> int:
    """How many trials the whole study has (known before any runs)."""
    grid = len(c.depths) * len(c.latents)
    per = grid + (len(c.latents) if c.pca else 0)
    if grid:
        per += len(c.l2) + len(c.l1) + (1 if c.combined and c.l2 and c.l1 else 0)
    den = c.denoising
    if den is not None:
        per += len(den.variances) * len(den.baselines) + len(den.variances) + (1 if den.blind else 0)
    return per * len(c.datasets)


# ------------------------------------------------------------------------------------------
# running
# ------------------------------------------------------------------------------------------

def _scan_finished(c: StudyConfig, out: Path) -> dict[str, dict]:
    """Results of trials finished in an earlier run (failed ones are retried)."""
    from .trials import finished_result

    done: dict[str, dict] = {}
    while True:
        new = {t.id: r for t in plan(c, done) if t.id not in done
               and (r := finished_result(out, t.to_dict())) is not None and r.get("status") == "ok"}
        if not new:
            return done
        done.update(new)


def run_study(config: StudyConfig, out: str | Path, data_dir: str | Path | None = None,
              executor: str = "local", workers: int | None = None, progress: bool | None = None,
              report: bool = True, **executor_options) -> dict:
    """Run (or resume) a study into folder `out` and return its summary (see `collect`).

    Finished trials are skipped; an interrupted trial resumes from its checkpoint. Ready trials
    take free workers in `by_priority` order, so those that others wait for go first. executor:
    "local" (this machine: `workers` trials side by side, default from the config; on a GPU the
    CPU-only trials run in a second pool at the lowest priority, `executors.cpu_workers`) or "ray"
    (executor_options: address, cpus_per_trial, gpus_per_trial, max_retries). Writes
    study.yaml, results.csv/json, denoising.csv/json and, with report=True, the report.
    Ctrl-C stops the workers and re-raises KeyboardInterrupt; rerun to resume. A dataset that
    cannot be found (or downloaded) raises DataError before any trial starts (with Ray on an
    existing cluster, `address` given, the workers' own data is not checked here). A second
    study into a folder that one is running in is refused (`study_lock`)."""
    out = Path(out)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        with study_lock(out):
            return _run_study(config, out, data_dir, executor, workers, progress, report, executor_options)
    except BaseException:
        # refused before any trial (a --device without a GPU, missing data): no half-made study folder is left
        if created and {p.name for p in out.iterdir()} <= {".lock", "study.yaml"}:
            for p in out.iterdir():
                p.unlink()
            out.rmdir()
        raise


@contextlib.contextmanager
def study_lock(out: Path):
    """Hold study folder `out` for this process while the block runs: a second study into the same
    folder (it would train the same trials twice, side by side) is refused with a ConfigError naming
    the process that holds it. The lock is an flock on out/.lock, so it ends with its process, even
    a killed one; on a system without fcntl there is none."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    import os
    import socket

    fh = open(out / ".lock", "a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "a process that did not say which"
        fh.close()
        raise ConfigError(f"another study is running in {out} ({holder}): wait for it to end or stop it (a second "
                          f"one would train the same trials twice), then rerun to resume; or give another --out")
    try:
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        yield
    finally:
        fh.close()


def _run_study(config: StudyConfig, out: Path, data_dir: str | Path | None, executor: str, workers: int | None,
               progress: bool | None, report: bool, executor_options: dict) -> dict:
    """run_study's work, in the study folder `out` that this process holds (study_lock)."""
    import sys

    from tqdm.auto import tqdm

    from .executors import cpu_workers, default_workers, drain, make_executor, signals_ignored
    from .trials import failed_result, trial_dir

    atomic_write_text(out / "study.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
    show = sys.stderr.isatty() if progress is None else progress
    log = progress is None and not show  # output to a file or pipe: a line per finished trial instead of bars
    on_gpu = _on_gpu(config)
    if workers is None:
        workers = default_workers(config.threads, on_gpu) if config.workers == "auto" else config.workers
    side = cpu_workers(config.threads, on_gpu) if executor == "local" else 0
    done = _scan_finished(config, out)
    total = count_trials(config)
    if len(done) < total and (executor == "local" or not executor_options.get("address")):
        for dataset in config.datasets:  # missing data fails here, once, not in every trial
            data.ensure(dataset, data_dir)
    previous = _read_summary(out)
    earlier = previous.get("wall_seconds_total", 0.0)  # wall time of the earlier runs
    pool = make_executor(executor, out, Path(data_dir) if data_dir else None, workers, config.threads,
                         show, cpu_workers=side, **executor_options)
    bar = tqdm(total=total, initial=len(done), desc=f"study {config.name}", unit="trial", disable=not show,
               dynamic_ncols=True, position=0)
    trial_bars: dict[str, Any] = {}
    running: dict[Future, list[Trial]] = {}
    t0 = time.perf_counter()
    # results.csv, denoising.csv and summary.json from the trials in `done` so far; the summary
    # holds the start of the last run that ran trials, a Unix time (the origin of the report's
    # timeline): this one's unless every trial had finished before
    started = time.time() if len(done) < total else previous.get("started_at")
    write = functools.partial(collect, config, out, done, earlier_seconds=earlier, started_at=started)
    changed = False  # results came in since results.csv was last written
    stopped = True  # until the loop below ends: Ctrl-C, SIGTERM or an error stopped this run
    try:
        while True:
            busy = {t.id for group in running.values() for t in group}
            for group in by_priority(stack_groups(plan(config, done))):
                if any(t.id not in done for t in group) and not any(t.id in busy for t in group):
                    job = [t.to_dict() for t in group] if len(group) > 1 else group[0].to_dict()
                    if not pool.has_slot(job):
                        continue  # it waits for a worker: a trial released meanwhile may go first
                    if changed and not running:  # no other trial runs (inline: this one runs now)
                        write()  # so no one waits: results first
                        changed = False
                    future = pool.submit(job)
                    running[future] = group
                    if future.done():  # it ran as it was submitted (inline): plan again before the next
                        break
            if changed:  # while other trials run: after the free workers got their next ones
                write()  # results.csv stays current
                changed = False
            if not running:
                break
            finished, _ = wait(list(running), timeout=0.5, return_when=FIRST_COMPLETED)
            for trial_id, epoch, epochs, val_psnr in drain(pool.events):
                if show and trial_id not in trial_bars:
                    trial_bars[trial_id] = tqdm(total=epochs, desc=trial_id[:40], unit="epoch", leave=False,
                                                position=1 + len(trial_bars) % max(1, workers),
                                                dynamic_ncols=True)
                if trial_id in trial_bars:
                    b = trial_bars[trial_id]
                    b.update(epoch - b.n)
                    b.set_postfix(val_psnr=f"{val_psnr:.2f}dB")
            for fut in finished:
                group = running.pop(fut)
                try:
                    rows = fut.result()
                    rows = rows if isinstance(rows, list) else [rows]
                except Exception as exc:  # a trial that failed on every attempt: record it, go on
                    rows = [failed_result(t.to_dict(), f"{type(exc).__name__}: {exc}",
                                          attempts=getattr(exc, "attempts", 1)) for t in group]
                    for t, row in zip(group, rows):
                        atomic_write_json(trial_dir(out, t.id) / "result.json", row)
                for t, row in zip(group, rows):
                    bar.update(t.id not in done)
                    done[t.id] = row
                    if log:
                        print(trial_line(len(done), total, row), file=sys.stderr, flush=True)
                    if t.id in trial_bars:
                        trial_bars.pop(t.id).close()
            changed = changed or bool(finished)
        stopped = False
    finally:  # also on Ctrl-C: stop the workers; finished trials are on disk
        # a second Ctrl-C (an impatient user, or `timeout`, which signals the process and then its
        # group) must not cut the stop short: workers left running, a traceback, a lost summary
        with signals_ignored(signal.SIGINT, signal.SIGTERM) if stopped else contextlib.nullcontext():
            pool.shutdown()
            if stopped:  # this run's time still counts in the study's total wall time
                write(wall_seconds=time.perf_counter() - t0)
            elif changed:
                write()
        bar.close()
        for b in trial_bars.values():
            b.close()
    summary = write(wall_seconds=time.perf_counter() - t0)
    if report:
        from .report import write_report

        write_report(out)
    return summary


def error_headline(row: dict) -> str:
    """The first line of a failed trial's error (its result row's "error"), "unknown error" if none."""
    lines = str(row.get("error") or "").strip().splitlines()
    return lines[0] if lines else "unknown error"


def trial_line(n_done: int, total: int, row: dict) -> str:
    """One line on a finished trial (its result row), for a study whose output is not a terminal:
    "[n_done/total] id ok: psnr 24.10 dB, 41.2 s" (psnr: test, mean per-image, dB, of the outputs of
    clean inputs; seconds: the trial's wall time), or the first line of a failed trial's error.

    A denoiser's psnr is labelled "(clean inputs)" and followed by its denoising psnr on the fixed
    noisy test images: at its own variance, "psnr 20.07 dB (clean inputs), denoising psnr 23.40 dB
    at sigma^2=0.04", or for a blind one the lowest and highest over the evaluation levels in its
    range, and those levels, "denoising psnr 17.90-26.10 dB at sigma^2 0.01-0.25" (one level: as a
    per-level denoiser's). A baselines trial of one method
    shows that method's denoising psnr, "denoising psnr 18.20 dB at sigma^2=0.04" (with "on the
    fixed subset of N test images" for a subset-only method such as bm3d)."""
    head = f"[{n_done}/{total}] {row['id']}"
    if row.get("status") != "ok":
        return f"{head} failed: {error_headline(row)}"

    nv, parts = row.get("noise_var"), []
    if "rows" in row:  # a baselines trial holds its methods' rows, each scored on noisy inputs of noise_var
        scored = [r for r in row.get("rows") or [] if _number(r.get("psnr"))]
        if len(scored) == 1 and _number(nv):
            r = scored[0]
            on = f" on the fixed subset of {r.get('n_images', 0):,} test images" if r.get("subset") else ""
            parts.append(f"denoising psnr {r['psnr']:.2f} dB at sigma^2={nv:g}{on}")
    elif _number(row.get("psnr")):
        if nv is None:
            parts.append(f"psnr {row['psnr']:.2f} dB")
        else:
            parts.append(f"psnr {row['psnr']:.2f} dB (clean inputs)")
            levels = [d for d in row.get("denoising") or [] if _number(d.get("psnr")) and _number(d.get("noise_var"))]
            if isinstance(nv, (list, tuple)) and len(nv) == 2:
                inside = [d for d in levels if nv[0] <= d["noise_var"] <= nv[1]]
                if len(inside) == 1:
                    parts.append(f"denoising psnr {inside[0]['psnr']:.2f} dB at sigma^2={inside[0]['noise_var']:g}")
                elif inside:
                    psnrs, variances = [d["psnr"] for d in inside], [d["noise_var"] for d in inside]
                    parts.append(f"denoising psnr {min(psnrs):.2f}-{max(psnrs):.2f} dB "
                                 f"at sigma^2 {min(variances):g}-{max(variances):g}")
            else:
                own = [d["psnr"] for d in levels if d["noise_var"] == nv]
                if own:
                    parts.append(f"denoising psnr {own[0]:.2f} dB at sigma^2={nv:g}")
    parts.append(f"{row.get('wall_seconds', 0):.1f} s")
    return f"{head} ok: {', '.join(parts)}"


# ------------------------------------------------------------------------------------------
# results
# ------------------------------------------------------------------------------------------

RESULT_COLUMNS = [
    "id", "phase", "kind", "dataset", "depth", "widths", "latent", "l2", "l1", "noise_var",
    "psnr", "psnr_dataset", "ssim", "val_psnr", "train_psnr", "noisy_psnr", "code_zero_fraction",
    "code_dead_units", "epochs_run", "best_epoch", "seconds", "parameters", "seed", "status", "error",
]
DENOISING_COLUMNS = [
    "dataset", "noise_var", "sigma", "method", "detail", "psnr", "psnr_dataset", "ssim", "n_images",
    "subset_psnr", "subset_psnr_dataset", "subset_images", "seconds",
]
TIMING_COLUMNS = ("seconds", "wall_seconds")  # the only columns that differ between identical runs


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in row.items()})
    return buf.getvalue()


def _denoising_rows(c: StudyConfig, done: dict[str, dict], ordered: list[dict]) -> list[dict]:
    """One row per dataset x evaluation variance x method: the classical baselines, the per-level
    and blind denoising autoencoders, and the best plain autoencoder fed noisy images."""
    if c.denoising is None:
        return []
    rows = []
    for dataset in c.datasets:
        mine = [r for r in ordered if r["dataset"] == dataset and r.get("status") == "ok"]
        best_plain = _best([r for r in mine if r["phase"] == "grid"] or [None])
        for var in c.denoising.variances:
            def add(method: str, detail: str, score: dict | None, seconds=None) -> None:
                if score is not None:
                    rows.append({"dataset": dataset, "noise_var": var, "sigma": round(math.sqrt(var), 4),
                                 "method": method, "detail": detail, "seconds": seconds,
                                 **{k: score.get(k) for k in ("psnr", "psnr_dataset", "ssim", "n_images",
                                                              "subset_psnr", "subset_psnr_dataset",
                                                              "subset_images")}})

            for r in mine:
                if r["kind"] == "baselines" and r["noise_var"] == var:
                    for b in r["rows"]:
                        add(b["method"], b.get("detail", ""), _baseline_score(b), b.get("seconds"))
            for r in mine:
                if r["kind"] != "ae" or r["noise_var"] is None:
                    continue
                blind = isinstance(r["noise_var"], list)
                if not blind and r["noise_var"] != var:
                    continue
                score = next((s for s in r["denoising"] if s["noise_var"] == var), None)
                arch = f"widths {r['widths']}, L={r['latent']}"
                detail = f"blind σ² {r['noise_var'][0]:g}..{r['noise_var'][1]:g}; {arch}" if blind else arch
                add("dae-blind" if blind else "dae", detail, score, r["seconds"])
            if best_plain is not None:
                score = next((s for s in best_plain["denoising"] if s["noise_var"] == var), None)
                add("ae", f"best plain autoencoder (depth {best_plain['depth']}, L={best_plain['latent']})",
                    score, None)
    return rows


def _baseline_score(b: dict) -> dict:
    """A baseline result as a denoising-table score: a method run on the fixed subset only has
    subset_* numbers."""
    if b.get("subset"):
        return {"subset_psnr": b["psnr"], "subset_psnr_dataset": b["psnr_dataset"], "subset_images": b["n_images"],
                "ssim": None, "note": b.get("note", "")}
    return b


def _read_summary(out: Path) -> dict:
    """The summary.json of an earlier run of the study in `out` ({} when there is none, or it is
    damaged: it holds only what this run rewrites, and the earlier runs' wall time)."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def collect(c: StudyConfig, out: str | Path, done: dict[str, dict] | None = None,
            wall_seconds: float | None = None, earlier_seconds: float = 0.0, started_at: float | None = None) -> dict:
    """Write results.csv/json (a row per trial), denoising.csv/json and summary.json from the
    finished trials of study `c` in `out`; returns the summary dict (rows, denoising, choices).
    wall_seconds: this run's wall time once it ended; earlier_seconds: the earlier runs' total;
    started_at: the start of the latest run that ran trials (Unix time, s; the origin of the
    report's timeline)."""
    out = Path(out)
    done = _scan_finished(c, out) if done is None else done
    from .trials import finished_result

    ordered = []
    for t in plan(c, done):
        r = done.get(t.id) or finished_result(out, t.to_dict())
        if r is not None:
            ordered.append(r)
    rows = [{k: v for k, v in r.items() if k != "trial"} for r in ordered if r["kind"] in ("ae", "pca")]
    failed = [{"id": r["id"], "phase": r["phase"], "dataset": r["dataset"], "error": r.get("error", ""),
               "attempts": r.get("attempts", 1)} for r in ordered if r.get("status") != "ok"]
    rows += [{k: v for k, v in r.items() if k != "trial"} for r in ordered
             if r["kind"] == "baselines" and r.get("status") != "ok"]
    denoising = _denoising_rows(c, done, ordered)
    choices = {}
    for dataset in c.datasets:
        mine = [r for r in ordered if r["dataset"] == dataset and r.get("status") == "ok" and r["kind"] == "ae"]
        pick = {}
        for phase in ("grid", "l2", "l1"):
            best = _best([r for r in mine if r["phase"] == phase] or [None])
            if best is not None:
                pick[phase] = {"id": best["id"], "depth": best["depth"], "latent": best["latent"],
                               "l2": best["l2"], "l1": best["l1"], "val_psnr": best["val_psnr"]}
        choices[dataset] = pick
    summary = {"study": c.to_dict(), "trials_total": count_trials(c), "trials_done": len(ordered),
               "failed": failed, "choices": choices, "rows": rows, "denoising": denoising}
    if started_at is not None:
        summary["started_at"] = round(started_at, 3)
    if wall_seconds is not None:  # this run's wall time, and the total over the runs that ended
        summary["wall_seconds"] = round(wall_seconds, 1)
        summary["wall_seconds_total"] = round(earlier_seconds + wall_seconds, 1)
    elif earlier_seconds:  # summaries written while a run goes on keep the earlier total
        summary["wall_seconds_total"] = round(earlier_seconds, 1)
    atomic_write_text(out / "results.csv", _csv(rows, RESULT_COLUMNS))
    atomic_write_json(out / "results.json", rows)
    atomic_write_text(out / "denoising.csv", _csv(denoising, DENOISING_COLUMNS))
    atomic_write_json(out / "denoising.json", denoising)
    atomic_write_json(out / "summary.json", {k: v for k, v in summary.items() if k not in ("rows", "denoising")})
    return summary
