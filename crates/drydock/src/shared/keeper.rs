//! The keeper: the process that owns a shared environment for one run.
//!
//! It is the test binary itself, re-executed with `DRYDOCK_KEEPER_DIR` set and caught by a
//! constructor before the test harness's `main` runs. It starts the services, prepares the
//! slices (template and clone pool, Redis databases), hands one slice to each connection, takes
//! it back when the connection closes, and removes everything after the grace period with no
//! lease.

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    signal::unix::{signal, SignalKind},
    sync::watch,
};

use super::{
    protocol::{KeeperSpec, Request, Response, SliceGrant, Status},
    run_dir::RunDir,
};
use crate::{
    docker::{remove_labelled, Engine},
    error::{Error, Result},
    identity::{InstanceLabels, LABEL_ENV, LABEL_OWNER, LABEL_RUN, LABEL_SCOPE},
    service::{
        kafka::delete_prefixed, postgres::template::ClonePool, redis::databases::DatabaseLeases,
    },
    Env, KafkaServer, PostgresServer, RedisServer, StubEndpoint,
};

/// The environment variable that turns a test binary into a keeper: the run directory.
pub(crate) const KEEPER_ENV: &str = "DRYDOCK_KEEPER_DIR";
/// Logical Redis databases of a shared environment unless the spec says otherwise: one per
/// concurrently running test.
const SHARED_REDIS_DATABASES: u32 = 256;
/// How long a new connection may take to say what it wants.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

#[ctor::ctor(unsafe)]
#[allow(unsafe_code)]
fn keeper_entry() {
    if let Some(dir) = std::env::var_os(KEEPER_ENV) {
        std::process::exit(run(PathBuf::from(dir)));
    }
}

/// Referenced from `attach`, so the linker keeps the object file that holds the constructor.
pub(crate) fn ensure_linked() {
    std::hint::black_box(keeper_entry as fn());
}

fn run(dir: PathBuf) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("drydock keeper: no runtime: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve(RunDir::from_path(dir))) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("drydock keeper: {e}");
            1
        }
    }
}

/// Where the environment is in its life.
#[derive(Clone)]
enum Phase {
    Starting,
    Ready(Arc<Resources>),
    Failed(String),
}

/// What the keeper slices.
struct Resources {
    instance: String,
    postgres: Option<(PostgresServer, Arc<ClonePool>)>,
    redis: Option<(RedisServer, Arc<DatabaseLeases>)>,
    kafka: Option<KafkaServer>,
    stub: Option<StubEndpoint>,
    /// Numbers slices, for Kafka prefixes and stub namespaces.
    slices: AtomicUsize,
}

struct Keeper {
    spec: KeeperSpec,
    phase: watch::Sender<Phase>,
    leases: watch::Sender<usize>,
    served: AtomicUsize,
}

async fn serve(dir: RunDir) -> Result<()> {
    let spec_text = std::fs::read_to_string(dir.spec_file()).map_err(|e| Error::Keeper {
        dir: dir.path().display().to_string(),
        problem: format!("cannot read its spec: {e}"),
    })?;
    let spec: KeeperSpec = serde_json::from_str(&spec_text).map_err(|e| Error::Keeper {
        dir: dir.path().display().to_string(),
        problem: format!("cannot parse its spec: {e}"),
    })?;
    // The spawner holds the election lock until this socket answers, so no other keeper binds.
    let _ = std::fs::remove_file(dir.socket());
    let listener = UnixListener::bind(dir.socket()).map_err(|e| Error::Keeper {
        dir: dir.path().display().to_string(),
        problem: format!("cannot listen: {e}"),
    })?;
    eprintln!(
        "drydock keeper {}: run {} env {}, grace {:?}",
        std::process::id(),
        spec.run,
        spec.identity,
        spec.builder.grace_period
    );
    let grace = spec.builder.grace_period;
    let keeper = Arc::new(Keeper {
        spec,
        phase: watch::channel(Phase::Starting).0,
        leases: watch::channel(0).0,
        served: AtomicUsize::new(0),
    });
    let (env_tx, env_rx) = tokio::sync::oneshot::channel();
    let starter = tokio::spawn(start(Arc::clone(&keeper), env_tx));

    let mut leases = keeper.leases.subscribe();
    let mut terminate = signal(SignalKind::terminate()).ok();
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    loop {
        let idle = *leases.borrow_and_update() == 0;
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => { tokio::spawn(handle(Arc::clone(&keeper), stream)); }
                Err(e) => eprintln!("drydock keeper: accept failed: {e}"),
            },
            _ = leases.changed() => {}
            _ = tokio::time::sleep(grace), if idle => {
                eprintln!("drydock keeper: no lease for {grace:?}; removing the environment");
                break;
            }
            _ = recv(&mut terminate) => { eprintln!("drydock keeper: SIGTERM"); break; }
            _ = recv(&mut interrupt) => { eprintln!("drydock keeper: SIGINT"); break; }
        }
    }
    // Stop answering first, so a late test starts a new keeper instead of waiting on this one.
    drop(listener);
    let _ = std::fs::remove_file(dir.socket());
    starter.abort();
    let _ = starter.await;
    if let Ok(env) = env_rx.await {
        if let Err(e) = env.teardown().await {
            eprintln!("drydock keeper: teardown: {e}");
        }
    }
    sweep(&keeper.spec, Some(std::process::id())).await;
    eprintln!(
        "drydock keeper: done after {} slices",
        keeper.served.load(Ordering::Relaxed)
    );
    Ok(())
}

