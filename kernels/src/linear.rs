//! The linear layer of the decoder and the vision encoder: `y = x Wᵀ (+ b)` on `[..., in]`
//! activations, returning the input's dtype.
//!
//! The weight is held in one of several formats ([`LinearWeight`]):
//! - `Dense`: a candle tensor on any device, run by candle's matmul exactly as
//!   `candle_nn::Linear` does (f32 keeps bit-exact parity; on CUDA this is the only format).
//! - `Bf16`: row-major bf16 read in place by the CPU kernels (`vdpbf16ps` where the CPU has
//!   it), from an owned copy or straight from a memory-mapped checkpoint.
//! - `Quant`: q8 or q4 blocks ([`crate::cpu::quant`]) with activations quantized on the fly.
//!
//! The kernel formats run as a candle custom op ([`LinearOp`]) whose `cpu_fwd` calls
//! [`crate::cpu::matmul`]; they exist only for CPU tensors.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Module, Result, Shape, Tensor};
use half::{bf16, f16};

use crate::cpu::epilogue::{self, Epilogue};
use crate::cpu::gemv_bf16::Acts;
use crate::cpu::matmul::{matmul, WeightRef};
use crate::cpu::qmatmul::QMatRef;
use crate::cpu::quant::{blocks_per_row, quantize_row, QFormat};
use crate::cpu::vmath::Activation;
use crate::cpu::Isa;
use crate::storage::Storage;

/// How weights are stored (`--quant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quant {
    /// The checkpoint's values in the model dtype.
    #[default]
    None,
    /// 8-bit blocks (CPU).
    Q8,
    /// 4-bit blocks (CPU).
    Q4,
}

impl Quant {
    /// Parses `none`, `q8`, `q4`.
    pub fn parse(s: &str) -> Option<Quant> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" | "" => Some(Quant::None),
            "q8" | "int8" => Some(Quant::Q8),
            "q4" | "int4" => Some(Quant::Q4),
            _ => None,
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Quant::None => "none",
            Quant::Q8 => "q8",
            Quant::Q4 => "q4",
        }
    }

    /// The block format, if quantized.
    pub fn format(self) -> Option<QFormat> {
        match self {
            Quant::None => None,
            Quant::Q8 => Some(QFormat::Q8),
            Quant::Q4 => Some(QFormat::Q4),
        }
    }
}

impl std::str::FromStr for Quant {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Quant::parse(s).ok_or_else(|| format!("unknown weight storage '{s}' (none, q8, q4)"))
    }
}

impl std::fmt::Display for Quant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A linear layer's `[out, in]` weight in one of the formats.
#[derive(Debug, Clone)]
pub enum LinearWeight {
    /// A candle tensor (any device, any dtype).
    Dense(Tensor),
    /// Row-major bf16 for the CPU kernels.
    Bf16 {
        /// `[rows, cols]` values.
        data: Storage<bf16>,
        /// Rows (outputs).
        rows: usize,
        /// Columns (inputs).
        cols: usize,
    },
    /// Block-quantized for the CPU kernels.
    Quant {
        /// q8 or q4.
        format: QFormat,
        /// `[rows, format.row_bytes(cols)]` stored values.
        qs: Storage<u8>,
        /// `[rows, blocks_per_row(cols)]` scales.
        scales: Storage<f16>,
        /// Rows (outputs).
        rows: usize,
        /// Columns (inputs).
        cols: usize,
    },
}

impl LinearWeight {
    /// The format for `w` `[out, in]` under `quant`: quantized or bf16 kernel formats for CPU
    /// tensors (q8/q4 when asked, bf16 when the tensor is bf16), `Dense` otherwise.
    pub fn from_tensor(w: &Tensor, quant: Quant) -> Result<Self> {
        if !w.device().is_cpu() || w.rank() != 2 {
            return Ok(LinearWeight::Dense(w.clone()));
        }
        match quant.format() {
            Some(f) => Self::quantize(w, f),
            None if w.dtype() == DType::BF16 => {
                let (rows, cols) = w.dims2()?;
                let data = w.contiguous()?.flatten_all()?.to_vec1::<bf16>()?;
                Ok(LinearWeight::Bf16 { data: Storage::owned(data), rows, cols })
            }
            None => Ok(LinearWeight::Dense(w.clone())),
        }
    }

