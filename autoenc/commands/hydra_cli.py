"""Hydra's side of the commands that compose a config (train, study).

Before Hydra starts, every job of the command (each one of a -m sweep) is composed and checked
against the schema, so a bad override is one line naming the key, the value and what is allowed
(exit status 2, no traceback) and nothing is written under outputs/. A sweep gets a folder named
from its overrides, so the same command resumes the same sweep.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
import typing
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from ..config import Rule, conf_dir, register_configs
from ..errors import AutoencError, ConfigError

RUN_DIR_EXISTED: list[bool] = []  # whether the folder of the run about to start was there before it (a refused
                                  # run removes only a folder it made)


def _run_dir_exists(cfg: DictConfig) -> bool:
    try:
        return Path(str(cfg.hydra.run.dir)).exists()
    except Exception:  # noqa: BLE001 - a resolver that needs Hydra's running state: unknown, keep the folder
        return True


def parse(args: list[str]):
    """Hydra's own command-line parser applied to `args` (the words after the command); overrides
    may come before and after flags (`latent=15 --config-dir mine model=tiny`)."""
    from hydra._internal.utils import get_args_parser

    return get_args_parser().parse_intermixed_args(args)


def flags_first(args: list[str], overrides: list[str]) -> list[str]:
    """`args` with the flags (and their values) first and the overrides last, in their order: the
    order Hydra's own parser, which does not mix them, reads."""
    rest = list(args)
    for o in overrides:
        rest.pop(len(rest) - 1 - rest[::-1].index(o))
    return [*rest, *overrides]


def job_overrides(ns) -> list[list[str]]:
    """The override lists of the jobs the command runs: one, or each job of a -m sweep."""
    if not ns.multirun:
        return [list(ns.overrides)]
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(ns.overrides)
        return BasicSweeper.split_arguments(parsed, None)[0]
    except Exception as exc:  # noqa: BLE001 - Hydra's parse errors: one line
        raise ConfigError(_first_line(exc)) from None


def compose(config_name: str, overrides: list[str], config_dir: str | None = None) -> DictConfig:
    """The config Hydra would run for `overrides` (conf/ after --config-dir, as Hydra orders
    them), with its hydra node; Hydra's errors as ConfigErrors in the schema's words."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_automatic_config_search_path
    from hydra.core.plugins import Plugins
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.types import RunMode

    register_configs()
    Plugins.instance()  # the launchers' configs (hydra/launcher=joblib, ...)
    search_path = create_automatic_config_search_path(None, None, conf_dir())
    if config_dir is not None:
        folder = Path(config_dir).expanduser().resolve()
        if not folder.is_dir():
            raise ConfigError(f"--config-dir {config_dir}: no such folder")
        search_path.prepend(provider="command-line", path=f"file://{folder}", anchor=SearchPathQuery(provider="schema"))
    try:
        return ConfigLoaderImpl(config_search_path=search_path).load_configuration(
            config_name, list(overrides), run_mode=RunMode.RUN)
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - Hydra's and OmegaConf's errors, in the schema's words
        raise ConfigError(explain(exc, overrides, config_name)) from None


def to_schema(cfg: DictConfig, cls, check, config_name: str = "") -> typing.Any:
    """The composed `cfg` (its hydra node dropped) as a `cls` instance, checked by `check`;
    missing values (???) and keys the schema does not know are ConfigErrors naming the key."""
    cfg = cfg.copy()
    with open_dict(cfg):
        cfg.pop("hydra", None)
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]} is missing: give it on the command line, e.g. {missing[0]}=..."
                          + (" (the path to your data)" if missing[0].endswith("path") else ""))
    _unknown_keys(cfg, cls, "", config_name or ("study" if cls.__name__ == "StudyJob" else "train"))
    job = OmegaConf.to_object(cfg)
    check(job)
    return job


def _unknown_keys(node: DictConfig, cls, prefix: str, config_name: str) -> None:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in node.keys():
        if key not in names:
            raise ConfigError(f"{prefix}{key} is not a key of {prefix[:-1] or config_name}; allowed: "
                              f"{', '.join(names)}")
        kind = _dataclass_in(hints[key])
        value = node[key]
        if kind is not None and isinstance(value, DictConfig):
            _unknown_keys(value, kind, f"{prefix}{key}.", config_name)


def _dataclass_in(hint):
    """The dataclass a field's type names (Optional[X] -> X), else None."""
    for candidate in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(candidate):
            return candidate
    return None


