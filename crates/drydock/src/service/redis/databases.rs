//! Slices of a shared Redis: a logical database per test, leased, flushed on release.

use crate::sync::lock;
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use redis::aio::MultiplexedConnection;
use tokio::sync::Semaphore;

use super::RedisServer;
use crate::{
    error::{Error, Result},
    service::{Lease, SliceId},
};

/// How long a test waits for a free logical database before it is an error, unless
/// `Redis::lease_timeout` says otherwise.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// The free logical databases of one server, and which slice holds each leased one (named
/// when a test waits in vain).
pub struct DatabaseLeases {
    server: RedisServer,
    free: Mutex<Vec<u32>>,
    held: Mutex<BTreeMap<u32, SliceId>>,
    available: Semaphore,
    count: u32,
    /// Adopted from a keeper that died: a database it was flushing as it died may hold keys,
    /// so each is flushed before it is handed out.
    flush_first: bool,
    bound: Duration,
}

impl DatabaseLeases {
    pub(crate) fn new(server: RedisServer, count: u32, bound: Duration) -> Arc<Self> {
        Arc::new(DatabaseLeases {
            server,
            // Handed out lowest first: pop() takes from the end.
            free: Mutex::new((0..count).rev().collect()),
            held: Mutex::new(BTreeMap::new()),
            available: Semaphore::new(count as usize),
            count,
            flush_first: false,
            bound,
        })
    }

    /// The databases of a server a keeper that died handed out: see `flush_first`.
    pub(crate) fn adopted(server: RedisServer, count: u32, bound: Duration) -> Arc<Self> {
        let mut leases = Self::new(server, count, bound);
        if let Some(leases) = Arc::get_mut(&mut leases) {
            leases.flush_first = true;
        }
        leases
    }

    /// Database `db`, which a test holds from a keeper that died: taken off the free list,
    /// flushed and given back when the lease is dropped. `None` if it is not free.
    pub(crate) fn reclaim(self: &Arc<Self>, db: u32) -> Option<Lease<u32>> {
        let mut free = self.lock_free();
        let at = free.iter().position(|d| *d == db)?;
        self.available.try_acquire().ok()?.forget();
        free.remove(at);
        Some(Lease::new(
            db,
            LeasedDatabase {
                leases: Arc::clone(self),
                db,
            },
        ))
    }

    /// An empty logical database of the caller's own, flushed and given back when the lease
    /// is dropped.
    pub(crate) async fn acquire(self: &Arc<Self>, slice: SliceId) -> Result<Lease<u32>> {
        let exhausted = || Error::Exhausted {
            what: format!(
                "a free Redis database (all {} are leased to running tests)",
                self.count
            ),
            bound: self.bound,
            holders: {
                let held = lock(&self.held);
                if held.is_empty() {
                    "no slice (the environment is shutting down)".into()
                } else {
                    held.iter()
                        .map(|(db, slice)| format!("slice {} (database {db})", slice.number()))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            },
            fix: format!(
                "raise Redis::databases(..) ({} now) to the number of tests that run at once, \
                 run fewer at once (nextest -j), or raise Redis::lease_timeout(..) ({:?} now)",
                self.count, self.bound
            ),
        };
        let permit = tokio::time::timeout(self.bound, self.available.acquire())
            .await
            .map_err(|_| exhausted())?
            // Closed only when the environment shuts down, which ends every wait as this one.
            .map_err(|_| exhausted())?;
        permit.forget();
        // A permit is a free database, so the list holds one.
        let Some(db) = self.lock_free().pop() else {
            return Err(exhausted());
        };
        if self.flush_first {
            if let Err(e) = self.flush(db).await {
                self.give_back(db);
                return Err(e);
            }
        }
        lock(&self.held).insert(db, slice);
        // Empty already: every database starts empty and is flushed before it is given back.
        Ok(Lease::new(
            db,
            LeasedDatabase {
                leases: Arc::clone(self),
                db,
            },
        ))
    }

    fn give_back(&self, db: u32) {
        lock(&self.held).remove(&db);
        self.lock_free().push(db);
        self.available.add_permits(1);
    }

    async fn flush(&self, db: u32) -> Result<()> {
        let client = self.server.client_for_db(db)?;
        let mut conn: MultiplexedConnection = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| self.server.connect_error(e))?;
        redis::cmd("FLUSHDB")
            .query_async::<()>(&mut conn)
            .await
            .map_err(|e| self.server.connect_error(e))
    }

    fn lock_free(&self) -> std::sync::MutexGuard<'_, Vec<u32>> {
        lock(&self.free)
    }
}

/// A leased database: flushed and returned to the free list, in the background, when dropped.
/// A database that cannot be flushed is withheld: one database fewer beats a test that sees
/// another's keys.
struct LeasedDatabase {
    leases: Arc<DatabaseLeases>,
    db: u32,
}

impl Drop for LeasedDatabase {
    fn drop(&mut self) {
        let (leases, db) = (Arc::clone(&self.leases), self.db);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            crate::service::quiet::after_attach().await;
            match leases.flush(db).await {
                Ok(()) => leases.give_back(db),
                Err(e) => {
                    eprintln!("drydock keeper: Redis database {db} withheld, flush failed: {e}")
                }
            }
        });
    }
}
