//! Renderer behaviour across pages and options: KaTeX inlining, figures in HTML and JSON,
//! page separators, math delimiters, header/footer hiding and cross-page tables.

use std::sync::Arc;

use docseek::doc::{render, Document, Format, MathDelimiters, PageInput, PixelSize, PointSize, RenderOptions};
use image::{Rgb, RgbImage};

const PX: PixelSize = PixelSize { width: 600, height: 800 };
const PT: PointSize = PointSize { width: 300.0, height: 400.0 };

fn page(n: u32, raw: &str) -> PageInput {
    PageInput::from_raw(n, PX, PT, raw)
}

fn image() -> Arc<RgbImage> {
    Arc::new(RgbImage::from_pixel(PX.width, PX.height, Rgb([10, 200, 30])))
}

#[test]
fn html_inlines_katex_only_when_there_is_math() {
    let with_math =
        Document::new(None, [page(1, "<|ref|>text<|/ref|><|det|>[[0,0,999,99]]<|/det|>\nLet \\(x^2\\) be.")]);
    let html = render(&with_math, Format::Html, &RenderOptions::default()).unwrap().text();
    assert!(html.contains("katex"), "no KaTeX");
    assert!(html.contains("data:font/woff2;base64,"), "fonts not inlined");
    assert!(!html.contains("url(fonts/"), "a font is fetched from the network or disk");
    assert!(html.contains("data-tex=\"x^2\""));
    let without = Document::new(None, [page(1, "<|ref|>text<|/ref|><|det|>[[0,0,999,99]]<|/det|>\nNo math.")]);
    let html = render(&without, Format::Html, &RenderOptions::default()).unwrap().text();
    assert!(!html.contains("katex.render"));
    assert!(html.len() < 10_000);
}

#[test]
fn figures_go_inline_in_html_and_by_path_in_json() {
    let raw = "<|ref|>image<|/ref|><|det|>[[0,0,499,499]]<|/det|>\n\n<|ref|>image_caption<|/ref|><|det|>[[0,500,499,520]]<|/det|>\nA <b>green</b> field";
    let doc = Document::new(None, [page(1, raw)]);
    let opts = RenderOptions::default().with_page_image(1, image()).with_figures_next_to("out");
    let html = render(&doc, Format::Html, &opts).unwrap();
    assert!(html.files.is_empty());
    assert!(html.text().contains("<img alt=\"A &lt;b&gt;green&lt;/b&gt; field\" src=\"data:image/png;base64,"));
    let json = render(&doc, Format::Json, &opts).unwrap();
    assert_eq!(json.files.len(), 1);
    assert_eq!(json.files[0].path, "out_figures/page-1-fig-1.png");
    let crop = image::load_from_memory(&json.files[0].bytes).unwrap().to_rgb8();
    // [0, 0, 499, 499] on 600 x 800: int(499/999*600) = 299, int(499/999*800) = 399.
    assert_eq!(crop.dimensions(), (299, 399));
    assert_eq!(crop.get_pixel(5, 5), &Rgb([10, 200, 30]));
    let v: serde_json::Value = serde_json::from_slice(&json.content).unwrap();
    assert_eq!(v["pages"][0]["blocks"][0]["figure"], "out_figures/page-1-fig-1.png");
    // Without page images a figure is kept in JSON (boxes) but has no file.
    let bare = render(&doc, Format::Markdown, &RenderOptions::default()).unwrap();
    assert!(bare.files.is_empty() && !bare.text().contains("!["));
}

#[test]
fn pages_separators_and_dollar_math() {
    let doc = Document::new(
        None,
        [
            page(2, "<|ref|>text<|/ref|><|det|>[[0,0,9,9]]<|/det|>\nTwo \\(a\\)"),
            page(1, "<|ref|>equation<|/ref|><|det|>[[0,0,9,9]]<|/det|>\n\\[ b \\]"),
        ],
    );
    let opts = RenderOptions {
        page_separator: "\n\n---\n<!-- page {page} -->\n\n".into(),
        math: MathDelimiters::Dollar,
        ..Default::default()
    };
    let md = render(&doc, Format::Markdown, &opts).unwrap().text();
    assert_eq!(md, "$$b$$\n\n---\n<!-- page 2 -->\n\nTwo $a$\n");
    let txt = render(&doc, Format::Text, &RenderOptions::default()).unwrap().text();
    assert_eq!(txt, "b\n\n<--- Page Split --->\n\nTwo a\n");
}

#[test]
fn headers_footers_and_merged_tables_render_reversibly() {
    let raw = |n: u32, rows: &str| {
        format!(
            "<|ref|>header<|/ref|><|det|>[[0,10,999,40]]<|/det|>\nACME Corp — confidential\n\
             <|ref|>table<|/ref|><|det|>[[0,100,999,950]]<|/det|>\n<table><tr><td>Item</td><td>Qty</td></tr>{rows}</table>\n\
             <|ref|>page_number<|/ref|><|det|>[[480,970,520,990]]<|/det|>\n{n}"
        )
    };
    let mut doc = Document::new(
        None,
        [page(1, &raw(1, "<tr><td>bolts</td><td>4</td></tr>")), page(2, &raw(2, "<tr><td>nuts</td><td>9</td></tr>"))],
    );
    let md = |doc: &Document| render(doc, Format::Markdown, &RenderOptions::default()).unwrap().text();
    assert!(md(&doc).contains("ACME Corp"));
    assert_eq!(doc.hide_headers_footers(), 4);
    assert_eq!(doc.merge_continued_tables(), 1);
    let merged = md(&doc);
    assert!(!merged.contains("ACME Corp"), "{merged}");
    assert!(merged.contains("| Item | Qty |\n| --- | --- |\n| bolts | 4 |\n| nuts | 9 |"), "{merged}");
    assert_eq!(merged.matches("| Item | Qty |").count(), 1, "{merged}");
    // The JSON keeps every block and says what was done.
    let v: serde_json::Value =
        serde_json::from_slice(&render(&doc, Format::Json, &RenderOptions::default()).unwrap().content).unwrap();
    assert_eq!(v["pages"][1]["blocks"][1]["flags"]["continues"]["page"], 1);
    assert_eq!(v["pages"][0]["blocks"][0]["flags"]["running"], "header");
    doc.restore_headers_footers();
    doc.split_merged_tables();
    let back = md(&doc);
    assert!(back.contains("ACME Corp") && back.matches("| Item | Qty |").count() == 2, "{back}");
}

#[test]
fn hocr_has_pages_blocks_lines_and_words_in_pixels() {
    let doc = Document::new(None, [page(1, "<|ref|>title<|/ref|><|det|>[[100,100,899,149]]<|/det|>\n# Hello world")]);
    let hocr = render(&doc, Format::Hocr, &RenderOptions::default()).unwrap().text();
    assert!(hocr.contains("class=\"ocr_page\" id=\"page_1\" title=\"bbox 0 0 600 800; ppageno 0; scan_res 144 144\""));
    // int(100/999*600) = 60, int(100/999*800) = 80, int(899/999*600) = 539, int(149/999*800) = 119.
    assert!(hocr.contains("class=\"ocr_carea\" id=\"block_1_1\" title=\"bbox 60 80 539 119\""), "{hocr}");
    assert!(hocr.contains("class=\"ocr_header\""));
    assert!(hocr.contains(">Hello</span> <span class=\"ocrx_word\""));
}