async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Removes shared-environment resources of this run and spec: before starting, what a killed
/// keeper of the same run left (`owner: None`); on exit, what this keeper made (`Some(pid)`).
/// Never an owned `Env` of a test, even one with the same spec.
async fn sweep(spec: &KeeperSpec, owner: Option<u32>) {
    let mut labels = vec![
        format!("{LABEL_RUN}={}", spec.run),
        format!("{LABEL_ENV}={}", spec.identity),
        format!("{LABEL_SCOPE}=shared"),
    ];
    labels.extend(owner.map(|pid| format!("{LABEL_OWNER}={pid}")));
    match Engine::connect().await {
        Ok(engine) => {
            if let Err(e) = remove_labelled(&engine, &labels).await {
                eprintln!("drydock keeper: sweep: {e}");
            }
        }
        Err(e) => eprintln!("drydock keeper: sweep: {e}"),
    }
}

/// Starts the environment and prepares its slices; publishes the outcome to every waiting test.
async fn start(keeper: Arc<Keeper>, env_out: tokio::sync::oneshot::Sender<Env>) {
    // This keeper won the election and found no live one: any earlier keeper of this run and
    // spec is dead, and what it left can go.
    sweep(&keeper.spec, None).await;
    let outcome = async {
        let mut builder = keeper.spec.builder.clone();
        if let Some(redis) = builder.redis.take() {
            builder.redis = Some(match redis.database_count() {
                Some(_) => redis,
                None => redis.databases(SHARED_REDIS_DATABASES),
            });
        }
        let postgres_spec = builder.postgres.clone();
        let database_count = builder
            .redis
            .as_ref()
            .and_then(|r| r.database_count())
            .unwrap_or(SHARED_REDIS_DATABASES);
        // The template gets the schema, not the server's own database.
        if let Some(postgres) = builder.postgres.take() {
            builder.postgres = Some(postgres.without_schema());
        }
        let engine = Engine::connect().await?;
        let labels = InstanceLabels::shared(keeper.spec.run.clone(), keeper.spec.identity.clone());
        let env = builder.start_as(engine, labels).await?;
        let prepared = async {
            let postgres = match (env.postgres().ok(), &postgres_spec) {
                (Some(server), Some(spec)) => {
                    Some((server.clone(), ClonePool::prepare(server, spec).await?))
                }
                _ => None,
            };
            let redis = env.redis().ok().map(|server| {
                (
                    server.clone(),
                    DatabaseLeases::new(server.clone(), database_count),
                )
            });
            Ok::<_, Error>(Resources {
                instance: env.instance_id().to_string(),
                postgres,
                redis,
                kafka: env.kafka().ok().cloned(),
                stub: env.stub().ok().cloned(),
                slices: AtomicUsize::new(0),
            })
        }
        .await;
        // Whatever happened, the environment is torn down by `serve`.
        let _ = env_out.send(env);
        prepared
    }
    .await;
    let phase = match outcome {
        Ok(resources) => {
            eprintln!("drydock keeper: ready ({})", resources.instance);
            Phase::Ready(Arc::new(resources))
        }
        Err(e) => {
            eprintln!("drydock keeper: failed: {e}");
            Phase::Failed(e.to_string())
        }
    };
    keeper.phase.send_replace(phase);
}

/// Counts a lease while alive.
struct LeaseCount(Arc<Keeper>);

impl LeaseCount {
    fn new(keeper: &Arc<Keeper>) -> Self {
        keeper.leases.send_modify(|n| *n += 1);
        LeaseCount(Arc::clone(keeper))
    }
}

