//! A checkout that charges a card through a payment gateway's HTTP API, the kind of dependency
//! a test cannot call for real. It retries what is worth retrying (a dropped connection, a 5xx)
//! with the same idempotency key, and gives up on a decline or after three attempts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What is charged.
#[derive(Debug, Clone, Serialize)]
pub struct Charge {
    /// In cents.
    pub amount_cents: u64,
    /// ISO 4217.
    pub currency: String,
    /// The customer's card token.
    pub card: String,
}

/// The gateway's receipt.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Receipt {
    /// The charge's id at the gateway.
    pub id: String,
    /// `succeeded`.
    pub status: String,
}

/// Why a charge did not go through.
#[derive(Debug, thiserror::Error)]
pub enum PayError {
    /// The gateway said no (a 4xx), with its reason.
    #[error("declined: {0}")]
    Declined(String),
    /// Every attempt failed; the last failure.
    #[error("the gateway failed {attempts} times; last: {last}")]
    Unavailable {
        /// How many attempts were made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
}

/// How many times a charge is tried.
pub const ATTEMPTS: u32 = 3;

/// The checkout, talking to the gateway at `base_url`.
pub struct Checkout {
    base_url: String,
    api_key: String,
    client: reqwest::Client,
}

impl Checkout {
    /// A checkout whose calls to the gateway time out after `timeout`.
    pub fn new(base_url: impl Into<String>, api_key: impl Into<String>, timeout: Duration) -> Self {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .unwrap_or_default();
        Checkout {
            base_url: base_url.into(),
            api_key: api_key.into(),
            client,
        }
    }

    /// Charges once, whatever the retries: every attempt carries the same idempotency key.
    pub async fn pay(&self, charge: &Charge) -> Result<Receipt, PayError> {
        let key = uuid::Uuid::new_v4().to_string();
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let sent = self
                .client
                .post(format!("{}/v1/charges", self.base_url))
                .bearer_auth(&self.api_key)
                .header("idempotency-key", &key)
                .json(charge)
                .send()
                .await;
            match sent {
                Ok(answer) if answer.status().is_success() => {
                    return answer.json().await.map_err(|e| PayError::Unavailable {
                        attempts: attempt,
                        last: format!("unreadable receipt: {e}"),
                    });
                }
                Ok(answer) if answer.status().is_client_error() => {
                    let body: serde_json::Value = answer.json().await.unwrap_or_default();
                    let reason = body["error"]["code"].as_str().unwrap_or("unknown");
                    return Err(PayError::Declined(reason.to_string()));
                }
                Ok(answer) => last = format!("status {}", answer.status()),
                Err(e) if e.is_timeout() => last = "timed out".into(),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
        }
        Err(PayError::Unavailable {
            attempts: ATTEMPTS,
            last,
        })
    }
}
