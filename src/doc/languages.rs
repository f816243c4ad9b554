//! The language stage over a [`Document`]: each block's language, script, direction and
//! runs of other languages inside it, each page's main language, the document's languages
//! with their shares, and the language-specific post-processing of prose blocks (line
//! joining, de-hyphenation, Unicode folding) — all from `docseek_langs`.
//!
//! Blocks are decided with their page and document as a prior (a one-word table cell or
//! heading takes the language around it unless its own text says otherwise); `--lang` hints
//! then pick between close candidates. One entry, [`annotate`], used by the batch pipeline and
//! the server alike.

use docseek_langs::detection::UNDETERMINED;
use docseek_langs::router::Dir;
use docseek_langs::{ContextPrior, Detection, DocumentLanguages, LanguageDetector, Posterior, ProfileDetector, Router};

use super::block::{Block, BlockKind, Language, LanguageAlternative, LanguageRun};
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
    matches!(kind, BlockKind::Image | BlockKind::Equation | BlockKind::Code | BlockKind::PageNumber)
}

/// Kinds whose runs of other languages are worth reporting.
fn wants_runs(kind: BlockKind) -> bool {
    is_prose(kind) || matches!(kind, BlockKind::Title | BlockKind::SubTitle | BlockKind::List)
}

/// A hinted language wins over the detected one when the model gives it at least this
/// probability for the text: hints decide between close candidates (Croatian / Bosnian /
/// Serbian, Malay / Indonesian) but never overrule clear evidence of another language.
pub const HINT_MIN_PROBABILITY: f32 = 0.05;

/// Weight of the block's page in its context prior; the rest is the whole document.
pub const PAGE_CONTEXT_WEIGHT: f32 = 0.7;

/// Fills the language of every block and page, post-processes prose blocks (unless their
/// text carries Markdown structure such as lists, quotes or pipe tables, whose line breaks
/// mean something), sets the document's languages ([`Document::languages`], `und` left out,
/// largest share first) and returns them.
///
/// Each block is decided with its context as a prior (see [`docseek_langs::context`]): the
/// other blocks of its page and, less, of the whole document, so a one-word cell or heading
/// takes the language around it unless its own text says otherwise; the page's language then
/// follows from its blocks. Running it twice gives the same languages (shares may move
/// slightly: the second pass detects the processed text, e.g. without the removed hyphens).
pub fn annotate(doc: &mut Document) -> Vec<DocumentLanguage> {
    annotate_with_hints(doc, &[])
}

