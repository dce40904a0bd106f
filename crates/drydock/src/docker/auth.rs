//! Registry credentials for pulls, found where the `docker` CLI and Testcontainers keep them.
//!
//! Two sources, in order: `DOCKER_AUTH_CONFIG`, the *content* of a Docker `config.json` (how
//! testcontainers-rs and Testcontainers for Java take credentials in CI), then the config file,
//! `$DOCKER_CONFIG/config.json` or `~/.docker/config.json`. A source without credentials for the
//! registry passes to the next, so CI credentials for one registry do not hide a developer's
//! `docker login` for another.
//!
//! Within one config, as the `docker` CLI: the registry's `credHelpers` entry, then its `auths`
//! entry (`auth`, `username`/`password`, `identitytoken`), then the `credsStore`. A helper is the
//! program `docker-credential-<name>` on `PATH`; when it is not installed (a config copied from a
//! laptop with Docker Desktop) it is skipped rather than failing the pull.
//!
//! No secret is ever logged: only the registry and where its credentials came from.

use std::{
    collections::BTreeMap,
    ffi::OsStr,
    io::{Read, Write},
    path::PathBuf,
    process::{Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde::Deserialize;
use testcontainers::bollard::auth::DockerCredentials;

/// The key Docker Hub's credentials are stored under, by `docker login` and in
/// `DOCKER_AUTH_CONFIG`; also the server address a helper is asked about for Hub images.
const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";
/// Docker Hub's registry host, which its other spellings are normalised to.
const DOCKER_HUB_HOST: &str = "index.docker.io";
/// How long a credential helper may take: a keychain prompt or a hung helper must not hold the
/// pull (and the test) for ever.
const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// Credentials for pulling `image_repository` (`postgres`, `ghcr.io/org/app`, with or without a
/// tag), or `None` when no source holds any for its registry: the pull is then anonymous.
///
/// Blocking: it reads files and may run a credential helper for up to 10 s, so call it from
/// async code through `tokio::task::spawn_blocking`.
pub(crate) fn credentials_for(image_repository: &str) -> Option<DockerCredentials> {
    let helper = |name: &str, server: &str| run_helper(name, server, HELPER_TIMEOUT);
    if let Some(json) = std::env::var("DOCKER_AUTH_CONFIG")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        if let Some(found) =
            credentials_from(&json, "DOCKER_AUTH_CONFIG", image_repository, &helper)
        {
            return Some(found);
        }
    }
    let path = config_file()?;
    let json = match std::fs::read_to_string(&path) {
        Ok(json) => json,
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), error = %e, "docker config unreadable; pulling without credentials from it");
            }
            return None;
        }
    };
    credentials_from(
        &json,
        &path.display().to_string(),
        image_repository,
        &helper,
    )
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn config_file() -> Option<PathBuf> {
    let set = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let dir = match set("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(set("HOME")?).join(".docker"),
    };
    Some(dir.join("config.json"))
}

/// What a credential helper answered.
struct HelperAnswer {
    username: String,
    secret: String,
}

/// Runs the helper `name` for a server address; `None` when it is absent, fails or has nothing.
type Helper<'a> = &'a dyn Fn(&str, &str) -> Option<HelperAnswer>;

/// The credentials in one config (`config_json`, read from `origin`) for `repository`'s registry.
fn credentials_from(
    config_json: &str,
    origin: &str,
    repository: &str,
    helper: Helper<'_>,
) -> Option<DockerCredentials> {
    let registry = Registry::of(repository);
    let config: ConfigFile = match serde_json::from_str(config_json) {
        Ok(config) => config,
        Err(e) => {
            // Only the position: serde's message can quote the offending value, a secret maybe.
            tracing::warn!(
                source = origin,
                "docker config is not valid JSON ({:?} error at line {} column {}); ignored",
                e.classify(),
                e.line(),
                e.column()
            );
            return None;
        }
    };
    let found = config
        .helper_for(&registry)
        .and_then(|name| from_helper(name, &registry, helper))
        .or_else(|| {
            config
                .entry_for(&registry)
                .and_then(|entry| entry.credentials(&registry, origin))
        })
        .or_else(|| {
            config
                .creds_store
                .as_deref()
                .filter(|name| !name.is_empty())
                .and_then(|name| from_helper(name, &registry, helper))
        });
    if found.is_some() {
        tracing::debug!(registry = %registry.key, source = origin, "registry credentials found");
    }
    found
}

