"""Time loading each split of the known datasets into a float tensor, cold and warm.

Cold: the in-process cache is cleared first, so the time includes reading the file,
decompressing, verifying the checksum and converting to float32 in [0, 1]. Warm: the decoded
file is cached, so only the conversion to a float tensor remains (best of --repeat runs).

    python benchmarks/load_speed.py [--data-dir DIR]     # default: $AUTOENC_DATA_DIR
"""
from __future__ import annotations

import argparse
import os
import time

from autoenc import data


def _timed_load(name: str, split: str, data_dir: str | None) -> tuple[float, int]:
    start = time.perf_counter()
    images, _ = data.load(name, split, data_dir=data_dir, download=False)
    return time.perf_counter() - start, len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("AUTOENC_DATA_DIR"),
                        help="folder laid out as <dir>/<dataset>/<files> (default: "
                             "$AUTOENC_DATA_DIR, then the cache and Debian's copy)")
    parser.add_argument("--repeat", type=int, default=3, help="warm runs (the best is shown)")
    args = parser.parse_args()

    print(f"{'dataset':<14} {'split':<6} {'images':>7} {'cold s':>7} {'warm s':>7}")
    for name in data.KNOWN_DATASETS:
        for split in data.SPLITS:
            data.clear_cache()
            cold, n = _timed_load(name, split, args.data_dir)
            warm = min(_timed_load(name, split, args.data_dir)[0] for _ in range(args.repeat))
            print(f"{name:<14} {split:<6} {n:>7} {cold:>7.3f} {warm:>7.3f}")


if __name__ == "__main__":
    main()
