//! Embeds `COVERTREEX_SOURCE_DIGEST`, the SHA-256 of the Rust sources this extension is built from (the
//! files covertreex/extension_sources.py `source_digest` reads, in the same order), so that a source checkout
//! can tell an extension built from other sources: Python code calling into a stale build failed with
//! a TypeError naming none of this (an outside trial of an editable install not rebuilt after a pull).

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The files, relative to the workspace root: every .rs file under these folders, and these manifests
/// where present (a source distribution may lack the lock file; its build has no checkout to compare).
const FOLDERS: [&str; 2] = ["rust/core/src", "rust/python/src"];
const MANIFESTS: [&str; 4] = [
    "Cargo.toml",
    "Cargo.lock",
    "rust/core/Cargo.toml",
    "rust/python/Cargo.toml",
];

/// The regular files named *.rs under `folder` (relative to `root`), into `out`: symbolic links are
/// neither followed nor read (an editor's lock file is a dangling one named `.#name.rs`), and names that
/// are not UTF-8 are left out, as Python's walk does.
fn rust_files(root: &Path, folder: &Path, out: &mut Vec<String>) {
    let entries = std::fs::read_dir(root.join(folder)).expect("a source folder of the workspace");
    for entry in entries {
        let entry = entry.expect("a readable folder entry");
        let kind = entry.file_type().expect("a folder entry's type");
        let path = folder.join(entry.file_name());
        let Some(name) = path.to_str() else { continue };
        if kind.is_dir() {
            rust_files(root, &path, out);
        } else if kind.is_file() && name.ends_with(".rs") {
            out.push(name.replace('\\', "/"));
        }
    }
}

fn main() {
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = here.join("../..");
    let mut files: Vec<String> = (MANIFESTS.iter())
        .filter(|m| root.join(m).is_file())
        .map(|m| m.to_string())
        .collect();
    for folder in FOLDERS {
        rust_files(&root, Path::new(folder), &mut files);
        println!("cargo:rerun-if-changed={}", root.join(folder).display());
    }
    files.sort();
    let mut digest = Sha256::new();
    for file in &files {
        let bytes = std::fs::read(root.join(file)).expect("a readable source file");
        digest.update(file.as_bytes());
        digest.update([0]);
        digest.update(&bytes);
        digest.update([0]);
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let hex: String = digest
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo:rustc-env=COVERTREEX_SOURCE_DIGEST={hex}");
}
