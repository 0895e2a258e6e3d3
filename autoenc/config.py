"""The configuration: one schema for the command line, the files in conf/ and the Python API.

Hydra composes conf/ (train.yaml, study.yaml and a group per concern) over the dataclasses below,
registered in its ConfigStore, so an unknown key or a value of the wrong type is refused while
composing. Every field carries its `Rule`: `check` applies them (and the few rules that join two
fields) before any work, and the engine's ModelConfig / TrainConfig check their fields with the
same rules, so each allowed value is written here once.

Units: pixels in [0, 1]; noise as the variance sigma^2 on that scale; PSNR in dB.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from .errors import ConfigError

# ---- allowed values (the engine maps each name to its implementation) ----
DATASETS = ("mnist", "fashion-mnist")  # the known datasets; any other is a path to your own data
PRESETS: Dict[int, tuple] = {3: (256, 128), 5: (512, 384, 256, 128)}  # depth -> hidden widths
ACTIVATIONS = ("relu", "gelu", "silu", "elu", "leaky_relu", "tanh", "linear")
NORMS = ("none", "batch", "layer")
INITS = ("default", "orthogonal", "kaiming", "glorot")
SCHEDULES = ("onecycle", "cosine", "constant")
LOSSES = ("mse", "bce")
PRECISIONS = ("auto", "fp32", "bf16")
BACKENDS = ("torch", "keras")
NOISE_KINDS = ("none", "gaussian", "blind")
CUDA_GRAPHS = ("auto", "off", "forward", "step")
BASELINES = ("noisy", "gaussian", "median", "nlm", "wavelet", "tv", "bm3d", "pca", "linear")
EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Rule:
    """What a field allows: `ok(value)` and the words that say so in an error."""

    ok: Callable[[Any], bool]
    allowed: str


def _int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def whole(low: int, example: str = "") -> Rule:
    """A whole number >= low."""
    return Rule(lambda v: _int(v) and v >= low, f"a whole number >= {low}{example}")


def real(low: float, high: float = math.inf, *, above: bool = False, below: bool = False, example: str = "") -> Rule:
    """A finite number in [low, high] (above / below: the bound itself excluded)."""
    lo, hi = ("(" if above else "[") + f"{low:g}", f"{high:g}" + (")" if below else "]")
    text = f"a finite number > {low:g}" if high == math.inf and above else \
        f"a finite number >= {low:g}" if high == math.inf else f"a number in {lo}, {hi}"

    def ok(v) -> bool:
        return _real(v) and (v > low if above else v >= low) and (v < high if below else v <= high)
    return Rule(ok, text + example)


def choice(options, what: str = "") -> Rule:
    """One of `options`."""
    return Rule(lambda v: isinstance(v, str) and v in options, f"one of {', '.join(options)}{what}")


def optional(rule: Rule, none: str) -> Rule:
    """`rule`, or None (null in YAML) meaning `none`."""
    return Rule(lambda v: v is None or rule.ok(v), f"{rule.allowed}, or null ({none})")


def list_of(rule: Rule, what: str, empty: bool = True) -> Rule:
    """A list whose every item passes `rule` (`empty`: [] allowed)."""
    return Rule(lambda v: isinstance(v, (list, tuple)) and (empty or len(v) > 0) and all(rule.ok(x) for x in v),
                f"a list of {what}" + ("" if empty else " (at least one)"))


FLAG = Rule(lambda v: isinstance(v, bool), "true or false")
TEXT = Rule(lambda v: isinstance(v, str) and v.strip() != "", "a non-empty text")
ANY = Rule(lambda v: True, "anything")
VARIANCE = real(0, 1, above=True, example=" (the noise variance sigma^2 on the [0, 1] pixel scale, e.g. 0.09)")
VARIANCE_RANGE = Rule(lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(VARIANCE.ok(x) for x in v)
                      and v[0] < v[1], "[low, high]: two noise variances in (0, 1] with low < high, e.g. "
                                       "[0.01, 0.25]")
STRENGTH = real(0, example=" (0: off)")


def rule(r: Rule, default=dataclasses.MISSING, factory=dataclasses.MISSING):
    """A dataclass field checked by `r`."""
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata={"rule": r})
    return field(default=default, metadata={"rule": r})


def check(obj, where: str = "") -> None:
    """Check every field of dataclass `obj` against its Rule; ConfigError "<where><field>=<value>
    is not allowed: <what is>" on the first that fails."""
    for f in dataclasses.fields(obj):
        r = f.metadata.get("rule")
        value = getattr(obj, f.name)
        if r is not None and not r.ok(_plain(value)):
            raise ConfigError(f"{where}{f.name}={_show(value)} is not allowed: {r.allowed}")


