//! The language stage over a [`Document`]: each block's language, script, direction and
//! runs of other languages inside it, each page's main language, the document's languages
//! with their shares, and the language-specific post-processing of prose blocks (line
//! joining, de-hyphenation, Unicode folding) — all from `docseek_langs`.
//!
//! One entry, [`annotate`], used by the batch pipeline and the server alike.

use docseek_langs::detection::UNDETERMINED;
use docseek_langs::router::Dir;
use docseek_langs::script::ScriptCounts;
use docseek_langs::{Detection, DocumentLanguages, LanguageDetector, ProfileDetector, Router};

use super::block::{Block, BlockKind, Language, LanguageRun};
use super::document::Document;

// The document-level summary type lives with the document it describes (no import cycle).
pub use super::document::DocumentLanguage;

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
    matches!(
        kind,
        BlockKind::Image | BlockKind::Equation | BlockKind::Code | BlockKind::PageNumber
    )
}

/// Kinds whose runs of other languages are worth reporting.
fn wants_runs(kind: BlockKind) -> bool {
    is_prose(kind)
        || matches!(
            kind,
            BlockKind::Title | BlockKind::SubTitle | BlockKind::List
        )
}

/// A hinted language wins over the detected one when the model gives it at least this
/// probability for the text: hints decide between close candidates (Croatian / Bosnian /
/// Serbian, Malay / Indonesian) but never overrule clear evidence of another language.
pub const HINT_MIN_PROBABILITY: f32 = 0.05;

/// Fills the language of every block and page, post-processes prose blocks (unless their
/// text carries Markdown structure such as lists, quotes or pipe tables, whose line breaks
/// mean something), sets the document's languages ([`Document::languages`], `und` left out,
/// largest share first) and returns them.
///
/// Running it twice gives the same languages (shares may move slightly: the second pass
/// detects the processed text, e.g. without the removed hyphens).
pub fn annotate(doc: &mut Document) -> Vec<DocumentLanguage> {
    annotate_with_hints(doc, &[])
}

/// [`annotate`] with expected languages (ISO 639-3 codes or BCP-47 tags, as `--lang` takes
/// them): a block whose text is plausibly in a hinted language (see
/// [`HINT_MIN_PROBABILITY`]) gets that language rather than a close neighbour.
pub fn annotate_with_hints(doc: &mut Document, hints: &[String]) -> Vec<DocumentLanguage> {
    let detector = ProfileDetector::global();
    let router = Router::global();
    let mut whole = DocumentLanguages::new();
    for page in &mut doc.pages {
        let mut on_page = DocumentLanguages::new();
        for block in &mut page.blocks {
            block.language = None;
            if has_no_language(block.kind) {
                continue;
            }
            let text = detectable_text(block);
            let chars = text.chars().filter(|c| !c.is_whitespace()).count();
            if chars == 0 {
                continue;
            }
            let detection = detect(detector, &text, hints);
            on_page.add(&detection, chars);
            whole.add(&detection, chars);
            if is_prose(block.kind) && !has_markdown_structure(&block.text) {
                block.text = router.process(&block.text, &detection).text;
            }
            let runs = if wants_runs(block.kind) {
                foreign_runs(detector, &block.text, &detection)
            } else {
                Vec::new()
            };
            block.language = Some(language_of(router, &detection, runs));
        }
        let primary = on_page.primary();
        page.language = primary
            .is_determined()
            .then(|| language_of(router, &primary, Vec::new()));
    }
    let languages: Vec<DocumentLanguage> = whole
        .languages()
        .into_iter()
        .filter(|l| l.code != UNDETERMINED)
        .map(|l| DocumentLanguage {
            rtl: router.profile(&l.code, &l.script).dir == Dir::Rtl,
            tag: l.code,
            script: l.script,
            name: l.name,
            share: l.share,
            confidence: l.confidence,
        })
        .collect();
    doc.languages = languages.clone();
    languages
}

