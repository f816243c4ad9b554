//! Shared helpers of the `docseek ocr` end-to-end tests (tests/batch_*.rs): running the
//! binary, making input trees, reading manifests and output trees, poppler tools.
#![allow(dead_code)]

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The built `docseek` binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_docseek");

/// Writes a flat-coloured PNG, creating parent folders.
pub fn write_png(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut out = Vec::new();
    image::RgbImage::from_pixel(w, h, image::Rgb([120, 60, 30]))
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(path, out).unwrap();
}

/// `docseek ocr ARGS --model MODEL`, with the fake engine's delay unset.
pub fn ocr_with_model(model: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("ocr")
        .args(args)
        .args(["--model", model])
        .env_remove("DOCSEEK_FAKE_TOKEN_DELAY_MS")
        .env_remove("DOCSEEK_FAKE_SCRIPT_FILE");
    cmd
}

/// Runs `docseek ocr ARGS` on the fake engine answering every page with the text in `script`;
/// asserts exit 0 and returns stderr.
pub fn run_scripted(args: &[&str], script: &Path) -> String {
    let run = docseek(args).env("DOCSEEK_FAKE_SCRIPT_FILE", script).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    stderr
}

/// `docseek ocr ARGS --model fake`.
pub fn docseek(args: &[&str]) -> Command {
    ocr_with_model("fake", args)
}

/// The engine a test runs `docseek ocr` with.
pub struct Model {
    /// `--model` value.
    pub model: String,
    /// Extra arguments for every run (mode, token budget).
    pub extra: Vec<String>,
    /// Whether this is the fake engine (its text is known: `# Page WxH` ... `fake engine.`).
    pub fake: bool,
    /// Keeps a written checkpoint alive.
    _dir: Option<tempfile::TempDir>,
}

/// Token budget per page with the tiny checkpoint: enough to exercise decoding, quick.
pub const TINY_MAX_NEW_TOKENS: usize = 12;

impl Model {
    /// The deterministic fake engine.
    pub fn fake() -> Self {
        Model { model: "fake".into(), extra: Vec::new(), fake: true, _dir: None }
    }

    /// A tiny random DeepSeek-OCR checkpoint written by `docseek dev tiny-checkpoint` into a
    /// temporary folder (about a second), run in the `tiny` resolution mode with a small
    /// token budget.
    pub fn tiny() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(BIN).args(["dev", "tiny-checkpoint"]).arg(dir.path()).output().unwrap();
        assert!(out.status.success(), "tiny-checkpoint failed: {}", String::from_utf8_lossy(&out.stderr));
        Model {
            model: dir.path().to_str().unwrap().to_string(),
            extra: ["--mode", "tiny", "--max-new-tokens", &TINY_MAX_NEW_TOKENS.to_string()].map(String::from).to_vec(),
            fake: false,
            _dir: Some(dir),
        }
    }

    /// `docseek ocr ARGS` with this engine.
    pub fn ocr(&self, args: &[&str]) -> Command {
        let mut cmd = ocr_with_model(&self.model, args);
        cmd.args(&self.extra);
        cmd
    }
}

/// The manifest's records (lines that parse).
pub fn manifest(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap_or_default();
    text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(dir).iter().map(|p| p.strip_prefix(dir).unwrap().display().to_string()).collect();
    out.sort();
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A sample document shipped with the repository (`samples/`).
pub fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

/// A tree with nested PDFs, images and bad files: five good documents (`2024/q1/paper.pdf`
/// with 3 pages, `letter.pdf`, `cover.png`, `2024/q1/scan.png`, `2024/q2/photo.jpg.png`),
/// three bad ones (`2024/q1/corrupt.pdf`, `2024/q2/truncated.png`, `2024/empty.jpg`) and a
/// text file that is not a document.
pub fn make_tree(root: &Path) {
    std::fs::create_dir_all(root.join("2024/q1")).unwrap();
    std::fs::copy(sample("en_tracemonkey_p1-3.pdf"), root.join("2024/q1/paper.pdf")).unwrap();
    std::fs::copy(sample("ar_right_to_left_01.pdf"), root.join("letter.pdf")).unwrap();
    write_png(&root.join("cover.png"), 64, 48);
    write_png(&root.join("2024/q1/scan.png"), 50, 70);
    write_png(&root.join("2024/q2/photo.jpg.png"), 20, 20);
    let corrupt: &[u8] = b"%PDF-1.7\nthis is not really a PDF";
    std::fs::write(root.join("2024/q1/corrupt.pdf"), corrupt).unwrap();
    let truncated: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    std::fs::write(root.join("2024/q2/truncated.png"), truncated).unwrap();
    std::fs::write(root.join("2024/empty.jpg"), b"").unwrap();
    std::fs::write(root.join("2024/notes.txt"), b"not a document").unwrap();
}

/// The documents of [`make_tree`], sorted (what the manifest must record).
pub const TREE_DOCUMENTS: [&str; 8] = [
    "2024/empty.jpg",
    "2024/q1/corrupt.pdf",
    "2024/q1/paper.pdf",
    "2024/q1/scan.png",
    "2024/q2/photo.jpg.png",
    "2024/q2/truncated.png",
    "cover.png",
    "letter.pdf",
];

/// Whether a [`make_tree`] document is one of the bad ones.
pub fn is_bad(input: &str) -> bool {
    ["corrupt", "truncated", "empty"].iter().any(|b| input.contains(b))
}

/// The inputs recorded in a manifest, sorted.
pub fn recorded_inputs(records: &[Value]) -> Vec<String> {
    let mut inputs: Vec<String> = records.iter().map(|r| r["input"].as_str().unwrap().to_string()).collect();
    inputs.sort();
    inputs
}

/// Runs a poppler tool (`pdftotext`, `pdfinfo`) on a file; a missing tool fails the test.
pub fn poppler(tool: &str, path: &Path) -> String {
    let mut cmd = Command::new(tool);
    cmd.arg(path);
    if tool == "pdftotext" {
        cmd.arg("-");
    }
    let out =
        cmd.output().unwrap_or_else(|e| panic!("`{tool}` is missing ({e}): run scripts/test-deps.sh (poppler-utils)"));
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whitespace runs as one space.
pub fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
