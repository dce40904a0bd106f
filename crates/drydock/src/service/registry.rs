//! Which service kinds this binary knows, so the keeper can rebuild a spec from JSON.
//!
//! The keeper of a shared environment is the test binary re-executed: it has the same types,
//! but not the values the test built. A spec therefore crosses as `{kind, spec}` pairs, and each
//! kind is found here: drydock's own kinds in [`builtin`], users' kinds through
//! [`register_service!`](crate::register_service) — a `linkme` distributed slice, filled in by
//! the linker, so it is complete before any code runs (the keeper starts before `main`).

use serde_json::Value;

use super::{AnyService, Service};
use crate::error::{Error, Result};

/// A service kind this binary can rebuild from its spec; made by
/// [`register_service!`](crate::register_service).
pub struct Registration {
    kind: &'static str,
    decode: Decode,
}

/// Rebuilds a service of one kind from its spec.
type Decode = fn(Value) -> Result<Box<dyn AnyService>>;

impl Registration {
    /// The registration of `S`.
    pub const fn of<S: Service>() -> Self {
        Registration {
            kind: S::KIND,
            decode: decode::<S>,
        }
    }
}

#[doc(hidden)]
#[linkme::distributed_slice]
pub static SERVICES: [Registration];

/// Registers a service type of yours, so that shared environments can run it (the keeper
/// rebuilds the spec by kind). Put it beside the type, in the test crate.
///
/// ```ignore
/// drydock::register_service!(Beanstalk);
/// ```
#[macro_export]
macro_rules! register_service {
    ($service:ty) => {
        const _: () = {
            #[$crate::__private::linkme::distributed_slice($crate::service::registry::SERVICES)]
            #[linkme(crate = $crate::__private::linkme)]
            static REGISTRATION: $crate::service::Registration =
                $crate::service::Registration::of::<$service>();
        };
    };
}

fn decode<S: Service>(spec: Value) -> Result<Box<dyn AnyService>> {
    let service: S = serde_json::from_value(spec).map_err(|e| Error::Spec {
        service: S::KIND.into(),
        problem: format!("the keeper cannot read its spec: {e}"),
        fix: "the spec was written by another build of this binary; run the tests again".into(),
    })?;
    Ok(Box::new(service))
}

/// drydock's own kinds: one line each.
fn builtin(kind: &str) -> Option<Decode> {
    Some(match kind {
        #[cfg(feature = "postgres")]
        "postgres" => decode::<crate::service::postgres::Postgres>,
        #[cfg(feature = "redis")]
        "redis" => decode::<crate::service::redis::Redis>,
        #[cfg(feature = "kafka")]
        "kafka" => decode::<crate::service::kafka::Kafka>,
        #[cfg(feature = "stub")]
        "stub" => decode::<crate::service::stub::HttpStub>,
        "container" => decode::<crate::service::container::Container>,
        "toxiproxy" => decode::<crate::service::toxiproxy::Toxiproxy>,
        _ => return None,
    })
}

/// Rebuilds a spec of kind `kind`.
pub(crate) fn rebuild(kind: &str, spec: Value) -> Result<Box<dyn AnyService>> {
    let decode = builtin(kind)
        .or_else(|| SERVICES.iter().find(|r| r.kind == kind).map(|r| r.decode))
        .ok_or_else(|| Error::Spec {
            service: kind.to_string(),
            problem: format!("this test binary does not know the service kind `{kind}`"),
            fix: format!(
                "register the type with `drydock::register_service!(YourType);` in the test \
                 crate (kinds known: {})",
                known().join(", ")
            ),
        })?;
    decode(spec)
}

fn known() -> Vec<&'static str> {
    let mut kinds: Vec<&'static str> = SERVICES.iter().map(|r| r.kind).collect();
    kinds.extend(
        [
            #[cfg(feature = "postgres")]
            "postgres",
            #[cfg(feature = "redis")]
            "redis",
            #[cfg(feature = "kafka")]
            "kafka",
            #[cfg(feature = "stub")]
            "stub",
            "container",
            "toxiproxy",
        ]
        .iter(),
    );
    kinds
}
