//! Finding libpdfium.
//!
//! Search order (the first hit wins):
//! 1. `--pdfium-lib PATH` (a file or a folder holding `libpdfium.so`);
//! 2. the `DOCSEEK_PDFIUM_LIB` environment variable (same form);
//! 3. next to the running executable;
//! 4. `vendor/pdfium/` in the executable's folder or any folder above it (a repository checkout
//!    running `target/{debug,release}/docseek`);
//! 5. `vendor/pdfium/` in the source tree this binary was built from (`CARGO_MANIFEST_DIR`);
//! 6. the system: each folder of `LD_LIBRARY_PATH`, then the usual library folders.
//!
//! An explicit path (1 or 2) that holds no library is an error, never silently skipped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::PdfError;

/// Environment variable naming libpdfium (a file or a folder).
pub const PDFIUM_ENV: &str = "DOCSEEK_PDFIUM_LIB";
/// The repository-local folder `scripts/fetch-pdfium.sh` installs into.
pub const VENDOR_DIR: &str = "vendor/pdfium";
/// File name of the library on this platform.
pub const LIBRARY_FILE: &str = if cfg!(target_os = "macos") {
    "libpdfium.dylib"
} else if cfg!(target_os = "windows") {
    "pdfium.dll"
} else {
    "libpdfium.so"
};
/// System folders searched last.
const SYSTEM_DIRS: &[&str] =
    &["/usr/local/lib", "/usr/lib", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib"];

/// A libpdfium found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfiumLibrary {
    /// The library file.
    pub path: PathBuf,
    /// Its version from the `version.json` beside it (e.g. `"chromium/8149"`), when present.
    pub version: Option<String>,
}

impl PdfiumLibrary {
    /// Finds libpdfium in the documented order; `explicit` is the `--pdfium-lib` value.
    pub fn locate(explicit: Option<&Path>) -> Result<PdfiumLibrary, PdfError> {
        if let Some(p) = explicit {
            return Self::at(p, "--pdfium-lib");
        }
        if let Some(p) = std::env::var_os(PDFIUM_ENV).filter(|v| !v.is_empty()) {
            return Self::at(Path::new(&p), PDFIUM_ENV);
        }
        let candidates = Self::candidates();
        for c in &candidates {
            if c.is_file() {
                return Ok(Self::with_version(c.clone()));
            }
        }
        let searched = candidates.iter().map(|p| p.display().to_string()).collect::<Vec<_>>();
        Err(PdfError::PdfiumMissing { searched: searched.join(", ") })
    }

    /// The implicit places searched (steps 3 to 6), in order, without duplicates.
    pub fn candidates() -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
            out.push(dir.join(LIBRARY_FILE));
            for anc in dir.ancestors() {
                out.push(anc.join(VENDOR_DIR).join(LIBRARY_FILE));
            }
        }
        out.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(VENDOR_DIR).join(LIBRARY_FILE));
        if let Some(ld) = std::env::var_os("LD_LIBRARY_PATH") {
            out.extend(std::env::split_paths(&ld).filter(|d| !d.as_os_str().is_empty()).map(|d| d.join(LIBRARY_FILE)));
        }
        out.extend(SYSTEM_DIRS.iter().map(|d| Path::new(d).join(LIBRARY_FILE)));
        let mut seen = std::collections::HashSet::new();
        out.retain(|p| seen.insert(p.clone()));
        out
    }

    fn at(p: &Path, source: &str) -> Result<PdfiumLibrary, PdfError> {
        let file = if p.is_dir() { p.join(LIBRARY_FILE) } else { p.to_path_buf() };
        if file.is_file() {
            Ok(Self::with_version(file))
        } else {
            Err(PdfError::PdfiumMissing { searched: format!("{} from {source}", file.display()) })
        }
    }

    fn with_version(path: PathBuf) -> PdfiumLibrary {
        let version = path.parent().and_then(|d| read_version(&d.join("version.json")));
        PdfiumLibrary { path, version }
    }
}

/// Reads pypdfium2's `version.json` (`{"major":159,"minor":0,"build":8149,...}`) as
/// `chromium/<build>`.
fn read_version(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let build = v.get("build")?.as_u64()?;
    Some(format!("chromium/{build}"))
}

/// One line for `--version`: where pdfium is and which version, or that it is missing.
pub fn version_summary() -> String {
    match PdfiumLibrary::locate(None) {
        Ok(lib) => {
            format!("pdfium {} at {}", lib.version.as_deref().unwrap_or("(version unknown)"), lib.path.display())
        }
        Err(_) => "pdfium: not found (run scripts/setup.sh)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_path_missing_is_an_error_naming_it() {
        let err = PdfiumLibrary::locate(Some(Path::new("/nonexistent/x/libpdfium.so"))).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent/x/libpdfium.so") && msg.contains("--pdfium-lib"), "{msg}");
        assert!(msg.contains("scripts/setup.sh"), "{msg}");
    }

    #[test]
    fn explicit_folder_and_version_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LIBRARY_FILE), b"not really a library").unwrap();
        std::fs::write(dir.path().join("version.json"), r#"{"major":159,"minor":0,"build":8149}"#).unwrap();
        let lib = PdfiumLibrary::locate(Some(dir.path())).unwrap();
        assert_eq!(lib.path, dir.path().join(LIBRARY_FILE));
        assert_eq!(lib.version.as_deref(), Some("chromium/8149"));
    }

    #[test]
    fn candidates_cover_exe_dir_vendor_and_manifest() {
        let c = PdfiumLibrary::candidates();
        let exe_dir = std::env::current_exe().unwrap().parent().unwrap().to_path_buf();
        assert_eq!(c[0], exe_dir.join(LIBRARY_FILE));
        assert!(c.contains(&Path::new(env!("CARGO_MANIFEST_DIR")).join(VENDOR_DIR).join(LIBRARY_FILE)));
        assert!(c.contains(&PathBuf::from("/usr/lib").join(LIBRARY_FILE)));
    }
}
