//! What a `#[drydock::test]` can take as arguments.

use crate::{EnvBuilder, Slice};

/// A value a `#[drydock::test]` can take as an argument: made from the test's slice, and the
/// service it needs added to the environment when the test names no environment of its own.
///
/// drydock implements it for `sqlx::PgPool` and [`PostgresDb`](crate::PostgresDb), a Redis
/// `ConnectionManager` and [`RedisDb`](crate::RedisDb), [`KafkaSlice`](crate::KafkaSlice) and
/// [`StubEndpoint`](crate::StubEndpoint) (each with its feature). Implement it for your own
/// types (a client of your service made from the slice's variables, say):
///
/// ```
/// use drydock::{harness::Inject, EnvBuilder, Slice};
///
/// struct Settings(std::collections::HashMap<String, String>);
///
/// impl Inject for Settings {
///     async fn from_slice(slice: &Slice) -> drydock::Result<Self> {
///         Ok(Settings(slice.vars()))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument of a #[drydock::test]",
    label = "not something drydock can make from a slice",
    note = "arguments are `&drydock::Slice` or types implementing `drydock::harness::Inject`: \
            `PgPool`, `PostgresDb`, a Redis `ConnectionManager`, `RedisDb`, `KafkaSlice`, \
            `StubEndpoint`, `HashMap<String, String>` (the variables), or a type of yours"
)]
pub trait Inject: Sized {
    /// Adds what this value needs to `builder` (nothing by default). Called only when the test
    /// names no environment (`#[drydock::test]` without `env = …`).
    fn require(builder: EnvBuilder) -> EnvBuilder {
        builder
    }

    /// Makes the value from the test's slice.
    fn from_slice(slice: &Slice) -> impl std::future::Future<Output = crate::Result<Self>>;
}

/// Fails to compile unless `T` can be injected (what `#[drydock::test]` checks its arguments
/// with).
#[doc(hidden)]
pub const fn assert_injectable<T: Inject>() {}

/// Makes `T` from `slice`, or fails the test with what went wrong.
pub async fn inject<T: Inject>(slice: &Slice) -> T {
    T::from_slice(slice).await.unwrap_or_else(|e| {
        panic!(
            "drydock: cannot give the test its `{}` argument:\n{e}",
            std::any::type_name::<T>()
        )
    })
}

/// `builder` with `service` unless a service of that name is already in it.
#[allow(dead_code)] // used by the service features; none may be on
fn with_default<S: crate::service::Service + Default>(builder: EnvBuilder) -> EnvBuilder {
    let service = S::default();
    if builder.has_service(service.name()) {
        builder
    } else {
        builder.with_service(service)
    }
}

#[cfg(feature = "postgres")]
impl Inject for sqlx::PgPool {
    fn require(builder: EnvBuilder) -> EnvBuilder {
        with_default::<crate::Postgres>(builder)
    }

    async fn from_slice(slice: &Slice) -> crate::Result<Self> {
        slice.postgres()?.pool().await
    }
}

#[cfg(feature = "postgres")]
impl Inject for crate::PostgresDb {
    fn require(builder: EnvBuilder) -> EnvBuilder {
        with_default::<crate::Postgres>(builder)
    }

    async fn from_slice(slice: &Slice) -> crate::Result<Self> {
        Ok(slice.postgres()?.clone())
    }
}

#[cfg(feature = "redis")]
impl Inject for redis::aio::ConnectionManager {
    fn require(builder: EnvBuilder) -> EnvBuilder {
        with_default::<crate::Redis>(builder)
    }

    async fn from_slice(slice: &Slice) -> crate::Result<Self> {
        slice.redis()?.connection_manager().await
    }
}

#[cfg(feature = "redis")]
impl Inject for crate::RedisDb {
    fn require(builder: EnvBuilder) -> EnvBuilder {
        with_default::<crate::Redis>(builder)
    }

    async fn from_slice(slice: &Slice) -> crate::Result<Self> {
        Ok(slice.redis()?.clone())
    }
}

#[cfg(feature = "kafka")]
impl Inject for crate::KafkaSlice {
    fn require(builder: EnvBuilder) -> EnvBuilder {
        with_default::<crate::Kafka>(builder)
    }

    async fn from_slice(slice: &Slice) -> crate::Result<Self> {
        Ok(slice.kafka()?.clone())
    }
}

#[cfg(feature = "stub")]
impl Inject for crate::StubEndpoint {
    fn require(builder: EnvBuilder) -> EnvBuilder {
        with_default::<crate::HttpStub>(builder)
    }

    async fn from_slice(slice: &Slice) -> crate::Result<Self> {
        Ok(slice.stub()?.clone())
    }
}

/// The variables a system under test reads (`DATABASE_URL`, …), as [`Services::vars`](crate::Services::vars).
impl Inject for std::collections::HashMap<String, String> {
    async fn from_slice(slice: &Slice) -> crate::Result<Self> {
        Ok(slice.vars())
    }
}