def rule_of(cls, name: str) -> Rule | None:
    """The Rule of field `name` of dataclass `cls` (None when it has none)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f.metadata.get("rule")
    return None


def _plain(value):
    """OmegaConf containers as plain lists and dicts (the rules test Python values)."""
    if hasattr(value, "_metadata") and hasattr(value, "_get_full_key"):  # a ListConfig / DictConfig
        from omegaconf import OmegaConf
        return OmegaConf.to_container(value, resolve=True)
    return value


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return text.lower() in ("true", "false", "null", "none")


def _show(value) -> str:
    value = _plain(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):  # bare, as on the command line, unless it would read as something else
        return value if value and " " not in value and not _looks_numeric(value) else repr(value)
    return repr(value)


# ---- `autoenc train`: one run (conf/train.yaml and its groups) ----

@dataclass
class DatasetConf:
    """conf/dataset/: which images. name: mnist, fashion-mnist or custom (your own data at
    `path`: a folder of IDX files or an .npz with x (N, H, W) uint8 and optional labels y);
    train/val/test_images: use only the first n images of that split (quick looks, tests)."""

    name: str = rule(TEXT, "mnist")
    path: Optional[str] = rule(optional(TEXT, "a known dataset"), None)
    train_images: Optional[int] = rule(optional(whole(2), "the whole split"), None)
    val_images: Optional[int] = rule(optional(whole(1), "the whole split"), None)
    test_images: Optional[int] = rule(optional(whole(1), "the whole split"), None)


@dataclass
class ModelConf:
    """conf/model/: the architecture but its latent size. widths: hidden widths of the encoder,
    outermost first (the decoder mirrors them); activation: of the hidden layers; latent_activation:
    of the code E; norm: after each hidden dense layer; decoder_norm: the decoder's own (null: norm;
    none lets the code's scale reach the output, docs/recipe.md); unit_code_columns: the decoder's
    first layer uses each code unit's weight column at unit L2 norm; init: of the dense weights
    (default: PyTorch's, glorot: Keras's, in either backend; docs/keras.md)."""

    name: str = rule(TEXT, "deep3")
    widths: List[int] = rule(list_of(whole(1), "hidden widths, whole numbers >= 1, e.g. [512, 256]"),
                             factory=lambda: list(PRESETS[3]))
    activation: str = rule(choice(ACTIVATIONS), "silu")
    latent_activation: str = rule(choice(ACTIVATIONS), "linear")
    norm: str = rule(choice(NORMS), "batch")
    decoder_norm: Optional[str] = rule(optional(choice(NORMS), "the same as norm"), None)
    unit_code_columns: bool = rule(FLAG, False)
    init: str = rule(choice(INITS), "orthogonal")


@dataclass
class RegularizerConf:
    """conf/regularizer/: the protocol's penalties, added to every batch loss. l2: times the sum
    of squared dense weights (biases excluded); l1: times the batch mean of sum_j |E_j|."""

    name: str = rule(TEXT, "none")
    l2: float = rule(STRENGTH, 0.0)
    l1: float = rule(STRENGTH, 0.0)


@dataclass
class NoiseConf:
    """conf/noise/: train a denoiser. name: none, gaussian (variance `var`) or blind (variance
    range `range`, sigma drawn uniformly per image); clip: clip noisy inputs to [0, 1]."""

    name: str = rule(choice(NOISE_KINDS), "none")
    var: Optional[float] = rule(optional(VARIANCE, "no fixed level"), None)
    range: Optional[List[float]] = rule(optional(VARIANCE_RANGE, "no range"), None)
    clip: bool = rule(FLAG, True)


@dataclass
class TrainerConf:
    """conf/trainer/: how to train (docs/recipe.md). epochs: passes over the training split;
    lr: Adam's peak learning rate (null: 1e-2 up to depth 3, 3e-3 deeper); schedule: onecycle
    (warm-up over `warmup` of the steps, null: 0.1 / 0.3 by depth, then cosine), cosine or
    constant; patience: epochs without a better validation loss before stopping (0: never),
    counted from the `patience_start` fraction of the epochs; bn_images: training images the
    batch-norm statistics are recomputed from after each epoch (0: running averages);
    budget_seconds: pick the epochs that fit this many seconds here (measured once per run);
    checkpoint_seconds: between checkpoints (0: every epoch); cuda_graphs: on CUDA, replay each
    step's forward/backward (auto, forward) or whole step (step) as graphs, or not (off)."""

    name: str = rule(TEXT, "default")
    epochs: int = rule(whole(1), 100)
    batch_size: int = rule(whole(1), 256)
    lr: Optional[float] = rule(optional(real(0, above=True, example=" (try 1e-3 to 1e-2)"), "by depth"), None)
    schedule: str = rule(choice(SCHEDULES), "onecycle")
    warmup: Optional[float] = rule(optional(real(0, 1, below=True), "by depth"), None)
    loss: str = rule(choice(LOSSES), "mse")
    patience: int = rule(whole(0), 10)
    patience_start: float = rule(real(0, 1, below=True), 0.5)
    bn_images: int = rule(Rule(lambda v: _int(v) and (v == 0 or v >= 2), "0 (running averages) or a whole number "
                                                                          ">= 2, e.g. 4096"), 4096)
    precision: str = rule(choice(PRECISIONS), "auto")
    threads: Optional[int] = rule(optional(whole(1), "torch's default"), None)
    budget_seconds: Optional[float] = rule(optional(real(0, above=True), "train `epochs`"), None)
    checkpoint_seconds: float = rule(real(0, example=" (0: after every epoch)"), 30.0)
    cuda_graphs: str = rule(choice(CUDA_GRAPHS), "auto")


