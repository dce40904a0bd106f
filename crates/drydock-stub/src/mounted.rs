//! A stub as mounted: its pattern and response compiled, with its place in the matching order.

use std::path::Path;

use crate::{
    error::StubError, invalid::InvalidStub, matching::Matcher, model::Stub, respond::Responder,
};

/// A stub as mounted: compiled, with its place in the order.
#[derive(Debug)]
pub(crate) struct Mounted {
    pub stub: Stub,
    pub id: String,
    pub matcher: Matcher,
    pub responder: Responder,
    pub priority: u32,
    /// When it was mounted: among equal priorities the newest wins.
    pub sequence: u64,
}

/// Compiles a stub, giving it an id if it has none; `files` is where `bodyFileName`s are.
pub(crate) fn compile(
    mut stub: Stub,
    files: Option<&Path>,
) -> Result<(Stub, Matcher, Responder), StubError> {
    if stub.id.is_none() {
        stub.id = stub.uuid.take();
    }
    stub.uuid = None;
    let invalid = |source: InvalidStub, stub: &Stub| StubError::InvalidStub {
        stub: stub.label(),
        source,
    };
    let matcher = Matcher::compile(&stub.request).map_err(|e| invalid(e, &stub))?;
    let responder = Responder::compile(&stub.response, files).map_err(|e| invalid(e, &stub))?;
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
