//! Picks training settings on a development split carved out of the training paragraphs
//! (index % 5 == 3), never looking at the held-out evaluation paragraphs (index % 5 == 4).
//!
//! ```text
//! cargo run -p docseek-langs --release --example tune -- /work/shared/corpus/udhr
//! ```

use std::path::PathBuf;

use docseek_langs::inventory::Inventory;
use docseek_langs::training::{is_held_out, read_paragraphs, train_excluding, TrainConfig};
use docseek_langs::{LanguageDetector, ProfileDetector};

/// Characters per simulated line.
const LINE_CHARS: usize = 60;

fn is_dev(i: usize) -> bool {
    i % 5 == 3
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = PathBuf::from(std::env::args().nth(1).ok_or("usage: tune CORPUS_DIR")?);
    let inv = Inventory::global();
    let mut dev = Vec::new();
    for row in inv.rows().iter().filter(|r| !r.sources.is_empty()) {
        for s in &row.sources {
            for (_, p) in read_paragraphs(&corpus, s)?.into_iter().filter(|(i, _)| is_dev(*i)) {
                dev.push((row, p));
            }
        }
    }
    let grid = [TrainConfig::default()];
    println!("| alpha | min_count | max_per_row | bytes | dev paragraphs | dev lines |\n| --- | --- | --- | --- | --- | --- |");
    for cfg in grid {
        let model = train_excluding(&corpus, inv, cfg, &|i| is_held_out(i) || is_dev(i))?;
        let bytes = model.to_bytes().len();
        let base = ProfileDetector::new(inv, model)?;
        let mut det = base;
        for t in [4.0f32, 6.0, 8.0, 12.0] {
        det = det.with_temperature(t);
        let mut calib: Vec<(f32, bool)> = Vec::new();
        let (mut p_ok, mut l_ok, mut l_n) = (0usize, 0usize, 0usize);
        for (row, p) in &dev {
            let ok = |d: &docseek_langs::Detection| d.code == row.code && (row.class() != "Hani" || d.script == row.script);
            p_ok += ok(&det.detect(p)) as usize;
            let chars: Vec<char> = p.chars().collect();
            for chunk in chars.chunks(LINE_CHARS) {
                let line: String = chunk.iter().collect();
                l_n += 1;
                let d = det.detect(&line);
                l_ok += ok(&d) as usize;
                if d.is_determined() {
                    calib.push((d.confidence, ok(&d)));
                }
            }
        }
        println!(
            "| {} | {} | {} | {} | {:.2}% | {:.2}% |",
            cfg.alpha,
            cfg.min_count,
            cfg.max_per_row,
            bytes,
            100.0 * p_ok as f64 / dev.len() as f64,
            100.0 * l_ok as f64 / l_n as f64
        );
        let mut bins = String::new();
        for (lo, hi) in [(0.5, 0.7), (0.7, 0.9), (0.9, 0.99), (0.99, 1.01)] {
            let bin: Vec<_> = calib.iter().filter(|(c, _)| *c >= lo && *c < hi).collect();
            let okn = bin.iter().filter(|(_, o)| *o).count();
            bins += &format!(" [{lo},{hi}): {} lines {:.1}%;", bin.len(), 100.0 * okn as f64 / bin.len().max(1) as f64);
        }
        println!("temperature {t}:{bins}");
        }
    }
    Ok(())
}
