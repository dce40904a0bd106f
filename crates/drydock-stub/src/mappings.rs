//! WireMock mapping files: reading a directory of them, and writing recorded stubs as them.
//!
//! # The supported subset
//!
//! A file holds one stub, or `{"mappings": [ … ]}`. Supported fields:
//!
//! - stub: `id`, `uuid`, `name`, `priority`, `request`, `response`, `scenarioName`,
//!   `requiredScenarioState`, `newScenarioState`, `persistent`, `metadata`;
//!   *extension*: `expect` (`{"exactly": n}`, `{"atLeast": n}`, `{"atMost": n}`,
//!   `{"between": [low, high]}`).
//! - request: `method` (compared as written: `get` matches no `GET`), `url`, `urlPath`,
//!   `urlPattern`, `urlPathPattern`, `urlPathTemplate` with `pathParameters`, `queryParameters`,
//!   `headers`, `cookies`, `basicAuthCredentials`, `bodyPatterns`; *extension*: `urlPathPrefix`.
//! - value matchers: `equalTo`, `contains`, `matches`, `doesNotMatch`, `absent`,
//!   `caseInsensitive`. As in WireMock, a repeated header or parameter matches when one of its
//!   values does, and `doesNotMatch` matches an absent header or query parameter (not an absent
//!   cookie).
//! - body patterns: those, plus `equalToJson` (with `ignoreArrayOrder`, `ignoreExtraElements`,
//!   json-unit placeholders), `matchesJsonPath` (an expression, or `{"expression", <matcher>}`;
//!   RFC 9535 syntax), `binaryEqualTo`, `equalToXml` (namespace-aware, attributes in any order,
//!   whitespace and comments ignored).
//! - response: `status`, `statusMessage` (the reason phrase sent), `headers`, `body`, `jsonBody`,
//!   `base64Body`, `bodyFileName`, `fixedDelayMilliseconds`, `delayDistribution` (`uniform`,
//!   `lognormal`), `chunkedDribbleDelay`, `fault`, `transformers` (`response-template`),
//!   `proxyBaseUrl`.
//!
//! Anything else — `multipartPatterns`, `matchesXPath`, `equalToXml`'s placeholder options,
//! `postServeActions`, webhooks, other transformers — is rejected with an error that names the
//! file and the field, rather than being ignored and matching too much.
//!
//! # The admin API
//!
//! WireMock's paths and shapes: `/__admin/mappings` (and `/{id}`, `/import`, `/reset`),
//! `/__admin/reset`, `/__admin/requests` (serve events, newest first, with the request under
//! `request`, headers as an object, `responseDefinition` and `stubMapping`), `/requests/{id}`,
//! `/requests/count` and `/requests/find` (with `requestJournalDisabled`), `/requests/unmatched`,
//! `/requests/unmatched/near-misses`, `/near-misses/request`, `/near-misses/request-pattern`,
//! `/scenarios` (with `id` and `possibleStates`), `/scenarios/reset`, `/scenarios/{name}/state`,
//! `/settings`, `/recordings/…`. A body that is not a valid stub or pattern is answered `422`
//! with WireMock's error shape (`errors[0].source.pointer` names the field). Matched answers carry
//! `Matched-Stub-Id` and `Matched-Stub-Name`. drydock-stub adds `/__admin/verify`,
//! `/__admin/on-miss`, `/__admin/namespaces`, `/__admin/tls/ca` and `/__admin/upstreams`.
//!
//! With credentials (`--admin-api-basic-auth user:pass`, as WireMock's), every admin path, health
//! included, answers `401` without them, as WireMock does (the differential test runs both so).
//!
//! # Where drydock-stub differs from WireMock, on purpose
//!
//! `tests/differential.rs` sends the same mappings and requests to both and prints these:
//!
//! - **A request no stub matches** is answered `404` with drydock-stub's near-miss report (the
//!   nearest stubs and each failed check), not WireMock's table; near misses are ranked by the
//!   share of checks that failed, not by WireMock's weighted distance, so the nearest stub can
//!   differ. Both are for people to read.
//! - **Header names in the journal are lower case**: HTTP/1.1 names are case-insensitive and the
//!   server does not keep the case a client sent.
//! - **Stubs from mapping files** ([`load_dir`], `--mappings`) are read by the caller (also for a
//!   remote server, which may not see the files), with `bodyFileName` inlined, and are marked
//!   `persistent`: a reset keeps them, as WireMock reloads its files. Through the API,
//!   `bodyFileName` is read from the server's files directory when the stub is mounted.
//! - **A proxied answer** names the proxying stub in `Matched-Stub-Id`; WireMock names a stub of its
//!   own making.
//! - **The journal is bounded**: 10 000 requests per namespace by default (WireMock keeps every one
//!   unless `--max-request-journal-entries` is given); the oldest are dropped and counted
//!   (`meta.dropped`, [`StubServer::journal_stats`](crate::StubServer::journal_stats)). Expected
//!   call counts are kept apart, so `expect` stays exact.
//! - **Templates** over a `urlPathTemplate` do not offer `{{request.path.<name>}}`
//!   (`{{request.path}}` is the path, `{{request.pathSegments.[i]}}` its parts).
//! - **An in-process server's admin API asks for credentials** by default
//!   ([`StubServer::admin_credentials`](crate::StubServer::admin_credentials)): its port is on
//!   loopback, which every local user reaches. WireMock and the binary are open unless told.
//! - **Proxying and recording are refused** (`403`) to an upstream outside the allowed ones, when
//!   the server was given a list (`--allowed-upstreams`); WireMock has no such list.
//! - Near-miss entries carry drydock-stub's checks in an extra `nearMiss` field, and
//!   `GET /__admin/requests` an extra `meta.limit` and `meta.dropped`.