/// Detects the language of `text`, preferring a hinted language the text may well be in.
fn detect(detector: &ProfileDetector, text: &str, hints: &[String]) -> Detection {
    let detection = detector.detect(text);
    // `hr`, `hr-HR` and `hrv` all name Croatian; `sr` names Serbian in either script.
    let primary = |tag: &str| {
        tag.split(['-', '_'])
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let hinted = |code: &str, bcp47: &str| {
        hints
            .iter()
            .any(|h| h.eq_ignore_ascii_case(code) || primary(h) == primary(bcp47))
    };
    if hints.is_empty() || hinted(&detection.code, &detection.bcp47) {
        return detection;
    }
    let Some(&(class, _)) = ScriptCounts::of(text).resolved().first() else {
        return detection;
    };
    let (ranked, _) = detector.rank(text, class);
    match ranked.iter().find(|(row, _)| hinted(row.code, row.bcp47)) {
        Some(&(row, p)) if p >= HINT_MIN_PROBABILITY => Detection {
            code: row.code.into(),
            bcp47: row.bcp47.into(),
            name: row.name.into(),
            script: row.script.into(),
            confidence: p,
        },
        _ => detection,
    }
}

/// The text to detect: table cells rather than their HTML.
fn detectable_text(block: &Block) -> String {
    match &block.table {
        Some(table) => table
            .cells
            .iter()
            .map(|c| c.text.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        None if block.kind == BlockKind::Table => strip_tags(&block.text),
        None => block.text.clone(),
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

/// Whether some line starts a Markdown list item, quote, pipe-table row, heading or fence
/// (joining the lines of such text would break it).
fn has_markdown_structure(text: &str) -> bool {
    text.lines().map(str::trim_start).any(|line| {
        let ordered = {
            let digits = line.chars().take_while(char::is_ascii_digit).count();
            digits > 0
                && matches!(line[digits..].chars().next(), Some('.' | ')'))
                && line[digits + 1..].starts_with(' ')
        };
        ordered
            || ["- ", "* ", "+ ", "> ", "|", "#", "```", "\\["]
                .iter()
                .any(|m| line.starts_with(m))
    })
}

/// Runs of the text in decided languages other than the block's.
fn foreign_runs(detector: &ProfileDetector, text: &str, main: &Detection) -> Vec<LanguageRun> {
    detector
        .spans(text)
        .into_iter()
        .filter(|s| s.code != UNDETERMINED && s.code != main.code)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{PageInput, PixelSize, PointSize};

    fn doc_of(pages: &[&str]) -> Document {
        let px = PixelSize {
            width: 1000,
            height: 1400,
        };
        let inputs = pages.iter().enumerate().map(|(i, raw)| {
            PageInput::from_raw(i as u32 + 1, px, PointSize::from_pixels(px, 144.0), *raw)
        });
        Document::new(Some("t.pdf".into()), inputs)
    }

    const ENGLISH: &str = "<|ref|>title<|/ref|><|det|>[[100, 40, 900, 80]]<|/det|>\n# The Universal Declaration\n\n\
        <|ref|>text<|/ref|><|det|>[[100, 120, 900, 300]]<|/det|>\nAll human beings are born free and equal in dignity and rights. They are \
        endowed with reason and conscience and should act towards one another in a spirit of broth-\nerhood.\n\n\
        <|ref|>equation<|/ref|><|det|>[[100, 320, 900, 360]]<|/det|>\n\\[x^2 + y^2 = z^2\\]\n\n\
        <|ref|>table<|/ref|><|det|>[[100, 400, 900, 600]]<|/det|>\n<table><tr><td>Everyone has the right to life, liberty and security of person.</td></tr></table>\n";

    const ARABIC: &str = "<|ref|>text<|/ref|><|det|>[[100, 120, 900, 300]]<|/det|>\n\
        يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً وضميرًا وعليهم أن يعامل بعضهم بعضًا بروح الإخاء.\n";

    #[test]
    fn blocks_pages_and_document_get_languages() {
        let mut doc = doc_of(&[ENGLISH, ARABIC]);
        let langs = annotate(&mut doc);
        let p1 = &doc.pages[0];
        let lang = |i: usize| p1.blocks[i].language.as_ref();
        assert_eq!(
            lang(0).map(|l| l.tag.as_str()),
            Some("eng"),
            "{:?}",
            p1.blocks[0]
        );
        assert_eq!(
            lang(1).map(|l| (l.tag.as_str(), l.script.as_str(), l.rtl)),
            Some(("eng", "Latn", false))
        );
        assert!(lang(2).is_none(), "formulas have no language");
        assert_eq!(
            lang(3).map(|l| l.tag.as_str()),
            Some("eng"),
            "tables are detected from their cells"
        );
        assert!(
            p1.blocks[1].text.ends_with("spirit of brotherhood."),
            "line joined, hyphen removed: {}",
            p1.blocks[1].text
        );
        assert_eq!(p1.language.as_ref().map(|l| l.tag.as_str()), Some("eng"));
        let p2 = doc.pages[1].language.as_ref().unwrap();
        assert_eq!(
            (p2.tag.as_str(), p2.script.as_str(), p2.rtl),
            ("arb", "Arab", true)
        );
        let tags: Vec<&str> = langs.iter().map(|l| l.tag.as_str()).collect();
        assert_eq!(tags, ["eng", "arb"], "largest share first: {langs:?}");
        assert!(langs[1].rtl && !langs[0].rtl);
        assert!((langs.iter().map(|l| l.share).sum::<f32>() - 1.0).abs() < 1e-3);
        assert_eq!(doc.languages, langs);

        let text = doc.pages[0].blocks[1].text.clone();
        let again = annotate(&mut doc);
        let tags_again: Vec<&str> = again.iter().map(|l| l.tag.as_str()).collect();
        assert_eq!(
            tags_again, tags,
            "annotating twice finds the same languages"
        );
        assert_eq!(
            doc.pages[0].blocks[1].text, text,
            "processed text is left as it is"
        );
    }

    #[test]
    fn hints_decide_between_close_languages_only() {
        // UDHR article 1 reads the same in Croatian and Bosnian.
        let raw = "<|ref|>text<|/ref|><|det|>[[1, 1, 900, 300]]<|/det|>\nSva ljudska bića rađaju se slobodna i jednaka \
            u dostojanstvu i pravima. Ona su obdarena razumom i sviješću i treba da jedno prema drugome postupaju u duhu bratstva.\n";
        let tag = |hints: &[&str]| {
            let mut doc = doc_of(&[raw]);
            let hints: Vec<String> = hints.iter().map(|h| h.to_string()).collect();
            annotate_with_hints(&mut doc, &hints);
            doc.pages[0].blocks[0]
                .language
                .as_ref()
                .map(|l| l.tag.clone())
                .unwrap_or_default()
        };
        let plain = tag(&[]);
        assert!(["hrv", "bos", "srp"].contains(&plain.as_str()), "{plain}");
        let other = if plain == "hrv" { "bos" } else { "hrv" };
        assert_eq!(tag(&[other]), other, "a hint picks the close neighbour");
        assert_eq!(tag(&["hr-HR", "hr"]), "hrv", "BCP-47 tags work as hints");
        assert_eq!(
            tag(&["fin"]),
            plain,
            "a hint never overrules clear evidence"
        );
        assert_eq!(tag(&["xyz"]), plain, "unknown hints are ignored");
    }

    #[test]
    fn markdown_lists_keep_their_lines() {
        let raw = "<|ref|>text<|/ref|><|det|>[[1, 1, 900, 300]]<|/det|>\n- first item of the list here\n- second item of the list here\n";
        let mut doc = doc_of(&[raw]);
        annotate(&mut doc);
        assert_eq!(
            doc.pages[0].blocks[0].text.lines().count(),
            2,
            "{:?}",
            doc.pages[0].blocks[0].text
        );
        assert!(
            has_markdown_structure("1. one\n2. two") && !has_markdown_structure("In 1990. the end")
        );
    }

    #[test]
    fn empty_and_textless_documents() {
        let mut doc = doc_of(&[
            "",
            "<|ref|>image<|/ref|><|det|>[[1, 1, 500, 500]]<|/det|>\n",
        ]);
        assert!(annotate(&mut doc).is_empty());
        assert!(doc.pages.iter().all(|p| p.language.is_none()));
    }
}
