"""The `autoenc` command: the first word picks the command, the rest goes to it."""
from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "train": "train one autoencoder (or a sweep with -m) from Hydra overrides: autoenc train model=deep5 latent=30",
    "study": "run the whole lab and write its report: autoenc study [study=quick]",
    "compare": "results tables of sweeps and runs: autoenc compare multirun/... --pivot latent model",
    "evaluate": "score a run folder again: autoenc evaluate outputs/RUN",
    "denoise": "a run as a denoiser beside the classical baselines: autoenc denoise outputs/RUN",
    "report": "rebuild a study's report.html: autoenc report outputs/lab",
    "data": "where the datasets are, verified; download them: autoenc data check | fetch",
}

USAGE = """usage: autoenc COMMAND [ARGS]

Deep dense autoencoders on MNIST-family images: train, sweep, compare, study, report.

commands:
{commands}

train and study take Hydra overrides and flags (-m, --cfg job, --info, -cn, --config-dir);
`autoenc COMMAND --help` for each. Runs go to outputs/, sweeps to multirun/.
"""


def usage() -> str:
    width = max(map(len, COMMANDS))
    return USAGE.format(commands="\n".join(f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()))


def main(argv: list[str] | None = None) -> None:
    """Run `autoenc COMMAND ARGS` (argv: the words after `autoenc`; default sys.argv[1:]) and
    exit with the command's status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if argv else 2)
    if argv[0] == "--version":
        from . import __version__
        print(f"autoenc {__version__}")
        sys.exit(0)
    name, args = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of {', '.join(COMMANDS)} (autoenc --help)",
              file=sys.stderr)
        sys.exit(2)
    command = importlib.import_module(f"autoenc.commands.{name}")
    sys.exit(command.main(args))


if __name__ == "__main__":  # pragma: no cover
    main()
