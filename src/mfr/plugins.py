"""One registry per plug-point: detectors, gallery searches, engine backends, trainers.

A plug-point's entries are a dict by name that refuses a second entry under a name already taken (two
plug-ins would otherwise shadow each other silently) and names the choices when asked for one it does
not have. A new detector, search, backend or trainer is one file and one ``register`` line; the CLI's
choice lists read the registry, so the new name appears there without another edit.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from mfr.errors import MfrError

Entry = TypeVar("Entry")


class Registry(dict[str, Entry], Generic[Entry]):
    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what  # e.g. "face detector", for messages

    def register(self, name: str, entry: Entry) -> Entry:
        if name in self:
            raise MfrError(f"a {self.what} named {name!r} is registered already; choose another name")
        self[name] = entry
        return entry

    def entry(self, name: str) -> Entry:
        if name not in self:
            raise MfrError(f"unknown {self.what} {name!r}; choose from {', '.join(self)}")
        return self[name]
