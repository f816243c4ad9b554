//! Training of the profile model from the UDHR corpus (`/work/shared/corpus/udhr`: one
//! paragraph per line) and, where given, large-corpus character n-gram distributions (the
//! lingua model crates, read by `examples/build-profiles.rs`), with a fixed hold-out rule so
//! evaluation never sees training lines.
//!
//! Per row and feature kind, counts are smoothed additively; an external distribution stands
//! in for the in-word n-gram counts of its row (probabilities times a pseudo-count), the UDHR
//! text still gives its word edges and words.

use std::collections::HashMap;
use std::path::Path;

use crate::inventory::{Inventory, LanguageRow};
use crate::model::{ClassModel, ProfileModel, GAIN_STEP, MAX_ROWS};
use crate::ngram::{for_each_feature, hash_word, KINDS, KIND_EDGE, KIND_WORD, MAX_ORDER};
use crate::LangsError;

/// Every `HOLDOUT_EVERY`-th paragraph (index 4, 9, 14, ... counting from 0) is held out for
/// evaluation in every corpus file. The index is the aligned one ([`crate::alignment`]), so the
/// same articles are held out across close neighbours whose files split the heading differently.
pub const HOLDOUT_EVERY: usize = 5;

/// True when aligned paragraph `index` (see [`read_paragraphs`]) is held out.
pub fn is_held_out(index: usize) -> bool {
    index % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
}

/// Settings of training.
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    /// Additive smoothing of counts.
    pub alpha: f32,
    /// Most features kept per row and kind (the most frequent; none of kind 0, in-word
    /// unigrams, which detection does not look up).
    pub max_per_kind: [usize; KINDS],
    /// Weight of each kind's log-probabilities: the kinds overlap (a word's 5-grams contain its
    /// 4-grams), so naive Bayes would count the same evidence several times.
    pub weights: [f32; KINDS],
    /// Pseudo-count of an external distribution: its probabilities times this are its counts.
    pub external_tokens: f64,
    /// The floor of a row whose features were cut to `max_per_kind`: this share of the
    /// smallest count kept (an n-gram left out was rarer than those kept, not unseen). 0.1
    /// rather than 0.3 since issue #17: on the development half it lifts the close neighbours
    /// (Croatian +1.4, Indonesian +1.6, Serbian +0.8 points of sentences) at the same macro
    /// accuracy (`tune.rs`, rows `floor ...`).
    pub truncated_floor: f32,
    /// Log prior of rows with an external (large-corpus) distribution: those are the widely
    /// written languages, which short text is more often in.
    pub external_prior: f32,
    /// Log prior of rows trained from a table converted from another script
    /// ([`ExternalRow::prior`] false): Bosnian in Cyrillic, Serbian in Latin.
    pub transliterated_prior: f32,
    /// Share of the UDHR text in the in-word n-gram distribution of a row with an external
    /// one (the rest is the external distribution): it keeps the formal register of the
    /// UDHR known to the rows trained mostly on news and web text.
    pub udhr_share: f64,
    /// Count of each marker word of a row (`data/markers.tsv`, see [`crate::markers`]) as a
    /// share of the row's word count: a frequent word, as function words and common spellings
    /// are. 0 leaves the markers out.
    pub marker_share: f64,
    /// Nats a marker word takes from the rows of its group (`data/markers.tsv`) that do not
    /// list it: `tko` speaks against Bosnian and Serbian as much as for Croatian. Only the
    /// group's rows are affected (every other row gets the same amount back), so a word that
    /// is also a word elsewhere (`ko` in Maori) does not pull text into the group.
    pub marker_penalty: f32,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            alpha: 0.05,
            max_per_kind: [0, 1500, 4000, 5000, 5000, 4000, 3000],
            weights: [0.3, 0.35, 0.45, 0.55, 0.6, 0.6, 1.0],
            external_tokens: 1e6,
            truncated_floor: 0.1,
            external_prior: 3.0,
            transliterated_prior: 0.0,
            udhr_share: 0.3,
            marker_share: 0.004,
            marker_penalty: 12.0,
        }
    }
}

/// Large-corpus in-word n-gram distributions by row key (`code-Script`).
pub type External = HashMap<String, ExternalRow>;

/// The large-corpus in-word n-gram distribution of one row.
#[derive(Debug, Clone, Default)]
pub struct ExternalRow {
    /// Per order 1 to [`MAX_ORDER`], (feature hash, probability within the order).
    pub orders: Vec<Vec<(u32, f32)>>,
    /// Whether the row gets [`TrainConfig::external_prior`]: not for a table converted from
    /// another script (Bosnian in Cyrillic is far rarer than Serbian in Cyrillic).
    pub prior: bool,
}

