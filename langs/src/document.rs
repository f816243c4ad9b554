//! Per-document aggregate of block detections: the languages of a document with their shares,
//! its primary language and direction.

use serde::Serialize;

use crate::detection::Detection;
use crate::router::{Dir, Router};

/// One language's share of a document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LanguageShare {
    /// ISO 639-3 code (`und` included).
    pub code: String,
    /// BCP-47 tag.
    pub bcp47: String,
    /// English name.
    pub name: String,
    /// ISO 15924 script.
    pub script: String,
    /// Share of the document's characters, in `[0, 1]`.
    pub share: f32,
    /// Character-weighted mean confidence of its blocks.
    pub confidence: f32,
}

/// Accumulates block detections of a document, weighted by characters.
#[derive(Debug, Clone, Default)]
pub struct DocumentLanguages {
    entries: Vec<(Detection, f64, f64)>, // (first detection, weight, weight x confidence)
    total: f64,
}

impl DocumentLanguages {
    /// An empty aggregate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a block of `chars` characters detected as `d`.
    pub fn add(&mut self, d: &Detection, chars: usize) {
        let w = chars as f64;
        self.total += w;
        match self.entries.iter_mut().find(|(e, _, _)| e.code == d.code && e.script == d.script) {
            Some(e) => {
                e.1 += w;
                e.2 += w * d.confidence as f64;
            }
            None => self.entries.push((d.clone(), w, w * d.confidence as f64)),
        }
    }

    /// Adds a block's text after detecting it with `detector`.
    pub fn add_text<D: crate::LanguageDetector + ?Sized>(&mut self, detector: &D, text: &str) -> Detection {
        let d = detector.detect(text);
        self.add(&d, text.chars().filter(|c| !c.is_whitespace()).count());
        d
    }

    /// Languages by share, largest first.
    pub fn languages(&self) -> Vec<LanguageShare> {
        let mut v: Vec<LanguageShare> = self
            .entries
            .iter()
            .map(|(d, w, wc)| LanguageShare {
                code: d.code.to_string(),
                bcp47: d.bcp47.to_string(),
                name: d.name.to_string(),
                script: d.script.to_string(),
                share: if self.total > 0.0 { (w / self.total) as f32 } else { 0.0 },
                confidence: if *w > 0.0 { (wc / w) as f32 } else { 0.0 },
            })
            .collect();
        v.sort_by(|a, b| b.share.total_cmp(&a.share));
        v
    }

    /// The primary language: the decided language with the largest share (`und` when none),
    /// with its mean confidence scaled by its share.
    pub fn primary(&self) -> Detection {
        let best = self.entries.iter().filter(|(d, _, _)| d.is_determined()).max_by(|a, b| a.1.total_cmp(&b.1));
        match best {
            Some((d, w, wc)) => {
                let mut d = d.clone();
                d.confidence = ((wc / w) * (w / self.total)) as f32;
                d
            }
            None => Detection::undetermined(crate::detection::SCRIPT_COMMON),
        }
    }

    /// Direction of the document: that of the primary language (`auto` when undecided).
    pub fn dir(&self, router: &Router) -> Dir {
        let p = self.primary();
        if !p.is_determined() {
            return Dir::Auto;
        }
        router.profile(&p.code, &p.script).dir
    }
}
