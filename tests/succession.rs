//! A keeper's successor: when the keeper of a shared environment is killed, the keeper that
//! follows it adopts the environment and every slice the dead one recorded — a test's, the
//! run's (`drydock up`), a failed test's kept for a look — with Kafka and a stub among the
//! services, and cuts every later slice apart from them.
//!
//! The processes of one run are child processes of the test below (each joins the run through
//! `DRYDOCK_RUN_ID`); `SUCCESSION_TAG` names the stub, which makes the environment this test's
//! own, and `SUCCESSION_DIR` is where they leave what the test reads.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use drydock::{
    rdkafka::consumer::{BaseConsumer, Consumer},
    stub::{Response, Stub},
    Env, EnvBuilder, HttpStub, Kafka, Redis, ServiceExt, Slice, TestResult,
};
use drydock_tests::{assert_child_passed, keeper_of, labelled, run_child, signal};

const GRACE: Duration = Duration::from_secs(2);
const CHILD_BOUND: Duration = Duration::from_secs(120);

fn tag() -> String {
    std::env::var("SUCCESSION_TAG").unwrap_or_default()
}

fn stub_name(tag: &str) -> String {
    format!("stub-{tag}")
}

/// The environment of the test below: few Redis databases, so that one handed out twice
/// shows; Kafka; a stub named by the tag.
fn succession_env_of(tag: &str) -> EnvBuilder {
    Env::builder()
        .with_redis(Redis::default().databases(6))
        .with_kafka(Kafka::default())
        .with_stub(HttpStub::default().named(stub_name(tag)))
        .grace_period(GRACE)
}

fn succession_env() -> EnvBuilder {
    succession_env_of(&tag())
}

fn shared_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("SUCCESSION_DIR").unwrap_or_default())
}

/// What identifies a slice's parts: its Redis database, stub namespace and topic prefix.
fn parts_of(slice: &Slice) -> drydock::Result<serde_json::Value> {
    Ok(serde_json::json!({
        "instance": slice.instance_id(),
        "redis": slice.redis()?.db(),
        "namespace": slice.named::<HttpStub>(&stub_name(&tag()))?.namespace(),
        "prefix": slice.kafka()?.prefix(),
    }))
}

/// `drydock up`'s part: a slice held for the run, its variables printed.
#[tokio::test]
#[ignore = "run by a_successor_takes_over_every_slice_the_killed_keeper_held"]
async fn child_holds_for_the_run() -> TestResult {
    let held = drydock::shared::hold(succession_env()).await?;
    for (name, value) in &held.vars {
        println!("HELD {name}={value}");
    }
    Ok(())
}

/// A failed test whose slice `DRYDOCK_KEEP=on-failure` keeps for a look.
#[drydock::test(env = succession_env)]
#[ignore = "run by a_successor_takes_over_every_slice_the_killed_keeper_held"]
async fn child_fails_and_is_kept(slice: &Slice) -> TestResult {
    std::fs::write(shared_dir().join("kept.json"), parts_of(slice)?.to_string())?;
    Err("failing, so that its slice is kept".into())
}

/// A test that holds its slice while its keeper is killed and a successor takes over, and
/// uses it before and after.
#[tokio::test]
#[ignore = "run by a_successor_takes_over_every_slice_the_killed_keeper_held"]
async fn child_uses_its_slice_across_the_succession() -> TestResult {
    let slice = succession_env().attach().await?;
    let kafka = slice.kafka()?;
    let topic = kafka.create_topic("orders", 1).await?;
    let stub = slice
        .named::<HttpStub>(&stub_name(&tag()))?
        .connect()
        .await?;
    stub.mount(Stub::get("/who").respond(Response::status(200).body("held across")))
        .await?;
    let mut parts = parts_of(&slice)?;
    parts["topic"] = topic.clone().into();
    std::fs::write(shared_dir().join("across.json"), parts.to_string())?;

    let go = shared_dir().join("go");
    let deadline = Instant::now() + Duration::from_secs(90);
    while !go.exists() {
        assert!(Instant::now() < deadline, "no go within 90 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Each part still works, through the successor's time.
    kafka.produce(&topic, "k", b"after", &[]).await?;
    let url = slice.named::<HttpStub>(&stub_name(&tag()))?.url();
    let answer = reqwest::get(format!("{url}/who")).await?.text().await?;
    assert_eq!(answer, "held across");
    let mut redis = slice.redis()?.connection_manager().await?;
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut redis)
        .await?;
    Ok(())
}

/// A test that attaches after the keeper was killed: its attach starts the successor.
#[tokio::test]
#[ignore = "run by a_successor_takes_over_every_slice_the_killed_keeper_held"]
async fn child_attaches_after_the_succession() -> TestResult {
    let slice = succession_env().attach().await?;
    std::fs::write(
        shared_dir().join("after.json"),
        parts_of(&slice)?.to_string(),
    )?;
    Ok(())
}

fn read_parts(dir: &Path, name: &str) -> TestResult<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join(name))
        .map_err(|e| format!("{name} not written by its child: {e}"))?;
    Ok(serde_json::from_str(&text)?)
}

