//! A namespace: one isolated set of stubs, journal and scenario states, and what to do on a miss.
//!
//! A server has a root namespace and any number of named ones (`/__ns/<name>/…`). A new
//! namespace starts with the root's stubs, as a database cloned from a template starts with its
//! schema; from then on nothing is shared, so parallel tests on one server never see each other's
//! stubs or calls.

use std::{
    collections::{BTreeMap, HashMap},
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, RwLock},
};

use serde::{Deserialize, Serialize};

use crate::{
    error::StubError,
    journal::{Entry, Journal, JournalStats, ServeEvent},
    matching::{distance, Matcher},
    model::{DelayDistribution, RequestPattern, Stub, DEFAULT_PRIORITY, STARTED},
    mounted::{compile, Mounted},
    record::OnMiss,
    request::{LoggedRequest, ReceivedRequest},
    respond::Responder,
    verify::{write_report, Check, FailedExpectation, NearMiss, Unmatched, VerificationFailure},
};

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

/// What serving a request decided.
pub(crate) enum Outcome {
    Matched(Arc<Mounted>),
    /// The explanation is there when the miss is answered with it (`OnMiss::Fail`).
    Missed(Option<String>, OnMiss),
}

/// A scenario as WireMock lists it: its state, the states its stubs name, and its stubs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Scenario {
    /// Its name (WireMock gives the name as the id too).
    pub id: String,
    /// Its name.
    pub name: String,
    /// The state it is in.
    pub state: String,
    /// Every state its stubs require or move to, `Started` included.
    pub possible_states: Vec<String>,
    /// Its stubs.
    pub mappings: Vec<Stub>,
}

/// What a namespace is made with.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// Where `bodyFileName`s are read from.
    pub files: Option<PathBuf>,
    /// The journal's limit.
    pub journal_limit: Option<usize>,
}

#[derive(Debug)]
pub(crate) struct Namespace {
    name: String,
    options: Options,
    /// Ordered: priority ascending, then newest first.
    stubs: Vec<Arc<Mounted>>,
    journal: Journal,
    /// Calls per stub id, for expectations: counted apart from the journal, which is bounded.
    calls: HashMap<String, u64>,
    scenarios: HashMap<String, String>,
    pub on_miss: OnMiss,
    pub settings: Settings,
    recorded: Vec<Stub>,
    sequence: u64,
}

impl Namespace {
    fn new(name: &str, options: Options) -> Self {
        Namespace {
            name: name.to_string(),
            journal: Journal::new(options.journal_limit),
            options,
            stubs: Vec::new(),
            calls: HashMap::new(),
            scenarios: HashMap::new(),
            on_miss: OnMiss::default(),
            settings: Settings::default(),
            recorded: Vec::new(),
            sequence: 0,
        }
    }

    /// Adds a stub, replacing one with the same id.
    pub fn mount(&mut self, stub: Stub) -> Result<String, StubError> {
        let compiled = compile(stub, self.options.files.as_deref())?;
        Ok(self.insert(compiled))
    }

