//! Resolution modes of DeepSeek-OCR (paper Table 1, official `config.py`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::config::Architecture;
use crate::error::VisionError;

/// A named resolution mode: how a page is turned into one global view and optional tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// 512 px, no tiles (64 vision tokens).
    Tiny,
    /// 640 px, no tiles (100 vision tokens).
    Small,
    /// 1024 px, no tiles (256 vision tokens).
    Base,
    /// 1280 px, no tiles (400 vision tokens).
    Large,
    /// 1024 px global view + 640 px tiles: the official default.
    #[default]
    Gundam,
    /// 1280 px global view + 1024 px tiles.
    GundamMaster,
}

impl Mode {
    /// Every mode, in the order of the paper's table.
    pub const ALL: [Mode; 6] = [Mode::Tiny, Mode::Small, Mode::Base, Mode::Large, Mode::Gundam, Mode::GundamMaster];

    /// The name users type on the CLI and in the API.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Tiny => "tiny",
            Mode::Small => "small",
            Mode::Base => "base",
            Mode::Large => "large",
            Mode::Gundam => "gundam",
            Mode::GundamMaster => "gundam-master",
        }
    }
}

impl Mode {
    /// The concrete settings of this mode for an architecture.
    ///
    /// OCR-1: tiles of 640 px (1024 for gundam-master), 2..=9 tiles (HF `infer()`).
    /// OCR-2 only has query tables for 768 px tiles and 1024 px views: gundam is its default
    /// mode (1024 global + 768 tiles, 2..=6 tiles) and base its no-tile mode; the others are
    /// rejected by the encoder.
    pub fn spec(self, arch: Architecture) -> ModeSpec {
        let (base_size, image_size, crop_mode) = match (self, arch) {
            (Mode::Tiny, _) => (512, 512, false),
            (Mode::Small, _) => (640, 640, false),
            (Mode::Base, _) => (1024, 1024, false),
            (Mode::Large, _) => (1280, 1280, false),
            (Mode::Gundam, Architecture::Ocr1) => (1024, 640, true),
            (Mode::Gundam, Architecture::Ocr2) => (1024, 768, true),
            (Mode::GundamMaster, _) => (1280, 1024, true),
        };
        let tile_size = if crop_mode { image_size } else { arch.tile_size() };
        ModeSpec {
            base_size,
            image_size,
            crop_mode,
            tile_size,
            min_tiles: MIN_TILES,
            max_tiles: arch.default_max_tiles(),
            stretch_max: arch.stretch_max(),
        }
    }
}

/// Fewest tiles of a tiled image (`dynamic_preprocess(min_num=2)`): never a single tile.
pub const MIN_TILES: u32 = 2;
/// Most tiles the vLLM processor allows (`MAX_CROPS`), the recommended serving limit.
pub const VLLM_MAX_TILES: u32 = 6;

/// Concrete resolution settings: any combination, not only the named modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModeSpec {
    /// Side of the global view in crop modes.
    pub base_size: u32,
    /// Side of the single view in non-crop modes.
    pub image_size: u32,
    /// Global view + dynamic tiles (Gundam) instead of one view.
    pub crop_mode: bool,
    /// Side of one local tile (640 OCR-1, 768 OCR-2, 1024 gundam-master); images with both
    /// sides `<=` this are not tiled.
    pub tile_size: u32,
    /// Fewest tiles of a tiled image.
    pub min_tiles: u32,
    /// Most tiles of a tiled image (9 HF, 6 vLLM).
    pub max_tiles: u32,
    /// Non-crop views up to this side are stretched to a square before padding (HF `infer()`:
    /// 640 for OCR-1, 768 for OCR-2).
    pub stretch_max: u32,
}

impl ModeSpec {
    /// Checks the settings are usable.
    pub fn validate(&self) -> crate::error::Result<()> {
        let side_ok = |s: u32| (16..=4096).contains(&s);
        if !side_ok(self.base_size) || !side_ok(self.image_size) || !side_ok(self.tile_size) {
            return Err(VisionError::Unsupported(format!("view sizes out of range: {self:?}")));
        }
        if self.min_tiles == 0 || self.min_tiles > self.max_tiles || self.max_tiles > 64 {
            return Err(VisionError::Unsupported(format!(
                "tile range {}..={} is not usable",
                self.min_tiles, self.max_tiles
            )));
        }
        Ok(())
    }

    /// Side of the global (or only) view.
    pub fn global_size(&self) -> u32 {
        if self.crop_mode {
            self.base_size
        } else {
            self.image_size
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown mode name.
#[derive(Debug, thiserror::Error)]
#[error("unknown mode '{0}' (expected one of: tiny, small, base, large, gundam, gundam-master)")]
pub struct UnknownMode(pub String);

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownMode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Mode::ALL {
            assert_eq!(m.name().parse::<Mode>().unwrap(), m);
        }
        assert!("huge".parse::<Mode>().is_err());
    }
}
