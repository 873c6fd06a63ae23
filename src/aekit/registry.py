"""One registry for named things (models, estimators, families, datasets): ``register(name)`` fills a dict, ``get``
looks up. Modelled on torchvision's ``register_model`` / ``get_model`` / ``list_models``: no ``if/elif`` over names.

The model families register themselves when their module is imported; the registries of models, estimators and
families import them all (:func:`load_families`) the first time a name is looked up, so ``import aekit`` stays
cheap and a family defined anywhere else (a test file, a plugin) joins by registering itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection; duplicates are refused, unknown names get a helpful error (a ``ValueError``).
    ``loader`` is called once, before the first look-up, to import whatever registers entries."""

    def __init__(self, kind: str, loader: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._loader = loader
        self._loaded = loader is None

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # before: a module being imported by the loader may look names up
            self._loader()

    def register(self, name: str, **meta: Any) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries and self._entries[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            self._meta[name] = meta
            return obj

        return decorator

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}"
            ) from None

    def meta(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._meta[name]

    def available(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        self._load()
        return iter(list(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries


def load_families() -> None:
    """Import every model family and task estimator shipped with aekit (each registers itself)."""
    from . import estimators, models

    models.load_families()
    estimators.load_tasks()


MODELS: Registry[Callable[..., Any]] = Registry("model", load_families)
register_model = MODELS.register
get_model_class = MODELS.get
available_models = MODELS.available

#: estimator classes by class name (what a checkpoint's config records)
ESTIMATORS: Registry[type] = Registry("estimator", load_families)
#: estimators that ``aekit train --model NAME`` trains, by that name
FAMILIES: Registry[type] = Registry("model family", load_families)


def register_estimator(name: str, cli: str | None = None) -> Callable[[type], type]:
    """Register an estimator class under ``name`` (checkpoints name it); ``cli``: also as a family that
    ``aekit train --model CLI`` trains (its flags and their defaults come from the class's declarations)."""

    def decorator(cls: type) -> type:
        ESTIMATORS.register(name)(cls)
        if cli is not None:
            FAMILIES.register(cli)(cls)
        return cls

    return decorator
