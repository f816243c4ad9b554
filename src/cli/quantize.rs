//! `docseek quantize`: quantizes a checkpoint's decoder (q8 or q4) once and saves it beside
//! the checkpoint (`docseek-q8.safetensors`), where `--quant q8` finds and maps it: a
//! quantized load then costs about as much as a bf16 one.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;

use crate::model::loader::{quantize_to_file, resolve_model_dir};
use crate::model::ModelConfig;

/// Arguments of `docseek quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// A local model folder or a Hugging Face hub id.
    #[arg(long, env = "DOCSEEK_MODEL", default_value = "deepseek-ai/DeepSeek-OCR")]
    pub model: String,
    /// Hub revision when `--model` is a hub id.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// q8 or q4.
    #[arg(long)]
    pub quant: String,
    /// Output file (default: `docseek-<quant>.safetensors` in the model folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `docseek quantize`.
pub fn run(args: QuantizeArgs) -> anyhow::Result<ExitCode> {
    let quant = docseek_kernels::linear::Quant::parse(&args.quant)
        .ok_or_else(|| anyhow::anyhow!("unknown --quant '{}' (q8, q4)", args.quant))?;
    let dir = resolve_model_dir(&args.model, &args.revision)?;
    let cfg = ModelConfig::from_dir(&dir).context("reading the model config")?;
    let t = Instant::now();
    let (path, bytes) = quantize_to_file(&dir, &cfg.decoder, quant, args.out.as_deref())?;
    println!(
        "{}: {quant} decoder weights, {:.2} GB, in {:.1}s",
        path.display(),
        bytes as f64 / 1e9,
        t.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
