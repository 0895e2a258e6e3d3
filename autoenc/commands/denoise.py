"""`autoenc denoise RUN_DIR`: a run's model as a denoiser at each noise level, beside the
classical baselines on the same noisy test images (denoise.md, denoise.json, a grid per level)."""
from __future__ import annotations

import argparse
import sys

from ..config import BASELINES
from ..errors import ConfigError
from ..evaluation import noise
from .common import data_dir_option, folder, guarded


def main(args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="autoenc denoise", description=__doc__.split(": ", 1)[1])
    p.add_argument("run_dir", type=folder, metavar="RUN_DIR", help="a run folder")
    p.add_argument("--noise-var", default="0.01,0.04,0.09,0.16,0.25",
                   help="noise variances sigma^2, comma-separated (default: the protocol's five levels)")
    p.add_argument("--baselines", default="noisy,linear",
                   help=f"comma list of {', '.join(BASELINES)}; or all, or none (default: noisy,linear)")
    p.add_argument("--subset", type=int, default=1000,
                   help="test images the slow baselines (bm3d) run on; every method is also scored on them "
                        "(subset_psnr; default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fixed test noise (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    data_dir_option(p)
    ns = p.parse_args(args)

    def run() -> None:
        from ..runs import denoise_run

        if ns.subset < 1 or ns.seed < 0:
            raise ConfigError(f"--subset {ns.subset} / --seed {ns.seed}: give --subset >= 1 and --seed >= 0")
        variances = noise.parse_noise_var(ns.noise_var, accept=("variance", "list"))
        variances = variances if isinstance(variances, list) else [variances]
        if (hint := noise.sigma_hint(variances)) is not None:
            print(hint, file=sys.stderr)
        names = [] if ns.baselines == "none" else None if ns.baselines == "all" else \
            [m.strip() for m in ns.baselines.split(",")]
        if names is not None and not all(names):
            raise ConfigError(f"--baselines {ns.baselines!r} has an empty item; give a comma list such as "
                              f"noisy,linear, 'all' or 'none'")
        table = denoise_run(ns.run_dir, variances, methods=names, subset=ns.subset, seed=ns.seed,
                            data_dir=ns.data_dir, progress=False if ns.quiet else None)
        print(table)
        print(f"wrote {ns.run_dir / 'denoise.md'}, {ns.run_dir / 'denoise.json'} and a grid per level")
    return guarded(run)
