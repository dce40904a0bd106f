//! A namespace: one isolated set of stubs, journal and scenario states, and what to do on a miss.
//!
//! A server has a root namespace and any number of named ones (`/__ns/<name>/…`). A new
//! namespace starts with the root's stubs, as a database cloned from a template starts with its
//! schema; from then on nothing is shared, so parallel tests on one server never see each other's
//! stubs or calls.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, RwLock},
};

use serde::{Deserialize, Serialize};

use crate::{
    error::{InvalidStub, StubError},
    matching::{distance, Check, Matcher},
    model::{DelayDistribution, RequestPattern, Stub, DEFAULT_PRIORITY, STARTED},
    record::OnMiss,
    request::{LoggedRequest, ReceivedRequest},
    respond::Responder,
    verify::{CheckReport, FailedExpectation, NearMiss, Unmatched, VerificationFailure},
};

/// A stub as mounted: compiled, with its place in the order.
#[derive(Debug)]
pub(crate) struct Mounted {
    pub stub: Stub,
    pub id: String,
    matcher: Matcher,
    pub responder: Responder,
    priority: u32,
    sequence: u64,
}

/// Compiles a stub, giving it an id if it has none.
pub(crate) fn compile(mut stub: Stub) -> Result<(Stub, Matcher, Responder), StubError> {
    if stub.id.is_none() {
        stub.id = stub.uuid.take();
    }
    stub.uuid = None;
    let invalid = |source: InvalidStub, stub: &Stub| StubError::InvalidStub {
        stub: stub.label(),
        source,
    };
    let matcher = Matcher::compile(&stub.request).map_err(|e| invalid(e, &stub))?;
    let responder = Responder::compile(&stub.response).map_err(|e| invalid(e, &stub))?;
    if (stub.required_scenario_state.is_some() || stub.new_scenario_state.is_some())
        && stub.scenario_name.is_none()
    {
        return Err(invalid(
            InvalidStub::new(
                "scenarioName",
                "is missing: requiredScenarioState and newScenarioState belong to a scenario",
            ),
            &stub,
        ));
    }
    if stub.id.is_none() {
        stub.id = Some(uuid::Uuid::new_v4().to_string());
    }
    Ok((stub, matcher, responder))
}

/// Delays every response of a namespace (WireMock's global settings).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Settings {
    /// Added to every response (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<u64>,
    /// A random delay added to every response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_distribution: Option<DelayDistribution>,
}

/// A journal entry: the request and the stub that answered it.
#[derive(Debug)]
struct Entry {
    request: Arc<ReceivedRequest>,
    stub_id: Option<String>,
}

/// What serving a request decided.
pub(crate) enum Outcome {
    Matched(Arc<Mounted>),
    /// The explanation is there when the miss is answered with it (`OnMiss::Fail`).
    Missed(Option<Box<Unmatched>>, OnMiss),
}

#[derive(Debug, Default)]
pub(crate) struct Namespace {
    name: String,
    /// Ordered: priority ascending, then newest first.
    stubs: Vec<Arc<Mounted>>,
    journal: Vec<Entry>,
    scenarios: HashMap<String, String>,
    pub on_miss: OnMiss,
    pub settings: Settings,
    recorded: Vec<Stub>,
    sequence: u64,
}

