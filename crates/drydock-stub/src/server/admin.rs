//! The admin API, WireMock's paths under `/__admin`, plus drydock-stub's own (namespaces,
//! verification, what to do on a miss).
//!
//! In-process handles call [`dispatch`] directly and remote handles call it over HTTP, so both
//! are one implementation. Every error is JSON, `{"errors": [{"title": …, "detail": …}]}`, and
//! names the field at fault.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{http::HeaderValue, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{Body, Core};
use crate::{
    error::StubError,
    mappings,
    model::{RequestPattern, Stub},
    namespace::{lock, valid_name, Namespace, Settings},
    record::{OnMiss, Recording},
};

/// An admin answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

impl Reply {
    fn ok(body: Value) -> Self {
        Reply {
            status: StatusCode::OK,
            body,
        }
    }

    fn error(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
        Reply {
            status,
            body: json!({"errors": [{"title": title, "detail": detail.into()}]}),
        }
    }

    pub fn into_response(self) -> Response<Body> {
        let bytes = serde_json::to_vec_pretty(&self.body).unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl From<StubError> for Reply {
    fn from(error: StubError) -> Self {
        match &error {
            StubError::NoSuchStub(_) => {
                Reply::error(StatusCode::NOT_FOUND, "No such stub", error.to_string())
            }
            StubError::Verification(failure) => Reply {
                status: StatusCode::CONFLICT,
                body: json!({"verification": failure, "errors": [{"title": "Verification failed", "detail": error.to_string()}]}),
            },
            _ => Reply::error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid stub",
                error.to_string(),
            ),
        }
    }
}

/// Parses a JSON body, naming the field at fault.
fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Reply> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        Reply::error(
            StatusCode::BAD_REQUEST,
            "Invalid JSON",
            format!("the body is not a valid {what}{at}: {}", e.inner()),
        )
    })
}

const ENDPOINTS: &str = "GET /__admin/health; GET|POST|DELETE /__admin/mappings; \
GET|PUT|DELETE /__admin/mappings/{id}; POST /__admin/mappings/import; POST /__admin/reset; \
GET|DELETE /__admin/requests; POST /__admin/requests/count; GET /__admin/requests/unmatched; \
GET /__admin/requests/unmatched/near-misses; GET /__admin/verify; GET /__admin/scenarios; \
POST /__admin/scenarios/reset; GET|POST /__admin/settings; GET|PUT /__admin/on-miss; \
POST /__admin/recordings/start|stop; GET /__admin/recordings/status; \
GET|POST /__admin/namespaces; DELETE /__admin/namespaces/{name}";

