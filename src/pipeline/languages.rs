//! The language stage: each block's language, script, direction and mixed-language runs, each
//! page's main language, and the language-specific post-processing of prose blocks (line
//! joining, de-hyphenation, Unicode folding), all from `docseek_langs`.

use docseek_langs::router::Dir;
use docseek_langs::{Detection, DocumentLanguages, LanguageDetector, ProfileDetector, Router};

use crate::doc::{Block, BlockKind, Document, Language, LanguageRun};

/// Kinds whose text is running prose: its lines are joined and normalised by the language's
/// routing profile.
fn is_prose(kind: BlockKind) -> bool {
    matches!(
        kind,
        BlockKind::Text
            | BlockKind::ImageCaption
            | BlockKind::TableCaption
            | BlockKind::TableFootnote
            | BlockKind::Footnote
    )
}

/// Kinds without natural-language text.
fn has_no_language(kind: BlockKind) -> bool {
    matches!(kind, BlockKind::Image | BlockKind::Equation | BlockKind::Code | BlockKind::PageNumber)
}

/// Fills the language of every block and page, post-processes prose blocks, and returns the
/// document's languages (ISO 639-3, largest share first, `und` left out).
pub fn annotate(doc: &mut Document) -> Vec<String> {
    let detector = ProfileDetector::global();
    let router = Router::global();
    let mut whole = DocumentLanguages::new();
    for page in &mut doc.pages {
        let mut on_page = DocumentLanguages::new();
        for block in &mut page.blocks {
            if has_no_language(block.kind) {
                continue;
            }
            let text = detectable_text(block);
            if text.trim().is_empty() {
                continue;
            }
            let detection = detector.detect(&text);
            let chars = text.chars().filter(|c| !c.is_whitespace()).count();
            on_page.add(&detection, chars);
            whole.add(&detection, chars);
            if is_prose(block.kind) {
                block.text = router.process(&block.text, &detection).text;
            }
            let runs = if is_prose(block.kind) || block.kind == BlockKind::Title || block.kind == BlockKind::SubTitle {
                foreign_runs(detector, &block.text, &detection)
            } else {
                Vec::new()
            };
            block.language = Some(language_of(router, &detection, runs));
        }
        let primary = on_page.primary();
        if primary.is_determined() {
            page.language = Some(language_of(router, &primary, Vec::new()));
        }
    }
    whole.languages().into_iter().filter(|l| l.code != docseek_langs::detection::UNDETERMINED).map(|l| l.code).collect()
}

/// The text to detect: table cells rather than their HTML.
fn detectable_text(block: &Block) -> String {
    match block.kind {
        BlockKind::Table => strip_tags(block.html.as_deref().unwrap_or(&block.text)),
        _ => block.text.clone(),
    }
}

/// Text content of HTML, tags replaced by spaces.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Runs of the text in other decided languages than the block's.
fn foreign_runs(detector: &ProfileDetector, text: &str, main: &Detection) -> Vec<LanguageRun> {
    detector
        .spans(text)
        .into_iter()
        .filter(|s| s.code != docseek_langs::detection::UNDETERMINED && s.code != main.code)
        .map(|s| LanguageRun {
            start: s.start,
            end: s.end,
            tag: s.code.to_string(),
            script: s.script.to_string(),
            confidence: s.confidence,
        })
        .collect()
}

fn language_of(router: &Router, d: &Detection, runs: Vec<LanguageRun>) -> Language {
    Language {
        tag: d.code.to_string(),
        script: d.script.to_string(),
        confidence: d.confidence,
        rtl: router.profile(&d.code, &d.script).dir == Dir::Rtl,
        runs,
    }
}
