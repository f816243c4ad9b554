//! `docseek parity DIR`: runs every check the golden fixtures under DIR support (views, vision
//! stage tensors, position tables, and the checks other components register), one line per
//! check, then `N passed, M failed`; exits non-zero on any failure.

use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::DType;

use crate::parity::{runner, ParityOptions};

/// Compute dtype of a parity run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ParityDtype {
    /// float32: the fixtures' 1e-4 relative tolerance.
    F32,
    /// bfloat16: a sanity check with the looser 2e-2 tolerance.
    Bf16,
}

/// Arguments of `docseek parity`.
#[derive(Debug, clap::Args)]
pub struct ParityArgs {
    /// A fixture folder (e.g. shared/fixtures/ocr1-tiny) or a parent holding several.
    pub dir: PathBuf,
    /// Compute dtype.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: ParityDtype,
    /// Decoder weight storage: none, q8, q4 (quantized runs bind the greedy ids only).
    #[arg(long, default_value = "none")]
    pub quant: String,
}

/// Runs `docseek parity`.
pub fn run(args: ParityArgs) -> anyhow::Result<ExitCode> {
    let dtype = match args.dtype {
        ParityDtype::F32 => DType::F32,
        ParityDtype::Bf16 => DType::BF16,
    };
    let quant = docseek_kernels::linear::Quant::parse(&args.quant)
        .ok_or_else(|| anyhow::anyhow!("unknown --quant '{}' (none, q8, q4)", args.quant))?;
    let report = runner::run(&args.dir, &ParityOptions { dtype, quant })?;
    println!("{}", report.summary());
    Ok(if report.failed() == 0 && report.passed() > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
