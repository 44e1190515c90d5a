"""Names that become file or folder names, checked in one place.

Experiment names, sweep labels, export names and the file names a checkpoint manifest
lists all end up joined to a folder. Each must be a plain name: no separator, no ``..``,
no absolute path, no control character, nothing that breaks a Markdown table. Sweep labels
shipped with the experiments (``"noise=25%"``, ``"bg-img (generated)"``) are plain names.

Example:
    >>> safe_name("N_z=20", "sweep label")
    'N_z=20'
    >>> safe_name("../x", "sweep label")      # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    ConfigError: ...
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import ConfigError

MAX_LENGTH = 100
# letters and digits of any script, and a few punctuation marks that are harmless in a path,
# a shell word in quotes and a Markdown table cell
_ALLOWED = re.compile(r"[\w .,=%+()@#~-]+")


def safe_name(value: Any, what: str, parent: Iterable[str] | None = None,
              error: type[Exception] = ConfigError) -> str:
    """``value`` if it is a plain name usable as one file or folder name, else an error.

    Args:
        value: the name to check.
        what: what the name is, for the message (``"sweep label"``, ``"export name"``).
        parent: names already used in the same folder: ``value`` must differ from each.
        error: the :class:`~autoencoders.errors.UserError` subclass to raise.

    Returns:
        ``value`` unchanged.

    Raises:
        error: not a string, empty, too long, ``.``/``..``, a leading dot or dash, a
            character outside letters, digits and `` .,=%+()@#~-_``, or already used.
    """
    fix = (f"Use a plain name of letters, digits, spaces and . , = % + ( ) @ # ~ - _ "
           f"(at most {MAX_LENGTH} characters, not starting with '.' or '-'), e.g. "
           "'run-1' or 'k=25'.")
    if not isinstance(value, str):
        raise error(f"The {what} {value!r} is not a string. {fix}")
    problem = ""
    if not value.strip():
        problem = "is empty"
    elif len(value) > MAX_LENGTH:
        problem = f"is {len(value)} characters long"
    elif value != value.strip():
        problem = "starts or ends with a space"
    elif "/" in value or "\\" in value:
        problem = "contains a path separator: a name is one file or folder, never a path"
    elif value.startswith((".", "-")):
        problem = f"starts with {value[0]!r}"
    elif not _ALLOWED.fullmatch(value):
        bad = sorted({c for c in value if not _ALLOWED.fullmatch(c)})
        problem = "contains " + ", ".join(repr(c) for c in bad)
    if problem:
        raise error(f"The {what} {value!r} {problem}. {fix}")
    if parent is not None:
        taken = {str(p).casefold() for p in parent}
        if value.casefold() in taken:
            raise error(f"The {what} {value!r} is used twice (names differing only in case "
                        "count as the same, as on macOS and Windows); give each a different "
                        "name.")
    return value


def unique_names(values: Iterable[Any], what: str,
                 error: type[Exception] = ConfigError) -> list[str]:
    """Check every name of ``values`` with :func:`safe_name` and that no two are equal."""
    seen: list[str] = []
    for v in values:
        seen.append(safe_name(v, what, seen, error))
    return seen
