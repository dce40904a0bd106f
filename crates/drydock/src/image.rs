//! Which image actually runs for a service: the one place where substitution happens.
//!
//! Users write code against official images (`postgres:17-alpine`); an air-gapped CI or a mirror
//! substitutes others without touching that code. The order, strongest first:
//!
//! 1. `DRYDOCK_IMAGE_<SERVICE>` (e.g. `DRYDOCK_IMAGE_POSTGRES=drydock.local/postgres:17`): CI's word
//!    beats the code's, so one variable retargets a whole suite;
//! 2. the image set in code (`Postgres::default().image("postgres:16")`);
//! 3. the service's official default.
//!
//! Then a registry prefix from `DRYDOCK_REGISTRY_PREFIX` (or Testcontainers'
//! `TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX`) is put in front of Docker Hub names, the way
//! Testcontainers for Java and Go do; names that already carry a registry host are left alone.

use std::fmt;

use crate::error::{Error, Result};

/// A parsed image reference: `[registry/]repository[:tag]`.
///
/// ```
/// use drydock::ImageRef;
///
/// let image: ImageRef = "postgres:17-alpine".parse()?;
/// assert_eq!(image.repository(), "postgres");
/// assert_eq!(image.tag(), "17-alpine");
/// assert_eq!(image.to_string(), "postgres:17-alpine");
///
/// let local: ImageRef = "drydock.local/postgres:17".parse()?;
/// assert!(local.has_registry());
/// # Ok::<(), drydock::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct ImageRef {
    repository: String,
    tag: String,
}

impl ImageRef {
    /// The repository, including any registry host (`drydock.local/postgres`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag (`latest` when none was given).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Whether the first path segment names a registry host (has a `.` or `:`, or is `localhost`).
    pub fn has_registry(&self) -> bool {
        match self.repository.split_once('/') {
            Some((first, _)) => first.contains('.') || first.contains(':') || first == "localhost",
            None => false,
        }
    }

    fn parse_from(value: &str, origin: &str) -> Result<Self> {
        let invalid = |reason| Error::InvalidImage {
            value: value.to_string(),
            origin: origin.to_string(),
            reason,
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(invalid("it is empty"));
        }
        if value.contains('@') {
            return Err(invalid(
                "digest references (@sha256:...) are not supported yet; use a tag",
            ));
        }
        if value.chars().any(char::is_whitespace) {
            return Err(invalid("it contains white space"));
        }
        // A ':' after the last '/' separates the tag; one before it belongs to a registry port.
        let last_slash = value.rfind('/').map_or(0, |i| i + 1);
        let (repository, tag) = match value[last_slash..].rfind(':') {
            Some(i) => (&value[..last_slash + i], &value[last_slash + i + 1..]),
            None => (value, "latest"),
        };
        if repository.is_empty() || repository.ends_with('/') {
            return Err(invalid("the repository name is missing"));
        }
        if tag.is_empty() {
            return Err(invalid("the tag after ':' is empty"));
        }
        // Docker's own grammar, checked here so that the error names where the value came from
        // instead of the engine answering "invalid reference format".
        if tag.len() > 128
            || tag.starts_with(['.', '-'])
            || !tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(invalid(
                "the tag may hold only letters, digits, `_`, `.` and `-` (not first), at most 128",
            ));
        }
        let mut components: Vec<&str> = repository.split('/').collect();
        let first = components[0];
        if components.len() > 1
            && (first.contains('.') || first.contains(':') || first == "localhost")
        {
            components.remove(0);
        }
        if components.iter().any(|c| {
            c.is_empty()
                || !c.starts_with(|ch: char| ch.is_ascii_lowercase() || ch.is_ascii_digit())
                || !c.chars().all(|ch| {
                    ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, '.' | '_' | '-')
                })
        }) {
            return Err(invalid(
                "the repository name may hold only lower-case letters, digits, `.`, `_` and `-`",
            ));
        }
        Ok(ImageRef {
            repository: repository.to_string(),
            tag: tag.to_string(),
        })
    }
}

impl std::str::FromStr for ImageRef {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        Self::parse_from(value, "code")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}

/// The environment variable that overrides the image of `service` (`DRYDOCK_IMAGE_POSTGRES`).
/// Characters a variable name cannot hold become `_` (`my-app` → `DRYDOCK_IMAGE_MY_APP`).
pub fn override_var(service: &str) -> String {
    format!("DRYDOCK_IMAGE_{}", crate::service::var_prefix(service))
}