/// The paragraphs of a corpus file, with their aligned 0-based indices: the line number,
/// corrected by `data/alignment.tsv` where the file splits a paragraph its close neighbours keep
/// whole ([`crate::alignment::paragraph_index`]; two lines can share an index).
pub fn read_paragraphs(dir: &Path, source: &str) -> Result<Vec<(usize, String)>, LangsError> {
    let path = dir.join(format!("{source}.txt"));
    let text =
        std::fs::read_to_string(&path).map_err(|e| LangsError::Io { path: path.display().to_string(), source: e })?;
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (crate::alignment::paragraph_index(source, i), l.to_string()))
        .collect())
}

/// The training paragraphs of a row: all its sources, without the paragraphs `exclude` names.
pub fn training_text(
    dir: &Path,
    row: &LanguageRow,
    exclude: &dyn Fn(usize) -> bool,
) -> Result<Vec<String>, LangsError> {
    let mut out = Vec::new();
    for source in &row.sources {
        out.extend(read_paragraphs(dir, source)?.into_iter().filter(|(i, _)| !exclude(*i)).map(|(_, l)| l));
    }
    Ok(out)
}

/// Trains on the UDHR paragraphs that are not held out, without external distributions.
pub fn train(dir: &Path, inventory: &Inventory, config: TrainConfig) -> Result<ProfileModel, LangsError> {
    train_with(dir, inventory, config, &is_held_out, &External::new())
}

/// Feature counts of one row.
struct RowCounts {
    counts: Vec<HashMap<u32, f64>>,
    totals: [f64; KINDS],
    /// Per kind, features kept whatever their count (the UDHR's, in rows mixed with an
    /// external distribution).
    keep: Vec<Vec<u32>>,
    external: bool,
    prior: bool,
}

impl RowCounts {
    fn new() -> Self {
        Self {
            counts: vec![HashMap::new(); KINDS],
            totals: [0.0; KINDS],
            keep: vec![Vec::new(); KINDS],
            external: false,
            prior: false,
        }
    }
}

/// Trains one model per script class that has two or more trainable rows (with corpus
/// sources or an external distribution), leaving out the paragraphs `exclude` names.
pub fn train_with(
    dir: &Path,
    inventory: &Inventory,
    config: TrainConfig,
    exclude: &dyn Fn(usize) -> bool,
    external: &External,
) -> Result<ProfileModel, LangsError> {
    let mut classes = Vec::new();
    for class in inventory.classes() {
        let rows: Vec<&LanguageRow> = inventory
            .rows_of_class(class)
            .filter(|r| !r.sources.is_empty() || external.contains_key(&r.key()))
            .collect();
        if rows.len() < 2 {
            continue;
        }
        if rows.len() > MAX_ROWS {
            return Err(LangsError::BadTable(format!("class {class} has more than {MAX_ROWS} rows")));
        }
        let mut counts = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut c = RowCounts::new();
            for para in training_text(dir, row, exclude)? {
                for_each_feature(&para, class, |k, h| {
                    *c.counts[k].entry(h).or_insert(0.0) += 1.0;
                    c.totals[k] += 1.0;
                });
            }
            add_markers(&mut c, &row.key(), config.marker_share);
            if let Some(ext) = external.get(&row.key()) {
                c.external = true;
                c.prior = ext.prior;
                for (k, dist) in ext.orders.iter().enumerate().take(MAX_ORDER) {
                    let n = config.external_tokens;
                    let own = if c.totals[k] > 0.0 { config.udhr_share } else { 0.0 };
                    let mut m = HashMap::with_capacity(dist.len());
                    for &(h, p) in dist {
                        *m.entry(h).or_insert(0.0) += p as f64 * n * (1.0 - own);
                    }
                    for (&h, &count) in &c.counts[k] {
                        *m.entry(h).or_insert(0.0) += count / c.totals[k] * n * own;
                    }
                    c.keep[k] = c.counts[k].keys().copied().collect();
                    c.counts[k] = m;
                    c.totals[k] = n;
                }
            }
            counts.push(c);
        }
        let mut model = build_class(class, &rows, &counts, &config)?;
        apply_marker_penalties(&mut model, &rows, config.marker_penalty);
        classes.push(model);
    }
    Ok(ProfileModel { classes })
}

/// Counts the marker words of row `key` as words seen `share` (times the word's weight) of its
/// word count each (words it already shows more often keep their count).
fn add_markers(c: &mut RowCounts, key: &str, share: f64) {
    let Some(words) = crate::markers::markers().get(key).filter(|_| share > 0.0) else {
        return;
    };
    for w in words {
        let count = share * crate::markers::weight(w) as f64 * c.totals[KIND_WORD];
        let chars: Vec<char> = w.chars().collect();
        let seen = c.counts[KIND_WORD].entry(hash_word(&chars)).or_insert(0.0);
        if *seen < count {
            c.totals[KIND_WORD] += count - *seen;
            *seen = count;
        }
    }
}

