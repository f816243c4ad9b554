//! `docseek parity DIR`: runs every check the golden fixtures under DIR support (views, vision
//! stage tensors, position tables, and the checks other components register), one line per
//! check, then `N passed, M failed`; exits non-zero on any failure.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::model::{DeviceSpec, Dtype};
use crate::parity::{runner, ParityOptions};
use docseek_kernels::linear::Quant;

/// Arguments of `docseek parity`.
#[derive(Debug, clap::Args)]
pub struct ParityArgs {
    /// A fixture folder (e.g. tests/fixtures/ocr1-tiny) or a parent holding several
    /// [default: tests/fixtures, the public set vendored in the repository].
    pub dir: Option<PathBuf>,
    /// Compute dtype: f32 (the fixtures' 1e-4 relative tolerance) or bf16 / f16 (a sanity
    /// check with the looser 2e-2 tolerance).
    #[arg(long, default_value_t = Dtype::F32)]
    pub dtype: Dtype,
    /// Device the models run on: cpu, cuda or cuda:N (needs a `--features cuda` build).
    #[arg(long, default_value_t = DeviceSpec::Cpu)]
    pub device: DeviceSpec,
    /// Decoder weight storage: none, q8, q4 (quantized runs bind the greedy ids only).
    #[arg(long, default_value_t = Quant::None)]
    pub quant: Quant,
}

/// Runs `docseek parity`.
pub fn run(args: ParityArgs) -> anyhow::Result<ExitCode> {
    let dtype = args.dtype.candle();
    let device = args.device.open()?;
    let dir = args.dir.unwrap_or_else(crate::parity::default_fixtures_dir);
    let report = runner::run(&dir, &ParityOptions { dtype, device, quant: args.quant })?;
    println!("{}", report.summary());
    Ok(if report.failed() == 0 && report.passed() > 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
