//! Marker words of close neighbours (`data/markers.tsv`): frequent words and spellings that
//! tell languages with near-identical character statistics apart (Croatian `tko`/`tisuća`,
//! Bosnian `historija`/`hljeb`, Serbian ekavian `vreme`/`mleko`; Malay `kerana`/`sahaja`,
//! Indonesian `karena`/`saja`; Bokmål `ikke`/`hva`, Nynorsk `ikkje`/`kva`, Danish `hvad`/`meget`).
//! Training counts them as frequent words of their rows, beside the UDHR text, whose few
//! hundred distinct words rarely include them.

use std::collections::HashMap;
use std::sync::OnceLock;

/// The bundled marker table.
const MARKERS_TSV: &str = include_str!("../data/markers.tsv");

/// The marker words by row key (`code-Script`), lower case, each once per row.
pub fn markers() -> &'static HashMap<&'static str, Vec<&'static str>> {
    static MARKERS: OnceLock<HashMap<&'static str, Vec<&'static str>>> = OnceLock::new();
    MARKERS.get_or_init(|| parse(MARKERS_TSV))
}

/// The weight of each marker word written `word:weight` (a word that also appears in the other
/// rows of its group, only more often in its own: `sa` in Bosnian and Serbian, `će` in Croatian);
/// 1 for the others. Training scales the word's share and penalty by it.
pub fn weights() -> &'static HashMap<&'static str, f32> {
    static WEIGHTS: OnceLock<HashMap<&'static str, f32>> = OnceLock::new();
    WEIGHTS.get_or_init(|| parse_weights(MARKERS_TSV))
}

/// The weight of a marker word (see [`weights`]).
pub fn weight(word: &str) -> f32 {
    weights().get(word).copied().unwrap_or(1.0)
}

/// The `word:weight` entries of a marker table.
pub fn parse_weights(tsv: &str) -> HashMap<&str, f32> {
    let mut out = HashMap::new();
    for line in tsv.lines().filter(|l| !l.starts_with(['#', '=']) && !l.trim().is_empty()) {
        let Some((_, words)) = line.split_once('\t') else {
            continue;
        };
        for (w, weight) in words.split_whitespace().filter_map(|w| w.split_once(':')) {
            if let Ok(x) = weight.parse::<f32>() {
                out.entry(w).or_insert(x);
            }
        }
    }
    out
}

/// The marker groups (`=group` lines): rows whose markers speak against each other.
pub fn groups() -> &'static [Vec<&'static str>] {
    static GROUPS: OnceLock<Vec<Vec<&'static str>>> = OnceLock::new();
    GROUPS.get_or_init(|| parse_groups(MARKERS_TSV))
}

/// The `=group<TAB>rows` lines of a marker table.
pub fn parse_groups(tsv: &str) -> Vec<Vec<&str>> {
    tsv.lines().filter_map(|l| l.strip_prefix(GROUP_TAG)).map(|rows| rows.split_whitespace().collect()).collect()
}

/// Line tag of a group.
const GROUP_TAG: &str = "=group\t";

/// For a class with rows `keys`: each marker word of a group in it, with the rows it speaks
/// against (the group's rows that do not list it), as a flag per row of `keys`.
pub fn group_words(keys: &[String]) -> Vec<(&'static str, Vec<bool>)> {
    let mut out: Vec<(&'static str, Vec<bool>)> = Vec::new();
    for group in groups() {
        let members: Vec<usize> = group.iter().filter_map(|g| keys.iter().position(|k| k == g)).collect();
        if members.len() < 2 {
            continue;
        }
        let mut words: Vec<&'static str> =
            members.iter().flat_map(|&m| markers().get(keys[m].as_str()).into_iter().flatten().copied()).collect();
        words.sort_unstable();
        words.dedup();
        for w in words {
            let mut against = vec![false; keys.len()];
            for &m in &members {
                against[m] = !markers().get(keys[m].as_str()).is_some_and(|l| l.contains(&w));
            }
            out.push((w, against));
        }
    }
    out
}

/// Parses a marker table: `row<TAB>words` lines (a word may carry a `:weight`, left out here),
/// `#` comments, `=group` lines skipped.
pub fn parse(tsv: &str) -> HashMap<&str, Vec<&str>> {
    let mut out: HashMap<&str, Vec<&str>> = HashMap::new();
    for line in tsv.lines().filter(|l| !l.starts_with(['#', '=']) && !l.trim().is_empty()) {
        let Some((row, words)) = line.split_once('\t') else {
            continue;
        };
        let list = out.entry(row.trim()).or_default();
        for w in words.split_whitespace().map(|w| w.split_once(':').map_or(w, |(w, _)| w)) {
            if !list.contains(&w) {
                list.push(w);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;
    use crate::ngram::is_word_char;

    #[test]
    fn every_marker_row_exists_and_its_words_are_lower_case_words_of_its_script() {
        let inv = Inventory::global();
        assert!(markers().len() >= 10);
        for (key, words) in markers() {
            let row = inv.by_key(key).unwrap_or_else(|| panic!("{key} not in the inventory"));
            for w in words {
                assert!(w.chars().all(|c| is_word_char(c, row.class())), "{key}: {w}");
                assert_eq!(*w, w.to_lowercase(), "{key}: {w}");
            }
        }
        assert!(markers()["hrv-Latn"].contains(&"tko"));
        assert!(markers()["srp-Cyrl"].contains(&"млеко"));
        for g in groups() {
            assert!(g.len() >= 2 && g.iter().all(|k| markers().contains_key(k)), "{g:?}");
        }
    }

    #[test]
    fn a_marker_word_speaks_against_the_group_rows_that_do_not_list_it() {
        let keys: Vec<String> = ["hrv-Latn", "eng-Latn", "bos-Latn", "srp-Latn"].map(String::from).to_vec();
        let words = group_words(&keys);
        let against = |w: &str| words.iter().find(|e| e.0 == w).map(|e| e.1.clone());
        assert_eq!(against("tko"), Some(vec![false, false, true, true]));
        assert_eq!(against("vrijeme"), Some(vec![false, false, false, true]));
        assert_eq!(against("vreme"), Some(vec![true, false, true, false]));
        assert_eq!(against("the"), None);
    }

    #[test]
    fn weighted_words_keep_their_word_and_weight() {
        let tsv = "xxx-Latn\ta sa:0.25 b\nyyy-Latn\tsa:0.25\n";
        assert_eq!(parse(tsv)["xxx-Latn"], ["a", "sa", "b"]);
        assert_eq!(parse_weights(tsv).get("sa"), Some(&0.25));
        assert_eq!(parse_weights(tsv).get("a"), None);
        assert!(weight("sa") < 1.0 && weight("tko") == 1.0);
        assert!(markers()["bos-Latn"].contains(&"sa"));
    }

    #[test]
    fn lines_of_a_row_join_without_repeats() {
        let m = parse("# c\nxxx-Latn\ta b\nxxx-Latn\tb c\n");
        assert_eq!(m["xxx-Latn"], ["a", "b", "c"]);
    }
}
