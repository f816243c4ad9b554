//! `docseek ocr` end to end: a tree of documents with bad files, mirrored outputs, the
//! manifest, exit codes, stdout mode, input lists, and resuming after a kill — with the fake
//! engine, and with a tiny random DeepSeek-OCR checkpoint (the real engine: rasterizer, vision
//! encoder, decoder) through the same checks.

use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

mod batch_support;
use batch_support::{
    docseek, files_under, is_bad, make_tree, manifest, recorded_inputs, write_png, Model, TINY_MAX_NEW_TOKENS,
    TREE_DOCUMENTS,
};

/// Runs the tree of [`make_tree`] into raw and JSON outputs and checks the mirrored outputs,
/// the manifest (every file, per-page outcomes) and the partial-failure exit code.
fn tree_is_mirrored_and_recorded(model: &Model) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("docs");
    make_tree(&input);
    let out = tmp.path().join("out");
    let (input_arg, out_arg) = (input.to_str().unwrap(), out.to_str().unwrap());
    // A low dpi keeps the unoptimised test build quick.
    let args = [input_arg, "--out", out_arg, "--format", "raw,json", "--jobs", "2", "--dpi", "36"];
    let run = model.ocr(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "partial failure exits with 3: {stderr}");
    assert!(stderr.contains("FAILED 2024/q1/corrupt.pdf"), "{stderr}");

    let mut expected: Vec<String> = ["2024/q1/paper", "2024/q1/scan", "2024/q2/photo.jpg", "cover", "letter"]
        .iter()
        .flat_map(|stem| [format!("{stem}.json"), format!("{stem}.raw.txt")])
        .collect();
    expected.push("manifest.jsonl".into());
    assert_eq!(files_under(&out), expected, "outputs mirror the input tree, nothing else (no temporary files)");
    let paper = std::fs::read_to_string(out.join("2024/q1/paper.raw.txt")).unwrap();
    assert_eq!(paper.matches("<--- Page Split --->").count(), 2, "three pages: {paper}");
    let paper_json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("2024/q1/paper.json")).unwrap()).unwrap();
    let numbers: Vec<u64> =
        paper_json["pages"].as_array().unwrap().iter().map(|p| p["number"].as_u64().unwrap()).collect();
    assert_eq!(numbers, [1, 2, 3]);
    assert_eq!(paper_json["pages"][0]["point_size"]["width"], 612.0);
    if model.fake {
        let scan = std::fs::read_to_string(out.join("2024/q1/scan.raw.txt")).unwrap();
        assert!(scan.contains("# Page 50x70"), "{scan}");
    }

    let records = manifest(&out);
    assert_eq!(
        recorded_inputs(&records),
        TREE_DOCUMENTS,
        "every document is recorded once; notes.txt is not a document"
    );
    for r in &records {
        let ok = r["status"] == "ok";
        let name = r["input"].as_str().unwrap();
        assert_eq!(ok, !is_bad(name), "{r}");
        if name == "2024/q1/paper.pdf" {
            assert_eq!(r["page_count"], 3);
            let pages: Vec<u64> = r["pages"].as_array().unwrap().iter().map(|p| p["page"].as_u64().unwrap()).collect();
            assert_eq!(pages, [1, 2, 3], "one outcome per page");
        }
        if ok {
            let pages = r["pages"].as_array().unwrap();
            for p in pages {
                let tokens = p["generated_tokens"].as_u64().unwrap();
                if model.fake {
                    assert_eq!(p["status"], "finished", "{r}");
                    assert!(tokens > 0, "{r}");
                } else {
                    assert!(["finished", "length", "repetition"].contains(&p["status"].as_str().unwrap()), "{r}");
                    assert!(tokens as usize <= TINY_MAX_NEW_TOKENS, "the token budget holds: {r}");
                    assert!(p["prompt_tokens"].as_u64().unwrap() > 1, "the prompt holds the image tokens: {r}");
                    assert!(p["timings"]["encode"].as_f64().unwrap() > 0.0, "the vision encoder ran: {r}");
                }
            }
            assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
            assert_eq!(r["outputs"].as_array().unwrap().len(), 2, "{r}");
        } else {
            let error = r["error"].as_str().unwrap();
            assert!(!error.is_empty(), "a failure carries its error: {r}");
        }
    }
}

#[test]
fn a_tree_with_bad_files_is_mirrored_and_recorded() {
    tree_is_mirrored_and_recorded(&Model::fake());
}

#[test]
fn a_tree_with_bad_files_through_a_tiny_checkpoint() {
    tree_is_mirrored_and_recorded(&Model::tiny());
}

