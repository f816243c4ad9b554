//! `docseek bench raster` (not built yet: being written).

use std::process::ExitCode;

/// Arguments of `docseek bench raster`.
#[derive(Debug, clap::Args)]
pub struct RasterBenchArgs {}

/// Runs `docseek bench raster`.
pub fn run(_args: RasterBenchArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`docseek bench raster` is not built yet")
}
