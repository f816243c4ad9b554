//! Runtime choice of the instruction set the CPU kernels use.
//!
//! Levels, best first: [`Isa::Avx512Bf16`] (AVX-512 F/BW/VL + BF16 `vdpbf16ps` + VNNI
//! `vpdpbusd`), [`Isa::Avx512`] (AVX-512 F/BW/VL), [`Isa::Avx2`] (AVX2 + FMA + F16C) and
//! [`Isa::Portable`] (plain Rust, every target). The best level the CPU supports is detected
//! once; `DOCSEEK_ISA=portable|avx2|avx512|avx512bf16` caps it (a level above what the CPU has
//! falls back to the best supported one). Every kernel also takes an explicit `Isa`, so tests
//! run each level the machine supports.

use std::sync::OnceLock;

/// Environment variable that caps the instruction-set level.
pub const ISA_ENV: &str = "DOCSEEK_ISA";

/// An instruction-set level of the CPU kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust, no SIMD intrinsics.
    Portable,
    /// AVX2 + FMA + F16C (x86-64).
    Avx2,
    /// AVX-512 F/BW/VL (x86-64).
    Avx512,
    /// AVX-512 F/BW/VL with BF16 and VNNI dot products (x86-64).
    Avx512Bf16,
}

impl Isa {
    /// Every level, worst first.
    pub const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16];

    /// Whether this CPU can run the level.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                Isa::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Bf16 => {
                Isa::Avx512.is_supported()
                    && is_x86_feature_detected!("avx512bf16")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The best level this CPU supports.
    pub fn detected() -> Isa {
        Isa::ALL.into_iter().rev().find(|i| i.is_supported()).unwrap_or(Isa::Portable)
    }

    /// Every level this CPU supports, worst first (always includes [`Isa::Portable`]).
    pub fn supported() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The level the kernels use: [`Isa::detected`] capped by `DOCSEEK_ISA` (read once).
    pub fn active() -> Isa {
        static ACTIVE: OnceLock<Isa> = OnceLock::new();
        *ACTIVE.get_or_init(|| {
            let best = Isa::detected();
            match std::env::var(ISA_ENV).ok().and_then(|v| Isa::parse(&v)) {
                Some(cap) => cap.min(best),
                None => best,
            }
        })
    }

    /// Parses a level name (`portable`, `avx2`, `avx512`, `avx512bf16`).
    pub fn parse(s: &str) -> Option<Isa> {
        Isa::ALL.into_iter().find(|i| i.name().eq_ignore_ascii_case(s.trim()))
    }

    /// The level's name.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Avx512Bf16 => "avx512bf16",
        }
    }

    /// Whether bf16 x bf16 products run natively (`vdpbf16ps`), so bf16 is the fastest dtype.
    pub fn has_native_bf16(self) -> bool {
        self == Isa::Avx512Bf16
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_portable_is_always_supported() {
        for i in Isa::ALL {
            assert_eq!(Isa::parse(i.name()), Some(i));
        }
        assert_eq!(Isa::parse("AVX512BF16"), Some(Isa::Avx512Bf16));
        assert_eq!(Isa::parse("neon"), None);
        assert!(Isa::supported().contains(&Isa::Portable));
        assert!(Isa::active() <= Isa::detected());
    }
}