    /// Quantizes `w` `[out, in]` (any float dtype) row by row, in parallel.
    pub fn quantize(w: &Tensor, format: QFormat) -> Result<Self> {
        let (rows, cols) = w.dims2()?;
        let src = w.to_dtype(DType::F32)?.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
        let (qs, scales) = quantize_rows(format, &src, rows, cols);
        Ok(LinearWeight::Quant { format, qs: Storage::owned(qs), scales: Storage::owned(scales), rows, cols })
    }

    /// Rows (outputs).
    pub fn rows(&self) -> usize {
        match self {
            LinearWeight::Dense(t) => t.dims().first().copied().unwrap_or(0),
            LinearWeight::Bf16 { rows, .. } | LinearWeight::Quant { rows, .. } => *rows,
        }
    }

    /// Columns (inputs).
    pub fn cols(&self) -> usize {
        match self {
            LinearWeight::Dense(t) => t.dims().last().copied().unwrap_or(0),
            LinearWeight::Bf16 { cols, .. } | LinearWeight::Quant { cols, .. } => *cols,
        }
    }

    /// Bytes the weight occupies.
    pub fn bytes(&self) -> usize {
        match self {
            LinearWeight::Dense(t) => t.elem_count() * t.dtype().size_in_bytes(),
            LinearWeight::Bf16 { data, .. } => data.len() * 2,
            LinearWeight::Quant { qs, scales, .. } => qs.len() + scales.len() * 2,
        }
    }

    /// `dense`, `bf16`, `q8` or `q4`.
    pub fn format_name(&self) -> &'static str {
        match self {
            LinearWeight::Dense(_) => "dense",
            LinearWeight::Bf16 { .. } => "bf16",
            LinearWeight::Quant { format, .. } => format.name(),
        }
    }

    /// The kernels' view of a kernel-format weight.
    pub fn kernel_ref(&self) -> Option<WeightRef<'_>> {
        match self {
            LinearWeight::Dense(_) => None,
            LinearWeight::Bf16 { data, rows, cols } => {
                Some(WeightRef::Bf16 { data: data.as_slice(), rows: *rows, cols: *cols })
            }
            LinearWeight::Quant { format, qs, scales, rows, cols } => Some(WeightRef::Quant(QMatRef {
                format: *format,
                qs: qs.as_slice(),
                scales: scales.as_slice(),
                rows: *rows,
                cols: *cols,
            })),
        }
    }
}

/// Quantizes `rows` rows of `cols` f32 values into (stored values, scales), in parallel.
pub fn quantize_rows(format: QFormat, src: &[f32], rows: usize, cols: usize) -> (Vec<u8>, Vec<f16>) {
    use rayon::prelude::*;
    let rb = format.row_bytes(cols);
    let bp = blocks_per_row(cols);
    let mut qs = vec![0u8; rows * rb];
    let mut scales = vec![f16::ZERO; rows * bp];
    qs.par_chunks_mut(rb.max(1)).zip(scales.par_chunks_mut(bp.max(1))).enumerate().for_each(|(r, (q, s))| {
        quantize_row(format, &src[r * cols..(r + 1) * cols], q, s);
    });
    (qs, scales)
}

/// `y = x Wᵀ (+ b)`.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: LinearWeight,
    bias: Option<Tensor>,
    bias_f32: Option<Vec<f32>>,
}

