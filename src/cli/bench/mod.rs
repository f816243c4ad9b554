//! `docseek bench`: benchmarks of each stage, reported as ratios against a reference measured
//! in the same run (the machines are noisy).

use std::process::ExitCode;

use clap::Subcommand;

pub mod accuracy;
pub mod decode;
pub mod decode_batch;
pub mod encode;
pub mod langid;
pub mod raster;
pub mod roofline;

/// Arguments of `docseek bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: Bench,
}

/// Which benchmark to run.
#[derive(Debug, Subcommand)]
pub enum Bench {
    /// Rasterizer pages/s at 144 dpi, beside `pdftoppm -r 144` when installed.
    Raster(raster::RasterBenchArgs),
    /// Vision encoder latency per mode, with peak memory.
    Encode(encode::EncodeBenchArgs),
    /// Decoder prefill and decode tokens/s, peak RSS vs weight bytes; `--batch 1,4,8,16` for
    /// batched decoding.
    Decode(decode::DecodeBenchArgs),
    /// Relative error of bf16 / q8 / q4 against f32, per stage.
    Accuracy(accuracy::AccuracyBenchArgs),
    /// Language detection throughput (MB/s), beside whatlang alone.
    Langid(langid::LangidBenchArgs),
}

/// Runs `docseek bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.which {
        Bench::Raster(a) => raster::run(a),
        Bench::Encode(a) => encode::run(a),
        Bench::Decode(a) => decode::run(a),
        Bench::Accuracy(a) => accuracy::run(a),
        Bench::Langid(a) => langid::run(a),
    }
}
