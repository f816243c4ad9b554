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
    let o = docseek(&["render", &golden("figure.raw.txt"), "--page-image", img.to_str().unwrap(), "--out", out.to_str().unwrap()]);
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
    let o = docseek(&["render", &golden("multicolumn.raw.txt"), "--page-image", img.to_str().unwrap(), "-f", "pdf", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::read(&out).unwrap().starts_with(b"%PDF-"));

    let o = docseek(&["render", &golden("multicolumn.raw.txt"), "--page-pixels", "300x400", "-f", "pdf"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs the page image of page 1"));
    let o = docseek(&["render", &golden("multicolumn.raw.txt")]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--page-image"));
}
