//! `drydock images`: the local stand-in images, built from Debian's packages.
//!
//! Each image is labelled with a hash of its recipe (and of the recipe it is built on), so a
//! second run finds it up to date in seconds, and a changed recipe rebuilds exactly what depends
//! on it. The recipes live in the repository's `images/` folder and are compiled in, so the
//! command needs nothing beside itself but Docker and `debootstrap`.

use std::{collections::HashMap, path::Path, process::Command, time::Instant};

use anyhow::{bail, Context, Result};
use drydock::docker::Engine;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use testcontainers_bollard::{body_full, query_parameters::BuildImageOptionsBuilder};

/// The bollard the library uses, so both speak the same types.
mod testcontainers_bollard {
    pub use drydock::docker::bollard::*;
}

const RECIPE_LABEL: &str = "drydock.recipe";
const DEBIAN_SUITE: &str = "bookworm";
const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";

/// A file of a recipe's build context.
struct File {
    path: &'static str,
    content: &'static [u8],
    mode: u32,
}

/// A binary installed from crates.io with `cargo install`, cached across runs (tansu's build
/// takes minutes), and put into a build context under `path`.
///
/// A crate of this workspace (`workspace`, its folder) is built from the checkout the CLI was
/// built from, when that checkout is there; its sources are then part of the image's hash.
struct CargoBinary {
    krate: &'static str,
    version: &'static str,
    features: &'static str,
    bin: &'static str,
    path: &'static str,
    workspace: Option<&'static str>,
}

/// The checkout this CLI was built from.
const WORKSPACE_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// How an image is made.
enum Source {
    /// A Debian root file system from `debootstrap`, added to an empty image.
    Debootstrap,
    /// A Dockerfile, its files and binaries, built on another image of this list.
    Dockerfile {
        base: &'static str,
        files: &'static [File],
        binaries: &'static [CargoBinary],
    },
}

struct Recipe {
    /// The short name users type (`postgres`).
    name: &'static str,
    /// The full tag (`drydock.local/postgres:15`).
    tag: &'static str,
    source: Source,
}

const RECIPES: &[Recipe] = &[
    Recipe {
        name: "debian",
        tag: "drydock.local/debian:bookworm",
        source: Source::Debootstrap,
    },
    Recipe {
        name: "postgres",
        tag: "drydock.local/postgres:15",
        source: Source::Dockerfile {
            base: "debian",
            files: &[
                File {
                    path: "Dockerfile",
                    content: include_bytes!("../../../images/postgres/Dockerfile"),
                    mode: 0o644,
                },
                File {
                    path: "docker-entrypoint.sh",
                    content: include_bytes!("../../../images/postgres/docker-entrypoint.sh"),
                    mode: 0o755,
                },
            ],
            binaries: &[],
        },
    },
    Recipe {
        name: "redis",
        tag: "drydock.local/redis:7",
        source: Source::Dockerfile {
            base: "debian",
            files: &[
                File {
                    path: "Dockerfile",
                    content: include_bytes!("../../../images/redis/Dockerfile"),
                    mode: 0o644,
                },
                File {
                    path: "docker-entrypoint.sh",
                    content: include_bytes!("../../../images/redis/docker-entrypoint.sh"),
                    mode: 0o755,
                },
            ],
            binaries: &[],
        },
    },
    Recipe {
        name: "kafka",
        tag: "drydock.local/kafka:tansu-0.6.0",
        source: Source::Dockerfile {
            base: "debian",
            files: &[
                File {
                    path: "Dockerfile",
                    content: include_bytes!("../../../images/kafka/Dockerfile"),
                    mode: 0o644,
                },
                File {
                    path: "run",
                    content: include_bytes!("../../../images/kafka/run"),
                    mode: 0o755,
                },
            ],
            binaries: &[CargoBinary {
                krate: "tansu",
                version: "0.6.0",
                features: "dynostore",
                bin: "tansu",
                path: "tansu",
                workspace: None,
            }],
        },
    },
    Recipe {
        name: "stub",
        tag: concat!("drydock/stub:", env!("CARGO_PKG_VERSION")),
        source: Source::Dockerfile {
            base: "debian",
            files: &[File {
                path: "Dockerfile",
                content: include_bytes!("../../../images/stub/Dockerfile"),
                mode: 0o644,
            }],
            binaries: &[CargoBinary {
                krate: "drydock-stub",
                version: env!("CARGO_PKG_VERSION"),
                features: "",
                bin: "drydock-stub",
                path: "drydock-stub",
                workspace: Some("crates/drydock-stub"),
            }],
        },
    },
];

fn recipe(name: &str) -> Result<&'static Recipe> {
    RECIPES.iter().find(|r| r.name == name).with_context(|| {
        let known: Vec<_> = RECIPES.iter().map(|r| r.name).collect();
        format!("no image named `{name}`; known: {}", known.join(", "))
    })
}

