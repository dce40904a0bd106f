//! Build contexts (in-memory tars of a Dockerfile and its files) and `docker build` of one,
//! streamed, with the last lines of the build's log in the error when it fails.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};
use drydock::docker::{
    bollard::{body_full, query_parameters::BuildImageOptionsBuilder},
    Engine,
};
use futures::StreamExt;

use super::{cargo_binary::CargoBinary, recipes::File, RECIPE_LABEL};

/// Adds `content` to the context at `path`, owned by root, with `mode`.
///
/// A plain entry: the tar crate would write a large file read from disk as GNU sparse, which
/// Docker's builder rejects ("unhandled tar header type 83").
pub(super) fn append(
    archive: &mut tar::Builder<Vec<u8>>,
    path: &str,
    mode: u32,
    content: &[u8],
) -> Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(mode);
    header.set_cksum();
    archive.append_data(&mut header, path, content)?;
    Ok(())
}

/// The build context of a Dockerfile recipe: its files, and its binaries (built or installed
/// first when needed).
pub(super) fn of_dockerfile(files: &[File], binaries: &[CargoBinary]) -> Result<Vec<u8>> {
    let mut archive = tar::Builder::new(Vec::new());
    for file in files {
        append(&mut archive, file.path, file.mode, file.content)?;
    }
    for binary in binaries {
        let installed = binary.ensure_installed()?;
        let content = std::fs::read(&installed)
            .with_context(|| format!("reading {}", installed.display()))?;
        append(&mut archive, binary.path, 0o755, &content)?;
    }
    Ok(archive.into_inner()?)
}

/// `docker build` of `context`, tagged `tag` and labelled with the recipe's `hash`.
pub(super) async fn build_image(
    engine: &Engine,
    tag: &str,
    hash: &str,
    context: Vec<u8>,
) -> Result<()> {
    let labels = HashMap::from([(RECIPE_LABEL, hash)]);
    let options = BuildImageOptionsBuilder::new()
        .t(tag)
        .labels(&labels)
        .rm(true)
        .forcerm(true)
        .build();
    let mut output = engine
        .docker()
        .build_image(options, None, Some(body_full(context.into())));
    let mut log: Vec<String> = Vec::new();
    while let Some(step) = output.next().await {
        let info = match step {
            Ok(info) => info,
            Err(e) => bail!("{e}\n--- last lines of the build ---\n{}", tail(&log)),
        };
        if let Some(line) = info.stream {
            tracing::debug!("{}", line.trim_end());
            log.push(line);
        }
        if let Some(error) = info.error_detail {
            let message = error.message.unwrap_or_default();
            bail!("{message}\n--- last lines of the build ---\n{}", tail(&log));
        }
    }
    Ok(())
}

/// The last 30 lines of a build's log.
fn tail(log: &[String]) -> String {
    let start = log.len().saturating_sub(30);
    log[start..].concat()
}
