//! The catalogue of images (`RECIPES`): what each is called, how it is made, and its hash.
//!
//! A recipe's files are compiled in from the repository's `images/` folder. Its hash covers its
//! tag, its files, its binaries and, recursively, the recipe it is built on; it is what an image's
//! label is compared with to tell whether the image is up to date.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::{cargo_binary::CargoBinary, debootstrap};

/// A file of a recipe's build context.
pub(super) struct File {
    /// Its path in the build context.
    pub(super) path: &'static str,
    pub(super) content: &'static [u8],
    pub(super) mode: u32,
}

/// How an image is made.
pub(super) enum Source {
    /// A Debian root file system of release `suite` from `debootstrap`, added to an empty image.
    Debootstrap { suite: &'static str },
    /// A Dockerfile, its files and binaries, built on another image of this list.
    Dockerfile {
        /// The `name` of the recipe this one is built on.
        base: &'static str,
        files: &'static [File],
        binaries: &'static [CargoBinary],
    },
}

/// One image of the catalogue.
pub(super) struct Recipe {
    /// The short name users type (`postgres`).
    pub(super) name: &'static str,
    /// The full tag (`drydock.local/postgres:17`).
    pub(super) tag: &'static str,
    pub(super) source: Source,
}

/// `recipe_file!("postgres", "Dockerfile", 0o644)`: the file `images/postgres/Dockerfile` of this
/// repository, compiled in, at `Dockerfile` in the build context with mode 0644.
macro_rules! recipe_file {
    ($image:literal, $path:literal, $mode:literal) => {
        File {
            path: $path,
            content: include_bytes!(concat!("../../../../images/", $image, "/", $path)),
            mode: $mode,
        }
    };
}

/// Every image, each after the one it is built on; `drydock images build` builds them all.
pub(super) const RECIPES: &[Recipe] = &[
    Recipe {
        name: "debian",
        tag: "drydock.local/debian:bookworm",
        source: Source::Debootstrap { suite: "bookworm" },
    },
    // Debian 13 ships PostgreSQL 17, the major version of drydock's default image
    // (`postgres:17-alpine`): what is tested here is what users run.
    Recipe {
        name: "debian-trixie",
        tag: "drydock.local/debian:trixie",
        source: Source::Debootstrap { suite: "trixie" },
    },
    Recipe {
        name: "postgres",
        tag: "drydock.local/postgres:17",
        source: Source::Dockerfile {
            base: "debian-trixie",
            files: &[
                recipe_file!("postgres", "Dockerfile", 0o644),
                recipe_file!("postgres", "docker-entrypoint.sh", 0o755),
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
                recipe_file!("redis", "Dockerfile", 0o644),
                recipe_file!("redis", "docker-entrypoint.sh", 0o755),
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
                recipe_file!("kafka", "Dockerfile", 0o644),
                recipe_file!("kafka", "run", 0o755),
            ],
            binaries: &[CargoBinary {
                krate: "tansu",
                version: "0.6.0",
                features: "dynostore",
                bin: "tansu",
                path: "tansu",
                workspace: None,
                also: &[],
            }],
        },
    },
    Recipe {
        name: "stub",
        tag: concat!("drydock/stub:", env!("CARGO_PKG_VERSION")),
        source: Source::Dockerfile {
            base: "debian",
            files: &[recipe_file!("stub", "Dockerfile", 0o644)],
            binaries: &[CargoBinary {
                krate: "drydock-stub",
                version: env!("CARGO_PKG_VERSION"),
                // The binary's own dependencies (clap, tracing-subscriber) sit behind `cli`.
                features: "cli",
                bin: "drydock-stub",
                path: "drydock-stub",
                workspace: Some("crates/drydock-stub"),
                also: &[],
            }],
        },
    },
    // Stand-in for `ghcr.io/shopify/toxiproxy`: drydock's own implementation of its API.
    Recipe {
        name: "toxiproxy",
        tag: "drydock.local/toxiproxy:2",
        source: Source::Dockerfile {
            base: "debian",
            files: &[recipe_file!("toxiproxy", "Dockerfile", 0o644)],
            binaries: &[CargoBinary {
                krate: "drydock-cli",
                version: env!("CARGO_PKG_VERSION"),
                features: "",
                bin: "drydock",
                path: "drydock",
                workspace: Some("crates/drydock-cli"),
                // The proxy itself lives in the library.
                also: &["crates/drydock"],
            }],
        },
    },
    // Not a stand-in: a service drydock knows nothing about, for tests of users' own containers.
    Recipe {
        name: "beanstalkd",
        tag: "drydock.local/beanstalkd:1",
        source: Source::Dockerfile {
            base: "debian",
            files: &[recipe_file!("beanstalkd", "Dockerfile", 0o644)],
            binaries: &[],
        },
    },
];

/// The recipe called `name`.
pub(super) fn recipe(name: &str) -> Result<&'static Recipe> {
    RECIPES.iter().find(|r| r.name == name).with_context(|| {
        let known: Vec<_> = RECIPES.iter().map(|r| r.name).collect();
        format!(
            "no image named `{name}`\n  to fix: name one of {} (`drydock images list` shows \
             them)",
            known.join(", ")
        )
    })
}

impl Recipe {
    /// The recipe this one is built on, if any.
    pub(super) fn base(&self) -> Result<Option<&'static Recipe>> {
        match &self.source {
            Source::Dockerfile { base, .. } => recipe(base).map(Some),
            Source::Debootstrap { .. } => Ok(None),
        }
    }

    /// The recipe's hash, which covers the recipes it is built on.
    pub(super) fn hash(&self) -> Result<String> {
        let mut hasher = Sha256::new();
        hasher.update(self.tag.as_bytes());
        match &self.source {
            Source::Debootstrap { suite } => {
                hasher.update(format!("debootstrap minbase {suite}").as_bytes());
                hasher.update(debootstrap::DOCKERFILE.as_bytes());
            }
            Source::Dockerfile {
                base,
                files,
                binaries,
            } => {
                hasher.update(recipe(base)?.hash()?.as_bytes());
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_base_is_in_the_catalogue_and_comes_before_what_is_built_on_it() -> Result<()> {
        for (i, recipe) in RECIPES.iter().enumerate() {
            if let Some(base) = recipe.base()? {
                let at = RECIPES.iter().position(|r| r.name == base.name);
                assert!(
                    at.is_some_and(|at| at < i),
                    "{} before {}",
                    base.name,
                    recipe.name
                );
            }
            recipe.hash()?;
        }
        Ok(())
    }

    #[test]
    fn names_and_tags_are_unique() {
        for (i, a) in RECIPES.iter().enumerate() {
            for b in &RECIPES[i + 1..] {
                assert!(
                    a.name != b.name && a.tag != b.tag,
                    "{} and {}",
                    a.name,
                    b.name
                );
            }
        }
    }
}
