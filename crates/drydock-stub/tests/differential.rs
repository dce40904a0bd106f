//! drydock-stub against WireMock itself: the same mappings (from files and through the admin API)
//! and the same requests go to both, and status, body and the stubbed headers must agree, as must
//! the admin API's answers; the few differences that are kept on purpose are listed in `ALLOWED`
//! and printed. Then a published WireMock client (npm `wiremock-rest-client`) drives
//! drydock-stub's admin API.
//!
//! WireMock is the standalone jar of the npm package `wiremock` (3.13.2), run by Debian's Java 17;
//! `scripts/setup` installs both into `~/.cache/drydock/wiremock` (`DRYDOCK_WIREMOCK_DIR`). Without
//! them these tests fail, saying so: they are part of CI, not optional.
//!
//! Everything against WireMock is one test, so the JVM starts once per run (nextest runs each
//! test in a process of its own).

mod common;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use drydock_stub::{AdminCredentials, Response, Stub, StubServer};
use serde_json::{json, Value};

/// Differences kept on purpose: (case, aspect, why). Printed by the test.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "*unmatched*",
        "body",
        "a request no stub matches gets each server's own near-miss report as its 404 body",
    ),
    (
        "*unmatched*",
        "header content-type",
        "WireMock's 404 report is text/plain;charset=UTF-8, drydock-stub's text/plain; charset=utf-8",
    ),
    (
        "file*",
        "header matched-stub-id",
        "a mapping file's stub without an id gets a random one from each server",
    ),
    (
        "proxy",
        "header matched-stub-id",
        "WireMock answers a proxied request as a stub of its own making (a fresh id, no name)",
    ),
    (
        "proxy",
        "header matched-stub-name",
        "WireMock answers a proxied request as a stub of its own making (a fresh id, no name)",
    ),
    (
        "near miss",
        "nearest stub",
        "near misses are ranked by each server's own distance; drydock-stub's is the share of failed checks",
    ),
];

fn wiremock_dir() -> PathBuf {
    match std::env::var_os("DRYDOCK_WIREMOCK_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/drydock/wiremock"),
    }
}

fn missing(what: &str) -> ! {
    panic!(
        "{what} not found: run scripts/setup, which installs Java (Debian's openjdk-17) and the npm \
         packages `wiremock` and `wiremock-rest-client` into {} (or set DRYDOCK_WIREMOCK_DIR)",
        wiremock_dir().display()
    )
}

/// WireMock's standalone jar, from the npm package `wiremock`.
fn jar() -> PathBuf {
    if let Some(jar) = std::env::var_os("DRYDOCK_WIREMOCK_JAR") {
        return PathBuf::from(jar);
    }
    let build = wiremock_dir().join("node_modules/wiremock/build");
    std::fs::read_dir(&build)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("wiremock-standalone-") && n.ends_with(".jar"))
        })
        .unwrap_or_else(|| {
            missing(&format!(
                "WireMock's standalone jar (in {})",
                build.display()
            ))
        })
}

fn fixture() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wiremock"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

/// WireMock in a JVM of its own, killed when dropped.
struct WireMock {
    child: Child,
    url: String,
    _root: tempfile::TempDir,
}