use std::{
    fs,
    path::{Path, PathBuf},
};

use base64::Engine;
use serde::Deserialize;

use crate::{error::StubError, model::Stub, mounted};

/// One stub or WireMock's `{"mappings": [...]}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum MappingFile {
    Many { mappings: Vec<serde_json::Value> },
    One(Box<serde_json::Value>),
}

fn stub_from(value: serde_json::Value, at: &str) -> Result<Stub, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match (at.is_empty(), path == ".") {
            (_, true) => at.to_string(),
            (true, false) => format!("`{path}`"),
            (false, false) => format!("{at} `{path}`"),
        };
        let hint = if e.inner().to_string().starts_with("unknown field") {
            " (outside the WireMock subset drydock-stub supports; see drydock_stub::mappings)"
        } else {
            ""
        };
        format!("{field}: {}{hint}", e.inner())
    })
}

/// Parses mapping JSON: one stub or `{"mappings": [...]}`; the error names the field at fault.
pub(crate) fn parse(json: &[u8]) -> Result<Vec<Stub>, String> {
    let file: MappingFile = serde_json::from_slice(json).map_err(|e| format!("not JSON: {e}"))?;
    match file {
        MappingFile::Many { mappings } => mappings
            .into_iter()
            .enumerate()
            .map(|(i, value)| stub_from(value, &format!("mappings[{i}]")))
            .collect(),
        MappingFile::One(value) => stub_from(*value, "").map(|s| vec![s]),
    }
}

/// Reads every mapping under `dir`, WireMock's layout or a plain directory of JSON files.
///
/// With `dir/mappings`, stubs come from there and body files from `dir/__files`; otherwise the
/// directory itself holds the mappings and body files come from its `__files` or its sibling
/// `__files`. Files are read in name order. Every stub is checked, so a bad file fails the load
/// with its name and the field at fault, before anything is mounted.
///
/// ```no_run
/// # fn demo() -> Result<(), drydock_stub::StubError> {
/// let stubs = drydock_stub::mappings::load_dir("tests/wiremock")?;
/// println!("{} stubs", stubs.len());
/// # Ok(()) }
/// ```
pub fn load_dir(dir: impl AsRef<Path>) -> Result<Vec<Stub>, StubError> {
    Ok(load_files(dir.as_ref())?
        .into_iter()
        .map(|(_, stub)| stub)
        .collect())
}

/// [`load_dir`], each stub with the file it came from.
pub(crate) fn load_files(dir: &Path) -> Result<Vec<(PathBuf, Stub)>, StubError> {
    let (mappings, files) = layout(dir);
    let mut paths = Vec::new();
    collect_json(&mappings, &mut paths)?;
    paths.sort();
    let mut stubs = Vec::new();
    for path in paths {
        let error = |message: String| StubError::Mapping {
            file: path.clone(),
            message,
        };
        let bytes = fs::read(&path).map_err(|e| error(format!("cannot be read: {e}")))?;
        for mut stub in parse(&bytes).map_err(error)? {
            if let Some(name) = stub.response.body_file_name.take() {
                let file = files.join(&name);
                let body = fs::read(&file).map_err(|e| {
                    error(format!(
                        "`response.bodyFileName` {name:?}: {} cannot be read: {e}",
                        file.display()
                    ))
                })?;
                match String::from_utf8(body) {
                    Ok(text) => stub.response.body = Some(text),
                    Err(e) => {
                        stub.response.base64_body =
                            Some(base64::engine::general_purpose::STANDARD.encode(e.as_bytes()))
                    }
                }
            }
            // Loaded from a file: a reset keeps it, as WireMock reloads its mapping files.
            stub.persistent = Some(true);
            mounted::compile(stub.clone(), None).map_err(|e| error(e.to_string()))?;
            stubs.push((path.clone(), stub));
        }
    }
    Ok(stubs)
}

/// Where a mapping directory's stubs and body files are: `dir/mappings` and `dir/__files`
/// (WireMock's root layout), else `dir` itself and its own or its sibling `__files`.
fn layout(dir: &Path) -> (PathBuf, PathBuf) {
    if dir.join("mappings").is_dir() {
        (dir.join("mappings"), dir.join("__files"))
    } else if dir.join("__files").is_dir() {
        (dir.to_path_buf(), dir.join("__files"))
    } else {
        let sibling = dir.parent().map(|p| p.join("__files")).unwrap_or_default();
        (dir.to_path_buf(), sibling)
    }
}

/// The body-file directory (`__files`) that goes with mapping directory `dir`, as
/// [`load_dir`] finds it; what a server started with `--mappings dir` reads `bodyFileName` from.
pub fn files_dir(dir: impl AsRef<Path>) -> PathBuf {
    layout(dir.as_ref()).1
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), StubError> {
    let entries = fs::read_dir(dir).map_err(|e| StubError::Mapping {
        file: dir.to_path_buf(),
        message: format!("is not a readable mapping directory: {e}"),
    })?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Writes stubs as WireMock mapping files into `dir` (created if missing), one file each.
pub fn save_dir(dir: impl AsRef<Path>, stubs: &[Stub]) -> Result<Vec<PathBuf>, StubError> {
    let dir = dir.as_ref();
    let failed = |cause: String| StubError::Save {
        dir: dir.to_path_buf(),
        cause,
    };
    fs::create_dir_all(dir).map_err(|e| failed(e.to_string()))?;
    stubs
        .iter()
        .map(|stub| {
            let path = dir.join(crate::record::file_name(stub));
            let json = serde_json::to_vec_pretty(stub).map_err(|e| failed(e.to_string()))?;
            fs::write(&path, json).map_err(|e| failed(format!("{}: {e}", path.display())))?;
            Ok(path)
        })
        .collect()
}
