//! What a stub is, in WireMock's JSON mapping format: the one model behind the Rust builders, the
//! mapping files and the admin API, so a stub means the same whichever way it arrives.
//!
//! Fields drydock-stub adds to WireMock's format are marked *extension* in their docs; every
//! other field means what it means in WireMock. A field outside the supported subset is rejected
//! by name (see [`crate::mappings`]).

mod request;
mod response;
mod times;

use serde::{Deserialize, Serialize};

pub use request::{BasicCredentials, BodyPattern, JsonPathPattern, RequestPattern, StringMatcher};
pub use response::{
    ChunkedDribble, DelayDistribution, Fault, HeaderValues, Response, TEMPLATE_TRANSFORMER,
};
pub use times::Times;

/// The scenario state every scenario starts in, as in WireMock.
pub const STARTED: &str = "Started";

/// One stub: which requests it answers ([`RequestPattern`]) and how ([`Response`]).
///
/// ```
/// use drydock_stub::{BodyPattern, Response, StringMatcher, Stub, Times};
/// use serde_json::json;
///
/// let stub = Stub::post("/payments")
///     .header("authorization", StringMatcher::matches("^Bearer "))
///     .body(BodyPattern::json_partial(json!({"currency": "EUR"})))
///     .respond(Response::status(201).json(json!({"id": "pay_1"})))
///     .expect(Times::Exactly(1));
/// assert_eq!(stub.request.method.as_deref(), Some("POST"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct Stub {
    /// The stub's id; given by the server when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// WireMock's second spelling of the id; read, and folded into `id`.
    #[serde(default, skip_serializing)]
    pub uuid: Option<String>,
    /// A name for people: shown in near-miss reports and verification failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// 1 is the highest; 5 when absent. Among equal priorities the newest stub wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    /// Which requests the stub answers.
    #[serde(default)]
    pub request: RequestPattern,
    /// What it answers.
    #[serde(default)]
    pub response: Response,
    /// The scenario this stub belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_name: Option<String>,
    /// The state the scenario must be in for the stub to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_scenario_state: Option<String>,
    /// The state the scenario moves to once the stub has answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_scenario_state: Option<String>,
    /// *Extension*: how often the stub must be called, checked by `verify` and on drop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Times>,
    /// Accepted for compatibility with WireMock files; stubs live as long as their server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent: Option<bool>,
    /// Free-form data kept with the stub, as in WireMock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
}

/// The default priority of a stub that does not set one, as in WireMock.
pub const DEFAULT_PRIORITY: u32 = 5;

impl Stub {
    /// A stub for `method` requests to exactly `path` (query strings are not part of it).
    pub fn new(method: &str, path: impl Into<String>) -> Self {
        let mut stub = Stub::default();
        stub.request.method = Some(method.to_ascii_uppercase());
        stub.request.url_path = Some(path.into());
        stub
    }

    /// A stub for any request; narrow it with the matcher methods.
    pub fn any() -> Self {
        Stub::default()
    }

    /// `GET path`.
    pub fn get(path: impl Into<String>) -> Self {
        Stub::new("GET", path)
    }

    /// `POST path`.
    pub fn post(path: impl Into<String>) -> Self {
        Stub::new("POST", path)
    }

    /// `PUT path`.
    pub fn put(path: impl Into<String>) -> Self {
        Stub::new("PUT", path)
    }

    /// `PATCH path`.
    pub fn patch(path: impl Into<String>) -> Self {
        Stub::new("PATCH", path)
    }

