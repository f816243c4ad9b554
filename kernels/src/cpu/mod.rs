//! Fast CPU kernels (runtime dispatch), each tested against [`crate::reference`].

/// Paged decode attention.
pub mod attention;
