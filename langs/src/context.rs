//! Context as a prior: the languages of the text around a block (its page, its document) make
//! a prior over the candidates of a short block, so a one-word cell of a German table is German
//! unless the word itself says otherwise.
//!
//! A [`ContextPrior`] accumulates the [`Posterior`]s of the surrounding blocks, each weighted by
//! its evidence (letters). Applied to a block ([`Posterior::with_prior`]), a candidate's
//! probability is multiplied by [`ContextPrior::weight`]: the context's probability of that
//! language within the block's script class plus a floor. The floor bounds what the context
//! can do (at most a factor `(1 + floor) / floor` between two candidates), so clear evidence in
//! the block still wins: an English caption stays English on a German page. The floor is
//! [`PRIOR_FLOOR`] for a block of [`FULL_EVIDENCE_LETTERS`] letters or more and shrinks in
//! proportion below that, down to [`MIN_PRIOR_FLOOR`]: a heading of one or two words
//! ("Proclama", "AÐALFUNDURIN") reads the same in several languages, and even a word the
//! model knows from one neighbour only is weak evidence next to a page of text. A context with
//! nothing in the block's script class leaves the block as it is (a Chinese title on that
//! page).

use crate::detector::Posterior;
use crate::inventory::LanguageRow;

/// Added to the context's probability of every candidate of a block with at least
/// [`FULL_EVIDENCE_LETTERS`] letters (see the module docs).
pub const PRIOR_FLOOR: f32 = 0.05;
/// Letters from which a block's own evidence counts in full against its context: the floor
/// is `PRIOR_FLOOR * letters / FULL_EVIDENCE_LETTERS` below this. Chosen on development data
/// (`examples/tune.rs context`: UDHR paragraphs with index % 5 == 3, decided by a model trained
/// without them, with the other paragraphs of their file as the context, and with another
/// language's as a foreign context): from 20 to 200 letters, rows right in context rise (196 to
/// 204) and right answers in a foreign context stay as with 40 (94.2% against 94.4% with a
/// fixed floor); at 400 the foreign context starts to win.
pub const FULL_EVIDENCE_LETTERS: usize = 200;
/// The smallest floor (a block of one or two letters).
pub const MIN_PRIOR_FLOOR: f32 = 0.001;
/// Most letters a block counts with as context (a long paragraph should not drown the rest).
pub const MAX_CONTEXT_LETTERS: usize = 400;

/// A prior over languages from surrounding text; see the module docs.
#[derive(Debug, Clone)]
pub struct ContextPrior {
    /// (class, code, script) -> accumulated mass.
    mass: Vec<(&'static str, &'static str, &'static str, f32)>,
    /// Letters from which the floor is [`PRIOR_FLOOR`] (see [`FULL_EVIDENCE_LETTERS`]).
    full_letters: usize,
}

impl Default for ContextPrior {
    fn default() -> Self {
        Self { mass: Vec::new(), full_letters: FULL_EVIDENCE_LETTERS }
    }
}

impl ContextPrior {
    /// An empty prior (changes nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// The same prior with another [`FULL_EVIDENCE_LETTERS`] (0: the floor is always
    /// [`PRIOR_FLOOR`]); for tuning.
    pub fn with_full_evidence_letters(mut self, letters: usize) -> Self {
        self.full_letters = letters;
        self
    }

    /// The floor added to the context's probability of each candidate of a block with
    /// `letters` letters of its class.
    pub fn floor(&self, letters: usize) -> f32 {
        if letters >= self.full_letters {
            return PRIOR_FLOOR;
        }
        (PRIOR_FLOOR * letters as f32 / self.full_letters as f32).max(MIN_PRIOR_FLOOR)
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

    /// Adds another prior, normalised per class, times `scale` (this prior keeps its own
    /// [`ContextPrior::floor`]).
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

    /// The factor a candidate row's probability is multiplied by, in a block with `letters`
    /// letters of its class.
    pub fn weight(&self, class: &str, row: &LanguageRow, letters: usize) -> f32 {
        self.probability(class, row) + self.floor(letters)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::ProfileDetector;

    fn context_of(texts: &[&str]) -> ContextPrior {
        let mut prior = ContextPrior::new();
        for t in texts {
            prior.add(&ProfileDetector::global().posterior(t), 1.0);
        }
        prior
    }

    #[test]
    fn the_floor_shrinks_with_the_blocks_letters() {
        let prior = ContextPrior::new();
        assert_eq!(prior.floor(FULL_EVIDENCE_LETTERS), PRIOR_FLOOR);
        assert_eq!(prior.floor(10 * FULL_EVIDENCE_LETTERS), PRIOR_FLOOR);
        assert!((prior.floor(FULL_EVIDENCE_LETTERS / 2) - PRIOR_FLOOR / 2.0).abs() < 1e-6);
        assert_eq!(prior.floor(0), MIN_PRIOR_FLOOR);
        assert_eq!(ContextPrior::new().with_full_evidence_letters(0).floor(3), PRIOR_FLOOR);
    }

    #[test]
    fn a_short_heading_takes_its_context_and_a_clear_sentence_keeps_its_language() {
        let det = ProfileDetector::global();
        let german = context_of(&[
            "Die Tabelle zeigt den Umsatz und den Gewinn aller Standorte im vergangenen Jahr.",
            "Die Zahlen wurden von der Buchhaltung geprüft und im Bericht zusammengefasst.",
        ]);
        for word in ["Anhang", "Daten", "Gesamt"] {
            let d = det.posterior(word).with_prior(&german).detection();
            assert_eq!(d.code, "deu", "{word}: {d:?}");
        }
        let caption = "Table 2: Revenue and profit by location over the last year.";
        assert_eq!(det.posterior(caption).with_prior(&german).detection().code, "eng");
        // A one-word heading that several Romance languages share goes with its page.
        let italian = context_of(&[
            "Tutti gli esseri umani nascono liberi ed eguali in dignità e diritti.",
            "Ogni individuo ha diritto alla vita, alla libertà ed alla sicurezza della sua persona.",
        ]);
        assert_eq!(det.posterior("proclama").with_prior(&italian).detection().code, "ita");
    }
}
