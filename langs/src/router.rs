//! Routing of language-specific post-processing of OCR text: per script and language, a
//! [`RoutingProfile`] (from `data/routing.json`) decides the writing direction, how lines
//! join, whether line-final hyphens are removed, which compatibility characters are folded,
//! and whether the OCR model is expected to read the language well.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::detection::Detection;
use crate::normalize::{normalize, Fold};
use crate::script::{char_class, is_unspaced};
use crate::LangsError;

/// The bundled routing table.
const ROUTING_JSON: &str = include_str!("../data/routing.json");

/// Writing direction, as the HTML `dir` attribute takes it. Text is kept in logical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    /// Left to right.
    Ltr,
    /// Right to left (Arabic, Hebrew, Thaana, Syriac, N'Ko, Adlam, ...).
    Rtl,
    /// Unknown: let the renderer decide from the first strong character.
    Auto,
}

impl Dir {
    /// The value for an HTML `dir` attribute.
    pub fn html(self) -> &'static str {
        match self {
            Dir::Ltr => "ltr",
            Dir::Rtl => "rtl",
            Dir::Auto => "auto",
        }
    }
}

/// How the lines of a paragraph join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineJoin {
    /// With a space.
    Space,
    /// Without a space where both sides of the break are of an unspaced script (Han, kana,
    /// Thai, Lao, Khmer, Myanmar, Tibetan); with a space otherwise.
    None,
}

/// Expected quality of the OCR model on a language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Support {
    /// Expected to be read well.
    Good,
    /// Flagged: prefer a text layer or another engine, or mark the output as uncertain.
    Fallback,
}

/// The resolved post-processing of one language in one script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingProfile {
    /// Writing direction.
    pub dir: Dir,
    /// How lines join.
    pub line_join: LineJoin,
    /// Whether a line-final hyphen before a lower-case continuation is removed.
    pub dehyphenate: bool,
    /// Compatibility classes folded to NFKC (NFC is always applied).
    pub folds: Vec<Fold>,
    /// Expected model quality.
    pub support: Support,
}

/// A partial profile: the fields a script or language entry sets.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilePatch {
    dir: Option<Dir>,
    line_join: Option<LineJoin>,
    dehyphenate: Option<bool>,
    folds: Option<Vec<Fold>>,
    support: Option<Support>,
}

