"""One registry for named things (models, datasets): ``register(name)`` fills a dict, ``get`` builds.

Modelled on torchvision's ``register_model`` / ``get_model`` / ``list_models``: no ``if/elif`` over names.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import AekitError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of factories; duplicates are refused, unknown names get a helpful error."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise AekitError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}"
            ) from None

    def available(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


MODELS: Registry[Callable[..., Any]] = Registry("model")
register_model = MODELS.register
get_model_class = MODELS.get
available_models = MODELS.available

ESTIMATORS: Registry[type] = Registry("estimator")
register_estimator = ESTIMATORS.register
