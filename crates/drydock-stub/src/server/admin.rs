//! The admin API, WireMock's paths under `/__admin`, plus drydock-stub's own (namespaces,
//! verification, what to do on a miss).
//!
//! A thin HTTP layer: each endpoint parses its body, calls the namespace's typed operation (the
//! same one an in-process [`StubServer`](crate::StubServer) calls directly) and writes the answer
//! in WireMock's shape. Every error is JSON, `{"errors": [{"title": …, "detail": …}]}`; a body
//! that is not a valid stub or pattern is `422` with `source.pointer` naming the field, as in
//! WireMock.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{http::HeaderValue, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{Body, Core};
use crate::{
    error::StubError,
    guard::Upstreams,
    mappings,
    model::{RequestPattern, Stub},
    namespace::{lock, valid_name, Namespace, Settings},
    record::{OnMiss, Recording},
    request::{LoggedRequest, ReceivedRequest},
    verify::Unmatched,
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

    pub(crate) fn error(status: StatusCode, title: &str, detail: impl Into<String>) -> Self {
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
            StubError::InvalidStub { source, .. } => {
                unprocessable(&source.pointer(), "Invalid stub", error.to_string())
            }
            _ => unprocessable("", "Invalid stub", error.to_string()),
        }
    }
}

/// WireMock's answer to a body it cannot take: `422` with the JSON pointer of the field.
fn unprocessable(pointer: &str, title: &str, detail: String) -> Reply {
    let source = if pointer.is_empty() {
        json!({})
    } else {
        json!({"pointer": pointer})
    };
    Reply {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        body: json!({"errors": [{"code": 10, "source": source, "title": title, "detail": detail}]}),
    }
}

/// Parses a JSON body, naming the field at fault (`422`, as WireMock).
fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, Reply> {
    let deserializer = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let (at, pointer) = if path == "." {
            (String::new(), String::new())
        } else {
            (
                format!(" at `{path}`"),
                format!("/{}", path.replace(['.', '['], "/").replace(']', "")),
            )
        };
        unprocessable(
            &pointer,
            "Error parsing JSON",
            format!("the body is not a valid {what}{at}: {}", e.inner()),
        )
    })
}

const ENDPOINTS: &str = "GET /__admin/health; GET|POST|DELETE /__admin/mappings; \
GET|PUT|DELETE /__admin/mappings/{id}; POST /__admin/mappings/import; POST /__admin/mappings/reset; \
POST /__admin/reset; GET|DELETE /__admin/requests; GET /__admin/requests/{id}; \
POST /__admin/requests/count; POST /__admin/requests/find; GET /__admin/requests/unmatched; \
GET /__admin/requests/unmatched/near-misses; POST /__admin/near-misses/request; \
POST /__admin/near-misses/request-pattern; GET /__admin/verify; GET /__admin/scenarios; \
POST /__admin/scenarios/reset; PUT /__admin/scenarios/{name}/state; GET|POST /__admin/settings; \
GET|PUT /__admin/on-miss; POST /__admin/recordings/start|stop; GET /__admin/recordings/status; \
GET|POST /__admin/namespaces; DELETE /__admin/namespaces/{name}; GET /__admin/tls/ca; \
GET|POST /__admin/upstreams";

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
        return Reply::ok(json!({"status": "healthy", "message": "drydock-stub is ok"}));
    }
    if route == ["tls", "ca"] {
        return match &core.ca {
            Some(ca) => Reply::ok(json!({"pem": ca.pem()})),
            None => Reply::error(
                StatusCode::NOT_FOUND,
                "No HTTPS",
                "this server serves no HTTPS (start it with --https-port, or `.https()`)",
            ),
        };
    }
    if route == ["upstreams"] {
        return upstreams(core, method, body);
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
    match run(&mut space, &core.upstreams, method, &route, body) {
        Ok(reply) | Err(reply) => reply,
    }
}

/// WireMock's near-miss entries; `nearMiss` (drydock's checks) is an extension.
fn near_misses(unmatched: Vec<Unmatched>) -> Value {
    let entries: Vec<Value> = unmatched
        .into_iter()
        .flat_map(|u| {
            let request = u.request;
            u.near_misses.into_iter().map(move |miss| {
                json!({
                    "request": request,
                    "stubMapping": miss.stub_mapping,
                    "matchResult": {"distance": miss.distance},
                    "nearMiss": miss,
                })
            })
        })
        .collect();
    json!({ "nearMisses": entries })
}

