//! `docseek bench raster`: rasterizer throughput (pages/s at 144 dpi, through the worker process,
//! raw RGB in memory) beside poppler's `pdftoppm -r 144` (PPM files into a temporary folder) on
//! the same pages, measured in the same run; reported as a ratio.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use crate::pdf::{DocumentSource, PageSelection, Rasterizer, RasterizerConfig, RenderOptions, DEFAULT_DPI};

/// The multi-page sample used when no input is given.
const DEFAULT_INPUT: &str = "samples/en_tracemonkey_p1-3.pdf";

/// Arguments of `docseek bench raster`.
#[derive(Debug, clap::Args)]
pub struct RasterBenchArgs {
    /// A multi-page PDF (default: samples/en_tracemonkey_p1-3.pdf).
    pub input: Option<PathBuf>,

    /// Render only the first N pages.
    #[arg(long)]
    pub pages: Option<usize>,

    /// Resolution in dots per inch.
    #[arg(long, default_value_t = DEFAULT_DPI)]
    pub dpi: f32,

    /// Timed rounds per contender (the best round counts); one untimed warm-up precedes them.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,

    /// libpdfium to use (file or folder).
    #[arg(long, env = "DOCSEEK_PDFIUM_LIB")]
    pub pdfium_lib: Option<PathBuf>,
}

/// Runs `docseek bench raster`.
pub fn run(args: RasterBenchArgs) -> anyhow::Result<ExitCode> {
    let input = match &args.input {
        Some(p) => p.clone(),
        None => [Path::new(DEFAULT_INPUT).to_path_buf(), Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_INPUT)]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| anyhow::anyhow!("no input given and {DEFAULT_INPUT} not found"))?,
    };
    let raster = Rasterizer::new(RasterizerConfig { pdfium_lib: args.pdfium_lib.clone(), ..Default::default() })?;
    let source = DocumentSource::path(&input);
    let probe = raster.open(&source, &RenderOptions { dpi: args.dpi, ..Default::default() })?;
    let total = probe.info().page_count;
    drop(probe);
    let n = args.pages.unwrap_or(total).clamp(1, total);
    let selection: PageSelection = format!("1-{n}").parse()?;
    let opts = RenderOptions { dpi: args.dpi, pages: Some(selection), ..Default::default() };
    let rounds = args.rounds.max(1);

    let render_round = || -> anyhow::Result<(Duration, u64)> {
        let start = Instant::now();
        let mut pixels = 0u64;
        for page in raster.open(&source, &opts)? {
            let page = page?;
            pixels += u64::from(page.image.width()) * u64::from(page.image.height());
        }
        Ok((start.elapsed(), pixels))
    };
    render_round()?; // warm-up: worker start, page cache
    let mut ours = Vec::with_capacity(rounds);
    let mut pixels = 0;
    for _ in 0..rounds {
        let (t, px) = render_round()?;
        ours.push(t);
        pixels = px;
    }
    let ours_best = *ours.iter().min().expect("at least one round");

    println!(
        "input: {} ({n} of {total} pages, {} dpi, {:.1} MP per round)",
        input.display(),
        args.dpi,
        pixels as f64 / 1e6
    );
    println!("docseek (pdfium worker, RGB in memory): {}", rate(n, ours_best, &ours));
    match time_pdftoppm(&input, n, args.dpi, rounds) {
        Ok(theirs) => {
            let theirs_best = *theirs.iter().min().expect("at least one round");
            println!("pdftoppm -r {} (PPM files):          {}", args.dpi, rate(n, theirs_best, &theirs));
            println!(
                "ratio docseek / pdftoppm (pages/s, best rounds): {:.2}x",
                theirs_best.as_secs_f64() / ours_best.as_secs_f64()
            );
        }
        Err(e) => println!("pdftoppm: not measured ({e}); install poppler-utils (scripts/test-deps.sh)"),
    }
    Ok(ExitCode::SUCCESS)
}

fn rate(pages: usize, best: Duration, all: &[Duration]) -> String {
    let rounds: Vec<String> = all.iter().map(|d| format!("{:.3}", d.as_secs_f64())).collect();
    format!(
        "{:.2} pages/s (best {:.3} s; rounds {} s)",
        pages as f64 / best.as_secs_f64(),
        best.as_secs_f64(),
        rounds.join(", ")
    )
}

fn time_pdftoppm(input: &Path, pages: usize, dpi: f32, rounds: usize) -> anyhow::Result<Vec<Duration>> {
    let tmp = ScratchDir::new()?;
    let run = || -> anyhow::Result<Duration> {
        let start = Instant::now();
        let status = Command::new("pdftoppm")
            .args(["-r", &dpi.to_string(), "-f", "1", "-l", &pages.to_string()])
            .arg(input)
            .arg(tmp.path().join("p"))
            .status()
            .map_err(|e| anyhow::anyhow!("cannot run pdftoppm: {e}"))?;
        anyhow::ensure!(status.success(), "pdftoppm failed: {status}");
        Ok(start.elapsed())
    };
    run()?; // warm-up
    (0..rounds).map(|_| run()).collect()
}

/// A private temporary folder, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<ScratchDir> {
        let dir = std::env::temp_dir().join(format!("docseek-bench-raster-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(ScratchDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
