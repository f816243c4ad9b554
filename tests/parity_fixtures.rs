//! Golden parity on the shared fixtures (`../shared/fixtures` next to the repository, or
//! `DOCSEEK_FIXTURES`): every check `docseek parity` runs must pass. Fails loudly when the
//! fixtures are missing.

use std::path::PathBuf;

use docseek::parity::{runner, ParityOptions};

fn fixtures_root() -> PathBuf {
    let root = match std::env::var_os("DOCSEEK_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"),
    };
    assert!(
        root.is_dir(),
        "parity fixtures not found at {} (clone the repo next to shared/, or set DOCSEEK_FIXTURES)",
        root.display()
    );
    root
}

fn run_fixture(name: &str) {
    let dir = fixtures_root().join(name);
    assert!(dir.is_dir(), "fixture folder {} is missing", dir.display());
    let report = runner::run(&dir, &ParityOptions::default()).expect("parity run");
    println!("{}", report.summary());
    let failed: Vec<String> = report.checks.iter().filter(|c| !c.passed).map(|c| c.to_string()).collect();
    assert!(failed.is_empty(), "{} parity checks failed:\n{}", failed.len(), failed.join("\n"));
    // Views, slot counts, stage tensors of 5 modes and the aux tables: far more than a handful.
    assert!(report.passed() >= 20, "only {} checks ran", report.passed());
}

#[test]
fn ocr1_tiny_parity() {
    run_fixture("ocr1-tiny");
}

#[test]
fn ocr2_tiny_parity() {
    run_fixture("ocr2-tiny");
}
