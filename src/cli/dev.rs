//! `docseek dev`: developer tools. `tiny-checkpoint` writes a tiny random DeepSeek-OCR-shaped
//! checkpoint folder for end-to-end tests (seconds to load and run); `random-checkpoint`
//! writes a full-size one with the official names and shapes, for benchmarks. Both use the
//! real vocabulary size and special-token ids (see `model::synth`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Subcommand;

use crate::model::synth::{config_json, write_checkpoint, SynthDtype};
use crate::model::Architecture;

/// Arguments of `docseek dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    #[command(subcommand)]
    pub tool: DevTool,
}

/// The developer tools.
#[derive(Debug, Subcommand)]
pub enum DevTool {
    /// Write a tiny random checkpoint folder (config.json, model.safetensors, tokenizer.json).
    TinyCheckpoint(CheckpointArgs),
    /// Write a full-size random checkpoint folder (official names and shapes; ~6.7 GB in bf16).
    RandomCheckpoint(CheckpointArgs),
}

/// Options of both checkpoint writers.
#[derive(Debug, clap::Args)]
pub struct CheckpointArgs {
    /// Output folder (created; existing files are overwritten).
    pub out_dir: PathBuf,
    /// Model family to imitate: ocr1 (DeepSeek-OCR) or ocr2 (DeepSeek-OCR-2).
    #[arg(long, default_value_t = Architecture::Ocr1)]
    pub arch: Architecture,
    /// Random seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Weight dtype in the file (default: f32 for tiny, bf16 for full-size).
    #[arg(long, value_enum)]
    pub dtype: Option<SynthDtype>,
    /// Write only the decoder tensors (no vision tower).
    #[arg(long)]
    pub decoder_only: bool,
}

/// Runs `docseek dev`.
pub fn run(args: DevArgs) -> anyhow::Result<ExitCode> {
    let (a, full) = match args.tool {
        DevTool::TinyCheckpoint(a) => (a, false),
        DevTool::RandomCheckpoint(a) => (a, true),
    };
    let dtype = a.dtype.unwrap_or(if full { SynthDtype::Bf16 } else { SynthDtype::F32 });
    let vision = if a.decoder_only {
        Vec::new()
    } else {
        let cfg = docseek_vision::VisionConfig::from_value(&config_json(a.arch, full))?;
        docseek_vision::tensor_specs(&cfg)
    };
    let start = Instant::now();
    let s = write_checkpoint(&a.out_dir, a.arch, full, dtype, a.seed, &vision)?;
    println!(
        "wrote {} ({} tensors, {} parameters, {:.1} MB{}) in {:.1}s",
        a.out_dir.display(),
        s.tensors,
        s.params,
        s.bytes as f64 / 1e6,
        if s.with_vision { "" } else { ", decoder only" },
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