fn run(
    space: &mut Namespace,
    upstreams: &Upstreams,
    method: &str,
    route: &[&str],
    body: &[u8],
) -> Result<Reply, Reply> {
    let allowed = |stubs: &[&Stub]| -> Result<(), Reply> {
        for base in stubs
            .iter()
            .filter_map(|s| s.response.proxy_base_url.as_deref())
        {
            upstreams.check(base).map_err(not_allowed)?;
        }
        Ok(())
    };
    let reply = match (method, route) {
        ("GET", ["mappings"]) => {
            let stubs = space.stubs();
            Reply::ok(json!({"meta": {"total": stubs.len()}, "mappings": stubs}))
        }
        ("POST", ["mappings"]) => {
            let stub: Stub = parse(body, "stub mapping")?;
            allowed(&[&stub])?;
            let id = space.mount(stub)?;
            Reply {
                status: StatusCode::CREATED,
                body: json!(space.stub(&id)?),
            }
        }
        ("DELETE", ["mappings"]) => {
            space.remove_all();
            Reply::ok(json!({}))
        }
        ("POST", ["mappings", "reset"]) => {
            space.reset_stubs();
            Reply::ok(json!({}))
        }
        ("POST", ["mappings", "import"]) => {
            let stubs = mappings::parse(body)
                .map_err(|message| unprocessable("", "Error parsing JSON", message))?;
            allowed(&stubs.iter().collect::<Vec<_>>())?;
            Reply::ok(json!({"ids": space.mount_all(stubs)?}))
        }
        ("GET", ["mappings", id]) => Reply::ok(json!(space.stub(id)?)),
        ("PUT", ["mappings", id]) => {
            let mut stub: Stub = parse(body, "stub mapping")?;
            allowed(&[&stub])?;
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
            // Newest first, as WireMock lists them.
            let mut events = space.serve_events();
            events.reverse();
            let stats = space.journal_stats();
            Reply::ok(json!({
                "requests": events,
                "meta": {"total": stats.total, "limit": stats.limit, "dropped": stats.dropped},
                "requestJournalDisabled": false,
            }))
        }
        ("GET", ["requests", "unmatched"]) => {
            let requests: Vec<_> = space.unmatched().into_iter().map(|u| u.request).collect();
            Reply::ok(json!({"requests": requests, "requestJournalDisabled": false}))
        }
        ("GET", ["requests", "unmatched", "near-misses"]) => {
            Reply::ok(near_misses(space.unmatched()))
        }
        ("GET", ["requests", id]) => match space.serve_events().into_iter().find(|e| e.id == *id) {
            Some(event) => Reply::ok(json!(event)),
            None => Reply::error(
                StatusCode::NOT_FOUND,
                "No such request",
                format!("no request in the journal has id {id}"),
            ),
        },
        ("DELETE", ["requests"]) | ("POST", ["requests", "reset"]) => {
            space.clear_journal();
            Reply::ok(json!({}))
        }
        ("POST", ["requests", "count"]) => {
            let pattern: RequestPattern = parse(body, "request pattern")?;
            Reply::ok(json!({"count": space.count(&pattern)?, "requestJournalDisabled": false}))
        }
        ("POST", ["requests", "find"]) => {
            let pattern: RequestPattern = parse(body, "request pattern")?;
            Reply::ok(json!({"requests": space.find(&pattern)?, "requestJournalDisabled": false}))
        }
        ("POST", ["near-misses", "request"]) => {
            let logged: LoggedRequest = parse(body, "logged request")?;
            let unmatched = space.explain(&ReceivedRequest::from_logged(&logged));
            Reply::ok(near_misses(vec![unmatched]))
        }
        ("POST", ["near-misses", "request-pattern"]) => {
            let pattern: RequestPattern = parse(body, "request pattern")?;
            let entries: Vec<Value> = space
                .near_requests(&pattern)?
                .into_iter()
                .map(|u| {
                    let distance = u.near_misses.first().map_or(1.0, |m| m.distance);
                    json!({
                        "request": u.request,
                        "requestPattern": pattern,
                        "matchResult": {"distance": distance},
                        "nearMiss": u.near_misses.first(),
                    })
                })
                .collect();
            Reply::ok(json!({ "nearMisses": entries }))
        }
        ("GET" | "POST", ["verify"]) => match space.verify() {
            Ok(()) => Reply::ok(json!({"ok": true})),
            Err(failure) => Reply::from(StubError::Verification(failure)),
        },
        ("GET", ["scenarios"]) => Reply::ok(json!({"scenarios": space.scenarios()})),
        ("POST", ["scenarios", "reset"]) => {
            space.reset_scenarios();
            Reply::ok(json!({}))
        }
        ("PUT", ["scenarios", name, "state"]) => {
            #[derive(serde::Deserialize)]
            struct State {
                #[serde(default)]
                state: Option<String>,
            }
            let state: State = if body.is_empty() {
                State { state: None }
            } else {
                parse(body, "scenario state (`{\"state\": …}`)")?
            };
            space
                .set_scenario_state(name, state.state.as_deref())
                .map_err(|message| {
                    Reply::error(StatusCode::BAD_REQUEST, "Invalid state", message)
                })?;
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
            check_target(&on_miss).map_err(bad_target)?;
            check_allowed(upstreams, &on_miss).map_err(not_allowed)?;
            space.on_miss = on_miss;
            Reply::ok(json!(space.on_miss))
        }
        ("POST", ["recordings", "start"]) => {
            let recording: Recording = parse(body, "recording spec")?;
            let on_miss = OnMiss::Record(recording);
            check_target(&on_miss).map_err(bad_target)?;
            check_allowed(upstreams, &on_miss).map_err(not_allowed)?;
            space.on_miss = on_miss;
            Reply::ok(json!({}))
        }
        ("POST", ["recordings", "stop"]) => Reply::ok(json!({"mappings": space.stop_recording()})),
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

/// Whether an on-miss mode's upstream is an http(s) URL.
pub(crate) fn check_target(on_miss: &OnMiss) -> Result<(), String> {
    let target = match on_miss {
        OnMiss::Fail => return Ok(()),
        OnMiss::PassThrough { target_base_url } => target_base_url,
        OnMiss::Record(recording) => &recording.target_base_url,
    };
    match reqwest::Url::parse(target) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
        _ => Err(format!("`targetBaseUrl` {target:?} is not an http(s) URL")),
    }
}

/// Whether the allow-list admits an on-miss mode's upstream.
pub(crate) fn check_allowed(upstreams: &Upstreams, on_miss: &OnMiss) -> Result<(), String> {
    match on_miss {
        OnMiss::Fail => Ok(()),
        OnMiss::PassThrough { target_base_url } => upstreams.check(target_base_url),
        OnMiss::Record(recording) => upstreams.check(&recording.target_base_url),
    }
}

/// `403`: an upstream the server was not configured to reach.
fn not_allowed(message: String) -> Reply {
    Reply::error(StatusCode::FORBIDDEN, "Upstream not allowed", message)
}

/// `GET` lists the allowed upstreams (`null`: any); `POST {"origins": [..]}` adds to them —
/// only on a server whose admin API asks for credentials, so that only a caller who holds them
/// (the dispatcher has checked them by now) can widen what the server reaches.
fn upstreams(core: &Core, method: &str, body: &[u8]) -> Reply {
    match method {
        "GET" => Reply::ok(json!({"upstreams": core.upstreams.list()})),
        "POST" => {
            #[derive(serde::Deserialize)]
            #[serde(deny_unknown_fields)]
            struct Add {
                origins: Vec<String>,
            }
            let add: Add = match parse(body, "upstreams (`{\"origins\": [\"http://host:port\"]}`)") {
                Ok(add) => add,
                Err(reply) => return reply,
            };
            if !core.upstreams.restricted() {
                return Reply::ok(json!({"upstreams": null}));
            }
            if core.admin.is_none() {
                return Reply::error(
                    StatusCode::FORBIDDEN,
                    "Upstreams fixed",
                    "this server's allowed upstreams can only be widened by a caller with admin \
                     credentials, and its admin API has none. to fix: list the upstreams at start \
                     (--allowed-upstreams), or start it with --admin-api-basic-auth",
                );
            }
            for origin in &add.origins {
                if let Err(message) = core.upstreams.allow(origin) {
                    return bad_target(format!("`origins`: {message}"));
                }
            }
            Reply::ok(json!({"upstreams": core.upstreams.list()}))
        }
        _ => Reply::error(
            StatusCode::NOT_FOUND,
            "No such admin endpoint",
            format!("{method} /__admin/upstreams is not an admin endpoint; the endpoints are: {ENDPOINTS}"),
        ),
    }
}

fn bad_target(message: String) -> Reply {
    Reply::error(StatusCode::BAD_REQUEST, "Invalid target", message)
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
