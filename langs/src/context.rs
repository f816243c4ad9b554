//! Context as a prior: the languages of the text around a block (its page, its document) make
//! a prior over the candidates of a short block, so a one-word cell of a German table is German
//! unless the word itself says otherwise.
//!
//! A [`ContextPrior`] accumulates the [`Posterior`]s of the surrounding blocks, each weighted by
//! its evidence (letters). Applied to a block ([`Posterior::with_prior`]), a candidate's
//! probability is multiplied by [`ContextPrior::weight`]: the context's probability of that
//! language within the block's script class plus [`PRIOR_FLOOR`]. The floor bounds what the
//! context can do (at most a factor `(1 + floor) / floor` between two candidates), so clear
//! evidence in the block still wins: an English caption stays English on a German page. A
//! context with nothing in the block's script class leaves the block as it is (a Chinese
//! title on that page).

use crate::detector::Posterior;
use crate::inventory::LanguageRow;

/// Added to the context's probability of every candidate (see the module docs).
pub const PRIOR_FLOOR: f32 = 0.05;
/// Most letters a block counts with as context (a long paragraph should not drown the rest).
pub const MAX_CONTEXT_LETTERS: usize = 400;

/// A prior over languages from surrounding text; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct ContextPrior {
    /// (class, code, script) -> accumulated mass.
    mass: Vec<(&'static str, &'static str, &'static str, f32)>,
}

impl ContextPrior {
    /// An empty prior (changes nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// The weight a block of this posterior counts with.
    pub fn evidence(posterior: &Posterior) -> f32 {
        posterior.letters.min(MAX_CONTEXT_LETTERS) as f32 * posterior.share
    }

    /// Adds a block's candidates, `scale` times its evidence (negative to take it out again).
    pub fn add(&mut self, posterior: &Posterior, scale: f32) {
        let w = Self::evidence(posterior) * scale;
        for &(row, p) in &posterior.ranked {
            self.add_mass(posterior.class, row.code, row.script, w * p);
        }
    }

    /// Adds another prior, normalised per class, times `scale`.
    pub fn add_prior(&mut self, other: &ContextPrior, scale: f32) {
        for &(class, code, script, m) in &other.mass {
            let total = other.class_total(class);
            if total > 0.0 {
                self.add_mass(class, code, script, scale * m / total);
            }
        }
    }

    fn add_mass(&mut self, class: &'static str, code: &'static str, script: &'static str, m: f32) {
        match self.mass.iter_mut().find(|e| e.1 == code && e.2 == script) {
            Some(e) => e.3 += m,
            None => self.mass.push((class, code, script, m)),
        }
    }

    fn class_total(&self, class: &str) -> f32 {
        self.mass.iter().filter(|e| e.0 == class).map(|e| e.3.max(0.0)).sum()
    }

    /// True when the context has text in `class`.
    pub fn covers(&self, class: &str) -> bool {
        self.class_total(class) > 1e-6
    }

    /// The context's probability of a row within its class (0 when the class is not covered).
    pub fn probability(&self, class: &str, row: &LanguageRow) -> f32 {
        let total = self.class_total(class);
        if total <= 1e-6 {
            return 0.0;
        }
        let m = self.mass.iter().find(|e| e.1 == row.code && e.2 == row.script).map_or(0.0, |e| e.3.max(0.0));
        m / total
    }

    /// The factor a candidate row's probability is multiplied by.
    pub fn weight(&self, class: &str, row: &LanguageRow) -> f32 {
        self.probability(class, row) + PRIOR_FLOOR
    }

    /// The most probable language of a class in the context, with its probability.
    pub fn top(&self, class: &str) -> Option<(&'static str, &'static str, f32)> {
        let total = self.class_total(class);
        self.mass
            .iter()
            .filter(|e| e.0 == class && total > 0.0)
            .max_by(|a, b| a.3.total_cmp(&b.3))
            .map(|e| (e.1, e.2, e.3 / total))
    }
}