/// Waits until `check` holds, or fails naming `what` after `bound`.
async fn eventually(
    what: &str,
    bound: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> TestResult {
    let deadline = Instant::now() + bound;
    while !check().await {
        if Instant::now() >= deadline {
            return Err(format!("not within {bound:?}: {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Ends the run however the test ends: a failed test's kept slice would otherwise outlive it.
struct DownAtEnd(String);

impl Drop for DownAtEnd {
    fn drop(&mut self) {
        if let Err(e) = drydock::shared::down(&self.0, None) {
            eprintln!("drydock down --run {}: {e}", self.0);
        }
    }
}

#[tokio::test]
async fn a_successor_takes_over_every_slice_the_killed_keeper_held() -> TestResult {
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let run = format!("succession-{tag}");
    let _down = DownAtEnd(run.clone());
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path().to_string_lossy().into_owned();
    let owner = std::process::id().to_string();
    let env = [
        ("DRYDOCK_RUN_ID", Some(run.as_str())),
        ("DRYDOCK_RUN_OWNER", Some(owner.as_str())),
        ("SUCCESSION_TAG", Some(tag.as_str())),
        ("SUCCESSION_DIR", Some(dir.as_str())),
        ("DRYDOCK_KEEP", None),
    ];

    // The run's slice, and a failed test's kept for a look.
    let output = run_child("child_holds_for_the_run", &env, CHILD_BOUND);
    assert_child_passed("child_holds_for_the_run", &output);
    let held: HashMap<String, String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        // Anywhere in a line: the harness's "test … " may precede the first.
        .filter_map(|l| l.split_once("HELD ")?.1.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut keeping = env.to_vec();
    keeping.push(("DRYDOCK_KEEP", Some("on-failure")));
    let output = run_child("child_fails_and_is_kept", &keeping, CHILD_BOUND);
    assert!(!output.status.success(), "the kept child passed");
    let kept = read_parts(scratch.path(), "kept.json")?;

    // A test holds its slice while the keeper is killed.
    let across_child = tokio::task::spawn_blocking({
        let env: Vec<(String, Option<String>)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
            .collect();
        move || {
            let env: Vec<(&str, Option<&str>)> = env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_deref()))
                .collect();
            run_child(
                "child_uses_its_slice_across_the_succession",
                &env,
                CHILD_BOUND,
            )
        }
    });
    eventually(
        "the holding child's slice",
        Duration::from_secs(60),
        async || scratch.path().join("across.json").exists(),
    )
    .await?;
    let across = read_parts(scratch.path(), "across.json")?;
    let identity = succession_env_of(&tag).identity()?;
    let killed = keeper_of(&identity).ok_or("no keeper of the environment")?;
    signal(killed.pid, "-KILL")?;

    // The next attach starts a successor, which adopts the environment.
    let output = run_child("child_attaches_after_the_succession", &env, CHILD_BOUND);
    assert_child_passed("child_attaches_after_the_succession", &output);
    let after = read_parts(scratch.path(), "after.json")?;
    std::fs::write(scratch.path().join("go"), "")?;
    let output = across_child.await?;
    assert_child_passed("child_uses_its_slice_across_the_succession", &output);

    assert_eq!(
        after["instance"], across["instance"],
        "adopted, not started anew"
    );
    let successor = keeper_of(&identity).ok_or("no successor")?;
    assert_ne!(successor.pid, killed.pid);
    assert_eq!(
        successor.held, 1,
        "the run's slice, held again: {successor:?}"
    );
    assert_eq!(successor.kept.len(), 1, "{successor:?}");
    assert!(
        successor.kept[0].ends_with("child_fails_and_is_kept"),
        "{successor:?}"
    );
    // Every part the successor cut after is apart from those the dead keeper handed out.
    let held_db: u64 = held["REDIS_URL"].rsplit('/').next().unwrap_or("").parse()?;
    let held_stub_url = &held[&format!(
        "{}_STUB_URL",
        stub_name(&tag).to_uppercase().replace('-', "_")
    )];
    let (stub_root, held_namespace) = held_stub_url
        .rsplit_once("/__ns/")
        .ok_or("no namespace in the held stub URL")?;
    for (whose, parts) in [("kept", &kept), ("held across", &across)] {
        for part in ["redis", "namespace", "prefix"] {
            assert_ne!(
                after[part], parts[part],
                "{part} of the {whose} slice handed out again"
            );
        }
    }
    assert_ne!(
        after["redis"], held_db,
        "the run's Redis database handed out again"
    );
    assert_ne!(
        after["prefix"],
        held["KAFKA_TOPIC_PREFIX"].as_str(),
        "the run's prefix again"
    );
    assert_ne!(
        after["namespace"], held_namespace,
        "the run's namespace handed out again"
    );

    // Once the holding test ended, the successor gave its slice back: topics deleted,
    // namespace removed.
    let bootstrap = held
        .get("KAFKA_BOOTSTRAP_SERVERS")
        .ok_or_else(|| format!("no KAFKA_BOOTSTRAP_SERVERS among the run's: {held:?}"))?;
    let topic = across["topic"].as_str().unwrap_or_default().to_string();
    let metadata: BaseConsumer = drydock::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    eventually(
        "the held-across slice's topic deleted",
        Duration::from_secs(20),
        async || {
            metadata
                .fetch_metadata(None, Duration::from_secs(5))
                .is_ok_and(|m| m.topics().iter().all(|t| t.name() != topic))
        },
    )
    .await?;
    let namespace = across["namespace"].as_str().unwrap_or_default().to_string();
    eventually(
        "the held-across slice's namespace removed",
        Duration::from_secs(20),
        async || {
            let answer = reqwest::get(format!("{stub_root}/__ns/{namespace}/who")).await;
            answer.is_ok_and(|a| a.status() != 200)
        },
    )
    .await?;

    // `drydock down` removes everything of the run.
    let ended = tokio::task::spawn_blocking({
        let run = run.clone();
        move || drydock::shared::down(&run, None)
    })
    .await??;
    assert_eq!(ended.len(), 1, "{ended:?}");
    let label = format!("drydock.run={run}");
    eventually(
        "the run's containers removed",
        Duration::from_secs(30),
        async || labelled(&label).await.is_ok_and(|left| left.is_empty()),
    )
    .await
}
