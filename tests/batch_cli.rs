//! `docseek ocr` end to end with the fake engine: a tree of documents with bad files, mirrored
//! outputs, the manifest, exit codes, stdout mode, input lists, and resuming after a kill.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

mod batch_support;
use batch_support::{docseek, files_under, is_bad, make_tree, manifest, recorded_inputs, write_png, TREE_DOCUMENTS};

#[test]
fn a_tree_with_bad_files_is_mirrored_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("docs");
    make_tree(&input);
    let out = tmp.path().join("out");
    let (input_arg, out_arg) = (input.to_str().unwrap(), out.to_str().unwrap());
    // A low dpi keeps the unoptimised test build quick.
    let args = [input_arg, "--out", out_arg, "--format", "raw", "--jobs", "2", "--dpi", "36"];
    let run = docseek(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "partial failure exits with 3: {stderr}");
    assert!(stderr.contains("FAILED 2024/q1/corrupt.pdf"), "{stderr}");

    let files = files_under(&out);
    let expected = [
        "2024/q1/paper.raw.txt",
        "2024/q1/scan.raw.txt",
        "2024/q2/photo.jpg.raw.txt",
        "cover.raw.txt",
        "letter.raw.txt",
        "manifest.jsonl",
    ];
    assert_eq!(files, expected, "outputs mirror the input tree, nothing else (no temporary files)");
    let scan = std::fs::read_to_string(out.join("2024/q1/scan.raw.txt")).unwrap();
    assert!(scan.contains("# Page 50x70"), "{scan}");
    let paper = std::fs::read_to_string(out.join("2024/q1/paper.raw.txt")).unwrap();
    assert_eq!(paper.matches("<--- Page Split --->").count(), 2, "three pages: {paper}");

    let records = manifest(&out);
    assert_eq!(recorded_inputs(&records), TREE_DOCUMENTS, "every document is recorded once; notes.txt is not a document");
    for r in &records {
        let ok = r["status"] == "ok";
        let name = r["input"].as_str().unwrap();
        assert_eq!(ok, !is_bad(name), "{r}");
        if name == "2024/q1/paper.pdf" {
            assert_eq!(r["page_count"], 3);
            let pages: Vec<u64> =
                r["pages"].as_array().unwrap().iter().map(|p| p["page"].as_u64().unwrap()).collect();
            assert_eq!(pages, [1, 2, 3], "one outcome per page");
        }
        if ok {
            let pages = r["pages"].as_array().unwrap();
            assert!(pages.iter().all(|p| p["status"] == "finished"), "{r}");
            assert!(pages.iter().all(|p| p["generated_tokens"].as_u64().unwrap() > 0), "{r}");
            assert_eq!(r["sha256"].as_str().unwrap().len(), 64);
        } else {
            let error = r["error"].as_str().unwrap();
            assert!(!error.is_empty(), "a failure carries its error: {r}");
        }
    }
}

#[test]
fn single_input_to_stdout_lists_and_start_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let img = tmp.path().join("one.png");
    write_png(&img, 33, 44);
    let run = docseek(&[img.to_str().unwrap(), "--format", "raw", "-q"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&run.stdout).contains("# Page 33x44"));

    // A list on stdin, with a missing entry: recorded as failed, the run goes on.
    let out = tmp.path().join("out");
    let mut child = docseek(&["-", "--out", out.to_str().unwrap(), "--format", "raw", "-q"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let list = format!(
        "{}\n{}\n",
        img.display(),
        tmp.path().join("gone.pdf").display()
    );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(3));
    let records = manifest(&out);
    assert_eq!(records.len(), 2);
    assert!(out.join("one.raw.txt").is_file());

    write_png(&tmp.path().join("two.png"), 5, 5);
    let bad = |args: &[&str]| docseek(args).output().unwrap().status.code();
    assert_eq!(
        bad(&[tmp.path().join("missing.png").to_str().unwrap()]),
        Some(2),
        "a missing argument"
    );
    assert_eq!(
        bad(&[img.to_str().unwrap(), "--format", "docx"]),
        Some(2),
        "an unknown format"
    );
    assert_eq!(
        bad(&[tmp.path().to_str().unwrap(), "--format", "raw"]),
        Some(2),
        "several inputs need --out"
    );
    assert_eq!(bad(&[]), Some(2), "no inputs");
}

#[test]
fn a_killed_run_resumes_without_redoing_or_leaving_partial_files() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    const DOCS: usize = 6;
    for i in 0..DOCS {
        write_png(&input.join(format!("d{i}/page.png")), 30 + i as u32, 30);
    }
    let out = tmp.path().join("out");
    let args = [
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "raw",
        "--jobs",
        "1",
        "--json-progress",
    ];
    // About 25 tokens per page at 40 ms each: a second per document.
    let mut child = docseek(&args)
        .env("DOCSEEK_FAKE_TOKEN_DELAY_MS", "40")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while manifest(&out).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the first documents never finished"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before: Vec<String> = manifest(&out)
        .iter()
        .map(|r| r["input"].as_str().unwrap().to_string())
        .collect();
    assert!(
        done_before.len() >= 2 && done_before.len() < DOCS,
        "{done_before:?}"
    );
    // A leftover temporary file, as a kill during a write leaves.
    std::fs::write(out.join("d0/.page.raw.txt.docseek-tmp-1-1"), b"half").unwrap();

    let rerun = docseek(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert_eq!(rerun.status.code(), Some(0), "{stderr}");
    let events: Vec<Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let skipped: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "skipped")
        .map(|e| e["input"].as_str().unwrap())
        .collect();
    assert_eq!(
        skipped.len(),
        done_before.len(),
        "finished documents are skipped: {skipped:?}"
    );
    let recorded = events.iter().filter(|e| e["event"] == "recorded").count();
    assert_eq!(recorded, DOCS - done_before.len(), "the rest complete");
    let mut expected: Vec<String> = (0..DOCS).map(|i| format!("d{i}/page.raw.txt")).collect();
    expected.push("manifest.jsonl".into());
    assert_eq!(
        files_under(&out),
        expected,
        "all outputs present, no partial or temporary files"
    );
    for i in 0..DOCS {
        let text = std::fs::read_to_string(out.join(format!("d{i}/page.raw.txt"))).unwrap();
        assert!(
            text.contains(&format!("# Page {}x30", 30 + i)) && text.ends_with("fake engine.\n"),
            "{text}"
        );
    }
    let summary = events.iter().find(|e| e["event"] == "summary").unwrap();
    assert_eq!(summary["summary"]["skipped"], done_before.len());
}
