//! `docseek render`: structured outputs from saved raw model text, without a model.
//!
//! Each RAW file is one page (in order, numbered from `--first-page`); `--page-image` gives
//! the matching page images (needed for figures and the searchable PDF). The page size in
//! points comes from `--page-size-pt`, or else from the image size at `--dpi`.
//!
//! With `--pdf ORIGINAL --page N`, the RAW files are pages N, N+1, … of ORIGINAL: page sizes
//! in points come from ORIGINAL, and pages without a `--page-image` are rendered from it at
//! `--dpi` (the resolution the model saw), so a saved model output becomes a searchable PDF
//! over the original page, at its size.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use image::RgbImage;

use crate::doc::{render, Document, Format, MathDelimiters, PageInput, PixelSize, PointSize, RenderOptions};
use crate::model::PageOutcome;
use crate::pdf::{DocumentSource, PageSelection, Rasterizer, RasterizerConfig, DEFAULT_DPI};

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
    #[arg(long, default_value_t = 1, conflicts_with = "page")]
    pub first_page: u32,

    /// The original PDF (or image) the RAW pages were recognised from: page sizes come from
    /// it, and page images are rendered from it at --dpi unless --page-image is given.
    #[arg(long, value_name = "ORIGINAL", conflicts_with_all = ["page_size_pt", "page_pixels"])]
    pub pdf: Option<PathBuf>,

    /// With --pdf: the page of ORIGINAL that the first RAW file is (1-based).
    #[arg(long, value_name = "N", requires = "pdf", value_parser = clap::value_parser!(u32).range(1..))]
    pub page: Option<u32>,

    /// Password of an encrypted ORIGINAL.
    #[arg(long, env = "DOCSEEK_PDF_PASSWORD", hide_env_values = true, requires = "pdf")]
    pub password: Option<String>,

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

    /// Expected languages (ISO 639-3 or BCP-47), a hint for language detection.
    #[arg(long = "lang", value_delimiter = ',')]
    pub languages: Vec<String>,
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
    let first = args.page.unwrap_or(args.first_page);
    let original = match &args.pdf {
        Some(pdf) => Some(open_original(pdf, first, &args)?),
        None => None,
    };
    let mut inputs = Vec::new();
    for (i, raw_path) in args.raw.iter().enumerate() {
        let number = first + i as u32;
        let raw = read_raw(raw_path)?;
        let image = match (args.page_images.get(i), &original) {
            (Some(path), _) => {
                let image = image::open(path).with_context(|| format!("cannot read page image {}", path.display()))?;
                Some(Arc::new(image.to_rgb8()))
            }
            (None, Some(original)) => Some(original.images[i].clone()),
            (None, None) => None,
        };
        let pixels = match image {
            Some(image) => {
                let px = PixelSize { width: image.width(), height: image.height() };
                opts.page_images.insert(number, image);
                px
            }
            None => match args.page_pixels {
                Some((w, h)) => PixelSize { width: w as u32, height: h as u32 },
                None => bail!("give --page-image (or --page-pixels WxH, or --pdf ORIGINAL) so boxes can be converted"),
            },
        };
        let points = match (&original, args.page_size_pt) {
            (Some(original), _) => original.sizes[i],
            (None, Some((w, h))) => PointSize { width: w, height: h },
            (None, None) => PointSize::from_pixels(pixels, args.dpi),
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
    crate::doc::annotate_with_hints(&mut doc, &args.languages);
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
        Some(path) => {
            std::fs::write(path, &rendered.content).with_context(|| format!("cannot write {}", path.display()))?
        }
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

/// The pages of the original that the RAW files stand for.
struct Original {
    /// Page sizes in points, one per RAW file.
    sizes: Vec<PointSize>,
    /// Page images rendered at --dpi, one per RAW file (empty when every page has a
    /// --page-image).
    images: Vec<Arc<RgbImage>>,
}

/// Opens ORIGINAL and reads (and, where no --page-image is given, renders) pages
/// `first..first + RAW count`.
fn open_original(path: &Path, first: u32, args: &RenderArgs) -> anyhow::Result<Original> {
    let count = args.raw.len() as u32;
    let last = first + count - 1;
    let pages: PageSelection = format!("{first}-{last}").parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    let raster = Rasterizer::new(RasterizerConfig::default()).context("cannot start the rasterizer")?;
    let opts =
        crate::pdf::RenderOptions { dpi: args.dpi, pages: Some(pages), password: args.password.clone(), text: false };
    let source = DocumentSource::path(path);
    let mut doc = raster.open(&source, &opts).with_context(|| format!("cannot open {}", path.display()))?;
    let info = doc.info().clone();
    if last as usize > info.page_count {
        bail!("{} has {} page(s); RAW files stand for pages {first}-{last}", path.display(), info.page_count);
    }
    let sizes = (first..=last)
        .map(|n| {
            let s = info.page_sizes[n as usize - 1];
            PointSize { width: s.width_pt, height: s.height_pt }
        })
        .collect();
    let mut images = Vec::new();
    if args.page_images.is_empty() {
        for (n, page) in (first..).zip(&mut doc) {
            let page = page.with_context(|| format!("cannot render page {n} of {}", path.display()))?;
            images.push(Arc::new(page.image));
        }
        if images.len() != count as usize {
            bail!("{} ended after {} of {count} page(s)", path.display(), images.len());
        }
    }
    Ok(Original { sizes, images })
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