/// The recipe's hash, which covers the recipes it is built on.
fn recipe_hash(recipe: &Recipe) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(recipe.tag.as_bytes());
    match &recipe.source {
        Source::Debootstrap => {
            hasher.update(format!("debootstrap minbase {DEBIAN_SUITE}").as_bytes());
            hasher.update(BASE_DOCKERFILE.as_bytes());
        }
        Source::Dockerfile {
            base,
            files,
            binaries,
        } => {
            hasher.update(recipe_hash(self::recipe(base)?)?.as_bytes());
            for file in *files {
                hasher.update(file.path.as_bytes());
                hasher.update(file.mode.to_le_bytes());
                hasher.update(file.content);
            }
            for binary in *binaries {
                hasher.update(binary.cache_key().as_bytes());
            }
        }
    }
    Ok(hex::encode(&hasher.finalize()[..12]))
}

/// The label of the image now tagged `tag`, if there is one.
async fn built_hash(engine: &Engine, tag: &str) -> Option<String> {
    let image = engine.docker().inspect_image(tag).await.ok()?;
    image.config?.labels?.get(RECIPE_LABEL).cloned()
}

/// `drydock images build`.
pub async fn build(force: bool, only: &[String]) -> Result<()> {
    let engine = Engine::connect().await?;
    let wanted: Vec<&Recipe> = if only.is_empty() {
        RECIPES.iter().collect()
    } else {
        let mut wanted = Vec::new();
        for name in only {
            let mut next = Some(recipe(name)?);
            // Each image's base comes first.
            let mut chain = Vec::new();
            while let Some(r) = next {
                chain.push(r);
                next = match &r.source {
                    Source::Dockerfile { base, .. } => Some(recipe(base)?),
                    Source::Debootstrap => None,
                };
            }
            for r in chain.into_iter().rev() {
                if !wanted.iter().any(|w: &&Recipe| w.name == r.name) {
                    wanted.push(r);
                }
            }
        }
        wanted
    };
    for recipe in wanted {
        let hash = recipe_hash(recipe)?;
        if !force && built_hash(&engine, recipe.tag).await.as_deref() == Some(hash.as_str()) {
            println!("{:<32} up to date", recipe.tag);
            continue;
        }
        let started = Instant::now();
        println!("{:<32} building…", recipe.tag);
        let context = match &recipe.source {
            Source::Debootstrap => debootstrap_context()?,
            Source::Dockerfile {
                files, binaries, ..
            } => context_of(files, binaries)?,
        };
        build_image(&engine, recipe.tag, &hash, context)
            .await
            .with_context(|| format!("building {}", recipe.tag))?;
        println!("{:<32} built in {:.0?}", recipe.tag, started.elapsed());
    }
    Ok(())
}

/// `drydock images list`.
pub async fn list() -> Result<()> {
    let engine = Engine::connect().await?;
    for recipe in RECIPES {
        let state = match built_hash(&engine, recipe.tag).await {
            Some(hash) if hash == recipe_hash(recipe)? => "up to date",
            Some(_) => "out of date",
            None => "missing",
        };
        println!("{:<32} {state}", recipe.tag);
    }
    Ok(())
}

