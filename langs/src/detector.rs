//! The [`LanguageDetector`] trait and [`ProfileDetector`], its implementation: script first,
//! then language within the script by the profile model, with honest `und` for text that is
//! too short or too ambiguous.

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::context::ContextPrior;
use crate::detection::{Alternative, Detection, Span, SCRIPT_COMMON};
use crate::inventory::{Inventory, LanguageRow};
use crate::model::ProfileModel;
use crate::script::{script_name, ScriptCounts, HAN, JAPANESE};
use crate::LangsError;

/// The bundled profile model (built by `examples/build-profiles.rs`).
const PROFILES: &[u8] = include_bytes!("../data/profiles.bin");

/// Temperature dividing log-likelihoods before the softmax that gives the probabilities: the
/// features overlap and are far from independent, so raw naive Bayes posteriors are
/// overconfident. Chosen on a development split so that confidence tracks accuracy (see
/// `examples/tune.rs`).
pub const TEMPERATURE: f32 = 4.5;
/// Below this confidence the language is reported as `und` (the script is still given): only
/// a guess with almost no evidence behind it (chosen with [`TEMPERATURE`] on the development
/// data: a lower cut adds `und` answers faster than it removes wrong ones).
pub const MIN_CONFIDENCE: f32 = 0.05;
/// Fewest letters of the dominant script for a model decision.
pub const MIN_LETTERS: usize = 2;
/// A second language is reported beside the first when its probability is at least this.
pub const ALTERNATIVE_MIN: f32 = 0.25;
/// Most alternatives reported.
pub const MAX_ALTERNATIVES: usize = 2;
/// Candidates ranked by [`LanguageDetector::detect`] (enough for the answer and its
/// alternatives).
pub const POSTERIOR_CANDIDATES: usize = 4;
/// Fewest Han characters for calling kana-less Han text Chinese with full confidence: short
/// Han labels such as 合計金額 are often Japanese, which is then given as the alternative.
pub const MIN_HAN_FOR_CHINESE: usize = 8;
/// Probability that short kana-less Han text (under [`MIN_HAN_FOR_CHINESE`]) is Chinese.
pub const SHORT_HAN_CHINESE: f32 = 0.6;
/// Confidence of kana-less Han text with Japanese-only shinjitai forms being Japanese.
pub const KANJI_ONLY_JAPANESE_CONFIDENCE: f32 = 0.8;
/// Confidence of kana-less Han text being Chinese without Simplified/Traditional evidence.
pub const CHINESE_MIN_CONFIDENCE: f32 = 0.6;
/// Variant characters (Simplified minus Traditional, or the reverse) for full confidence.
pub const CHINESE_EVIDENCE_FULL: f32 = 4.0;
/// Confidence of a language decided by its script alone (the script may serve languages
/// outside the inventory).
pub const SCRIPT_ONLY_CONFIDENCE: f32 = 0.95;
/// Fewest letters for a script-only decision.
pub const MIN_LETTERS_SCRIPT_ONLY: usize = 2;

/// Detects the language of text. Implementations must be cheap to call per line or block.
pub trait LanguageDetector: Send + Sync {
    /// The language and dominant script of `text`, `und` when undecidable.
    fn detect(&self, text: &str) -> Detection;

    /// The runs of `text` by script and language, covering it, by byte offsets.
    fn spans(&self, text: &str) -> Vec<Span> {
        crate::spans::split(|t| self.detect(t), text)
    }
}

/// Detector over the bundled inventory and profile model.
#[derive(Debug)]
pub struct ProfileDetector {
    inventory: &'static Inventory,
    model: ProfileModel,
    /// Per class model (same order as `model.classes`), the inventory row of each model row.
    model_rows: Vec<Vec<&'static LanguageRow>>,
    temperature: f32,
}

