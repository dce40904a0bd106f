//! Services drydock does not know, as a user adds them: a container from any testcontainers
//! image, and a `Service` of one's own with a slice per test — both beanstalkd, a work queue from
//! Debian's packages (`drydock.local/beanstalkd:1`), in owned and in shared environments.

mod beanstalk;

use std::time::{Duration, Instant};

use beanstalk::{Beanstalkd, Client};
use drydock::{
    testcontainers::{core::ContainerPort, GenericImage, ImageExt},
    Container, Env, EnvBuilder, Readiness, TestResult,
};
use drydock_tests::labelled;

const GRACE: Duration = Duration::from_secs(2);

/// beanstalkd as a plain container of the user's: a testcontainers image and a readiness probe.
fn queue() -> Container {
    Container::from_image(
        "queue",
        GenericImage::new("drydock.local/beanstalkd", "1")
            .with_exposed_port(ContainerPort::Tcp(beanstalk::PORT))
            .with_env_var("TZ", "UTC"),
    )
    .ready_when(Readiness::tcp(beanstalk::PORT))
}

/// A shared environment with the user's own `Beanstalkd` service.
fn queue_service() -> EnvBuilder {
    Env::builder()
        .with_service(Beanstalkd::default())
        .grace_period(GRACE)
}

#[tokio::test]
async fn a_users_container_runs_in_an_owned_environment_and_goes_with_it() -> TestResult {
    let env = Env::builder().with_container(queue()).start().await?;
    let queue = env.container("queue")?;
    let mut client = Client::connect(&queue.address(beanstalk::PORT)?).await?;
    assert!(client.stats().await?.contains("current-jobs-ready"));

    let vars = env.vars();
    let port = queue.host_port(beanstalk::PORT)?.to_string();
    assert_eq!(
        vars.get("QUEUE_HOST").map(String::as_str),
        Some(queue.host())
    );
    assert_eq!(vars.get("QUEUE_PORT"), Some(&port));
    assert_eq!(vars.get("QUEUE_PORT_11300"), Some(&port));

    // drydock's lifecycle: labelled like its own services, on the environment's network.
    let label = format!("drydock.instance={}", env.instance_id());
    let found = labelled(&label).await?;
    assert!(
        found.containers.iter().any(|name| name.ends_with("-queue")),
        "{found:?}"
    );
    drop(env);
    assert!(
        labelled(&label).await?.is_empty(),
        "removed with the environment"
    );
    Ok(())
}