@dataclass
class TrainJob:
    """conf/train.yaml: one run. latent: the code size L; seed: initialization, batch order and
    noise; device: auto (CUDA when there is one), cpu, cuda, cuda:1, ...; backend: torch or keras;
    data_dir: where the datasets are (null: $AUTOENC_DATA_DIR, the cache, Debian's, a download)."""

    dataset: DatasetConf = field(default_factory=DatasetConf)
    model: ModelConf = field(default_factory=ModelConf)
    regularizer: RegularizerConf = field(default_factory=RegularizerConf)
    noise: NoiseConf = field(default_factory=NoiseConf)
    trainer: TrainerConf = field(default_factory=TrainerConf)
    latent: int = rule(whole(1, " (the code size L)"), 30)
    seed: int = rule(whole(0), 0)
    device: str = rule(TEXT, "auto")
    backend: str = rule(choice(BACKENDS), "torch")
    data_dir: Optional[str] = rule(optional(TEXT, "$AUTOENC_DATA_DIR or the cache"), None)


def check_job(job: TrainJob) -> None:
    """Check a composed train job (`check` on every part, then the rules that join fields)."""
    for part in ("dataset", "model", "regularizer", "noise", "trainer"):
        check(getattr(job, part), f"{part}.")
    check(job)
    d, n = job.dataset, job.noise
    if d.name == "custom" and not d.path:
        raise ConfigError("dataset=custom needs dataset.path=... (a folder of IDX files or an .npz file)")
    if d.name != "custom" and d.path:
        raise ConfigError(f"dataset.path={d.path} is given for dataset={d.name}; use dataset=custom for your own data")
    if n.name == "gaussian" and n.var is None:
        raise ConfigError("noise=gaussian needs noise.var=... (the variance sigma^2, e.g. 0.09)")
    if n.name == "blind" and n.range is None:
        raise ConfigError("noise=blind needs noise.range=[low,high] (variances, e.g. [0.01,0.25])")
    if n.name != "gaussian" and n.var is not None:
        raise ConfigError(f"noise.var={n.var:g} is given with noise={n.name}; use noise=gaussian noise.var={n.var:g}")
    if n.name != "blind" and n.range is not None:
        raise ConfigError(f"noise.range={_show(n.range)} is given with noise={n.name}; use noise=blind")
    if job.device != "auto" and job.device != "cpu" and not job.device.startswith("cuda"):
        raise ConfigError(f"device={job.device} is not allowed: auto, cpu, cuda or cuda:N")
    check_backend(job.backend, job.device, job.trainer.precision)
    if job.backend == "keras" and job.trainer.budget_seconds is not None:
        raise ConfigError(f"trainer.budget_seconds={job.trainer.budget_seconds:g} is measured on the torch trainer, "
                          f"not with backend=keras; give trainer.epochs=N instead (or backend=torch)")


def check_backend(backend: str, device: str, precision: str, where: str = "") -> None:
    """The settings backend=keras cannot run (TensorFlow's CPU build, in float32): a GPU device,
    precision bf16. ConfigError naming the key and the fix; nothing to check for torch."""
    if backend != "keras":
        return
    if device not in ("auto", "cpu"):
        raise ConfigError(f"{where}device={device} is not available with backend=keras, which runs on TensorFlow's CPU "
                          f"build: use device=cpu (or auto), or backend=torch for a GPU")
    if precision == "bf16":
        raise ConfigError(f"{where}precision=bf16 is not available with backend=keras, which trains in float32: use "
                          f"precision=fp32 (or auto), or backend=torch")


