"""Study plan: which trials a study (config.StudyConfig) runs, given what is finished.

    1. grid       every dataset x depth x latent, no regularization        (+ PCA with k = L)
    2. l2, l1     each strength on the best grid architecture of its dataset (validation psnr),
                  with the study's penalty_model, beside that model without a penalty (unpenalized)
    3. l2+l1      the best l2 together with the best l1                     (validation psnr)
    4. denoise    one denoiser per noise variance and one blind denoiser    (+ classical baselines)

Every autoencoder trial runs once per training seed (`seeds_of`); the trials of one setting that
differ only in their seed form an arm, and the choices ("best") go by an arm's mean validation
psnr over its seeds. PCA and the classical baselines have no training seed and run once.

`plan(config, done)` is a pure function: given the finished results it returns every trial whose
inputs are known, so a rerun makes the same choices and skips what is finished.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import data
from ..config import StudyConfig, values_set
from ..model import PRESETS, ModelConfig
from ..training import TrainConfig, resolve_device
from ..training.stacked import STACK_FIELDS, unstackable


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


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
    held = data.fingerprint(dataset)  # your own data's content (None for a known dataset: ids unchanged)
    key = [kind, dataset, spec] + ([held] if held is not None else [])
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:8]
    name = Path(dataset).stem if "/" in dataset or "\\" in dataset else dataset
    return Trial(id=f"{name}-{tag}-{digest}", kind=kind, phase=phase, dataset=dataset, spec=spec)


def _context(c: StudyConfig) -> dict:
    """What every trial needs to know about the study (part of each trial's identity)."""
    den = c.denoising
    return {
        "subset": dict(sorted(values_set(c.subset).items())),
        "robustness_var": c.robustness_var,
        "eval_variances": list(den.variances) if den else [],
        "baseline_subset": den.subset if den else 0,
        "seed": c.seed,
        "threads": c.threads,
    }


def on_gpu(c: StudyConfig) -> bool:
    """Whether the study's autoencoders train on a GPU (backend=keras: never, TensorFlow's CPU build)."""
    return c.backend == "torch" and resolve_device(c.device).type == "cuda"


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
        return GPU_STACK if on_gpu(c) else 1
    return c.stack


def _epochs(c: StudyConfig, depth: int, denoise: bool = False) -> int:
    gpu = on_gpu(c)
    table = None
    if denoise and c.denoising is not None:
        table = (c.denoising.gpu_epochs if gpu else None) or c.denoising.epochs
    table = table or ((c.gpu_epochs or c.epochs) if gpu else c.epochs)
    return table.get(depth, max(table.values()))


def seeds_of(c: StudyConfig) -> list[int]:
    """The training seeds every autoencoder trial runs with: seed, seed + 1, ... (c.seeds of them
    on a CPU, c.gpu_seeds on a GPU, where null means c.seeds)."""
    n = (c.gpu_seeds or c.seeds) if on_gpu(c) else c.seeds
    return [c.seed + i for i in range(n)]


def _ae(c: StudyConfig, phase: str, dataset: str, arch: dict, l2: float = 0.0, l1: float = 0.0,
        noise_var=None, seed: int | None = None, model: dict | None = None) -> Trial:
    """An autoencoder trial; seed: its training seed (None: the study's first); model: overrides
    of the study's model settings (the penalty_model of the penalized trials). The test and
    validation noise stay those of the study's seed (its context), so every seed is scored on the
    same images."""
    seed = c.seed if seed is None else seed
    input_dim = math.prod(data.image_shape(dataset))
    widths = tuple(arch["widths"]) if "widths" in arch else PRESETS[arch["depth"]]
    denoise = noise_var is not None
    model = ModelConfig(**{**values_set(c.model), **(values_set(c.denoising.model) if denoise else {}), **(model or {}),
                           "input_dim": input_dim, "widths": widths, "latent": arch["latent"]})
    depth = len(widths) + 1
    epochs = _epochs(c, depth, denoise)
    if isinstance(noise_var, list):
        epochs = max(1, round(epochs * c.denoising.blind_epochs_factor))
    train = TrainConfig(**{**values_set(c.train), **(values_set(c.denoising.train) if denoise else {}),
                           "epochs": epochs, "l2": l2, "l1": l1, "seed": seed,
                           "device": c.device, "threads": c.threads,
                           "noise_var": tuple(noise_var) if isinstance(noise_var, list) else noise_var})
    tag = (f"d{depth}" if "depth" in arch else "w" + "-".join(map(str, widths))) + f"-L{arch['latent']}"
    tag += (f"-l2_{l2:g}" if l2 else "") + (f"-l1_{l1:g}" if l1 else "")
    if denoise:
        tag += f"-blind{noise_var[0]:g}_{noise_var[1]:g}" if isinstance(noise_var, list) else f"-noise{noise_var:g}"
    tag += f"-s{seed}" if seed != c.seed else ""
    spec = {"model": model.to_dict(), "train": train.to_dict(), "context": _context(c)}
    if c.backend != "torch":  # torch trials keep the ids they had before there was a choice
        spec["backend"] = c.backend
    stack = stack_size(c)
    if stack > 1 and c.backend == "torch":  # stacking is the torch trainer's
        if unstackable(model, train) is None:
            spec["stack"] = stack
    return _trial("ae", phase, dataset, tag, spec)


def _seeded(c: StudyConfig, phase: str, dataset: str, arch: dict, **kwargs) -> list[Trial]:
    """One arm: the autoencoder trial of a setting once per training seed."""
    return [_ae(c, phase, dataset, arch, seed=s, **kwargs) for s in seeds_of(c)]


def stack_groups(trials: list[Trial]) -> list[list[Trial]]:
    """`plan`'s trials as the units that run: the autoencoder trials marked for stacking
    (spec "stack": K) that `plan` releases together and that share their architecture but for
    the latent size (`stacked.stack_envelope`) and the training fields a stack shares
    (`stacked.STACK_FIELDS`), in chunks of at most K in plan order; every other trial alone.
    Trials released together: the whole grid (both datasets: with K = 8, one stack per depth),
    and per dataset the l2 and l1 trials, the denoisers, the blind denoiser, the combined one.
    The groups depend only on the config and on finished results, never on timing, so each
    trial's stack, and its numbers, are the same in every run."""
    keyed: dict[str, list[Trial]] = {}
    groups: list[list[Trial]] = []
    for t in trials:
        if t.kind != "ae" or "stack" not in t.spec:
            groups.append([t])
            continue
        release = "grid" if t.phase == "grid" else (
            f"{t.dataset}/{'penalized' if t.phase in ('l2', 'l1', 'unpenalized') else t.phase}")
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
PRIORITY = {"grid": 0, "l2": 1, "l1": 1, "unpenalized": 1, "blind": 2, "denoise": 2, "l2+l1": 2, "baselines": 3,
            "pca": 4}


def by_priority(groups: list[list[Trial]]) -> list[list[Trial]]:
    """`stack_groups` output in the order they should take free workers (`PRIORITY` by phase,
    then plan order)."""
    return sorted(groups, key=lambda group: PRIORITY.get(group[0].phase, 2))


ARM_FIELDS = ("dataset", "phase", "depth", "widths", "latent", "l2", "l1", "noise_var")


def arm_key(row: dict) -> str:
    """What a result row is a seed of: its dataset, phase, architecture, penalties and noise."""
    return json.dumps([row.get(k) for k in ARM_FIELDS])


def arms(rows: list[dict]) -> list[list[dict]]:
    """Result rows grouped by `arm_key`, in order of first appearance (each arm's rows in order)."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(arm_key(r), []).append(r)
    return list(out.values())


def best_arm(rows: list[dict | None], key: str = "val_psnr") -> list[dict] | None:
    """The rows of the arm with the highest mean validation psnr over its seeds (the first arm on
    ties); None when any row is missing or failed (the choice waits for every seed)."""
    if not rows or any(r is None or r.get("status") != "ok" for r in rows):
        return None
    return max(arms(rows), key=lambda arm: sum(r[key] for r in arm) / len(arm))


def grid_trials(c: StudyConfig, dataset: str) -> list[Trial]:
    """The compression grid of one dataset: every depth x latent, no regularization, once per seed
    (seed by seed)."""
    return [_ae(c, "grid", dataset, {"depth": d, "latent": L}, seed=s)
            for s in seeds_of(c) for d in c.depths for L in c.latents]


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
        best = best_arm([done.get(t.id) for t in grid])
        if den is not None and den.architecture != "best":
            den_arch = dict(den.architecture)
        else:
            den_arch = _arch_of(best[0]) if best else None
        if den is not None and den_arch is not None:  # the blind ones first: the longest trials
            if den.blind:
                trials += _seeded(c, "blind", dataset, den_arch, noise_var=list(den.blind))
            trials += [t for v in den.variances for t in _seeded(c, "denoise", dataset, den_arch, noise_var=v)]
        if best is None:
            continue
        arch, own = _arch_of(best[0]), values_set(c.penalty_model)
        l2_trials = [t for v in c.l2 for t in _seeded(c, "l2", dataset, arch, l2=v, model=own)]
        l1_trials = [t for v in c.l1 for t in _seeded(c, "l1", dataset, arch, l1=v, model=own)]
        if own and (c.l2 or c.l1):  # the penalized trials' reference: their model without a penalty
            trials += _seeded(c, "unpenalized", dataset, arch, model=own)
        trials += l2_trials + l1_trials
        if c.combined and c.l2 and c.l1:
            best_l2 = best_arm([done.get(t.id) for t in l2_trials])
            best_l1 = best_arm([done.get(t.id) for t in l1_trials])
            if best_l2 and best_l1:
                trials += _seeded(c, "l2+l1", dataset, arch, l2=best_l2[0]["l2"], l1=best_l1[0]["l1"], model=own)
    return trials


def _arch_of(row: dict) -> dict:
    if row.get("depth") in PRESETS and tuple(row["widths"]) == PRESETS[row["depth"]]:
        return {"depth": row["depth"], "latent": row["latent"]}
    return {"widths": list(row["widths"]), "latent": row["latent"]}


def count_trials(c: StudyConfig) -> int:
    """How many trials the whole study has (known before any runs)."""
    grid = len(c.depths) * len(c.latents)
    penalized = len(c.l2) + len(c.l1)
    reference = 1 if values_set(c.penalty_model) and penalized else 0
    ae = grid + ((penalized + reference + (1 if c.combined and c.l2 and c.l1 else 0)) if grid else 0)
    other = len(c.latents) if c.pca else 0
    den = c.denoising
    if den is not None:
        ae += len(den.variances) + (1 if den.blind else 0)
        other += len(den.variances) * len(den.baselines)
    return (ae * len(seeds_of(c)) + other) * len(c.datasets)
