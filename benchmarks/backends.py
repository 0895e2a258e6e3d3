"""torch against Keras on the same recipe and data: speed, time to quality, and parity.

    python benchmarks/backends.py [--rounds 2] [--epochs 20] [--threads 2] [--target 21.6]
                                  [--no-settings] [--no-parity] [--parity-workers 2]

MNIST, depth 3, L = 30, the full splits (55,000 training images). Every training runs in a fresh
process (Keras's import and TensorFlow's thread pools are per process), one at a time.

1. Speed, interleaved (torch, keras, keras, torch, ...): the default recipe for --epochs epochs with
   each backend's best settings (torch: --threads threads, precision auto; Keras: --threads
   TensorFlow threads, XLA, 32 steps per call: what `keras_backend.settings` picks for a run this
   long). After every epoch the test psnr (mean per image, dB) is measured outside the training
   clock. Printed per run: s/epoch (training steps, median of epochs 2..N), the first epoch
   (tracing and compiling included), training seconds until the test psnr first reaches --target
   (every epoch's seconds counted, the first included), and the psnr after --epochs epochs.
2. Keras's settings (--no-settings skips): XLA on/off x 1/32 steps per call, 5 epochs each, the
   s/epoch and process CPU s/epoch of epochs 2-5 and the first epoch: why the Keras path runs as
   it does (CPU seconds vary less than wall seconds on a shared machine).
3. Parity (--no-parity skips): trainer=seed (20 epochs, Glorot init, ReLU, Adam 1e-3 constant) and
   the default recipe (100 epochs, early stopping), seeds 0 and 1, by both backends: each run's test
   psnr and the mean per backend. These runs may go side by side (--parity-workers, one thread each:
   they measure quality, not time).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import statistics
import time

KERAS_SETTINGS = [(False, 1), (False, 32), (True, 1), (True, 32)]


def _load():
    from autoenc import data

    return [data.load("mnist", split)[0] for split in ("train", "val", "test")]


def _fit(backend: str):
    if backend == "keras":
        from autoenc.training import keras_backend

        return keras_backend.fit
    from autoenc import fit

    return fit


def speed_job(backend: str, epochs: int, threads: int, target: float, settings: tuple | None = None) -> dict:
    """One training of the default recipe for `epochs` epochs (in its own process): per epoch its
    training seconds and the test psnr after it; settings: (jit_compile, steps_per_execution) to
    force on the Keras path."""
    from autoenc.evaluation import psnr, reconstruct
    from autoenc.model import ModelConfig
    from autoenc.training import TrainConfig

    if settings is not None:
        from autoenc.training import keras_backend

        keras_backend.settings = lambda steps: {"jit_compile": settings[0], "steps_per_execution": settings[1]}
    x_train, x_val, x_test = _load()
    rows = []
    cpu = {"since": time.process_time()}

    def on_epoch(row, model):  # the epoch's process CPU seconds (validation included), then the test psnr
        now = time.process_time()
        rows.append({"train_seconds": row["train_seconds"], "seconds": row["seconds"], "cpu": now - cpu["since"],
                     "test_psnr": psnr(reconstruct(model, x_test), x_test)})
        cpu["since"] = time.process_time()

    t0 = time.perf_counter()
    result = _fit(backend)(ModelConfig.preset(3, 30), x_train, x_val, TrainConfig(epochs=epochs, threads=threads),
                           progress=False, on_epoch=on_epoch)
    how = getattr(result.model, "trained_with", None) or {"precision": result.precision}
    return {"backend": backend, "rows": rows, "wall": time.perf_counter() - t0, "how": how}


def parity_job(backend: str, recipe: str, seed: int, threads: int) -> dict:
    """One training of `recipe` ("seed": trainer=seed; "default": the default recipe) and its test psnr."""
    from autoenc.evaluation import psnr, reconstruct
    from autoenc.model import ModelConfig
    from autoenc.training import TrainConfig

    x_train, x_val, x_test = _load()
    if recipe == "seed":  # conf/trainer/seed.yaml
        mc = ModelConfig.preset(3, 30, activation="relu", norm="none", init="glorot")
        tc = TrainConfig(epochs=20, lr=1e-3, schedule="constant", patience=0, bn_images=0, seed=seed, threads=threads)
    else:
        mc, tc = ModelConfig.preset(3, 30), TrainConfig(seed=seed, threads=threads)
    t0 = time.perf_counter()
    result = _fit(backend)(mc, x_train, x_val, tc, progress=False)
    return {"backend": backend, "recipe": recipe, "seed": seed, "psnr": psnr(reconstruct(result.model, x_test), x_test),
            "epochs_run": result.epochs_run, "best_epoch": result.best_epoch, "wall": time.perf_counter() - t0}


def fresh(fn, *args):
    """fn(*args) in a new process (spawned, used once)."""
    with cf.ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), max_tasks_per_child=1) as pool:
        return pool.submit(fn, *args).result()


def summary(run: dict, target: float) -> dict:
    rows = run["rows"]
    steady = [r["train_seconds"] for r in rows[1:]] or [rows[0]["train_seconds"]]
    clock, hit = 0.0, None
    for epoch, r in enumerate(rows, 1):
        clock += r["train_seconds"]
        if hit is None and r["test_psnr"] >= target:
            hit = (clock, epoch)
    return {"s_epoch": statistics.median(steady), "first": rows[0]["train_seconds"], "hit": hit,
            "final": rows[-1]["test_psnr"], "epochs": len(rows),
            "cpu": statistics.median([r["cpu"] for r in rows[1:]] or [rows[0]["cpu"]])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2, help="speed rounds (0: none)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--target", type=float, default=21.6)
    ap.add_argument("--no-settings", action="store_true")
    ap.add_argument("--no-parity", action="store_true")
    ap.add_argument("--parity-workers", type=int, default=2)
    args = ap.parse_args()

    print(f"MNIST depth 3, L=30, 55,000 training images; {args.threads} threads; target {args.target} dB test psnr\n")
    print("| round | backend | settings | s/epoch (epochs 2-N) | CPU s/epoch | first epoch s | training s to target "
          f"(epoch) | test psnr after {args.epochs} epochs |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    per_backend: dict[str, list[dict]] = {"torch": [], "keras": []}
    for r in range(args.rounds):
        for backend in (("torch", "keras") if r % 2 == 0 else ("keras", "torch")):
            run = fresh(speed_job, backend, args.epochs, args.threads, args.target)
            s = summary(run, args.target)
            per_backend[backend].append(s)
            hit = "not reached" if s["hit"] is None else f"{s['hit'][0]:.1f} ({s['hit'][1]})"
            how = ", ".join(f"{k} {v}" for k, v in run["how"].items() if k not in ("keras", "tensorflow"))
            print(f"| {r + 1} | {backend} | {how} | {s['s_epoch']:.2f} | {s['cpu']:.2f} | {s['first']:.1f} | {hit} "
                  f"| {s['final']:.2f} |", flush=True)
    if args.rounds:
        best = {b: min(v, key=lambda s: s["s_epoch"]) for b, v in per_backend.items()}
        hits = {b: min((s["hit"][0] for s in v if s["hit"]), default=None) for b, v in per_backend.items()}
        ratio = best["keras"]["s_epoch"] / best["torch"]["s_epoch"]
        print(f"\nbest of {args.rounds} rounds: s/epoch torch {best['torch']['s_epoch']:.2f}, keras "
              f"{best['keras']['s_epoch']:.2f} (keras / torch {ratio:.2f}x); seconds to {args.target} dB torch "
              f"{hits['torch']}, keras {hits['keras']}", flush=True)

    if not args.no_settings:
        print(f"\nKeras settings, the default recipe for 5 epochs, {args.rounds or 1} round(s) interleaved "
              "(median of epochs 2-5; CPU: process seconds per epoch, validation included):\n")
        print("| round | jit_compile | steps_per_execution | s/epoch | CPU s/epoch | first epoch s |")
        print("| --- | --- | --- | --- | --- | --- |", flush=True)
        for r in range(args.rounds or 1):
            for settings in (KERAS_SETTINGS if r % 2 == 0 else KERAS_SETTINGS[::-1]):
                s = summary(fresh(speed_job, "keras", 5, args.threads, args.target, settings), args.target)
                print(f"| {r + 1} | {settings[0]} | {settings[1]} | {s['s_epoch']:.2f} | {s['cpu']:.2f} | "
                      f"{s['first']:.1f} |", flush=True)

    if not args.no_parity:
        print(f"\nParity: test psnr (dB), {args.parity_workers} trainings side by side, 1 thread each\n")
        print("| recipe | backend | seed | test psnr | epochs run (best) | wall s |")
        print("| --- | --- | --- | --- | --- | --- |", flush=True)
        jobs = [(b, recipe, seed) for recipe in ("seed", "default") for seed in (0, 1) for b in ("torch", "keras")]
        results = []
        with cf.ProcessPoolExecutor(args.parity_workers, mp_context=mp.get_context("spawn"),
                                    max_tasks_per_child=1) as pool:
            for job in [pool.submit(parity_job, b, recipe, seed, 1) for b, recipe, seed in jobs]:
                p = job.result()
                results.append(p)
                print(f"| {p['recipe']} | {p['backend']} | {p['seed']} | {p['psnr']:.2f} | {p['epochs_run']} "
                      f"({p['best_epoch']}) | {p['wall']:.0f} |", flush=True)
        print("\n| recipe | torch mean | keras mean | keras - torch |")
        print("| --- | --- | --- | --- |")
        for recipe in ("seed", "default"):
            mean = {b: statistics.mean(p["psnr"] for p in results if p["recipe"] == recipe and p["backend"] == b)
                    for b in ("torch", "keras")}
            print(f"| {recipe} | {mean['torch']:.2f} | {mean['keras']:.2f} | {mean['keras'] - mean['torch']:+.2f} |")


if __name__ == "__main__":
    main()
