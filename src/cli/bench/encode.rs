//! `docseek bench encode`: vision encoder latency per mode with peak memory (VmHWM), for a real
//! checkpoint (`--model DIR`) or full-size random weights (`--random`, the default).
//!
//! The peak is reset before each mode (`/proc/self/clear_refs` = 5) so every row reports its own
//! high-water mark; the preprocessing time is reported beside the model time. With
//! `--reference` (refbench's JSONL results of the same session) each mode is also given as a
//! ratio to the PyTorch reference's time for the same mode and dtype.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use docseek_vision::random::random_weights;
use docseek_vision::{make_views, Architecture, Mode, VisionConfig, VisionEncoder};
use image::{Rgb, RgbImage};

/// A4 at 144 dpi, the rasterizer's default page.
const A4_144DPI: (u32, u32) = (1191, 1684);

/// Weight dtype of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchDtype {
    /// float32.
    F32,
    /// bfloat16.
    Bf16,
}

/// Arguments of `docseek bench encode`.
#[derive(Debug, clap::Args)]
pub struct EncodeBenchArgs {
    /// Checkpoint folder (config.json + *.safetensors); omit for full-size random weights.
    #[arg(long, conflicts_with = "random")]
    pub model: Option<PathBuf>,
    /// Use full-size random weights with the official shapes (the default without --model).
    #[arg(long)]
    pub random: bool,
    /// Architecture of the random weights: ocr1 or ocr2.
    #[arg(long, default_value_t = Architecture::Ocr1)]
    pub arch: Architecture,
    /// Modes to time (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "tiny,small,base,large,gundam")]
    pub modes: Vec<Mode>,
    /// Input image (default: a synthetic A4 page at 144 dpi).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Timed runs per mode (the median is reported).
    #[arg(long, default_value_t = 1)]
    pub runs: usize,
    /// Weight dtype.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: BenchDtype,
    /// Device: cpu or cuda[:N] (timings wait for the device to finish).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// refbench results (JSONL) measured in the same session, for ratios.
    #[arg(long)]
    pub reference: Option<PathBuf>,
}

/// Peak resident set size of this process in KiB (`VmHWM`).
fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak RSS counter (Linux `clear_refs` value 5); false where unsupported.
fn reset_hwm() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A white A4 page at 144 dpi with dark "text lines".
pub fn synthetic_page() -> RgbImage {
    let (w, h) = A4_144DPI;
    // White page with dark "text lines" so the views are not constant.
    RgbImage::from_fn(w, h, |x, y| {
        let ink = (y / 12) % 3 == 0 && (x / 7) % 5 != 0 && x > 100 && x < w - 100;
        if ink {
            Rgb([20, 20, 30])
        } else {
            Rgb([250, 250, 248])
        }
    })
}

/// Runs `docseek bench encode`.
pub fn run(args: EncodeBenchArgs) -> anyhow::Result<ExitCode> {
    let dev: Device = crate::model::loader::parse_device(&args.device)?;
    let dtype = match args.dtype {
        BenchDtype::F32 => DType::F32,
        BenchDtype::Bf16 => DType::BF16,
    };
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let img = match &args.image {
        Some(p) => image::open(p).with_context(|| format!("decoding {}", p.display()))?.to_rgb8(),
        None => synthetic_page(),
    };
    let t0 = Instant::now();
    let (enc, source) = match &args.model {
        Some(dir) => {
            let cfg = crate::model::ModelConfig::from_dir(dir)?
                .vision
                .with_context(|| format!("{}/config.json has no vision_config", dir.display()))?;
            // Read tensor by tensor (no mapping left behind, so the peak is the weights).
            let vb = crate::model::loader::open_weights(dir, dtype, &dev)?;
            (VisionEncoder::from_config(&cfg, vb)?, dir.display().to_string())
        }
        None => {
            let cfg = match args.arch {
                Architecture::Ocr1 => VisionConfig::deepseek_ocr(),
                Architecture::Ocr2 => VisionConfig::deepseek_ocr2(),
            };
            let w = random_weights(&cfg, dtype, &dev)?;
            (VisionEncoder::from_config(&cfg, VarBuilder::from_tensors(w, dtype, &dev))?, "random full-size".into())
        }
    };
    let arch = enc.config().arch;
    println!(
        "encoder: {source} ({arch:?}, {dtype:?}, {dev:?}), load {:.2}s; image {}x{}; {}; {}",
        t0.elapsed().as_secs_f64(),
        img.width(),
        img.height(),
        super::roofline::machine_line(),
        super::roofline::load_line()
    );
    println!(
        "{:<14} {:>6} {:>6} {:>10} {:>10} {:>12}  vs PyTorch",
        "mode", "views", "slots", "prep_s", "encode_s", "peak_MiB"
    );
    let hwm_resettable = reset_hwm();
    for mode in &args.modes {
        let spec = mode.spec(arch);
        if let Err(e) = enc.check_spec(&spec) {
            println!("{:<14} skipped: {e}", mode.name());
            continue;
        }
        reset_hwm();
        let mut prep = Vec::new();
        let mut times = Vec::new();
        let mut slots = 0;
        let mut n_views = 0;
        for _ in 0..args.runs {
            let t = Instant::now();
            let views = make_views(&img, &spec)?;
            prep.push(t.elapsed().as_secs_f64());
            n_views = 1 + views.tiles.len();
            let t = Instant::now();
            let out = enc.encode_views(&views)?.image_embeds;
            slots = out.dim(0)?;
            dev.synchronize()?;
            times.push(t.elapsed().as_secs_f64());
        }
        prep.sort_by(f64::total_cmp);
        times.sort_by(f64::total_cmp);
        let peak = vm_hwm_kib().map_or("n/a".to_string(), |k| format!("{:.0}", k as f64 / 1024.0));
        let total = prep[prep.len() / 2] + times[times.len() / 2];
        let vs = match &args.reference {
            Some(file) => {
                let dt = if dtype == DType::BF16 { "bf16" } else { "f32" };
                match super::roofline::reference(file, "vision", &[("dtype", dt.into()), ("mode", mode.name().into())])?
                {
                    Some(r) => {
                        let t = r["s_per_page"].as_f64().unwrap_or(f64::NAN);
                        format!("  {t:.2}s: docseek x{:.2} of its time", total / t)
                    }
                    None => "  (no reference line)".into(),
                }
            }
            None => String::new(),
        };
        println!(
            "{:<14} {:>6} {:>6} {:>10.3} {:>10.2} {:>12}{vs}",
            mode.name(),
            n_views,
            slots,
            prep[prep.len() / 2],
            times[times.len() / 2],
            peak
        );
    }
    if !hwm_resettable {
        println!("note: peak memory could not be reset per mode; figures are cumulative");
    }
    Ok(ExitCode::SUCCESS)
}
