//! Evaluation sets and tallies shared by `evaluate` and `tune`.
//!
//! - **Third-party short text**: the lingua crates' `testdata/` (sentences, word pairs, single
//!   words; 1000 lines each for 75 languages), never trained on. Odd lines (1, 3, 5, ... counting
//!   from 0) are the held-out test half that `evaluate` reports; even lines are the development
//!   half that `tune` chooses settings on.
//! - **UDHR paragraphs**: paragraphs with index % 5 == 4 are held out (`training::is_held_out`,
//!   reported); index % 5 == 3 is the development split of `tune` (trained on otherwise).

use docseek_langs::inventory::{Inventory, LanguageRow};
use docseek_langs::script::is_unspaced;
use docseek_langs::Detection;

use super::lingua::{self, LinguaRow};

/// The three kinds of test lines, as the lingua files name them.
pub const KINDS: [&str; 3] = ["sentences", "word-pairs", "single-words"];
/// Characters per simulated line in spaced scripts (a printed line of a single-column page).
pub const LINE_CHARS: usize = 60;
/// Characters per simulated line in unspaced scripts (Han, kana, Thai...).
pub const LINE_CHARS_UNSPACED: usize = 25;

/// Counts of one evaluated group.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Texts evaluated.
    pub total: usize,
    /// Texts whose top answer is right.
    pub correct: usize,
    /// Texts answered `und`.
    pub und: usize,
    /// Texts whose right language is the top answer or one of the alternatives.
    pub in_answer: usize,
}

impl Tally {
    /// Counts one answer; with `script`, Chinese must also get Simplified/Traditional right.
    pub fn add(&mut self, truth: &LanguageRow, d: &Detection, script: bool) {
        self.total += 1;
        let ok = if script { is_correct_script(truth, d) } else { is_correct(truth, d) };
        self.correct += ok as usize;
        self.und += !d.is_determined() as usize;
        self.in_answer += (ok || d.alternatives.iter().any(|a| a.code == truth.code)) as usize;
    }
    /// Share right.
    pub fn acc(&self) -> f64 {
        ratio(self.correct, self.total)
    }
    /// Share `und`.
    pub fn und_rate(&self) -> f64 {
        ratio(self.und, self.total)
    }
}

/// `a / b`, 0 for an empty group.
pub fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// Right when the language matches (and for Chinese rows of the UDHR set, the script).
pub fn is_correct(truth: &LanguageRow, d: &Detection) -> bool {
    d.code == truth.code
}

/// Right language and script.
pub fn is_correct_script(truth: &LanguageRow, d: &Detection) -> bool {
    d.code == truth.code && (truth.class() != "Hani" || d.script == truth.script)
}

/// One language of the third-party set with its lines per kind.
pub struct ShortTextLanguage {
    /// The lingua row.
    pub lingua: LinguaRow,
    /// Our inventory row.
    pub row: &'static LanguageRow,
    /// Per kind (see [`KINDS`]), the lines of the chosen half.
    pub lines: [Vec<String>; 3],
}

/// The third-party set: the test half (`test = true`, odd lines) or the development half.
pub fn short_text_set(test: bool) -> Result<Vec<ShortTextLanguage>, String> {
    let inv = Inventory::global();
    let mut out = Vec::new();
    for l in lingua::test_languages() {
        let row = inv.by_key(&l.row).ok_or_else(|| format!("{} not in the inventory", l.row))?;
        let mut lines: [Vec<String>; 3] = Default::default();
        for (k, kind) in KINDS.iter().enumerate() {
            lines[k] = lingua::testdata(&l.lingua, kind)?
                .into_iter()
                .enumerate()
                .filter(|(i, _)| (i % 2 == 1) == test)
                .map(|(_, t)| t)
                .collect();
        }
        out.push(ShortTextLanguage { lingua: l, row, lines });
    }
    Ok(out)
}

/// Splits a paragraph into lines as a page would print them.
pub fn lines_of(paragraph: &str, class: &str) -> Vec<String> {
    let unspaced = is_unspaced(class) || class == "Jpan";
    let limit = if unspaced { LINE_CHARS_UNSPACED } else { LINE_CHARS };
    let mut out = Vec::new();
    let mut cur = String::new();
    if unspaced {
        for c in paragraph.chars() {
            cur.push(c);
            if cur.chars().count() >= limit {
                out.push(std::mem::take(&mut cur));
            }
        }
    } else {
        for w in paragraph.split_whitespace() {
            if !cur.is_empty() && cur.chars().count() + 1 + w.chars().count() > limit {
                out.push(std::mem::take(&mut cur));
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur);
    }
    out
}