/// [`annotate`] with expected languages (ISO 639-3 codes or BCP-47 tags, as `--lang` takes
/// them): a block whose text is plausibly in a hinted language (see
/// [`HINT_MIN_PROBABILITY`]) gets that language rather than a close neighbour.
pub fn annotate_with_hints(doc: &mut Document, hints: &[String]) -> Vec<DocumentLanguage> {
    let detector = ProfileDetector::global();
    let router = Router::global();
    // First pass: every block's candidates from its own text.
    let mut own: Vec<Vec<Option<(Posterior, usize)>>> = Vec::with_capacity(doc.pages.len());
    let mut document = ContextPrior::new();
    for page in &mut doc.pages {
        let mut blocks = Vec::with_capacity(page.blocks.len());
        for block in &mut page.blocks {
            block.language = None;
            let text = if has_no_language(block.kind) { String::new() } else { detectable_text(block) };
            let chars = text.chars().filter(|c| !c.is_whitespace()).count();
            if chars == 0 {
                blocks.push(None);
                continue;
            }
            let posterior = detector.posterior(&text);
            document.add(&posterior, 1.0);
            blocks.push(Some((posterior, chars)));
        }
        own.push(blocks);
    }
    // Second pass: each block with the rest of its page and document as the prior.
    let mut whole = DocumentLanguages::new();
    for (page, blocks) in doc.pages.iter_mut().zip(&own) {
        let mut page_prior = ContextPrior::new();
        for (posterior, _) in blocks.iter().flatten() {
            page_prior.add(posterior, 1.0);
        }
        let mut on_page = DocumentLanguages::new();
        for (block, entry) in page.blocks.iter_mut().zip(blocks) {
            let Some((posterior, chars)) = entry else {
                continue;
            };
            let mut rest_of_page = page_prior.clone();
            rest_of_page.add(posterior, -1.0);
            let mut rest_of_document = document.clone();
            rest_of_document.add(posterior, -1.0);
            let mut prior = ContextPrior::new();
            prior.add_prior(&rest_of_page, PAGE_CONTEXT_WEIGHT);
            prior.add_prior(&rest_of_document, 1.0 - PAGE_CONTEXT_WEIGHT);
            let detection = decide(&posterior.with_prior(&prior), hints);
            on_page.add(&detection, *chars);
            whole.add(&detection, *chars);
            if is_prose(block.kind) && !has_markdown_structure(&block.text) {
                block.text = router.process(&block.text, &detection).text;
            }
            let runs =
                if wants_runs(block.kind) { foreign_runs(detector, &block.text, &detection) } else { Vec::new() };
            block.language = Some(language_of(router, &detection, runs));
        }
        let primary = on_page.primary();
        page.language = primary.is_determined().then(|| language_of(router, &primary, Vec::new()));
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

/// Decides a block from its (context-weighted) candidates, preferring a hinted language the
/// text may well be in.
fn decide(posterior: &Posterior, hints: &[String]) -> Detection {
    let detection = posterior.detection();
    // `hr`, `hr-HR` and `hrv` all name Croatian; `sr` names Serbian in either script.
    let primary = |tag: &str| tag.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
    let hinted =
        |code: &str, bcp47: &str| hints.iter().any(|h| h.eq_ignore_ascii_case(code) || primary(h) == primary(bcp47));
    if hints.is_empty() || hinted(&detection.code, &detection.bcp47) {
        return detection;
    }
    match posterior.ranked.iter().find(|(row, _)| hinted(row.code, row.bcp47)) {
        Some(&(row, p)) if p >= HINT_MIN_PROBABILITY => Detection {
            code: row.code.into(),
            bcp47: row.bcp47.into(),
            name: row.name.into(),
            script: row.script.into(),
            confidence: p * posterior.share,
            alternatives: Vec::new(),
        },
        _ => detection,
    }
}

/// The text to detect: table cells rather than their HTML.
fn detectable_text(block: &Block) -> String {
    match &block.table {
        Some(table) => table.cells.iter().map(|c| c.text.as_str()).collect::<Vec<_>>().join("\n"),
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
        ordered || ["- ", "* ", "+ ", "> ", "|", "#", "```", "\\["].iter().any(|m| line.starts_with(m))
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
        alternatives: d
            .alternatives
            .iter()
            .map(|a| LanguageAlternative {
                tag: a.code.to_string(),
                script: a.script.to_string(),
                confidence: a.confidence,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{PageInput, PixelSize, PointSize};

    fn doc_of(pages: &[&str]) -> Document {
        let px = PixelSize { width: 1000, height: 1400 };
        let inputs = pages
            .iter()
            .enumerate()
            .map(|(i, raw)| PageInput::from_raw(i as u32 + 1, px, PointSize::from_pixels(px, 144.0), *raw));
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
        assert_eq!(lang(0).map(|l| l.tag.as_str()), Some("eng"), "{:?}", p1.blocks[0]);
        assert_eq!(lang(1).map(|l| (l.tag.as_str(), l.script.as_str(), l.rtl)), Some(("eng", "Latn", false)));
        assert!(lang(2).is_none(), "formulas have no language");
        assert_eq!(lang(3).map(|l| l.tag.as_str()), Some("eng"), "tables are detected from their cells");
        assert!(
            p1.blocks[1].text.ends_with("spirit of brotherhood."),
            "line joined, hyphen removed: {}",
            p1.blocks[1].text
        );
        assert_eq!(p1.language.as_ref().map(|l| l.tag.as_str()), Some("eng"));
        let p2 = doc.pages[1].language.as_ref().unwrap();
        assert_eq!((p2.tag.as_str(), p2.script.as_str(), p2.rtl), ("arb", "Arab", true));
        let tags: Vec<&str> = langs.iter().map(|l| l.tag.as_str()).collect();
        assert_eq!(tags, ["eng", "arb"], "largest share first: {langs:?}");
        assert!(langs[1].rtl && !langs[0].rtl);
        assert!((langs.iter().map(|l| l.share).sum::<f32>() - 1.0).abs() < 1e-3);
        assert_eq!(doc.languages, langs);

        let text = doc.pages[0].blocks[1].text.clone();
        let again = annotate(&mut doc);
        let tags_again: Vec<&str> = again.iter().map(|l| l.tag.as_str()).collect();
        assert_eq!(tags_again, tags, "annotating twice finds the same languages");
        assert_eq!(doc.pages[0].blocks[1].text, text, "processed text is left as it is");
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
            doc.pages[0].blocks[0].language.as_ref().map(|l| l.tag.clone()).unwrap_or_default()
        };
        let plain = tag(&[]);
        assert!(["hrv", "bos", "srp"].contains(&plain.as_str()), "{plain}");
        let other = if plain == "hrv" { "bos" } else { "hrv" };
        assert_eq!(tag(&[other]), other, "a hint picks the close neighbour");
        assert_eq!(tag(&["hr-HR", "hr"]), "hrv", "BCP-47 tags work as hints");
        assert_eq!(tag(&["fin"]), plain, "a hint never overrules clear evidence");
        assert_eq!(tag(&["xyz"]), plain, "unknown hints are ignored");
    }

    /// A report page: a Chinese title, a German table of one-word cells, an English caption
    /// and a one-word German note; a page of German text; a page with only a one-word heading.
    const REPORT: &str = "<|ref|>title<|/ref|><|det|>[[100, 40, 900, 80]]<|/det|>\n# 年度销售报告\n\n\
        <|ref|>table<|/ref|><|det|>[[100, 100, 900, 400]]<|/det|>\n<table><tr><td>Jahr</td><td>Standort</td>\
        <td>Umsatz</td><td>Gewinn</td></tr><tr><td>2023</td><td>Berlin</td><td>120</td><td>15</td></tr>\
        <tr><td>Gesamt</td><td>Mitarbeiter</td><td>Filialen</td><td>Anteil</td></tr></table>\n\n\
        <|ref|>table_caption<|/ref|><|det|>[[100, 420, 900, 460]]<|/det|>\nTable 2: Revenue and profit by location over the last year.\n\n\
        <|ref|>table_footnote<|/ref|><|det|>[[100, 470, 900, 490]]<|/det|>\nAnhang\n";
    const GERMAN_TEXT: &str = "<|ref|>text<|/ref|><|det|>[[100, 40, 900, 300]]<|/det|>\nDie Tabelle zeigt den Umsatz \
        und den Gewinn aller Standorte im vergangenen Jahr. Die Zahlen wurden von der Buchhaltung geprüft.\n";
    const HEADING_ONLY: &str = "<|ref|>sub_title<|/ref|><|det|>[[100, 40, 900, 80]]<|/det|>\n## Daten\n";

    #[test]
    fn each_block_of_a_mixed_page_is_decided_with_its_context() {
        let mut doc = doc_of(&[REPORT, GERMAN_TEXT, HEADING_ONLY]);
        annotate(&mut doc);
        let tag = |p: usize, b: usize| {
            let l = doc.pages[p].blocks[b].language.as_ref().expect("a language");
            (l.tag.clone(), l.script.clone(), l.confidence)
        };
        assert_eq!(tag(0, 0).0, "cmn", "the Chinese title: {:?}", tag(0, 0));
        assert_eq!(tag(0, 1).0, "deu", "the table of one-word cells: {:?}", tag(0, 1));
        assert_eq!(tag(0, 2).0, "eng", "the English caption on a German page: {:?}", tag(0, 2));
        assert_eq!(tag(0, 3).0, "deu", "the one-word note takes the page's language: {:?}", tag(0, 3));
        assert_eq!(tag(2, 0).0, "deu", "a one-word page takes the document's: {:?}", tag(2, 0));
        assert_eq!(doc.pages[2].language.as_ref().map(|l| l.tag.as_str()), Some("deu"));
        // Without the context, the lone words are far less sure of German (if German at all).
        let alone = |text: &str| {
            let d = ProfileDetector::global().detect(text);
            if d.code == "deu" {
                d.confidence
            } else {
                0.0
            }
        };
        assert!(alone("Anhang") < tag(0, 3).2, "{} vs {:?}", alone("Anhang"), tag(0, 3));
        assert!(alone("Daten") < tag(2, 0).2, "{} vs {:?}", alone("Daten"), tag(2, 0));
    }

    #[test]
    fn a_text_that_fits_two_languages_reports_both() {
        let raw = "<|ref|>title<|/ref|><|det|>[[1, 1, 900, 80]]<|/det|>\n# 合計金額\n";
        let mut doc = doc_of(&[raw]);
        annotate(&mut doc);
        let l = doc.pages[0].blocks[0].language.clone().expect("a language");
        assert_eq!(l.tag, "cmn");
        assert_eq!(l.alternatives.first().map(|a| a.tag.as_str()), Some("jpn"), "{l:?}");
        let json = serde_json::to_value(&l).unwrap();
        assert!(json["alternatives"][0]["confidence"].as_f64().unwrap() > 0.2, "{json}");
    }

    #[test]
    fn markdown_lists_keep_their_lines() {
        let raw = "<|ref|>text<|/ref|><|det|>[[1, 1, 900, 300]]<|/det|>\n- first item of the list here\n- second item of the list here\n";
        let mut doc = doc_of(&[raw]);
        annotate(&mut doc);
        assert_eq!(doc.pages[0].blocks[0].text.lines().count(), 2, "{:?}", doc.pages[0].blocks[0].text);
        assert!(has_markdown_structure("1. one\n2. two") && !has_markdown_structure("In 1990. the end"));
    }

    #[test]
    fn empty_and_textless_documents() {
        let mut doc = doc_of(&["", "<|ref|>image<|/ref|><|det|>[[1, 1, 500, 500]]<|/det|>\n"]);
        assert!(annotate(&mut doc).is_empty());
        assert!(doc.pages.iter().all(|p| p.language.is_none()));
    }
}
