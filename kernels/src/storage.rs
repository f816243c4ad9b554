//! Where kernel-format weights live: an owned vector, or a range of a memory-mapped file (a
//! safetensors checkpoint or a saved quantized model), used in place without a copy.

use std::sync::Arc;

use half::{bf16, f16};
use memmap2::Mmap;

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::bf16 {}
    impl Sealed for half::f16 {}
    impl Sealed for u8 {}
}

/// Plain element types a weight buffer may hold (every bit pattern valid, no padding).
pub trait Element: sealed::Sealed + Copy + Send + Sync + std::fmt::Debug + 'static {}
impl Element for bf16 {}
impl Element for f16 {}
impl Element for u8 {}

/// A read-only buffer of `T`.
#[derive(Clone)]
pub enum Storage<T: Element> {
    /// Owned values.
    Owned(Arc<Vec<T>>),
    /// `len` values at byte `offset` of a mapped file.
    Mapped {
        /// The mapping (kept alive while any weight uses it).
        map: Arc<Mmap>,
        /// Byte offset of the first value (a multiple of `T`'s alignment).
        offset: usize,
        /// Number of values.
        len: usize,
    },
}

impl<T: Element> std::fmt::Debug for Storage<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Storage::Owned(v) => write!(f, "Owned({} values)", v.len()),
            Storage::Mapped { offset, len, .. } => write!(f, "Mapped({len} values at byte {offset})"),
        }
    }
}

impl<T: Element> Storage<T> {
    /// Owns `v`.
    pub fn owned(v: Vec<T>) -> Self {
        Storage::Owned(Arc::new(v))
    }

    /// `len` values at byte `offset` of `map`; `None` when the range is out of the file or
    /// misaligned for `T`.
    pub fn mapped(map: Arc<Mmap>, offset: usize, len: usize) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        let end = offset.checked_add(bytes)?;
        if end > map.len() || !(map.as_ptr() as usize + offset).is_multiple_of(std::mem::align_of::<T>()) {
            return None;
        }
        Some(Storage::Mapped { map, offset, len })
    }

    /// The values.
    pub fn as_slice(&self) -> &[T] {
        match self {
            Storage::Owned(v) => v,
            Storage::Mapped { map, offset, len } => {
                // SAFETY: `mapped` checked range and alignment; T is a plain type for which
                // every bit pattern is valid; the mapping is read-only and outlives `self`.
                unsafe { std::slice::from_raw_parts(map.as_ptr().add(*offset) as *const T, *len) }
            }
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Storage::Owned(v) => v.len(),
            Storage::Mapped { len, .. } => *len,
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the values are read from a mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(self, Storage::Mapped { .. })
    }
}
