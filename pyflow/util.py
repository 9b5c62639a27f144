"""Small shared helpers: atomic output folders."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyflow.errors import PyflowError

MARKER = ".pyflow"  # every folder pyflow writes holds this file; its text names what the folder is


def check_output_folder(folder: str | Path) -> Path:
    """Refuse an existing ``folder`` that pyflow did not write (never overwrite a user's files)."""
    folder = Path(folder)
    if folder.exists() and not (folder / MARKER).is_file():
        raise PyflowError(f"{folder}: exists and is not a pyflow output folder; remove it or choose another --out")
    return folder


@contextmanager
def atomic_folder(folder: str | Path, kind: str) -> Iterator[Path]:
    """Yield a temporary sibling of ``folder`` to fill; on success it replaces ``folder`` in one rename.

    On any error the temporary folder is removed and an existing ``folder`` is left untouched.
    """
    folder = check_output_folder(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        (tmp / MARKER).write_text(kind + "\n")
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            folder.rename(old / folder.name)
            tmp.rename(folder)
            shutil.rmtree(old)
        else:
            tmp.rename(folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