def cuda_graphs_mode(name: str) -> bool | str | None:
    """The engine's cuda_graphs for trainer.cuda_graphs: auto -> None (on CUDA only), off ->
    False, forward -> True (forward/backward graphs), step -> "step" (the whole step)."""
    return {"auto": None, "off": False, "forward": True, "step": "step"}[name]


def noise_spec(noise: NoiseConf) -> float | tuple[float, float] | None:
    """The engine's noise_var: None (no noise), a variance sigma^2, or a (low, high) range."""
    if noise.name == "gaussian":
        return float(noise.var)
    if noise.name == "blind":
        return (float(noise.range[0]), float(noise.range[1]))
    return None




# ---- `autoenc study`: the lab (conf/study.yaml, conf/study/) ----

EPOCHS_MAP = Rule(lambda v: (_int(v) and v >= 1) or (isinstance(v, dict) and len(v) > 0 and all(
    _int(k) and k in PRESETS and _int(e) and e >= 1 for k, e in v.items())),
    "epochs per depth, e.g. {3: 40, 5: 25}, or one whole number >= 1 for both")
ARCHITECTURE = Rule(lambda v: v == "best" or (isinstance(v, dict) and set(v) <= {"depth", "widths", "latent"}
                                              and ("depth" in v) != ("widths" in v) and whole(1).ok(v.get("latent"))
                                              and (v.get("depth") in PRESETS if "depth" in v else
                                                   list_of(whole(1), "", empty=False).ok(v["widths"]))),
                    "best, {depth: 3|5, latent: L} or {widths: [w1, w2, ...], latent: L}")
# the engine's fields a study may override for every trial (the rest it sets itself)
MODEL_OVERRIDES = ("activation", "latent_activation", "norm", "decoder_norm", "unit_code_columns", "init")
TRAIN_OVERRIDES = ("batch_size", "lr", "schedule", "warmup", "loss", "patience", "patience_start", "bn_images",
                   "precision", "noise_clip")


@dataclass
class ModelOverrides:
    """study.model (or study.denoising.model): the architecture settings every trial of the
    study uses instead of the model group's (null: unchanged)."""

    activation: Optional[str] = rule(optional(choice(ACTIVATIONS), "unchanged"), None)
    latent_activation: Optional[str] = rule(optional(choice(ACTIVATIONS), "unchanged"), None)
    norm: Optional[str] = rule(optional(choice(NORMS), "unchanged"), None)
    decoder_norm: Optional[str] = rule(optional(choice(NORMS), "unchanged"), None)
    unit_code_columns: Optional[bool] = rule(optional(FLAG, "unchanged"), None)
    init: Optional[str] = rule(optional(choice(INITS), "unchanged"), None)


@dataclass
class TrainOverrides:
    """study.train (or study.denoising.train): the training settings every trial of the study
    uses instead of the default recipe's (null: unchanged)."""

    batch_size: Optional[int] = rule(optional(whole(1), "unchanged"), None)
    lr: Optional[float] = rule(optional(real(0, above=True), "unchanged"), None)
    schedule: Optional[str] = rule(optional(choice(SCHEDULES), "unchanged"), None)
    warmup: Optional[float] = rule(optional(real(0, 1, below=True), "unchanged"), None)
    loss: Optional[str] = rule(optional(choice(LOSSES), "unchanged"), None)
    patience: Optional[int] = rule(optional(whole(0), "unchanged"), None)
    patience_start: Optional[float] = rule(optional(real(0, 1, below=True), "unchanged"), None)
    bn_images: Optional[int] = rule(optional(rule_of(TrainerConf, "bn_images"), "unchanged"), None)
    precision: Optional[str] = rule(optional(choice(PRECISIONS), "unchanged"), None)
    noise_clip: Optional[bool] = rule(optional(FLAG, "unchanged"), None)


@dataclass
class SubsetConf:
    """study.subset: use only the first n images of a split (null: the whole split)."""

    train: Optional[int] = rule(optional(whole(2), "the whole split"), None)
    val: Optional[int] = rule(optional(whole(1), "the whole split"), None)
    test: Optional[int] = rule(optional(whole(1), "the whole split"), None)


