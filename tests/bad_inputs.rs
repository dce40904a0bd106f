//! Every bad input drydock can be given, in one table: each must fail within a bound with a
//! message naming the setting, file or value and what to do, and leave nothing behind.
//!
//! Each case runs in a child process of its own (this binary, re-executed) with a run id of its
//! own (`DRYDOCK_RUN_ID`): process-wide settings (`DRYDOCK_BIND_IP`, `TMPDIR`, …) change only
//! there, cases run concurrently without seeing each other's containers, and "nothing left
//! behind" is asked of the Docker API by that run's label. `drydock` CLI cases run its binary.

use std::{
    future::Future,
    path::{Path, PathBuf},
    pin::Pin,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use drydock::{
    fault::{FaultProxy, Toxic},
    stub::{StringMatcher, Stub, StubServer},
    testcontainers::{
        core::{ContainerPort, WaitFor},
        GenericImage, ImageExt,
    },
    Container, Env, HttpStub, KafkaServer, Postgres, Readiness, Redis, ServiceExt,
};
use drydock_tests::labelled;

type Outcome = Pin<Box<dyn Future<Output = drydock::TestResult> + Send>>;

/// How long one case may take, from spawning its process to its error.
const BOUND: Duration = Duration::from_secs(30);
/// How long what a case started may take to go once it failed (a shared environment's keeper
/// removes it after its grace period).
const GONE_WITHIN: Duration = Duration::from_secs(15);
/// Cases run at once (a 2-core machine runs the whole table).
const PARALLEL: usize = 6;

/// The image in code counts only with no `DRYDOCK_IMAGE_<SERVICE>` (scripts/env sets them).
const IN_CODE_REDIS: &[(&str, Option<&str>)] = &[("DRYDOCK_IMAGE_REDIS", None)];
const IN_CODE_POSTGRES: &[(&str, Option<&str>)] = &[("DRYDOCK_IMAGE_POSTGRES", None)];

/// How a case is run.
enum Run {
    /// A library call in a child process: it must return an error.
    Lib(fn() -> Outcome),
    /// The `drydock` binary with these arguments: it must fail.
    Cli(&'static [&'static str]),
    /// This test binary listing its tests (`--list`, as nextest does): it must succeed.
    List,
}

struct Case {
    name: &'static str,
    /// Variables set (`Some`) or removed (`None`) for the case's process; `{scratch}` in a
    /// value is a fresh directory of the case's own.
    env: &'static [(&'static str, Option<&'static str>)],
    run: Run,
    /// What the message must say, besides `to fix`.
    says: &'static [&'static str],
}

const fn lib(name: &'static str, run: fn() -> Outcome, says: &'static [&'static str]) -> Case {
    Case {
        name,
        env: &[],
        run: Run::Lib(run),
        says,
    }
}

const fn lib_env(
    name: &'static str,
    env: &'static [(&'static str, Option<&'static str>)],
    run: fn() -> Outcome,
    says: &'static [&'static str],
) -> Case {
    Case {
        name,
        env,
        run: Run::Lib(run),
        says,
    }
}

const fn cli(
    name: &'static str,
    args: &'static [&'static str],
    says: &'static [&'static str],
) -> Case {
    Case {
        name,
        env: &[],
        run: Run::Cli(args),
        says,
    }
}

fn boxed(f: impl Future<Output = drydock::TestResult> + Send + 'static) -> Outcome {
    Box::pin(f)
}

/// Starts an owned environment; its error is the case's.
fn start(builder: drydock::EnvBuilder) -> Outcome {
    boxed(async move {
        builder.start().await?;
        Ok(())
    })
}

/// Attaches to a shared environment; its error is the case's.
fn attach(builder: drydock::EnvBuilder) -> Outcome {
    boxed(async move {
        builder.attach().await?;
        Ok(())
    })
}

fn redis_with_image(image: &str) -> Outcome {
    start(Env::builder().with_redis(Redis::default().image(image)))
}

fn bad_toxic(toxic: Toxic) -> Outcome {
    boxed(async move {
        toxic.validate()?;
        Ok(())
    })
}

fn bad_topic(name: &'static str, partitions: i32) -> Outcome {
    boxed(async move {
        // The check comes before any request: no broker is needed, and none answers here.
        KafkaServer::external("127.0.0.1:1")
            .slice()
            .create_topic(name, partitions)
            .await?;
        Ok(())
    })
}