    /// Mounts all or none: every stub is compiled before the first is added.
    pub fn mount_all(&mut self, stubs: Vec<Stub>) -> Result<Vec<String>, StubError> {
        let compiled = stubs
            .into_iter()
            .map(|stub| compile(stub, self.options.files.as_deref()))
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

    /// Back to the start, as WireMock's reset: the stubs loaded from mapping files (marked
    /// `persistent`) stay, every other stub goes, and so do the journal, call counts, scenario
    /// states, recordings and settings.
    pub fn reset(&mut self) {
        let kept: Vec<Arc<Mounted>> = self
            .stubs
            .iter()
            .filter(|m| m.stub.persistent == Some(true))
            .cloned()
            .collect();
        let sequence = self.sequence;
        *self = Namespace::new(&self.name, self.options.clone());
        self.stubs = kept;
        self.sequence = sequence;
    }

    /// WireMock's `POST /__admin/mappings/reset`: back to the stubs loaded from mapping files.
    pub fn reset_stubs(&mut self) {
        self.stubs.retain(|m| m.stub.persistent == Some(true));
    }

    /// Stops recording (if it was) and hands over what was recorded.
    pub fn stop_recording(&mut self) -> Vec<Stub> {
        if let OnMiss::Record(_) = self.on_miss {
            self.on_miss = OnMiss::Fail;
        }
        self.take_recorded()
    }

    /// Forgets the requests received (the journal and the call counts).
    pub fn clear_journal(&mut self) {
        self.journal.clear();
        self.calls.clear();
    }

    pub fn reset_scenarios(&mut self) {
        self.scenarios.clear();
    }

    /// Every scenario of the mounted stubs, by name.
    pub fn scenarios(&self) -> Vec<Scenario> {
        let mut all: BTreeMap<String, Scenario> = BTreeMap::new();
        for mounted in &self.stubs {
            let Some(name) = &mounted.stub.scenario_name else {
                continue;
            };
            let scenario = all.entry(name.clone()).or_insert_with(|| Scenario {
                id: name.clone(),
                name: name.clone(),
                state: self.scenario_state(name).to_string(),
                possible_states: vec![STARTED.to_string()],
                mappings: Vec::new(),
            });
            for state in [
                &mounted.stub.required_scenario_state,
                &mounted.stub.new_scenario_state,
            ]
            .into_iter()
            .flatten()
            {
                if !scenario.possible_states.contains(state) {
                    scenario.possible_states.push(state.clone());
                }
            }
            scenario.mappings.push(mounted.stub.clone());
        }
        all.into_values().collect()
    }

    /// Puts a scenario in a state (WireMock's `PUT /__admin/scenarios/{name}/state`).
    pub fn set_scenario_state(&mut self, name: &str, state: Option<&str>) -> Result<(), String> {
        let Some(scenario) = self.scenarios().into_iter().find(|s| s.name == name) else {
            return Err(format!("no stub is in a scenario named {name:?}"));
        };
        let state = state.unwrap_or(STARTED);
        if !scenario.possible_states.iter().any(|s| s == state) {
            return Err(format!(
                "scenario {name:?} has no state {state:?}; its states are {:?}",
                scenario.possible_states
            ));
        }
        self.scenarios.insert(name.to_string(), state.to_string());
        Ok(())
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
                if mounted.stub.expect.is_some() {
                    *self.calls.entry(mounted.id.clone()).or_default() += 1;
                }
                self.journal.push(Entry {
                    request,
                    stub: Some(mounted.clone()),
                });
                Outcome::Matched(mounted)
            }
            None => {
                // The explanation is the 404's body; a miss that is forwarded does not pay for it.
                let unmatched = match self.on_miss {
                    OnMiss::Fail => Some(self.report(&request)),
                    _ => None,
                };
                self.journal.push(Entry {
                    request,
                    stub: None,
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
    pub fn explain(&self, request: &ReceivedRequest) -> Unmatched {
        Unmatched {
            request: request.logged(),
            near_misses: self.nearest(request),
        }
    }

    /// The 404 body for `request`: the explanation, as text.
    pub fn report(&self, request: &ReceivedRequest) -> String {
        let mut text = String::new();
        let _ = write_report(
            &mut text,
            &request.method,
            &request.url,
            &self.nearest(request),
        );
        text
    }

    /// The three stubs nearest to `request`, nearest first, with every check.
    fn nearest(&self, request: &ReceivedRequest) -> Vec<NearMiss> {
        let mut near: Vec<(f64, &Arc<Mounted>, Vec<Check>)> = self
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
                (distance(&checks), m, checks)
            })
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0));
        near.truncate(3);
        near.into_iter()
            .map(|(distance, m, checks)| NearMiss {
                stub_id: m.id.clone(),
                stub: m.stub.label(),
                distance,
                checks,
                stub_mapping: Some(m.stub.clone()),
            })
            .collect()
    }