@dataclass
class DenoiseConfig:
    """study.denoising: variances: the evaluation grid (one denoiser per level); blind: [low,
    high] of the blind denoiser, or null; architecture: {widths: [...], latent: L}, {depth: 3|5,
    latent: L} or best (the grid's best, by validation psnr); model / train: overrides for the
    denoisers; baselines: classical methods to compare; subset: test images the slow baselines
    (and, for comparison, every method) run on; epochs, gpu_epochs: per depth on a CPU / a GPU
    (null: the study's); blind_epochs_factor: the blind denoiser's budget as a multiple of those."""

    variances: List[float] = rule(list_of(VARIANCE, "noise variances sigma^2 in (0, 1], e.g. [0.01, 0.04]"),
                                  factory=lambda: [0.01, 0.04, 0.09, 0.16, 0.25])
    blind: Optional[List[float]] = rule(optional(VARIANCE_RANGE, "no blind denoiser"), factory=lambda: [0.01, 0.25])
    architecture: Any = rule(ARCHITECTURE, factory=lambda: {"widths": [512, 256], "latent": 100})
    model: ModelOverrides = field(default_factory=ModelOverrides)
    train: TrainOverrides = field(default_factory=TrainOverrides)
    baselines: List[str] = rule(list_of(choice(BASELINES), "baselines: " + ", ".join(BASELINES)),
                                factory=lambda: list(BASELINES))
    subset: int = rule(whole(1, " (test images, e.g. 1000)"), 1000)
    epochs: Any = rule(optional(EPOCHS_MAP, "the study's"), factory=lambda: {3: 10, 5: 10})
    gpu_epochs: Any = rule(optional(EPOCHS_MAP, "epochs"), factory=lambda: {3: 100, 5: 100})
    blind_epochs_factor: float = rule(real(0, 100, above=True, example=" (e.g. 2: twice the per-level epochs)"),
                                      2.0)

    def __post_init__(self) -> None:
        check_denoising(self)

    def to_dict(self) -> dict:
        """A plain dict (what a YAML file with every key would hold)."""
        return dataclasses.asdict(self)


@dataclass
class StudyConfig:
    """conf/study/: a study. datasets x depths x latents: the grid; model / train: overrides of
    the engine's ModelConfig / TrainConfig for every trial; epochs / gpu_epochs: per depth on a
    CPU / a GPU (gpu_epochs null: epochs); l2, l1: strengths tried on the best architecture;
    combined: also the best l2 with the best l1; penalty_model: model overrides for those
    penalized trials, which then also run without a penalty ("unpenalized") as their reference
    (the default lets the code's scale reach the output, docs/recipe.md; {}: the grid's own model,
    whose chosen arm is then the reference); pca: PCA baselines at k = every latent;
    denoising: null to skip; subset: {train|val|test: n} to use the first n images of a split;
    robustness_var: the noise variance of every compression model's robustness check; seed: the
    first training seed, and the seed of the fixed test and validation noise and the baselines;
    seeds / gpu_seeds: every autoencoder trial runs with the training seeds seed, seed + 1, ...,
    seed + seeds - 1 on a CPU (gpu_seeds on a GPU; null: seeds), so each comparison has a mean and a
    spread; threads: CPU threads per trial (the numbers depend on it, not on scheduling);
    workers: trials side by side (auto: what fits the cores); device: auto, cpu or cuda; stack:
    same-architecture trials trained at once as one stacked model (auto: 8 on a GPU, 1 on a CPU;
    part of each trial's identity, as the numbers change by rounding; torch only); backend: the
    autoencoders' engine, torch or keras (part of each trial's identity)."""

    name: str = rule(TEXT, "lab")
    datasets: List[str] = rule(list_of(TEXT, "datasets: mnist, fashion-mnist or paths to your data", empty=False),
                               factory=lambda: ["mnist", "fashion-mnist"])
    depths: List[int] = rule(list_of(Rule(lambda v: _int(v) and v in PRESETS, "3 or 5"),
                                     "depths: 3 and/or 5 (the protocol's presets), or [] to skip the grid"),
                             factory=lambda: [3, 5])
    latents: List[int] = rule(list_of(whole(1), "latent sizes, e.g. [15, 30, 50, 100], or [] to skip the grid"),
                              factory=lambda: [15, 30, 50, 100])
    model: ModelOverrides = field(default_factory=ModelOverrides)
    train: TrainOverrides = field(default_factory=TrainOverrides)
    epochs: Any = rule(EPOCHS_MAP, factory=lambda: {3: 10, 5: 10})
    gpu_epochs: Any = rule(optional(EPOCHS_MAP, "epochs"), factory=lambda: {3: 100, 5: 100})
    l2: List[float] = rule(list_of(real(0, above=True), "strengths > 0, e.g. [1e-6, 1e-5, 1e-4], or [] to skip"),
                           factory=lambda: [1e-6, 1e-5, 1e-4])
    l1: List[float] = rule(list_of(real(0, above=True), "strengths > 0, e.g. [1e-5, 1e-4, 1e-3], or [] to skip"),
                           factory=lambda: [1e-5, 1e-4, 1e-3])
    combined: bool = rule(FLAG, True)
    penalty_model: ModelOverrides = field(
        default_factory=lambda: ModelOverrides(decoder_norm="none", unit_code_columns=True))
    pca: bool = rule(FLAG, True)
    denoising: Optional[DenoiseConfig] = field(default_factory=DenoiseConfig)
    subset: SubsetConf = field(default_factory=SubsetConf)
    robustness_var: float = rule(VARIANCE, 0.01)
    seed: int = rule(whole(0), 0)
    seeds: int = rule(whole(1, " (training seeds per autoencoder trial, e.g. 2)"), 2)
    gpu_seeds: Optional[int] = rule(optional(whole(1), "seeds"), 5)
    threads: int = rule(whole(1, " (CPU threads per trial)"), 1)
    workers: Any = rule(Rule(lambda v: v == "auto" or (_int(v) and v >= 1), "auto or a whole number >= 1"), "auto")
    device: str = rule(Rule(lambda v: isinstance(v, str) and (v in ("auto", "cpu") or v.startswith("cuda")),
                            "auto, cpu, cuda or cuda:N"), "auto")
    stack: Any = rule(Rule(lambda v: v == "auto" or (_int(v) and v >= 1),
                           "auto (8 on a GPU, 1 on a CPU) or a whole number >= 1 (1: each trial alone)"), "auto")
    backend: str = rule(choice(BACKENDS), "torch")

    def __post_init__(self) -> None:
        if self.denoising is not None and not isinstance(self.denoising, DenoiseConfig):
            self.denoising = DenoiseConfig(**_known(DenoiseConfig, self.denoising, "study.denoising."))
        check_study(self)

    def to_dict(self) -> dict:
        """A plain dict (what a YAML file with every key would hold)."""
        return dataclasses.asdict(self)


