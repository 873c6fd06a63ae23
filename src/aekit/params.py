"""One declaration per parameter: its default, its constraint, one doc paragraph and its command-line flag.

An estimator lists the :class:`Param` it takes (directly, or through the parts it is made of, see
:mod:`aekit.estimators.parts`); from that one list come

- its ``__init__`` (scikit-learn's convention: it only stores its arguments), made by :func:`make_init`;
- its ``_parameter_constraints`` (scikit-learn's validation, ``ValueError``/``TypeError`` on a bad value);
- the ``Parameters`` section of its docstring (:func:`parameters_doc`);
- its command-line flags (:mod:`aekit.commands._flags`): name, type, help, default.

Nothing here imports torch, so the command line's help can be built cheaply.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

from sklearn.utils._param_validation import Interval, StrOptions

UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET", "__bool__": lambda self: False})()


class LiveOptions(StrOptions):
    """:class:`StrOptions` whose options are read when checked, from a callable (a registry that can grow, e.g.
    the activations: one added by a user is accepted everywhere at once)."""

    def __init__(self, options: Callable[[], Iterable[str]]) -> None:
        self._live = options
        super().__init__(set())
        self.deprecated = set()

    @property  # type: ignore[override]
    def options(self) -> set[str]:
        return set(self._live())

    @options.setter
    def options(self, value: set[str]) -> None:  # StrOptions.__init__ assigns it once
        pass


@dataclass(frozen=True)
class Flag:
    """How a parameter appears on the command line.

    ``name`` defaults to ``--`` + the parameter's name with dashes; ``parse`` turns the text into the value
    (default: the type of the parameter's default: int, float or str); ``action`` ``"store_true"`` /
    ``"store_false"`` makes a switch that sets True / False; ``implies`` sets other parameters when the flag is
    given (``--greedy phases`` also sets ``pretrain="greedy"``); ``cli_default`` is the command line's own default
    where it differs from the estimator's on purpose (``--seed`` is 0: runs are reproducible by default)."""

    name: str = ""
    parse: Callable[[str], Any] | None = None
    action: str | None = None
    metavar: str | None = None
    implies: dict[str, Any] = field(default_factory=dict)
    cli_default: Any = UNSET


@dataclass(frozen=True)
class Param:
    """One parameter of an estimator.

    ``constraints``: scikit-learn's constraint list (``[Interval(Integral, 1, None, closed="left")]``,
    ``[StrOptions({...}), None]``, ...); ``doc``: numpydoc text, its first sentence is also the flag's help;
    ``type``: the numpydoc type (derived from the constraints if empty); ``flag``: None for no flag;
    ``small``: the value the common test uses instead of the default when the default is large (layer sizes)."""

    name: str
    default: Any
    constraints: Sequence[Any]
    doc: str
    type: str = ""
    flag: Flag | None = Flag()
    small: Any = UNSET

    def replace(self, **changes: Any) -> Param:
        return dataclasses.replace(self, **changes)

    @property
    def flag_name(self) -> str | None:
        if self.flag is None:
            return None
        return self.flag.name or "--" + self.name.replace("_", "-")

    @property
    def summary(self) -> str:
        """The doc's first sentence (the flag's help)."""
        text = " ".join(self.doc.split())
        end = text.find(". ")
        return text if end < 0 else text[: end + 1]

    def type_text(self) -> str:
        return self.type or _type_text(self.constraints)


def _type_text(constraints: Sequence[Any]) -> str:
    names: list[str] = []
    for c in constraints:
        if c is None:
            names.append("None")
        elif isinstance(c, StrOptions):
            names.append("{" + ", ".join(repr(o) for o in sorted(c.options)) + "}")
        elif isinstance(c, Interval):
            names.append("int" if c.type is Integral else "float")
        elif c == "boolean":
            names.append("bool")
        elif c == "array-like":
            names.append("sequence")
        elif c == "random_state":
            names.append("int, RandomState instance or None")
        elif c == "verbose":
            names.append("int")
        elif isinstance(c, type):
            names.append(c.__name__)
        else:
            names.append(str(c))
    return " or ".join(dict.fromkeys(names))


def word_or_int(words: dict[str, Any], what: str, minimum: int = 0) -> Callable[[str], Any]:
    """A flag parser: one of ``words`` (the text -> its value), or an integer >= ``minimum`` (``--epochs auto|N``,
    ``--freeze all|none|K``, ``--coding-size auto|none|N``)."""

    def parse(text: str) -> Any:
        import argparse

        if text in words:
            return words[text]
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {', '.join(words)} or a number ({what}), got {text!r}"
                                             ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{what} must be >= {minimum}, got {value}")
        return value

    return parse


def positive_int() -> list[Any]:
    return [Interval(Integral, 1, None, closed="left")]


def non_negative_int() -> list[Any]:
    return [Interval(Integral, 0, None, closed="left")]


def positive_float() -> list[Any]:
    return [Interval(Real, 0, None, closed="neither")]


def non_negative_float() -> list[Any]:
    return [Interval(Real, 0, None, closed="left")]


def check_unique(params: Sequence[Param]) -> None:
    seen: set[str] = set()
    for p in params:
        if p.name in seen:
            raise TypeError(f"parameter {p.name!r} is declared twice")
        seen.add(p.name)


def make_init(params: Sequence[Param], positional: Sequence[str], qualname: str) -> Callable[..., None]:
    """An ``__init__`` that stores each parameter under its name (scikit-learn's convention): the parameters named
    in ``positional`` first (in that order, may be passed by position), the others keyword-only; defaults are the
    declared objects themselves."""
    check_unique(params)
    by_name = {p.name: p for p in params}
    unknown = [n for n in positional if n not in by_name]
    if unknown:
        raise TypeError(f"{qualname}: positional parameters {unknown} are not declared")
    ordered = [by_name[n] for n in positional] + [p for p in params if p.name not in positional]
    namespace = {f"_default_{p.name}": p.default for p in ordered}
    args = [f"{p.name}=_default_{p.name}" for p in ordered[: len(positional)]]
    rest = [f"{p.name}=_default_{p.name}" for p in ordered[len(positional):]]
    signature = ", ".join(["self", *args, *(["*", *rest] if rest else [])])
    body = "\n".join(f"    self.{p.name} = {p.name}" for p in ordered) or "    pass"
    exec(f"def __init__({signature}):\n{body}\n", namespace)  # noqa: S102 (generated from declarations)
    init = namespace["__init__"]
    init.__qualname__ = f"{qualname}.__init__"
    init.__doc__ = "Store the parameters (see the class docstring); all the work happens in ``fit``."
    return init


def parameters_doc(params: Sequence[Param], positional: Sequence[str] = ()) -> str:
    """The numpydoc ``Parameters`` section for ``params`` (positional ones first)."""
    ordered = [p for n in positional for p in params if p.name == n] + [p for p in params if p.name not in positional]
    lines = ["Parameters", "----------"]
    for p in ordered:
        lines.append(f"{p.name} : {p.type_text()}, default={p.default!r}")
        lines.extend("    " + line for line in _wrap(p.doc))
    return "\n".join(lines)


def _wrap(text: str, width: int = 110) -> list[str]:
    words, lines, line = " ".join(text.split()).split(" "), [], ""
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return lines + ([line] if line else [])


def with_parameters_doc(doc: str | None, section: str) -> str:
    """``doc`` with ``section`` inserted before its ``Attributes`` section (or appended)."""
    doc = doc or ""
    import inspect

    clean = inspect.cleandoc(doc)
    marker = "\nAttributes\n----------"
    if marker in clean:
        head, tail = clean.split(marker, 1)
        return f"{head.rstrip()}\n\n{section}\n{marker.lstrip(chr(10))}{tail}"
    return f"{clean.rstrip()}\n\n{section}\n" if clean else section
