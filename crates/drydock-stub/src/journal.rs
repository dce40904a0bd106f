//! The request journal: what a namespace received, bounded as WireMock's
//! `--max-request-journal-entries` bounds it, and the serve events it lists.

use std::{collections::VecDeque, sync::Arc};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    model::Stub,
    mounted::Mounted,
    request::{LoggedRequest, ReceivedRequest},
};

/// How many requests a journal keeps unless told otherwise: enough for any test's assertions,
/// and a bound on the memory a long-running or load-tested server spends on it.
pub const DEFAULT_JOURNAL_LIMIT: usize = 10_000;

/// One request and the stub that answered it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub request: Arc<ReceivedRequest>,
    pub stub: Option<Arc<Mounted>>,
}

impl Entry {
    /// The entry as WireMock lists it.
    pub fn event(&self) -> ServeEvent {
        let mut request = self.request.logged();
        request.was_matched = self.stub.is_some();
        request.stub_id = self.stub.as_ref().map(|m| m.id.clone());
        ServeEvent {
            id: request.id.clone(),
            request,
            response_definition: match &self.stub {
                Some(mounted) => json!(mounted.stub.response),
                None => json!({"status": 404, "fromConfiguredStub": false}),
            },
            was_matched: self.stub.is_some(),
            stub_mapping: self.stub.as_ref().map(|m| m.stub.clone()),
        }
    }
}

/// The journal of one namespace. With a limit, the oldest entries make room for new ones, as in
/// WireMock, and are counted.
#[derive(Debug)]
pub(crate) struct Journal {
    entries: VecDeque<Entry>,
    limit: Option<usize>,
    dropped: u64,
}

impl Journal {
    pub fn new(limit: Option<usize>) -> Self {
        Journal {
            entries: VecDeque::new(),
            limit,
            dropped: 0,
        }
    }

    pub fn push(&mut self, entry: Entry) {
        if let Some(limit) = self.limit {
            if limit == 0 {
                self.dropped += 1;
                return;
            }
            while self.entries.len() >= limit {
                self.entries.pop_front();
                self.dropped += 1;
            }
        }
        self.entries.push_back(entry);
    }

    /// Oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Entry> {
        self.entries.iter()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// Entries dropped to keep within the limit since the namespace was made or reset.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// A request as the journal lists it (WireMock's serve event): the request, whether and by
/// which stub it was matched, and the response definition it was answered with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ServeEvent {
    /// The event's id.
    pub id: String,
    /// The request.
    pub request: LoggedRequest,
    /// The matched stub's response, or `{"status": 404, "fromConfiguredStub": false}`.
    #[serde(default)]
    pub response_definition: Value,
    /// Whether a stub answered it.
    #[serde(default)]
    pub was_matched: bool,
    /// The stub that answered it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stub_mapping: Option<Stub>,
}

/// How the journal stands: its size, its limit and what the limit dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JournalStats {
    /// Requests in the journal now.
    pub total: usize,
    /// The most it keeps (`None`: no limit).
    pub limit: Option<usize>,
    /// Requests dropped, oldest first, to stay within the limit.
    pub dropped: u64,
}
