//! Toxiproxy's JSON shapes, and their conversion to and from drydock's [`Toxic`].
//!
//! Toxics are read by hand rather than through serde's derive alone, to answer as Toxiproxy
//! does: an unknown `type` is its own error, attributes left out are zero (Go's zero values),
//! unknown attributes are ignored, and a wrong value is reported with the field's name.

use drydock::fault::{FaultProxy, Stream, Toxic, ToxicKind};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;

/// A proxy as Toxiproxy shows it.
#[derive(Debug, Serialize)]
pub struct ProxyView {
    /// Its name.
    pub name: String,
    /// The address it listens on, as bound (the port chosen when asked for `:0`).
    pub listen: String,
    /// Where it forwards to.
    pub upstream: String,
    /// Whether it accepts connections.
    pub enabled: bool,
    /// Its toxics, in the order they act.
    pub toxics: Vec<Value>,
}

impl ProxyView {
    /// What the API shows of `proxy`.
    pub fn of(proxy: &FaultProxy) -> Self {
        ProxyView {
            name: proxy.name().to_owned(),
            listen: proxy.listen_addr().to_string(),
            upstream: proxy.upstream(),
            enabled: proxy.is_enabled(),
            toxics: proxy.toxics().iter().map(toxic_json).collect(),
        }
    }
}

/// A proxy to create or update: every field optional, checked by the operation.
#[derive(Debug, Default, Deserialize)]
pub struct ProxyInput {
    /// Its name (required to create).
    #[serde(default)]
    pub name: Option<String>,
    /// Where to listen (`host:port`; empty: a free loopback port).
    #[serde(default)]
    pub listen: Option<String>,
    /// Where to forward (required to create).
    #[serde(default)]
    pub upstream: Option<String>,
    /// Up (default) or down.
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// Reads a JSON body; a body that does not parse is Toxiproxy's "bad request body".
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadBody(e.to_string()))
}

/// A toxic as Toxiproxy shows it: `name`, `type`, `stream`, `toxicity`, `attributes`.
pub fn toxic_json(toxic: &Toxic) -> Value {
    // ToxicKind serializes as {"type": ..., "attributes": {...}}: add the rest beside it.
    let mut json = match serde_json::to_value(toxic.kind()) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    json.insert("name".into(), toxic.name().into());
    json.insert("stream".into(), stream_name(toxic.stream()).into());
    json.insert("toxicity".into(), toxic.toxicity_value().into());
    Value::Object(json)
}

fn stream_name(stream: Stream) -> &'static str {
    match stream {
        Stream::Upstream => "upstream",
        Stream::Downstream => "downstream",
    }
}

/// The attributes of each toxic type drydock knows, as Toxiproxy names them.
fn attributes_of(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "latency" => &["latency", "jitter"],
        "bandwidth" => &["rate"],
        "slow_close" => &["delay"],
        "timeout" => &["timeout"],
        "reset_peer" => &["timeout"],
        "slicer" => &["average_size", "size_variation", "delay"],
        "limit_data" => &["bytes"],
        _ => return None,
    })
}

/// A new toxic from Toxiproxy's JSON: `type` required; `stream` downstream, `toxicity` 1 and
/// `name` `<type>_<stream>` by default.
pub fn toxic_from_json(body: &Value) -> Result<Toxic, ApiError> {
    let body = object(body, "the body")?;
    let kind = match body.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        None | Some(Value::Null) => return Err(ApiError::MissingField("type".into())),
        Some(other) => {
            return Err(ApiError::BadBody(format!(
                "type must be a string, got {other}"
            )))
        }
    };
    let names = attributes_of(kind).ok_or_else(|| ApiError::InvalidToxicType(kind.into()))?;
    let stream = match body.get("stream") {
        None | Some(Value::Null) => Stream::Downstream,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("downstream") => Stream::Downstream,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("upstream") => Stream::Upstream,
        Some(_) => return Err(ApiError::InvalidStream),
    };
    let attributes = attributes(kind, names, &Map::new(), body.get("attributes"))?;
    let mut toxic = Toxic::new(attributes)
        .on(stream)
        .toxicity(toxicity(body.get("toxicity"))?.unwrap_or(1.0));
    match body.get("name") {
        Some(Value::String(name)) if !name.is_empty() => toxic = toxic.named(name.clone()),
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(other) => {
            return Err(ApiError::BadBody(format!(
                "name must be a string, got {other}"
            )))
        }
    }
    check(&toxic)?;
    Ok(toxic)
}

