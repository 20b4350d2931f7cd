"""``hybridmethod``: one method name that works on the class and on an instance."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class hybridmethod(Generic[T]):
    """A method that receives the class when called on the class, the instance otherwise.

    ``Store.load(path)`` builds a new store; ``store.load(path)`` loads into ``store``.

    Examples
    --------
    >>> class Box:
    ...     @hybridmethod
    ...     def who(target):
    ...         return "class" if isinstance(target, type) else "instance"
    >>> Box.who(), Box().who()
    ('class', 'instance')
    """

    def __init__(self, func: Callable[..., T]) -> None:
        self.func = func
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def __get__(self, obj: Any, cls: type) -> Callable[..., T]:
        return functools.partial(self.func, cls if obj is None else obj)