/// Takes [`TrainConfig::marker_penalty`] (times the word's [`crate::markers::weight`]) from the
/// rows of a marker group that do not list a marker word, by giving it to every other row of
/// the class.
fn apply_marker_penalties(model: &mut ClassModel, rows: &[&LanguageRow], penalty: f32) {
    let keys: Vec<String> = rows.iter().map(|r| r.key()).collect();
    for (word, penalised) in crate::markers::group_words(&keys) {
        let step = (penalty * crate::markers::weight(word) / GAIN_STEP).round().clamp(0.0, u8::MAX as f32) as u32;
        if step == 0 {
            continue;
        }
        let chars: Vec<char> = word.chars().collect();
        let h = hash_word(&chars);
        let mut gains = model.gains_of(h);
        for (g, _) in gains.iter_mut().zip(&penalised).filter(|(_, &p)| !p) {
            *g = (*g as u32 + step).min(u8::MAX as u32) as u8;
        }
        model.set_gains(h, &gains);
    }
}

/// Smooths, truncates and quantises the counts of a class's rows.
fn build_class(
    class: &str,
    rows: &[&LanguageRow],
    counts: &[RowCounts],
    config: &TrainConfig,
) -> Result<ClassModel, LangsError> {
    // The vocabulary of the corpus-trained rows: the external tables' hundreds of thousands of
    // rare n-grams would otherwise flatten the small rows' estimates.
    let mut vocab = [0f64; KINDS];
    for (k, v) in vocab.iter_mut().enumerate() {
        let mut all: Vec<u32> =
            counts.iter().filter(|c| !c.external).flat_map(|c| c.counts[k].keys().copied()).collect();
        all.sort_unstable();
        all.dedup();
        *v = all.len().max(1) as f64;
    }
    let alpha = config.alpha as f64;
    let max_gain = u8::MAX as f32 * GAIN_STEP;
    // Per row and kind: the kept features with their log-probabilities, and the log floor.
    let mut kept_all: Vec<Vec<Vec<(u32, f64)>>> = Vec::with_capacity(rows.len());
    let mut own_floors: Vec<[f64; KINDS]> = Vec::with_capacity(rows.len());
    for c in counts {
        let mut per_kind = Vec::with_capacity(KINDS);
        let mut f = [0.0f64; KINDS];
        for k in 0..KINDS {
            let mut kept: Vec<(u32, f64)> = c.counts[k].iter().map(|(&h, &n)| (h, n)).collect();
            kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let truncated = kept.len() > config.max_per_kind[k];
            kept.truncate(config.max_per_kind[k]);
            let mut floor_count = alpha;
            if truncated {
                let smallest = kept.last().map_or(0.0, |e| e.1);
                floor_count = floor_count.max(smallest * config.truncated_floor as f64);
            }
            if !c.keep[k].is_empty() {
                let in_kept: std::collections::HashSet<u32> = kept.iter().map(|e| e.0).collect();
                kept.extend(c.keep[k].iter().filter(|h| !in_kept.contains(h)).map(|&h| (h, c.counts[k][&h])));
            }
            let denom = c.totals[k] + alpha * vocab[k];
            f[k] = (floor_count / denom).ln();
            per_kind.push(kept.into_iter().map(|(h, n)| (h, ((n + alpha) / denom).ln())).collect());
        }
        kept_all.push(per_kind);
        own_floors.push(f);
    }
    // Word edges and words are learnt from the UDHR alone, whose size differs by language: an
    // unseen word should not favour the languages with the shortest text, so these kinds share
    // one floor per class (the median), and only known words and edges are evidence.
    let mut shared = [None; KINDS];
    for k in [KIND_EDGE, KIND_WORD] {
        let mut v: Vec<f64> = own_floors.iter().map(|f| f[k]).collect();
        v.sort_by(f64::total_cmp);
        shared[k] = v.get(v.len() / 2).copied();
    }
    let mut floors = Vec::with_capacity(rows.len());
    let mut priors = Vec::with_capacity(rows.len());
    let mut postings: HashMap<u32, Vec<(u8, u8)>> = HashMap::new();
    for (row_idx, (kept, own)) in kept_all.into_iter().zip(&own_floors).enumerate() {
        let mut f = [0.0f32; KINDS];
        for (k, features) in kept.into_iter().enumerate() {
            let floor = shared[k].unwrap_or(own[k]);
            let w = config.weights[k];
            f[k] = w * floor as f32;
            for (h, log_p) in features {
                let q = ((w * (log_p - floor) as f32).min(max_gain) / GAIN_STEP).round();
                if q >= 1.0 {
                    postings.entry(h).or_default().push((row_idx as u8, q as u8));
                }
            }
        }
        floors.push(f);
        priors.push(match (counts[row_idx].external, counts[row_idx].prior) {
            (true, true) => config.external_prior,
            (true, false) => config.transliterated_prior,
            _ => 0.0,
        });
    }
    let keys = rows.iter().map(|r| r.key()).collect();
    ClassModel::from_parts(class.to_string(), keys, priors, floors, postings.into_iter().collect())
}