fn from_helper(name: &str, registry: &Registry, helper: Helper<'_>) -> Option<DockerCredentials> {
    let answer = helper(name, &registry.key)?;
    // Helpers return an identity (refresh) token with this user name, per their protocol.
    let credentials = if answer.username == "<token>" {
        DockerCredentials {
            identitytoken: Some(answer.secret),
            ..Default::default()
        }
    } else {
        DockerCredentials {
            username: Some(answer.username),
            password: Some(answer.secret),
            ..Default::default()
        }
    };
    Some(DockerCredentials {
        serveraddress: Some(registry.key.clone()),
        ..credentials
    })
}

/// The registry of an image reference and the keys its credentials are stored under.
#[derive(Debug, PartialEq, Eq)]
struct Registry {
    /// The config key: `https://index.docker.io/v1/` for Docker Hub, else `host[:port]`.
    key: String,
    /// `host[:port]`, as config keys are compared after normalising.
    host: String,
}

impl Registry {
    /// Docker's rule: the first path component is a registry when it contains `.` or `:`, is
    /// `localhost`, or has upper-case letters (never valid in a repository path); otherwise
    /// the image is on Docker Hub.
    fn of(repository: &str) -> Self {
        let host = match repository.split_once('/') {
            Some((first, _))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                normalise_host(first)
            }
            _ => DOCKER_HUB_HOST,
        };
        let key = if host == DOCKER_HUB_HOST {
            DOCKER_HUB_KEY.to_string()
        } else {
            host.to_string()
        };
        Registry {
            key,
            host: host.to_string(),
        }
    }
}

/// A config key or reference host reduced to `host[:port]`, Docker Hub's spellings to one.
fn normalise_host(key: &str) -> &str {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    match rest.split('/').next().unwrap_or(rest) {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_HOST,
        host => host,
    }
}

/// The parts of a Docker `config.json` that hold credentials.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
}

impl ConfigFile {
    /// The value under the registry's key, else under a key naming the same host
    /// (`https://ghcr.io`, `docker.io`, …). Maps are ordered, so a tie resolves the same
    /// way every run.
    fn lookup<'a, T>(map: &'a BTreeMap<String, T>, registry: &Registry) -> Option<&'a T> {
        map.get(&registry.key).or_else(|| {
            map.iter()
                .find(|(key, _)| normalise_host(key) == registry.host)
                .map(|(_, value)| value)
        })
    }

    fn helper_for(&self, registry: &Registry) -> Option<&str> {
        Self::lookup(&self.cred_helpers, registry)
            .map(String::as_str)
            .filter(|name| !name.is_empty())
    }

    fn entry_for(&self, registry: &Registry) -> Option<&AuthEntry> {
        Self::lookup(&self.auths, registry)
    }
}

/// One `auths` entry. No `Debug`: it holds secrets.
#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl AuthEntry {
    /// The entry's credentials; `None` for an empty entry (which `docker login` writes when a
    /// `credsStore` holds the secret).
    fn credentials(&self, registry: &Registry, origin: &str) -> Option<DockerCredentials> {
        let non_empty = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        let from_auth = non_empty(&self.auth).and_then(|auth| {
            let pair = decode_base64(&auth)
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|text| {
                    text.split_once(':')
                        .map(|(user, password)| (user.to_string(), password.to_string()))
                });
            if pair.is_none() {
                tracing::warn!(registry = %registry.key, source = origin, "`auth` is not base64 of user:password; ignored");
            }
            pair
        });
        let (username, password) = match from_auth {
            Some((user, password)) => (Some(user), Some(password)),
            None => (non_empty(&self.username), non_empty(&self.password)),
        };
        let credentials = DockerCredentials {
            username,
            password,
            identitytoken: non_empty(&self.identitytoken),
            registrytoken: non_empty(&self.registrytoken),
            serveraddress: Some(registry.key.clone()),
            ..Default::default()
        };
        let usable = credentials.password.is_some()
            || credentials.identitytoken.is_some()
            || credentials.registrytoken.is_some();
        usable.then_some(credentials)
    }
}

