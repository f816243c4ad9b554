//! The parser, the language stage and every renderer survive arbitrary input: random strings, and random mixes of
//! the fragments real model output is made of (tags, box lists, HTML, LaTeX, Markdown).
//!
//! proptest is built without its `std` feature on purpose: that feature turns on `getrandom`
//! features shared with candle's dependency tree, which would make every test build recompile
//! candle. Without it the runner uses a fixed seed (deterministic runs) and keeps no
//! regression file.

use std::sync::Arc;

use docseek::doc::{annotate, render, Document, Format, PageInput, PixelSize, PointSize, RenderOptions};
use docseek::model::PageOutcome;
use image::RgbImage;
use proptest::prelude::*;

const FORMATS: [Format; 6] = [Format::Markdown, Format::Json, Format::Html, Format::Hocr, Format::Text, Format::Pdf];

const FRAGMENTS: &[&str] = &[
    "<|ref|>",
    "<|/ref|>",
    "<|det|>",
    "<|/det|>",
    "text",
    "title",
    "image",
    "table",
    "equation",
    "image_caption",
    "[[",
    "]]",
    "[",
    "]",
    ", ",
    "0",
    "999",
    "1200",
    "-5",
    "12.5",
    "\n",
    "\n\n",
    "# ",
    "## ",
    "<table>",
    "</table>",
    "<tr>",
    "</tr>",
    "<td>",
    "</td>",
    "<td rowspan=\"3\">",
    "<td colspan=\"99999\">",
    "<th>",
    "<script>",
    "</script>",
    "\\(",
    "\\)",
    "\\[",
    "\\]",
    "$$",
    "\\\\",
    "\\coloneqq",
    "<center>",
    "</center>",
    "<｜end▁of▁sentence｜>",
    "<｜",
    "｜>",
    "é",
    "中文",
    "مرحبا",
    "😀",
    "𝑥",
    " ",
    "word",
    "|",
    "&",
    "<",
    ">",
    "\"",
    "\t",
    "\u{0}",
    "\u{202e}",
];

fn fragment_soup() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..80).prop_map(|v| v.concat())
}

fn outcome() -> impl Strategy<Value = PageOutcome> {
    prop::sample::select(vec![PageOutcome::Finished, PageOutcome::Length, PageOutcome::Repetition])
}

fn check(raws: Vec<String>, outcome: PageOutcome) {
    let px = PixelSize { width: 37, height: 53 };
    let pt = PointSize { width: 20.5, height: 30.25 };
    let image = Arc::new(RgbImage::new(px.width, px.height));
    let pages: Vec<PageInput> = raws
        .iter()
        .enumerate()
        .map(|(i, r)| PageInput::from_raw_with_outcome(i as u32 + 1, px, pt, r.clone(), outcome))
        .collect();
    let mut doc = Document::new(None, pages);
    doc.hide_headers_footers();
    doc.merge_continued_tables();
    let languages = annotate(&mut doc);
    assert!(languages.iter().all(|l| (0.0..=1.0001).contains(&l.share)), "{languages:?}");
    let mut opts = RenderOptions::default();
    for p in &doc.pages {
        opts.page_images.insert(p.number, image.clone());
    }
    for format in FORMATS {
        let out = render(&doc, format, &opts).expect("rendering never fails when images are given");
        if format != Format::Pdf {
            assert!(std::str::from_utf8(&out.content).is_ok());
        }
    }
    // JSON round-trips into the document model.
    let json = render(&doc, Format::Json, &opts).unwrap().content;
    let back: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(back["schema"], "docseek.document/1");
    // Language runs are byte ranges of the (processed) block text.
    for b in doc.blocks() {
        for run in b.language.iter().flat_map(|l| &l.runs) {
            assert!(b.text.get(run.start..run.end).is_some(), "{run:?} in {:?}", b.text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings(chars in prop::collection::vec(any::<char>(), 0..300), outcome in outcome()) {
        check(vec![chars.into_iter().collect()], outcome);
    }

    #[test]
    fn fragment_mixes(pages in prop::collection::vec(fragment_soup(), 1..3), outcome in outcome()) {
        check(pages, outcome);
    }
}
