//! The [`LanguageDetector`] trait and [`ProfileDetector`], its implementation: script first,
//! then language within the script by the profile model, with honest `und` for text that is
//! too short or too ambiguous.

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::detection::{Detection, Span, SCRIPT_COMMON};
use crate::inventory::{Inventory, LanguageRow};
use crate::model::{ClassModel, ProfileModel};
use crate::script::{script_name, ScriptCounts, HAN, JAPANESE};
use crate::LangsError;

/// The bundled profile model (built by `examples/build-profiles.rs`).
const PROFILES: &[u8] = include_bytes!("../data/profiles.bin");

/// Temperature dividing log-likelihoods before the softmax that gives the confidence: the
/// n-gram features are far from independent, so raw naive Bayes posteriors are overconfident.
pub const TEMPERATURE: f32 = 8.0;
/// Below this confidence the language is reported as `und` (the script is still given).
pub const MIN_CONFIDENCE: f32 = 0.5;
/// Fewest letters of the dominant script for a model decision.
pub const MIN_LETTERS: usize = 4;
/// Fewest Han characters for calling kana-less Han text Chinese rather than `und` (short Han
/// labels such as 合計金額 are as likely Japanese).
pub const MIN_HAN_FOR_CHINESE: usize = 8;
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
        let m: &ClassModel = &self.model.classes[i];
        let scores = m.score(text);
        if scores.features == 0 {
            return (Vec::new(), scores.letters);
        }
        let max = scores.log_likelihood.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let exp: Vec<f32> = scores.log_likelihood.iter().map(|&s| ((s - max) / self.temperature).exp()).collect();
        let sum: f32 = exp.iter().sum();
        let mut ranked: Vec<(&'static LanguageRow, f32)> =
            self.model_rows[i].iter().zip(exp).map(|(&row, e)| (row, e / sum)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        (ranked, scores.letters)
    }

    /// Kana-less Han text: Japanese when it has shinjitai forms Chinese does not use; else
    /// Chinese when long enough, Simplified or Traditional by the characters written only one
    /// way (the n-gram model breaks ties), less confident the less evidence there is.
    fn detect_chinese(&self, text: &str, han: usize, share: f32) -> Detection {
        if han < MIN_HAN_FOR_CHINESE {
            return Detection::undetermined(HAN);
        }
        if crate::han::japanese_only_count(text) > 0 {
            if let Some(row) = self.inventory.rows_of_class(JAPANESE).next() {
                return Self::decided(row, KANJI_ONLY_JAPANESE_CONFIDENCE * share);
            }
        }
        let (s, t) = crate::han::variant_counts(text);
        let variant = crate::han::han_variant(text).or_else(|| self.rank(text, HAN).0.first().map(|r| r.0.script));
        let row = self.inventory.rows_of_class(HAN).find(|r| Some(r.script) == variant);
        // Kanji-only Japanese (table cells, headings) looks like Chinese: without variant
        // evidence the confidence stays low.
        let evidence = (s.abs_diff(t) as f32 / CHINESE_EVIDENCE_FULL).min(1.0);
        let confidence = CHINESE_MIN_CONFIDENCE + (SCRIPT_ONLY_CONFIDENCE - CHINESE_MIN_CONFIDENCE) * evidence;
        match row.or_else(|| self.inventory.rows_of_class(HAN).next()) {
            Some(row) => Self::decided(row, confidence * share),
            None => Detection::undetermined(HAN),
        }
    }

    /// The best row of `class` for `text` with its probability (no full ranking).
    fn best(&self, text: &str, class: &str) -> Option<(&'static LanguageRow, f32)> {
        let i = self.model.classes.iter().position(|m| m.class == class)?;
        let scores = self.model.classes[i].score(text);
        if scores.features == 0 {
            return None;
        }
        let (arg, max) = scores
            .log_likelihood
            .iter()
            .enumerate()
            .fold((0, f32::NEG_INFINITY), |b, (i, &s)| if s > b.1 { (i, s) } else { b });
        let sum: f32 = scores.log_likelihood.iter().map(|&s| ((s - max) / self.temperature).exp()).sum();
        Some((self.model_rows[i][arg], 1.0 / sum))
    }

    fn decided(row: &'static LanguageRow, confidence: f32) -> Detection {
        Detection {
            code: Cow::Borrowed(row.code),
            bcp47: Cow::Borrowed(row.bcp47),
            name: Cow::Borrowed(row.name),
            script: Cow::Borrowed(row.script),
            confidence: confidence.clamp(0.0, 1.0),
        }
    }
}

impl LanguageDetector for ProfileDetector {
    fn detect(&self, text: &str) -> Detection {
        let counts = ScriptCounts::of(text);
        let resolved = counts.resolved();
        let Some(&(class, weight)) = resolved.first() else {
            return Detection::undetermined(SCRIPT_COMMON);
        };
        // Share of the dominant script among all letters: mixed text lowers the confidence.
        let total: u32 = resolved.iter().map(|&(_, w)| w).sum();
        let share = weight as f32 / total as f32;
        let class_letters = match class {
            JAPANESE => (counts.get(JAPANESE) + counts.get(HAN)) as usize,
            crate::script::KOREAN => (counts.get(crate::script::KOREAN) + counts.get(HAN)) as usize,
            c => counts.get(c) as usize,
        };

        if class == HAN {
            return self.detect_chinese(text, class_letters, share);
        }
        if let Some((row, p)) = self.best(text, class) {
            if class_letters < MIN_LETTERS {
                return Detection::undetermined(script_name(class));
            }
            let confidence = p * share;
            if confidence < MIN_CONFIDENCE {
                return Detection::undetermined(if class == HAN { script_name(class) } else { row.script });
            }
            return Self::decided(row, confidence);
        }
        let mut rows = self.inventory.rows_of_class(class);
        match (rows.next(), rows.next()) {
            (Some(row), None) if class_letters >= MIN_LETTERS_SCRIPT_ONLY && class != HAN => {
                let confidence = SCRIPT_ONLY_CONFIDENCE * share;
                if confidence < MIN_CONFIDENCE {
                    Detection::undetermined(row.script)
                } else {
                    Self::decided(row, confidence)
                }
            }
            _ => Detection::undetermined(script_name(class)),
        }
    }
}