def _epochs_map(value) -> dict[int, int]:
    return {3: value, 5: value} if _int(value) else {int(k): int(v) for k, v in value.items()}


def _known(cls, data, where: str) -> dict:
    """`data` as keyword arguments of dataclass `cls`; an unknown key is a ConfigError naming it."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where[:-1]}={_show(data)} is not allowed: a mapping of keys to values")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(f"{where}{key} is not a key of {where[:-1] or 'a study'}; allowed: {', '.join(names)}")
    return dict(data)


def values_set(value) -> dict:
    """An overrides or subset dataclass (or a mapping) as a dict of the keys that are set, e.g.
    values_set(study.subset) -> {"train": 10000, "test": 1000}."""
    value = _plain(value)
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    return {k: v for k, v in value.items() if v is not None} if isinstance(value, dict) else value


def _typed(cls, value, where: str):
    """A mapping (a study read from a file or a dict) as dataclass `cls`, checked; one already
    of that type as it is, checked."""
    if not dataclasses.is_dataclass(value):
        value = cls(**_known(cls, _plain(value) if value is not None else {}, where))
    check(value, where)
    return value


def _check_overrides(where: str, overrides: dict, allowed: tuple, planned: dict) -> None:
    """study.model / study.train (or denoising's): keys the study lets a config set for every trial,
    each checked by its schema rule; `planned`: keys the study sets itself -> where to set them."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{where}={_show(overrides)} is not allowed: a mapping of keys to values")
    for key, value in overrides.items():
        if value is None:  # null: unchanged
            continue
        if key in planned:
            raise ConfigError(f"{where}.{key}={_show(value)} is not allowed: {planned[key]}")
        if key not in allowed:
            raise ConfigError(f"{where}.{key} is not allowed; allowed keys: {', '.join(allowed)}")
        r = ENGINE_RULES[key]
        if not r.ok(_plain(value)):
            raise ConfigError(f"{where}.{key}={_show(value)} is not allowed: {r.allowed}")