impl Linear {
    /// A `Dense` layer (candle's matmul; exactly `candle_nn::Linear`).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear { weight: LinearWeight::Dense(weight), bias, bias_f32: None }
    }

    /// A layer in the format [`LinearWeight::from_tensor`] picks for `quant`.
    pub fn from_tensor(weight: Tensor, bias: Option<Tensor>, quant: Quant) -> Result<Self> {
        Self::from_weight(LinearWeight::from_tensor(&weight, quant)?, bias)
    }

    /// A layer over an already built weight.
    pub fn from_weight(weight: LinearWeight, bias: Option<Tensor>) -> Result<Self> {
        let bias_f32 = match (&weight, &bias) {
            (LinearWeight::Dense(_), _) | (_, None) => None,
            (_, Some(b)) => Some(b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?),
        };
        if let Some(b) = &bias_f32 {
            if b.len() != weight.rows() {
                candle_core::bail!("bias of {} values for a weight of {} rows", b.len(), weight.rows());
            }
        }
        Ok(Linear { weight, bias, bias_f32 })
    }

    /// The weight.
    pub fn weight(&self) -> &LinearWeight {
        &self.weight
    }

    /// The bias.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    /// Whether the CPU kernels run this layer.
    pub fn is_kernel(&self) -> bool {
        !matches!(self.weight, LinearWeight::Dense(_))
    }

    /// Weight (and bias) bytes.
    pub fn bytes(&self) -> usize {
        self.weight.bytes() + self.bias.as_ref().map_or(0, |b| b.elem_count() * b.dtype().size_in_bytes())
    }

    fn forward_dense(w: &Tensor, bias: Option<&Tensor>, x: &Tensor) -> Result<Tensor> {
        // The same sequence of ops as candle_nn::Linear, so f32 results stay bit-identical.
        let y = match *x.dims() {
            [b1, b2, m, k] if x.is_contiguous() => {
                x.reshape((b1 * b2 * m, k))?.matmul(&w.t()?)?.reshape((b1, b2, m, ()))?
            }
            [b1, b2, _, _] => x.matmul(&w.broadcast_left((b1, b2))?.t()?)?,
            [b, m, k] if x.is_contiguous() => x.reshape((b * m, k))?.matmul(&w.t()?)?.reshape((b, m, ()))?,
            [b, _, _] => x.matmul(&w.broadcast_left(b)?.t()?)?,
            _ => x.matmul(&w.t()?)?,
        };
        match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

impl Linear {
    /// `act(x Wᵀ + b)` with the activation applied to the f32 result before it is rounded
    /// (kernel formats only: a `Dense` layer returns an error, its caller applies candle's op).
    pub fn forward_act(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        if !self.is_kernel() {
            candle_core::bail!("forward_act needs a kernel-format weight");
        }
        self.forward_kernel(x, Some(act))
    }

    /// `x Wᵀ + b + residual` (`residual` of the output's shape and dtype), the residual added
    /// to the f32 result before it is rounded; a `Dense` layer (or a residual of another
    /// dtype) adds it with candle's op.
    pub fn forward_residual(&self, x: &Tensor, residual: &Tensor) -> Result<Tensor> {
        if !self.is_kernel() || residual.dtype() != x.dtype() || !matches!(x.dtype(), DType::F32 | DType::BF16) {
            return self.forward(x)? + residual;
        }
        self.forward_kernel_with(x, None, Some(residual))
    }

    fn forward_kernel(&self, x: &Tensor, act: Option<Activation>) -> Result<Tensor> {
        self.forward_kernel_with(x, act, None)
    }

    fn forward_kernel_with(&self, x: &Tensor, act: Option<Activation>, residual: Option<&Tensor>) -> Result<Tensor> {
        let w = self.weight.kernel_ref().expect("kernel format");
        if !x.device().is_cpu() {
            candle_core::bail!("a {} linear weight runs on the CPU only", self.weight.format_name());
        }
        let dims = x.dims().to_vec();
        let k = *dims.last().unwrap_or(&0);
        if k != w.cols() {
            candle_core::bail!("linear layer takes {} inputs, got shape {:?}", w.cols(), dims);
        }
        let dtype = x.dtype();
        let x2 = match dtype {
            DType::F32 | DType::BF16 => x.reshape(((), k))?,
            _ => x.reshape(((), k))?.to_dtype(DType::F32)?,
        };
        let x2 = x2.contiguous()?;
        let op = LinearOp { w, bias: self.bias_f32.as_deref(), act, isa: Isa::active() };
        let mut out_dims = dims;
        *out_dims.last_mut().expect("rank >= 1") = w.rows();
        let y = match residual {
            Some(r) => {
                if r.dims() != out_dims.as_slice() {
                    candle_core::bail!("residual of shape {:?} for an output of shape {:?}", r.dims(), out_dims);
                }
                let r2 = r.reshape(((), w.rows()))?.contiguous()?;
                x2.apply_op2_no_bwd(&r2, &LinearResidualOp(op))?
            }
            None => x2.apply_op1_no_bwd(&op)?,
        };
        y.reshape(out_dims)?.to_dtype(dtype)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match &self.weight {
            LinearWeight::Dense(w) => Self::forward_dense(w, self.bias.as_ref(), x),
            _ => self.forward_kernel(x, None),
        }
    }
}

/// The custom op running a kernel-format weight on `[m, k]` activations (f32 or bf16).
pub struct LinearOp<'a> {
    /// The weight.
    pub w: WeightRef<'a>,
    /// f32 bias per output.
    pub bias: Option<&'a [f32]>,
    /// Activation applied after the bias, before rounding.
    pub act: Option<Activation>,
    /// Instruction-set level.
    pub isa: Isa,
}

