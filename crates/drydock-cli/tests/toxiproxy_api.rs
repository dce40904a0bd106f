//! `drydock proxy` driven by a published Toxiproxy client (`noxious-client`), as a user's
//! Toxiproxy tooling would drive it; raw requests only where the client cannot say it.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use noxious_client::{error::ClientError, Client, ProxyConfig, StreamDirection, Toxic, ToxicKind};
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// `drydock proxy` on a free port, killed when dropped.
struct Server {
    child: Child,
    api: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Result<Server, Box<dyn std::error::Error + Send + Sync>> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_drydock"))
        .args(["proxy", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let api = line
        .trim()
        .rsplit("http://")
        .next()
        .ok_or_else(|| format!("no address in {line:?}"))?
        .to_owned();
    Ok(Server { child, api })
}

/// Echoes every connection back to itself.
async fn echo_server() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = socket.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            });
        }
    });
    Ok(address)
}

/// One 16-byte exchange over a new connection, timed.
async fn round_trip(address: &str) -> std::io::Result<Duration> {
    let mut socket = TcpStream::connect(address).await?;
    let started = Instant::now();
    socket.write_all(b"drydock says hi!").await?;
    let mut answer = [0u8; 16];
    socket.read_exact(&mut answer).await?;
    assert_eq!(&answer, b"drydock says hi!");
    Ok(started.elapsed())
}

