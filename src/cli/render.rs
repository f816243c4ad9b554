//! `docseek render`: structured outputs from saved raw model text, without a model.
//!
//! Each RAW file is one page (in order, numbered from `--first-page`); `--page-image` gives
//! the matching page images (needed for figures and the searchable PDF). The page size in
//! points comes from `--page-size-pt`, or else from the image size at `--dpi`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};

use crate::doc::{render, Document, Format, MathDelimiters, PageInput, PixelSize, PointSize, RenderOptions};
use crate::model::PageOutcome;
use crate::pdf::DEFAULT_DPI;

/// Arguments of `docseek render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Raw model output files, one per page, in page order (`-` reads one page from stdin).
    #[arg(required = true, value_name = "RAW")]
    pub raw: Vec<PathBuf>,

    /// Page images (PNG/JPEG/...), one per RAW file, in the same order.
    #[arg(long = "page-image", value_name = "IMAGE")]
    pub page_images: Vec<PathBuf>,

    /// Pixel size `WxH` of the page images the model saw, when no --page-image is given.
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub page_pixels: Option<(f32, f32)>,

    /// Size `WxH` of the original pages in PDF points (default: image size at --dpi).
    #[arg(long, value_name = "WxH", value_parser = parse_size)]
    pub page_size_pt: Option<(f32, f32)>,

    /// Resolution the page images were rendered at (for the page size in points).
    #[arg(long, default_value_t = DEFAULT_DPI)]
    pub dpi: f32,

    /// Number of the first page.
    #[arg(long, default_value_t = 1)]
    pub first_page: u32,

    /// How generation of the pages ended (`length` or `repetition` marks the last block as
    /// possibly cut and enables the stronger loop trimming).
    #[arg(long, value_enum, default_value = "finished")]
    pub outcome: OutcomeArg,

    /// Output format.
    #[arg(long, short, value_enum, default_value = "markdown")]
    pub format: Format,

    /// Output file (default: stdout); figures go to `<stem>_figures/` next to it.
    #[arg(long, short)]
    pub out: Option<PathBuf>,

    /// Formula delimiters in Markdown and text.
    #[arg(long, value_enum, default_value = "latex")]
    pub math: MathDelimiters,

    /// Text between pages in Markdown and text (`{page}` = next page number).
    #[arg(long)]
    pub page_separator: Option<String>,

    /// Hide running headers and footers.
    #[arg(long)]
    pub hide_headers_footers: bool,

    /// Merge a table continued on the next page into one.
    #[arg(long)]
    pub merge_tables: bool,
}

/// `--outcome` values.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum OutcomeArg {
    /// The model emitted EOS.
    Finished,
    /// The token budget ran out.
    Length,
    /// Stopped as a repetition loop.
    Repetition,
}

impl From<OutcomeArg> for PageOutcome {
    fn from(o: OutcomeArg) -> Self {
        match o {
            OutcomeArg::Finished => PageOutcome::Finished,
            OutcomeArg::Length => PageOutcome::Length,
            OutcomeArg::Repetition => PageOutcome::Repetition,
        }
    }
}

/// Runs `docseek render`.
pub fn run(args: RenderArgs) -> anyhow::Result<ExitCode> {
    if !args.page_images.is_empty() && args.page_images.len() != args.raw.len() {
        bail!("{} RAW files but {} --page-image: give one image per page", args.raw.len(), args.page_images.len());
    }
    let mut opts = RenderOptions { math: args.math, ..Default::default() };
    if let Some(sep) = &args.page_separator {
        opts.page_separator = sep.replace("\\n", "\n");
    }
    let mut inputs = Vec::new();
    for (i, raw_path) in args.raw.iter().enumerate() {
        let number = args.first_page + i as u32;
        let raw = read_raw(raw_path)?;
        let pixels = match args.page_images.get(i) {
            Some(path) => {
                let image = image::open(path).with_context(|| format!("cannot read page image {}", path.display()))?;
                let image = Arc::new(image.to_rgb8());
                let px = PixelSize { width: image.width(), height: image.height() };
                opts.page_images.insert(number, image);
                px
            }
            None => match args.page_pixels {
                Some((w, h)) => PixelSize { width: w as u32, height: h as u32 },
                None => bail!("give --page-image (or --page-pixels WxH) so boxes can be converted"),
            },
        };
        let points = match args.page_size_pt {
            Some((w, h)) => PointSize { width: w, height: h },
            None => PointSize::from_pixels(pixels, args.dpi),
        };
        inputs.push(PageInput::from_raw_with_outcome(number, pixels, points, raw, args.outcome.into()));
    }
    let source = args.raw.first().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let mut doc = Document::new(source, inputs);
    if args.hide_headers_footers {
        doc.hide_headers_footers();
    }
    if args.merge_tables {
        doc.merge_continued_tables();
    }
    let out_dir = args.out.as_deref().and_then(Path::parent).map(Path::to_path_buf).unwrap_or_default();
    if let Some(stem) = args.out.as_deref().and_then(Path::file_stem) {
        opts = opts.with_figures_next_to(&stem.to_string_lossy());
    }
    let rendered = render(&doc, args.format, &opts)?;
    for file in &rendered.files {
        let path = out_dir.join(&file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&path, &file.bytes).with_context(|| format!("cannot write {}", path.display()))?;
    }
    match &args.out {
        Some(path) => std::fs::write(path, &rendered.content).with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(&rendered.content).context("cannot write to stdout")?;
        }
    }
    for page in &doc.pages {
        for w in page.warnings.iter().chain(page.blocks.iter().flat_map(|b| b.warnings.iter())) {
            tracing::info!(page = page.number, "{:?}: {}", w.code, w.message);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn read_raw(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("cannot read stdin")?;
        return Ok(s);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Parses `WxH` (e.g. `612x792`).
fn parse_size(s: &str) -> Result<(f32, f32), String> {
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(|| format!("expected WxH, got `{s}`"))?;
    let w: f32 = w.trim().parse().map_err(|_| format!("bad width in `{s}`"))?;
    let h: f32 = h.trim().parse().map_err(|_| format!("bad height in `{s}`"))?;
    if !(w > 0.0 && h > 0.0 && w.is_finite() && h.is_finite()) {
        return Err(format!("sizes must be positive, got `{s}`"));
    }
    Ok((w, h))
}
