//! First end to end: `docseek dev tiny-checkpoint` writes a tiny random DeepSeek-OCR (and
//! OCR-2) folder with the official tensor names, and `docseek ocr` runs a real PDF through
//! rasterizer → vision encoder → decoder → text, with a per-page outcome.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_docseek");
/// The official separator between pages of the `raw` output.
const PAGE_SEPARATOR: &str = "\n<--- Page Split --->\n";

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

fn tiny_checkpoint(dir: &Path, arch: &str) {
    let out = Command::new(BIN)
        .args(["dev", "tiny-checkpoint"])
        .arg(dir)
        .args(["--arch", arch])
        .output()
        .expect("run docseek dev");
    assert!(out.status.success(), "dev tiny-checkpoint failed: {}", String::from_utf8_lossy(&out.stderr));
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
}

/// Runs `docseek ocr PDF --model DIR --mode MODE` and returns the manifest line and raw text.
fn ocr(model: &Path, pdf: &Path, mode: &str, out: &Path) -> (Value, String) {
    let run = Command::new(BIN)
        .arg("ocr")
        .arg(pdf)
        .arg("--model")
        .arg(model)
        .args(["--mode", mode, "--format", "raw", "--max-new-tokens", "12", "--out"])
        .arg(out)
        .output()
        .expect("run docseek ocr");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "docseek ocr failed ({}): {stderr}", run.status);
    let manifest = std::fs::read_to_string(out.join("manifest.jsonl")).expect("manifest");
    let line: Value = serde_json::from_str(manifest.lines().next().expect("one manifest line")).unwrap();
    let stem = pdf.file_stem().unwrap().to_string_lossy();
    let raw_path = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name().unwrap().to_string_lossy().starts_with(&*stem) && p.extension().is_some_and(|e| e != "jsonl")
        })
        .unwrap_or_else(|| panic!("no raw output for {stem} in {}", out.display()));
    (line, std::fs::read_to_string(raw_path).unwrap())
}

fn check_pages(line: &Value, raw: &str, pages: usize) {
    let reports = line["pages"].as_array().unwrap_or_else(|| panic!("no pages in {line}"));
    assert_eq!(reports.len(), pages, "{line}");
    for p in reports {
        let status = p["status"].as_str().unwrap();
        // Random weights never say EOS on cue: the 12-token budget or the loop guard ends them.
        assert!(matches!(status, "finished" | "length" | "repetition"), "page outcome {status}: {p}");
        assert!(p["generated_tokens"].as_u64().unwrap() > 0, "{p}");
        assert!(p["prompt_tokens"].as_u64().unwrap() > 64, "prompt holds the image slots: {p}");
    }
    let texts: Vec<&str> = raw.split(PAGE_SEPARATOR).collect();
    assert_eq!(texts.len(), pages, "one text per page: {raw:?}");
    assert!(texts.iter().all(|t| !t.is_empty()), "every page has text: {raw:?}");
}

#[test]
fn tiny_ocr1_checkpoint_reads_every_page_of_a_pdf() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("ocr1");
    tiny_checkpoint(&model, "ocr1");
    let (line, raw) = ocr(&model, &sample("en_tracemonkey_p1-3.pdf"), "tiny", &tmp.path().join("out1"));
    check_pages(&line, &raw, 3);
}

#[test]
fn tiny_ocr2_checkpoint_runs_its_tiled_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("ocr2");
    tiny_checkpoint(&model, "ocr2");
    let (line, raw) = ocr(&model, &sample("ar_right_to_left_01.pdf"), "gundam", &tmp.path().join("out2"));
    let pages = line["pages"].as_array().map_or(0, Vec::len);
    assert!(pages >= 1);
    check_pages(&line, &raw, pages);
}
