//! `docseek pages`: render documents to PNG pages (and optionally dump the PDF text layer), one
//! folder per input. Each rendered input gets an `ok` line on stdout; a bad input gets one
//! `error` line on stderr, and the others go on.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::pdf::{
    DocumentSource, Limits, PageSelection, PdfError, Rasterizer, RasterizerConfig, RenderOptions, RenderedPage,
    DEFAULT_DPI,
};

/// Arguments of `docseek pages`.
#[derive(Debug, clap::Args)]
pub struct PagesArgs {
    /// PDFs or images (PNG, JPEG, TIFF, WebP, BMP, GIF); the type is sniffed from the content.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,

    /// Output folder: pages go to OUT/<input stem>/page-0001.png.
    #[arg(long)]
    pub out: PathBuf,

    /// PDF render resolution in dots per inch.
    #[arg(long, default_value_t = DEFAULT_DPI, value_parser = parse_dpi)]
    pub dpi: f32,

    /// Pages to render, e.g. `1-3,7,10-` (default: all).
    #[arg(long)]
    pub pages: Option<PageSelection>,

    /// Password of encrypted PDFs.
    #[arg(long, env = "DOCSEEK_PDF_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// Also write each page's native text layer: page-0001.txt and page-0001.json (characters
    /// with boxes in PDF points).
    #[arg(long)]
    pub text: bool,

    /// libpdfium to use (file or folder); see the README for the search order.
    #[arg(long, env = "DOCSEEK_PDFIUM_LIB")]
    pub pdfium_lib: Option<PathBuf>,

    /// Most bytes one compressed PDF stream may inflate to, in MB (decompression bombs; 0 = no check).
    #[arg(long, env = "DOCSEEK_MAX_STREAM_MB", default_value_t = crate::pdf::limits::DEFAULT_MAX_STREAM_BYTES >> 20)]
    pub max_stream_mb: u64,

    /// Address-space limit of the PDF renderer worker process, in MB (0 = no limit).
    #[arg(long, env = "DOCSEEK_MAX_WORKER_MEMORY_MB", default_value_t = crate::pdf::limits::DEFAULT_MAX_WORKER_MEMORY_MB)]
    pub max_worker_memory_mb: u64,
}

fn parse_dpi(s: &str) -> Result<f32, String> {
    let dpi: f32 = s.parse().map_err(|_| format!("not a number: {s}"))?;
    crate::pdf::check_dpi(dpi)
}

