//! The resumable batch manifest: one JSON line per finished document, appended as each
//! finishes, so a rerun can skip documents already done with the same input and options.
//!
//! A killed run can leave a truncated last line; reading skips lines that do not parse, and
//! appending first terminates such a line so the next record stays whole.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::pipeline::report::{self, DocumentStatus, PageReport, StageTimings};

/// The manifest's file name inside the output folder.
pub const MANIFEST_FILE: &str = "manifest.jsonl";

/// One document's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestRecord {
    /// The document's relative path in the output tree (the manifest's key).
    pub input: String,
    /// The path it was read from.
    pub path: String,
    /// Its size in bytes (0 if it could not be read).
    pub size: u64,
    /// SHA-256 of its bytes, hex (empty if it could not be read).
    pub sha256: String,
    /// Hash of everything that shapes the outputs (options, formats, model).
    pub options_hash: String,
    /// Overall status.
    pub status: DocumentStatus,
    /// Pages in the document (0 if it could not be opened).
    pub page_count: usize,
    /// One report per processed page (outcome, tokens, timings, error).
    pub pages: Vec<PageReport>,
    /// Stage timings summed over the document.
    pub timings: StageTimings,
    /// Wall time of the document, queueing included.
    #[serde(with = "report::seconds")]
    pub elapsed: std::time::Duration,
    /// Output files written, relative to the output folder.
    pub outputs: Vec<String>,
    /// Languages detected (tag, script, share, direction), largest share first.
    #[serde(default)]
    pub languages: Vec<crate::doc::DocumentLanguage>,
    /// What went wrong, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Completion time, seconds since the Unix epoch.
    pub finished_unix: u64,
}

/// The manifest file, open for appending.
pub struct Manifest {
    path: PathBuf,
    file: File,
}

impl Manifest {
    /// Opens (or creates) the manifest and returns it with the latest record of each input.
    pub fn open(path: &Path) -> std::io::Result<(Manifest, HashMap<String, ManifestRecord>)> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = OpenOptions::new().read(true).append(true).create(true).open(path)?;
        let mut text = String::new();
        file.read_to_string(&mut text)?;
        let mut latest = HashMap::new();
        for line in text.lines() {
            if let Ok(record) = serde_json::from_str::<ManifestRecord>(line) {
                latest.insert(record.input.clone(), record);
            } else if !line.trim().is_empty() {
                tracing::warn!("{}: skipping an unreadable line (from an interrupted run?)", path.display());
            }
        }
        if !text.is_empty() && !text.ends_with('\n') {
            file.seek(SeekFrom::End(0))?;
            file.write_all(b"\n")?;
        }
        Ok((Manifest { path: path.to_path_buf(), file }, latest))
    }

    /// Appends one record as a single line and syncs it to disk.
    pub fn append(&mut self, record: &ManifestRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }

    /// Where the manifest lives.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// SHA-256 and size of a file, streamed.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    const CHUNK: usize = 1 << 20;
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex(&hasher.finalize()), size))
}

/// SHA-256 of a value's JSON form, hex.
pub fn hash_json<T: Serialize>(value: &T) -> String {
    let json = serde_json::to_vec(value).expect("options serialise");
    hex(&Sha256::digest(&json))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(input: &str, status: DocumentStatus) -> ManifestRecord {
        ManifestRecord {
            input: input.into(),
            path: format!("/in/{input}"),
            size: 3,
            sha256: "ab".into(),
            options_hash: "cd".into(),
            status,
            page_count: 1,
            pages: Vec::new(),
            timings: StageTimings::default(),
            elapsed: std::time::Duration::from_millis(5),
            outputs: vec![format!("{input}.md")],
            languages: Vec::new(),
            error: None,
            finished_unix: 1,
        }
    }

    #[test]
    fn latest_record_wins_and_truncated_lines_are_survived() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("m/manifest.jsonl");
        {
            let (mut m, old) = Manifest::open(&path).unwrap();
            assert!(old.is_empty());
            m.append(&record("a.pdf", DocumentStatus::Failed)).unwrap();
            m.append(&record("a.pdf", DocumentStatus::Ok)).unwrap();
        }
        // A run killed mid-write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"input":"b.pdf","pa"#).unwrap();
        drop(f);
        let (mut m, latest) = Manifest::open(&path).unwrap();
        assert_eq!(latest.len(), 1);
        assert_eq!(latest["a.pdf"].status, DocumentStatus::Ok);
        m.append(&record("c.pdf", DocumentStatus::Ok)).unwrap();
        let (_, latest) = Manifest::open(&path).unwrap();
        assert!(latest.contains_key("c.pdf"), "a record after a truncated line stays readable");
    }

    #[test]
    fn hashes() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let (h, n) = hash_file(&p).unwrap();
        assert_eq!(n, 3);
        assert_eq!(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(hash_json(&("md", 1)), hash_json(&("md", 2)));
    }
}
