//! Plain, obviously-correct implementations every CPU kernel is tested against: scalar loops,
//! f64 accumulation, no blocking, no threads.

pub mod attention;
pub mod matmul;
pub mod moe;
