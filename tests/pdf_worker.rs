//! Crash isolation: the worker is killed mid-document (test hook), the document in flight fails
//! with a clear error, the worker is restarted and the next document renders.
//!
//! This file holds only tests that want `DOCSEEK_TEST_WORKER_CRASH_AFTER_PAGES` set (the env var
//! is process-wide and inherited by the workers).

use std::path::{Path, PathBuf};
use std::process::Command;

use docseek::pdf::protocol::CRASH_AFTER_PAGES_ENV;
use docseek::pdf::{DocumentSource, PdfError, Rasterizer, RasterizerConfig, RenderOptions};

const BIN: &str = env!("CARGO_BIN_EXE_docseek");

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

fn crash_after_one_page() {
    std::env::set_var(CRASH_AFTER_PAGES_ENV, "1");
}

#[test]
fn worker_killed_mid_document_fails_that_document_only() {
    crash_after_one_page();
    let raster = Rasterizer::new(RasterizerConfig { worker_exe: Some(BIN.into()), ..Default::default() }).unwrap();
    let opts = RenderOptions { dpi: 36.0, ..Default::default() };

    let mut doc = raster.open(&DocumentSource::path(sample("en_tracemonkey_p1-3.pdf")), &opts).unwrap();
    assert_eq!(doc.info().page_count, 3);
    let first = doc.next().unwrap().expect("page 1 renders before the crash");
    assert_eq!(first.index, 0);
    let err = doc.next().unwrap().expect_err("the worker aborts on page 2");
    assert!(matches!(err, PdfError::WorkerCrashed { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("crashed") && msg.contains("SIGABRT") && msg.contains("page 2"), "{msg}");
    assert!(doc.next().is_none(), "the document ends after a crash");

    // A fresh worker takes the next document.
    let mut pages = 0;
    let info = raster
        .render(&DocumentSource::path(sample("en_tracemonkey_p1.pdf")), &opts, |p| {
            assert_eq!(p.image.dimensions(), (306, 396));
            pages += 1;
            std::ops::ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!((info.page_count, pages), (1, 1));
}

#[test]
fn batch_cli_reports_the_crash_and_goes_on() {
    crash_after_one_page();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (sample("en_tracemonkey_p1-3.pdf"), sample("he_indictb1h_14_table.pdf"));
    let out =
        Command::new(BIN).args(["pages", "--dpi", "36", "--out"]).arg(tmp.path()).arg(&a).arg(&b).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error ")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(errors[0].contains("renderer crashed"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(lines[0].starts_with("ok    ") && lines[0].contains("1 page"), "{stdout}");
    assert!(tmp.path().join("he_indictb1h_14_table/page-0001.png").is_file());
}
