//! Binaries that go into images: installed from crates.io with `cargo install` into drydock's
//! cache, or built from the checkout this CLI was built from; and the key that names each build.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// The checkout this CLI was built from.
const WORKSPACE_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// A binary installed from crates.io with `cargo install`, cached across runs (tansu's build
/// takes minutes), and put into a build context under `path`.
///
/// A crate of this workspace (`workspace`, its folder) is built from the checkout the CLI was
/// built from, when that checkout is there; its sources are then part of the image's hash.
pub(super) struct CargoBinary {
    pub(super) krate: &'static str,
    pub(super) version: &'static str,
    /// Comma-separated, as `cargo install --features` takes them; may be empty.
    pub(super) features: &'static str,
    pub(super) bin: &'static str,
    /// Where the binary goes in the build context.
    pub(super) path: &'static str,
    pub(super) workspace: Option<&'static str>,
    /// Other crates of the workspace it is built from, whose sources count in its hash too.
    pub(super) also: &'static [&'static str],
}

impl CargoBinary {
    /// The crate's folder in this CLI's checkout, if the checkout is there.
    fn checkout(&self) -> Option<PathBuf> {
        let dir = Path::new(WORKSPACE_ROOT).join(self.workspace?);
        dir.join("Cargo.toml").is_file().then_some(dir)
    }

    /// What names this build of the binary: its cache folder, and its part of a recipe's hash.
    pub(super) fn cache_key(&self) -> String {
        if let Some(dir) = self.checkout() {
            let root = Path::new(WORKSPACE_ROOT);
            let mut key = format!("{}-src-{}", self.krate, source_hash(root, &dir));
            for other in self.also {
                key.push('-');
                key.push_str(&source_hash(root, &root.join(other)));
            }
            return key;
        }
        format!(
            "{}-{}-{}",
            self.krate,
            self.version,
            self.features.replace(',', "+")
        )
    }

    /// The binary: built from the checkout when there is one, else installed with
    /// `cargo install` into drydock's cache when it is not there yet.
    pub(super) fn ensure_installed(&self) -> Result<PathBuf> {
        if self.checkout().is_some() {
            return self.build_from_checkout();
        }
        let root = cache_dir().join(self.cache_key());
        let installed = root.join("bin").join(self.bin);
        if installed.is_file() {
            return Ok(installed);
        }
        println!(
            "{:<32} cargo install {} {} --features {} (cached in {}; takes minutes once)",
            "",
            self.krate,
            self.version,
            self.features,
            root.display()
        );
        let status = cargo()
            .args([
                "install",
                "--locked",
                "--quiet",
                self.krate,
                "--version",
                self.version,
            ])
            .args(if self.features.is_empty() {
                vec!["--root"]
            } else {
                vec!["--features", self.features, "--root"]
            })
            .arg(&root)
            .status()
            .with_context(|| format!("running cargo install {}", self.krate))?;
        if !status.success() || !installed.is_file() {
            bail!(
                "cargo install {} {} failed ({status})\n  to fix: read cargo's output above; \
                 a C toolchain and network access to crates.io are needed",
                self.krate,
                self.version
            );
        }
        Ok(installed)
    }

    /// `cargo build --release` of the binary in the checkout (incremental: fast when unchanged).
    fn build_from_checkout(&self) -> Result<PathBuf> {
        let root = Path::new(WORKSPACE_ROOT);
        println!("{:<32} cargo build --release -p {}", "", self.krate);
        let mut args = vec![
            "build",
            "--release",
            "--locked",
            "--quiet",
            "-p",
            self.krate,
            "--bin",
            self.bin,
        ];
        if !self.features.is_empty() {
            args.extend(["--features", self.features]);
        }
        let status = cargo()
            .current_dir(root)
            .args(args)
            .status()
            .with_context(|| format!("running cargo build -p {}", self.krate))?;
        let target =
            std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        let built = target.join("release").join(self.bin);
        if !status.success() || !built.is_file() {
            bail!(
                "cargo build -p {} failed ({status})\n  to fix: read cargo's output above",
                self.krate
            );
        }
        Ok(built)
    }
}

/// The cargo that runs this CLI (`cargo run` sets `$CARGO`), else the one on the `PATH`.
fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// A hash of a crate's sources (in `dir`) and the workspace's lock file (in `root`), so a change
/// rebuilds its image. Files are named relative to `dir` and `root`: another clone of the same
/// commit, wherever it is, finds the image up to date.
fn source_hash(root: &Path, dir: &Path) -> String {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut files = vec![dir.join("Cargo.toml"), root.join("Cargo.lock")];
    walk(&dir.join("src"), &mut files);
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        if let Ok(content) = std::fs::read(&file) {
            let name = file
                .strip_prefix(dir)
                .or_else(|_| file.strip_prefix(root))
                .unwrap_or(&file);
            hasher.update(name.display().to_string());
            hasher.update(&content);
        }
    }
    hex::encode(&hasher.finalize()[..8])
}

/// Where built binaries are cached: `$DRYDOCK_CACHE_DIR`, else `$XDG_CACHE_HOME/drydock`, else
/// `~/.cache/drydock`.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DRYDOCK_CACHE_DIR").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("drydock");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".cache/drydock")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace with a lock file and one crate, `stub`, in a new temporary folder.
    fn workspace(lock: &str) -> std::io::Result<tempfile::TempDir> {
        let root = tempfile::tempdir()?;
        std::fs::create_dir_all(root.path().join("crates/stub/src"))?;
        std::fs::write(root.path().join("Cargo.lock"), lock)?;
        std::fs::write(root.path().join("crates/stub/Cargo.toml"), "[package]")?;
        std::fs::write(root.path().join("crates/stub/src/main.rs"), "fn main() {}")?;
        Ok(root)
    }

    fn hash(root: &Path) -> String {
        source_hash(root, &root.join("crates/stub"))
    }

    #[test]
    fn the_source_hash_follows_the_sources_and_lock_file_not_the_checkouts_path(
    ) -> std::io::Result<()> {
        let (one, two, other) = (workspace("a")?, workspace("a")?, workspace("b")?);
        assert_eq!(hash(one.path()), hash(two.path()), "same sources elsewhere");
        assert_ne!(hash(one.path()), hash(other.path()), "another lock file");
        std::fs::write(one.path().join("crates/stub/src/main.rs"), "fn main() {  }")?;
        assert_ne!(hash(one.path()), hash(two.path()), "a changed source");
        Ok(())
    }
}