/// Build context as an in-memory tar.
fn context_of(files: &[File], binaries: &[CargoBinary]) -> Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    for file in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(file.content.len() as u64);
        header.set_mode(file.mode);
        header.set_cksum();
        archive.append_data(&mut header, file.path, file.content)?;
    }
    for binary in binaries {
        let installed = binary.ensure_installed()?;
        // A plain entry: the tar crate would write a large binary as GNU sparse, which Docker's
        // builder rejects ("unhandled tar header type 83").
        let content = std::fs::read(&installed)
            .with_context(|| format!("reading {}", installed.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        archive.append_data(&mut header, binary.path, content.as_slice())?;
    }
    Ok(archive.into_inner()?)
}

impl CargoBinary {
    /// The crate's folder in this CLI's checkout, if the checkout is there.
    fn checkout(&self) -> Option<std::path::PathBuf> {
        let dir = Path::new(WORKSPACE_ROOT).join(self.workspace?);
        dir.join("Cargo.toml").is_file().then_some(dir)
    }

    fn cache_key(&self) -> String {
        if let Some(dir) = self.checkout() {
            return format!("{}-src-{}", self.krate, source_hash(&dir));
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
    fn ensure_installed(&self) -> Result<std::path::PathBuf> {
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
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
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
    fn build_from_checkout(&self) -> Result<std::path::PathBuf> {
        let root = Path::new(WORKSPACE_ROOT);
        println!("{:<32} cargo build --release -p {}", "", self.krate);
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(root)
            .args([
                "build",
                "--release",
                "--locked",
                "--quiet",
                "-p",
                self.krate,
                "--bin",
                self.bin,
            ])
            .status()
            .with_context(|| format!("running cargo build -p {}", self.krate))?;
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| root.join("target"), std::path::PathBuf::from);
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

/// A hash of a crate's sources and the workspace's lock file, so a change rebuilds its image.
fn source_hash(dir: &Path) -> String {
    fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else {
                files.push(path);
            }
        }
    }
    let mut files = vec![
        dir.join("Cargo.toml"),
        Path::new(WORKSPACE_ROOT).join("Cargo.lock"),
    ];
    walk(&dir.join("src"), &mut files);
    files.sort();
    let mut hasher = Sha256::new();
    for file in files {
        if let Ok(content) = std::fs::read(&file) {
            hasher.update(
                file.strip_prefix(dir)
                    .unwrap_or(&file)
                    .display()
                    .to_string(),
            );
            hasher.update(&content);
        }
    }
    hex::encode(&hasher.finalize()[..8])
}

/// Where built binaries are cached: `$DRYDOCK_CACHE_DIR`, else `$XDG_CACHE_HOME/drydock`, else
/// `~/.cache/drydock`.
fn cache_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("DRYDOCK_CACHE_DIR").filter(|d| !d.is_empty()) {
        return dir.into();
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return std::path::PathBuf::from(dir).join("drydock");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    std::path::PathBuf::from(home).join(".cache/drydock")
}

const BASE_DOCKERFILE: &str = "FROM scratch\nADD rootfs.tar /\nCMD [\"bash\"]\n";

/// A minimal Debian made by `debootstrap`, packed as a build context whose Dockerfile adds it to
/// an empty image (`ADD` of a tar keeps owners and modes, which `COPY` of a folder would not).
fn debootstrap_context() -> Result<Vec<u8>> {
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!(
            "`debootstrap` is not installed; it makes the Debian base of the local images.\n  \
             to fix: `apt-get install debootstrap` (as root), then run this again"
        );
    }
    let work = TempDir::new("drydock-debootstrap")?;
    let rootfs = work.path().join("rootfs");
    let mirror = std::env::var("DRYDOCK_DEBIAN_MIRROR").unwrap_or_else(|_| DEBIAN_MIRROR.into());
    let log = work.path().join("debootstrap.log");
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", DEBIAN_SUITE])
        .arg(&rootfs)
        .arg(&mirror)
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(work.path().join("debootstrap.err"))?)
        .status()
        .context("running debootstrap")?;
    if !status.success() {
        let tail = std::fs::read_to_string(work.path().join("debootstrap.err")).unwrap_or_default();
        bail!("debootstrap {DEBIAN_SUITE} from {mirror} failed ({status}):\n{tail}\n  to fix: check that the mirror is reachable, or set DRYDOCK_DEBIAN_MIRROR");
    }
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let dir = rootfs.join(cache);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.path().is_file() {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
    }
    let rootfs_tar = work.path().join("rootfs.tar");
    let status = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&rootfs_tar)
        .arg(".")
        .status()
        .context("packing the root file system with tar")?;
    if !status.success() {
        bail!("packing {} with tar failed ({status})", rootfs.display());
    }
    let mut archive = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(BASE_DOCKERFILE.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    archive.append_data(&mut header, "Dockerfile", BASE_DOCKERFILE.as_bytes())?;
    archive.append_path_with_name(&rootfs_tar, "rootfs.tar")?;
    Ok(archive.into_inner()?)
}

async fn build_image(engine: &Engine, tag: &str, hash: &str, context: Vec<u8>) -> Result<()> {
    let labels = HashMap::from([(RECIPE_LABEL, hash)]);
    let options = BuildImageOptionsBuilder::new()
        .t(tag)
        .labels(&labels)
        .rm(true)
        .forcerm(true)
        .build();
    let mut output = engine
        .docker()
        .build_image(options, None, Some(body_full(context.into())));
    let mut log: Vec<String> = Vec::new();
    while let Some(step) = output.next().await {
        let info = match step {
            Ok(info) => info,
            Err(e) => bail!("{e}\n--- last lines of the build ---\n{}", tail(&log)),
        };
        if let Some(line) = info.stream {
            tracing::debug!("{}", line.trim_end());
            log.push(line);
        }
        if let Some(error) = info.error_detail {
            let message = error.message.unwrap_or_default();
            bail!("{message}\n--- last lines of the build ---\n{}", tail(&log));
        }
    }
    Ok(())
}

fn tail(log: &[String]) -> String {
    let start = log.len().saturating_sub(30);
    log[start..].concat()
}

/// A directory removed when dropped (debootstrap leaves root-owned trees that must not linger).
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<Self> {
        let base = std::env::var_os("TMPDIR")
            .map_or_else(|| std::path::PathBuf::from("/var/tmp"), Into::into);
        let path = base.join(format!("{prefix}-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