/// A directory of migrations written for the case, kept until the process ends.
fn migrations(files: &[(&str, &str)]) -> PathBuf {
    let dir = scratch().join(format!("migrations-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    dir
}

/// The case's own directory (the parent makes it; see `{scratch}`).
fn scratch() -> PathBuf {
    std::env::var_os("BAD_INPUT_SCRATCH")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn debian(cmd: &[&str]) -> drydock::testcontainers::ContainerRequest<GenericImage> {
    GenericImage::new("drydock.local/debian", "bookworm")
        .with_cmd(cmd.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

fn uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0)
}

/// The table. Order does not matter; names must be unique.
fn cases() -> Vec<Case> {
    vec![
        // ---- image references, from code and from the environment ----
        lib_env(
            "image_empty",
            IN_CODE_REDIS,
            || redis_with_image(""),
            &["\"\"", "from code", "it is empty"],
        ),
        lib_env(
            "image_empty_tag",
            IN_CODE_REDIS,
            || redis_with_image("redis:"),
            &["\"redis:\"", "tag after ':' is empty"],
        ),
        lib_env(
            "image_upper_case",
            IN_CODE_REDIS,
            || redis_with_image("Redis:7"),
            &["\"Redis:7\"", "lower-case"],
        ),
        lib_env(
            "image_digest",
            IN_CODE_REDIS,
            || redis_with_image("redis@sha256:abc"),
            &["redis@sha256:abc", "digest"],
        ),
        lib_env(
            "image_white_space",
            IN_CODE_REDIS,
            || redis_with_image("redis 7"),
            &["\"redis 7\"", "white space"],
        ),
        lib_env(
            "image_bad_tag",
            IN_CODE_REDIS,
            || redis_with_image("redis:-7"),
            &["\"redis:-7\"", "the tag may hold"],
        ),
        lib_env(
            "image_no_repository",
            IN_CODE_REDIS,
            || redis_with_image("drydock.local/:7"),
            &["drydock.local/:7", "repository"],
        ),
        lib_env(
            "image_env_empty_tag",
            &[("DRYDOCK_IMAGE_REDIS", Some("redis:"))],
            || start(Env::builder().with_redis(Redis::default())),
            &["DRYDOCK_IMAGE_REDIS", "\"redis:\"", "tag"],
        ),
        lib_env(
            "image_env_missing",
            &[("DRYDOCK_IMAGE_REDIS", Some("drydock.local/no-such-redis:1"))],
            || start(Env::builder().with_redis(Redis::default())),
            &[
                "drydock.local/no-such-redis:1",
                "could not be pulled",
                "DRYDOCK_IMAGE_REDIS=<image>",
            ],
        ),
        lib_env(
            "image_missing_in_code",
            IN_CODE_POSTGRES,
            || {
                start(
                    Env::builder().with_postgres(
                        Postgres::default().image("drydock.local/no-such-postgres:1"),
                    ),
                )
            },
            &[
                "drydock.local/no-such-postgres:1",
                "for postgres",
                "DRYDOCK_IMAGE_POSTGRES=<image>",
            ],
        ),
        lib_env(
            "image_env_for_own_container_missing",
            &[("DRYDOCK_IMAGE_MY_APP", Some("drydock.local/no-such-app:1"))],
            || {
                start(
                    Env::builder()
                        .with_container(Container::from_image("my-app", debian(&["sleep", "60"]))),
                )
            },
            &[
                "drydock.local/no-such-app:1",
                "DRYDOCK_IMAGE_MY_APP=<image>",
            ],
        ),
        // ---- a service on an image that is not that service ----
        lib_env(
            "postgres_on_a_redis_image",
            IN_CODE_POSTGRES,
            || {
                start(
                    Env::builder().with_postgres(
                        Postgres::default()
                            .image("drydock.local/redis:7")
                            .ready_timeout(Duration::from_secs(5)),
                    ),
                )
            },
            &[
                "postgres",
                "drydock.local/redis:7",
                "last lines of the postgres container's log",
            ],
        ),
        lib_env(
            "postgres_on_an_image_that_exits",
            IN_CODE_POSTGRES,
            || {
                start(
                    Env::builder()
                        .with_postgres(Postgres::default().image("drydock.local/debian:bookworm")),
                )
            },
            &[
                "starting the postgres container from `drydock.local/debian:bookworm`",
                "\"postgres\": executable file not found",
            ],
        ),
        lib_env(
            "redis_on_a_postgres_image",
            IN_CODE_REDIS,
            || {
                start(
                    Env::builder().with_redis(
                        Redis::default()
                            .image("drydock.local/postgres:17")
                            .ready_timeout(Duration::from_secs(5)),
                    ),
                )
            },
            &[
                "the redis container (`drydock.local/postgres:17`) exited",
                "container's log",
            ],
        ),
        // ---- the engine and where ports go ----
        lib_env(
            "docker_host_closed_port",
            &[("DOCKER_HOST", Some("tcp://127.0.0.1:1"))],
            || start(Env::builder().with_redis(Redis::default())),
            &[
                "no Docker engine answered",
                "tcp://127.0.0.1:1",
                "DOCKER_HOST",
            ],
        ),
        lib_env(
            "docker_host_missing_socket",
            &[("DOCKER_HOST", Some("unix:///nonexistent/docker.sock"))],
            || start(Env::builder().with_redis(Redis::default())),
            &["no Docker engine answered", "/nonexistent/docker.sock"],
        ),
        lib_env(
            "docker_tls_without_certificates",
            &[
                ("DOCKER_HOST", Some("tcp://127.0.0.1:2376")),
                ("DOCKER_TLS_VERIFY", Some("1")),
                ("DOCKER_CERT_PATH", Some("{scratch}/no-certs")),
            ],
            || start(Env::builder().with_redis(Redis::default())),
            &["DOCKER_CERT_PATH", "no-certs"],
        ),
        lib_env(
            "bind_ip_not_an_address",
            &[("DRYDOCK_BIND_IP", Some("not-an-ip"))],
            || start(Env::builder().with_redis(Redis::default())),
            &["DRYDOCK_BIND_IP=\"not-an-ip\"", "not an IP address"],
        ),
        lib_env(
            "bind_ip_with_a_port",
            &[("DRYDOCK_BIND_IP", Some("127.0.0.1:5000"))],
            || start(Env::builder().with_redis(Redis::default())),
            &["DRYDOCK_BIND_IP=\"127.0.0.1:5000\"", "not an IP address"],
        ),
        lib_env(
            "bind_ip_not_of_this_machine",
            &[("DRYDOCK_BIND_IP", Some("192.0.2.1"))],
            || start(Env::builder().with_redis(Redis::default())),
            &[
                "DRYDOCK_BIND_IP=\"192.0.2.1\"",
                "not an address of this machine",
            ],
        ),
        lib_env(
            "host_with_a_scheme",
            &[("DRYDOCK_HOST", Some("tcp://127.0.0.1"))],
            || start(Env::builder().with_redis(Redis::default())),
            &["DRYDOCK_HOST=\"tcp://127.0.0.1\"", "scheme"],
        ),
        lib_env(
            "host_with_a_port",
            &[("DRYDOCK_HOST", Some("localhost:2375"))],
            || start(Env::builder().with_redis(Redis::default())),
            &["DRYDOCK_HOST=\"localhost:2375\"", "port"],
        ),
        lib_env(
            "host_not_a_name",
            &[("DRYDOCK_HOST", Some("not a host!"))],
            || start(Env::builder().with_redis(Redis::default())),
            &["DRYDOCK_HOST=\"not a host!\"", "not a host name"],
        ),
        lib_env(
            "testcontainers_host_override_not_a_name",
            &[("TESTCONTAINERS_HOST_OVERRIDE", Some("a..b"))],
            || start(Env::builder().with_redis(Redis::default())),
            &["TESTCONTAINERS_HOST_OVERRIDE=\"a..b\"", "not a host name"],
        ),
        // ---- shared environments: settings, directories ----
        lib(
            "grace_period_zero",
            || {
                attach(
                    Env::builder()
                        .with_redis(Redis::default())
                        .grace_period(Duration::ZERO),
                )
            },
            &["grace_period(0ns)", "at least"],
        ),
        lib_env(
            "max_idle_not_a_duration",
            &[("DRYDOCK_MAX_IDLE", Some("forever"))],
            || attach(Env::builder().with_redis(Redis::default())),
            &["DRYDOCK_MAX_IDLE=\"forever\"", "not a duration"],
        ),
        lib_env(
            "max_idle_zero",
            &[("DRYDOCK_MAX_IDLE", Some("0"))],
            || attach(Env::builder().with_redis(Redis::default())),
            &["DRYDOCK_MAX_IDLE=\"0\"", "more than zero"],
        ),
        lib_env(
            "tmpdir_missing",
            &[
                ("TMPDIR", Some("{scratch}/missing/deeper")),
                ("XDG_RUNTIME_DIR", None),
            ],
            || {
                boxed(async {
                    let outcome = Env::builder().with_redis(Redis::default()).attach().await;
                    // Reported, not created (as root, creating it would make a root-owned tree).
                    assert!(
                        !scratch().join("missing").exists(),
                        "the missing TMPDIR was created"
                    );
                    outcome?;
                    Ok(())
                })
            },
            &["missing/deeper", "does not exist", "TMPDIR"],
        ),
        lib_env(
            "xdg_runtime_dir_missing",
            &[("XDG_RUNTIME_DIR", Some("{scratch}/no-runtime-dir"))],
            || {
                boxed(async {
                    let outcome = Env::builder().with_redis(Redis::default()).attach().await;
                    assert!(!scratch().join("no-runtime-dir").exists(), "it was created");
                    outcome?;
                    Ok(())
                })
            },
            &["no-runtime-dir", "does not exist", "XDG_RUNTIME_DIR"],
        ),
        lib_env(
            "base_dir_writable_by_others",
            &[("TMPDIR", Some("{scratch}")), ("XDG_RUNTIME_DIR", None)],
            || {
                boxed(async {
                    use std::os::unix::fs::PermissionsExt;
                    // As if someone else had made it first, open to all.
                    let base = scratch().join(format!("drydock-{}", uid()));
                    std::fs::create_dir(&base)?;
                    std::fs::set_permissions(&base, std::fs::Permissions::from_mode(0o777))?;
                    Env::builder().with_redis(Redis::default()).attach().await?;
                    Ok(())
                })
            },
            &[
                "drydock-",
                "mode 777",
                "not private",
                "remove that directory",
            ],
        ),
        // ---- PostgreSQL schemas ----
        lib(
            "migrations_dir_missing",
            || {
                start(
                    Env::builder()
                        .with_postgres(Postgres::default().migrations("no/such/migrations")),
                )
            },
            &["migrations", "no/such/migrations", "does not exist"],
        ),
        lib(
            "migration_versions_duplicate",
            || {
                let dir = migrations(&[
                    ("1_orders.sql", "CREATE TABLE orders (id int);"),
                    ("1_users.sql", "CREATE TABLE users (id int);"),
                ]);
                start(Env::builder().with_postgres(Postgres::default().migrations(dir)))
            },
            &["1_orders.sql", "1_users.sql", "version 1"],
        ),
        lib(
            "migration_syntax_error",
            || {
                let dir = migrations(&[
                    ("1_orders.sql", "CREATE TABLE orders (id int);"),
                    ("2_broken.sql", "CREATE TABLE broken (id int"),
                ]);
                start(Env::builder().with_postgres(Postgres::default().migrations(dir)))
            },
            &["2_broken.sql", "syntax error", "SQLSTATE 42601"],
        ),
        lib(
            "migration_syntax_error_shared",
            || {
                let dir = migrations(&[("1_broken.sql", "CREATE TABLE broken (id int")]);
                attach(
                    Env::builder()
                        .with_postgres(Postgres::default().migrations(dir))
                        .grace_period(Duration::from_millis(200)),
                )
            },
            &[
                "shared environment",
                "1_broken.sql",
                "syntax error",
                "keeper's log",
            ],
        ),
        lib(
            "fixture_missing",
            || start(Env::builder().with_postgres(Postgres::default().fixture("no/such/seed.sql"))),
            &["fixture", "no/such/seed.sql", "does not exist"],
        ),
        lib(
            "fixture_refers_to_a_missing_table",
            || {
                let dir = migrations(&[("seed.sql", "INSERT INTO nowhere VALUES (1);")]);
                start(
                    Env::builder().with_postgres(Postgres::default().fixture(dir.join("seed.sql"))),
                )
            },
            &["seed.sql", "nowhere", "does not exist"],
        ),
        // ---- Redis ----
        lib(
            "redis_no_databases",
            || start(Env::builder().with_redis(Redis::default().databases(0))),
            &["databases(0)", "at least one"],
        ),
        lib(
            "redis_no_databases_shared",
            || {
                attach(
                    Env::builder()
                        .with_redis(Redis::default().databases(0))
                        .grace_period(Duration::from_millis(200)),
                )
            },
            &["databases(0)", "at least one"],
        ),
        lib(
            "redis_databases_exhausted",
            || {
                boxed(async {
                    let spec = Env::builder()
                        .with_redis(
                            Redis::default()
                                .databases(1)
                                .lease_timeout(Duration::from_secs(1)),
                        )
                        .grace_period(Duration::from_millis(200));
                    let _first = spec.clone().attach().await?;
                    spec.attach().await?;
                    Ok(())
                })
            },
            &[
                "no slice of the shared environment",
                "a free Redis database (all 1 are leased",
                "held by slice 0 (database 0)",
                "slice 0 by pid",
                "Redis::databases(..) (1 now)",
            ],
        ),
        // ---- containers of one's own ----
        lib(
            "container_depends_on_a_missing_service",
            || {
                start(Env::builder().with_container(
                    Container::from_image("app", debian(&["sleep", "60"])).depends_on("queue"),
                ))
            },
            &[
                "service app",
                "depends on `queue`",
                "not in the environment",
            ],
        ),
        lib(
            "containers_depend_in_a_circle",
            || {
                start(
                    Env::builder()
                        .with_container(
                            Container::from_image("a", debian(&["sleep", "60"])).depends_on("b"),
                        )
                        .with_container(
                            Container::from_image("b", debian(&["sleep", "60"])).depends_on("a"),
                        ),
                )
            },
            &["depend on each other in a circle", "a, b"],
        ),
        lib(
            "container_image_waits_for_a_log_line",
            || {
                start(
                    Env::builder().with_container(Container::from_image(
                        "waits",
                        GenericImage::new("drydock.local/debian", "bookworm")
                            .with_wait_for(WaitFor::message_on_stdout("ready")),
                    )),
                )
            },
            &["service waits", "drydock cannot carry", "Readiness::log"],
        ),
        lib(
            "container_exits_at_once",
            || {
                start(
                    Env::builder().with_container(
                        Container::from_image(
                            "quitter",
                            debian(&["sh", "-c", "echo giving up; exit 3"]),
                        )
                        .ready_when(Readiness::tcp(80)),
                    ),
                )
            },
            &["quitter container", "exited with code 3", "giving up"],
        ),
        lib(
            "container_never_listens",
            || {
                start(
                    Env::builder().with_container(
                        Container::from_image(
                            "silent",
                            GenericImage::new("drydock.local/debian", "bookworm")
                                .with_exposed_port(ContainerPort::Tcp(8080))
                                .with_cmd(["sleep", "60"]),
                        )
                        .ready_when(Readiness::tcp(8080))
                        .ready_timeout(Duration::from_secs(2)),
                    ),
                )
            },
            &["silent was not ready", "8080", "ready_timeout"],
        ),
        lib(
            "container_name_not_a_name",
            || {
                start(
                    Env::builder()
                        .with_container(Container::from_image("my app!", debian(&["sleep", "60"]))),
                )
            },
            &["\"my app!\"", "cannot name a service", "such as `my-app`"],
        ),
        lib(
            "service_names_that_would_share_variables",
            || {
                start(
                    Env::builder()
                        .with_redis(Redis::default().named("pay-ments"))
                        .with_redis(Redis::default().named("PAY_MENTS")),
                )
            },
            &[
                "\"pay-ments\"",
                "\"PAY_MENTS\"",
                "share",
                "PAY_MENTS_",
                "another name",
            ],
        ),
        lib(
            "service_name_taken_by_another_kind",
            || {
                start(
                    Env::builder()
                        .with_postgres(Postgres::default())
                        .with_redis(Redis::default().named("postgres")),
                )
            },
            &[
                "two services are named \"postgres\"",
                "a postgres and a redis",
                "another name",
            ],
        ),
        lib(
            "service_name_not_a_name",
            || start(Env::builder().with_redis(Redis::default().named("cache/eu"))),
            &["\"cache/eu\"", "cannot name a service", "`.named(..)`"],
        ),
        // ---- handles asked of an environment that lacks them ----
        lib(
            "service_not_in_the_environment",
            || {
                boxed(async {
                    let env = Env::builder().with_redis(Redis::default()).start().await?;
                    env.postgres()?;
                    Ok(())
                })
            },
            &[
                "no postgres service (it has: redis (redis))",
                "with_postgres",
            ],
        ),
        lib(
            "service_of_another_type",
            || {
                boxed(async {
                    let env = Env::builder().with_redis(Redis::default()).start().await?;
                    env.container("redis")?;
                    Ok(())
                })
            },
            &["redis is a", "not a", "ask for redis as"],
        ),
        // ---- fault proxies and toxics ----
        lib(
            "toxic_bandwidth_zero",
            || bad_toxic(Toxic::bandwidth(0)),
            &["bandwidth", "above 0"],
        ),
        lib(
            "toxic_toxicity_above_one",
            || bad_toxic(Toxic::latency(Duration::from_millis(5)).toxicity(1.5)),
            &["toxicity 1.5", "probability"],
        ),
        lib(
            "toxic_toxicity_negative",
            || bad_toxic(Toxic::latency(Duration::from_millis(5)).toxicity(-0.1)),
            &["toxicity -0.1", "probability"],
        ),
        lib(
            "toxic_toxicity_nan",
            || bad_toxic(Toxic::reset_peer(Duration::ZERO).toxicity(f64::NAN)),
            &["toxicity NaN", "probability"],
        ),
        lib(
            "toxic_slicer_zero",
            || bad_toxic(Toxic::slicer(0)),
            &["slicer average_size", "above 0"],
        ),
        lib(
            "toxic_slicer_variation_too_large",
            || bad_toxic(Toxic::slicer(10).size_variation(10)),
            &["size_variation 10", "below average_size 10"],
        ),
        lib(
            "toxic_added_twice",
            || {
                boxed(async {
                    let server = StubServer::start().await?;
                    let address = server
                        .url()
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_string();
                    let proxy = FaultProxy::start("api", address)?;
                    let _first = proxy.add(Toxic::latency(Duration::from_millis(5)))?;
                    let _second = proxy.add(Toxic::latency(Duration::from_millis(9)))?;
                    Ok(())
                })
            },
            &["fault proxy api", "already in place", ".named(..)"],
        ),
        lib(
            "toxic_removed_that_is_not_there",
            || {
                boxed(async {
                    let server = StubServer::start().await?;
                    let address = server
                        .url()
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_string();
                    let proxy = FaultProxy::start("api", address)?;
                    proxy.remove("nonesuch")?;
                    Ok(())
                })
            },
            &["no toxic named nonesuch"],
        ),
        lib(
            "fault_proxy_to_a_dead_upstream",
            || {
                boxed(async {
                    let port = std::net::TcpListener::bind("127.0.0.1:0")?
                        .local_addr()?
                        .port();
                    FaultProxy::start("db", format!("127.0.0.1:{port}"))?;
                    Ok(())
                })
            },
            &[
                "fault proxy db",
                "nothing accepts connections",
                "start the server before the proxy",
            ],
        ),
        lib(
            "fault_proxy_bad_listen_address",
            || {
                boxed(async {
                    let server = StubServer::start().await?;
                    let address = server
                        .url()
                        .trim_start_matches("http://")
                        .trim_end_matches('/')
                        .to_string();
                    FaultProxy::start_on("api", "localhost-ish", address)?;
                    Ok(())
                })
            },
            &["\"localhost-ish\"", "not ip:port"],
        ),
        lib(
            "fault_on_a_service_not_in_the_environment",
            || {
                boxed(async {
                    let env = Env::builder().with_redis(Redis::default()).start().await?;
                    env.fault("postgres")?;
                    Ok(())
                })
            },
            &["no postgres service"],
        ),
        // ---- Kafka topic names, as Kafka checks them ----
        lib(
            "kafka_topic_bad_characters",
            || bad_topic("bad topic!*", 1),
            &["\"bad topic!*\"", "' '", "letters, digits"],
        ),
        lib(
            "kafka_topic_dot_dot",
            || bad_topic("..", 1),
            &["\"..\"", "cannot be `.` or `..`"],
        ),
        lib(
            "kafka_topic_dot",
            || bad_topic(".", 1),
            &["\".\"", "cannot be `.` or `..`"],
        ),
        lib(
            "kafka_topic_too_long",
            || bad_topic(Box::leak("x".repeat(300).into_boxed_str()), 1),
            &["310 characters long with this slice's prefix", "249"],
        ),
        lib(
            "kafka_topic_empty",
            || bad_topic("", 1),
            &["\"\"", "is empty"],
        ),
        lib(
            "kafka_topic_zero_partitions",
            || bad_topic("orders", 0),
            &["topic \"orders\"", "0 partitions", "at least 1"],
        ),
        lib(
            "kafka_topic_negative_partitions",
            || bad_topic("orders", -3),
            &["-3 partitions"],
        ),
        lib(
            "kafka_topic_unicode",
            || bad_topic("bestellungen-ä", 1),
            &["'ä'"],
        ),
        // ---- stubs ----
        lib(
            "stub_mappings_dir_missing",
            || start(Env::builder().with_stub(HttpStub::default().mappings("no/such/wiremock"))),
            &["no/such/wiremock", "does not exist"],
        ),
        lib(
            "stub_mapping_outside_the_subset",
            || {
                boxed(async {
                    let dir = migrations(&[(
                        "bad.json",
                        r#"{"request": {"method": "POST", "multipartPatterns": []}, "response": {}}"#,
                    )]);
                    StubServer::start().await?.load_dir(dir).await?;
                    Ok(())
                })
            },
            &["bad.json", "multipartPatterns", "drydock_stub::mappings"],
        ),
        lib(
            "stub_mapping_not_json",
            || {
                boxed(async {
                    let dir = migrations(&[("broken.json", "{ not json")]);
                    StubServer::start().await?.load_dir(dir).await?;
                    Ok(())
                })
            },
            &["broken.json"],
        ),
        lib(
            "stub_bad_regex",
            || {
                boxed(async {
                    let server = StubServer::start().await?;
                    server
                        .mount(Stub::get("/x").header("x-id", StringMatcher::matches("[0-9")))
                        .await?;
                    Ok(())
                })
            },
            &["request.headers.x-id", "correct that field"],
        ),
        // ---- a keeper's variable left in a shell ----
        Case {
            name: "keeper_dir_left_in_the_environment",
            env: &[("DRYDOCK_KEEPER_DIR", Some("{scratch}/not-a-run-dir"))],
            run: Run::List,
            says: &[
                "ignoring DRYDOCK_KEEPER_DIR",
                "unset it",
                "bad_inputs_are_refused_clearly_and_leave_nothing",
            ],
        },
        // ---- the drydock command ----
        cli(
            "cli_up_unknown_service",
            &["up", "mongodb"],
            &["no service `mongodb`", "postgres", "redis"],
        ),
        cli("cli_up_nothing", &["up"], &["name the services to start"]),
        cli(
            "cli_images_build_unknown",
            &["images", "build", "oracle"],
            &["no image named `oracle`", "images list"],
        ),
        cli(
            "cli_proxy_bad_listen",
            &["proxy", "--listen", "nowhere"],
            &["--listen nowhere", "ip:port"],
        ),
    ]
}

/// What a case's run gave: its message, and how long it took.
struct Ran {
    message: String,
    took: Duration,
}

#[test]
fn bad_inputs_are_refused_clearly_and_leave_nothing() {
    let cases = cases();
    assert!(cases.len() >= 50, "{} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names repeat");

    let began = Instant::now();
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let queue = std::sync::Mutex::new(cases.iter().collect::<Vec<_>>());
    let failures = std::sync::Mutex::new(Vec::new());
    let timings = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| loop {
                let Some(case) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop() else {
                    return;
                };
                match check(case, &runtime) {
                    Ok(took) => timings
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((case.name, took)),
                    Err(problem) => failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{}: {problem}", case.name)),
                }
            });
        }
    });
    let mut timings = timings.into_inner().unwrap_or_else(|p| p.into_inner());
    timings.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
    println!(
        "{} cases in {:.1?}; slowest: {}",
        cases.len(),
        began.elapsed(),
        timings
            .iter()
            .take(5)
            .map(|(name, took)| format!("{name} {took:.1?}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let failures = failures.into_inner().unwrap_or_else(|p| p.into_inner());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Runs one case and checks what it said, how soon, and what it left.
fn check(case: &Case, runtime: &tokio::runtime::Runtime) -> Result<Duration, String> {
    let scratch = tempfile::tempdir().map_err(|e| format!("scratch dir: {e}"))?;
    let run_id = format!(
        "bad-inputs-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let ran = run(case, scratch.path(), &run_id)?;
    let mut problems = Vec::new();
    if ran.took > BOUND {
        problems.push(format!("took {:?}, more than {BOUND:?}", ran.took));
    }
    for piece in case.says.iter().chain(["to fix"].iter()) {
        if !ran.message.contains(piece) {
            problems.push(format!("does not say {piece:?}"));
        }
    }
    // Nothing of the case's run may stay (a shared environment's keeper removes its own after
    // a grace period of 200 ms; a failed start removes what it made before it answers).
    let label = format!("drydock.run={run_id}");
    let deadline = Instant::now() + GONE_WITHIN;
    loop {
        let left = runtime
            .block_on(labelled(&label))
            .map_err(|e| format!("listing what {label} left: {e}"))?;
        if left.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            problems.push(format!("left behind after {GONE_WITHIN:?}: {left:?}"));
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    if problems.is_empty() {
        Ok(ran.took)
    } else {
        Err(format!(
            "{}\n  --- its message ---\n{}",
            problems.join("; "),
            ran.message
        ))
    }
}

fn run(case: &Case, scratch: &Path, run_id: &str) -> Result<Ran, String> {
    let scratch_text = scratch.display().to_string();
    let mut command = match case.run {
        Run::Lib(_) => {
            let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            command.args([
                "child_case",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ]);
            command
        }
        Run::List => {
            let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            command.args(["--list", "--format", "terse"]);
            command
        }
        Run::Cli(args) => {
            let mut command = Command::new(drydock_binary()?);
            command.args(args);
            command
        }
    };
    command
        .env("BAD_INPUT_CASE", case.name)
        .env("BAD_INPUT_SCRATCH", &scratch_text)
        .env("DRYDOCK_RUN_ID", run_id)
        // The keeper follows no process: it ends its grace period after the last lease.
        .env_remove("DRYDOCK_RUN_OWNER")
        .env_remove("DRYDOCK_KEEP")
        .env("DRYDOCK_LOG", "off")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in case.env {
        match value {
            Some(value) => command.env(key, value.replace("{scratch}", &scratch_text)),
            None => command.env_remove(key),
        };
    }
    let began = Instant::now();
    let output = wait_bounded(command, BOUND + Duration::from_secs(10))?;
    let took = began.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let message = match case.run {
        Run::Lib(_) => {
            let Some((_, rest)) = stdout.split_once("BAD-INPUT-ERROR-BEGIN\n") else {
                return Err(format!(
                    "no error was reported (exit {}):\n{stdout}\n{stderr}",
                    output.status
                ));
            };
            rest.split("\nBAD-INPUT-ERROR-END")
                .next()
                .unwrap_or_default()
                .to_string()
        }
        Run::Cli(_) if output.status.success() => {
            return Err(format!("`drydock` succeeded:\n{stdout}\n{stderr}"))
        }
        Run::Cli(_) => stderr,
        Run::List if !output.status.success() => {
            return Err(format!(
                "--list failed ({}):\n{stdout}\n{stderr}",
                output.status
            ))
        }
        Run::List => format!("{stderr}\n{stdout}"),
    };
    Ok(Ran { message, took })
}

/// The child's output, or an error once `bound` has passed (the child is killed then).
fn wait_bounded(mut command: Command, bound: Duration) -> Result<Output, String> {
    let mut child = command.spawn().map_err(|e| format!("spawning: {e}"))?;
    // Read both pipes while waiting: a child that fills one would block forever.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out = std::thread::spawn(move || read_all(stdout.as_mut()));
    let err = std::thread::spawn(move || read_all(stderr.as_mut()));
    let deadline = Instant::now() + bound;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("did not end within {bound:?}"));
            }
            Err(e) => return Err(format!("waiting: {e}")),
        }
    };
    Ok(Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn read_all(pipe: Option<&mut impl std::io::Read>) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes);
    }
    bytes
}

