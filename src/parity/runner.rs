//! Walks a parity root (one fixture folder or a parent of several), runs every check each
//! fixture supports and reports tensors nobody compared.
//!
//! Hook for other components: a check function with the [`ComponentChecks`] signature, listed in
//! [`COMPONENT_CHECKS`], runs on every fixture after the vision checks and returns the names of
//! the expected tensors it compared (e.g. the decoder's `src/parity/decoder.rs`:
//! `decoder::run_checks`, for `*.prefill_logits`, `*.greedy_logits`, greedy ids, ...).

use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Result};

use super::fixture::{discover, Fixture, FixtureKind};
use super::{vision, Check, ParityOptions, Report};

/// Checks contributed by another component: run on `fixture`, push one [`Check`] per comparison
/// into `report`, return the `expected.safetensors` names compared. Must ignore fixtures it has
/// nothing to check in (return an empty set).
pub type ComponentChecks = fn(&Fixture, &ParityOptions, &mut Report) -> Result<HashSet<String>>;

/// Checks of components other than the vision encoder, run on every fixture.
pub const COMPONENT_CHECKS: &[(&str, ComponentChecks)] = &[("decoder", super::decoder::run_checks)];

/// Runs every check of every fixture under `root`, printing one line per check.
pub fn run(root: &Path, opts: &ParityOptions) -> Result<Report> {
    if !root.is_dir() {
        bail!("parity fixtures not found: {} is not a directory", root.display());
    }
    let dirs = discover(root)?;
    if dirs.is_empty() {
        bail!("no fixture folders (config.json + expected.safetensors) under {}", root.display());
    }
    let mut report = Report::default();
    for dir in dirs {
        let name = dir.strip_prefix(root.parent().unwrap_or(root)).unwrap_or(&dir).to_string_lossy().into_owned();
        let fx = match Fixture::load(&dir, name.clone()) {
            Ok(f) => f,
            Err(e) => {
                report.push(Check { name: format!("{name}/load"), passed: false, detail: format!("{e:#}") });
                continue;
            }
        };
        let mut seen = HashSet::new();
        if fx.kind() == FixtureKind::Ocr {
            match vision::run_checks(&fx, opts, &mut report) {
                Ok(s) => seen.extend(s),
                Err(e) => {
                    report.push(Check { name: format!("{name}/vision"), passed: false, detail: format!("{e:#}") })
                }
            }
        }
        for (component, checks) in COMPONENT_CHECKS {
            match checks(&fx, opts, &mut report) {
                Ok(s) => seen.extend(s),
                Err(e) => {
                    report.push(Check { name: format!("{name}/{component}"), passed: false, detail: format!("{e:#}") })
                }
            }
        }
        let mut unchecked: Vec<&String> = fx.expected.keys().filter(|k| !seen.contains(*k)).collect();
        unchecked.sort();
        if !unchecked.is_empty() {
            let list: Vec<&str> = unchecked.iter().map(|s| s.as_str()).collect();
            println!("note {name}: {} expected tensors not compared by this build: {}", list.len(), list.join(", "));
        }
    }
    Ok(report)
}
