"""`autoenc data check | fetch`: where each dataset is, whether its files verify, and downloads."""
from __future__ import annotations

import argparse

from .. import data
from .common import data_dir_option, data_folder, guarded


def main(args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="autoenc data", description="Find, verify and download the datasets.")
    sub = p.add_subparsers(dest="action", required=True, metavar="check|fetch")
    check = sub.add_parser("check", help="where each dataset was found, whether its files verify, its counts")
    data_dir_option(check)
    fetch = sub.add_parser("fetch", help="download datasets from the official mirrors and verify them")
    fetch.add_argument("datasets", nargs="*", help=f"default: all ({', '.join(data.KNOWN_DATASETS)})")
    fetch.add_argument("--dest", type=data_folder, default=None, help="where to store them (default: ~/.cache/autoenc)")
    ns = p.parse_args(args)

    def run() -> int:
        if ns.action == "check":
            report, ok = data.check(ns.data_dir)
            print(report)
            return 0 if ok else 1
        for name in ns.datasets or data.KNOWN_DATASETS:
            print(f"{name}: {data.fetch(name, dest=ns.dest)}")
        return 0
    return guarded(run)
