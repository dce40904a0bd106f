//! The Debian base image: a minimal root file system made by `debootstrap` in a temporary
//! folder, packed with its Dockerfile as a build context.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

use super::context;

/// Where `debootstrap` downloads from, unless `$DRYDOCK_DEBIAN_MIRROR` says otherwise.
const MIRROR: &str = "http://deb.debian.org/debian";
/// `ADD` of a tar keeps owners and modes, which `COPY` of a folder would not.
pub(super) const DOCKERFILE: &str = "FROM scratch\nADD rootfs.tar /\nCMD [\"bash\"]\n";

/// A minimal Debian `suite` (`bookworm`, `trixie`) made by `debootstrap`, packed as a build
/// context whose Dockerfile adds it to an empty image.
pub(super) fn context(suite: &str) -> Result<Vec<u8>> {
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!(
            "`debootstrap` is not installed; it makes the Debian base of the local images.\n  \
             to fix: `apt-get install debootstrap` (as root), then run this again"
        );
    }
    // debootstrap leaves a root-owned tree of a few hundred MB (and its tar beside it) that must
    // not linger: removed when `work` drops, on errors too. In `$TMPDIR`, else `/var/tmp` rather
    // than `/tmp`, which is often a tmpfs in memory.
    let work = tempfile::Builder::new()
        .prefix("drydock-debootstrap-")
        .tempdir_in(
            std::env::var_os("TMPDIR")
                .filter(|d| !d.is_empty())
                .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from),
        )
        .context("making a temporary folder for debootstrap")?;
    let rootfs = work.path().join("rootfs");
    let mirror = std::env::var("DRYDOCK_DEBIAN_MIRROR").unwrap_or_else(|_| MIRROR.into());
    let log = work.path().join("debootstrap.log");
    let err = work.path().join("debootstrap.err");
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", suite])
        .arg(&rootfs)
        .arg(&mirror)
        .stdout(std::fs::File::create(&log)?)
        .stderr(std::fs::File::create(&err)?)
        .status()
        .context("running debootstrap")?;
    if !status.success() {
        // debootstrap reports its errors (`E: …`) on stdout, among its progress.
        let tail = [&log, &err].map(|file| last_lines(file, 20)).concat();
        bail!("debootstrap {suite} from {mirror} failed ({status}):\n{tail}\n  to fix: check that the mirror is reachable, or set DRYDOCK_DEBIAN_MIRROR");
    }
    for cache in ["var/cache/apt/archives", "var/lib/apt/lists"] {
        let dir = rootfs.join(cache);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.path().is_file() {
                    std::fs::remove_file(entry.path())?;
                }
            }
        }
    }
    let rootfs_tar = work.path().join("rootfs.tar");
    let status = Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&rootfs)
        .arg("-cf")
        .arg(&rootfs_tar)
        .arg(".")
        .status()
        .context("packing the root file system with tar")?;
    if !status.success() {
        bail!("packing {} with tar failed ({status})", rootfs.display());
    }
    let mut archive = tar::Builder::new(Vec::new());
    context::append(&mut archive, "Dockerfile", 0o644, DOCKERFILE.as_bytes())?;
    archive.append_path_with_name(&rootfs_tar, "rootfs.tar")?;
    Ok(archive.into_inner()?)
}

/// The last `n` lines of a text file; none if it cannot be read.
fn last_lines(file: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|line| format!("{line}\n"))
        .collect()
}