fn api_status(result: Result<impl std::fmt::Debug, ClientError>) -> u16 {
    match result {
        Err(ClientError::ApiError(e)) => e.status_code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn latency(name: &str, millis: u64) -> Toxic {
    Toxic {
        kind: ToxicKind::Latency {
            latency: millis,
            jitter: 0,
        },
        name: name.to_owned(),
        toxicity: 1.0,
        direction: StreamDirection::Downstream,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn toxiproxy_clients_drive_drydock() -> TestResult {
    let server = start_server()?;
    let echo = echo_server().await?.to_string();
    let client = Client::new(&server.api);

    let version: Value = reqwest::get(format!("http://{}/version", server.api))
        .await?
        .json()
        .await?;
    assert!(version["version"].is_string(), "{version}");

    // Create, then read back where it listens (the client keeps what it sent: `:0`).
    client.create_proxy("echo", "127.0.0.1:0", &echo).await?;
    let mut proxy = client.proxy("echo").await?;
    let listen = proxy.config.listen.clone();
    assert_ne!(listen, "127.0.0.1:0");
    assert_eq!(proxy.config.upstream, echo);
    assert!(proxy.config.enabled);
    let fast = round_trip(&listen).await?;

    // A latency toxic, measured through the proxy.
    let added = proxy.add_toxic(&latency("", 150)).await?;
    assert_eq!(added.name, "latency_downstream"); // Toxiproxy's default name
    assert_eq!(added.toxicity, 1.0);
    let slow = round_trip(&listen).await?;
    assert!(
        slow >= Duration::from_millis(150),
        "{slow:?} with 150 ms of latency"
    );
    assert!(fast < Duration::from_millis(100), "{fast:?} without");

    // Update, list, remove.
    let updated = proxy
        .update_toxic(
            "latency_downstream",
            1.0,
            ToxicKind::Latency {
                latency: 40,
                jitter: 0,
            },
            StreamDirection::Downstream,
        )
        .await?;
    assert_eq!(
        updated.kind,
        ToxicKind::Latency {
            latency: 40,
            jitter: 0
        }
    );
    proxy.add_toxic(&latency("more", 10)).await?;
    let names: Vec<String> = proxy.toxics().await?.into_iter().map(|t| t.name).collect();
    assert_eq!(names, ["latency_downstream", "more"]); // in the order they act
    proxy.remove_toxic("latency_downstream").await?;
    proxy.remove_toxic("more").await?;
    assert!(proxy.toxics().await?.is_empty());
    assert!(round_trip(&listen).await? < Duration::from_millis(100));

    // Disabled: refused; enabled: through again.
    proxy.disable().await?;
    assert!(!client.proxy("echo").await?.is_enabled());
    let refused = TcpStream::connect(&listen).await;
    assert_eq!(
        refused.err().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    proxy.enable().await?;
    round_trip(&listen).await?;

    // Reset: every proxy up, every toxic gone.
    proxy.add_toxic(&latency("", 10)).await?;
    proxy.disable().await?;
    client.reset_state().await?;
    let after = client.proxy("echo").await?;
    assert!(after.is_enabled());
    assert!(after.toxics().await?.is_empty());
    round_trip(&listen).await?;

    // Errors, as Toxiproxy answers them.
    assert_eq!(
        api_status(client.create_proxy("echo", "127.0.0.1:0", &echo).await),
        409
    );
    assert_eq!(api_status(client.proxy("nowhere").await), 404);
    let mut bandwidth_zero = latency("", 0);
    bandwidth_zero.kind = ToxicKind::Bandwidth { rate: 0 };
    assert_eq!(api_status(proxy.add_toxic(&bandwidth_zero).await), 400);
    let mut too_toxic = latency("", 1);
    too_toxic.toxicity = 2.0;
    assert_eq!(api_status(proxy.add_toxic(&too_toxic).await), 400);
    proxy.add_toxic(&latency("twice", 1)).await?;
    assert_eq!(api_status(proxy.add_toxic(&latency("twice", 1)).await), 409);
    assert_eq!(api_status(proxy.remove_toxic("never").await), 404);

    // Populate creates or replaces. noxious-client reads its answer as noxious's bare array,
    // not Toxiproxy's {"proxies": [...]}, so its result is not checked: the state is.
    let wanted = |name: &str| ProxyConfig {
        name: name.to_owned(),
        listen: "127.0.0.1:0".to_owned(),
        upstream: echo.clone(),
        enabled: true,
        rand_seed: None,
    };
    let _ = client.populate(&[wanted("one"), wanted("echo")]).await;
    let proxies = client.proxies().await?;
    assert_eq!(proxies.len(), 2, "{proxies:?}"); // echo replaced, one added
    let replaced = &proxies["echo"];
    assert_ne!(replaced.config.listen, listen);
    round_trip(&proxies["one"].config.listen).await?;
    round_trip(&replaced.config.listen).await?;
    assert!(
        TcpStream::connect(&listen).await.is_err(),
        "the old echo proxy stopped"
    );

    // Delete.
    proxies["one"].clone().delete().await?;
    assert_eq!(api_status(client.proxy("one").await), 404);
    Ok(())
}

/// What the client cannot send or read: Toxiproxy's exact answers.
#[tokio::test(flavor = "multi_thread")]
async fn answers_are_toxiproxys() -> TestResult {
    let server = start_server()?;
    let echo = echo_server().await?.to_string();
    let http = reqwest::Client::new();
    let api = |path: &str| format!("http://{}{path}", server.api);
    let post = |path: &str, body: Value| http.post(api(path)).json(&body).send();

    let created = post("/proxies", json!({"name": "p", "upstream": echo})).await?;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await?;
    assert_eq!(created["toxics"], json!([]));
    assert_eq!(created["enabled"], json!(true));

    let toxic = post(
        "/proxies/p/toxics",
        json!({"type": "latency", "stream": "upstream", "attributes": {"latency": 5}}),
    )
    .await?;
    assert_eq!(toxic.status(), 200); // Toxiproxy's, for a new toxic
    assert_eq!(
        toxic.json::<Value>().await?,
        json!({"name": "latency_upstream", "type": "latency", "stream": "upstream",
               "toxicity": 1.0, "attributes": {"latency": 5, "jitter": 0}})
    );

    let error = |status: u16, needle: &'static str| {
        move |answer: Value| {
            assert_eq!(answer["status"], json!(status), "{answer}");
            let message = answer["error"].as_str().unwrap_or_default().to_owned();
            assert!(
                message.contains(needle),
                "{message:?} should say {needle:?}"
            );
        }
    };
    let cases = [
        (
            post("/proxies", json!({"name": "p", "upstream": echo})).await?,
            409,
            "proxy already exists",
        ),
        (
            post("/proxies", json!({"upstream": echo})).await?,
            400,
            "missing required field: name",
        ),
        (
            post("/proxies", json!({"name": "q"})).await?,
            400,
            "missing required field: upstream",
        ),
        (
            post("/proxies/nope/toxics", json!({"type": "latency"})).await?,
            404,
            "proxy not found",
        ),
        (
            post("/proxies/p/toxics", json!({"type": "teleport"})).await?,
            400,
            "invalid toxic type",
        ),
        (
            post(
                "/proxies/p/toxics",
                json!({"type": "latency", "attributes": {"latency": -5}}),
            )
            .await?,
            400,
            "attributes.latency",
        ),
        (
            post(
                "/proxies/p/toxics",
                json!({"type": "latency", "stream": "up"}),
            )
            .await?,
            400,
            "stream",
        ),
        (
            post(
                "/proxies/p/toxics",
                json!({"type": "latency", "stream": "upstream"}),
            )
            .await?,
            409,
            "toxic already exists",
        ),
        (
            post("/proxies/p/toxics/nope", json!({})).await?,
            404,
            "toxic not found",
        ),
        (
            http.post(api("/proxies")).body("{not json").send().await?,
            400,
            "bad request body",
        ),
        (
            post(
                "/proxies",
                json!({"name": "taken", "listen": created["listen"], "upstream": echo}),
            )
            .await?,
            400,
            "listen",
        ),
    ];
    for (answer, status, needle) in cases {
        assert_eq!(answer.status(), status);
        error(status, needle)(answer.json().await?);
    }

    let populated = post(
        "/populate",
        json!([{"name": "a", "upstream": echo}, {"name": "p", "upstream": echo, "enabled": false}]),
    )
    .await?;
    assert_eq!(populated.status(), 201);
    let populated: Value = populated.json().await?;
    let names: Vec<&str> = populated["proxies"]
        .as_array()
        .map(|list| list.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["a", "p"]);
    assert_eq!(populated["proxies"][1]["enabled"], json!(false));
    let bad = post(
        "/populate",
        json!([{"name": "b", "upstream": echo}, {"name": "c"}]),
    )
    .await?;
    assert_eq!(bad.status(), 400);
    error(400, "upstream at proxy 2")(bad.json().await?);

    let reset = http.post(api("/reset")).send().await?;
    assert_eq!(reset.status(), 204);
    let all: Value = http.get(api("/proxies")).send().await?.json().await?;
    assert_eq!(all["p"]["enabled"], json!(true));

    let deleted = http.delete(api("/proxies/p")).send().await?;
    assert_eq!(deleted.status(), 204);
    let browser = http
        .get(api("/proxies"))
        .header("User-Agent", "Mozilla/5.0")
        .send()
        .await?;
    assert_eq!(browser.status(), 403);
    Ok(())
}