    /// `DELETE path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Stub::new("DELETE", path)
    }

    /// Matches this method only (`ANY` for every method).
    pub fn method(mut self, method: &str) -> Self {
        self.request.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Changes the pattern with one of [`RequestPattern`]'s methods.
    fn pattern(mut self, change: impl FnOnce(RequestPattern) -> RequestPattern) -> Self {
        self.request = change(std::mem::take(&mut self.request));
        self
    }

    /// Matches exactly this path (WireMock `urlPath`).
    pub fn path(self, path: impl Into<String>) -> Self {
        self.pattern(|r| r.path(path))
    }

    /// Matches paths starting with `prefix` (*extension* `urlPathPrefix`).
    pub fn path_prefix(self, prefix: impl Into<String>) -> Self {
        self.pattern(|r| r.path_prefix(prefix))
    }

    /// Matches paths against a regular expression, anchored at both ends (WireMock `urlPathPattern`).
    pub fn path_regex(self, regex: impl Into<String>) -> Self {
        self.pattern(|r| r.path_regex(regex))
    }

    /// Matches paths of this shape (WireMock `urlPathTemplate`): `/orders/{id}`.
    pub fn path_template(self, template: impl Into<String>) -> Self {
        self.pattern(|r| r.url_path_template(template))
    }

    /// Tests the value of one of the path template's variables.
    pub fn path_parameter(self, name: impl Into<String>, matcher: StringMatcher) -> Self {
        self.pattern(|r| r.path_parameter(name, matcher))
    }

    /// Matches exactly this path and query string (WireMock `url`).
    pub fn url(self, url: impl Into<String>) -> Self {
        self.pattern(|r| r.url(url))
    }

    /// Matches path and query string against a regular expression (WireMock `urlPattern`).
    pub fn url_regex(self, regex: impl Into<String>) -> Self {
        self.pattern(|r| r.url_regex(regex))
    }

    /// Requires a query parameter (one of its values, when repeated) to match.
    pub fn query(self, name: impl Into<String>, matcher: StringMatcher) -> Self {
        self.pattern(|r| r.query(name, matcher))
    }

    /// Requires a header (names are case-insensitive) to match; see [`StringMatcher::absent`].
    pub fn header(self, name: impl Into<String>, matcher: StringMatcher) -> Self {
        self.pattern(|r| r.header(name, matcher))
    }

    /// Requires a cookie to match.
    pub fn cookie(self, name: impl Into<String>, matcher: StringMatcher) -> Self {
        self.pattern(|r| r.cookie(name, matcher))
    }

    /// Requires HTTP basic authentication with these credentials (WireMock `basicAuthCredentials`).
    pub fn basic_auth(self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.pattern(|r| r.basic_auth(username, password))
    }

    /// Requires the body to match; several body patterns must all match.
    pub fn body(self, pattern: BodyPattern) -> Self {
        self.pattern(|r| r.body(pattern))
    }

    /// 1 is the highest priority; 5 is the default.
    pub fn priority(mut self, priority: u32) -> Self {
        self.priority = Some(priority);
        self
    }

    /// Names the stub in reports.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Makes the stub part of `scenario`: it applies only in state `required` (every scenario
    /// starts in [`STARTED`]) and, once it answered, moves the scenario to `next`.
    ///
    /// ```
    /// use drydock_stub::{Response, Stub, STARTED};
    ///
    /// let first = Stub::get("/order").in_scenario("order", STARTED, Some("paid"))
    ///     .respond(Response::ok().body("pending"));
    /// let then = Stub::get("/order").in_scenario("order", "paid", None)
    ///     .respond(Response::ok().body("paid"));
    /// # let _ = (first, then);
    /// ```
    pub fn in_scenario(
        mut self,
        scenario: impl Into<String>,
        required: impl Into<String>,
        next: Option<&str>,
    ) -> Self {
        self.scenario_name = Some(scenario.into());
        self.required_scenario_state = Some(required.into());
        self.new_scenario_state = next.map(String::from);
        self
    }

    /// Sets the response.
    pub fn respond(mut self, response: Response) -> Self {
        self.response = response;
        self
    }

    /// How often the stub must be called; checked by `verify` and when the server is dropped:
    /// `expect(1)`, `expect(1..=3)`, `expect(2..)`, `expect(..=1)`, `expect(Times::NEVER)`.
    pub fn expect(mut self, times: impl Into<Times>) -> Self {
        self.expect = Some(times.into());
        self
    }

    /// Gives the stub an id of your choosing, so it can be replaced or removed by it.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The name in reports: the name, else `METHOD url`.
    pub fn label(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        let r = &self.request;
        let url = [
            &r.url,
            &r.url_path,
            &r.url_pattern,
            &r.url_path_pattern,
            &r.url_path_prefix,
            &r.url_path_template,
        ]
        .into_iter()
        .find_map(|u| u.clone())
        .unwrap_or_else(|| "(any url)".into());
        format!("{} {url}", r.method.as_deref().unwrap_or("ANY"))
    }
}
