//! Command-line interface: one file per subcommand, dispatched from here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod dev;
pub mod langid;
pub mod ocr;
pub mod pages;
pub mod parity;
pub mod pdf_worker;
pub mod quantize;
pub mod render;
pub mod serve;
pub mod submit;
pub mod worker;

/// docseek: multilingual document OCR (DeepSeek-OCR / DeepSeek-OCR-2) as a CLI and a service.
#[derive(Debug, Parser)]
#[command(name = "docseek", version = version_line(), about, long_about = None)]
pub struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render document pages to PNG (and optionally extract the PDF text layer).
    Pages(pages::PagesArgs),
    /// OCR documents (PDFs, images, folders) into Markdown, JSON, HTML, hOCR or searchable PDF.
    Ocr(ocr::OcrCommand),
    /// Build structured outputs from saved raw model text (no model needed).
    Render(render::RenderArgs),
    /// Detect the language and script of each input line.
    Langid(langid::LangidArgs),
    /// Run the HTTP service (REST API, OpenAI-compatible endpoint, web UI).
    Serve(serve::ServeArgs),
    /// Run an engine-only fleet node: pull pages from a shared PostgreSQL queue (docs/deploy.md).
    Worker(worker::WorkerArgs),
    /// Check the implementation against golden fixtures of the reference model.
    Parity(parity::ParityArgs),
    /// Benchmarks: rasterizer, encoder, decoder, language detection.
    Bench(bench::BenchArgs),
    /// Quantize a checkpoint's decoder (q8 / q4) once, for fast `--quant` loads.
    Quantize(quantize::QuantizeArgs),
    /// Developer tools: write tiny or full-size random checkpoints.
    Dev(dev::DevArgs),
    /// Internal: the crash-isolated rasterizer process (spoken to over pipes).
    #[command(hide = true)]
    PdfWorker(pdf_worker::PdfWorkerArgs),
}

/// Runs a parsed command line; the exit code reflects per-input failures.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Pages(args) => pages::run(args),
        Command::Ocr(args) => ocr::run(args),
        Command::Render(args) => render::run(args),
        Command::Langid(args) => langid::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Parity(args) => parity::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Dev(args) => dev::run(args),
        Command::Worker(args) => worker::run(args),
        Command::PdfWorker(args) => pdf_worker::run(args),
    }
}

/// Log targets kept at `error` unless `RUST_LOG` says otherwise.
pub const QUIET_DEPENDENCIES: &str = "html5ever=error";

/// Sets up `tracing` on stderr; `RUST_LOG` wins over `-v`.
pub fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    // html5ever (under the table parser) logs a WARN for every table it repairs ("foster
    // parenting"): normal for model output and nothing a user can act on.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(format!("{default},{QUIET_DEPENDENCIES}")));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// `--version` text: the crate version, the compiled features and the libpdfium found.
fn version_line() -> &'static str {
    // A CUDA build names its toolkit and kernel target (`cuda 13.0, PTX for sm_90`).
    let features = if cfg!(feature = "cuda") { docseek_kernels::build_info() } else { "cpu only" };
    let pdfium = crate::pdf::library::version_summary();
    // clap wants a 'static string; this runs once per process.
    Box::leak(format!("{} (features: {features}; {pdfium})", env!("CARGO_PKG_VERSION")).into_boxed_str())
}