def explain(exc: BaseException, overrides: list[str], config_name: str) -> str:
    """One line for a composition error: the key, the value and what is allowed."""
    from hydra.errors import MissingConfigException

    text = str(exc)
    if isinstance(exc, MissingConfigException):
        group = (exc.missing_cfg_file or "").split("/")[0] if exc.missing_cfg_file else ""
        match = re.search(r"Could not find '([^']+)'", text)
        wanted = match.group(1) if match else exc.missing_cfg_file or "?"
        if "/" in wanted:
            group, option = wanted.rsplit("/", 1)
            options = ", ".join(exc.options or _options(group))
            return f"{group}={option} is not a {group} config; choose one of {options} (conf/{group}/)"
        return f"no config named {wanted!r}; {_first_line(exc)}"
    cause = exc.__cause__ or exc
    key = getattr(cause, "full_key", None) or _key_in(text)
    if key:
        key = re.sub(r"\[\d+\]$", "", str(key))
        given = next((o.split("=", 1)[1] for o in overrides if o.lstrip("+~").split("=", 1)[0] == key and "=" in o),
                     None)
        if "not in" in text or "Could not override" in text or "Could not append" in text:
            allowed = _keys_beside(config_name, key)
            return f"{key} is not a key of {key.rsplit('.', 1)[0] if '.' in key else config_name}" + \
                (f"; allowed: {allowed}" if allowed else "")
        r = _rule_at(config_name, key)
        if r is not None:
            return f"{key}={given if given is not None else '?'} is not allowed: {r.allowed}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _key_in(text: str) -> str | None:
    match = re.search(r"full_key: (\S+)", text) or re.search(r"Could not override '([^']+)'", text) or \
        re.search(r"Could not append to config\. An item is already at '([^']+)'", text)
    return match.group(1) if match else None


def _schema(config_name: str):
    from ..config import StudyJob, TrainJob
    return StudyJob if config_name == "study" else TrainJob


def _field_at(config_name: str, key: str):
    """(dataclass, field name) of dotted `key` in the command's schema, or None."""
    cls, parts = _schema(config_name), key.split(".")
    for part in parts[:-1]:
        hint = typing.get_type_hints(cls).get(part)
        cls = _dataclass_in(hint) if hint is not None else None
        if cls is None:
            return None
    return (cls, parts[-1]) if parts[-1] in [f.name for f in dataclasses.fields(cls)] else None


def _rule_at(config_name: str, key: str) -> Rule | None:
    from ..config import rule_of

    found = _field_at(config_name, key)
    return rule_of(*found) if found else None


def _keys_beside(config_name: str, key: str) -> str:
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    cls = _schema(config_name)
    for part in parent.split(".") if parent else []:
        cls = _dataclass_in(typing.get_type_hints(cls).get(part))
        if cls is None:
            return ""
    return ", ".join(f.name for f in dataclasses.fields(cls))


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in Path(conf_dir(), group).glob("*.yaml"))


def sweep_folder(overrides: list[str]) -> str:
    """multirun/<the overrides, swept ones first, shortened>-<hash of them all>: the same command
    gives the same folder (so a rerun resumes the sweep), another command another one."""
    kept = sorted(o for o in overrides if not o.startswith(("hydra.sweep.", "hydra.run.")))
    ordered = sorted(kept, key=lambda o: "," not in o.split("=", 1)[-1])  # the swept keys first
    words = ""
    for o in ordered:
        word = re.sub(r"[^A-Za-z0-9_.,=+-]+", "_", o)
        if len(words) + len(word) > 70:
            break
        words = f"{words}+{word}" if words else word
    digest = hashlib.sha256("\n".join(kept).encode()).hexdigest()[:6]
    return f"multirun/{words or 'defaults'}-{digest}"


def run(task, config_name: str, args: list[str], schema, check, precheck=None) -> int:
    """Run Hydra task `task` (a @hydra.main function) on `args`, after composing and checking
    every job it would run (`precheck(job)` each, e.g. that its data is there). Returns the
    exit status: 2 for a refused command, with its one line on stderr."""
    try:
        ns = parse(args)
        args = flags_first(args, ns.overrides)
        if not (ns.help or ns.hydra_help or ns.shell_completion):
            cn = ns.config_name or config_name
            configs = [compose(cn, overrides, ns.config_dir) for overrides in job_overrides(ns)]
            jobs = [to_schema(cfg, schema, check, config_name) for cfg in configs]
            RUN_DIR_EXISTED.clear()
            if not ns.multirun:
                RUN_DIR_EXISTED.append(_run_dir_exists(configs[0]))
            if precheck is not None and ns.cfg is None and ns.info is None:
                for job in jobs:
                    precheck(job)
        if ns.multirun and not any(o.startswith("hydra.sweep.dir=") for o in ns.overrides):
            args = [*args, f"hydra.sweep.dir='{sweep_folder(ns.overrides)}'"]
    except AutoencError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    argv = sys.argv
    sys.argv = [f"autoenc {config_name}", *args]
    try:
        task()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return 0
