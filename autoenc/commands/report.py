"""`autoenc report STUDY_DIR`: rebuild a study's report.html (self-contained) and report.md."""
from __future__ import annotations

import argparse

from .common import folder, guarded


def main(args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="autoenc report", description=__doc__.split(": ", 1)[1])
    p.add_argument("study_dir", type=folder, metavar="STUDY_DIR", help="a folder `autoenc study` wrote")
    ns = p.parse_args(args)

    def run() -> None:
        from ..report.sections import write_report

        html, md = write_report(ns.study_dir)
        print(f"wrote {html} and {md}")
    return guarded(run)
