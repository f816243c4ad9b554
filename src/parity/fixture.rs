//! One golden fixture folder (`config.json`, `model.safetensors`, `expected.safetensors`,
//! `expected.json`, optional `input/` and `views/`), and the discovery of fixture folders
//! under a directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use serde_json::Value;

/// What kind of model a fixture holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixtureKind {
    /// A full OCR model (vision encoder + decoder), DeepSeek-OCR or DeepSeek-OCR-2.
    Ocr,
    /// A decoder only (e.g. `mla-tiny`).
    DecoderOnly,
}

/// A loaded fixture folder.
pub struct Fixture {
    /// The folder.
    pub dir: PathBuf,
    /// Name used in check lines (folder path relative to the parity root).
    pub name: String,
    /// `config.json` text.
    pub config_text: String,
    /// Parsed `config.json`.
    pub config: Value,
    /// Parsed `expected.json` (`Null` when absent).
    pub expected_json: Value,
    /// `expected.safetensors`, as f32 CPU tensors.
    pub expected: HashMap<String, Tensor>,
}

impl Fixture {
    /// Whether `dir` looks like a fixture folder.
    pub fn is_fixture_dir(dir: &Path) -> bool {
        dir.join("config.json").is_file() && dir.join("expected.safetensors").is_file()
    }

    /// Loads the fixture in `dir`, naming it `name`.
    pub fn load(dir: &Path, name: String) -> Result<Self> {
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .with_context(|| format!("reading {}", dir.join("config.json").display()))?;
        let config: Value = serde_json::from_str(&config_text).context("config.json is not JSON")?;
        let ej = dir.join("expected.json");
        let expected_json = if ej.is_file() {
            serde_json::from_str(&std::fs::read_to_string(&ej)?).context("expected.json is not JSON")?
        } else {
            Value::Null
        };
        let expected = candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu)
            .with_context(|| format!("reading {}", dir.join("expected.safetensors").display()))?
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
            .collect::<Result<HashMap<_, _>>>()?;
        Ok(Self { dir: dir.to_path_buf(), name, config_text, config, expected_json, expected })
    }

    /// The model kind, from `config.json` (`vision_config` present → OCR).
    pub fn kind(&self) -> FixtureKind {
        if self.config.get("vision_config").is_some() {
            FixtureKind::Ocr
        } else {
            FixtureKind::DecoderOnly
        }
    }

    /// Path of the weights.
    pub fn weights(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }

    /// An expected tensor's values, flattened.
    pub fn expected_f32(&self, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        let t = self.expected.get(name)?;
        Some((t.dims().to_vec(), t.flatten_all().ok()?.to_vec1().ok()?))
    }
}

/// Fixture folders at or below `root` (the root itself, or any descendant), sorted by path.
pub fn discover(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if Fixture::is_fixture_dir(&dir) {
            found.push(dir.clone());
        }
        let entries = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for e in entries {
            let p = e?.path();
            // input/ and views/ hold images, never fixtures.
            if p.is_dir() && !matches!(p.file_name().and_then(|n| n.to_str()), Some("input" | "views")) {
                stack.push(p);
            }
        }
    }
    found.sort();
    Ok(found)
}
