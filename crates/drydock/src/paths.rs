//! Paths a spec names (migrations, fixtures, stub mappings), made absolute so they mean the same
//! in the keeper's process.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// `path` made absolute against `base` (the calling crate's directory); it must exist.
///
/// ```
/// let dir = std::env::temp_dir();
/// let found = drydock::paths::resolve(&dir, std::path::Path::new("."), "directory")?;
/// assert!(found.is_absolute());
/// let missing = drydock::paths::resolve(&dir, "no/such/migrations".as_ref(), "migrations directory");
/// assert!(missing.unwrap_err().to_string().contains("no/such/migrations"));
/// # Ok::<(), drydock::Error>(())
/// ```
pub fn resolve(base: &Path, path: &Path, what: &'static str) -> Result<PathBuf> {
    let resolved = base.join(path);
    if !resolved.exists() {
        return Err(Error::MissingPath {
            what,
            path: path.to_path_buf(),
            resolved,
            base: base.display().to_string(),
        });
    }
    Ok(resolved)
}
