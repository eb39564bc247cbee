//! The external tools the eks and kind provisioners drive: how each is
//! called, and how its output is read. `process` runs any of them.

pub mod docker;
pub mod helm;
pub mod kind;
pub mod process;
pub mod terraform;

/// Writes a file only its owner may read (kubeconfigs, env files with credentials).
pub fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}
