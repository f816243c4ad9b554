//! Golden tests of the structuring stage: realistic raw DeepSeek-OCR outputs in
//! `tests/golden/doc/*.raw.txt` rendered to Markdown, JSON, HTML and hOCR and compared with
//! the `*.expected.*` files. `DOCSEEK_UPDATE_GOLDEN=1 cargo test --test doc_golden` rewrites
//! them (review the diff before committing).

use std::path::PathBuf;
use std::sync::Arc;

use docseek::doc::{render, Document, Format, PageInput, PixelSize, PointSize, RenderOptions};
use docseek::model::PageOutcome;
use image::{Rgb, RgbImage};

/// A US-letter page rendered at 144 dpi: non-square on purpose.
const PIXELS: PixelSize = PixelSize { width: 1224, height: 1584 };
const POINTS: PointSize = PointSize { width: 612.0, height: 792.0 };

/// (case, how its generation ended, whether a page image is given)
const CASES: &[(&str, PageOutcome, bool)] = &[
    ("multicolumn", PageOutcome::Finished, false),
    ("table_spans", PageOutcome::Finished, false),
    ("formulas", PageOutcome::Finished, false),
    ("figure", PageOutcome::Finished, true),
    ("truncated", PageOutcome::Length, false),
    ("repetition", PageOutcome::Length, false),
    ("garbage", PageOutcome::Finished, false),
];

const FORMATS: &[(Format, &str)] =
    &[(Format::Markdown, "md"), (Format::Json, "json"), (Format::Html, "html"), (Format::Hocr, "hocr")];

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/doc")
}

/// A deterministic page image: a gradient, so crops differ by position.
fn page_image() -> Arc<RgbImage> {
    Arc::new(RgbImage::from_fn(PIXELS.width, PIXELS.height, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 128])))
}

fn build(case: &str, outcome: PageOutcome) -> Document {
    let raw = std::fs::read_to_string(golden_dir().join(format!("{case}.raw.txt"))).expect("raw input");
    Document::new(Some(format!("{case}.pdf")), [PageInput::from_raw_with_outcome(1, PIXELS, POINTS, raw, outcome)])
}

fn options(with_image: bool, case: &str) -> RenderOptions {
    // KaTeX is left out of the golden HTML (it is ~700 KB); doc_render tests that it is inlined.
    let mut opts = RenderOptions { html_katex: false, ..Default::default() }.with_figures_next_to(case);
    if with_image {
        opts = opts.with_page_image(1, page_image());
    }
    opts
}

#[test]
fn golden_outputs() {
    let update = std::env::var_os("DOCSEEK_UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failures = Vec::new();
    for &(case, outcome, with_image) in CASES {
        let doc = build(case, outcome);
        for &(format, ext) in FORMATS {
            let out = render(&doc, format, &options(with_image, case)).expect("render").text();
            let path = golden_dir().join(format!("{case}.expected.{ext}"));
            if update {
                std::fs::write(&path, &out).expect("write golden");
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(expected) if expected == out => {}
                Ok(_) => failures.push(format!("{} differs (DOCSEEK_UPDATE_GOLDEN=1 to regenerate)", path.display())),
                Err(_) => failures.push(format!("{} is missing (DOCSEEK_UPDATE_GOLDEN=1 to create)", path.display())),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The behaviours the golden files are meant to pin, asserted directly so a careless
/// regeneration cannot hide a regression.
#[test]
fn golden_cases_behave() {
    let md = |case: &str, outcome| {
        let with_image = CASES.iter().any(|c| c.0 == case && c.2);
        render(&build(case, outcome), Format::Markdown, &options(with_image, case)).unwrap().text()
    };

    let m = md("multicolumn", PageOutcome::Finished);
    assert!(m.starts_with("# Sparse Attention for Long Documents\n\nAda Lovelace"));
    let (intro, method) = (m.find("## 1 Introduction").unwrap(), m.find("## 2 Method").unwrap());
    assert!(intro < m.find("In the second column").unwrap() && m.find("In the second column").unwrap() < method);

    let t = md("table_spans", PageOutcome::Finished);
    assert!(t.contains("<td rowspan=\"2\">Region</td><td colspan=\"2\">2023</td>"), "{t}");
    assert!(t.contains("| Product | Units |\n| --- | --- |\n| Widget | 1,200 |"), "{t}");

    let f = md("formulas", PageOutcome::Finished);
    assert!(f.contains(r"\(p := m v\)") && f.contains(r"\(n =: N\)"), "{f}");
    assert!(f.contains("\\[E^2 = (p c)^2 + \\left(m c^2\\right)^2 \\quad (1)\\]"), "{f}");

    let g = md("figure", PageOutcome::Finished);
    assert!(g.contains("![Figure 2: Aerial view of the test site, 2024.](figure_figures/page-1-fig-1.png)"), "{g}");
    assert!(g.contains("](figure_figures/page-1-fig-2.png)"), "{g}");

    let doc = build("truncated", PageOutcome::Length);
    let last = doc.pages[0].blocks.last().unwrap();
    assert!(last.flags.truncated);
    assert_eq!(last.table.as_ref().unwrap().rows, 4);

    let doc = build("repetition", PageOutcome::Length);
    let texts: Vec<&str> = doc.pages[0].blocks.iter().map(|b| b.text.as_str()).collect();
    assert_eq!(texts.iter().filter(|t| **t == "City Council, 3 March").count(), 1);
    assert_eq!(
        *texts.last().unwrap(),
        "After a short debate, The committee approved the budget for the next fiscal year."
    );

    let doc = build("garbage", PageOutcome::Finished);
    let all_warnings: Vec<String> =
        doc.blocks().flat_map(|b| b.warnings.iter().map(|w| format!("{:?}", w.code))).collect();
    for code in ["StrayTag", "UnknownLabel", "BadBox", "MissingBoxes", "UnclosedRef", "MalformedFormula"] {
        assert!(all_warnings.iter().any(|w| w == code), "no {code} warning in {all_warnings:?}");
    }
    let html = render(&doc, Format::Html, &RenderOptions::default()).unwrap().text();
    assert!(!html.contains("<script>alert") && !html.contains("onerror"), "{html}");
}