impl ProfileDetector {
    /// The detector over the bundled data, loaded once on first use.
    pub fn global() -> &'static ProfileDetector {
        static DETECTOR: OnceLock<ProfileDetector> = OnceLock::new();
        DETECTOR.get_or_init(|| {
            let model = ProfileModel::from_bytes(PROFILES).expect("bundled data/profiles.bin is valid (tested)");
            ProfileDetector::new(Inventory::global(), model).expect("bundled profiles match the inventory (tested)")
        })
    }

    /// A detector over an inventory and a model trained for it.
    pub fn new(inventory: &'static Inventory, model: ProfileModel) -> Result<Self, LangsError> {
        let mut model_rows = Vec::with_capacity(model.classes.len());
        for class in &model.classes {
            let rows = class
                .rows
                .iter()
                .map(|key| {
                    inventory.by_key(key).ok_or_else(|| LangsError::BadProfiles(format!("row {key} not in inventory")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            model_rows.push(rows);
        }
        Ok(Self { inventory, model, model_rows, temperature: TEMPERATURE })
    }

    /// The same detector with another softmax temperature (see [`TEMPERATURE`]).
    pub fn with_temperature(mut self, temperature: f32) -> Self {
        self.temperature = temperature.max(f32::MIN_POSITIVE);
        self
    }

    /// The inventory answered from.
    pub fn inventory(&self) -> &'static Inventory {
        self.inventory
    }

    /// The profile model.
    pub fn model(&self) -> &ProfileModel {
        &self.model
    }

    /// Ranked candidates for `text` within script class `class`: (row, probability), best
    /// first, plus the number of letters of the class. Empty when the class has no model.
    pub fn rank(&self, text: &str, class: &str) -> (Vec<(&'static LanguageRow, f32)>, usize) {
        let Some(i) = self.model.classes.iter().position(|m| m.class == class) else {
            return (Vec::new(), 0);
        };
        let scores = self.model.classes[i].score(text);
        if scores.features == 0 {
            return (Vec::new(), scores.letters);
        }
        (self.softmax(i, &scores.log_likelihood, usize::MAX), scores.letters)
    }

    /// The `keep` most probable rows of class model `i` from their log-likelihoods.
    fn softmax(&self, i: usize, ll: &[f32], keep: usize) -> Vec<(&'static LanguageRow, f32)> {
        let max = ll.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = ll.iter().map(|&s| ((s - max) / self.temperature).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let mut ranked: Vec<(&'static LanguageRow, f32)> =
            self.model_rows[i].iter().zip(exp).map(|(&row, e)| (row, e / sum)).collect();
        if ranked.len() > keep {
            ranked.select_nth_unstable_by(keep - 1, |a, b| b.1.total_cmp(&a.1));
            ranked.truncate(keep);
        }
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    }

    /// The candidates for a text with their probabilities (every row of its script class),
    /// before any context: see [`Posterior`].
    pub fn posterior(&self, text: &str) -> Posterior {
        self.posterior_top(text, usize::MAX)
    }

    /// [`ProfileDetector::posterior`] with only the `keep` best candidates (what
    /// [`LanguageDetector::detect`] needs, faster).
    pub fn posterior_top(&self, text: &str, keep: usize) -> Posterior {
        let counts = ScriptCounts::of(text);
        let resolved = counts.resolved();
        let Some(&(class, weight)) = resolved.first() else {
            return Posterior::none(SCRIPT_COMMON, SCRIPT_COMMON);
        };
        // Share of the dominant script among all letters: mixed text lowers the confidence.
        let total: u32 = resolved.iter().map(|&(_, w)| w).sum();
        let share = weight as f32 / total as f32;
        let class_letters = match class {
            JAPANESE => (counts.get(JAPANESE) + counts.get(HAN)) as usize,
            crate::script::KOREAN => (counts.get(crate::script::KOREAN) + counts.get(HAN)) as usize,
            c => counts.get(c) as usize,
        };
        let script = script_name(class);
        let mut post = Posterior { class, script, share, letters: class_letters, ranked: Vec::new() };
        if class == HAN {
            post.ranked = self.rank_han(text, class_letters);
            return post;
        }
        if let Some(i) = self.model.classes.iter().position(|m| m.class == class) {
            let scores = self.model.classes[i].score(text);
            if scores.features > 0 && class_letters >= MIN_LETTERS {
                post.ranked = self.softmax(i, &scores.log_likelihood, keep);
            }
            return post;
        }
        let mut rows = self.inventory.rows_of_class(class);
        if let (Some(row), None) = (rows.next(), rows.next()) {
            if class_letters >= MIN_LETTERS_SCRIPT_ONLY {
                post.ranked = vec![(row, SCRIPT_ONLY_CONFIDENCE)];
            }
        }
        post
    }

    /// Kana-less Han text: Japanese when it has shinjitai forms Chinese does not use;
    /// Vietnamese Han-Nom when the Han model says so; else Chinese, Simplified or Traditional
    /// by the characters written only one way (the model breaks ties), less confident the less
    /// evidence there is, with Japanese as the alternative for short labels.
    fn rank_han(&self, text: &str, han: usize) -> Vec<(&'static LanguageRow, f32)> {
        let japanese = self.inventory.rows_of_class(JAPANESE).next();
        if crate::han::japanese_only_count(text) > 0 {
            if let Some(row) = japanese {
                return vec![(row, KANJI_ONLY_JAPANESE_CONFIDENCE)];
            }
        }
        let model = self.rank(text, HAN).0;
        if let Some(&(row, p)) = model.first().filter(|(r, _)| r.code != "cmn") {
            if han >= MIN_HAN_FOR_CHINESE {
                return vec![(row, p)];
            }
        }
        let (s, t) = crate::han::variant_counts(text);
        let variant =
            crate::han::han_variant(text).or_else(|| model.iter().find(|(r, _)| r.code == "cmn").map(|r| r.0.script));
        let chinese: Vec<&'static LanguageRow> =
            self.inventory.rows_of_class(HAN).filter(|r| r.code == "cmn").collect();
        let Some(&row) = chinese.iter().find(|r| Some(r.script) == variant).or_else(|| chinese.first()) else {
            return Vec::new();
        };
        let evidence = (s.abs_diff(t) as f32 / CHINESE_EVIDENCE_FULL).min(1.0);
        let mut confidence = CHINESE_MIN_CONFIDENCE + (SCRIPT_ONLY_CONFIDENCE - CHINESE_MIN_CONFIDENCE) * evidence;
        let mut ranked = Vec::with_capacity(2);
        if han < MIN_HAN_FOR_CHINESE && evidence < 1.0 {
            // Kanji-only Japanese (table cells, headings) looks like Chinese.
            confidence = confidence.min(SHORT_HAN_CHINESE);
            ranked.push((row, confidence));
            if let Some(jp) = japanese {
                ranked.push((jp, SCRIPT_ONLY_CONFIDENCE - confidence));
            }
        } else {
            ranked.push((row, confidence));
        }
        ranked
    }

    fn decided(row: &'static LanguageRow, confidence: f32) -> Detection {
        Detection {
            code: Cow::Borrowed(row.code),
            bcp47: Cow::Borrowed(row.bcp47),
            name: Cow::Borrowed(row.name),
            script: Cow::Borrowed(row.script),
            confidence: confidence.clamp(0.0, 1.0),
            alternatives: Vec::new(),
        }
    }
}

impl LanguageDetector for ProfileDetector {
    fn detect(&self, text: &str) -> Detection {
        self.posterior_top(text, POSTERIOR_CANDIDATES).detection()
    }
}

/// The candidate languages of a text with their probabilities (best first), within its
/// dominant script class: what [`Posterior::detection`] decides from, and what a
/// [`ContextPrior`] reweights.
#[derive(Debug, Clone)]
pub struct Posterior {
    /// The dominant script class.
    pub class: &'static str,
    /// The ISO 15924 script reported when the language stays undecided.
    pub script: &'static str,
    /// Share of the dominant class among the text's letters (weighted as in [`ScriptCounts`]).
    pub share: f32,
    /// Letters of the dominant class.
    pub letters: usize,
    /// Candidates with probabilities, best first; empty when the text cannot be decided.
    pub ranked: Vec<(&'static LanguageRow, f32)>,
}

impl Posterior {
    fn none(class: &'static str, script: &'static str) -> Self {
        Self { class, script, share: 0.0, letters: 0, ranked: Vec::new() }
    }

    /// The same candidates reweighted by a context prior (Bayes: probability times the prior's
    /// weight of the row, renormalised; the fewer the letters, the more the context counts, see
    /// [`crate::context`]). A prior with nothing for this class changes nothing.
    pub fn with_prior(&self, prior: &ContextPrior) -> Posterior {
        let mut out = self.clone();
        if !prior.covers(self.class) || out.ranked.is_empty() {
            return out;
        }
        let before: f32 = out.ranked.iter().map(|r| r.1).sum();
        for (row, p) in &mut out.ranked {
            *p *= prior.weight(self.class, row, self.letters);
        }
        let after: f32 = out.ranked.iter().map(|r| r.1).sum();
        if after > 0.0 {
            for r in &mut out.ranked {
                r.1 *= before / after;
            }
        }
        out.ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        out
    }

    /// The decision: the best candidate with its confidence (probability times script share)
    /// and the close alternatives, or `und` with the script when there is no candidate or the
    /// best is below [`MIN_CONFIDENCE`].
    pub fn detection(&self) -> Detection {
        let Some(&(row, p)) = self.ranked.first() else {
            return Detection::undetermined(self.script);
        };
        let confidence = p * self.share;
        if confidence < MIN_CONFIDENCE {
            return Detection::undetermined(if self.class == HAN { self.script } else { row.script });
        }
        let mut d = ProfileDetector::decided(row, confidence);
        d.alternatives = self.ranked[1..]
            .iter()
            .filter(|(r, q)| *q * self.share >= ALTERNATIVE_MIN && r.code != row.code)
            .take(MAX_ALTERNATIVES)
            .map(|&(r, q)| Alternative {
                code: Cow::Borrowed(r.code),
                bcp47: Cow::Borrowed(r.bcp47),
                script: Cow::Borrowed(r.script),
                confidence: (q * self.share).clamp(0.0, 1.0),
            })
            .collect();
        d
    }
}
