"""The results table of every multirun: a Hydra callback that writes <sweep folder>/results.csv
(a row per job, the keys that vary across the sweep first) and prints it."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from ..errors import ConfigError
from ..files import atomic_write_text

log = logging.getLogger("autoenc")
FAILED_JOBS: list[str] = []  # the failed jobs of the last multirun in this process (the exit status)


def write_results(sweep_dir: Path) -> Any:
    """results.csv of the runs in `sweep_dir` (`tables.sweep_table`); returns the table, or None
    when the folder holds no run."""
    from ..report.tables import runs_table, sweep_table

    try:
        frame = sweep_table(runs_table([sweep_dir]))
    except ConfigError:
        return None
    atomic_write_text(sweep_dir / "results.csv", frame.to_csv(index=False))
    return frame


class ResultsTable(Callback):
    """on_multirun_end: results.csv in the sweep folder, printed as a table, failed jobs named."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from ..report.tables import print_table, varying

        sweep_dir = Path(str(config.hydra.sweep.dir))
        frame = write_results(sweep_dir)
        if frame is None:
            return
        shown = varying(frame) + [c for c in ("psnr", "psnr_dataset", "ssim", "val_psnr", "epochs_run", "seconds",
                                             "status") if c in frame.columns]
        print_table(frame[shown], title=f"{sweep_dir}: psnr in dB on the test split")
        log.info("results: %s", sweep_dir / "results.csv")
        FAILED_JOBS[:] = list(frame.loc[frame["status"] != "ok", "run"])
        for run in FAILED_JOBS:
            log.error("not finished: %s", run)
