//! A worker that hangs on a page (test hook) is killed after `Limits::page_timeout_secs`; the
//! document fails with a clear error and the next document renders on a fresh worker.
//! Alone in its file because the hook is a process-wide environment variable.

use std::path::{Path, PathBuf};

use docseek::pdf::protocol::HANG_AFTER_PAGES_ENV;
use docseek::pdf::{DocumentSource, Limits, PdfError, Rasterizer, RasterizerConfig, RenderOptions};

fn sample(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name)
}

#[test]
fn hung_worker_is_killed_and_replaced() {
    std::env::set_var(HANG_AFTER_PAGES_ENV, "1");
    let limits = Limits { page_timeout_secs: 2, ..Limits::default() };
    let raster = Rasterizer::new(RasterizerConfig {
        worker_exe: Some(env!("CARGO_BIN_EXE_docseek").into()),
        limits,
        ..Default::default()
    })
    .unwrap();
    let opts = RenderOptions { dpi: 36.0, ..Default::default() };
    let results: Vec<_> =
        raster.open(&DocumentSource::path(sample("en_tracemonkey_p1-3.pdf")), &opts).unwrap().collect();
    assert_eq!(results.len(), 2, "page 1, then the timeout, then nothing");
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err();
    assert_eq!(*err, PdfError::WorkerTimeout { secs: 2 });
    assert!(err.to_string().contains("page_timeout_secs"), "{err}");

    let next = raster.open(&DocumentSource::path(sample("he_indictb1h_14_table.pdf")), &opts).unwrap();
    assert_eq!(next.map(|p| p.unwrap().index).collect::<Vec<_>>(), [0]);
}
