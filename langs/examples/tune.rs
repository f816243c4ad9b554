//! Chooses training settings and the softmax temperature on development data only: the even
//! lines of the lingua test files and the UDHR paragraphs with index % 5 == 3 (left out of
//! training here), never the held-out halves `evaluate` reports.
//!
//! ```text
//! cargo run -p docseek-langs --release --example tune -- /work/shared/corpus/udhr
//! ```

#[allow(dead_code)] // shared by the examples, each uses a part
#[path = "support/eval.rs"]
mod eval;
#[allow(dead_code)] // shared by the examples, each uses a part
#[path = "support/lingua.rs"]
mod lingua;

use std::path::PathBuf;

use docseek_langs::inventory::{Inventory, LanguageRow};
use docseek_langs::training::{is_held_out, read_paragraphs, train_with, TrainConfig};
use docseek_langs::{LanguageDetector, ProfileDetector};
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
    v
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = PathBuf::from(std::env::args().nth(1).ok_or("usage: tune CORPUS_DIR")?);
    let only: Option<String> = std::env::args().nth(2);
    let inv = Inventory::global();
    let external = lingua::external(inv)?;
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
                    close.push(format!("{} {:.1}%", lang.row.code, 100.0 * ratio(right, lang.lines[0].len())));
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
    println!("| --- |{}", " --- |".repeat(NEIGHBOURS.len()));
    for n in neighbours {
        println!("{n}");
    }
    Ok(())
}
