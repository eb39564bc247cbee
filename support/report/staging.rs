//! A report directory belongs to one run at a time, and its reports change
//! only when a run's new ones are whole. The run holds an OS lock on
//! `.meshspec.lock` (released by the kernel however the process ends), writes
//! every report into a private staging directory, checks that each one parses,
//! and then renames them into place one by one: a reader sees the previous
//! file or the new one, never half of one.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = ".meshspec.lock";
const STAGING_PREFIX: &str = ".staging-";

#[derive(Debug, thiserror::Error)]
pub enum ReportDirError {
    #[error(
        "the report directory {dir} is in use by another meshspec run ({holder}); wait for it to end or pass another --report-dir"
    )]
    InUse { dir: PathBuf, holder: String },
    #[error("cannot use the report directory {dir}: {cause}")]
    Io { dir: PathBuf, cause: String },
    #[error("the run wrote a report that does not parse, so the previous reports were kept: {file}: {cause}")]
    Invalid { file: PathBuf, cause: String },
}

/// A claimed report directory.
#[derive(Debug)]
pub struct ReportDir {
    pub dir: PathBuf,
    /// Where this run writes; published into `dir` at the end.
    pub staging: PathBuf,
    _lock: std::fs::File,
}

fn io(dir: &Path) -> impl Fn(std::io::Error) -> ReportDirError + '_ {
    move |e| ReportDirError::Io { dir: dir.to_path_buf(), cause: e.to_string() }
}

impl ReportDir {
    /// Claim `dir` for this run, or say who holds it.
    pub fn claim(dir: &Path, command: &str) -> Result<ReportDir, ReportDirError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(LOCK_FILE);
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io(dir))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = lock.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() { "its holder did not say who it is" } else { holder };
                return Err(ReportDirError::InUse { dir: dir.to_path_buf(), holder: holder.to_string() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(dir)(e)),
        }
        let who = format!(
            "pid {}, `{command}`, started {}",
            std::process::id(),
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
        );
        lock.set_len(0).and_then(|_| lock.rewind()).and_then(|_| lock.write_all(who.as_bytes())).map_err(io(dir))?;
        // Holding the lock, any staging directory is a killed run's: gone.
        for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
            if e.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let staging = dir.join(format!("{STAGING_PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&staging).map_err(io(dir))?;
        Ok(ReportDir { dir: dir.to_path_buf(), staging, _lock: lock })
    }

    /// Where a staged file ends up.
    pub fn published(&self, staged: &Path) -> PathBuf {
        match staged.strip_prefix(&self.staging) {
            Ok(rel) => self.dir.join(rel),
            Err(_) => staged.to_path_buf(),
        }
    }

    /// Check the staged reports, then move each into place.
    pub fn publish(&self) -> Result<(), ReportDirError> {
        validate(&self.staging)?;
        let mut entries: Vec<_> = std::fs::read_dir(&self.staging).map_err(io(&self.dir))?.flatten().collect();
        // The page last: it links the others.
        entries.sort_by_key(|e| e.file_name() == crate::report::html::FILE);
        for e in entries {
            let dest = self.dir.join(e.file_name());
            if e.path().is_dir() && dest.is_dir() {
                std::fs::remove_dir_all(&dest).map_err(io(&self.dir))?;
            }
            std::fs::rename(e.path(), &dest).map_err(io(&self.dir))?;
        }
        let _ = std::fs::remove_dir(&self.staging);
        Ok(())
    }
}

impl Drop for ReportDir {
    fn drop(&mut self) {
        // Nothing half-written stays behind (published files were moved out already).
        let _ = std::fs::remove_dir_all(&self.staging);
    }
}

/// Every report the run wrote must parse: JSON as JSON, XML to its end.
pub fn validate(dir: &Path) -> Result<(), ReportDirError> {
    let bad = |file: &Path, cause: String| ReportDirError::Invalid { file: file.to_path_buf(), cause };
    for e in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let path = e.path();
        let ext = path.extension().and_then(|x| x.to_str()).unwrap_or_default().to_string();
        match ext.as_str() {
            "json" => {
                let bytes = std::fs::read(&path).map_err(|e| bad(&path, e.to_string()))?;
                serde_json::from_slice::<serde_json::Value>(&bytes).map_err(|e| bad(&path, e.to_string()))?;
            }
            "xml" => {
                let text = std::fs::read_to_string(&path).map_err(|e| bad(&path, e.to_string()))?;
                let mut reader = quick_xml::Reader::from_str(&text);
                reader.config_mut().check_end_names = true;
                let mut depth: i64 = 0;
                let mut roots = 0;
                loop {
                    match reader.read_event() {
                        Ok(quick_xml::events::Event::Start(_)) => {
                            if depth == 0 {
                                roots += 1;
                            }
                            depth += 1;
                        }
                        Ok(quick_xml::events::Event::End(_)) => depth -= 1,
                        Ok(quick_xml::events::Event::Empty(_)) if depth == 0 => roots += 1,
                        Ok(quick_xml::events::Event::Eof) => break,
                        Ok(_) => {}
                        Err(e) => return Err(bad(&path, e.to_string())),
                    }
                }
                if depth != 0 || roots != 1 {
                    return Err(bad(
                        &path,
                        format!("not one whole XML document ({roots} roots, depth {depth} at the end)"),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_says_who_holds_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let first = ReportDir::claim(dir.path(), "meshspec run").unwrap();
        let second = ReportDir::claim(dir.path(), "meshspec run").unwrap_err();
        let text = second.to_string();
        assert!(text.contains(&format!("pid {}", std::process::id())), "{text}");
        assert!(text.contains("in use by another meshspec run"), "{text}");
        drop(first);
        assert!(ReportDir::claim(dir.path(), "meshspec run").is_ok());
    }

    #[test]
    fn the_previous_reports_stay_until_the_new_ones_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("junit.xml"), "<testsuites/>").unwrap();
        let r = ReportDir::claim(dir.path(), "meshspec run").unwrap();
        std::fs::write(r.staging.join("junit.xml"), "<testsuites><testsuite>").unwrap();
        assert!(matches!(r.publish(), Err(ReportDirError::Invalid { .. })));
        assert_eq!(std::fs::read_to_string(dir.path().join("junit.xml")).unwrap(), "<testsuites/>");
        std::fs::write(r.staging.join("junit.xml"), "<testsuites><testsuite/></testsuites>").unwrap();
        std::fs::write(r.staging.join("cucumber.json"), "[]").unwrap();
        r.publish().unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("junit.xml")).unwrap(),
            "<testsuites><testsuite/></testsuites>"
        );
        drop(r);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert!(left.iter().all(|n| !n.to_string_lossy().starts_with(STAGING_PREFIX)), "{left:?}");
    }

    #[test]
    fn empty_and_cut_reports_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cucumber.json"), "").unwrap();
        assert!(validate(dir.path()).is_err());
        std::fs::write(dir.path().join("cucumber.json"), "[{\"a\":").unwrap();
        assert!(validate(dir.path()).is_err());
        std::fs::write(dir.path().join("cucumber.json"), "[]").unwrap();
        std::fs::write(dir.path().join("junit.xml"), "").unwrap();
        assert!(validate(dir.path()).is_err());
    }
}