#[tokio::test]
async fn a_users_container_waits_for_the_services_it_depends_on() -> TestResult {
    // The second queue starts only once the first is ready; both are reached by name.
    let second = Container::from_image(
        "second",
        GenericImage::new("drydock.local/beanstalkd", "1")
            .with_exposed_port(ContainerPort::Tcp(beanstalk::PORT)),
    )
    .ready_when(Readiness::command(["test", "-x", "/usr/bin/beanstalkd"]))
    .ready_when(Readiness::tcp(beanstalk::PORT))
    .depends_on("queue");
    let env = Env::builder()
        .with_container(queue())
        .with_container(second)
        .start()
        .await?;
    for name in ["queue", "second"] {
        let endpoint = env.container(name)?;
        Client::connect(&endpoint.address(beanstalk::PORT)?)
            .await?
            .stats()
            .await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_dependency_on_a_missing_service_is_refused_before_anything_starts() -> TestResult {
    let started = Instant::now();
    let error = Env::builder()
        .with_container(queue().depends_on("database"))
        .start()
        .await
        .expect_err("a dependency nobody provides");
    let message = format!("{error:?}");
    assert!(message.contains("depends on `database`"), "{message}");
    assert!(message.contains("to fix:"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(2));
    Ok(())
}

#[tokio::test]
async fn a_users_container_is_shared_by_the_slices_of_a_run() -> TestResult {
    let spec = || Env::builder().with_container(queue()).grace_period(GRACE);
    let (a, b) = tokio::try_join!(spec().attach(), spec().attach())?;
    assert_eq!(a.instance_id(), b.instance_id(), "one environment");
    let (qa, qb) = (a.container("queue")?, b.container("queue")?);
    // One container, reached by each slice through a proxy of its own.
    assert_eq!(
        qa.direct().address(beanstalk::PORT)?,
        qb.direct().address(beanstalk::PORT)?
    );
    assert_ne!(qa.address(beanstalk::PORT)?, qb.address(beanstalk::PORT)?);
    // A plain container has no slices: a job put through one slice is there for the other.
    let tube = format!("shared-{}", std::process::id());
    let mut put = Client::connect(&qa.address(beanstalk::PORT)?).await?;
    let mut take = Client::connect(&qb.address(beanstalk::PORT)?).await?;
    put.use_tube(&tube).await?;
    take.watch_only(&tube).await?;
    put.put(b"for anyone").await?;
    let (id, body) = take.reserve(5).await?.ok_or("the job did not arrive")?;
    assert_eq!(body, b"for anyone");
    take.delete(id).await?;
    Ok(())
}

#[tokio::test]
async fn a_users_service_in_an_owned_environment_uses_its_default_scope() -> TestResult {
    let env = Env::builder()
        .with_service(Beanstalkd::default())
        .start()
        .await?;
    let tube = env.get::<Beanstalkd>()?;
    assert_eq!(tube.name(), "default");
    assert_eq!(
        env.vars().get("BEANSTALKD_TUBE").map(String::as_str),
        Some("default")
    );
    let mut client = tube.connect().await?;
    client.put(b"job").await?;
    let (id, body) = client.reserve(5).await?.ok_or("no job")?;
    assert_eq!(body, b"job");
    client.delete(id).await?;
    Ok(())
}

/// Puts `count` jobs into this slice's tube, lets a concurrent test do the same, and reserves
/// them back: exactly its own come back.
async fn only_my_jobs(me: &str, count: usize) -> TestResult {
    let slice = queue_service().attach().await?;
    let tube = slice.get::<Beanstalkd>()?;
    assert!(tube.name().starts_with("slice-"), "{}", tube.name());
    let mut client = tube.connect().await?;
    for i in 0..count {
        client.put(format!("{me}-{i}").as_bytes()).await?;
    }
    // The other test (another process under nextest) puts its jobs meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut mine = Vec::new();
    while let Some((id, body)) = client.reserve(1).await? {
        mine.push(String::from_utf8(body)?);
        client.delete(id).await?;
    }
    let expected: Vec<String> = (0..count).map(|i| format!("{me}-{i}")).collect();
    assert_eq!(mine, expected, "exactly this slice's jobs, in order");
    Ok(())
}

#[tokio::test]
async fn slices_of_a_users_service_are_isolated_one() -> TestResult {
    only_my_jobs("one", 5).await
}

#[tokio::test]
async fn slices_of_a_users_service_are_isolated_two() -> TestResult {
    only_my_jobs("two", 7).await
}

#[tokio::test]
async fn two_slices_at_once_never_see_each_others_jobs_and_leave_nothing() -> TestResult {
    let (a, b) = tokio::try_join!(queue_service().attach(), queue_service().attach())?;
    let (ta, tb) = (a.get::<Beanstalkd>()?, b.get::<Beanstalkd>()?);
    assert_ne!(ta.name(), tb.name());
    let (mut ca, mut cb) = (ta.connect().await?, tb.connect().await?);
    ca.put(b"a's job").await?;
    assert!(cb.reserve(1).await?.is_none(), "b sees nothing of a's tube");
    cb.put(b"b's job").await?;
    let (_, body) = ca.reserve(1).await?.ok_or("a's own job")?;
    assert_eq!(body, b"a's job");

    // a's lease ends with a job still in b's tube: b's tube is emptied when b's lease ends.
    let (address, b_tube) = (tb.address().to_string(), tb.name().to_string());
    drop((ca, cb));
    drop(b);
    // Looked at without reserving, so the keeper's drain is never kept from the job.
    let mut observer = Client::connect(&address).await?;
    observer.use_tube(&b_tube).await?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while observer.has_ready_job().await? {
        if Instant::now() >= deadline {
            return Err("the released slice's tube still holds its job".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(a);
    Ok(())
}
