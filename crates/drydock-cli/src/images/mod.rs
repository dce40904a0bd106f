//! `drydock images`: the commands `build` and `list` of the local images, built from Debian's
//! packages, and the order they are built in.
//!
//! Each image is labelled with a hash of its recipe (and of the recipe it is built on), so a
//! second run finds it up to date in seconds, and a changed recipe rebuilds exactly what depends
//! on it. The recipes live in the repository's `images/` folder and are compiled in, so the
//! command needs nothing beside itself but Docker and `debootstrap`.

mod cargo_binary;
mod context;
mod debootstrap;
mod recipes;

use std::time::Instant;

use anyhow::{Context, Result};
use drydock::docker::Engine;

use recipes::{Recipe, Source, RECIPES};

/// The image label that holds the hash of the recipe the image was built from.
const RECIPE_LABEL: &str = "drydock.recipe";

/// `drydock images build`: the images named in `only` and what they are built on (all of them
/// when `only` is empty), each unless it is up to date or `force`.
pub async fn build(force: bool, only: &[String]) -> Result<()> {
    let engine = Engine::connect().await?;
    for recipe in wanted(only)? {
        let hash = recipe.hash()?;
        if !force && built_hash(&engine, recipe.tag).await.as_deref() == Some(hash.as_str()) {
            println!("{:<32} up to date", recipe.tag);
            continue;
        }
        let started = Instant::now();
        let replaced = built_id(&engine, recipe.tag).await;
        println!("{:<32} building…", recipe.tag);
        let context = match &recipe.source {
            Source::Debootstrap { suite } => debootstrap::context(suite)?,
            Source::Dockerfile {
                files, binaries, ..
            } => context::of_dockerfile(files, binaries)?,
        };
        context::build_image(&engine, recipe.tag, &hash, context)
            .await
            .with_context(|| format!("building {}", recipe.tag))?;
        println!("{:<32} built in {:.0?}", recipe.tag, started.elapsed());
        if let Some(old) = replaced {
            remove_replaced(&engine, recipe.tag, &old).await;
        }
    }
    Ok(())
}

/// The id of the image tagged `tag`, if it is one this command built (it carries the recipe
/// label): only such an image is removed once a new build takes its tag.
async fn built_id(engine: &Engine, tag: &str) -> Option<String> {
    let image = engine.docker().inspect_image(tag).await.ok()?;
    image.config?.labels?.get(RECIPE_LABEL)?;
    image.id
}

/// Removes the image a new build of `tag` replaced: untagged, it would stay on disk unused
/// (hundreds of MB per rebuild). Left alone while a container still uses it.
async fn remove_replaced(engine: &Engine, tag: &str, old: &str) {
    if built_id(engine, tag).await.as_deref() == Some(old) {
        return; // the build reused it
    }
    let options = drydock::docker::bollard::query_parameters::RemoveImageOptionsBuilder::new()
        .noprune(false)
        .build();
    if let Err(e) = engine.docker().remove_image(old, Some(options), None).await {
        tracing::debug!(image = old, error = %e, "the replaced image stays (in use?)");
    }
}

/// `drydock images list`.
pub async fn list() -> Result<()> {
    let engine = Engine::connect().await?;
    for recipe in RECIPES {
        let state = match built_hash(&engine, recipe.tag).await {
            Some(hash) if hash == recipe.hash()? => "up to date",
            Some(_) => "out of date",
            None => "missing",
        };
        println!("{:<32} {state}", recipe.tag);
    }
    Ok(())
}

/// The recipes named in `only`, each after the ones it is built on; all of them when `only` is
/// empty.
fn wanted(only: &[String]) -> Result<Vec<&'static Recipe>> {
    if only.is_empty() {
        return Ok(RECIPES.iter().collect());
    }
    let mut wanted: Vec<&'static Recipe> = Vec::new();
    for name in only {
        let mut chain = Vec::new();
        let mut next = Some(recipes::recipe(name)?);
        while let Some(recipe) = next {
            chain.push(recipe);
            next = recipe.base()?;
        }
        for recipe in chain.into_iter().rev() {
            if !wanted.iter().any(|w| w.name == recipe.name) {
                wanted.push(recipe);
            }
        }
    }
    Ok(wanted)
}

/// The recipe hash on the image now tagged `tag`, if there is one.
async fn built_hash(engine: &Engine, tag: &str) -> Option<String> {
    let image = engine.docker().inspect_image(tag).await.ok()?;
    image.config?.labels?.get(RECIPE_LABEL).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(recipes: &[&Recipe]) -> Vec<&'static str> {
        recipes.iter().map(|r| r.name).collect()
    }

    #[test]
    fn a_named_image_comes_after_its_base_and_each_comes_once() -> Result<()> {
        let only = ["redis".to_string(), "beanstalkd".to_string()];
        assert_eq!(
            names(&wanted(&only)?),
            ["debian", "redis", "beanstalkd"],
            "the base first, once"
        );
        assert_eq!(names(&wanted(&[])?).len(), RECIPES.len(), "all by default");
        assert!(wanted(&["nginx".to_string()]).is_err());
        Ok(())
    }
}