/// The `drydock` binary beside this test binary (`target/debug/drydock`), built when missing.
fn drydock_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let debug = exe
        .parent()
        .and_then(Path::parent)
        .ok_or("no target directory")?;
    let binary = debug.join("drydock");
    static BUILT: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        // Up to date in a workspace run (nextest builds it for drydock-cli's own tests); a run
        // of this crate alone builds it once.
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "drydock-cli", "--bin", "drydock"])
            .env(
                "CARGO_TARGET_DIR",
                debug.parent().ok_or("no target directory")?,
            )
            .status()
            .map_err(|e| format!("building drydock: {e}"))?;
        if !status.success() {
            return Err(format!("building drydock failed: {status}"));
        }
        *built = true;
    }
    Ok(binary)
}

/// One case, in this process: what the parent runs as a child.
#[tokio::test]
#[ignore = "run by bad_inputs_are_refused_clearly_and_leave_nothing, one case per process"]
async fn child_case() {
    let name = std::env::var("BAD_INPUT_CASE").unwrap_or_default();
    let case = cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no case {name:?}"));
    let Run::Lib(run) = case.run else {
        panic!("{name} is not a library case");
    };
    match run().await {
        Ok(()) => panic!("{name}: accepted"),
        Err(e) => println!("BAD-INPUT-ERROR-BEGIN\n{e}\nBAD-INPUT-ERROR-END"),
    }
}
