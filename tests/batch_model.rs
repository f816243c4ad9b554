//! `docseek ocr` with the real engine (a tiny random checkpoint) through the whole batched
//! path: rasterizer → encoder worker → token-level scheduler over the paged KV cache →
//! detokenizer → outputs. Pages of several documents decoding together (and with a KV budget
//! too small to hold them all) give exactly the text they give one at a time.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_docseek");

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

/// Runs `docseek ocr` on `inputs` with `extra` flags; returns each output's raw text by name.
fn ocr(model: &Path, inputs: &[PathBuf], out: &Path, extra: &[&str]) -> Vec<(String, String)> {
    let run = Command::new(BIN)
        .arg("ocr")
        .args(inputs)
        .arg("--model")
        .arg(model)
        .args(["--format", "raw", "--max-new-tokens", "10", "--jobs", "2", "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("run docseek ocr");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "docseek ocr {extra:?} failed ({}): {stderr}", run.status);
    let mut texts: Vec<(String, String)> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".raw.txt"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    texts.sort();
    texts
}

#[test]
fn pages_decoded_together_read_like_pages_decoded_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("ocr1");
    let made = Command::new(BIN).args(["dev", "tiny-checkpoint"]).arg(&model).output().expect("run docseek dev");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let inputs =
        [sample("en_tracemonkey_p1-3.pdf"), sample("en_code_and_formula.pdf"), sample("en_tracemonkey_p1.pdf")];
    let run = |name: &str, flags: &[&str]| ocr(&model, &inputs, &tmp.path().join(name), flags);
    let alone = run("alone", &["--mode", "tiny", "--batch-size", "1"]);
    assert_eq!(alone.len(), 3);
    assert!(alone.iter().all(|(_, t)| !t.trim().is_empty()), "{alone:?}");
    let together = run("together", &["--mode", "tiny", "--batch-size", "6"]);
    assert_eq!(together, alone, "batched pages read differently");
    // Mode base: ~290-token pages; a 1 MiB cache (672 tokens of this model) holds two of
    // them, so pages wait or are evicted and recomputed - and read the same.
    let base = run("base", &["--mode", "base", "--batch-size", "1"]);
    let tight = run("tight", &["--mode", "base", "--batch-size", "6", "--kv-cache-mb", "1"]);
    assert_eq!(tight, base, "pages under a tight KV budget read differently");
}