impl Namespace {
    fn new(name: &str) -> Self {
        Namespace {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Adds a stub, replacing one with the same id.
    pub fn mount(&mut self, stub: Stub) -> Result<String, StubError> {
        Ok(self.insert(compile(stub)?))
    }

    /// Mounts all or none: every stub is compiled before the first is added.
    pub fn mount_all(&mut self, stubs: Vec<Stub>) -> Result<Vec<String>, StubError> {
        let compiled = stubs
            .into_iter()
            .map(compile)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(compiled.into_iter().map(|c| self.insert(c)).collect())
    }

    fn insert(&mut self, (stub, matcher, responder): (Stub, Matcher, Responder)) -> String {
        let id = stub.id.clone().unwrap_or_default();
        self.stubs.retain(|m| m.id != id);
        self.sequence += 1;
        let mounted = Arc::new(Mounted {
            priority: stub.priority.unwrap_or(DEFAULT_PRIORITY),
            id: id.clone(),
            stub,
            matcher,
            responder,
            sequence: self.sequence,
        });
        let order = |m: &Mounted| (m.priority, std::cmp::Reverse(m.sequence));
        let at = self.stubs.partition_point(|m| order(m) < order(&mounted));
        self.stubs.insert(at, mounted);
        id
    }

    pub fn remove(&mut self, id: &str) -> Result<(), StubError> {
        let before = self.stubs.len();
        self.stubs.retain(|m| m.id != id);
        if self.stubs.len() == before {
            return Err(StubError::NoSuchStub(id.to_string()));
        }
        Ok(())
    }

    pub fn stub(&self, id: &str) -> Result<Stub, StubError> {
        self.stubs
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.stub.clone())
            .ok_or_else(|| StubError::NoSuchStub(id.to_string()))
    }

    pub fn stubs(&self) -> Vec<Stub> {
        self.stubs.iter().map(|m| m.stub.clone()).collect()
    }

    pub fn remove_all(&mut self) {
        self.stubs.clear();
    }

    /// Back to empty: no stubs, journal, scenario states, recordings or settings.
    pub fn reset(&mut self) {
        *self = Namespace::new(&self.name);
    }

    pub fn clear_journal(&mut self) {
        self.journal.clear();
    }

    pub fn reset_scenarios(&mut self) {
        self.scenarios.clear();
    }

    pub fn scenarios(&self) -> HashMap<String, String> {
        let mut states: HashMap<String, String> = self
            .stubs
            .iter()
            .filter_map(|m| m.stub.scenario_name.clone())
            .map(|name| (name, STARTED.to_string()))
            .collect();
        states.extend(self.scenarios.clone());
        states
    }

    fn scenario_state(&self, name: &str) -> &str {
        self.scenarios
            .get(name)
            .map(String::as_str)
            .unwrap_or(STARTED)
    }

    fn in_state(&self, mounted: &Mounted) -> bool {
        match (
            &mounted.stub.scenario_name,
            &mounted.stub.required_scenario_state,
        ) {
            (Some(scenario), Some(required)) => self.scenario_state(scenario) == required,
            _ => true,
        }
    }

    /// Finds the stub for `request`, moves its scenario, and journals the request.
    pub fn serve(&mut self, request: Arc<ReceivedRequest>) -> Outcome {
        let found = self
            .stubs
            .iter()
            .find(|m| self.in_state(m) && m.matcher.is_match(&request))
            .cloned();
        match found {
            Some(mounted) => {
                if let (Some(scenario), Some(next)) = (
                    &mounted.stub.scenario_name,
                    &mounted.stub.new_scenario_state,
                ) {
                    self.scenarios.insert(scenario.clone(), next.clone());
                }
                self.journal.push(Entry {
                    request,
                    stub_id: Some(mounted.id.clone()),
                });
                Outcome::Matched(mounted)
            }
            None => {
                // The explanation is the 404's body; a miss that is forwarded does not pay for it.
                let unmatched = match self.on_miss {
                    OnMiss::Fail => Some(Box::new(self.explain(&request))),
                    _ => None,
                };
                self.journal.push(Entry {
                    request,
                    stub_id: None,
                });
                Outcome::Missed(unmatched, self.on_miss.clone())
            }
        }
    }

    /// Keeps a recorded exchange, once per distinct request.
    pub fn record(&mut self, stub: Stub) {
        if !self
            .recorded
            .iter()
            .any(|r| r.request == stub.request && r.scenario_name == stub.scenario_name)
        {
            self.recorded.push(stub);
        }
    }

    pub fn take_recorded(&mut self) -> Vec<Stub> {
        std::mem::take(&mut self.recorded)
    }

    /// The three stubs nearest to `request`, with what did not match.
    fn explain(&self, request: &ReceivedRequest) -> Unmatched {
        let mut near: Vec<NearMiss> = self
            .stubs
            .iter()
            .map(|m| {
                let mut checks = m.matcher.explain(request);
                if let (Some(scenario), Some(required)) =
                    (&m.stub.scenario_name, &m.stub.required_scenario_state)
                {
                    let state = self.scenario_state(scenario);
                    checks.push(Check {
                        what: format!("scenario {scenario}"),
                        expected: format!("state {required:?}"),
                        actual: format!("state {state:?}"),
                        matched: state == required,
                        details: Vec::new(),
                    });
                }
                NearMiss {
                    stub_id: m.id.clone(),
                    stub: m.stub.label(),
                    distance: distance(&checks),
                    checks: checks.into_iter().map(CheckReport::from).collect(),
                }
            })
            .collect();
        near.sort_by(|a, b| a.distance.total_cmp(&b.distance));
        near.truncate(3);
        Unmatched {
            request: request.logged(None),
            near_misses: near,
        }
    }

    pub fn journal(&self) -> Vec<LoggedRequest> {
        self.journal
            .iter()
            .map(|e| e.request.logged(e.stub_id.as_deref()))
            .collect()
    }

    pub fn unmatched(&self) -> Vec<Unmatched> {
        self.journal
            .iter()
            .filter(|e| e.stub_id.is_none())
            .map(|e| self.explain(&e.request))
            .collect()
    }

    /// How many journalled requests match `pattern`.
    pub fn count(&self, pattern: &RequestPattern) -> Result<u64, StubError> {
        let matcher = Matcher::compile(pattern).map_err(|source| StubError::InvalidStub {
            stub: "(count pattern)".into(),
            source,
        })?;
        Ok(self
            .journal
            .iter()
            .filter(|e| matcher.is_match(&e.request))
            .count() as u64)
    }

    /// Checks every stub's expected call count.
    pub fn verify(&self) -> Result<(), VerificationFailure> {
        let mut calls: HashMap<&str, u64> = HashMap::new();
        for entry in &self.journal {
            if let Some(id) = &entry.stub_id {
                *calls.entry(id.as_str()).or_default() += 1;
            }
        }
        let failed: Vec<FailedExpectation> = self
            .stubs
            .iter()
            .filter_map(|m| {
                let expected = m.stub.expect?;
                let count = calls.get(m.id.as_str()).copied().unwrap_or(0);
                (!expected.admits(count)).then(|| FailedExpectation {
                    stub_id: m.id.clone(),
                    stub: m.stub.label(),
                    expected,
                    calls: count,
                })
            })
            .collect();
        if failed.is_empty() {
            return Ok(());
        }
        Err(VerificationFailure {
            namespace: self.name.clone(),
            failed,
            unmatched: self.unmatched(),
        })
    }
}

/// Every namespace of a server; the root's name is the empty string.
#[derive(Debug)]
pub(crate) struct Namespaces {
    all: RwLock<HashMap<String, Arc<Mutex<Namespace>>>>,
}

/// A namespace name: letters, digits, `-`, `_` and `.`, so it is one path segment.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Namespaces {
    pub fn new() -> Self {
        let mut all = HashMap::new();
        all.insert(String::new(), Arc::new(Mutex::new(Namespace::new(""))));
        Namespaces {
            all: RwLock::new(all),
        }
    }

