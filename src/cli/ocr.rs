//! `docseek ocr` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek ocr`.
#[derive(Debug, clap::Args)]
pub struct OcrCommand {}

/// Runs `docseek ocr`.
pub fn run(_args: OcrCommand) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek ocr` is not built yet")
}