impl ProfilePatch {
    fn apply(&self, p: &mut RoutingProfile) {
        if let Some(v) = self.dir {
            p.dir = v;
        }
        if let Some(v) = self.line_join {
            p.line_join = v;
        }
        if let Some(v) = self.dehyphenate {
            p.dehyphenate = v;
        }
        if let Some(v) = &self.folds {
            p.folds = v.clone();
        }
        if let Some(v) = self.support {
            p.support = v;
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct RoutingTable {
    default: RoutingProfile,
    scripts: HashMap<String, ProfilePatch>,
    languages: HashMap<String, ProfilePatch>,
}

/// Text after routing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessedText {
    /// The processed text (logical order; paragraphs separated by a blank line).
    pub text: String,
    /// Language (ISO 639-3 or `und`).
    pub code: String,
    /// Script (ISO 15924).
    pub script: String,
    /// Writing direction (`dir` for HTML).
    pub dir: Dir,
    /// Expected model quality.
    pub support: Support,
    /// Line breaks joined.
    pub lines_joined: usize,
    /// Line-final hyphens removed.
    pub hyphens_removed: usize,
}

/// Routes text to its language's post-processing.
#[derive(Debug, Clone)]
pub struct Router {
    table: RoutingTable,
    /// Join the lines of each paragraph (blank lines separate paragraphs). When false, line
    /// breaks are kept and only normalisation applies.
    pub join_lines: bool,
}

impl Router {
    /// The router over the bundled table, joining lines.
    pub fn global() -> &'static Router {
        static ROUTER: OnceLock<Router> = OnceLock::new();
        ROUTER.get_or_init(|| Router::from_json(ROUTING_JSON).expect("bundled data/routing.json is valid (tested)"))
    }

    /// A router over a routing table in the JSON layout of `data/routing.json`.
    pub fn from_json(json: &str) -> Result<Self, LangsError> {
        let table: RoutingTable = serde_json::from_str(json).map_err(|e| LangsError::BadTable(e.to_string()))?;
        Ok(Self { table, join_lines: true })
    }

    /// The profile of a language (`und` allowed) written in a script.
    pub fn profile(&self, code: &str, script: &str) -> RoutingProfile {
        let mut p = self.table.default.clone();
        if let Some(s) = self.table.scripts.get(script) {
            s.apply(&mut p);
        } else if script == "Zyyy" || script == "Zzzz" {
            p.dir = Dir::Auto;
        }
        if let Some(l) = self.table.languages.get(code) {
            l.apply(&mut p);
        }
        p
    }

    /// Post-processes `text` detected as `detection`.
    pub fn process(&self, text: &str, detection: &Detection) -> ProcessedText {
        let profile = self.profile(&detection.code, &detection.script);
        let normalized = normalize(text, &profile.folds);
        let (text, lines_joined, hyphens_removed) =
            if self.join_lines { join_paragraph_lines(&normalized, &profile) } else { (normalized, 0, 0) };
        ProcessedText {
            text,
            code: detection.code.to_string(),
            script: detection.script.to_string(),
            dir: profile.dir,
            support: profile.support,
            lines_joined,
            hyphens_removed,
        }
    }
}

/// Hyphens that may end a line of a hyphenated word.
fn is_hyphen(c: char) -> bool {
    matches!(c, '-' | '\u{2010}' | '\u{00AD}')
}

/// Joins the lines of each paragraph; returns (text, joins, hyphens removed).
fn join_paragraph_lines(text: &str, profile: &RoutingProfile) -> (String, usize, usize) {
    let mut out = String::with_capacity(text.len());
    let (mut joins, mut hyphens) = (0, 0);
    let mut paragraph_open = false;
    let mut blank_run = false;
    for raw in text.lines() {
        let line = raw.trim_end();
        let line_start = line.trim_start();
        if line_start.is_empty() {
            blank_run = paragraph_open;
            continue;
        }
        if blank_run {
            out.push_str("\n\n");
            blank_run = false;
        } else if paragraph_open {
            joins += 1;
            let next = line_start.chars().next().expect("non-empty");
            let last = out.chars().next_back().expect("paragraph has text");
            // A soft hyphen always goes; a hard one at a break inside a word where the language
            // hyphenates.
            let soft = last == '\u{00AD}';
            if soft || (profile.dehyphenate && is_hyphen(last) && next.is_lowercase() && letter_before_last(&out)) {
                out.pop();
                hyphens += 1;
            } else if !needs_no_space(last, next, profile) && !is_hyphen(last) {
                out.push(' ');
            }
            out.push_str(line_start);
            continue;
        }
        out.push_str(if paragraph_open { line_start } else { line });
        paragraph_open = true;
    }
    (out, joins, hyphens)
}

fn letter_before_last(s: &str) -> bool {
    let mut it = s.chars().rev();
    it.next();
    it.next().is_some_and(char::is_alphabetic)
}

/// True when a break between `last` and `next` joins without a space.
fn needs_no_space(last: char, next: char, profile: &RoutingProfile) -> bool {
    let unspaced = |c: char| char_class(c).is_some_and(is_unspaced) || is_cjk_punctuation(c);
    profile.line_join == LineJoin::None && unspaced(last) && unspaced(next)
}

/// Full-width CJK punctuation (、。「」（）！？ and the like), which never takes a space.
fn is_cjk_punctuation(c: char) -> bool {
    matches!(c as u32, 0x3000..=0x303F | 0xFF01..=0xFF0F | 0xFF1A..=0xFF20 | 0xFF3B..=0xFF40 | 0xFF5B..=0xFF65)
}
