//! Detection throughput on one thread on the UDHR texts beside whatlang alone (same run), per
//! paragraph and per sentence.
//!
//! ```text
//! cargo run -p docseek-langs --release --example throughput -- /work/shared/corpus/udhr
//! ```

use std::path::PathBuf;
use std::time::Duration;

use docseek_langs::inventory::Inventory;
use docseek_langs::throughput::{compare, sentences_of};
use docseek_langs::training::read_paragraphs;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let corpus = PathBuf::from(std::env::args().nth(1).ok_or("usage: throughput CORPUS_DIR")?);
    let mut texts = Vec::new();
    for row in Inventory::global().rows() {
        for s in &row.sources {
            texts.extend(read_paragraphs(&corpus, s)?.into_iter().map(|(_, p)| p));
        }
    }
    let sentences: Vec<String> = texts.iter().flat_map(|p| sentences_of(p)).collect();
    for (unit, texts) in [("paragraph", &texts), ("sentence", &sentences)] {
        let bytes: usize = texts.iter().map(String::len).sum();
        println!("{} {unit}s, {:.2} MB", texts.len(), bytes as f64 / 1e6);
        let r = compare(texts, Duration::from_secs(2));
        for t in &r {
            println!("{:<24} {:>8.2} MB/s {:>10.0} {unit}s/s", t.name, t.mb_per_s, t.texts_per_s);
        }
        println!("ratio detect/whatlang: {:.2}", r[0].mb_per_s / r[2].mb_per_s);
    }
    Ok(())
}
