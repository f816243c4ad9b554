//! Resolution modes of DeepSeek-OCR (paper Table 1, official `config.py`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

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
    pub const ALL: [Mode; 6] = [
        Mode::Tiny,
        Mode::Small,
        Mode::Base,
        Mode::Large,
        Mode::Gundam,
        Mode::GundamMaster,
    ];

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