#[test]
fn single_input_to_stdout_lists_and_start_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("one.png");
    write_png(&img, 33, 44);
    let run = docseek(&[img.to_str().unwrap(), "--format", "raw", "-q"]).output().unwrap();
    assert_eq!(run.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&run.stdout).contains("# Page 33x44"));

    // A list on stdin, with a missing entry: recorded as failed, the run goes on.
    let out = tmp.path().join("out");
    let mut child =
        docseek(&["-", "--out", out.to_str().unwrap(), "--format", "raw", "-q"]).stdin(Stdio::piped()).spawn().unwrap();
    let list = format!("{}\n{}\n", img.display(), tmp.path().join("gone.pdf").display());
    child.stdin.take().unwrap().write_all(list.as_bytes()).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let records = manifest(&out);
    assert_eq!(records.len(), 2);
    assert!(out.join("one.raw.txt").is_file());

    write_png(&tmp.path().join("two.png"), 5, 5);
    let bad = |args: &[&str]| docseek(args).output().unwrap().status.code();
    assert_eq!(bad(&[tmp.path().join("missing.png").to_str().unwrap()]), Some(2), "a missing argument");
    assert_eq!(bad(&[img.to_str().unwrap(), "--format", "docx"]), Some(2), "an unknown format");
    assert_eq!(bad(&[tmp.path().to_str().unwrap(), "--format", "raw"]), Some(2), "several inputs need --out");
    assert_eq!(bad(&[]), Some(2), "no inputs");
}

/// Runs `docs` one-page documents, kills the run once two are recorded, reruns it, and checks
/// that finished documents are skipped, the rest complete and no partial file remains.
/// `slow` is set on the first run (the fake engine's per-token delay).
fn killed_run_resumes(model: &Model, docs: usize, slow: &[(&str, &str)]) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    for i in 0..docs {
        write_png(&input.join(format!("d{i:02}/page.png")), 30 + i as u32, 30);
    }
    let out = tmp.path().join("out");
    let args =
        [input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--format", "raw", "--jobs", "1", "--json-progress"];
    let mut first = model.ocr(&args);
    for (k, v) in slow {
        first.env(k, v);
    }
    let mut child = first.stderr(Stdio::piped()).spawn().unwrap();
    // Kill as soon as the second document is recorded (progress lines arrive as they happen).
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let event: Value = serde_json::from_str(&line).unwrap_or_default();
            if event["event"] == "recorded" && tx.send(()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    for _ in 0..2 {
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left).expect("the first documents never finished");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(rx);
    reader.join().unwrap();
    let done_before = recorded_inputs(&manifest(&out));
    assert!(done_before.len() >= 2 && done_before.len() < docs, "killed after the first documents: {done_before:?}");
    // A leftover temporary file, as a kill during a write leaves.
    std::fs::write(out.join("d00/.page.raw.txt.docseek-tmp-1-1"), b"half").unwrap();

    let rerun = model.ocr(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert_eq!(rerun.status.code(), Some(0), "{stderr}");
    let events: Vec<Value> = stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let mut skipped: Vec<String> =
        events.iter().filter(|e| e["event"] == "skipped").map(|e| e["input"].as_str().unwrap().to_string()).collect();
    skipped.sort();
    assert_eq!(skipped, done_before, "finished documents are skipped");
    let recorded = events.iter().filter(|e| e["event"] == "recorded").count();
    assert_eq!(recorded, docs - done_before.len(), "the rest complete");
    let mut expected: Vec<String> = (0..docs).map(|i| format!("d{i:02}/page.raw.txt")).collect();
    expected.push("manifest.jsonl".into());
    assert_eq!(files_under(&out), expected, "all outputs present, no partial or temporary files");
    // The manifest holds each document once per run that finished it: skipped ones once.
    let records = manifest(&out);
    assert_eq!(records.len(), docs, "{records:?}");
    assert!(records.iter().all(|r| r["status"] == "ok"), "{records:?}");
    if model.fake {
        for i in 0..docs {
            let text = std::fs::read_to_string(out.join(format!("d{i:02}/page.raw.txt"))).unwrap();
            assert!(text.contains(&format!("# Page {}x30", 30 + i)) && text.ends_with("fake engine.\n"), "{text}");
        }
    }
    let summary = events.iter().find(|e| e["event"] == "summary").unwrap();
    assert_eq!(summary["summary"]["skipped"], done_before.len());
}

#[test]
fn a_killed_run_resumes_without_redoing_or_leaving_partial_files() {
    // About 25 tokens per page at 40 ms each: a second per document.
    killed_run_resumes(&Model::fake(), 6, &[("DOCSEEK_FAKE_TOKEN_DELAY_MS", "40")]);
}

#[test]
fn a_killed_run_of_a_tiny_checkpoint_resumes() {
    // No delay knob for the real engine: enough documents that the kill comes mid-run.
    killed_run_resumes(&Model::tiny(), 8, &[]);
}
