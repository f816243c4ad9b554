//! Atomic output files: written to a temporary name in the same folder, synced, then renamed,
//! so no half-written file ever carries a final name. Temporary files left by a killed run
//! carry [`TEMP_MARKER`] and are removed by [`clean_temp_files`] at the start of the next run.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Part of every temporary file name.
pub const TEMP_MARKER: &str = ".docseek-tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically, creating parent folders.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let temp = dir.join(format!(".{name}{TEMP_MARKER}{}-{n}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Removes temporary files left under `dir` by interrupted runs; returns how many.
pub fn clean_temp_files(dir: &Path) -> usize {
    if !dir.is_dir() {
        return 0;
    }
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().contains(TEMP_MARKER))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_and_cleanup() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("a/b/out.md");
        write_atomic(&target, b"one").unwrap();
        write_atomic(&target, b"two").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> =
            std::fs::read_dir(target.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file remains: {names:?}");
        let leftover = tmp.path().join(format!("a/.x.md{TEMP_MARKER}99-0"));
        std::fs::write(&leftover, b"half").unwrap();
        assert_eq!(clean_temp_files(tmp.path()), 1);
        assert!(!leftover.exists() && target.exists());
    }
}
