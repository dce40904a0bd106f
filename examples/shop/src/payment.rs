//! The payment provider's client: one charge per order, however many attempts it takes.
//!
//! The provider is reached over a network that drops connections and a service that is
//! sometimes slow, overloaded (`429`) or failing (`5xx`). So every attempt is bounded by a
//! timeout, failed attempts are retried with backoff, and every attempt of one order carries the
//! same `Idempotency-Key`: a retry after a lost answer must not charge the customer twice. A
//! [`Breaker`] stops the shop calling a provider that keeps failing. The shapes follow
//! `payment-api.yaml`; an answer that does not fit them fails the charge with
//! [`PaymentError::InvalidResponse`] rather than being guessed at.

use std::time::Duration;

use reqwest::{header::RETRY_AFTER, StatusCode};
use serde::{Deserialize, Serialize};

use crate::{
    breaker::{Breaker, BreakerState},
    config::PaymentConfig,
};

/// `POST /v1/charges`'s body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChargeRequest {
    /// In the currency's minor unit.
    pub amount_cents: i64,
    /// ISO 4217, upper case.
    pub currency: String,
    /// The shop's customer id.
    pub customer_id: String,
    /// The shop's order id.
    pub order_id: String,
}

/// The outcome the provider reports for a charge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChargeStatus {
    /// The money was taken.
    Succeeded,
    /// The card was refused.
    Declined,
}

/// The `201` answer (and `GET /v1/charges/{id}`'s).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct Charge {
    /// The provider's charge id.
    pub id: String,
    /// Whether the money was taken.
    pub status: ChargeStatus,
    /// What was charged.
    pub amount_cents: i64,
    /// In which currency.
    pub currency: String,
}

/// The provider's error body (`402`, `4xx`, `5xx`).
#[derive(Clone, Debug, Default, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ErrorDetail {
    code: String,
    #[serde(default)]
    message: String,
}

/// Why a charge did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The provider refused the charge (`402`, or `201` with status `declined`).
    #[error("payment declined: {0}")]
    Declined(String),
    /// The provider refused the request itself (another `4xx`): a bug on one side, not retried.
    #[error("the payment provider rejected the request ({status}): {message}")]
    Rejected {
        /// The status.
        status: u16,
        /// The provider's message.
        message: String,
    },
    /// The provider answered, but not in the documented shape.
    #[error("the payment provider's answer does not match its API ({status}): {problem}")]
    InvalidResponse {
        /// The status of that answer.
        status: u16,
        /// What did not fit.
        problem: String,
    },
    /// Every attempt failed (timeouts, dropped connections, `5xx`, `429`).
    #[error("the payment provider is unavailable after {attempts} attempt(s); last: {last}")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
        /// Whether an attempt may have reached the provider and charged (a timeout, a connection
        /// dropped after the request was sent, a `5xx`), as opposed to failures that certainly
        /// charged nothing (connection refused, `429`).
        maybe_charged: bool,
    },
    /// The provider asked the shop to wait longer than it is willing to hold a request.
    #[error("the payment provider is rate limiting: Retry-After {retry_after:?} exceeds the {limit:?} the shop waits")]
    RateLimited {
        /// What the provider asked for.
        retry_after: Duration,
        /// The shop's limit (`PaymentConfig::max_retry_after`).
        limit: Duration,
    },
    /// The circuit breaker is open: the provider was not called.
    #[error("the payment provider is failing; not calling it for now (circuit open)")]
    CircuitOpen,
}

impl PaymentError {
    /// Whether the charge may have gone through at the provider (so the order must not be
    /// released as if it certainly had not). Only a transport failure leaves that open.
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            PaymentError::Unavailable {
                maybe_charged: true,
                ..
            }
        )
    }
}

/// One failed attempt, and whether another is worth making.
enum Attempt {
    Done(Result<Charge, PaymentError>),
    /// Retry after at least this long; `healthy` tells the breaker whether to count it,
    /// `maybe_charged` whether the provider may have acted on the request.
    Retry {
        why: String,
        wait: Option<Duration>,
        healthy: bool,
        maybe_charged: bool,
    },
}

/// The client, shared by all requests.
#[derive(Debug)]
pub struct PaymentClient {
    config: PaymentConfig,
    http: reqwest::Client,
    breaker: Breaker,
}

impl PaymentClient {
    /// A client for `config`.
    pub fn new(config: PaymentConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()?;
        Ok(PaymentClient {
            breaker: Breaker::new(config.breaker),
            config,
            http,
        })
    }