    /// Every request received, oldest first, as serve events.
    pub fn serve_events(&self) -> Vec<ServeEvent> {
        self.journal.iter().map(Entry::event).collect()
    }

    /// The size of the journal, its limit, and how many requests the limit dropped.
    pub fn journal_stats(&self) -> JournalStats {
        JournalStats {
            total: self.journal.len(),
            limit: self.journal.limit(),
            dropped: self.journal.dropped(),
        }
    }

    /// The requests no stub matched, oldest first, each with its nearest stubs.
    pub fn unmatched(&self) -> Vec<Unmatched> {
        self.journal
            .iter()
            .filter(|e| e.stub.is_none())
            .map(|e| self.explain(&e.request))
            .collect()
    }

    fn compile_pattern(pattern: &RequestPattern) -> Result<Matcher, StubError> {
        Matcher::compile(pattern).map_err(|source| StubError::InvalidStub {
            stub: "(request pattern)".into(),
            source,
        })
    }

    /// How many journalled requests match `pattern`.
    pub fn count(&self, pattern: &RequestPattern) -> Result<u64, StubError> {
        let matcher = Self::compile_pattern(pattern)?;
        Ok(self
            .journal
            .iter()
            .filter(|e| matcher.is_match(&e.request))
            .count() as u64)
    }

    /// The journalled requests that match `pattern`, oldest first.
    pub fn find(&self, pattern: &RequestPattern) -> Result<Vec<LoggedRequest>, StubError> {
        let matcher = Self::compile_pattern(pattern)?;
        Ok(self
            .journal
            .iter()
            .filter(|e| matcher.is_match(&e.request))
            .map(|e| e.event().request)
            .collect())
    }

    /// The journalled requests nearest to `pattern` (at most three, nearest first), each with
    /// the pattern's checks against it (WireMock's `/__admin/near-misses/request-pattern`).
    pub fn near_requests(&self, pattern: &RequestPattern) -> Result<Vec<Unmatched>, StubError> {
        let matcher = Self::compile_pattern(pattern)?;
        let mut near: Vec<(f64, Unmatched)> = self
            .journal
            .iter()
            .map(|e| {
                let checks = matcher.explain(&e.request);
                let distance = distance(&checks);
                let miss = NearMiss {
                    stub_id: String::new(),
                    stub: "(request pattern)".into(),
                    distance,
                    checks,
                    stub_mapping: None,
                };
                (
                    distance,
                    Unmatched {
                        request: e.request.logged(),
                        near_misses: vec![miss],
                    },
                )
            })
            .collect();
        near.sort_by(|a, b| a.0.total_cmp(&b.0));
        near.truncate(3);
        Ok(near.into_iter().map(|(_, u)| u).collect())
    }

    /// Checks every stub's expected call count.
    pub fn verify(&self) -> Result<(), VerificationFailure> {
        let failed: Vec<FailedExpectation> = self
            .stubs
            .iter()
            .filter_map(|m| {
                let expected = m.stub.expect?;
                let count = self.calls.get(m.id.as_str()).copied().unwrap_or(0);
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
    options: Options,
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
    pub fn new(options: Options) -> Self {
        let mut all = HashMap::new();
        all.insert(
            String::new(),
            Arc::new(Mutex::new(Namespace::new("", options.clone()))),
        );
        Namespaces {
            all: RwLock::new(all),
            options,
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
                let mut namespace = Namespace::new(name, self.options.clone());
                namespace.sequence = root_stubs.iter().map(|m| m.sequence).max().unwrap_or(0);
                namespace.stubs = root_stubs;
                Arc::new(Mutex::new(namespace))
            })
            .clone()
    }

    /// Back to a fresh server: no named namespaces, and an empty root.
    pub fn reset_all(&self) {
        let mut all = self.all.write().unwrap_or_else(|e| e.into_inner());
        all.clear();
        all.insert(
            String::new(),
            Arc::new(Mutex::new(Namespace::new("", self.options.clone()))),
        );
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