/// Answers one admin request for `namespace` (`""` is the root).
pub(crate) fn dispatch(
    core: &Core,
    namespace: &str,
    method: &str,
    url: &str,
    body: &[u8],
) -> Reply {
    let path = url.split('?').next().unwrap_or(url);
    let route: Vec<&str> = path
        .trim_start_matches("/__admin")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    if route == ["health"] {
        return Reply::ok(json!({"status": "healthy"}));
    }
    if let ["namespaces", ..] = route.as_slice() {
        return namespaces(core, namespace, method, &route[1..], body);
    }
    if !namespace.is_empty() && !valid_name(namespace) {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "Invalid namespace",
            format!("{namespace:?} is not a namespace name: use letters, digits, '-', '_' and '.'"),
        );
    }
    // A namespace exists from its creation (`POST /__admin/namespaces`) to its removal; an admin
    // call does not bring a removed one back, so a late call after a test's slice was released
    // fails instead of leaving an empty namespace behind.
    let Some(space) = core.namespaces.get(namespace) else {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "No such namespace",
            format!("namespace {namespace:?} does not exist; create it with POST /__admin/namespaces {{\"name\": \"{namespace}\"}}"),
        );
    };
    let mut space = lock(&space);
    match run(&mut space, method, &route, body) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn run(space: &mut Namespace, method: &str, route: &[&str], body: &[u8]) -> Result<Reply, Reply> {
    let reply = match (method, route) {
        ("GET", ["mappings"]) => {
            let stubs = space.stubs();
            Reply::ok(json!({"meta": {"total": stubs.len()}, "mappings": stubs}))
        }
        ("POST", ["mappings"]) => {
            let stub: Stub = parse(body, "stub mapping")?;
            let id = space.mount(stub)?;
            Reply {
                status: StatusCode::CREATED,
                body: json!(space.stub(&id)?),
            }
        }
        ("DELETE", ["mappings"]) | ("POST", ["mappings", "reset"]) => {
            space.remove_all();
            Reply::ok(json!({}))
        }
        ("POST", ["mappings", "import"]) => {
            let stubs = mappings::parse(body).map_err(|message| {
                Reply::error(StatusCode::BAD_REQUEST, "Invalid JSON", message)
            })?;
            Reply::ok(json!({"ids": space.mount_all(stubs)?}))
        }
        ("GET", ["mappings", id]) => Reply::ok(json!(space.stub(id)?)),
        ("PUT", ["mappings", id]) => {
            let mut stub: Stub = parse(body, "stub mapping")?;
            space.stub(id)?;
            stub.id = Some(id.to_string());
            space.mount(stub)?;
            Reply::ok(json!(space.stub(id)?))
        }
        ("DELETE", ["mappings", id]) => {
            space.remove(id)?;
            Reply::ok(json!({}))
        }
        ("POST", ["reset"]) => {
            space.reset();
            Reply::ok(json!({}))
        }
        ("GET", ["requests"]) => {
            let requests = space.journal();
            Reply::ok(json!({"meta": {"total": requests.len()}, "requests": requests}))
        }
        ("DELETE", ["requests"]) | ("POST", ["requests", "reset"]) => {
            space.clear_journal();
            Reply::ok(json!({}))
        }
        ("POST", ["requests", "count"]) => {
            let pattern: RequestPattern = parse(body, "request pattern")?;
            Reply::ok(json!({"count": space.count(&pattern)?}))
        }
        ("GET", ["requests", "unmatched"]) => {
            let requests: Vec<_> = space.unmatched().into_iter().map(|u| u.request).collect();
            Reply::ok(json!({"requests": requests}))
        }
        ("GET", ["requests", "unmatched", "near-misses"]) => {
            Reply::ok(json!({"nearMisses": space.unmatched()}))
        }
        ("GET" | "POST", ["verify"]) => match space.verify() {
            Ok(()) => Reply::ok(json!({"ok": true})),
            Err(failure) => Reply::from(StubError::Verification(failure)),
        },
        ("GET", ["scenarios"]) => {
            let scenarios: Vec<Value> = space
                .scenarios()
                .into_iter()
                .map(|(name, state)| json!({"name": name, "state": state}))
                .collect();
            Reply::ok(json!({"scenarios": scenarios}))
        }
        ("POST", ["scenarios", "reset"]) => {
            space.reset_scenarios();
            Reply::ok(json!({}))
        }
        ("GET", ["settings"]) => Reply::ok(json!(space.settings)),
        ("POST" | "PUT", ["settings"]) => {
            space.settings = parse::<Settings>(body, "settings object")?;
            Reply::ok(json!(space.settings))
        }
        ("GET", ["on-miss"]) => Reply::ok(json!(space.on_miss)),
        ("PUT" | "POST", ["on-miss"]) => {
            let on_miss: OnMiss = parse(body, "on-miss mode")?;
            check_target(&on_miss)?;
            space.on_miss = on_miss;
            Reply::ok(json!(space.on_miss))
        }
        ("POST", ["recordings", "start"]) => {
            let recording: Recording = parse(body, "recording spec")?;
            let on_miss = OnMiss::Record(recording);
            check_target(&on_miss)?;
            space.on_miss = on_miss;
            Reply::ok(json!({}))
        }
        ("POST", ["recordings", "stop"]) => {
            if let OnMiss::Record(_) = space.on_miss {
                space.on_miss = OnMiss::Fail;
            }
            Reply::ok(json!({"mappings": space.take_recorded()}))
        }
        ("GET", ["recordings", "status"]) => {
            let status = match space.on_miss {
                OnMiss::Record(_) => "Recording",
                _ => "Stopped",
            };
            Reply::ok(json!({"status": status}))
        }
        _ => Reply::error(
            StatusCode::NOT_FOUND,
            "No such admin endpoint",
            format!(
                "{method} /__admin/{} is not an admin endpoint; the endpoints are: {ENDPOINTS}",
                route.join("/")
            ),
        ),
    };
    Ok(reply)
}

fn check_target(on_miss: &OnMiss) -> Result<(), Reply> {
    let target = match on_miss {
        OnMiss::Fail => return Ok(()),
        OnMiss::PassThrough { target_base_url } => target_base_url,
        OnMiss::Record(recording) => &recording.target_base_url,
    };
    match reqwest::Url::parse(target) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        _ => Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "Invalid target",
            format!("`targetBaseUrl` {target:?} is not an http(s) URL"),
        )),
    }
}

fn namespaces(core: &Core, namespace: &str, method: &str, route: &[&str], body: &[u8]) -> Reply {
    if !namespace.is_empty() {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "Not in a namespace",
            "namespaces are managed on the root: /__admin/namespaces, not /__ns/<name>/__admin/namespaces",
        );
    }
    match (method, route) {
        ("GET", []) => Reply::ok(json!({"namespaces": core.namespaces.names()})),
        ("POST", []) => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Create {
                name: String,
            }
            let create: Create = match parse(body, "namespace (`{\"name\": …}`)") {
                Ok(create) => create,
                Err(reply) => return reply,
            };
            if !valid_name(&create.name) {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "Invalid namespace",
                    format!("`name` {:?} is not a namespace name: use letters, digits, '-', '_' and '.'", create.name),
                );
            }
            core.namespaces.get_or_create(&create.name);
            Reply {
                status: StatusCode::CREATED,
                body: json!({"name": create.name}),
            }
        }
        ("DELETE", [name]) => {
            if core.namespaces.remove(name) {
                Reply::ok(json!({}))
            } else {
                Reply::error(StatusCode::NOT_FOUND, "No such namespace", format!("no namespace is named {name:?}"))
            }
        }
        _ => Reply::error(
            StatusCode::NOT_FOUND,
            "No such admin endpoint",
            format!("{method} /__admin/namespaces/{} is not an admin endpoint; the endpoints are: {ENDPOINTS}", route.join("/")),
        ),
    }
}
