//! Training of the profile model from the UDHR corpus (`/work/shared/corpus/udhr`: one
//! paragraph per line), with a fixed hold-out rule so evaluation never sees training lines.
//! Used by `examples/build-profiles.rs` and `examples/evaluate.rs`.

use std::collections::HashMap;
use std::path::Path;

use crate::inventory::{Inventory, LanguageRow};
use crate::model::{ClassModel, ProfileModel, GAIN_STEP, MAX_ROWS};
use crate::ngram::{for_each_ngram, MAX_ORDER};
use crate::LangsError;

/// Every `HOLDOUT_EVERY`-th paragraph (index 4, 9, 14, ... counting from 0) is held out for
/// evaluation in every corpus file (translations are aligned, so the same content is held out
/// across the varieties of a language).
pub const HOLDOUT_EVERY: usize = 5;

/// True when paragraph `index` (0-based line number in a corpus file) is held out.
pub fn is_held_out(index: usize) -> bool {
    index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
}

/// Settings of training.
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    /// Additive smoothing of n-gram counts.
    pub alpha: f32,
    /// Smallest count kept for n-grams of order 2 and up (order 1 keeps everything).
    pub min_count: u32,
    /// Most n-grams kept per row (the most frequent).
    pub max_per_row: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self { alpha: 0.05, min_count: 1, max_per_row: 6000 }
    }
}

/// The paragraphs of a corpus file, with their 0-based indices.
pub fn read_paragraphs(dir: &Path, source: &str) -> Result<Vec<(usize, String)>, LangsError> {
    let path = dir.join(format!("{source}.txt"));
    let text = std::fs::read_to_string(&path)
        .map_err(|source| LangsError::Io { path: path.display().to_string(), source })?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i, l.to_string()))
        .collect())
}

/// The training paragraphs of a row: all its sources, without the paragraphs `exclude` names.
pub fn training_text(dir: &Path, row: &LanguageRow, exclude: &dyn Fn(usize) -> bool) -> Result<Vec<String>, LangsError> {
    let mut out = Vec::new();
    for source in &row.sources {
        out.extend(read_paragraphs(dir, source)?.into_iter().filter(|(i, _)| !exclude(*i)).map(|(_, l)| l));
    }
    Ok(out)
}

/// Trains one model per script class that has two or more trainable rows, on every paragraph
/// that is not held out.
pub fn train(dir: &Path, inventory: &Inventory, config: TrainConfig) -> Result<ProfileModel, LangsError> {
    train_excluding(dir, inventory, config, &is_held_out)
}

/// As [`train`], leaving out the paragraphs `exclude` names (for tuning on a development split
/// carved out of the training paragraphs).
pub fn train_excluding(
    dir: &Path,
    inventory: &Inventory,
    config: TrainConfig,
    exclude: &dyn Fn(usize) -> bool,
) -> Result<ProfileModel, LangsError> {
    let mut classes = Vec::new();
    for class in inventory.classes() {
        let rows: Vec<&LanguageRow> = inventory.rows_of_class(class).filter(|r| !r.sources.is_empty()).collect();
        if rows.len() < 2 {
            continue;
        }
        if rows.len() > MAX_ROWS {
            return Err(LangsError::BadTable(format!("class {class} has more than {MAX_ROWS} rows")));
        }
        let mut counts: Vec<(HashMap<u32, u32>, [u64; MAX_ORDER])> = Vec::new();
        let mut order_of: HashMap<u32, usize> = HashMap::new();
        for row in &rows {
            let mut c: HashMap<u32, u32> = HashMap::new();
            let mut totals = [0u64; MAX_ORDER];
            for para in training_text(dir, row, exclude)? {
                for_each_ngram(&para, class, |n, h| {
                    *c.entry(h).or_insert(0) += 1;
                    totals[n - 1] += 1;
                    order_of.insert(h, n);
                });
            }
            counts.push((c, totals));
        }
        let mut vocab = [0u64; MAX_ORDER];
        for &n in order_of.values() {
            vocab[n - 1] += 1;
        }
        let mut floors = Vec::with_capacity(rows.len());
        let mut postings: HashMap<u32, Vec<(u8, u8)>> = HashMap::new();
        let max_gain = (u8::MAX as f32) * GAIN_STEP;
        for (row_idx, (c, totals)) in counts.iter().enumerate() {
            let mut f = [0.0f32; MAX_ORDER];
            for n in 0..MAX_ORDER {
                let denom = totals[n] as f64 + config.alpha as f64 * vocab[n].max(1) as f64;
                f[n] = (config.alpha as f64 / denom).ln() as f32;
            }
            floors.push(f);
            let mut kept: Vec<(u32, u32)> = c
                .iter()
                .filter(|(h, &n)| n >= config.min_count || order_of[*h] == 1)
                .map(|(&h, &n)| (h, n))
                .collect();
            kept.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            kept.truncate(config.max_per_row);
            for (h, n) in kept {
                let gain = ((n as f32 + config.alpha) / config.alpha).ln().min(max_gain);
                let q = (gain / GAIN_STEP).round().clamp(1.0, u8::MAX as f32) as u8;
                postings.entry(h).or_default().push((row_idx as u8, q));
            }
        }
        let keys = rows.iter().map(|r| r.key()).collect();
        classes.push(ClassModel::from_parts(class.to_string(), keys, floors, postings.into_iter().collect())?);
    }
    Ok(ProfileModel { classes })
}
