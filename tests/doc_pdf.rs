//! The searchable PDF, checked with the tools people use on such files: poppler
//! (`pdftotext`, `pdfinfo`, `pdffonts`, `pdftoppm`; installed by scripts/test-deps.sh) and
//! pdfium (vendor/pdfium, installed by scripts/setup.sh, or `DOCSEEK_PDFIUM_LIB`).
//! A missing tool fails the test: it never passes silently.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use docseek::doc::{render, Document, Format, PageInput, PixelSize, PointSize, RenderOptions};
use image::{Rgb, RgbImage};

const PIXELS: PixelSize = PixelSize { width: 1224, height: 1584 };
const POINTS: PointSize = PointSize { width: 612.0, height: 792.0 };

/// A two-column page with boxes sized as the text would be set (about 12 pt, paragraphs a
/// quarter line apart): title, two paragraphs per column, then a table across the page.
/// (pdftotext's default mode has its own column heuristics: with paragraphs a full line
/// apart it reads this page row by row, and it reads the table below the two columns column
/// by column, as it would in a born-digital PDF; `-raw` and pdfium follow docseek's order.)
const RAW: &str = "<|ref|>title<|/ref|><|det|>[[100, 40, 900, 62]]<|/det|>\n# Quarterly Field Report\n\n\
<|ref|>text<|/ref|><|det|>[[80, 80, 480, 126]]<|/det|>\nThe left column opens the report with a summary of the season and of the sites we visited.\n\n\
<|ref|>text<|/ref|><|det|>[[80, 130, 480, 161]]<|/det|>\nA second paragraph ends the left column after two lines.\n\n\
<|ref|>text<|/ref|><|det|>[[520, 80, 920, 126]]<|/det|>\nThe right column continues the story with the weather, which was dry and warm all month.\n\n\
<|ref|>text<|/ref|><|det|>[[520, 130, 920, 161]]<|/det|>\nCafé déjà vu: naïve façade, Œuvre ß, and a last remark.\n\n\
<|ref|>table<|/ref|><|det|>[[80, 200, 920, 240]]<|/det|>\n<table><tr><td>Site</td><td>Samples</td></tr><tr><td>North</td><td>42</td></tr></table>\n";

