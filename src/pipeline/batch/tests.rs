//! Tests of batch runs with the fake engine: mirrored outputs, manifest, resume, failures.

use std::io::Cursor;
use std::sync::{Arc, Mutex};

use super::*;
use crate::engine::FakeEngine;
use crate::pipeline::{Event, PipelineConfig};

fn write_png(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut out = Vec::new();
    image::RgbImage::from_pixel(w, h, image::Rgb([90, 90, 90]))
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    std::fs::write(path, out).unwrap();
}

#[derive(Default)]
struct Log(Mutex<Vec<String>>);

impl ProgressSink for Log {
    fn event(&self, _event: &Event) {}
}

impl BatchObserver for Log {
    fn skipped(&self, input: &InputFile) {
        self.0.lock().unwrap().push(format!("skip {}", input.rel.display()));
    }
    fn recorded(&self, record: &ManifestRecord) {
        self.0.lock().unwrap().push(format!("{:?} {}", record.status, record.input));
    }
}

fn plan(out: &Path) -> BatchPlan {
    BatchPlan {
        out: out.to_path_buf(),
        manifest: out.join(MANIFEST_FILE),
        formats: vec![OutputFormat::Raw],
        options: OcrOptions::default(),
        model: "fake".into(),
        force: false,
    }
}

#[test]
fn mirrors_records_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    write_png(&input.join("a.png"), 30, 20);
    write_png(&input.join("a.jpg.png"), 31, 20);
    write_png(&input.join("deep/er/b.png"), 32, 20);
    write_png(&input.join("deep/same.png"), 33, 20);
    std::fs::write(input.join("deep/same.jpg"), b"plain text, not a JPEG").unwrap();
    std::fs::write(input.join("deep/broken.png"), b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let out = tmp.path().join("out");
    let inputs = discover(&[input.display().to_string()], None, Some(&out)).unwrap();
    assert_eq!(inputs.len(), 6);
    let pipeline = Pipeline::new(Arc::new(FakeEngine::new()), PipelineConfig::new(2, 2));
    let log = Arc::new(Log::default());
    let plan = plan(&out);
    let summary = run_batch(&pipeline, &inputs, &plan, log.clone()).unwrap();
    assert_eq!((summary.ok, summary.failed, summary.skipped), (4, 2, 0), "{:?}", log.0.lock().unwrap());
    assert!(!summary.all_succeeded());
    let raw = std::fs::read_to_string(out.join("deep/er/b.raw.txt")).unwrap();
    assert!(raw.contains("# Page 32x20"), "{raw}");
    assert!(out.join("a.raw.txt").is_file() && out.join("a.jpg.raw.txt").is_file());
    assert!(out.join("deep/same.png.raw.txt").is_file(), "stems that collide keep their extension");
    let (_, records) = Manifest::open(&plan.manifest).unwrap();
    assert_eq!(records.len(), 6, "every file is recorded");
    let broken = &records["deep/broken.png"];
    assert_eq!(broken.status, DocumentStatus::Failed);
    assert!(broken.error.as_deref().unwrap().contains("corrupt or unsupported PNG"), "{broken:?}");
    let b = &records["deep/er/b.png"];
    assert_eq!(b.outputs, ["deep/er/b.raw.txt"]);
    assert_eq!(b.pages.len(), 1);
    assert_eq!(b.pages[0].status, crate::pipeline::PageStatus::Finished);
    assert_eq!(b.sha256.len(), 64);

    // Rerun: the good documents are skipped, the failed ones retried.
    log.0.lock().unwrap().clear();
    let again = run_batch(&pipeline, &inputs, &plan, log.clone()).unwrap();
    assert_eq!((again.ok, again.failed, again.skipped), (0, 2, 4));

    // A changed input, a deleted output and changed options are redone.
    write_png(&input.join("a.png"), 40, 20);
    std::fs::remove_file(out.join("deep/er/b.raw.txt")).unwrap();
    let again = run_batch(&pipeline, &inputs, &plan, log.clone()).unwrap();
    assert_eq!((again.ok, again.skipped), (2, 2));
    assert!(std::fs::read_to_string(out.join("a.raw.txt")).unwrap().contains("# Page 40x20"));
    let mut other = plan.clone();
    other.options.max_new_tokens = 3;
    assert_ne!(other.options_hash(), plan.options_hash());
    let again = run_batch(&pipeline, &inputs, &other, log.clone()).unwrap();
    assert_eq!((again.ok, again.skipped), (4, 0));
    let forced = BatchPlan { force: true, ..other };
    assert_eq!(run_batch(&pipeline, &inputs, &forced, log).unwrap().skipped, 0);
}

#[test]
fn safe_paths_only() {
    assert_eq!(safe_relative(Path::new("a"), "x.md"), Some(PathBuf::from("a/x.md")));
    assert_eq!(safe_relative(Path::new("a"), "x.figures/1.png"), Some(PathBuf::from("a/x.figures/1.png")));
    assert_eq!(safe_relative(Path::new("a"), "../x.md"), None);
    assert_eq!(safe_relative(Path::new("a"), "/etc/x"), None);
    assert_eq!(safe_relative(Path::new("a"), ""), None);
}