/// Runs `docseek pages`; exit status 1 when any input failed.
pub fn run(args: PagesArgs) -> anyhow::Result<ExitCode> {
    let limits = Limits {
        max_stream_bytes: args.max_stream_mb.saturating_mul(1 << 20),
        max_worker_memory_mb: args.max_worker_memory_mb,
        ..Limits::default()
    };
    let raster =
        Rasterizer::new(RasterizerConfig { pdfium_lib: args.pdfium_lib.clone(), limits, ..Default::default() })?;
    let opts =
        RenderOptions { dpi: args.dpi, pages: args.pages.clone(), password: args.password.clone(), text: args.text };
    let mut used = std::collections::HashSet::new();
    let mut failed = 0usize;
    for input in &args.inputs {
        let dir = args.out.join(unique_stem(input, &mut used));
        match render_one(&raster, input, &dir, &opts) {
            Ok(n) => {
                let plural = if n == 1 { "" } else { "s" };
                println!("ok    {}: {n} page{plural} -> {}", input.display(), dir.display());
            }
            Err(e) => {
                failed += 1;
                eprintln!("error {}: {e}", input.display());
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} inputs failed", args.inputs.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The folder name for an input: its file stem, with `-2`, `-3`... when two inputs share one.
///
/// The name is always one plain path component, so the folder stays inside `--out`: a stem
/// that is empty, `.` or `..` (inputs named `.pdf`, `..pdf`, `...pdf`) falls back to the whole
/// file name, and a name that is not UTF-8 is written with replacement characters.
fn unique_stem(input: &Path, used: &mut std::collections::HashSet<String>) -> String {
    let stem = output_folder_name(input);
    let mut name = stem.clone();
    let mut n = 1;
    while !used.insert(name.clone()) {
        n += 1;
        name = format!("{stem}-{n}");
    }
    name
}

/// An input's folder name before de-duplication: one plain path component (see [`unique_stem`]).
fn output_folder_name(input: &Path) -> String {
    let plain = |s: &std::ffi::OsStr| {
        let s = s.to_string_lossy().into_owned();
        let one_normal_component =
            matches!(Path::new(&s).components().collect::<Vec<_>>()[..], [std::path::Component::Normal(_)]);
        // `components` drops a trailing `.`, so "x/." also reads as one component: refuse it.
        (one_normal_component && !s.contains(['/', '\\']) && !s.chars().all(|c| c == '.')).then_some(s)
    };
    input.file_stem().and_then(plain).or_else(|| input.file_name().and_then(plain)).unwrap_or_else(|| "input".into())
}

fn render_one(raster: &Rasterizer, input: &Path, dir: &Path, opts: &RenderOptions) -> Result<usize, PdfError> {
    let mut doc = raster.open(&DocumentSource::path(input), opts)?;
    std::fs::create_dir_all(dir).map_err(|e| unwritable(dir, &e))?;
    let mut written = 0;
    for page in &mut doc {
        write_page(&page?, dir)?;
        written += 1;
    }
    Ok(written)
}

fn unwritable(path: &Path, e: &std::io::Error) -> PdfError {
    PdfError::Unwritable { path: path.to_path_buf(), reason: e.to_string() }
}

fn write_page(page: &RenderedPage, dir: &Path) -> Result<(), PdfError> {
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    use image::ImageEncoder;
    let stem = format!("page-{:04}", page.index + 1);
    let png = dir.join(format!("{stem}.png"));
    let file = std::fs::File::create(&png).map_err(|e| unwritable(&png, &e))?;
    let enc = PngEncoder::new_with_quality(BufWriter::new(file), CompressionType::Fast, FilterType::Adaptive);
    enc.write_image(page.image.as_raw(), page.image.width(), page.image.height(), image::ExtendedColorType::Rgb8)
        .map_err(|e| PdfError::Unwritable { path: png.clone(), reason: e.to_string() })?;
    if let Some(text) = &page.text {
        let txt = dir.join(format!("{stem}.txt"));
        std::fs::write(&txt, &text.text).map_err(|e| unwritable(&txt, &e))?;
        let json = dir.join(format!("{stem}.json"));
        let body = serde_json::json!({
            "page": page.index + 1,
            "width_pt": page.width_pt,
            "height_pt": page.height_pt,
            "width_px": page.image.width(),
            "height_px": page.image.height(),
            "dpi": page.dpi,
            "coordinates": "PDF points, origin bottom-left",
            "text": text.text,
            "chars": text.chars,
        });
        let bytes = serde_json::to_vec_pretty(&body)
            .map_err(|e| PdfError::Unwritable { path: json.clone(), reason: e.to_string() })?;
        std::fs::write(&json, bytes).map_err(|e| unwritable(&json, &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_names_are_one_plain_component() {
        let name = |p: &str| output_folder_name(Path::new(p));
        assert_eq!(name("a/report.pdf"), "report");
        assert_eq!(name("a/...pdf"), "...pdf", "stem '..' falls back to the file name");
        assert_eq!(name("a/..pdf"), "..pdf", "stem '.' falls back to the file name");
        assert_eq!(name("a/.pdf"), ".pdf");
        assert_eq!(name("a/..."), "input");
        assert_eq!(name(".."), "input");
        assert_eq!(name("/"), "input");
        let mut used = std::collections::HashSet::new();
        assert_eq!(unique_stem(Path::new("x/a.pdf"), &mut used), "a");
        assert_eq!(unique_stem(Path::new("y/a.png"), &mut used), "a-2");
    }
}