/// The contiguous `[m, k]` activations of a custom op's input.
pub(crate) fn acts_of<'s>(storage: &'s CpuStorage, layout: &Layout) -> Result<(Acts<'s>, usize, usize)> {
    let (m, k) = layout.shape().dims2()?;
    let (start, end) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("kernel ops take contiguous activations".into()))?;
    Ok(match storage {
        CpuStorage::F32(v) => (Acts::F32(&v[start..end]), m, k),
        CpuStorage::BF16(v) => (Acts::Bf16(&v[start..end]), m, k),
        other => candle_core::bail!("kernel ops take f32 or bf16 activations, got {:?}", other.dtype()),
    })
}

/// f32 results `[m, n]` after `e`, as the storage of the input's dtype.
pub(crate) fn storage_like(input: &CpuStorage, isa: Isa, mut acc: Vec<f32>, n: usize, e: &Epilogue) -> CpuStorage {
    match input {
        CpuStorage::BF16(_) => CpuStorage::BF16(epilogue::finish_bf16(isa, e, &mut acc, n)),
        _ => {
            epilogue::finish_f32(isa, e, &mut acc, n);
            CpuStorage::F32(acc)
        }
    }
}

thread_local! {
    static ACC: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl LinearOp<'_> {
    fn run(&self, storage: &CpuStorage, layout: &Layout, residual: Option<Acts>) -> Result<(CpuStorage, Shape)> {
        let (a, m, k) = acts_of(storage, layout)?;
        if k != self.w.cols() {
            candle_core::bail!("linear op: {} inputs, weight takes {}", k, self.w.cols());
        }
        let n = self.w.rows();
        if let Some(r) = residual {
            if r.len() != m * n {
                candle_core::bail!("linear op: residual of {} values for a [{m}, {n}] output", r.len());
            }
        }
        let e = Epilogue { bias: self.bias, act: self.act, residual };
        if let CpuStorage::BF16(_) = storage {
            // The f32 accumulators of a bf16 output live in a buffer kept per thread: the
            // vision encoder's are 20-50 MB per product, which fresh allocations would zero
            // (or fault in) every time.
            return ACC.with(|cell| {
                let mut acc = cell.borrow_mut();
                if acc.len() < m * n {
                    acc.resize(m * n, 0.0);
                }
                let acc = &mut acc[..m * n];
                matmul(self.isa, &self.w, a, m, acc);
                Ok((CpuStorage::BF16(epilogue::finish_bf16(self.isa, &e, acc, n)), Shape::from((m, n))))
            });
        }
        let mut acc = vec![0f32; m * n];
        matmul(self.isa, &self.w, a, m, &mut acc);
        Ok((storage_like(storage, self.isa, acc, n, &e), Shape::from((m, n))))
    }
}

impl candle_core::CustomOp1 for LinearOp<'_> {
    fn name(&self) -> &'static str {
        "docseek-linear"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        self.run(storage, layout, None)
    }
}

/// [`LinearOp`] with a residual `[m, n]` (the second operand, of the input's dtype) added to
/// the f32 result before it is rounded.
pub struct LinearResidualOp<'a>(pub LinearOp<'a>);

impl candle_core::CustomOp2 for LinearResidualOp<'_> {
    fn name(&self) -> &'static str {
        "docseek-linear-residual"
    }

    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (r, _, _) = acts_of(s2, l2)?;
        if s1.dtype() != s2.dtype() {
            candle_core::bail!("linear op: residual {:?} for activations {:?}", s2.dtype(), s1.dtype());
        }
        self.0.run(s1, l1, Some(r))
    }
}
