//! Chooses training settings and the softmax temperature on development data only: the even
//! lines of the lingua test files and the UDHR paragraphs with index % 5 == 3 (left out of
//! training here), never the held-out halves `evaluate` reports.
//!
//! ```text
//! cargo run -p docseek-langs --release --example tune -- /work/shared/corpus/udhr [SETTING]
//! cargo run -p docseek-langs --release --example tune -- /work/shared/corpus/udhr context
//! ```
//!
//! `context` measures, instead, how far a block's own letters count against its context
//! (`context::FULL_EVIDENCE_LETTERS`): each development paragraph decided with the other
//! development paragraphs of its file as the context prior, as `evaluate` does on held-out ones.

#[allow(dead_code)] // shared by the examples, each uses a part
#[path = "support/eval.rs"]
mod eval;
#[allow(dead_code)] // shared by the examples, each uses a part
#[path = "support/lingua.rs"]
mod lingua;

use std::path::PathBuf;

use docseek_langs::inventory::{Inventory, LanguageRow};
use docseek_langs::training::{is_held_out, read_paragraphs, train_with, TrainConfig};
use docseek_langs::{ContextPrior, LanguageDetector, Posterior, ProfileDetector};
use eval::{lines_of, ratio, short_text_set, Tally};

/// The close neighbours whose development sentences are reported per setting.
const NEIGHBOURS: [&str; 8] = ["bos", "hrv", "srp", "zlm", "ind", "nob", "nno", "dan"];

fn is_dev(i: usize) -> bool {
    i % 5 == 3
}

/// The settings tried: the default and one change at a time.
fn grid() -> Vec<(&'static str, TrainConfig)> {
    let d = TrainConfig::default();
    let mut v = vec![("default", d)];
    v.push(("prior 0", TrainConfig { external_prior: 0.0, ..d }));
    v.push(("prior 2", TrainConfig { external_prior: 2.0, ..d }));
    v.push(("prior 4", TrainConfig { external_prior: 4.0, ..d }));
    v.push(("floor 0.1", TrainConfig { truncated_floor: 0.1, ..d }));
    v.push(("floor 0.05", TrainConfig { truncated_floor: 0.05, ..d }));
    v.push(("floor 0.2", TrainConfig { truncated_floor: 0.2, ..d }));
    v.push((
        "word weight 0.6",
        TrainConfig {
            weights: {
                let mut w = d.weights;
                w[6] = 0.6;
                w
            },
            ..d
        },
    ));
    v.push(("ngram weights x1.3", TrainConfig { weights: d.weights.map(|w| w * 1.3), ..d }));
    v.push(("no markers", TrainConfig { marker_share: 0.0, marker_penalty: 0.0, ..d }));
    v.push(("marker penalty 0", TrainConfig { marker_penalty: 0.0, ..d }));
    v.push(("marker penalty 2", TrainConfig { marker_penalty: 2.0, ..d }));
    v.push(("marker penalty 8", TrainConfig { marker_penalty: 8.0, ..d }));
    v.push(("marker penalty 4", TrainConfig { marker_penalty: 4.0, ..d }));
    v.push(("udhr share 0.5", TrainConfig { udhr_share: 0.5, ..d }));
    v.push(("tokens 1e7", TrainConfig { external_tokens: 1e7, ..d }));
    v.push(("marker share 0.008", TrainConfig { marker_share: 0.008, ..d }));
    v.push(("marker share 0.002", TrainConfig { marker_share: 0.002, ..d }));
    v.push(("transliterated prior", TrainConfig { transliterated_prior: d.external_prior, ..d }));
    v
}

/// The `FULL_EVIDENCE_LETTERS` tried by `tune context` (0: a fixed floor).
const FULL_LETTERS: [usize; 8] = [0, 20, 40, 60, 80, 120, 200, 400];