def _overrides(value, cls, where: str, allowed: tuple, planned: dict):
    """study.model / study.train (or denoising's) as dataclass `cls`: a mapping's keys checked
    first (a key the study sets itself is named with where to set it), then every value's rule."""
    if not dataclasses.is_dataclass(value):
        _check_overrides(where[:-1], _plain(value) if value is not None else {}, allowed, planned)
    return _typed(cls, value, where)


def check_denoising(d: DenoiseConfig, where: str = "study.denoising.") -> None:
    """Check study.denoising (its fields' rules and their combinations); budgets as {depth: epochs}."""
    check(d, where)
    if d.blind is not None and not d.variances:  # it is scored and selected at those levels
        raise ConfigError(f"{where}blind={_show(d.blind)} needs levels to be scored at, but {where}variances is "
                          f"empty: give at least one, e.g. [0.04], or blind: null")
    for key in ("epochs", "gpu_epochs"):
        if getattr(d, key) is not None:
            setattr(d, key, _epochs_map(_plain(getattr(d, key))))
    why = "set epochs with denoising.epochs; noise with denoising.variances / blind"
    d.model = _overrides(d.model, ModelOverrides, f"{where}model.", MODEL_OVERRIDES, {
        k: "the study sets each denoiser's architecture from denoising.architecture" for k in
        ("input_dim", "widths", "latent")})
    d.train = _overrides(d.train, TrainOverrides, f"{where}train.", TRAIN_OVERRIDES, {
        **{k: why for k in ("epochs", "noise_var", "seed", "device", "threads")},
        **{k: "the denoisers train without penalties" for k in ("l2", "l1")}})


def check_study(c: StudyConfig, where: str = "study.") -> None:
    """Check a study (its fields' rules and their combinations); budgets as {depth: epochs}."""
    check(c, where)
    from pathlib import Path

    for name in c.datasets:
        if name not in DATASETS and not Path(name).expanduser().exists():
            raise ConfigError(f"{where}datasets: {name!r} is not a known dataset ({', '.join(DATASETS)}) nor a path to "
                              f"your data")
    check_backend(c.backend, c.device, "auto", where)
    if c.denoising is not None and c.denoising.architecture == "best" and not (c.depths and c.latents):
        raise ConfigError(f"{where}denoising.architecture=best needs a grid, but {where}depths or {where}latents is "
                          f"empty: name the denoisers' architecture, e.g. {{depth: 3, latent: 100}}")
    c.epochs = _epochs_map(_plain(c.epochs))
    if c.gpu_epochs is not None:
        c.gpu_epochs = _epochs_map(_plain(c.gpu_epochs))
    top = "set it at the top level of the study, not under train"
    planned = {k: "the study sets each trial's architecture from depths and latents (the denoisers': "
                  "denoising.architecture); input_dim comes from the dataset" for k in ("input_dim", "widths", "latent")}
    c.model = _overrides(c.model, ModelOverrides, f"{where}model.", MODEL_OVERRIDES, planned)
    c.penalty_model = _overrides(c.penalty_model, ModelOverrides, f"{where}penalty_model.", MODEL_OVERRIDES, planned)
    c.train = _overrides(c.train, TrainOverrides, f"{where}train.", TRAIN_OVERRIDES, {
        **{k: top for k in ("epochs", "noise_var", "seed", "device", "threads")},
        **{k: f"the study sets each trial's penalties: list the strengths to try in {where}{k}, e.g. [1e-5]"
           for k in ("l2", "l1")}})
    c.subset = _typed(SubsetConf, c.subset, f"{where}subset.")
    for part, train in (("train", c.train), ("denoising.train", c.denoising.train if c.denoising else None)):
        if train is not None and train.precision is not None:
            check_backend(c.backend, "auto", train.precision, f"{where}{part}.")


def study_from_dict(data: dict, where: str = "study.") -> StudyConfig:
    """A StudyConfig from a mapping (a YAML file's, or a composed config's as plain containers);
    unknown keys and values that are not allowed are ConfigErrors naming the key."""
    return StudyConfig(**_known(StudyConfig, _plain(data) or {}, where))


# ---- the engine's configs (model.ModelConfig, training.TrainConfig): the same rules ----

