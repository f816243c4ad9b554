//! Builds `langs/data/profiles.bin` from the UDHR corpus, holding out every 5th paragraph.
//!
//! ```text
//! cargo run -p docseek-langs --release --example build-profiles -- /work/shared/corpus/udhr [OUT]
//! ```

use std::path::PathBuf;

use docseek_langs::inventory::Inventory;
use docseek_langs::training::{train, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let corpus = PathBuf::from(args.next().ok_or("usage: build-profiles CORPUS_DIR [OUT]")?);
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/profiles.bin"));
    let model = train(&corpus, Inventory::global(), TrainConfig::default())?;
    let bytes = model.to_bytes();
    std::fs::write(&out, &bytes)?;
    for m in &model.classes {
        eprintln!("{:>5}: {:>3} languages, {:>7} n-grams", m.class, m.rows.len(), m.ngram_count());
    }
    eprintln!("wrote {} ({} bytes)", out.display(), bytes.len());
    Ok(())
}
