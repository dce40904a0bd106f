//! Leases: a slice's piece of a service that gives itself back when dropped.
//!
//! The model is sqlx's `PoolConnection`, whose `Drop` returns it to its pool: the keeper holds a
//! test's leases for as long as the test's connection is open and then simply drops them, so a
//! slice cut halfway (the second service failed) is given back by the same `Drop`s, with no
//! compensation code anywhere.

use std::fmt;

/// One test's scope of a service (a database, a Redis db, a prefix), held until dropped.
///
/// ```
/// use drydock::service::Lease;
/// use std::sync::{atomic::{AtomicBool, Ordering}, Arc};
///
/// struct GiveBack(Arc<AtomicBool>);
/// impl Drop for GiveBack {
///     fn drop(&mut self) { self.0.store(true, Ordering::SeqCst) }
/// }
///
/// let returned = Arc::new(AtomicBool::new(false));
/// let lease = Lease::new("db_7".to_string(), GiveBack(returned.clone()));
/// assert_eq!(lease.scope(), "db_7");
/// drop(lease);
/// assert!(returned.load(Ordering::SeqCst));
/// ```
pub struct Lease<T> {
    scope: T,
    _give_back: Option<Box<dyn Send + Sync>>,
}

impl<T> Lease<T> {
    /// A lease on `scope`; dropping it drops `give_back`, whose own `Drop` returns the scope.
    pub fn new(scope: T, give_back: impl Send + Sync + 'static) -> Self {
        Lease {
            scope,
            _give_back: Some(Box::new(give_back)),
        }
    }

    /// A scope with nothing to give back (names only, like a prefix nothing was created under).
    pub fn unguarded(scope: T) -> Self {
        Lease {
            scope,
            _give_back: None,
        }
    }

    /// The leased scope.
    pub fn scope(&self) -> &T {
        &self.scope
    }
}

impl<T: fmt::Debug> fmt::Debug for Lease<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Lease").field(&self.scope).finish()
    }
}

/// Which slice of its environment a lease is for: unique within the environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceId(pub(crate) u64);

impl SliceId {
    /// The slice's number, counted from 0 in the order slices were cut.
    pub fn number(&self) -> u64 {
        self.0
    }

    /// A name prefix unique to the slice (`s7_`), for names a slice creates itself.
    pub fn prefix(&self) -> String {
        format!("s{}_", self.0)
    }

    /// A name unique to the slice (`slice-7`).
    pub fn name(&self) -> String {
        format!("slice-{}", self.0)
    }
}
