"""Plug-ins found by one explicit rule, for runners and deployers alike: every public module of
a package (its name does not start with `_`; helpers are private modules, never imported here)
but its interface module `base`, each defining one object under a known name; then the entry
points of a group, so that a plug-in can live in another distribution. Nothing is read before it
is imported."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any


def collect(package: str, path: Iterable[str], attribute: str, group: str) -> dict[str, Any]:
    """name -> plug-in: `package`'s public modules' `attribute`, then the entry points of
    `group` (each naming the object itself); a name given twice is refused."""
    found: dict[str, Any] = {}

    def add(plugin: Any, origin: str) -> None:
        if plugin.name in found:
            raise ValueError(f"{origin}: a second plug-in named {plugin.name!r} ({group})")
        found[plugin.name] = plugin

    for module in pkgutil.iter_modules(path):
        if module.ispkg or module.name.startswith("_") or module.name == "base":
            continue
        name = f"{package}.{module.name}"
        plugin = getattr(importlib.import_module(name), attribute, None)
        if plugin is None:
            raise ValueError(
                f"{name}: defines no {attribute}; every public module of {package} is a plug-in "
                "(name a helper module with a leading _)"
            )
        add(plugin, name)
    for point in entry_points(group=group):
        add(point.load(), f"entry point {point.name} = {point.value}")
    return found
