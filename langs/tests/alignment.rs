//! The held-out paragraphs of the Serbo-Croatian corpus files are the same articles once
//! aligned (`data/alignment.tsv`): of all Croatian paragraphs, the one sharing most words with a
//! held-out Bosnian or Serbian paragraph has its aligned index.
//! Reads the UDHR corpus (`DOCSEEK_UDHR_DIR`, default `/work/shared/corpus/udhr`); without it
//! the test says so and checks nothing.

use std::collections::HashSet;
use std::path::PathBuf;

use docseek_langs::training::{is_held_out, read_paragraphs};

/// Words shared over words of either (Jaccard), below which two paragraphs are not the same
/// article.
const SAME_ARTICLE_OVERLAP: f64 = 0.3;

fn words(p: &str) -> HashSet<String> {
    p.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn overlap(a: &str, b: &str) -> f64 {
    let (a, b) = (words(a), words(b));
    a.intersection(&b).count() as f64 / a.union(&b).count().max(1) as f64
}

#[test]
fn neighbours_hold_out_the_same_articles() {
    let dir = std::env::var_os("DOCSEEK_UDHR_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/corpus/udhr"));
    if !dir.join("hrv.txt").is_file() {
        eprintln!("skipped: no UDHR corpus at {}", dir.display());
        return;
    }
    let held = |source: &str| -> Vec<(usize, String)> {
        read_paragraphs(&dir, source).unwrap().into_iter().filter(|(i, _)| is_held_out(*i)).collect()
    };
    let hrv = read_paragraphs(&dir, "hrv").unwrap();
    let mut compared = 0;
    for other in ["bos_latn", "srp_latn"] {
        for (i, text) in held(other) {
            let best = hrv.iter().max_by(|a, b| overlap(&a.1, &text).total_cmp(&overlap(&b.1, &text))).unwrap();
            if i > hrv.last().unwrap().0 {
                continue;
            }
            compared += 1;
            assert_eq!(best.0, i, "{other} paragraph {i} {text:?} matches hrv {best:?}");
        }
    }
    assert!(compared >= 8, "{compared} paragraphs compared");
    // The raw line numbers pair different articles (the alignment matters).
    let raw_hrv: Vec<String> =
        std::fs::read_to_string(dir.join("hrv.txt")).unwrap().lines().map(String::from).collect();
    let raw_bos: Vec<String> =
        std::fs::read_to_string(dir.join("bos_latn.txt")).unwrap().lines().map(String::from).collect();
    assert!(overlap(&raw_hrv[14], &raw_bos[14]) < SAME_ARTICLE_OVERLAP, "{} / {}", raw_hrv[14], raw_bos[14]);
}