/// `tune context`: per setting of the context floor, the development paragraphs decided in
/// their file's context (leave-one-out): micro accuracy and rows (distinct languages) right on
/// at least 95% of them; and decided in a foreign context (the paragraphs of the next file of the
/// same script in another language, as an English caption on a German page), where they
/// should keep their own language.
fn tune_context(det: &ProfileDetector, files: &[(&LanguageRow, Vec<String>)]) {
    println!("| full-evidence letters | micro accuracy | rows >= 95% | distinct languages | foreign context: accuracy | alone |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let posteriors: Vec<Vec<Posterior>> =
        files.iter().map(|(_, paras)| paras.iter().map(|p| det.posterior(p)).collect()).collect();
    for letters in FULL_LETTERS {
        let mut per_row: std::collections::BTreeMap<String, (Tally, &str)> = Default::default();
        for ((row, _), posts) in files.iter().zip(&posteriors) {
            let mut document = ContextPrior::new().with_full_evidence_letters(letters);
            for p in posts {
                document.add(p, 1.0);
            }
            let entry = per_row.entry(row.key()).or_insert((Tally::default(), row.code));
            for p in posts {
                let mut others = document.clone();
                others.add(p, -1.0);
                entry.0.add(row, &p.with_prior(&others).detection(), true);
            }
        }
        let (c, t) = per_row.values().fold((0, 0), |a, r| (a.0 + r.0.correct, a.1 + r.0.total));
        let good: Vec<&str> = per_row.values().filter(|r| r.0.acc() >= 0.95).map(|r| r.1).collect();
        let mut codes = good.clone();
        codes.sort_unstable();
        codes.dedup();
        let (mut foreign, mut alone) = (Tally::default(), Tally::default());
        for (i, ((row, _), posts)) in files.iter().zip(&posteriors).enumerate() {
            let other = (1..files.len())
                .map(|k| (i + k) % files.len())
                .find(|&j| files[j].0.class() == row.class() && files[j].0.code != row.code);
            let Some(j) = other else {
                continue;
            };
            let mut context = ContextPrior::new().with_full_evidence_letters(letters);
            for p in &posteriors[j] {
                context.add(p, 1.0);
            }
            for p in posts {
                foreign.add(row, &p.with_prior(&context).detection(), true);
                alone.add(row, &p.detection(), true);
            }
        }
        println!(
            "| {letters} | {:.2}% | {} | {} | {:.2}% | {:.2}% |",
            100.0 * ratio(c, t),
            good.len(),
            codes.len(),
            100.0 * foreign.acc(),
            100.0 * alone.acc()
        );
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = PathBuf::from(std::env::args().nth(1).ok_or("usage: tune CORPUS_DIR")?);
    let only: Option<String> = std::env::args().nth(2);
    let inv = Inventory::global();
    let external = lingua::external(inv)?;
    if only.as_deref() == Some("context") {
        let model = train_with(&corpus, inv, TrainConfig::default(), &|i| is_held_out(i) || is_dev(i), &external)?;
        let det = ProfileDetector::new(inv, model)?;
        let mut files = Vec::new();
        for row in inv.rows().iter().filter(|r| !r.sources.is_empty()) {
            for s in &row.sources {
                let paras = read_paragraphs(&corpus, s)?.into_iter().filter(|(i, _)| is_dev(*i)).map(|(_, p)| p);
                files.push((row, paras.collect::<Vec<String>>()));
            }
        }
        tune_context(&det, &files);
        return Ok(());
    }
    let short = short_text_set(false)?;
    let mut dev: Vec<(&LanguageRow, String)> = Vec::new();
    for row in inv.rows().iter().filter(|r| !r.sources.is_empty()) {
        for s in &row.sources {
            dev.extend(read_paragraphs(&corpus, s)?.into_iter().filter(|(i, _)| is_dev(*i)).map(|(_, p)| (row, p)));
        }
    }
    println!("| settings | T | und below | sentences | word pairs | single words | und pairs | und words | UDHR paragraphs | UDHR rows all right | UDHR lines | bytes |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let thresholds = [0.0f32, 0.1, 0.15, 0.2];
    // Per setting, sentence accuracy of the close neighbours at the default temperature.
    let mut neighbours: Vec<String> = Vec::new();
    for (name, cfg) in grid().into_iter().filter(|(n, _)| only.as_deref().is_none_or(|o| o == *n)) {
        let model = train_with(&corpus, inv, cfg, &|i| is_held_out(i) || is_dev(i), &external)?;
        let bytes = model.to_bytes().len();
        for t in [3.0f32, 4.5, 6.0] {
            let det = ProfileDetector::new(inv, model.clone())?.with_temperature(t);
            // Per threshold: per kind macro accuracy and und rate.
            let mut acc = [[0.0f64; 3]; 4];
            let mut und = [[0.0f64; 3]; 4];
            let mut close = Vec::new();
            for lang in &short {
                if t == docseek_langs::detector::TEMPERATURE && NEIGHBOURS.contains(&lang.row.code) {
                    let right = lang.lines[0].iter().filter(|l| det.detect(l).code == lang.row.code).count();
                    close.push(format!("{} {:.1}%", lang.row.key(), 100.0 * ratio(right, lang.lines[0].len())));
                    if lang.row.key() == "srp-Cyrl" {
                        let latin = lang.lines[0].iter().map(|l| lingua::serbian_to_latin(l));
                        let right = latin.filter(|l| det.detect(l).code == "srp").count();
                        close.push(format!("srp-Latn {:.1}%", 100.0 * ratio(right, lang.lines[0].len())));
                    }
                }
                for (k, lines) in lang.lines.iter().enumerate() {
                    let mut ok = [0usize; 4];
                    let mut u = [0usize; 4];
                    for l in lines {
                        let p = det.posterior(l);
                        let top = p.ranked.first().map(|&(r, q)| (r.code == lang.row.code, q * p.share));
                        for (j, &th) in thresholds.iter().enumerate() {
                            match top {
                                Some((right, q)) if q >= th && q > 0.0 => ok[j] += right as usize,
                                _ => u[j] += 1,
                            }
                        }
                    }
                    for j in 0..4 {
                        acc[j][k] += ratio(ok[j], lines.len()) / short.len() as f64;
                        und[j][k] += ratio(u[j], lines.len()) / short.len() as f64;
                    }
                }
            }
            let (mut p, mut l) = (Tally::default(), Tally::default());
            let mut rows_right: std::collections::HashMap<String, bool> = Default::default();
            for (row, para) in &dev {
                let d = det.detect(para);
                p.add(row, &d, true);
                let e = rows_right.entry(row.key()).or_insert(true);
                *e &= eval::is_correct_script(row, &d);
                for line in lines_of(para, row.class()) {
                    l.add(row, &det.detect(&line), true);
                }
            }
            let all_right = rows_right.values().filter(|v| **v).count();
            if !close.is_empty() {
                neighbours.push(format!("| {name} | {} |", close.join(" | ")));
            }
            for (j, th) in thresholds.iter().enumerate() {
                println!(
                    "| {name} | {t} | {th} | {:.2}% | {:.2}% | {:.2}% | {:.2}% | {:.2}% | {:.2}% | {all_right}/{} | {:.2}% | {bytes} |",
                    100.0 * acc[j][0],
                    100.0 * acc[j][1],
                    100.0 * acc[j][2],
                    100.0 * und[j][1],
                    100.0 * und[j][2],
                    100.0 * ratio(p.correct, p.total),
                    rows_right.len(),
                    100.0 * ratio(l.correct, l.total)
                );
            }
        }
    }
    println!("\nSentences of the close neighbours (development half, T = {}):\n", docseek_langs::detector::TEMPERATURE);
    println!("| settings | {} |", NEIGHBOURS.map(|_| "").join(" | "));
    println!("| --- |{}", " --- |".repeat(NEIGHBOURS.len() + 1));
    for n in neighbours {
        println!("{n}");
    }
    Ok(())
}
