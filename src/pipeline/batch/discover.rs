//! Finding the documents of a batch: files, directories (recursive), globs, and lists of
//! paths (`--files-from LIST`, `-` for stdin), each given the relative path its outputs mirror.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::io::BufRead;
use std::path::{Component, Path, PathBuf};

/// File extensions picked up when walking directories (case-insensitive). Files named
/// explicitly are tried whatever their extension.
pub const DOCUMENT_EXTENSIONS: [&str; 9] = ["pdf", "png", "jpg", "jpeg", "tif", "tiff", "webp", "gif", "bmp"];

/// One document of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// Where to read it.
    pub path: PathBuf,
    /// Its place in the output tree, relative: below a directory argument, the path inside
    /// that directory; otherwise the file name (or, if two inputs share a name, the path).
    pub rel: PathBuf,
}

/// Why the inputs could not be gathered (the run cannot start).
#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    /// An argument is neither a file, a directory, nor a glob matching something.
    #[error("no such file or directory, and no glob match: {0}")]
    NotFound(String),
    /// A glob pattern is malformed.
    #[error("invalid glob pattern '{0}': {1}")]
    BadGlob(String, String),
    /// A list of paths could not be read.
    #[error("cannot read the list of inputs {0}: {1}")]
    List(String, std::io::Error),
    /// A directory could not be walked.
    #[error("cannot walk {0}: {1}")]
    Walk(String, String),
}

/// Gathers inputs from command-line arguments (`-` reads a list from stdin) and an optional
/// list file. `exclude` (the output folder) is never entered. Missing paths inside a list are
/// kept (they fail as documents, so the manifest records them); missing arguments are errors.
pub fn discover<A: AsRef<OsStr>>(
    args: &[A],
    files_from: Option<&Path>,
    exclude: Option<&Path>,
) -> Result<Vec<InputFile>, DiscoverError> {
    let exclude = exclude.and_then(|p| std::fs::canonicalize(p).ok());
    let mut found: Vec<(PathBuf, PathBuf)> = Vec::new();
    let mut lists: Vec<Option<&Path>> = files_from.map(Some).into_iter().collect();
    for arg in args {
        // Any file name works, UTF-8 or not; only a glob pattern must be text.
        let arg = arg.as_ref();
        if arg == "-" {
            lists.push(None);
            continue;
        }
        let path = Path::new(arg);
        let not_found = || DiscoverError::NotFound(path.display().to_string());
        if path.is_dir() {
            walk(path, exclude.as_deref(), &mut found)?;
        } else if path.exists() {
            found.push((path.to_path_buf(), file_name(path)));
        } else if let Some(pattern) = arg.to_str().filter(|a| a.contains(['*', '?', '['])) {
            let before = found.len();
            expand_glob(pattern, exclude.as_deref(), &mut found)?;
            if found.len() == before {
                return Err(not_found());
            }
        } else {
            return Err(not_found());
        }
    }
    for list in lists {
        for path in read_list(list)? {
            let rel = file_name(&path);
            found.push((path, rel));
        }
    }
    Ok(dedupe(found))
}

/// Paths of a list file (or stdin), one per line, trimmed, skipping blanks and `#` comments.
/// Lines are bytes, so a listed name need not be UTF-8.
fn read_list(list: Option<&Path>) -> Result<Vec<PathBuf>, DiscoverError> {
    let name = list.map_or("-".to_string(), |p| p.display().to_string());
    let reader: Box<dyn BufRead> = match list {
        None => Box::new(std::io::stdin().lock()),
        Some(p) if p == Path::new("-") => Box::new(std::io::stdin().lock()),
        Some(p) => {
            Box::new(std::io::BufReader::new(std::fs::File::open(p).map_err(|e| DiscoverError::List(name.clone(), e))?))
        }
    };
    let mut out = Vec::new();
    for line in reader.split(b'\n') {
        let line = line.map_err(|e| DiscoverError::List(name.clone(), e))?;
        let line = line.trim_ascii();
        if !line.is_empty() && !line.starts_with(b"#") {
            out.push(path_from_bytes(line));
        }
    }
    Ok(out)
}

#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(OsStr::from_bytes(bytes))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(bytes).into_owned())
}

