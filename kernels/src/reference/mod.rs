//! Plain, obviously-correct implementations every kernel is tested against.
//!
//! They run on host slices, accumulate in f32 (or f64 where said), and round to the storage
//! type exactly where the decoder's candle path rounds, so that a kernel and its reference can
//! be compared with tight tolerances. They are also the CPU path of the device-generic ops in
//! [`crate::ops`].

/// Paged attention over ragged chunks (the CPU kernel's reference).
pub mod attention;
pub mod fp8;
/// Matrix products over every weight format.
pub mod matmul;
/// The MoE feed-forward.
pub mod moe;
pub mod moe_dispatch;
pub mod moe_gate;
pub mod norm;
pub mod paged_attention;
pub mod rope;
/// Dense attention (the vision encoder's SDPA kernel's reference).
pub mod sdpa;

use half::{bf16, f16};

/// A storage element the references read and write: converts to and from f32.
pub trait Elem: Copy + Send + Sync + 'static {
    /// Widens to f32 (exact for every supported type).
    fn to_f32(self) -> f32;
    /// Rounds an f32 to this type (round to nearest even).
    fn from_f32(v: f32) -> Self;
}

impl Elem for f32 {
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
}

impl Elem for bf16 {
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        bf16::from_f32(v)
    }
}

impl Elem for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
}

/// Rounds `v` through `T` and back (the value a `T` tensor would hold).
pub fn round_to<T: Elem>(v: f32) -> f32 {
    T::from_f32(v).to_f32()
}
