"""The extension knows the Rust sources it was built from, and a checkout refuses a build of others."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

from covertreex import distributed, extension_sources
from covertreex.engines.rust import _extension
from covertreex.extension_sources import CHECKOUT, StaleExtensionError, require_built_from, source_digest


def _copy_of_the_sources(to):
    for name in extension_sources.MANIFESTS:
        (to / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CHECKOUT / name, to / name)
    for folder in extension_sources.FOLDERS:
        shutil.copytree(CHECKOUT / folder, to / folder)
    shutil.copy(CHECKOUT / "rust/python/build.rs", to / "rust/python/build.rs")
    return to


def test_the_built_extension_names_the_sources_of_this_checkout():
    """build.rs and source_digest read the same files alike: equal here, where CI built the extension from
    this very checkout (a digest of other files, or in another order, would differ)."""
    extension = _extension()
    if extension is None or not (CHECKOUT / "rust/python/build.rs").is_file():
        pytest.skip("no extension built from a checkout here")
    assert source_digest(CHECKOUT) == extension.SOURCE_DIGEST
    require_built_from(extension)


@pytest.mark.parametrize("change", ["a byte of a .rs file", "a new .rs file", "the lock file"])
def test_an_extension_built_from_other_sources_is_refused_with_how_to_rebuild(tmp_path, change):
    root = _copy_of_the_sources(tmp_path)
    built = SimpleNamespace(SOURCE_DIGEST=source_digest(root))
    require_built_from(built, root)
    (root / "README.md").write_text("not a source")  # read by no build: the same digest
    require_built_from(built, root)
    if change == "a byte of a .rs file":
        path = root / "rust/core/src/lib.rs"
        path.write_bytes(path.read_bytes() + b" ")
    elif change == "a new .rs file":
        (root / "rust/core/src/dense/new.rs").write_text("")
    else:
        with (root / "Cargo.lock").open("a") as lock:
            lock.write("\n")
    with pytest.raises(StaleExtensionError, match=rf"built from other Rust sources than {root / 'rust'} "
                                                  r"holds .*: rebuild it with `pip install -e "):
        require_built_from(built, root)


def test_an_extension_built_before_it_carried_a_digest_is_refused_as_built_from_other_sources(tmp_path):
    """An editable checkout pulled past the digest's arrival but not rebuilt has an extension without it:
    an AttributeError named none of this (a review)."""
    root = _copy_of_the_sources(tmp_path)
    with pytest.raises(StaleExtensionError, match=r"built from sources older than its digest, .* rebuild it"):
        require_built_from(SimpleNamespace(), root)


def test_links_editor_files_and_folders_named_like_sources_are_not_read(tmp_path):
    """Only regular files named *.rs count, as build.rs lists them: an editor's lock file (a dangling
    symbolic link named .#lib.rs) failed the digest, so every use of the extension; a linked folder
    was read by build.rs but not by Python's rglob, so the digests never agreed (a review)."""
    root = _copy_of_the_sources(tmp_path)
    before = source_digest(root)
    src = root / "rust/core/src"
    (src / ".#lib.rs").symlink_to(tmp_path / "nowhere")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere/s.rs").write_text("fn f() {}")
    (src / "linked").symlink_to(tmp_path / "elsewhere")
    (src / "linked.rs").symlink_to(tmp_path / "elsewhere/s.rs")
    (src / "folder.rs").mkdir()
    assert source_digest(root) == before
    (src / "folder.rs/inner.rs").write_text("")  # a regular file in a real folder: read
    assert source_digest(root) != before


def test_an_install_without_sources_beside_it_is_not_checked(tmp_path):
    require_built_from(SimpleNamespace(SOURCE_DIGEST="from elsewhere"), tmp_path)


def test_a_worker_whose_extension_was_built_from_other_sources_has_another_fingerprint(monkeypatch):
    distributed.source_fingerprint.cache_clear()
    ours = distributed.source_fingerprint()
    monkeypatch.setattr(distributed, "_extension", lambda: SimpleNamespace(SOURCE_DIGEST="other sources"))
    distributed.source_fingerprint.cache_clear()
    try:
        assert distributed.source_fingerprint() != ours
    finally:
        distributed.source_fingerprint.cache_clear()