ENGINE_RULES: Dict[str, Rule] = {
    "input_dim": whole(1, " (pixels per image)"), "latent": rule_of(TrainJob, "latent"),
    **{name: rule_of(ModelConf, name) for name in ("widths", "activation", "latent_activation", "norm", "decoder_norm",
                                                    "unit_code_columns", "init")},
    **{name: rule_of(TrainerConf, name) for name in ("epochs", "batch_size", "lr", "schedule", "warmup", "loss",
                                                     "patience", "patience_start", "bn_images", "precision",
                                                     "threads")},
    "l2": rule_of(RegularizerConf, "l2"), "l1": rule_of(RegularizerConf, "l1"), "seed": rule_of(TrainJob, "seed"),
    "device": TEXT, "noise_clip": rule_of(NoiseConf, "clip"),
    "noise_var": Rule(lambda v: v is None or VARIANCE.ok(v) or VARIANCE_RANGE.ok(v),
                      "null (no noise), a variance sigma^2 in (0, 1] (e.g. 0.09) or a range [low, high]"),
}


def check_engine(obj, where: str) -> None:
    """Check the fields of an engine config (ModelConfig, TrainConfig) by ENGINE_RULES;
    ConfigError "<where> <field>=<value> is not allowed: <what is>" on the first that fails."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        r = ENGINE_RULES.get(f.name)
        if r is not None and not r.ok(value):
            raise ConfigError(f"{where} {f.name}={_show(value)} is not allowed: {r.allowed}")


@dataclass
class RayConf:
    """study.yaml's ray: address: an existing cluster (auto, HOST:PORT, ray://...; null: start
    one here); cpus_per_trial (null: the study's threads); gpus_per_trial: may be a fraction."""

    address: Optional[str] = rule(optional(TEXT, "start a Ray instance here"), None)
    cpus_per_trial: Optional[float] = rule(optional(real(0, above=True), "the study's threads"), None)
    gpus_per_trial: float = rule(real(0), 0.0)


@dataclass
class StudyJob:
    """conf/study.yaml: a study and where it runs. backend: torch or keras for every autoencoder
    (null: the study's backend); executor: local or ray; workers: trials side by side with
    executor=local (null: the study's); data_dir, checkpoint_seconds, cuda_graphs: as in
    train.yaml (how the trainings run, not what they compute)."""

    study: StudyConfig = field(default_factory=StudyConfig)
    backend: Optional[str] = rule(optional(choice(BACKENDS), "the study's backend"), None)
    executor: str = rule(choice(EXECUTORS), "local")
    workers: Optional[int] = rule(optional(whole(1), "the study's workers"), None)
    ray: RayConf = field(default_factory=RayConf)
    data_dir: Optional[str] = rule(optional(TEXT, "$AUTOENC_DATA_DIR or the cache"), None)
    checkpoint_seconds: float = rule(real(0, example=" (0: after every epoch)"), 30.0)
    cuda_graphs: str = rule(choice(CUDA_GRAPHS), "auto")


def check_study_job(job: StudyJob) -> None:
    """Check a composed study job: the study, then where it runs. A `backend` given at the top
    (`autoenc study backend=keras`) becomes the study's."""
    check(job)
    if job.backend is not None and job.backend != job.study.backend:
        job.study.backend = job.backend
        check_study(job.study)
    check(job.ray, "ray.")
    if job.executor != "ray" and (job.ray.address or job.ray.cpus_per_trial or job.ray.gpus_per_trial):
        raise ConfigError("ray.* applies with executor=ray only (docs/ray.md); the local executor runs `workers` "
                          "trials side by side on the study's device")
    if job.executor == "ray" and job.workers is not None:
        raise ConfigError("workers applies to executor=local only; with executor=ray as many trials run side by side "
                          "as the cluster has CPUs for: give ray.cpus_per_trial=N to reserve N CPUs per trial")


# ---- where the config files are, and Hydra's registry of the schema ----

def conf_dir() -> str:
    """The folder of the shipped configs: conf/ beside the package in a checkout, autoenc/conf in
    an installed wheel (pyproject maps one onto the other)."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    raise ConfigError(f"the configs (train.yaml, ...) are missing from {here / 'conf'} and {here.parent / 'conf'}; "
                      f"reinstall autoenc")


def register_configs() -> None:
    """Put the schema into Hydra's ConfigStore: train.yaml and study.yaml start from these."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainJob)
    store.store(name="study_schema", node=StudyJob)


def preset(name: str = "lab", overrides: list[str] | None = None) -> StudyConfig:
    """The study conf/study/<name>.yaml (lab, quick, or one of a --config-dir), with Hydra
    overrides such as ["study.seed=1"], as a checked StudyConfig."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    register_configs()
    args = [f"study={name}", *(overrides or [])]
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its search path holds conf/
        cfg = compose("study", overrides=args)
    else:
        with initialize_config_dir(config_dir=conf_dir(), version_base=None):
            cfg = compose("study", overrides=args)
    return study_from_dict(OmegaConf.to_container(cfg.study, resolve=True))
