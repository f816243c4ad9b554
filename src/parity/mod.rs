//! Parity against golden fixtures of the official reference implementation (the public set
//! vendored in `tests/fixtures/`, see its README): every stage tensor, logits and greedy ids.
//!
//! This module holds the bookkeeping (checks, tolerances, the report); the fixture-specific
//! runners live beside it: `fixture` (loading, discovery), `vision` (encoder checks), `runner`
//! (walks a folder, runs every check a fixture supports, including other components' checks
//! registered in `runner::COMPONENT_CHECKS`).

use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::DType;

pub mod decoder;
pub mod fixture;
pub mod runner;
pub mod vision;

/// Where the fixture set vendored in the repository lives: `tests/fixtures` below the current
/// folder when there is one (a checkout), else in the source tree this binary was built from.
pub fn default_fixtures_dir() -> PathBuf {
    let local = Path::new(FIXTURES_DIR);
    if local.is_dir() {
        local.to_path_buf()
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURES_DIR)
    }
}

/// The vendored fixture folder, relative to the repository root.
pub const FIXTURES_DIR: &str = "tests/fixtures";

/// How `docseek parity` runs the models.
#[derive(Debug, Clone)]
pub struct ParityOptions {
    /// Weight and activation dtype (F32 for real parity, BF16 for a sanity check).
    pub dtype: DType,
    /// Where the models run (the fixtures' expected tensors stay on the CPU).
    pub device: candle_core::Device,
    /// How the decoder's linear weights are stored; quantized runs bind the greedy ids and
    /// report the logits.
    pub quant: docseek_kernels::linear::Quant,
}

impl Default for ParityOptions {
    fn default() -> Self {
        Self { dtype: DType::F32, device: candle_core::Device::Cpu, quant: docseek_kernels::linear::Quant::None }
    }
}

impl ParityOptions {
    /// Relative tolerance for this dtype.
    pub fn tolerance(&self) -> f32 {
        match self.dtype {
            DType::F32 | DType::F64 => REL_TOL_F32,
            _ => REL_TOL_BF16,
        }
    }
}

/// Relative tolerance for float32 implementations: `max|got - want| <= REL_TOL_F32 * max|want|`.
pub const REL_TOL_F32: f32 = 1e-4;
/// Looser relative tolerance for bf16 sanity checks (the fixture README's ~2e-2).
pub const REL_TOL_BF16: f32 = 2e-2;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// What was compared, e.g. `ocr1-tiny/base/sam.global`.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Human detail: errors, or the first mismatch.
    pub detail: String,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = if self.passed { "PASS" } else { "FAIL" };
        write!(f, "{tag} {} {}", self.name, self.detail)
    }
}

/// Compares two float buffers of the same shape: max abs error against `rel_tol * max|want|`.
pub fn compare_floats(name: &str, got: &[f32], want: &[f32], rel_tol: f32) -> Check {
    if got.len() != want.len() {
        return Check {
            name: name.to_string(),
            passed: false,
            detail: format!("size mismatch: got {} values, want {}", got.len(), want.len()),
        };
    }
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let mut max_abs = 0f32;
    let mut finite = true;
    for (g, w) in got.iter().zip(want) {
        if !g.is_finite() {
            finite = false;
        }
        max_abs = max_abs.max((g - w).abs());
    }
    let rel = if scale > 0.0 { max_abs / scale } else { max_abs };
    Check {
        name: name.to_string(),
        passed: finite && rel <= rel_tol,
        detail: format!("max_abs={max_abs:.3e} rel={rel:.3e} (tol {rel_tol:.0e})"),
    }
}

/// Compares two id sequences exactly.
pub fn compare_ids(name: &str, got: &[u32], want: &[u32]) -> Check {
    let first = got.iter().zip(want).position(|(g, w)| g != w);
    let passed = got.len() == want.len() && first.is_none();
    let detail = match first {
        _ if passed => format!("{} ids identical", want.len()),
        Some(i) => format!("first mismatch at {i}: got {} want {}", got[i], want[i]),
        None => format!("length mismatch: got {} want {}", got.len(), want.len()),
    };
    Check { name: name.to_string(), passed, detail }
}

/// A list of checks with the closing `N passed, M failed` line.
#[derive(Debug, Default)]
pub struct Report {
    /// Checks in the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// Records a check and prints its line.
    pub fn push(&mut self, check: Check) {
        println!("{check}");
        self.checks.push(check);
    }

    /// Number of passed checks.
    pub fn passed(&self) -> usize {
        self.checks.iter().filter(|c| c.passed).count()
    }

    /// Number of failed checks.
    pub fn failed(&self) -> usize {
        self.checks.len() - self.passed()
    }

    /// The closing line, e.g. `parity: 12 passed, 0 failed`.
    pub fn summary(&self) -> String {
        format!("parity: {} passed, {} failed", self.passed(), self.failed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_and_id_checks() {
        assert!(compare_floats("a", &[1.0, 2.0], &[1.0, 2.0001], 1e-4).passed);
        assert!(!compare_floats("a", &[1.0, 2.1], &[1.0, 2.0], 1e-4).passed);
        assert!(!compare_floats("a", &[f32::NAN], &[1.0], 1e-4).passed);
        assert!(!compare_floats("a", &[1.0], &[1.0, 2.0], 1e-4).passed);
        assert!(compare_ids("i", &[1, 2, 3], &[1, 2, 3]).passed);
        let c = compare_ids("i", &[1, 5, 3], &[1, 2, 3]);
        assert!(!c.passed && c.detail.contains("at 1"));
        assert!(!compare_ids("i", &[1, 2], &[1, 2, 3]).passed);
    }
}
