//! Plain, obviously-correct implementations of every kernel (the tests' ground truth).

/// Paged attention.
pub mod attention;