/// Adds the documents below `dir`, in name order, with paths relative to `dir`.
fn walk(dir: &Path, exclude: Option<&Path>, found: &mut Vec<(PathBuf, PathBuf)>) -> Result<(), DiscoverError> {
    let walker = walkdir::WalkDir::new(dir).sort_by_file_name().into_iter().filter_entry(|e| {
        let hidden = e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
        let excluded =
            exclude.is_some_and(|x| e.file_type().is_dir() && std::fs::canonicalize(e.path()).is_ok_and(|p| p == x));
        !hidden && !excluded
    });
    for entry in walker {
        let entry = entry.map_err(|e| DiscoverError::Walk(dir.display().to_string(), e.to_string()))?;
        if entry.file_type().is_file() && has_document_extension(entry.path()) {
            let rel = entry.path().strip_prefix(dir).unwrap_or(entry.path()).to_path_buf();
            found.push((entry.path().to_path_buf(), rel));
        }
    }
    Ok(())
}

/// Adds the matches of a glob: files as they are, directories walked.
fn expand_glob(
    pattern: &str,
    exclude: Option<&Path>,
    found: &mut Vec<(PathBuf, PathBuf)>,
) -> Result<(), DiscoverError> {
    let paths = glob::glob(pattern).map_err(|e| DiscoverError::BadGlob(pattern.into(), e.to_string()))?;
    for path in paths.flatten() {
        if path.is_dir() {
            walk(&path, exclude, found)?;
        } else if path.is_file() {
            let rel = file_name(&path);
            found.push((path, rel));
        }
    }
    Ok(())
}

/// Whether a path ends in one of [`DOCUMENT_EXTENSIONS`].
pub fn has_document_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| DOCUMENT_EXTENSIONS.iter().any(|d| d.eq_ignore_ascii_case(e)))
}

fn file_name(path: &Path) -> PathBuf {
    path.file_name().map(PathBuf::from).unwrap_or_else(|| sanitized(path))
}

/// A path made safe to join under the output folder: no root, no `.` or `..`.
fn sanitized(path: &Path) -> PathBuf {
    let clean: PathBuf = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    if clean.as_os_str().is_empty() {
        PathBuf::from("document")
    } else {
        clean
    }
}

/// Drops repeated files (same path) and gives inputs that would share an output place their
/// sanitized full path instead.
fn dedupe(found: Vec<(PathBuf, PathBuf)>) -> Vec<InputFile> {
    let mut seen = HashSet::new();
    let unique: Vec<(PathBuf, PathBuf)> = found
        .into_iter()
        .filter(|(p, _)| seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())))
        .collect();
    let mut uses: HashMap<PathBuf, usize> = HashMap::new();
    for (_, rel) in &unique {
        *uses.entry(rel.clone()).or_default() += 1;
    }
    unique
        .into_iter()
        .map(|(path, rel)| {
            let rel = if uses[&rel] > 1 { sanitized(&path) } else { rel };
            InputFile { path, rel }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn walks_directories_globs_and_lists() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for f in [
            "in/a.pdf",
            "in/sub/b.PNG",
            "in/sub/notes.txt",
            "in/.hidden/c.pdf",
            "in/out/old.pdf",
            "x/one.jpg",
            "y/one.jpg",
        ] {
            touch(&root.join(f));
        }
        let s = |p: &str| root.join(p).display().to_string();
        let out = discover(&[s("in")], None, Some(&root.join("in/out"))).unwrap();
        let rels: Vec<_> = out.iter().map(|i| i.rel.display().to_string()).collect();
        assert_eq!(rels, ["a.pdf", "sub/b.PNG"]);

        let out = discover(&[s("*/one.jpg"), s("in/a.pdf"), s("in/a.pdf")], None, None).unwrap();
        assert_eq!(out.len(), 3, "the repeated file is dropped");
        assert!(
            out[0].rel.ends_with("x/one.jpg") && out[1].rel.ends_with("y/one.jpg"),
            "same names fall back to full paths"
        );
        assert_eq!(out[2].rel, PathBuf::from("a.pdf"));

        let list = root.join("list.txt");
        std::fs::write(&list, format!("# comment\n{}\n\n{}\n", s("in/sub/notes.txt"), s("missing.pdf"))).unwrap();
        let out = discover::<String>(&[], Some(&list), None).unwrap();
        assert_eq!(out.len(), 2, "listed files are kept even when missing or oddly named");
        assert!(matches!(discover(&[s("nope.pdf")], None, None), Err(DiscoverError::NotFound(_))));
        assert!(matches!(discover(&[s("*.nothing")], None, None), Err(DiscoverError::NotFound(_))));
    }
}
