//! CUDA side of the ops: the PTX modules built from `cuda/*.cu` and their launchers (cudarc,
//! on the candle device's stream, so the kernels order with candle's own work and need no
//! synchronisation).

pub mod attention;
pub mod gemm;
pub mod moe;
pub mod norm;
pub mod rope;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaFunction, CudaSlice, CudaView, DeviceRepr, LaunchConfig};
use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, WrapErr};
use candle_core::op::BackpropOp;
use candle_core::{DType, Layout, Result, Shape, Storage, Tensor};

/// `cuda 13.0, PTX for sm_90`: the toolkit and target this build's kernels were compiled with.
pub const BUILD_INFO: &str = concat!("cuda ", env!("DOCSEEK_CUDA_VERSION"), ", PTX for sm_", env!("DOCSEEK_CUDA_CAP"));

/// The PTX modules (name, source).
pub(crate) mod ptx {
    pub const NORM: (&str, &str) = ("docseek_norm", include_str!(concat!(env!("OUT_DIR"), "/norm.ptx")));
    pub const ROPE: (&str, &str) = ("docseek_rope", include_str!(concat!(env!("OUT_DIR"), "/rope.ptx")));
    pub const MOE: (&str, &str) = ("docseek_moe", include_str!(concat!(env!("OUT_DIR"), "/moe.ptx")));
    pub const GEMM: (&str, &str) = ("docseek_gemm", include_str!(concat!(env!("OUT_DIR"), "/gemm.ptx")));
    pub const ATTENTION: (&str, &str) = ("docseek_attention", include_str!(concat!(env!("OUT_DIR"), "/attention.ptx")));
}

/// Loads (once per device) and returns kernel `name` of `module`; launch it with
/// `dev.cuda_stream().launch_builder(&f)` (candle's stream).
pub(crate) fn func(dev: &CudaDevice, module: (&str, &str), name: &str) -> Result<CudaFunction> {
    Ok(dev.get_or_load_custom_func(name, module.0, module.1)?.into_cuda_function())
}

/// Kernel-name suffix of a float dtype.
pub(crate) fn suffix(dtype: DType) -> Result<&'static str> {
    Ok(match dtype {
        DType::F32 => "f32",
        DType::BF16 => "bf16",
        DType::F16 => "f16",
        d => candle_core::bail!("no CUDA kernel for dtype {d:?}"),
    })
}

/// The CUDA device of a tensor.
pub(crate) fn device(t: &Tensor) -> Result<CudaDevice> {
    Ok(t.device().as_cuda_device()?.clone())
}

/// The contiguous elements of a storage + layout as a device view.
pub(crate) fn view<'a, T: CudaDType>(s: &'a CudaStorage, l: &Layout) -> Result<CudaView<'a, T>> {
    let (o1, o2) =
        l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("CUDA kernel input must be contiguous".into()))?;
    Ok(s.as_cuda_slice::<T>()?.slice(o1..o2))
}

/// The CUDA storage of a locked tensor storage.
pub(crate) fn cuda_storage(s: &Storage) -> Result<&CudaStorage> {
    match s {
        Storage::Cuda(c) => Ok(c),
        _ => candle_core::bail!("expected a CUDA tensor"),
    }
}

/// Allocates `n` uninitialised elements (every kernel writing into one writes all of it).
pub(crate) fn alloc<T: DeviceRepr>(dev: &CudaDevice, n: usize) -> Result<CudaSlice<T>> {
    // SAFETY: the launching kernel writes every element before anything reads it.
    unsafe { dev.alloc::<T>(n.max(1)) }
}

/// Wraps a device buffer as a contiguous tensor of `shape`.
pub(crate) fn wrap<T: CudaDType>(s: CudaSlice<T>, dev: &CudaDevice, shape: impl Into<Shape>) -> Tensor {
    let storage = CudaStorage::wrap_cuda_slice(s, dev.clone());
    Tensor::from_storage(Storage::Cuda(storage), shape, BackpropOp::none(), false)
}

/// Blocks for a grid-stride loop over `n` items with `threads` per block.
pub(crate) fn grid_for(n: usize, threads: u32) -> u32 {
    const MAX_BLOCKS: usize = 65_535;
    n.div_ceil(threads as usize).clamp(1, MAX_BLOCKS) as u32
}

/// A launch of `grid` blocks of `threads` threads with `smem` bytes of dynamic shared memory.
pub(crate) fn launch_cfg(grid: (u32, u32, u32), threads: u32, smem: usize) -> LaunchConfig {
    LaunchConfig { grid_dim: grid, block_dim: (threads, 1, 1), shared_mem_bytes: smem as u32 }
}

/// Maps a launch error into candle's.
pub(crate) fn launched<T>(
    r: std::result::Result<T, candle_core::cuda_backend::cudarc::driver::DriverError>,
) -> Result<T> {
    r.w()
}

/// Keeps `BackendStorage` in scope for `.device()` on storages.
#[allow(dead_code)]
fn _storage_device(s: &CudaStorage) -> &CudaDevice {
    s.device()
}
