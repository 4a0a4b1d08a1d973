"""The YAML documents of a contract file, each named for error messages (``file``, ``file#2``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.reader import ReaderError

from restlake.contracts import strict_yaml
from restlake.errors import SpecError


def read_documents(path: Path | str, text: str | None = None) -> list[tuple[str, Any]]:
    """The non-empty YAML documents of a file as ``(origin, document)``; YAML errors become ``SpecError``."""
    path = str(path)
    if text is None:
        data = Path(path).read_bytes()
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(
                path,
                [
                    (
                        "<file>",
                        f"not a UTF-8 text file (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                        "an IngestionSource file is YAML text",
                    )
                ],
            ) from None
    try:
        documents = [d for d in strict_yaml.load_all(text) if d is not None]
    except ReaderError as exc:
        # Control characters (NUL and the like): a binary file that happens to be valid UTF-8.
        raise SpecError(
            path,
            [
                (
                    f"character {exc.position + 1}",
                    f"not a YAML text file: control character #x{exc.character:04x} is not allowed"
                    if isinstance(exc.character, int)
                    else f"not a YAML text file: {exc.reason}",
                )
            ],
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "<document>"
        problem = getattr(exc, "problem", None) or str(exc)
        context = getattr(exc, "context", None)
        raise SpecError(
            path, [(where, f"invalid YAML: {problem}" + (f" ({context})" if context else ""))]
        ) from None
    if len(documents) == 1:
        return [(path, documents[0])]
    return [(f"{path}#{i}", doc) for i, doc in enumerate(documents, start=1)]