    /// The namespace, if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Mutex<Namespace>>> {
        self.all
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// The namespace, created from the root's stubs if it does not exist.
    pub fn get_or_create(&self, name: &str) -> Arc<Mutex<Namespace>> {
        if let Some(existing) = self.get(name) {
            return existing;
        }
        let root_stubs = self
            .get("")
            .map(|root| lock(&root).stubs.clone())
            .unwrap_or_default();
        let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
        all.entry(name.to_string())
            .or_insert_with(|| {
                let mut namespace = Namespace::new(name);
                namespace.sequence = root_stubs.iter().map(|m| m.sequence).max().unwrap_or(0);
                namespace.stubs = root_stubs;
                Arc::new(Mutex::new(namespace))
            })
            .clone()
    }

    /// Removes a named namespace; the root stays.
    pub fn remove(&self, name: &str) -> bool {
        !name.is_empty()
            && self
                .all
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(name)
                .is_some()
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .all
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        names.sort();
        names
    }
}

/// Locks a namespace; a panic elsewhere while it was held does not make it unusable, since every
/// change to it is a single step.
pub(crate) fn lock(namespace: &Mutex<Namespace>) -> MutexGuard<'_, Namespace> {
    namespace.lock().unwrap_or_else(|e| e.into_inner())
}
