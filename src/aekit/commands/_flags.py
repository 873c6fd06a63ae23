"""Command-line flags made from the estimators' parameter declarations (:mod:`aekit.params`): one option per
distinct flag among the given estimator classes, its type, help and default (per family where they differ) read
from the declarations, so the command line cannot drift from the estimators.

An option that was not given is absent from the parsed namespace (``argparse.SUPPRESS``): :func:`given_params`
returns only what the user typed, and refuses what the chosen estimator does not take.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any

from sklearn.utils._param_validation import StrOptions

from ..errors import ConfigError
from ..params import UNSET, Param

_PREFIX = "param_"


def _describe_default(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value)) if value else "none"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _cli_default(p: Param) -> Any:
    return p.default if p.flag is None or p.flag.cli_default is UNSET else p.flag.cli_default


def _choices(params: Sequence[Param]) -> list[str] | None:
    """The union of the options of string-choice parameters (None if any is not a choice)."""
    options: list[str] = []
    for p in params:
        found = [c for c in p.constraints if isinstance(c, StrOptions)]
        if not found or any(c not in (None,) and not isinstance(c, StrOptions) for c in p.constraints):
            return None
        for c in found:
            options += [o for o in sorted(c.options) if o not in options]
    return options or None


def _parse(p: Param):
    if p.flag.parse is not None:
        return p.flag.parse
    default = _cli_default(p)
    if isinstance(default, bool):
        return None
    if isinstance(default, int):
        return int
    if isinstance(default, float):
        return float
    return str


def flag_table(classes: Iterable[type], names: dict[type, str] | None = None,
               only: Sequence[str] | None = None) -> dict[str, list[tuple[type, Param]]]:
    """Flag -> the (class, parameter) pairs that declare it; the same flag must always name the same parameter."""
    table: dict[str, list[tuple[type, Param]]] = {}
    for cls in classes:
        for p in cls.declared_params():
            if p.flag is None or (only is not None and p.name not in only):
                continue
            entries = table.setdefault(p.flag_name, [])
            if entries and entries[0][1].name != p.name:
                raise TypeError(f"flag {p.flag_name} names {entries[0][1].name!r} in {entries[0][0].__name__} but "
                                f"{p.name!r} in {cls.__name__}: one flag, one parameter")
            entries.append((cls, p))
    return table


def add_flags(parser: argparse.ArgumentParser, classes: Sequence[type], names: dict[type, str] | None = None,
              only: Sequence[str] | None = None, skip: Sequence[str] = ()) -> None:
    """Add every flag the ``classes`` declare (``only``: just these parameters; ``skip``: not these) to
    ``parser``, in groups titled by the parts they come from. ``names`` (class -> what the user calls it, e.g. the
    family name) is used where defaults differ between classes."""
    names = names or {cls: cls.__name__ for cls in classes}
    groups: dict[str, argparse._ArgumentGroup] = {}
    for flag, entries in flag_table(classes, names, only).items():
        first_cls, p = entries[0]
        if p.name in skip:
            continue
        title = first_cls.param_titles().get(p.name, "options")
        group = groups.get(title) or groups.setdefault(title, parser.add_argument_group(title))
        defaults = {names[cls]: _cli_default(q) for cls, q in entries}
        shown = {_describe_default(v) for v in defaults.values()}
        if len(shown) == 1:
            default_text = f"default {shown.pop()}"
        else:
            default_text = "default " + "; ".join(f"{name} {_describe_default(v)}" for name, v in defaults.items())
        owners = "" if len(entries) == len(classes) else " [" + ", ".join(names[cls] for cls, _ in entries) + "]"
        summary = p.summary.replace("``", "").replace(":class:", "").replace(":mod:", "").replace(":meth:", "")
        help_text = f"{summary} ({default_text}){owners}".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": _PREFIX + p.name, "default": argparse.SUPPRESS, "help": help_text}
        if p.flag.action is not None:
            kwargs["action"] = p.flag.action
        else:
            kwargs["type"] = _parse(p)
            choices = _choices([q for _, q in entries])
            if choices is not None and kwargs["type"] is str:
                kwargs["choices"] = choices
            if "choices" not in kwargs:
                kwargs["metavar"] = p.flag.metavar or flag.lstrip("-").replace("-", "_").upper()
        group.add_argument(flag, **kwargs)


def given_params(args: argparse.Namespace, cls: type, name: str | None = None,
                 alternatives: dict[str, type] | None = None) -> dict[str, Any]:
    """The parameters of ``cls`` whose flags were given on the command line (and what they imply); a given flag
    that ``cls`` does not declare is refused, naming the flag and (``alternatives``: name -> class, e.g. the
    families) the ones that take it."""
    declared = {p.name: p for p in cls.declared_params()}
    given = {key[len(_PREFIX):]: value for key, value in vars(args).items() if key.startswith(_PREFIX)}
    refused = sorted(k for k in given if k not in declared or declared[k].flag is None)
    if refused:
        flags = ", ".join(_flag_of(k) for k in refused)
        verb = "does" if len(refused) == 1 else "do"
        hint = ""
        if alternatives:
            takers = [alt for alt, other in sorted(alternatives.items())
                      if all(k in set(other._get_param_names()) for k in refused)]
            hint = (f"; add --model {' or '.join(takers)}" if takers else
                    "; no single --model takes them all (aekit train --help lists each flag's families)")
        raise ConfigError(f"{flags} {verb} not apply to {name or cls.__name__}{hint}")
    params: dict[str, Any] = {}
    for key, value in given.items():
        params.update(declared[key].flag.implies)
        params[key] = value
    return params


def _flag_of(param_name: str) -> str:
    from ..registry import ESTIMATORS

    for _, cls in ESTIMATORS.items():
        for p in cls.declared_params():
            if p.name == param_name and p.flag is not None:
                return p.flag_name
    return "--" + param_name.replace("_", "-")


def cli_defaults(cls: type) -> dict[str, Any]:
    """The parameters whose command-line default differs from the estimator's on purpose (``--seed`` 0)."""
    return {p.name: p.flag.cli_default for p in cls.declared_params()
            if p.flag is not None and p.flag.cli_default is not UNSET}


def flagged(cls: type) -> list[str]:
    """The names of the parameters of ``cls`` the command line sets."""
    return [p.name for p in cls.declared_params() if p.flag is not None]