impl WireMock {
    /// WireMock asking for `credentials` on its admin API (`--admin-api-basic-auth`).
    async fn start(credentials: &AdminCredentials) -> WireMock {
        let jar = jar();
        let root = tempfile::tempdir().expect("temp dir");
        // Its root: the same mapping files and __files drydock-stub loads.
        copy_dir(fixture(), root.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("java")
            .args(["-Xshare:auto", "-XX:TieredStopAtLevel=1", "-jar"])
            .arg(&jar)
            .args(["--port", &port.to_string(), "--bind-address", "127.0.0.1"])
            .arg("--root-dir")
            .arg(root.path())
            .args(["--disable-banner", "--container-threads", "20"])
            .arg("--admin-api-basic-auth")
            .arg(format!("{}:{}", credentials.user(), credentials.password()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| missing(&format!("java ({e})")));
        let wiremock = WireMock {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _root: root,
        };
        let client = common::client();
        let started = Instant::now();
        loop {
            let health = client
                .get(format!("{}/__admin/health", wiremock.url))
                .header("authorization", credentials.authorization())
                .send()
                .await;
            if health.is_ok_and(|h| h.status().is_success()) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(90),
                "WireMock ({}) did not answer within 90 s",
                jar.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        println!(
            "WireMock {} ready in {:.1} s",
            jar.display(),
            started.elapsed().as_secs_f64()
        );
        wiremock
    }
}

impl Drop for WireMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request of the corpus.
struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, &'static str)>,
    body: Vec<u8>,
}

fn case(name: &'static str, method: &'static str, path: &str) -> Case {
    Case {
        name,
        method,
        path: path.to_string(),
        headers: Vec::new(),
        body: Vec::new(),
    }
}

impl Case {
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

/// What a server did with a request.
#[derive(Debug, PartialEq)]
enum Answer {
    Response {
        status: u16,
        headers: BTreeMap<String, Vec<String>>,
        body: Vec<u8>,
        elapsed: Duration,
    },
    /// The connection failed (a fault).
    Failed,
}

async fn send(client: &reqwest::Client, base: &str, case: &Case) -> Answer {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).expect("a method");
    let mut request = client.request(method, format!("{base}{}", case.path));
    for (name, value) in &case.headers {
        request = request.header(*name, *value);
    }
    if !case.body.is_empty() {
        request = request.body(case.body.clone());
    }
    let started = Instant::now();
    let Ok(response) = request.send().await else {
        return Answer::Failed;
    };
    let status = response.status().as_u16();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in response.headers() {
        headers
            .entry(name.as_str().to_string())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    match response.bytes().await {
        Ok(body) => Answer::Response {
            status,
            headers,
            body: body.to_vec(),
            elapsed: started.elapsed(),
        },
        Err(_) => Answer::Failed,
    }
}

/// Differences found, and those the allow-list admits.
#[derive(Default)]
struct Report {
    failures: Vec<String>,
    allowed: Vec<String>,
    compared: usize,
}

impl Report {
    fn differ(
        &mut self,
        case: &str,
        aspect: &str,
        ours: impl std::fmt::Debug,
        theirs: impl std::fmt::Debug,
    ) {
        let shorten = |text: String| {
            if text.chars().count() > 300 {
                format!("{}…", text.chars().take(300).collect::<String>())
            } else {
                text
            }
        };
        let line = format!(
            "{case}: {aspect}: drydock-stub {}, WireMock {}",
            shorten(format!("{ours:?}")),
            shorten(format!("{theirs:?}"))
        );
        let allowed = ALLOWED.iter().any(|(c, a, _)| {
            (*c == case
                || (*c == "*unmatched*" && case.starts_with("unmatched"))
                || c.strip_suffix('*')
                    .is_some_and(|prefix| case.starts_with(prefix)))
                && *a == aspect
        });
        if allowed {
            self.allowed.push(line);
        } else {
            self.failures.push(line);
        }
    }

    fn check<T: PartialEq + std::fmt::Debug>(
        &mut self,
        case: &str,
        aspect: &str,
        ours: T,
        theirs: T,
    ) {
        self.compared += 1;
        if ours != theirs {
            self.differ(case, aspect, ours, theirs);
        }
    }
}

/// Headers a stub of the corpus sets, and WireMock's own: compared on every answer.
const STUBBED_HEADERS: &[&str] = &[
    "location",
    "x-stub",
    "x-multi",
    "x-echo",
    "content-type",
    "matched-stub-id",
    "matched-stub-name",
];

async fn compare(
    report: &mut Report,
    client: &reqwest::Client,
    ours: &str,
    theirs: &str,
    case: &Case,
) {
    let (a, b) = (
        send(client, ours, case).await,
        send(client, theirs, case).await,
    );
    match (a, b) {
        (Answer::Failed, Answer::Failed) => report.compared += 1,
        (
            Answer::Response {
                status: s1,
                headers: h1,
                body: b1,
                elapsed: e1,
            },
            Answer::Response {
                status: s2,
                headers: h2,
                body: b2,
                elapsed: e2,
            },
        ) => {
            report.check(case.name, "status", s1, s2);
            report.check(
                case.name,
                "body",
                String::from_utf8_lossy(&b1).into_owned(),
                String::from_utf8_lossy(&b2).into_owned(),
            );
            for name in STUBBED_HEADERS {
                let pick = |h: &BTreeMap<String, Vec<String>>| h.get(*name).cloned();
                report.check(case.name, &format!("header {name}"), pick(&h1), pick(&h2));
            }
            // Delays: both at least as long as the stub says (checked on the cases that delay).
            if case.name.contains("delay") {
                let floor = if case.name.contains("fixed") { 150 } else { 20 };
                report.check(
                    case.name,
                    "delay honoured",
                    e1.as_millis() >= floor,
                    e2.as_millis() >= floor,
                );
            }
        }
        (a, b) => report.differ(case.name, "outcome", a, b),
    }
}

/// A stub as both servers name it: its name, else its URL pattern.
fn stub_key(stub: &Value) -> Value {
    if stub["name"].is_string() {
        return stub["name"].clone();
    }
    [
        "url",
        "urlPath",
        "urlPattern",
        "urlPathPattern",
        "urlPathTemplate",
    ]
    .iter()
    .map(|field| stub["request"][field].clone())
    .find(Value::is_string)
    .unwrap_or(Value::Null)
}

async fn admin(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut request = client.request(method, format!("{base}/__admin{path}"));
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.expect("the admin API answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn corpus() -> Vec<Case> {
    vec![
        case("url exact", "GET", "/exact?a=1"),
        case("unmatched url exact", "GET", "/exact?a=2"),
        case("url path with query", "GET", "/path?whatever=1"),
        case("url pattern", "GET", "/pattern/abc?q=1"),
        case("unmatched url pattern", "GET", "/pattern/ABC?q=1"),
        case("url path pattern", "GET", "/items/42?x=y"),
        case("unmatched url path pattern", "GET", "/items/4x"),
        case("url path template", "GET", "/contacts/12/addresses/home"),
        case(
            "unmatched url path template parameter",
            "GET",
            "/contacts/ab/addresses/home",
        ),
        case(
            "unmatched url path template shape",
            "GET",
            "/contacts/12/addresses",
        ),
        case(
            "query",
            "GET",
            "/query?eq=one&has=light-blue&re=123&not=test&ci=eur",
        ),
        case(
            "query doesNotMatch absent",
            "GET",
            "/query?eq=one&has=blue&re=1&ci=EUR",
        ),
        case(
            "query doesNotMatch one of two",
            "GET",
            "/query?eq=one&has=blue&re=1&ci=EUR&not=prod&not=test",
        ),
        case(
            "unmatched query doesNotMatch",
            "GET",
            "/query?eq=one&has=blue&re=1&ci=EUR&not=prod",
        ),
        case(
            "unmatched query absent",
            "GET",
            "/query?eq=one&has=blue&re=1&ci=EUR&gone=1",
        ),
        case(
            "unmatched query equal",
            "GET",
            "/query?eq=One&has=blue&re=1&ci=EUR",
        ),
        case(
            "query repeated",
            "GET",
            "/query?eq=two&eq=one&has=blue&re=1&ci=EUR",
        ),
        case("headers", "GET", "/headers")
            .header("x-tenant", "ACME")
            .header("accept", "application/json")
            .header("x-request-id", "ab-12")
            .header("x-env", "staging"),
        case("headers doesNotMatch absent", "GET", "/headers")
            .header("x-tenant", "acme")
            .header("accept", "text/json")
            .header("x-request-id", "ab"),
        case("unmatched headers absent", "GET", "/headers")
            .header("x-tenant", "acme")
            .header("accept", "json")
            .header("x-request-id", "ab")
            .header("x-debug", "1"),
        case("unmatched headers regex", "GET", "/headers")
            .header("x-tenant", "acme")
            .header("accept", "json")
            .header("x-request-id", "XYZ"),
        case("cookies", "GET", "/cookies").header("cookie", "theme=dark; session=s42"),
        case("unmatched cookies", "GET", "/cookies").header("cookie", "theme=light; session=s42"),
        case("basic auth", "GET", "/private").header("authorization", "Basic YWRhOnMzY3JldA=="),
        case("unmatched basic auth", "GET", "/private")
            .header("authorization", "Basic YWRhOndyb25n"),
        case("unmatched basic auth absent", "GET", "/private"),
        case("body equal", "POST", "/body/equal").body("hello"),
        case("unmatched body equal", "POST", "/body/equal").body("hello!"),
        case("body contains", "POST", "/body/contains").body("hay needle hay"),
        case("body matches", "POST", "/body/matches").body("id=12"),
        case("unmatched body matches", "POST", "/body/matches").body("id=12;"),
        case("body json", "POST", "/body/json").body(r#"{"b": [1, 2], "a": 1.0}"#),
        case("unmatched body json extra", "POST", "/body/json")
            .body(r#"{"a": 1, "b": [1, 2], "c": 3}"#),
        case("unmatched body json order", "POST", "/body/json").body(r#"{"a": 1, "b": [2, 1]}"#),
        case("body json lenient", "POST", "/body/json-lenient")
            .body(r#"{"b": [1, 2, 3], "id": "x", "more": true}"#),
        case(
            "unmatched body json placeholder",
            "POST",
            "/body/json-lenient",
        )
        .body(r#"{"b": [1, 2], "id": 5}"#),
        case("body json path", "POST", "/body/json-path")
            .body(r#"{"customer": {"id": 1}, "currency": "EUR"}"#),
        case("unmatched body json path", "POST", "/body/json-path").body(r#"{"currency": "EUR"}"#),
        case("body binary", "POST", "/body/binary").body(vec![0u8, 1, 2, 255]),
        case("unmatched body binary", "POST", "/body/binary").body(vec![0u8, 1, 2]),
        case("body xml", "POST", "/body/xml")
            .body("<order kind=\"book\" id=\"1\">\n  <item>Dune</item>\n</order>"),
        case("unmatched body xml", "POST", "/body/xml")
            .body(r#"<order id="1" kind="book"><item>Emma</item></order>"#),
        case("body doesNotMatch", "POST", "/body/not").body("public"),
        case("unmatched body doesNotMatch", "POST", "/body/not").body("top secret"),
        case("priority", "GET", "/prio/a"),
        case("priority fallback", "GET", "/prio/b"),
        case("any method", "DELETE", "/any"),
        case("unmatched lower-case method", "GET", "/lower"),
        case("status message", "POST", "/created"),
        case("json body", "GET", "/json"),
        case("base64 body", "GET", "/bytes"),
        case("body file", "GET", "/file"),
        case("template", "POST", "/template/seg?page=3")
            .header("x-trace", "t-1")
            .header("cookie", "session=abc")
            .body(r#"{"id": "o-9"}"#),
        case("fixed delay", "GET", "/slow"),
        case("uniform delay", "GET", "/jitter"),
        case("dribble", "GET", "/dribble"),
        case("fault reset", "GET", "/fault/reset"),
        case("fault empty", "GET", "/fault/empty"),
        case("fault malformed", "GET", "/fault/malformed"),
        case("fault random", "GET", "/fault/random"),
        case("proxy", "GET", "/upstream/thing?q=1"),
        // From the mapping files (loaded by both from the same directory).
        case("file health", "GET", "/health"),
        case("file order", "POST", "/orders")
            .header("content-type", "application/json")
            .body(r#"{"item": "book", "quantity": 2, "gift": true}"#),
        case("unmatched file order", "POST", "/orders")
            .header("content-type", "application/json")
            .body(r#"{"item": 5, "quantity": 2}"#),
        case("file template", "GET", "/orders/77?view=full"),
        case("file fault", "GET", "/legacy/x"),
        case("unmatched nothing", "GET", "/nothing/here"),
        // The scenario, step by step.
        case("scenario 1 started", "GET", "/cart"),
        case("scenario 2 filled", "GET", "/cart"),
        case("scenario 3 add", "POST", "/cart"),
        case("scenario 4 checked out", "GET", "/cart"),
        case("unmatched scenario 5 add again", "POST", "/cart"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drydock_stub_answers_as_wiremock_does() {
    let started = Instant::now();
    // Both ask for the same admin credentials, each as its own option says.
    let credentials = AdminCredentials::generate();
    let wiremock = WireMock::start(&credentials).await;
    let upstream = StubServer::start().await.expect("upstream starts");
    upstream
        .mount(
            Stub::any().path_prefix("/upstream").respond(
                Response::ok()
                    .header("x-stub", "upstream")
                    .body("from upstream"),
            ),
        )
        .await
        .expect("upstream stub");
    let ours = StubServer::builder()
        .files(fixture().join("__files"))
        .admin_api_basic_auth(Some(credentials.clone()))
        .verify_on_drop(false)
        .start()
        .await
        .expect("drydock-stub starts");
    ours.load_dir(fixture())
        .await
        .expect("the mapping files load");
    let (ours_url, theirs_url) = (ours.url(), wiremock.url.clone());
    // Admin calls carry the credentials in the URL; reqwest sends them as basic credentials.
    let with_credentials = |url: &str| {
        url.replacen(
            "://",
            &format!("://{}:{}@", credentials.user(), credentials.password()),
            1,
        )
    };
    let (ours_admin, theirs_admin) = (ours.admin_url(), with_credentials(&theirs_url));
    let client = common::client();

    let mappings = include_str!("differential/mappings.json").replace("UPSTREAM", &upstream.url());
    let mappings: Value = serde_json::from_str(&mappings).expect("the corpus is JSON");
    for base in [&ours_admin, &theirs_admin] {
        let (status, body) = admin(
            &client,
            base,
            "POST",
            "/mappings/import",
            Some(mappings.clone()),
        )
        .await;
        assert!(
            (200..300).contains(&status),
            "{base}: import answered {status}: {body}"
        );
    }

    let mut report = Report::default();
    let corpus = corpus();
    for case in &corpus {
        compare(&mut report, &client, &ours_url, &theirs_url, case).await;
    }

    // The admin API, on the journals both now hold.
    let both = |method: &'static str, path: &'static str, body: Option<Value>| {
        let client = client.clone();
        let (a, b) = (ours_admin.clone(), theirs_admin.clone());
        async move {
            (
                admin(&client, &a, method, path, body.clone()).await,
                admin(&client, &b, method, path, body).await,
            )
        }
    };
    let ((s1, j1), (s2, j2)) = both("GET", "/requests", None).await;
    report.check("journal", "status", s1, s2);
    report.check(
        "journal",
        "meta.total",
        j1["meta"]["total"].clone(),
        j2["meta"]["total"].clone(),
    );
    report.check(
        "journal",
        "requestJournalDisabled",
        j1["requestJournalDisabled"].clone(),
        j2["requestJournalDisabled"].clone(),
    );
    let summary = |journal: &Value| -> Vec<(Value, Value, Value, Value, Value)> {
        journal["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["request"]["method"].clone(),
                    e["request"]["url"].clone(),
                    e["wasMatched"].clone(),
                    // The stub by name or URL: file stubs' ids are each server's own.
                    if e["wasMatched"] == true {
                        stub_key(&e["stubMapping"])
                    } else {
                        Value::Null
                    },
                    e["responseDefinition"]["status"].clone(),
                )
            })
            .collect()
    };
    report.check(
        "journal",
        "serve events (method, url, matched, stub, status)",
        summary(&j1),
        summary(&j2),
    );
    let first_body = |journal: &Value| {
        journal["requests"].as_array().and_then(|r| {
            r.iter()
                .find(|e| e["request"]["url"] == "/body/equal")
                .map(|e| {
                    (
                        e["request"]["body"].clone(),
                        e["request"]["bodyAsBase64"].clone(),
                        e["request"]["headers"].is_object(),
                    )
                })
        })
    };
    report.check(
        "journal",
        "logged body and headers object",
        first_body(&j1),
        first_body(&j2),
    );

    for (name, pattern) in [
        (
            "count urlPath",
            json!({"method": "GET", "urlPath": "/cart"}),
        ),
        (
            "count any",
            json!({"method": "ANY", "urlPathPattern": "/body/.*"}),
        ),
        (
            "count header",
            json!({"method": "GET", "urlPath": "/headers", "headers": {"X-Debug": {"absent": true}}}),
        ),
        (
            "count template",
            json!({"urlPathTemplate": "/contacts/{id}/addresses/{a}"}),
        ),
    ] {
        let ((s1, c1), (s2, c2)) = both("POST", "/requests/count", Some(pattern.clone())).await;
        report.check(name, "status", s1, s2);
        report.check(name, "answer", c1, c2);
        let ((_, f1), (_, f2)) = both("POST", "/requests/find", Some(pattern)).await;
        let urls = |found: &Value| -> Vec<Value> {
            found["requests"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| r["url"].clone())
                .collect()
        };
        report.check(&name.replace("count", "find"), "urls", urls(&f1), urls(&f2));
    }
    let ((_, u1), (_, u2)) = both("GET", "/requests/unmatched", None).await;
    let urls = |found: &Value| -> Vec<Value> {
        let mut urls: Vec<Value> = found["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r["url"].clone())
            .collect();
        urls.sort_by_key(|u| u.to_string());
        urls
    };
    report.check("unmatched requests", "urls", urls(&u1), urls(&u2));
    let ((s1, n1), (s2, n2)) = both("GET", "/requests/unmatched/near-misses", None).await;
    report.check("unmatched near misses", "status", s1, s2);
    report.check(
        "unmatched near misses",
        "has entries",
        n1["nearMisses"].as_array().is_some_and(|n| !n.is_empty()),
        n2["nearMisses"].as_array().is_some_and(|n| !n.is_empty()),
    );
    let ((s1, n1), (s2, n2)) = both(
        "POST",
        "/near-misses/request",
        Some(json!({"method": "POST", "url": "/body/equa", "body": "hello"})),
    )
    .await;
    report.check("near miss", "status", s1, s2);
    report.check(
        "near miss",
        "nearest stub",
        n1["nearMisses"][0]["stubMapping"]["id"].clone(),
        n2["nearMisses"][0]["stubMapping"]["id"].clone(),
    );

    let scenarios = |listing: &Value| -> Vec<(Value, Value, Value, Vec<String>)> {
        let mut all: Vec<_> = listing["scenarios"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let mut states: Vec<String> = s["possibleStates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect();
                states.sort();
                (
                    s["id"].clone(),
                    s["name"].clone(),
                    s["state"].clone(),
                    states,
                )
            })
            .collect();
        all.sort_by_key(|s| s.1.to_string());
        all
    };
    let ((_, l1), (_, l2)) = both("GET", "/scenarios", None).await;
    report.check(
        "scenarios",
        "id, name, state, possible states",
        scenarios(&l1),
        scenarios(&l2),
    );
    let ((s1, _), (s2, _)) = both(
        "PUT",
        "/scenarios/cart/state",
        Some(json!({"state": "filled"})),
    )
    .await;
    report.check("scenario set state", "status", s1, s2);
    compare(
        &mut report,
        &client,
        &ours_url,
        &theirs_url,
        &case("scenario after set state", "GET", "/cart"),
    )
    .await;
    let ((s1, _), (s2, _)) = both("POST", "/scenarios/reset", None).await;
    report.check("scenarios reset", "status", s1, s2);
    compare(
        &mut report,
        &client,
        &ours_url,
        &theirs_url,
        &case("scenario after reset", "GET", "/cart"),
    )
    .await;

    let ((s1, m1), (s2, m2)) = both(
        "GET",
        "/mappings/00000000-0000-4000-8000-000000000023",
        None,
    )
    .await;
    report.check("get mapping", "status", s1, s2);
    report.check(
        "get mapping",
        "response",
        m1["response"].clone(),
        m2["response"].clone(),
    );
    for (name, bad) in [
        (
            "invalid regex",
            json!({"request": {"headers": {"a": {"matches": "["}}}}),
        ),
        ("unknown field", json!({"request": {"bogus": 1}})),
        (
            "wrong type",
            json!({"request": {"url": "/x"}, "response": {"status": "abc"}}),
        ),
    ] {
        let ((s1, e1), (s2, e2)) = both("POST", "/mappings", Some(bad)).await;
        report.check(name, "status", s1, s2);
        let pointer = |e: &Value| {
            e["errors"][0]["source"]["pointer"]
                .as_str()
                .map(|p| p.split('/').take(3).collect::<Vec<_>>().join("/"))
        };
        report.check(
            name,
            "error pointer (first two levels)",
            pointer(&e1),
            pointer(&e2),
        );
    }

    // Without the credentials, or with a wrong password: refused alike; health, alike.
    let wrong = theirs_url.replacen("://", "://drydock:wrong@", 1);
    for (name, path, a, b) in [
        (
            "admin without credentials",
            "/mappings",
            &ours_url,
            &theirs_url,
        ),
        (
            "admin with a wrong password",
            "/mappings",
            &ours_url.replacen("://", "://drydock:wrong@", 1),
            &wrong,
        ),
        (
            "health without credentials",
            "/health",
            &ours_url,
            &theirs_url,
        ),
    ] {
        let (s1, _) = admin(&client, a, "GET", path, None).await;
        let (s2, _) = admin(&client, b, "GET", path, None).await;
        report.check(name, "status", s1, s2);
    }

    let ((s1, _), (s2, _)) = both("DELETE", "/requests", None).await;
    report.check("clear journal", "status", s1, s2);
    let ((_, c1), (_, c2)) = both("POST", "/requests/count", Some(json!({"method": "ANY"}))).await;
    report.check("clear journal", "count after", c1, c2);
    let ((s1, _), (s2, _)) = both("POST", "/reset", None).await;
    report.check("reset", "status", s1, s2);
    let ids = |listing: &Value| -> Vec<Value> {
        let mut ids: Vec<Value> = listing["mappings"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["request"].clone())
            .collect();
        ids.sort_by_key(|v| v.to_string());
        ids
    };
    let ((_, m1), (_, m2)) = both("GET", "/mappings", None).await;
    report.check("reset", "mappings left (the files')", ids(&m1), ids(&m2));
    compare(
        &mut report,
        &client,
        &ours_url,
        &theirs_url,
        &case("file stub after reset", "GET", "/health"),
    )
    .await;
    compare(
        &mut report,
        &client,
        &ours_url,
        &theirs_url,
        &case("unmatched after reset, api stub", "GET", "/json"),
    )
    .await;

    println!(
        "compared {} aspects of {} requests and the admin API",
        report.compared,
        corpus.len()
    );
    println!("documented differences (allow-list):");
    for (case, aspect, why) in ALLOWED {
        println!("  - {case} / {aspect}: {why}");
    }
    for line in &report.allowed {
        println!("    seen: {line}");
    }
    println!("in {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        report.failures.is_empty(),
        "drydock-stub and WireMock differ ({} differences outside the allow-list):\n{}",
        report.failures.len(),
        report.failures.join("\n")
    );
}

/// A published WireMock client (npm `wiremock-rest-client`) lists, finds and counts requests,
/// reads near misses and scenarios, and resets, through drydock-stub's admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_wiremock_client_lists_and_finds_requests() {
    let modules = wiremock_dir().join("node_modules");
    if !modules.join("wiremock-rest-client").is_dir() {
        missing(&format!(
            "the npm package wiremock-rest-client (in {})",
            modules.display()
        ));
    }
    let server = StubServer::start()
        .await
        .expect("starts")
        .verify_on_drop(false);
    server
        .load_dir(fixture())
        .await
        .expect("the mapping files load");
    let script = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/differential/client.js"
    ));
    let url = server.url();
    // The in-process server's generated credentials, handed to the client as a WireMock user
    // hands theirs: a header its options take.
    let authorization = server
        .admin_credentials()
        .expect("an in-process server asks for credentials")
        .authorization();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .arg(&url)
            .env("NODE_PATH", &modules)
            .env("STUB_ADMIN_AUTHORIZATION", authorization)
            .output()
    })
    .await
    .expect("joins")
    .unwrap_or_else(|e| missing(&format!("node ({e})")));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the client failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the client's last line is not JSON ({e}): {stdout}"));

    // getAllRequests: newest first, WireMock's serve events.
    let all = seen["all"]["requests"].as_array().expect("requests listed");
    assert_eq!(all.len(), 3, "{}", seen["all"]);
    assert_eq!(all[0]["request"]["url"], "/missing");
    assert_eq!(all[1]["request"]["url"], "/hello?x=1");
    assert_eq!(all[1]["request"]["headers"]["x-trace"], "t1");
    assert_eq!(all[1]["stubMapping"]["name"], "hello");
    assert_eq!(all[2]["request"]["url"], "/health");
    // findRequests and getCount.
    let found = seen["found"]["requests"]
        .as_array()
        .expect("requests found");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["url"], "/hello?x=1");
    assert_eq!(seen["count"]["count"], 1);
    assert_eq!(seen["unmatched"]["requests"][0]["url"], "/missing");
    assert_eq!(
        seen["near"]["nearMisses"][0]["stubMapping"]["name"],
        "hello"
    );
    assert_eq!(seen["scenarios"]["scenarios"], json!([]));
    // resetAll kept the stubs of the mapping files, as WireMock does.
    assert_eq!(seen["after_reset"]["meta"]["total"], 4);
    assert_eq!(seen["after_reset_requests"]["meta"]["total"], 0);
}