/// Standard or URL-safe base64, padded or not, as `auth` values are written by hand too.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim().trim_end_matches('=').bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // One character left over (6 bits) is no byte: the text was cut.
    (bits < 6).then_some(out)
}

/// Asks `docker-credential-<name>` for `server`'s credentials, if that program is on `PATH`.
fn run_helper(name: &str, server: &str, bound: Duration) -> Option<HelperAnswer> {
    let program = format!("docker-credential-{name}");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(found) = find_program(&program, &path) else {
        tracing::debug!(helper = %program, "credential helper not installed; skipped");
        return None;
    };
    let mut command = Command::new(found);
    command.arg("get");
    ask_helper(command, &program, server, bound)
}

/// The first executable file named `program` in the directories of `path` (a `PATH` value).
fn find_program(program: &str, path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

#[cfg(unix)]
fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &std::path::Path) -> bool {
    path.is_file()
}

/// Runs a helper's `get`: the server address on stdin, `{"Username","Secret"}` on stdout, all
/// within `bound` (the helper is killed past it).
fn ask_helper(
    mut command: Command,
    program: &str,
    server: &str,
    bound: Duration,
) -> Option<HelperAnswer> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // Helpers report errors on stdout; their stderr would only litter the test output.
        .stderr(Stdio::null())
        .spawn()
        .map_err(
            |e| tracing::debug!(helper = %program, error = %e, "credential helper did not start"),
        )
        .ok()?;
    if let Some(mut stdin) = child.stdin.take() {
        // A helper that exits without reading closes the pipe; its exit status tells the rest.
        let _ = stdin.write_all(server.as_bytes());
    }
    // Read stdout on a thread so that a helper writing more than a pipe holds cannot stall
    // the bound, and a grandchild keeping the pipe open cannot stall the read.
    let (sent, received) = mpsc::channel();
    if let Some(mut stdout) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut output = Vec::new();
            let _ = stdout.read_to_end(&mut output);
            let _ = sent.send(output);
        });
    }
    let deadline = Instant::now() + bound;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            outcome => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::warn!(helper = %program, %server, ?bound, error = ?outcome.err(), "credential helper did not answer in time; pulling without credentials");
                return None;
            }
        }
    };
    let output = received
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .unwrap_or_default();
    if !status.success() {
        // E.g. "credentials not found in native keychain": no secret in a failure message.
        let message = String::from_utf8_lossy(&output);
        let message: String = message
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect();
        tracing::debug!(helper = %program, %server, %status, %message, "credential helper has no credentials");
        return None;
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        username: String,
        secret: String,
    }
    match serde_json::from_slice::<Answer>(&output) {
        Ok(answer) => Some(HelperAnswer {
            username: answer.username,
            secret: answer.secret,
        }),
        Err(_) => {
            tracing::warn!(helper = %program, %server, "credential helper answered something other than {{\"Username\",\"Secret\"}}; ignored");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_helper(_: &str, _: &str) -> Option<HelperAnswer> {
        None
    }

    fn from(config: &str, repository: &str) -> Option<DockerCredentials> {
        credentials_from(config, "test", repository, &no_helper)
    }

    fn user_password(user: &str, password: &str, server: &str) -> Option<DockerCredentials> {
        Some(DockerCredentials {
            username: Some(user.into()),
            password: Some(password.into()),
            serveraddress: Some(server.into()),
            ..Default::default()
        })
    }

    #[test]
    fn the_registry_follows_dockers_rules() {
        let key = |repository: &str| Registry::of(repository).key;
        for hub in [
            "postgres",
            "postgres:17-alpine",
            "library/postgres",
            "confluentinc/cp-kafka:7.6.0",
            "docker.io/library/redis",
            "index.docker.io/library/redis",
            "registry-1.docker.io/library/redis",
        ] {
            assert_eq!(key(hub), DOCKER_HUB_KEY, "{hub}");
        }
        assert_eq!(key("ghcr.io/org/app:1.0"), "ghcr.io");
        assert_eq!(key("localhost/app"), "localhost");
        assert_eq!(key("localhost:5000/app"), "localhost:5000");
        assert_eq!(
            key("registry.example:5000/team/app@sha256:00"),
            "registry.example:5000"
        );
        assert_eq!(key("Registry/app"), "Registry");
    }

    #[test]
    fn auth_is_base64_of_user_and_password_padded_or_not() {
        // "user:pa:ss" (a colon in the password stays in it), padded and unpadded.
        for auth in ["dXNlcjpwYTpzcw==", "dXNlcjpwYTpzcw"] {
            let config = format!(r#"{{"auths":{{"ghcr.io":{{"auth":"{auth}"}}}}}}"#);
            assert_eq!(
                from(&config, "ghcr.io/org/app"),
                user_password("user", "pa:ss", "ghcr.io")
            );
        }
    }

    #[test]
    fn docker_hub_credentials_are_found_under_any_of_its_keys() {
        for key in [
            DOCKER_HUB_KEY,
            "docker.io",
            "https://index.docker.io/v1",
            "index.docker.io",
        ] {
            let config = format!(r#"{{"auths":{{"{key}":{{"username":"u","password":"p"}}}}}}"#);
            assert_eq!(
                from(&config, "postgres:17"),
                user_password("u", "p", DOCKER_HUB_KEY),
                "{key}"
            );
        }
    }

    #[test]
    fn keys_with_a_scheme_or_path_match_the_host() {
        let config = r#"{"auths":{"https://registry.example:5000/v2/":{"auth":"dTpw"}}}"#;
        assert_eq!(
            from(config, "registry.example:5000/app"),
            user_password("u", "p", "registry.example:5000")
        );
    }

    #[test]
    fn another_registrys_credentials_are_not_sent() {
        let config = r#"{"auths":{"ghcr.io":{"auth":"dTpw"}}}"#;
        assert_eq!(from(config, "postgres"), None);
        assert_eq!(from(config, "quay.io/org/app"), None);
    }

    #[test]
    fn identity_tokens_are_passed_on() {
        let config = r#"{"auths":{"registry.example":{"identitytoken":"tok"}}}"#;
        assert_eq!(
            from(config, "registry.example/app"),
            Some(DockerCredentials {
                identitytoken: Some("tok".into()),
                serveraddress: Some("registry.example".into()),
                ..Default::default()
            })
        );
    }

    #[test]
    fn empty_entries_bad_auth_and_bad_json_give_no_credentials() {
        assert_eq!(from(r#"{"auths":{"ghcr.io":{}}}"#, "ghcr.io/a"), None);
        assert_eq!(
            from(r#"{"auths":{"ghcr.io":{"auth":"!!"}}}"#, "ghcr.io/a"),
            None
        );
        // base64 of "nocolon": not a user:password pair.
        assert_eq!(
            from(
                r#"{"auths":{"ghcr.io":{"auth":"bm9jb2xvbg=="}}}"#,
                "ghcr.io/a"
            ),
            None
        );
        assert_eq!(from("{not json", "ghcr.io/a"), None);
        assert_eq!(from("{}", "ghcr.io/a"), None);
    }

    #[test]
    fn a_bad_auth_falls_back_to_username_and_password() {
        let config = r#"{"auths":{"ghcr.io":{"auth":"!!","username":"u","password":"p"}}}"#;
        assert_eq!(
            from(config, "ghcr.io/a"),
            user_password("u", "p", "ghcr.io")
        );
    }

    #[test]
    fn helpers_come_first_then_auths_then_the_store() {
        let helper = |name: &str, server: &str| match (name, server) {
            ("gcloud", "gcr.io") => Some(HelperAnswer {
                username: "oauth2accesstoken".into(),
                secret: "from-helper".into(),
            }),
            ("desktop", DOCKER_HUB_KEY) => Some(HelperAnswer {
                username: "<token>".into(),
                secret: "refresh".into(),
            }),
            _ => None,
        };
        let config = r#"{
            "auths": {"gcr.io": {"auth": "dTpw"}, "ghcr.io": {"auth": "dTpw"}, "https://index.docker.io/v1/": {}},
            "credHelpers": {"gcr.io": "gcloud", "ghcr.io": "absent"},
            "credsStore": "desktop"
        }"#;
        let with = |repository| credentials_from(config, "test", repository, &helper);
        assert_eq!(
            with("gcr.io/project/app"),
            user_password("oauth2accesstoken", "from-helper", "gcr.io")
        );
        // The helper has nothing: the entry in auths is used.
        assert_eq!(with("ghcr.io/org/app"), user_password("u", "p", "ghcr.io"));
        // An empty auths entry and the store, whose "<token>" answer is an identity token.
        assert_eq!(
            with("postgres"),
            Some(DockerCredentials {
                identitytoken: Some("refresh".into()),
                serveraddress: Some(DOCKER_HUB_KEY.into()),
                ..Default::default()
            })
        );
        assert_eq!(with("quay.io/org/app"), None);
    }

    #[test]
    fn base64_decodes_standard_and_url_safe_alphabets() {
        assert_eq!(decode_base64("aGk/Pz4+").as_deref(), Some(&b"hi??>>"[..]));
        assert_eq!(decode_base64("aGk_Pz4-").as_deref(), Some(&b"hi??>>"[..]));
        assert_eq!(decode_base64("").as_deref(), Some(&b""[..]));
        assert_eq!(decode_base64("aGkA=").as_deref(), Some(&b"hi\0"[..]));
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_base64("a b"), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_helper_gets_the_server_on_stdin_and_answers_json() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            r#"read -r server; printf '{"ServerURL":"%s","Username":"u-%s","Secret":"s"}' "$server" "$server""#,
        ]);
        let answer = ask_helper(command, "test-helper", "ghcr.io", Duration::from_secs(10))
            .expect("an answer");
        assert_eq!(answer.username, "u-ghcr.io");
        assert_eq!(answer.secret, "s");
    }

    #[cfg(unix)]
    #[test]
    fn a_failing_or_garbled_helper_gives_nothing() {
        let run = |script: &str| {
            let mut command = Command::new("sh");
            command.args(["-c", script]);
            ask_helper(command, "test-helper", "ghcr.io", Duration::from_secs(10))
        };
        assert!(run("echo 'credentials not found in native keychain'; exit 1").is_none());
        assert!(run("echo not-json").is_none());
    }

    #[cfg(unix)]
    #[test]
    fn a_hung_helper_is_killed_at_the_bound() {
        let mut command = Command::new("sh");
        command.args(["-c", "sleep 30"]);
        let started = Instant::now();
        let answer = ask_helper(
            command,
            "test-helper",
            "ghcr.io",
            Duration::from_millis(300),
        );
        assert!(answer.is_none());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[cfg(unix)]
    #[test]
    fn helpers_are_looked_up_on_path_and_skipped_when_absent() {
        let path = std::ffi::OsString::from("/nonexistent:/usr/bin:/bin");
        assert!(find_program("sh", &path).is_some());
        assert!(find_program("docker-credential-drydock-absent", &path).is_none());
        assert!(run_helper("drydock-absent", "ghcr.io", Duration::from_secs(1)).is_none());
    }
}
