//! Everything the shop needs to know about its surroundings, in one value.
//!
//! Production reads it from the environment ([`Config::from_env`]); tests build it from a drydock
//! slice and change what a test is about — a shorter timeout, retries off, a breaker that opens
//! sooner — so the resilience code is exercised with bounds a test can wait for.

use std::{net::SocketAddr, time::Duration};

use rdkafka::ClientConfig;

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where the HTTP API listens (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// PostgreSQL.
    pub database: DatabaseConfig,
    /// Redis, the stock cache.
    pub redis: RedisConfig,
    /// Kafka: order events out, payment results in.
    pub kafka: KafkaConfig,
    /// The payment provider's HTTP API.
    pub payment: PaymentConfig,
}

/// PostgreSQL.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Connections in the pool.
    pub max_connections: u32,
    /// How long a request waits for a connection before it fails with `503`: an unreachable
    /// database must fail a request within a bound, not hang it.
    pub acquire_timeout: Duration,
}

/// Redis, which caches stock levels. It is an optimisation only: when it is slow or down the
/// shop answers from PostgreSQL, so its timeouts are short.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// `redis://:password@host:port/db`.
    pub url: String,
    /// How long a cache command may take before the shop gives up on the cache for that call.
    pub timeout: Duration,
    /// How long a cached stock level lives.
    pub ttl: Duration,
}

/// Kafka.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// The producer's settings (at least `bootstrap.servers`).
    pub producer: ClientConfig,
    /// The payment-result consumer's settings (at least `bootstrap.servers` and `group.id`).
    pub consumer: ClientConfig,
    /// Where order events go.
    pub orders_topic: String,
    /// Where the payment provider's asynchronous results (refunds, late confirmations) arrive.
    pub payment_results_topic: String,
    /// How often the outbox publisher looks for events when nothing woke it.
    pub outbox_poll: Duration,
    /// How long one publish may take before the publisher retries it later.
    pub publish_timeout: Duration,
}

/// The payment provider and how the shop copes with it.
#[derive(Clone, Debug)]
pub struct PaymentConfig {
    /// `http://host:port`, without `/v1`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …`.
    pub api_key: String,
    /// The bound on one attempt (connect, send, answer).
    pub timeout: Duration,
    /// Attempts per charge, the first included: 1 turns retries off.
    pub max_attempts: u32,
    /// The pause before the second attempt; it doubles with each further attempt.
    pub backoff: Duration,
    /// The longest `Retry-After` the shop honours; a longer one fails the charge at once
    /// rather than hold the customer's request.
    pub max_retry_after: Duration,
    /// When to stop calling the provider at all.
    pub breaker: BreakerConfig,
}

/// The circuit breaker in front of the provider.
#[derive(Clone, Copy, Debug)]
pub struct BreakerConfig {
    /// Consecutive failed attempts (timeouts, connection errors, 5xx) that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open before one trial call is let through (half-open).
    pub open_for: Duration,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        PaymentConfig {
            base_url: "http://127.0.0.1:8080".into(),
            api_key: "sk_test".into(),
            timeout: Duration::from_secs(2),
            max_attempts: 3,
            backoff: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
            breaker: BreakerConfig::default(),
        }
    }
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
        }
    }
}

/// A variable the environment must set, or one that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Not set.
    #[error("{0} is not set")]
    Missing(&'static str),
    /// Set to something unusable.
    #[error("{name}={value:?}: {problem}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it does not do.
        problem: String,
    },
}