    /// The breaker's state now.
    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    /// Charges `request` once, retrying with `idempotency_key` on every attempt.
    pub async fn charge(
        &self,
        request: &ChargeRequest,
        idempotency_key: &str,
    ) -> Result<Charge, PaymentError> {
        let mut last = String::new();
        let mut maybe_charged = false;
        for attempt in 1..=self.config.max_attempts {
            let Some(permit) = self.breaker.try_acquire() else {
                return Err(PaymentError::CircuitOpen);
            };
            let outcome = self.attempt(request, idempotency_key).await;
            let (why, wait) = match outcome {
                Attempt::Done(result) => {
                    self.breaker.record(permit, true);
                    return result;
                }
                Attempt::Retry {
                    why,
                    wait,
                    healthy,
                    maybe_charged: maybe,
                } => {
                    self.breaker.record(permit, healthy);
                    maybe_charged |= maybe;
                    (why, wait)
                }
            };
            tracing::info!(attempt, %why, "charge attempt failed");
            last = why;
            if attempt == self.config.max_attempts {
                break;
            }
            let backoff = self.config.backoff * 2u32.saturating_pow(attempt - 1);
            tokio::time::sleep(wait.map_or(backoff, |w| w.max(backoff))).await;
        }
        Err(PaymentError::Unavailable {
            attempts: self.config.max_attempts,
            last,
            maybe_charged,
        })
    }

    async fn attempt(&self, request: &ChargeRequest, key: &str) -> Attempt {
        let sent = self
            .http
            .post(format!("{}/v1/charges", self.config.base_url))
            .bearer_auth(&self.config.api_key)
            .header("Idempotency-Key", key)
            .json(request)
            .send()
            .await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(e) => {
                let why = if e.is_timeout() {
                    format!("timed out after {:?}", self.config.timeout)
                } else {
                    format!("request failed: {}", error_chain(&e))
                };
                return Attempt::Retry {
                    why,
                    wait: None,
                    healthy: false,
                    // A refused connection never carried the request.
                    maybe_charged: !e.is_connect(),
                };
            }
        };
        let status = answer.status();
        let retry_after = answer
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The body is read within the same per-request timeout; a connection dropped mid-body
        // is a transport failure like any other.
        let body = match answer.bytes().await {
            Ok(body) => body,
            Err(e) => {
                return Attempt::Retry {
                    why: format!("reading the answer ({status}) failed: {}", error_chain(&e)),
                    wait: None,
                    healthy: false,
                    maybe_charged: true,
                }
            }
        };
        match status {
            StatusCode::CREATED | StatusCode::OK => Attempt::Done(
                parse_charge(status, &body).and_then(|charge| match charge.status {
                    ChargeStatus::Succeeded => Ok(charge),
                    ChargeStatus::Declined => Err(PaymentError::Declined("declined".into())),
                }),
            ),
            StatusCode::PAYMENT_REQUIRED => Attempt::Done(Err(match parse_error(status, &body) {
                Ok(detail) => PaymentError::Declined(detail.code),
                Err(e) => e,
            })),
            StatusCode::TOO_MANY_REQUESTS => match parse_retry_after(retry_after.as_deref()) {
                Err(problem) => Attempt::Done(Err(PaymentError::InvalidResponse {
                    status: status.as_u16(),
                    problem,
                })),
                Ok(wait) if wait > self.config.max_retry_after => {
                    Attempt::Done(Err(PaymentError::RateLimited {
                        retry_after: wait,
                        limit: self.config.max_retry_after,
                    }))
                }
                Ok(wait) => Attempt::Retry {
                    why: format!("rate limited (Retry-After {wait:?})"),
                    wait: Some(wait),
                    healthy: true,
                    maybe_charged: false,
                },
            },
            s if s.is_server_error() => Attempt::Retry {
                why: match parse_error(status, &body) {
                    Ok(detail) => format!("{status}: {} {}", detail.code, detail.message),
                    Err(_) => format!("{status}"),
                },
                wait: None,
                healthy: false,
                maybe_charged: true,
            },
            s => Attempt::Done(Err(match parse_error(s, &body) {
                Ok(detail) => PaymentError::Rejected {
                    status: s.as_u16(),
                    message: format!("{} {}", detail.code, detail.message),
                },
                Err(e) => e,
            })),
        }
    }
}

fn parse_charge(status: StatusCode, body: &[u8]) -> Result<Charge, PaymentError> {
    serde_json::from_slice(body).map_err(|e| PaymentError::InvalidResponse {
        status: status.as_u16(),
        problem: format!("charge body: {e}"),
    })
}

fn parse_error(status: StatusCode, body: &[u8]) -> Result<ErrorDetail, PaymentError> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error)
        .map_err(|e| PaymentError::InvalidResponse {
            status: status.as_u16(),
            problem: format!("error body: {e}"),
        })
}

/// `Retry-After` in seconds (the provider documents delta-seconds only).
fn parse_retry_after(value: Option<&str>) -> Result<Duration, String> {
    let value = value.ok_or("429 without the documented Retry-After header")?;
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|e| format!("Retry-After {value:?} is not a number of seconds: {e}"))
}

/// An error and its sources on one line: reqwest's own message alone says "error sending
/// request", the cause (connection reset, refused) is in the chain.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_seconds() {
        assert_eq!(parse_retry_after(Some("2")), Ok(Duration::from_secs(2)));
        assert!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")).is_err());
        assert!(parse_retry_after(None).is_err());
    }
}