/// Whitespace runs as one space (line breaks depend on the estimated wrapping).
fn squash(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn page_image() -> Arc<RgbImage> {
    Arc::new(RgbImage::from_fn(PIXELS.width, PIXELS.height, |x, y| {
        if (x / 40 + y / 40) % 7 == 0 {
            Rgb([200, 200, 200])
        } else {
            Rgb([255, 255, 255])
        }
    }))
}

fn searchable_pdf(raw: &str) -> Vec<u8> {
    let doc = Document::new(Some("report.pdf".into()), [PageInput::from_raw(1, PIXELS, POINTS, raw)]);
    let opts = RenderOptions::default().with_page_image(1, page_image());
    render(&doc, Format::Pdf, &opts).expect("searchable pdf").content
}

fn write_temp(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pdf");
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

/// Runs a poppler tool; panics with a clear message if it is not installed.
fn poppler(tool: &str, args: &[&str], pdf: &Path) -> (String, String) {
    let out = Command::new(tool)
        .args(args)
        .arg(pdf)
        .args(if tool == "pdftotext" { &["-"][..] } else { &[][..] })
        .output()
        .unwrap_or_else(|e| panic!("`{tool}` is missing ({e}): run scripts/test-deps.sh (poppler-utils)"));
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts that the `needles` occur in `hay` in this order (whitespace runs count as one space).
fn assert_in_order(hay: &str, needles: &[&str]) {
    let hay = squash(hay);
    let mut from = 0;
    for n in needles {
        let at = hay[from..].find(n).unwrap_or_else(|| panic!("`{n}` missing (or out of order) in:\n{hay}"));
        from += at + n.len();
    }
}

#[test]
fn pdftotext_gives_the_text_in_reading_order() {
    let (_dir, path) = write_temp(&searchable_pdf(RAW));
    let (text, _) = poppler("pdftotext", &[], &path);
    assert_in_order(
        &text,
        &[
            "Quarterly Field Report",
            "The left column opens the report with a summary of the season and of the sites we visited.",
            "A second paragraph ends the left column after two lines.",
            "The right column continues the story with the weather, which was dry and warm all month.",
            "Café déjà vu: naïve façade, Œuvre ß, and a last remark.",
        ],
    );
}

#[test]
fn pdftotext_raw_follows_the_content_stream_order() {
    // Rows interleave on purpose: the right column starts above the end of the left one.
    let raw = RAW.replace("[[80, 130, 480, 161]]", "[[80, 150, 480, 181]]");
    let (_dir, path) = write_temp(&searchable_pdf(&raw));
    let (text, _) = poppler("pdftotext", &["-raw"], &path);
    assert_in_order(
        &text,
        &[
            "Quarterly Field Report",
            "The left column opens",
            "A second paragraph",
            "The right column",
            "Café déjà vu",
            "Site",
            "Samples",
            "North",
            "42",
        ],
    );
}

#[test]
fn poppler_reads_the_structure_cleanly() {
    let (_dir, path) = write_temp(&searchable_pdf(RAW));
    let (info, _) = poppler("pdfinfo", &[], &path);
    assert!(info.contains("612 x 792 pts"), "{info}");
    assert!(info.lines().any(|l| squash(l) == "Pages: 1"), "{info}");
    let (fonts, _) = poppler("pdffonts", &[], &path);
    let line = fonts.lines().find(|l| l.contains("DocseekGlyphless")).unwrap_or_else(|| panic!("{fonts}"));
    // name, type (2 words), encoding, emb, sub, uni, object id
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&cols[1..5], &["CID", "TrueType", "Identity-H", "yes"], "{line}");
    assert_eq!(cols[6], "yes", "no ToUnicode: {line}");
    let (images, _) = poppler("pdfimages", &["-list"], &path);
    assert!(images.lines().any(|l| l.contains("1224  1584  rgb")), "{images}");
    // Rendering parses the embedded font: any complaint shows on stderr.
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("p");
    let out = Command::new("pdftoppm").args(["-r", "18", "-png"]).arg(&path).arg(&prefix).output().expect("pdftoppm");
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "pdftoppm: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn scripts_beyond_latin_extract() {
    let lines = [
        "Ελληνικά: καλημέρα κόσμε",
        "Русский: съешь же ещё этих булок",
        "中文：人人生而自由，在尊严和权利上一律平等。",
        "日本語：すべての人間は生まれながらにして自由",
        "한국어: 모든 인간은 태어날 때부터 자유롭다",
        "हिन्दी: सभी मनुष्य जन्म से स्वतंत्र हैं",
        "ไทย: มนุษย์ทั้งหลายเกิดมามีอิสระ",
        "Math 𝑥 + 𝑦 = 𝑧 and 😀",
    ];
    let mut raw = String::new();
    for (i, line) in lines.iter().enumerate() {
        let y = 50 + 60 * i;
        raw.push_str(&format!("<|ref|>text<|/ref|><|det|>[[80, {y}, 920, {}]]<|/det|>\n{line}\n\n", y + 40));
    }
    let (_dir, path) = write_temp(&searchable_pdf(&raw));
    let (text, _) = poppler("pdftotext", &[], &path);
    for line in lines {
        // Word spacing may differ for scripts without spaces; compare without whitespace.
        let tight = |s: &str| s.split_whitespace().collect::<String>();
        assert!(tight(&text).contains(&tight(line)), "`{line}` missing in:\n{text}");
    }
}

#[test]
fn right_to_left_text_extracts_in_logical_order() {
    let raw = "<|ref|>text<|/ref|><|det|>[[80, 100, 920, 140]]<|/det|>\nمرحبا بالعالم\n\n\
               <|ref|>text<|/ref|><|det|>[[80, 200, 920, 240]]<|/det|>\nשלום עולם\n";
    let (_dir, path) = write_temp(&searchable_pdf(raw));
    let (text, _) = poppler("pdftotext", &[], &path);
    assert!(text.contains("مرحبا بالعالم"), "{text}");
    assert!(text.contains("שלום עולם"), "{text}");
}

fn pdfium() -> pdfium_render::prelude::Pdfium {
    use pdfium_render::prelude::Pdfium;
    let path = std::env::var_os("DOCSEEK_PDFIUM_LIB").map(PathBuf::from).unwrap_or_else(|| {
        Pdfium::pdfium_platform_library_name_at_path(&Path::new(env!("CARGO_MANIFEST_DIR")).join("vendor/pdfium"))
    });
    let bindings = Pdfium::bind_to_library(&path)
        .unwrap_or_else(|e| panic!("cannot load pdfium from {} ({e:?}): run scripts/setup.sh", path.display()));
    Pdfium::new(bindings)
}

#[test]
fn pdfium_opens_it_and_extracts_the_text() {
    let bytes = searchable_pdf(RAW);
    let pdfium = pdfium();
    let doc = pdfium.load_pdf_from_byte_slice(&bytes, None).expect("pdfium opens the searchable PDF");
    assert_eq!(doc.pages().len(), 1);
    let page = doc.pages().get(0).unwrap();
    assert!((page.width().value - 612.0).abs() < 0.01 && (page.height().value - 792.0).abs() < 0.01);
    let text = page.text().unwrap().all();
    assert_in_order(
        &text,
        &["Quarterly Field Report", "The left column opens the report with", "Café déjà vu", "North 42"],
    );
}
