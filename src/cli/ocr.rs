//! `docseek ocr`: OCR documents (PDFs, images, folders, globs, lists) into Markdown, JSON,
//! HTML, hOCR, searchable PDF or raw model text, resumably, through the shared pipeline.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::options::{ModelArgs, OcrOptions};
use crate::pipeline::batch::progress::{BatchProgress, ProgressMode};
use crate::pipeline::batch::{discover, run_batch, BatchPlan, MANIFEST_FILE};
use crate::pipeline::{
    DocumentRequest, DocumentStatus, InputSource, OutputFormat, Pipeline, PipelineConfig, ProgressSink,
};

/// Exit code: every document succeeded (or was already done).
pub const EXIT_OK: u8 = 0;
/// Exit code: the run could not start (bad arguments, no inputs, model not loadable).
pub const EXIT_CANNOT_START: u8 = 2;
/// Exit code: the run finished but some documents failed or were only partly recognised.
pub const EXIT_SOME_FAILED: u8 = 3;

/// Default pages decoding together.
pub const DEFAULT_BATCH_SIZE: usize = 8;

const AFTER_HELP: &str = "\
Outputs: with --out DIR, each input's outputs go to DIR at the input's place in the input tree
(below a directory argument: its path inside that directory; otherwise its file name), named
<stem>.md, .json, .html, .hocr, .ocr.pdf, .txt, .raw.txt. Without --out, a single input is written to
stdout in one format.

Manifest: DIR/manifest.jsonl gets one JSON line per finished document (input, size, sha256,
options hash, status, pages with per-page outcome, timings, outputs, error). A rerun skips
documents recorded as ok with the same input hash and options whose outputs still exist;
--force redoes them. Files are written atomically (temporary file + rename); an interrupted
run loses at most the documents in flight.

Exit codes:
  0  every document succeeded (or was already done)
  2  the run could not start (bad arguments, no inputs, model could not be loaded)
  3  some documents failed or were only partly recognised (see the manifest)";

/// Arguments of `docseek ocr`.
#[derive(Debug, clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct OcrCommand {
    /// Files, directories (searched recursively for PDFs and images), globs, or `-` to read
    /// paths from stdin (one per line). File names need not be UTF-8.
    pub inputs: Vec<PathBuf>,

    /// Read input paths from this file, one per line (`-` = stdin; `#` starts a comment).
    #[arg(long, value_name = "LIST")]
    pub files_from: Option<PathBuf>,

    /// Output folder, mirroring the input tree. Without it, a single input goes to stdout.
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Output formats, comma-separated: md, json, html, hocr, pdf (searchable), txt, raw (model text).
    #[arg(short, long, default_value = "md", value_parser = parse_formats)]
    pub format: Formats,

    /// Manifest file [default: OUT/manifest.jsonl].
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,

    /// Redo documents that the manifest lists as done.
    #[arg(long)]
    pub force: bool,

    /// CPU workers for rasterizing and structuring (documents open at once) [default: CPUs].
    #[arg(short, long, env = "DOCSEEK_JOBS")]
    pub jobs: Option<usize>,

    /// Pages decoding together, across documents (token-level batching: pages join and leave
    /// the batch at every step; every page streams its tokens) [default: 8 on the CPU, 128 on
    /// a GPU].
    #[arg(long, env = "DOCSEEK_BATCH_SIZE")]
    pub batch_size: Option<usize>,

    /// KV cache budget of the batched decoder in MiB [default: half the free memory].
    #[arg(long, env = "DOCSEEK_KV_CACHE_MB")]
    pub kv_cache_mb: Option<usize>,

    /// No progress output on stderr.
    #[arg(short, long)]
    pub quiet: bool,

    /// Progress as JSON lines on stderr (for pipelines).
    #[arg(long, conflicts_with = "quiet")]
    pub json_progress: bool,

    /// Send the documents to a docseek service (a server or a fleet's API nodes) as jobs
    /// instead of running a model here; results are written under --out as a local run would.
    #[arg(long, value_name = "URL", requires = "out")]
    pub submit: Option<String>,

    /// Bearer key of the --submit service.
    #[arg(long, env = "DOCSEEK_API_KEY", hide_env_values = true, requires = "submit")]
    pub api_key: Option<String>,

    #[command(flatten)]
    pub options: OcrOptions,

    #[command(flatten)]
    pub model: ModelArgs,
}

/// A parsed `--format` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formats(pub Vec<OutputFormat>);

fn parse_formats(spec: &str) -> Result<Formats, String> {
    OutputFormat::parse_list(spec).map(Formats)
}

