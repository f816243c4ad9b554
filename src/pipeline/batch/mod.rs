//! Batch runs over many files (`docseek ocr`): inputs found on disk, pushed through a
//! [`Pipeline`] with a bounded window of documents in flight, outputs written atomically into
//! a tree that mirrors the inputs, and a resumable manifest appended as each document
//! finishes. A bad document is recorded with its error and the run goes on.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::{
    DocId, DocumentError, DocumentOutput, DocumentRequest, DocumentResult, DocumentStatus, InputSource, OutputFormat,
    Pipeline, PipelineStats, ProgressSink, StageTimings,
};
use crate::options::OcrOptions;

pub mod atomic;
pub mod discover;
pub mod manifest;
pub mod progress;

pub use discover::{discover, InputFile};
pub use manifest::{Manifest, ManifestRecord, MANIFEST_FILE};

/// What a batch run does with its inputs.
#[derive(Debug, Clone)]
pub struct BatchPlan {
    /// Output folder (mirrors the input tree).
    pub out: PathBuf,
    /// Manifest file (usually `<out>/manifest.jsonl`).
    pub manifest: PathBuf,
    /// Formats to write.
    pub formats: Vec<OutputFormat>,
    /// OCR options.
    pub options: OcrOptions,
    /// Identifies the model (id, revision, dtype) in the options hash.
    pub model: String,
    /// Redo documents even when the manifest says they are done.
    pub force: bool,
}

impl BatchPlan {
    /// Hash of everything that shapes a document's outputs: a rerun skips a document only if
    /// this matches. The password is reduced to whether one was given.
    pub fn options_hash(&self) -> String {
        #[derive(Serialize)]
        struct Shape<'a> {
            options: &'a OcrOptions,
            formats: Vec<OutputFormat>,
            model: &'a str,
        }
        let options =
            OcrOptions { password: self.options.password.as_ref().map(|_| String::new()), ..self.options.clone() };
        let mut formats = self.formats.clone();
        formats.sort();
        manifest::hash_json(&Shape { options: &options, formats, model: &self.model })
    }
}

/// Watches a batch run: pipeline events plus batch-level milestones. All methods are called
/// from pipeline threads or the driver thread.
pub trait BatchObserver: ProgressSink {
    /// The run will look at `documents` documents.
    fn planned(&self, _documents: usize) {}
    /// A document is skipped: the manifest says it is done.
    fn skipped(&self, _input: &InputFile) {}
    /// A document went into the pipeline as `doc`.
    fn submitted(&self, _doc: DocId, _input: &InputFile) {}
    /// A document is finished and recorded.
    fn recorded(&self, _record: &ManifestRecord) {}
}

/// Totals of a batch run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchSummary {
    /// Documents fully done.
    pub ok: usize,
    /// Documents with some failed pages.
    pub partial: usize,
    /// Documents that failed.
    pub failed: usize,
    /// Documents skipped because the manifest says they are done.
    pub skipped: usize,
    /// Pages processed.
    pub pages: usize,
    /// Tokens generated.
    pub tokens: usize,
    /// Stage timings summed over all documents.
    pub timings: StageTimings,
    /// Wall time of the run.
    #[serde(with = "super::report::seconds")]
    pub wall: Duration,
    /// The pipeline's counters at the end (engine busy time, overlap).
    pub pipeline: PipelineStats,
}

impl BatchSummary {
    /// Whether every document succeeded (or was already done).
    pub fn all_succeeded(&self) -> bool {
        self.partial == 0 && self.failed == 0
    }
}

/// A document in flight.
struct InFlight {
    input: InputFile,
    sha256: String,
    size: u64,
}

/// Runs a batch; returns its totals. Errors are only those that stop the whole run (the
/// manifest cannot be written).
pub fn run_batch(
    pipeline: &Pipeline,
    inputs: &[InputFile],
    plan: &BatchPlan,
    observer: Arc<dyn BatchObserver>,
) -> std::io::Result<BatchSummary> {
    let start = Instant::now();
    let cleaned = atomic::clean_temp_files(&plan.out);
    if cleaned > 0 {
        tracing::info!("removed {cleaned} temporary files left by an interrupted run");
    }
    let (mut manifest, done) = Manifest::open(&plan.manifest)?;
    let options_hash = plan.options_hash();
    let stems = output_stems(inputs);
    let window = 2 * pipeline.config().jobs + pipeline.config().batch_size;
    let (tx, rx) = mpsc::channel::<(DocId, DocumentResult)>();
    let mut in_flight: HashMap<DocId, InFlight> = HashMap::new();
    let mut summary = BatchSummary::default();
    observer.planned(inputs.len());
    let finish = |id: DocId,
                  result: DocumentResult,
                  in_flight: &mut HashMap<DocId, InFlight>,
                  manifest: &mut Manifest,
                  summary: &mut BatchSummary|
     -> std::io::Result<()> {
        let doc = in_flight.remove(&id).expect("a result for a submitted document");
        let record = write_document(plan, &options_hash, doc, result);
        tally(summary, &record);
        manifest.append(&record)?;
        observer.recorded(&record);
        Ok(())
    };
    for (input, stem) in inputs.iter().zip(stems) {
        let key = rel_key(&input.rel);
        let (sha256, size) = match manifest::hash_file(&input.path) {
            Ok(h) => h,
            Err(e) => {
                let record = failed_record(input, &options_hash, format!("cannot read {}: {e}", input.path.display()));
                tally(&mut summary, &record);
                manifest.append(&record)?;
                observer.recorded(&record);
                continue;
            }
        };
        if !plan.force && is_done(done.get(&key), &sha256, &options_hash, &plan.out) {
            summary.skipped += 1;
            observer.skipped(input);
            continue;
        }
        while in_flight.len() >= window {
            let (id, result) = rx.recv().expect("the pipeline answers every document");
            finish(id, result, &mut in_flight, &mut manifest, &mut summary)?;
        }
        let request = DocumentRequest::new(key, InputSource::Path(input.path.clone()))
            .with_stem(stem)
            .with_options(plan.options.clone())
            .with_formats(plan.formats.clone())
            .with_sink(observer.clone());
        let tx = tx.clone();
        let doc = InFlight { input: input.clone(), sha256, size };
        // Register before submitting: an invalid request answers at once.
        let id = pipeline.submit(request, move |id, result| {
            let _ = tx.send((id, result));
        });
        in_flight.insert(id, doc);
        observer.submitted(id, input);
    }
    drop(tx);
    while !in_flight.is_empty() {
        let (id, result) = rx.recv().expect("the pipeline answers every document");
        finish(id, result, &mut in_flight, &mut manifest, &mut summary)?;
    }
    summary.wall = start.elapsed();
    summary.pipeline = pipeline.stats();
    Ok(summary)
}

