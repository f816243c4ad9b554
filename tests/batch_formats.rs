//! `docseek ocr --format md,json,html,hocr,txt,pdf,raw` end to end with a scripted fake
//! engine: every format holds the recognised content, figure crops sit next to the outputs,
//! the searchable PDF gives its text back to `pdftotext` at the original page size, and the
//! manifest records each document's languages.

use std::path::Path;

use serde_json::Value;

mod batch_support;
use batch_support::{files_under, manifest, poppler, run_scripted, sample, squash, write_png};

/// What the fake engine answers for every page: a heading, English prose, a table, a figure
/// with its caption, a French paragraph.
const SCRIPT: &str = "<|ref|>title<|/ref|><|det|>[[100, 40, 900, 90]]<|/det|>\n# Annual Report of the Village Library\n\n\
<|ref|>text<|/ref|><|det|>[[100, 120, 900, 300]]<|/det|>\nThe library lent more books this year than ever before. Children and their \
parents came every Saturday to read together, and the reading room stayed open late during the long winter months.\n\n\
<|ref|>table<|/ref|><|det|>[[100, 320, 900, 500]]<|/det|>\n<table><tr><td>Month</td><td>Loans</td></tr><tr><td>January</td><td>120</td></tr>\
<tr><td>February</td><td>135</td></tr></table>\n\n\
<|ref|>image<|/ref|><|det|>[[100, 520, 500, 800]]<|/det|>\n\n\
<|ref|>image_caption<|/ref|><|det|>[[100, 810, 500, 840]]<|/det|>\nFigure 1: The reading room in winter.\n\n\
<|ref|>text<|/ref|><|det|>[[100, 860, 900, 960]]<|/det|>\nLes enfants et leurs parents viennent chaque samedi pour lire ensemble \
à la bibliothèque du village, et la salle de lecture reste ouverte tard pendant les longs mois d'hiver.\n";

/// Runs every format over a scanned image (400 x 500 px) in a sub-folder and a one-page PDF.
fn run_all_formats(tmp: &Path) -> std::path::PathBuf {
    let input = tmp.join("in");
    write_png(&input.join("scans/page.png"), 400, 500);
    std::fs::copy(sample("en_tracemonkey_p1.pdf"), input.join("paper.pdf")).unwrap();
    let script = tmp.join("script.txt");
    std::fs::write(&script, SCRIPT).unwrap();
    let out = tmp.join("out");
    let args = [
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--format",
        "md,json,html,hocr,txt,pdf,raw",
        "--dpi",
        "36",
        "-q",
    ];
    run_scripted(&args, &script);
    out
}