/// Runs `docseek ocr`; errors before any document is processed exit with code 2.
pub fn run(args: OcrCommand) -> anyhow::Result<ExitCode> {
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else if args.json_progress {
        ProgressMode::Json
    } else if std::io::stderr().is_terminal() {
        ProgressMode::Bars
    } else {
        ProgressMode::Lines
    };
    if args.inputs.is_empty() && args.files_from.is_none() {
        anyhow::bail!("no inputs: give files, directories, globs, `-` or --files-from LIST");
    }
    let formats = args.format.0.clone();
    let probe = DocumentRequest::new("-", InputSource::bytes(Vec::new())).with_options(args.options.clone());
    probe.validate().map_err(|e| anyhow::anyhow!("{e}"))?;
    let inputs = discover(&args.inputs, args.files_from.as_deref(), args.out.as_deref())?;
    if inputs.is_empty() {
        anyhow::bail!("no PDFs or images found in the given inputs");
    }
    if let (Some(url), Some(out)) = (&args.submit, &args.out) {
        let plan = crate::cli::submit::SubmitPlan {
            url: url.clone(),
            api_key: args.api_key.clone(),
            out: out.clone(),
            formats,
            options: args.options.clone(),
            parallel: args.jobs.unwrap_or(4),
        };
        return crate::cli::submit::run(inputs, plan);
    }
    let jobs = args.jobs.unwrap_or_else(|| PipelineConfig::default().jobs);
    let config_for = |engine: &Arc<dyn crate::engine::OcrEngine>| PipelineConfig {
        kv_cache_bytes: args.kv_cache_mb.map(|mb| mb << 20),
        ..PipelineConfig::new(jobs, crate::engine::default_batch(args.batch_size, &engine.info(), DEFAULT_BATCH_SIZE))
    };
    let progress = Arc::new(BatchProgress::new(mode));

    let Some(out) = args.out.clone() else {
        if inputs.len() > 1 {
            anyhow::bail!("{} inputs found: writing to stdout takes a single input; use --out DIR", inputs.len());
        }
        if formats.len() > 1 {
            anyhow::bail!("writing to stdout takes a single format; use --out DIR for several");
        }
        let engine = crate::engine::load(&args.model).context("cannot load the model")?;
        let config = config_for(&engine);
        let pipeline = Pipeline::new(engine, config);
        return to_stdout(&pipeline, &inputs[0].path, formats[0], args.options, progress);
    };

    let engine = crate::engine::load(&args.model).context("cannot load the model")?;
    let config = config_for(&engine);
    let pipeline = Pipeline::new(engine, config);
    let plan = BatchPlan {
        manifest: args.manifest.clone().unwrap_or_else(|| out.join(MANIFEST_FILE)),
        out,
        formats,
        options: args.options,
        model: format!(
            "{}@{}:{}",
            args.model.model,
            args.model.revision,
            args.model.dtype.map_or("auto", |d| d.name())
        ),
        force: args.force,
    };
    let summary = run_batch(&pipeline, &inputs, &plan, progress.clone())
        .with_context(|| format!("cannot write the manifest {}", plan.manifest.display()))?;
    progress.summary(&summary);
    Ok(ExitCode::from(if summary.all_succeeded() { EXIT_OK } else { EXIT_SOME_FAILED }))
}

/// OCRs one document and writes its main output to stdout.
fn to_stdout(
    pipeline: &Pipeline,
    path: &std::path::Path,
    format: OutputFormat,
    options: OcrOptions,
    progress: Arc<BatchProgress>,
) -> anyhow::Result<ExitCode> {
    let name = path.display().to_string();
    let sink: Arc<dyn ProgressSink> = progress;
    let request = DocumentRequest::new(name.clone(), InputSource::Path(path.to_path_buf()))
        .with_options(options)
        .with_formats(vec![format])
        .with_sink(sink);
    let stem = request.stem.clone();
    let output = match pipeline.run(request) {
        Ok(output) => output,
        Err(e) => {
            eprintln!("error: {name}: {e}");
            return Ok(ExitCode::from(EXIT_SOME_FAILED));
        }
    };
    let main = format!("{stem}{}", format.suffix());
    if let Some(file) = output.files.iter().find(|f| f.path == main) {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&file.bytes).context("cannot write to stdout")?;
        stdout.flush().context("cannot write to stdout")?;
    }
    if output.files.len() > 1 {
        eprintln!("note: {} extra files (figure crops) are only written with --out DIR", output.files.len() - 1);
    }
    for page in output.pages.iter().filter(|p| p.error.is_some()) {
        eprintln!("error: {name}: page {}: {}", page.page, page.error.as_deref().unwrap_or_default());
    }
    Ok(ExitCode::from(if output.status == DocumentStatus::Ok { EXIT_OK } else { EXIT_SOME_FAILED }))
}