/// The manifest key of a relative path (`/`-separated).
fn rel_key(rel: &Path) -> String {
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

/// Output stems: the file name without its extension, or the whole file name when two inputs
/// in the same output folder share a stem (`a.pdf` and `a.png` → `a.pdf.md`, `a.png.md`).
fn output_stems(inputs: &[InputFile]) -> Vec<String> {
    let short = |i: &InputFile| {
        let name = i.rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "document".into());
        match name.rfind('.') {
            Some(dot) if dot > 0 => name[..dot].to_string(),
            _ => name,
        }
    };
    let mut seen: HashMap<(PathBuf, String), usize> = HashMap::new();
    for i in inputs {
        *seen.entry((i.rel.parent().unwrap_or(Path::new("")).to_path_buf(), short(i))).or_default() += 1;
    }
    inputs
        .iter()
        .map(|i| {
            let key = (i.rel.parent().unwrap_or(Path::new("")).to_path_buf(), short(i));
            if seen[&key] > 1 {
                i.rel.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or(key.1)
            } else {
                key.1
            }
        })
        .collect()
}

/// Whether the manifest's record says this input is done with these options, and its
/// outputs are still there.
fn is_done(record: Option<&ManifestRecord>, sha256: &str, options_hash: &str, out: &Path) -> bool {
    record.is_some_and(|r| {
        r.status == DocumentStatus::Ok
            && r.sha256 == sha256
            && r.options_hash == options_hash
            && r.outputs.iter().all(|o| out.join(o).is_file())
    })
}

fn tally(summary: &mut BatchSummary, record: &ManifestRecord) {
    match record.status {
        DocumentStatus::Ok => summary.ok += 1,
        DocumentStatus::Partial => summary.partial += 1,
        DocumentStatus::Failed | DocumentStatus::Cancelled => summary.failed += 1,
    }
    summary.pages += record.pages.len();
    summary.tokens += record.pages.iter().map(|p| p.generated_tokens).sum::<usize>();
    summary.timings.add(&record.timings);
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn failed_record(input: &InputFile, options_hash: &str, error: String) -> ManifestRecord {
    ManifestRecord {
        input: rel_key(&input.rel),
        path: input.path.display().to_string(),
        size: 0,
        sha256: String::new(),
        options_hash: options_hash.to_string(),
        status: DocumentStatus::Failed,
        page_count: 0,
        pages: Vec::new(),
        timings: StageTimings::default(),
        elapsed: Duration::ZERO,
        outputs: Vec::new(),
        languages: Vec::new(),
        error: Some(error),
        finished_unix: now_unix(),
    }
}

/// Writes a finished document's files and builds its manifest record.
fn write_document(plan: &BatchPlan, options_hash: &str, doc: InFlight, result: DocumentResult) -> ManifestRecord {
    let mut record = failed_record(&doc.input, options_hash, String::new());
    record.sha256 = doc.sha256;
    record.size = doc.size;
    let output: DocumentOutput = match result {
        Ok(output) => output,
        Err(e) => {
            record.status =
                if e == DocumentError::Cancelled { DocumentStatus::Cancelled } else { DocumentStatus::Failed };
            record.error = Some(e.to_string());
            return record;
        }
    };
    record.status = output.status;
    record.page_count = output.page_count;
    record.pages = output.pages;
    record.timings = output.timings;
    record.elapsed = output.elapsed;
    record.error = output.error;
    record.languages = output.languages;
    let folder = doc.input.rel.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut written = HashSet::new();
    for file in &output.files {
        let Some(rel) = safe_relative(&folder, &file.path) else {
            record.status = DocumentStatus::Failed;
            record.error = Some(format!("refusing an output path outside the output folder: {}", file.path));
            break;
        };
        if let Err(e) = atomic::write_atomic(&plan.out.join(&rel), &file.bytes) {
            record.status = DocumentStatus::Failed;
            record.error = Some(format!("cannot write {}: {e}", plan.out.join(&rel).display()));
            break;
        }
        if written.insert(rel.clone()) {
            record.outputs.push(rel_key(&rel));
        }
    }
    record
}

/// `folder/path` when `path` is a plain relative path (no root, no `..`).
fn safe_relative(folder: &Path, path: &str) -> Option<PathBuf> {
    let p = Path::new(path);
    let plain = p.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !path.is_empty()).then(|| folder.join(p))
}

#[cfg(test)]
mod tests;
