//! `docseek render`: outputs and figure files from saved raw text, without a model.

use std::path::Path;
use std::process::Command;

use image::{Rgb, RgbImage};

fn golden(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/doc").join(name).to_string_lossy().into_owned()
}

fn docseek(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_docseek")).args(args).output().expect("run docseek")
}

#[test]
fn renders_markdown_with_figures_next_to_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("page.png");
    RgbImage::from_pixel(612, 792, Rgb([250, 250, 250])).save(&img).unwrap();
    let out = dir.path().join("site.md");
    let o = docseek(&[
        "render",
        &golden("figure.raw.txt"),
        "--page-image",
        img.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(md.contains("](site_figures/page-1-fig-1.png)"), "{md}");
    let fig = image::open(dir.path().join("site_figures/page-1-fig-1.png")).unwrap();
    // [200, 140, 800, 560] on 612 x 792: x 122..490, y 110..443.
    assert_eq!((fig.width(), fig.height()), (490 - 122, 443 - 110));
    assert!(dir.path().join("site_figures/page-1-fig-2.png").exists());
}

#[test]
fn renders_json_to_stdout_with_the_given_page_size() {
    let o = docseek(&[
        "render",
        &golden("table_spans.raw.txt"),
        "--page-pixels",
        "1224x1584",
        "--page-size-pt",
        "612x792",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["schema"], "docseek.document/1");
    assert_eq!(v["pages"][0]["point_size"]["width"], 612.0);
    assert_eq!(v["pages"][0]["blocks"][1]["table"]["columns"], 5);
}

#[test]
fn writes_a_searchable_pdf_and_explains_missing_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("page.png");
    RgbImage::from_pixel(300, 400, Rgb([255, 255, 255])).save(&img).unwrap();
    let out = dir.path().join("out.pdf");
    let o = docseek(&[
        "render",
        &golden("multicolumn.raw.txt"),
        "--page-image",
        img.to_str().unwrap(),
        "-f",
        "pdf",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&out).unwrap().starts_with(b"%PDF-"));

    let o = docseek(&["render", &golden("multicolumn.raw.txt"), "--page-pixels", "300x400", "-f", "pdf"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs the page image of page 1"));
    let o = docseek(&["render", &golden("multicolumn.raw.txt")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--page-image"));
}

/// Runs a poppler tool on a file; a missing tool fails the test.
fn poppler(tool: &str, path: &Path) -> String {
    let mut cmd = Command::new(tool);
    cmd.arg(path);
    if tool == "pdftotext" {
        cmd.arg("-");
    }
    let out =
        cmd.output().unwrap_or_else(|e| panic!("`{tool}` is missing ({e}): run scripts/test-deps.sh (poppler-utils)"));
    assert!(out.status.success(), "{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).split_whitespace().collect::<Vec<_>>().join(" ")
}

fn sample(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(name).to_string_lossy().into_owned()
}

#[test]
fn renders_a_searchable_pdf_over_a_page_of_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p2.pdf");
    // Page 2 of a 3-page US-letter PDF, rendered from the original at 36 dpi (306 x 396 px).
    let args = [
        "render",
        &golden("multicolumn.raw.txt"),
        "--pdf",
        &sample("en_tracemonkey_p1-3.pdf"),
        "--page",
        "2",
        "--dpi",
        "36",
    ];
    let o = docseek(&[&args[..], &["-f", "pdf", "-o", out.to_str().unwrap()]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let info = poppler("pdfinfo", &out);
    assert!(info.contains("Pages: 1") && info.contains("Page size: 612 x 792 pts"), "{info}");
    let text = poppler("pdftotext", &out);
    assert!(text.contains("Sparse Attention for Long Documents") && text.contains("Ada Lovelace"), "{text}");

    // The same page as JSON: page 2, sizes from the original and its render, languages filled.
    let o = docseek(&[&args[..], &["-f", "json"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let page = &v["pages"][0];
    assert_eq!(page["number"], 2);
    assert_eq!(
        (page["point_size"]["width"].as_f64(), page["point_size"]["height"].as_f64()),
        (Some(612.0), Some(792.0))
    );
    assert_eq!((page["pixel_size"]["width"].as_u64(), page["pixel_size"]["height"].as_u64()), (Some(306), Some(396)));
    // [118, 62, 880, 104] on 612 x 792 pt: x 72.3..539.1 (118 / 999 * 612 ...).
    let pt = &page["blocks"][0]["boxes"][0]["points"];
    assert!((pt[0].as_f64().unwrap() - 118.0 / 999.0 * 612.0).abs() < 0.1, "{pt}");
    assert_eq!(page["language"]["tag"], "eng");
    assert_eq!(page["blocks"][0]["language"]["tag"], "eng");

    // A page the original does not have, and a bad original, are clear errors.
    let o =
        docseek(&["render", &golden("multicolumn.raw.txt"), "--pdf", &sample("en_tracemonkey_p1.pdf"), "--page", "2"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("picks no page of this 1-page document"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let bad = dir.path().join("bad.pdf");
    std::fs::write(&bad, b"%PDF-1.7\nnot really").unwrap();
    let o = docseek(&["render", &golden("multicolumn.raw.txt"), "--pdf", bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot open"), "{}", String::from_utf8_lossy(&o.stderr));
}
