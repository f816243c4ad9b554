//! docseek-kernels: docseek's own compute kernels.
//!
//! Each kernel is a candle custom op with a CPU reference (`cpu_fwd`, always compiled and
//! tested) and a CUDA implementation behind the `cuda` feature.
