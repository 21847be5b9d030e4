"""One registry mechanism for everything looked up by name: export formats and runtimes.

A ``Registry`` maps names and aliases (case-insensitive) to entries, keeps registration order for help
texts, refuses a name or alias another entry already claims, and suggests the closest name for an
unknown one.
"""

from __future__ import annotations

from typing import Generic, Iterable, TypeVar

from .errors import UsageError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """Entries by name, with aliases.

    Args:
        kind: what the entries are, in messages (``format``, ``runtime``, ``suffix``).
        cutoff: how close an unknown name must be to a known one to be suggested (difflib's ratio).
    """

    def __init__(self, kind: str, cutoff: float = 0.5):
        self.kind = kind
        self.cutoff = cutoff
        self._entries: dict[str, T] = {}
        self._keys: dict[str, str] = {}  # name or alias, lower case -> name

    def check_free(self, name: str, keys: Iterable[str], claimant: str) -> None:
        """Raise unless every key is free or already ``name``'s.

        Raises:
            ValueError: a key another entry has (a programming error: two modules claim one name).
        """
        for key in keys:
            owner = self._keys.get(key.lower())
            if owner is not None and owner != name:
                raise ValueError(f"{claimant} claims {key!r}, which {self.kind} {owner!r} already has")

    def add(self, name: str, entry: T, aliases: Iterable[str] = (), claimant: str | None = None) -> T:
        """Register ``entry`` under ``name`` and ``aliases``.

        Raises:
            ValueError: the name or an alias belongs to another entry.
        """
        aliases = tuple(aliases)
        known = self._entries.get(name)
        if known is not None and _identity(known) != _identity(entry):  # the same class imported again is fine
            raise ValueError(f"{claimant or name} claims {name!r}, which {self.kind} {name!r} already has")
        self.check_free(name, (name, *aliases), claimant or name)
        self._entries[name] = entry
        for key in (name, *aliases):
            self._keys[key.lower()] = name
        return entry

    def canonical(self, name: str) -> str:
        """The registered name of ``name`` or one of its aliases.

        Raises:
            UsageError: unknown name, with the closest known name or alias suggested.
        """
        key = name.strip().lower()
        if key in self._keys:
            return self._keys[key]
        raise UsageError(f"unknown {self.kind} {name!r}{did_you_mean(key, self._keys, cutoff=self.cutoff)} "
                         f"(choose from: {', '.join(self._entries)})")

    def get(self, name: str) -> T:
        """The entry of a name or alias (see ``canonical``)."""
        return self._entries[self.canonical(name)]

    def find(self, key: str) -> T | None:
        """The entry of a name or alias, or None."""
        name = self._keys.get(key.lower())
        return self._entries[name] if name is not None else None

    def entries(self) -> dict[str, T]:
        """Every entry by name, in registration order."""
        return dict(self._entries)

    def keys(self) -> list[str]:
        """Every name and alias, lower case, in registration order."""
        return list(self._keys)

    def __contains__(self, key: str) -> bool:
        return key.lower() in self._keys


def _identity(entry) -> object:
    """What makes two registrations the same entry: a class's module and name (a module imported twice
    defines it twice), else the object itself."""
    return (entry.__module__, entry.__qualname__) if isinstance(entry, type) else entry