impl Drop for LeaseCount {
    fn drop(&mut self) {
        self.0.leases.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn handle(keeper: Arc<Keeper>, stream: UnixStream) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    match tokio::time::timeout(REQUEST_TIMEOUT, reader.read_line(&mut line)).await {
        Ok(Ok(n)) if n > 0 => {}
        _ => return,
    }
    let request: Request = match serde_json::from_str(&line) {
        Ok(request) => request,
        Err(e) => {
            let _ = reply(&mut write, &Response::Failed(format!("bad request: {e}"))).await;
            return;
        }
    };
    match request {
        Request::Status => {
            let status = Status {
                run: keeper.spec.run.clone(),
                identity: keeper.spec.identity.clone(),
                pid: std::process::id(),
                state: match &*keeper.phase.borrow() {
                    Phase::Starting => "starting".into(),
                    Phase::Ready(_) => "ready".into(),
                    Phase::Failed(e) => format!("failed: {e}"),
                },
                leases: *keeper.leases.borrow(),
            };
            let _ = reply(&mut write, &Response::Status(status)).await;
        }
        Request::Attach { pid } => {
            let _lease = LeaseCount::new(&keeper);
            let mut phase = keeper.phase.subscribe();
            let resources = loop {
                let current = phase.borrow_and_update().clone();
                match current {
                    Phase::Ready(resources) => break resources,
                    Phase::Failed(message) => {
                        let _ = reply(&mut write, &Response::Failed(message)).await;
                        return;
                    }
                    Phase::Starting => {
                        if phase.changed().await.is_err() {
                            return;
                        }
                    }
                }
            };
            let slice = match cut_slice(&resources).await {
                Ok(slice) => slice,
                Err(e) => {
                    let _ = reply(&mut write, &Response::Failed(e.to_string())).await;
                    return;
                }
            };
            let grant = SliceGrant {
                instance: resources.instance.clone(),
                postgres: slice
                    .database
                    .clone()
                    .and_then(|db| resources.postgres.as_ref().map(|(s, _)| (s.clone(), db))),
                redis: slice
                    .redis_db
                    .and_then(|db| resources.redis.as_ref().map(|(s, _)| (s.clone(), db))),
                kafka: slice
                    .kafka_prefix
                    .clone()
                    .and_then(|prefix| resources.kafka.as_ref().map(|s| (s.clone(), prefix))),
                stub: slice.stub.clone(),
            };
            let delivered = reply(&mut write, &Response::Slice(Box::new(grant)))
                .await
                .is_ok();
            if delivered {
                keeper.served.fetch_add(1, Ordering::Relaxed);
                // The lease lasts until the test process closes the connection or dies.
                let mut sink = [0u8; 64];
                while matches!(reader.read(&mut sink).await, Ok(n) if n > 0) {}
            }
            tracing::debug!(pid, "slice released");
            release(&resources, slice);
        }
    }
}

/// The parts of one slice.
struct CutSlice {
    database: Option<String>,
    redis_db: Option<u32>,
    kafka_prefix: Option<String>,
    /// The stub server, in the slice's namespace.
    stub: Option<StubEndpoint>,
}

async fn cut_slice(resources: &Resources) -> Result<CutSlice> {
    let database = match &resources.postgres {
        Some((_, pool)) => Some(pool.acquire().await?),
        None => None,
    };
    let redis_db = match &resources.redis {
        Some((_, leases)) => match leases.acquire().await {
            Ok(db) => Some(db),
            Err(e) => {
                release(
                    resources,
                    CutSlice {
                        database,
                        redis_db: None,
                        kafka_prefix: None,
                        stub: None,
                    },
                );
                return Err(e);
            }
        },
        None => None,
    };
    let number = resources.slices.fetch_add(1, Ordering::Relaxed);
    // Names, not resources: the slice creates its topics, and they are deleted on release.
    let kafka_prefix = resources.kafka.as_ref().map(|_| format!("s{number}_"));
    let stub = match &resources.stub {
        Some(endpoint) => match endpoint.create_namespace(&format!("slice-{number}")).await {
            Ok(namespaced) => Some(namespaced),
            Err(e) => {
                release(
                    resources,
                    CutSlice {
                        database,
                        redis_db,
                        kafka_prefix,
                        stub: None,
                    },
                );
                return Err(e);
            }
        },
        None => None,
    };
    Ok(CutSlice {
        database,
        redis_db,
        kafka_prefix,
        stub,
    })
}

fn release(resources: &Resources, slice: CutSlice) {
    if let (Some(name), Some((_, pool))) = (slice.database, &resources.postgres) {
        pool.release(name);
    }
    if let (Some(db), Some((_, leases))) = (slice.redis_db, &resources.redis) {
        leases.release(db);
    }
    if let (Some(prefix), Some(server)) = (slice.kafka_prefix, &resources.kafka) {
        let server = server.clone();
        tokio::spawn(async move {
            if let Err(e) = delete_prefixed(&server, &prefix).await {
                eprintln!("drydock keeper: deleting the topics of slice {prefix}: {e}");
            }
        });
    }
    if let (Some(namespaced), Some(root)) = (slice.stub, &resources.stub) {
        let root = root.clone();
        tokio::spawn(async move {
            let name = namespaced.namespace().unwrap_or_default().to_string();
            if let Err(e) = root.remove_namespace(&name).await {
                eprintln!("drydock keeper: removing stub namespace {name}: {e}");
            }
        });
    }
}

async fn reply(write: &mut tokio::net::unix::OwnedWriteHalf, response: &Response) -> Result<()> {
    let mut line = serde_json::to_vec(response).map_err(|e| Error::Keeper {
        dir: ".".into(),
        problem: e.to_string(),
    })?;
    line.push(b'\n');
    write.write_all(&line).await.map_err(|e| Error::Keeper {
        dir: ".".into(),
        problem: format!("cannot answer: {e}"),
    })
}