impl Config {
    /// Reads the configuration from the environment: `DATABASE_URL`, `REDIS_URL`,
    /// `KAFKA_BOOTSTRAP_SERVERS` and `PAYMENT_URL` are required (the first three are the names
    /// drydock's `vars()` use, so `drydock up` can feed a running shop); the rest have defaults:
    /// `SHOP_LISTEN` (`127.0.0.1:3000`), `KAFKA_TOPIC_PREFIX`, `PAYMENT_API_KEY`,
    /// `PAYMENT_TIMEOUT_MS`, `PAYMENT_MAX_ATTEMPTS`, `PAYMENT_BREAKER_THRESHOLD`,
    /// `PAYMENT_BREAKER_OPEN_MS`.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// The same from any lookup (a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let required = |name: &'static str| get(name).ok_or(ConfigError::Missing(name));
        let parsed = |name: &'static str, default: u64| -> Result<u64, ConfigError> {
            match get(name) {
                None => Ok(default),
                Some(value) => value.parse().map_err(|e| ConfigError::Invalid {
                    name,
                    problem: format!("{e}"),
                    value,
                }),
            }
        };
        let listen = get("SHOP_LISTEN").unwrap_or_else(|| "127.0.0.1:3000".into());
        let listen = listen.parse().map_err(|e| ConfigError::Invalid {
            name: "SHOP_LISTEN",
            problem: format!("{e}"),
            value: listen.clone(),
        })?;
        let bootstrap = required("KAFKA_BOOTSTRAP_SERVERS")?;
        let prefix = get("KAFKA_TOPIC_PREFIX").unwrap_or_default();
        let mut producer = ClientConfig::new();
        producer.set("bootstrap.servers", &bootstrap);
        let mut consumer = producer.clone();
        consumer.set("group.id", format!("{prefix}shop-payment-results"));
        let defaults = PaymentConfig::default();
        let max_attempts = parsed("PAYMENT_MAX_ATTEMPTS", u64::from(defaults.max_attempts))?;
        let threshold = parsed(
            "PAYMENT_BREAKER_THRESHOLD",
            u64::from(defaults.breaker.failure_threshold),
        )?;
        Ok(Config {
            listen,
            database: DatabaseConfig {
                url: required("DATABASE_URL")?,
                max_connections: 10,
                acquire_timeout: Duration::from_secs(3),
            },
            redis: RedisConfig {
                url: required("REDIS_URL")?,
                timeout: Duration::from_millis(250),
                ttl: Duration::from_secs(60),
            },
            kafka: KafkaConfig::new(producer, consumer, &prefix),
            payment: PaymentConfig {
                base_url: required("PAYMENT_URL")?,
                api_key: get("PAYMENT_API_KEY").unwrap_or(defaults.api_key),
                timeout: Duration::from_millis(parsed("PAYMENT_TIMEOUT_MS", 2000)?),
                max_attempts: u32::try_from(max_attempts).unwrap_or(u32::MAX).max(1),
                breaker: BreakerConfig {
                    failure_threshold: u32::try_from(threshold).unwrap_or(u32::MAX).max(1),
                    open_for: Duration::from_millis(parsed("PAYMENT_BREAKER_OPEN_MS", 10_000)?),
                },
                ..defaults
            },
        })
    }
}

impl KafkaConfig {
    /// Clients as given, the topics `<prefix>orders` and `<prefix>payment-results`.
    pub fn new(producer: ClientConfig, consumer: ClientConfig, topic_prefix: &str) -> Self {
        KafkaConfig {
            producer,
            consumer,
            orders_topic: format!("{topic_prefix}orders"),
            payment_results_topic: format!("{topic_prefix}payment-results"),
            outbox_poll: Duration::from_millis(200),
            publish_timeout: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    const REQUIRED: [(&str, &str); 4] = [
        ("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/shop"),
        ("REDIS_URL", "redis://127.0.0.1:6379/0"),
        ("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        ("PAYMENT_URL", "http://127.0.0.1:8080"),
    ];

    #[test]
    fn defaults_apply_and_retries_can_be_turned_off() {
        let config = Config::from_lookup(lookup(&REQUIRED)).expect("a config");
        assert_eq!(config.payment.max_attempts, 3);
        assert_eq!(config.kafka.orders_topic, "orders");
        let mut vars = REQUIRED.to_vec();
        vars.extend([("PAYMENT_MAX_ATTEMPTS", "1"), ("KAFKA_TOPIC_PREFIX", "t_")]);
        let config = Config::from_lookup(lookup(&vars)).expect("a config");
        assert_eq!(config.payment.max_attempts, 1);
        assert_eq!(config.kafka.payment_results_topic, "t_payment-results");
        assert_eq!(
            config.kafka.consumer.get("group.id"),
            Some("t_shop-payment-results")
        );
    }

    #[test]
    fn a_missing_or_bad_variable_is_named() {
        let error = Config::from_lookup(lookup(&REQUIRED[..3])).expect_err("no PAYMENT_URL");
        assert_eq!(error.to_string(), "PAYMENT_URL is not set");
        let mut vars = REQUIRED.to_vec();
        vars.push(("PAYMENT_TIMEOUT_MS", "soon"));
        let error = Config::from_lookup(lookup(&vars)).expect_err("a bad number");
        assert_eq!(
            error.to_string(),
            "PAYMENT_TIMEOUT_MS=\"soon\": invalid digit found in string"
        );
    }
}