#[test]
fn every_format_holds_the_recognised_content() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_all_formats(tmp.path());
    let mut expected: Vec<String> = Vec::new();
    for stem in ["paper", "scans/page"] {
        for suffix in [".md", ".json", ".html", ".hocr", ".txt", ".ocr.pdf", ".raw.txt", "_figures/page-1-fig-1.png"] {
            expected.push(format!("{stem}{suffix}"));
        }
    }
    expected.push("manifest.jsonl".into());
    expected.sort();
    assert_eq!(files_under(&out), expected, "one file per format, figure crops next to them");

    let read = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    let md = read("scans/page.md");
    assert!(md.starts_with("# Annual Report of the Village Library\n"), "{md}");
    assert!(
        md.contains("| Month | Loans |") && md.contains("| February | 135 |"),
        "a simple table is GitHub Markdown: {md}"
    );
    assert!(md.contains("](page_figures/page-1-fig-1.png)"), "the figure is linked next to the Markdown: {md}");
    assert!(md.contains("during the long winter months."), "{md}");

    // [100, 520, 500, 800] on the 400 x 500 image: x 40..200, y 260..400 (boxes are 0..999).
    let fig = image::open(out.join("scans/page_figures/page-1-fig-1.png")).unwrap();
    let (w, h) = (fig.width() as i64, fig.height() as i64);
    assert!((w - 160).abs() <= 1 && (h - 140).abs() <= 1, "crop {w}x{h}");

    let json: Value = serde_json::from_str(&read("scans/page.json")).unwrap();
    assert_eq!(json["schema"], "docseek.document/1");
    assert_eq!(json["source"], "scans/page.png");
    let page = &json["pages"][0];
    assert_eq!(page["pixel_size"]["width"], 400);
    let blocks = page["blocks"].as_array().unwrap();
    let kinds: Vec<&str> = blocks.iter().map(|b| b["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["title", "text", "table", "image", "image_caption", "text"]);
    let table = &blocks[2];
    assert_eq!((table["table"]["rows"].as_u64(), table["table"]["columns"].as_u64()), (Some(3), Some(2)));
    assert_eq!(blocks[3]["figure"], "page_figures/page-1-fig-1.png");
    for b in blocks {
        assert_eq!(b["boxes"].as_array().unwrap().len(), 1, "every block has its box: {b}");
    }
    let lang = |i: usize| blocks[i]["language"]["tag"].as_str().unwrap_or("none").to_string();
    assert_eq!([lang(0), lang(1), lang(2), lang(3), lang(5)], ["eng", "eng", "eng", "none", "fra"]);
    assert_eq!(blocks[5]["language"]["script"], "Latn");
    assert_eq!(blocks[5]["language"]["rtl"], false);
    assert_eq!(page["language"]["tag"], "eng");
    let doc_langs: Vec<&str> =
        json["languages"].as_array().unwrap().iter().map(|l| l["tag"].as_str().unwrap()).collect();
    assert_eq!(doc_langs, ["eng", "fra"]);

    let html = read("scans/page.html");
    assert!(html.contains("<table") && html.contains("<td>January</td>"), "{html}");
    assert!(html.contains("Annual Report of the Village Library"));
    let hocr = read("scans/page.hocr");
    assert!(hocr.contains("class=\"ocr_page\"") && hocr.contains("bbox 0 0 400 500"), "{hocr}");
    let txt = read("scans/page.txt");
    assert!(
        txt.contains("Annual Report of the Village Library") && txt.contains("Figure 1: The reading room in winter."),
        "{txt}"
    );
    assert!(!txt.contains("<|ref|>"));
    assert_eq!(read("scans/page.raw.txt"), SCRIPT, "raw is the model text verbatim");

    // The searchable PDF of the PDF input: its text comes back, at the original page size.
    let pdf = out.join("paper.ocr.pdf");
    let text = squash(&poppler("pdftotext", &pdf));
    for needle in [
        "Annual Report of the Village Library",
        "The library lent more books",
        "February",
        "135",
        "reading room in winter",
        "bibliothèque du village",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from pdftotext: {text}");
    }
    let info = poppler("pdfinfo", &pdf);
    assert!(squash(&info).contains("Page size: 612 x 792 pts"), "{info}");
    let paper: Value = serde_json::from_str(&read("paper.json")).unwrap();
    assert_eq!(paper["pages"][0]["point_size"]["width"], 612.0);
    assert_eq!(paper["pages"][0]["pixel_size"]["width"], 306, "36 dpi render of a 612 pt page");

    for r in manifest(&out) {
        let langs: Vec<(&str, &str)> = r["languages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["tag"].as_str().unwrap(), l["script"].as_str().unwrap()))
            .collect();
        assert_eq!(langs, [("eng", "Latn"), ("fra", "Latn")], "{r}");
        let outputs = r["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), 8, "seven formats and a figure: {r}");
    }
}

/// `docseek ocr scan.png --format json EXTRA` (a 300 x 200 scan in `tmp`) with the fake engine
/// answering one text block `text`; output in `tmp/<out_name>`. Returns the JSON document,
/// the output folder and stderr.
fn ocr_one_block(tmp: &Path, text: &str, out_name: &str, extra: &[&str]) -> (Value, std::path::PathBuf, String) {
    let input = tmp.join("scan.png");
    write_png(&input, 300, 200);
    let script = tmp.join("script.txt");
    std::fs::write(&script, format!("<|ref|>text<|/ref|><|det|>[[100, 100, 900, 500]]<|/det|>\n{text}\n")).unwrap();
    let out = tmp.join(out_name);
    let mut args = vec![input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--format", "json"];
    args.extend_from_slice(extra);
    let stderr = run_scripted(&args, &script);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(out.join("scan.json")).unwrap()).unwrap();
    (json, out, stderr)
}

#[test]
fn a_right_to_left_page_is_marked_in_every_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let text = "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً وضميرًا وعليهم أن يعامل بعضهم بعضًا بروح الإخاء.";
    let (json, out, stderr) = ocr_one_block(tmp.path(), text, "out", &[]);
    assert!(
        stderr.contains("ok scan.png: 1 page,") && stderr.contains(", languages arb 100%"),
        "progress lines name the languages: {stderr}"
    );
    let block = &json["pages"][0]["blocks"][0]["language"];
    assert_eq!(
        (block["tag"].as_str(), block["script"].as_str(), block["rtl"].as_bool()),
        (Some("arb"), Some("Arab"), Some(true))
    );
    assert_eq!(json["pages"][0]["language"]["rtl"], true);
    let record = &manifest(&out)[0];
    assert_eq!(record["languages"][0]["tag"], "arb");
    assert_eq!(record["languages"][0]["rtl"], true);
}

#[test]
fn language_hints_reach_the_language_stage() {
    let tmp = tempfile::tempdir().unwrap();
    // UDHR article 1 reads the same in Croatian and Bosnian: the hint decides.
    let text = "Sva ljudska bića rađaju se slobodna i jednaka u dostojanstvu i pravima. \
                Ona su obdarena razumom i sviješću i treba da jedno prema drugome postupaju u duhu bratstva.";
    for hint in ["hrv", "bos"] {
        let (json, out, _) = ocr_one_block(tmp.path(), text, hint, &["--lang", hint, "-q"]);
        assert_eq!(json["pages"][0]["blocks"][0]["language"]["tag"], hint);
        assert_eq!(manifest(&out)[0]["languages"][0]["tag"], hint);
    }
}