/// Resolves the image that runs for `service`, from the process environment.
///
/// ```
/// // With no DRYDOCK_IMAGE_EXAMPLE and no prefix set, the code's choice wins over the default.
/// let image = drydock::image::resolve("example", "example:1", Some("example:2"))?;
/// assert_eq!(image.to_string(), "example:2");
/// # Ok::<(), drydock::Error>(())
/// ```
pub fn resolve(service: &str, default: &str, in_code: Option<&str>) -> Result<ImageRef> {
    resolve_with(&[override_var(service)], default, in_code, |name| {
        std::env::var(name).ok()
    })
}

/// [`resolve`] with the override variables (the first set wins) and the environment given, so
/// the rules can be tested without touching the process environment.
pub fn resolve_with(
    vars: &[String],
    default: &str,
    in_code: Option<&str>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ImageRef> {
    let set = vars
        .iter()
        .find_map(|var| Some((var, env(var).filter(|v| !v.trim().is_empty())?)));
    let image = match set {
        Some((var, value)) => ImageRef::parse_from(&value, var)?,
        None => match in_code {
            Some(value) => ImageRef::parse_from(value, "code")?,
            None => ImageRef::parse_from(default, "drydock's default")?,
        },
    };
    let prefix = [
        "DRYDOCK_REGISTRY_PREFIX",
        "TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX",
    ]
    .into_iter()
    .find_map(|name| env(name).filter(|v| !v.trim().is_empty()));
    Ok(match prefix {
        Some(prefix) if !image.has_registry() => ImageRef {
            repository: format!(
                "{}/{}",
                prefix.trim().trim_end_matches('/'),
                image.repository
            ),
            tag: image.tag,
        },
        _ => image,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    fn vars<const N: usize>(services: [&str; N]) -> Vec<String> {
        services.into_iter().map(override_var).collect()
    }

    #[test]
    fn env_override_beats_code_and_default() -> Result<()> {
        let env = env_of(&[("DRYDOCK_IMAGE_POSTGRES", "drydock.local/postgres:17")]);
        let image = resolve_with(
            &vars(["postgres"]),
            "postgres:17-alpine",
            Some("postgres:16"),
            env,
        )?;
        assert_eq!(image.to_string(), "drydock.local/postgres:17");
        Ok(())
    }

    /// A named service's own variable first, then its kind's (what CI sets for the stand-in).
    #[test]
    fn the_first_override_set_wins() -> Result<()> {
        let names = vars(["audit", "postgres"]);
        let by_kind = env_of(&[("DRYDOCK_IMAGE_POSTGRES", "drydock.local/postgres:17")]);
        let image = resolve_with(&names, "postgres:17-alpine", Some("postgres:16"), by_kind)?;
        assert_eq!(image.to_string(), "drydock.local/postgres:17");
        let both = env_of(&[
            ("DRYDOCK_IMAGE_POSTGRES", "drydock.local/postgres:17"),
            ("DRYDOCK_IMAGE_AUDIT", "postgres:15"),
        ]);
        let image = resolve_with(&names, "postgres:17-alpine", None, both)?;
        assert_eq!(image.to_string(), "postgres:15");
        Ok(())
    }

    #[test]
    fn prefix_applies_to_hub_names_only() -> Result<()> {
        let env = env_of(&[("TESTCONTAINERS_HUB_IMAGE_NAME_PREFIX", "mirror.corp:5000/")]);
        let hub = resolve_with(&vars(["redis"]), "redis:7-alpine", None, &env)?;
        assert_eq!(hub.to_string(), "mirror.corp:5000/redis:7-alpine");
        let local = resolve_with(
            &vars(["redis"]),
            "redis:7",
            Some("drydock.local/redis:7"),
            &env,
        )?;
        assert_eq!(local.to_string(), "drydock.local/redis:7");
        Ok(())
    }

    #[test]
    fn registry_port_is_not_a_tag() -> Result<()> {
        let image: ImageRef = "localhost:5000/team/pg".parse()?;
        assert_eq!(image.repository(), "localhost:5000/team/pg");
        assert_eq!(image.tag(), "latest");
        Ok(())
    }

    #[test]
    fn bad_references_name_their_origin() {
        let env = env_of(&[("DRYDOCK_IMAGE_REDIS", "redis:")]);
        let err = resolve_with(&vars(["redis"]), "redis:7", None, env).err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("DRYDOCK_IMAGE_REDIS"), "{text}");
        assert!(text.contains("tag"), "{text}");
    }
}
