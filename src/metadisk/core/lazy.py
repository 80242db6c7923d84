"""Names a package resolves on first use (PEP 562), so importing the package costs nothing.

A package lists where each public name lives and binds what `lazy_names` returns as its module
``__getattr__`` and ``__dir__``; each name's module is imported the first time the name is read.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_names(
    package: str, homes: Mapping[str, Iterable[str]]
) -> tuple[dict[str, str], Callable[[str], Any], Callable[[], list[str]]]:
    """For `package` (its ``__name__``) and `homes` (module -> the names it defines): the table
    name -> module, and the package's ``__getattr__`` and ``__dir__``."""
    home_of = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = home_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # the next lookup finds it without coming here
        return value

    def __dir__() -> list[str]:
        namespace = vars(sys.modules[package])
        return sorted({*namespace, *namespace.get("__all__", ())})

    return home_of, __getattr__, __dir__