/// `existing` with the `attributes` and `toxicity` of an update body (Toxiproxy changes only
/// those: a toxic's name, type and stream stay).
pub fn toxic_updated(existing: &Toxic, body: &Value) -> Result<Toxic, ApiError> {
    let body = object(body, "the body")?;
    let kind = existing.kind().type_name();
    let names = attributes_of(kind).ok_or_else(|| ApiError::InvalidToxicType(kind.into()))?;
    let current = match serde_json::to_value(existing.kind()) {
        Ok(Value::Object(mut json)) => match json.remove("attributes") {
            Some(Value::Object(current)) => current,
            _ => Map::new(),
        },
        _ => Map::new(),
    };
    let attributes = attributes(kind, names, &current, body.get("attributes"))?;
    let toxic = Toxic::new(attributes)
        .on(existing.stream())
        .toxicity(toxicity(body.get("toxicity"))?.unwrap_or(existing.toxicity_value()))
        .named(existing.name());
    check(&toxic)?;
    Ok(toxic)
}

fn object<'a>(value: &'a Value, what: &str) -> Result<&'a Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::BadBody(format!("{what} must be a JSON object, got {value}")))
}

/// The attributes of a `kind` toxic: `given` over `base`, missing ones zero.
fn attributes(
    kind: &str,
    names: &[&str],
    base: &Map<String, Value>,
    given: Option<&Value>,
) -> Result<ToxicKind, ApiError> {
    let empty = Map::new();
    let given = match given {
        None | Some(Value::Null) => &empty,
        Some(value) => object(value, "attributes")?,
    };
    let mut attributes = Map::new();
    for &name in names {
        let value = match given.get(name).or_else(|| base.get(name)) {
            None | Some(Value::Null) => 0,
            Some(value) => value.as_u64().ok_or_else(|| {
                ApiError::BadBody(format!(
                    "attributes.{name} must be a whole number, 0 or more; got {value}"
                ))
            })?,
        };
        attributes.insert(name.into(), value.into());
    }
    serde_json::from_value(serde_json::json!({ "type": kind, "attributes": attributes }))
        .map_err(|e| ApiError::BadBody(format!("attributes: {e}")))
}

fn toxicity(value: Option<&Value>) -> Result<Option<f64>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => match value.as_f64() {
            Some(t) if (0.0..=1.0).contains(&t) => Ok(Some(t)),
            _ => Err(ApiError::BadBody(format!(
                "toxicity must be a number between 0 and 1; got {value}"
            ))),
        },
    }
}

/// drydock's own checks (a bandwidth of 0, a slicer varying more than its size), as 400s.
fn check(toxic: &Toxic) -> Result<(), ApiError> {
    toxic.validate().map_err(|e| match e {
        drydock::Error::Fault { problem, .. } => ApiError::BadBody(problem),
        other => ApiError::BadBody(other.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_toxiproxys() {
        let toxic = toxic_from_json(&json!({"type": "latency", "attributes": {"latency": 5}}))
            .expect("a latency toxic");
        assert_eq!(
            toxic_json(&toxic),
            json!({"name": "latency_downstream", "type": "latency", "stream": "downstream",
                   "toxicity": 1.0, "attributes": {"latency": 5, "jitter": 0}})
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let negative = toxic_from_json(&json!({"type": "latency", "attributes": {"latency": -1}}));
        assert!(matches!(negative, Err(ApiError::BadBody(m)) if m.contains("attributes.latency")));
        let unknown = toxic_from_json(&json!({"type": "nope"}));
        assert!(matches!(unknown, Err(ApiError::InvalidToxicType(_))));
        let stream = toxic_from_json(&json!({"type": "timeout", "stream": "sideways"}));
        assert!(matches!(stream, Err(ApiError::InvalidStream)));
        let toxicity = toxic_from_json(&json!({"type": "timeout", "toxicity": 2}));
        assert!(matches!(toxicity, Err(ApiError::BadBody(m)) if m.contains("toxicity")));
    }

    #[test]
    fn an_update_keeps_what_it_does_not_name() {
        let toxic = toxic_from_json(
            &json!({"type": "latency", "name": "slow", "stream": "upstream",
            "attributes": {"latency": 5, "jitter": 2}}),
        )
        .expect("a latency toxic");
        let updated =
            toxic_updated(&toxic, &json!({"attributes": {"latency": 9}})).expect("an update");
        assert_eq!(
            toxic_json(&updated),
            json!({"name": "slow", "type": "latency", "stream": "upstream", "toxicity": 1.0,
                   "attributes": {"latency": 9, "jitter": 2}})
        );
    }
}
