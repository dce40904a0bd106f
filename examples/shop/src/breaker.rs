//! A circuit breaker: after enough consecutive failures the shop stops calling the payment
//! provider for a while and fails orders at once, instead of making every customer wait out
//! timeouts and retries against a provider that is down (and adding load while it recovers).

use std::sync::Mutex;

use tokio::time::Instant;

use crate::config::BreakerConfig;

/// The breaker's state, as callers may observe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through; failures are counted.
    Closed,
    /// Calls are refused until the cool-down is over.
    Open,
    /// One trial call is let through; its outcome closes or reopens the breaker.
    HalfOpen,
}

#[derive(Debug)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { trial_in_flight: bool },
}

/// A breaker shared by every request of the shop.
#[derive(Debug)]
pub struct Breaker {
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

/// Permission to make one call; report its outcome with [`Breaker::record`].
#[derive(Debug)]
#[must_use = "report the call's outcome with Breaker::record"]
pub struct Permit(());

impl Breaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            config,
            inner: Mutex::new(Inner::Closed { failures: 0 }),
        }
    }

    /// The state now (an open breaker whose time is up reads as half-open).
    pub fn state(&self) -> BreakerState {
        match *self.lock() {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if Instant::now() < until => BreakerState::Open,
            Inner::Open { .. } | Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Asks to make a call: `None` while open, or while half-open with the trial call out.
    pub fn try_acquire(&self) -> Option<Permit> {
        let mut inner = self.lock();
        match *inner {
            Inner::Closed { .. } => Some(Permit(())),
            Inner::Open { until } if Instant::now() < until => None,
            Inner::Open { .. }
            | Inner::HalfOpen {
                trial_in_flight: false,
            } => {
                *inner = Inner::HalfOpen {
                    trial_in_flight: true,
                };
                Some(Permit(()))
            }
            Inner::HalfOpen {
                trial_in_flight: true,
            } => None,
        }
    }

    /// Reports the outcome of a call made with `permit`. Only failures that say something about
    /// the provider's health count (timeouts, connection errors, 5xx): a decline is a healthy
    /// answer.
    pub fn record(&self, permit: Permit, healthy: bool) {
        let Permit(()) = permit;
        let mut inner = self.lock();
        *inner = match (&*inner, healthy) {
            (_, true) => Inner::Closed { failures: 0 },
            (Inner::Closed { failures }, false) if failures + 1 < self.config.failure_threshold => {
                Inner::Closed {
                    failures: failures + 1,
                }
            }
            (_, false) => {
                tracing::warn!(open_for = ?self.config.open_for, "payment circuit breaker opened");
                Inner::Open {
                    until: Instant::now() + self.config.open_for,
                }
            }
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the state half-written (each update is
        // one assignment), so a poisoned lock is still good to use.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
