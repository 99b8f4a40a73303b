"""Whether the compiled extension was built from the Rust sources beside this package.

In a source checkout (an editable install), Python code and Rust sources change together, but the
extension changes only when rebuilt: Python calling into a stale build failed with a TypeError naming none
of this (an outside trial of an editable install not rebuilt after a pull). rust/python/build.rs embeds the
SHA-256 of the Rust sources it compiled as ``covertreex._rust.SOURCE_DIGEST``; :func:`source_digest` reads
the same files in the same order, so the two agree exactly when nothing changed since the build. An
installed wheel has no sources beside it and is not checked.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from covertreex.errors import CovertreexError

FOLDERS = ("rust/core/src", "rust/python/src")
"""Folders whose .rs files the digest reads (rust/python/build.rs's FOLDERS)."""

MANIFESTS = ("Cargo.toml", "Cargo.lock", "rust/core/Cargo.toml", "rust/python/Cargo.toml")
"""Manifests the digest reads where present (rust/python/build.rs's MANIFESTS)."""

CHECKOUT = Path(__file__).resolve().parent.parent
"""The folder holding this package: a source checkout when it also holds rust/python/build.rs."""


class StaleExtensionError(CovertreexError, RuntimeError):
    """The extension was built from other Rust sources than the checkout holds."""


def source_digest(root: Path) -> str:
    """SHA-256 (hex) of the Rust sources under `root`: each file's path relative to it, a NUL, its bytes
    and a NUL, in the order of the sorted paths (build.rs's)."""
    files = [name for name in MANIFESTS if (root / name).is_file()]
    for folder in FOLDERS:
        files += _rust_files(root, folder)
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + (root / name).read_bytes() + b"\0")
    return digest.hexdigest()


def _rust_files(root: Path, folder: str) -> list[str]:
    """The regular files named *.rs under `folder`, as build.rs lists them: symbolic links neither followed
    nor read (an editor's lock file is a dangling one named ``.#name.rs``), names not UTF-8 left out."""
    found = []
    for top, folders, names in os.walk(root / folder):  # symbolic links to folders are not entered
        for name in names:
            path = Path(top) / name
            relative = path.relative_to(root).as_posix()
            if name.endswith(".rs") and stat.S_ISREG(path.lstat().st_mode) and _utf8(relative):
                found.append(relative)
        folders[:] = [name for name in folders if _utf8(name)]
    return found


def _utf8(name: str) -> bool:
    try:
        name.encode()
    except UnicodeEncodeError:  # os.walk's surrogate escapes of bytes that are not UTF-8
        return False
    return True


def require_built_from(extension, root: Path = CHECKOUT) -> None:
    """Raise unless `extension` (covertreex._rust) was built from the Rust sources under `root`, when
    `root` is a source checkout."""
    if not (root / "rust/python/build.rs").is_file():
        return
    here = source_digest(root)
    built = getattr(extension, "SOURCE_DIGEST", None)  # None: built before the extension carried one
    if here != built:
        raise StaleExtensionError(
            f"covertreex._rust was built from other Rust sources than {root / 'rust'} holds (built from "
            f"{'sources older than its digest' if built is None else built[:12]}, the sources are "
            f"{here[:12]}): rebuild it with `pip install -e {root}` (or `maturin develop --release` there)")
