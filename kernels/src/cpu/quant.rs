//! Block-quantized weights and on-the-fly activation quantization.
//!
//! Weights (`[N, K]`, quantized per row in blocks of [`QBLOCK`] = 32 values along K, rows
//! padded with zeros to a multiple of [`QCHUNK`] = 64, one f16 scale per block):
//! - **q8**: `d = max|w| / 127`, `q = round(w / d)` in `[-127, 127]`, stored as the byte
//!   `q + 128`. 1.0625 bytes per weight.
//! - **q4**: `d = w_max / -8` where `w_max` is the value of largest magnitude (sign kept),
//!   `q = clamp(round(w / d), -8, 7)` stored as the nibble `q + 8`. Each 64-value chunk is 32
//!   bytes; byte `j` holds value `j` in its low nibble and value `32 + j` in its high nibble,
//!   so unpacking low then high nibbles gives the chunk in order. 0.5625 bytes per weight.
//!
//! Activations are quantized on the fly to 16 bits per row ([`QActs`]).

use half::f16;

/// Values per quantization block (one scale each).
pub const QBLOCK: usize = 32;
/// Rows are padded to a multiple of this many values (two blocks: one 512-bit vector of q8).
pub const QCHUNK: usize = 64;

/// A block-quantized weight format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QFormat {
    /// 8-bit values, f16 scale per 32.
    Q8,
    /// 4-bit values, f16 scale per 32.
    Q4,
}

impl QFormat {
    /// Bytes of quantized values per padded row of `k` columns.
    pub fn row_bytes(self, k: usize) -> usize {
        match self {
            QFormat::Q8 => padded_k(k),
            QFormat::Q4 => padded_k(k) / 2,
        }
    }

    /// Offset added to the signed values when stored.
    pub fn offset(self) -> i32 {
        match self {
            QFormat::Q8 => 128,
            QFormat::Q4 => 8,
        }
    }

    /// Short name (`q8`, `q4`).
    pub fn name(self) -> &'static str {
        match self {
            QFormat::Q8 => "q8",
            QFormat::Q4 => "q4",
        }
    }
}

/// `k` rounded up to a multiple of [`QCHUNK`].
pub fn padded_k(k: usize) -> usize {
    k.div_ceil(QCHUNK) * QCHUNK
}

/// Scales per padded row.
pub fn blocks_per_row(k: usize) -> usize {
    padded_k(k) / QBLOCK
}

/// Quantizes one row of `k` values into `qs` ([`QFormat::row_bytes`]) and `scales`
/// ([`blocks_per_row`]).
pub fn quantize_row(format: QFormat, src: &[f32], qs: &mut [u8], scales: &mut [f16]) {
    let k = src.len();
    let kp = padded_k(k);
    assert_eq!(qs.len(), format.row_bytes(k));
    assert_eq!(scales.len(), kp / QBLOCK);
    let mut block = [0f32; QBLOCK];
    let mut q = [0i32; QBLOCK];
    for b in 0..kp / QBLOCK {
        for (i, v) in block.iter_mut().enumerate() {
            *v = src.get(b * QBLOCK + i).copied().unwrap_or(0.0);
        }
        let d = match format {
            QFormat::Q8 => quantize_block_q8(&block, &mut q),
            QFormat::Q4 => quantize_block_q4(&block, &mut q),
        };
        scales[b] = d;
        match format {
            QFormat::Q8 => {
                for i in 0..QBLOCK {
                    qs[b * QBLOCK + i] = (q[i] + 128) as u8;
                }
            }
            QFormat::Q4 => {
                // Block 2c fills the low nibbles of chunk c's 32 bytes, block 2c+1 the high ones.
                let base = (b / 2) * QBLOCK;
                for i in 0..QBLOCK {
                    let nib = (q[i] + 8) as u8;
                    if b % 2 == 0 {
                        qs[base + i] = (qs[base + i] & 0xF0) | nib;
                    } else {
                        qs[base + i] = (qs[base + i] & 0x0F) | (nib << 4);
                    }
                }
            }
        }
    }
}

/// q8 block: returns the f16 scale; `q` in `[-127, 127]`.
fn quantize_block_q8(x: &[f32; QBLOCK], q: &mut [i32; QBLOCK]) -> f16 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = f16::from_f32(amax / 127.0);
    let df = d.to_f32();
    let inv = if df > 0.0 { 1.0 / df } else { 0.0 };
    for (o, v) in q.iter_mut().zip(x) {
        *o = ((v * inv).round() as i32).clamp(-127, 127);
    }
    d
}

/// q4 block: returns the f16 scale; `q` in `[-8, 7]`.
fn quantize_block_q4(x: &[f32; QBLOCK], q: &mut [i32; QBLOCK]) -> f16 {
    let mut max = 0f32;
    for &v in x {
        if v.abs() > max.abs() {
            max = v;
        }
    }
    let d = f16::from_f32(max / -8.0);
    let df = d.to_f32();
    let inv = if df != 0.0 { 1.0 / df } else { 0.0 };
    for (o, v) in q.iter_mut().zip(x) {
        *o = ((v * inv).round() as i32).clamp(-8, 7);
    }
    d
}

/// The signed quantized value `i` of a row (`qs` as stored).
pub fn stored_value(format: QFormat, qs: &[u8], i: usize) -> i32 {
    match format {
        QFormat::Q8 => qs[i] as i32 - 128,
        QFormat::Q4 => {
            let (c, j) = (i / QCHUNK, i % QCHUNK);
            let byte = qs[c * QBLOCK + j % QBLOCK];
            let nib = if j < QBLOCK { byte & 0x0F } else { byte >> 4 };
            nib as i32 - 8
        }
    }
}

/// Writes the dequantized values of a row into `out` (`out.len()` = the unpadded `k`).
pub fn dequantize_row(format: QFormat, qs: &[u8], scales: &[f16], out: &mut [f32]) {
    for (i, o) in out.iter_mut().enumerate() {
        *o = stored_value(format, qs, i) as f32 * scales[i / QBLOCK].to_f32();
    }
}

/// Activations quantized to 16 bits for the quantized products: per row, `d = max|x| / 32767`,
/// `q = round(x / d)` (i16), rows zero-padded to [`padded_k`]. 16 bits make the activations'
/// rounding negligible next to the weights' (a relative step of 3e-5 of the row's largest
/// value), so a q8 decoder is as accurate as its 8-bit weights allow.
#[derive(Debug, Clone, Default)]
pub struct QActs {
    /// Rows.
    pub m: usize,
    /// Padded row length.
    pub kp: usize,
    /// `[m, kp]` values in `[-32767, 32767]`.
    pub qs: Vec<i16>,
    /// `[m]` scales.
    pub scales: Vec<f32>,
    /// `[m, kp]` high bytes `q >> 8` (signed), for the VNNI kernels.
    pub hi: Vec<i8>,
    /// `[m, kp]` low bytes `q & 0xFF` (unsigned): `q = 256 hi + lo`.
    pub lo: Vec<u8>,
    /// `[m, kp / 4]` sums of each 4 consecutive high bytes.
    pub hi_sums: Vec<i32>,
}

/// Largest quantized activation magnitude.
pub const ACT_MAX: f32 = 32767.0;

impl QActs {
    /// Quantizes `m` rows of `k` values given by `get(row, col)`.
    pub fn quantize(m: usize, k: usize, get: impl Fn(usize, usize) -> f32) -> QActs {
        let mut row = vec![0f32; k];
        let mut out = QActs::zeros(m, k);
        for r in 0..m {
            row.iter_mut().enumerate().for_each(|(c, v)| *v = get(r, c));
            out.set_row(r, &row);
        }
        out.split();
        out
    }

    /// Quantizes `m` rows of `k` contiguous f32 values.
    pub fn quantize_f32(a: &[f32], m: usize, k: usize) -> QActs {
        let mut out = QActs::zeros(m, k);
        for r in 0..m {
            out.set_row(r, &a[r * k..(r + 1) * k]);
        }
        out.split();
        out
    }

    /// Quantizes `m` rows of `k` contiguous bf16 values.
    pub fn quantize_bf16(a: &[half::bf16], m: usize, k: usize) -> QActs {
        let mut row = vec![0f32; k];
        let mut out = QActs::zeros(m, k);
        for r in 0..m {
            row.iter_mut().zip(&a[r * k..(r + 1) * k]).for_each(|(o, v)| *o = v.to_f32());
            out.set_row(r, &row);
        }
        out.split();
        out
    }

    /// The rows `rows` (in that order) as their own activations.
    pub fn gather(&self, rows: &[usize]) -> QActs {
        let kp = self.kp;
        let pick = |v: &[i16]| rows.iter().flat_map(|&r| v[r * kp..(r + 1) * kp].iter().copied()).collect::<Vec<_>>();
        let mut out = QActs {
            m: rows.len(),
            kp,
            qs: pick(&self.qs),
            scales: rows.iter().map(|&r| self.scales[r]).collect(),
            ..Default::default()
        };
        out.split();
        out
    }

    fn zeros(m: usize, k: usize) -> QActs {
        let kp = padded_k(k);
        QActs { m, kp, qs: vec![0; m * kp], scales: vec![0.0; m], ..Default::default() }
    }

    /// Row `r` from f32 values: `d = max|x| / 32767`, `q = round(x · (1 / d))`.
    fn set_row(&mut self, r: usize, x: &[f32]) {
        let amax = x.iter().fold(0f32, |a, v| a.max(v.abs()));
        let d = amax / ACT_MAX;
        self.scales[r] = d;
        let q = &mut self.qs[r * self.kp..r * self.kp + x.len()];
        if d > 0.0 {
            let inv = 1.0 / d;
            q.iter_mut().zip(x).for_each(|(q, v)| *q = (v * inv).round().clamp(-ACT_MAX, ACT_MAX) as i16);
        }
    }

    /// Fills the byte split the VNNI kernels read.
    fn split(&mut self) {
        self.hi = self.qs.iter().map(|q| (q >> 8) as i8).collect();
        self.lo = self.qs.iter().map(|q| (q & 0xFF) as u8).collect();
        self.hi_sums = self.hi.chunks_exact(4).map(|c| c.iter().map(|&h| h as i32).sum()).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q8_and_q4_round_trip_within_a_step() {
        let k = 77;
        let src: Vec<f32> = (0..k).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.013).collect();
        for format in [QFormat::Q8, QFormat::Q4] {
            let mut qs = vec![0u8; format.row_bytes(k)];
            let mut scales = vec![f16::ZERO; blocks_per_row(k)];
            quantize_row(format, &src, &mut qs, &mut scales);
            let mut back = vec![0f32; k];
            dequantize_row(format, &qs, &scales, &mut back);
            for (i, (a, b)) in src.iter().zip(&back).enumerate() {
                let step = scales[i / QBLOCK].to_f32().abs();
                // q4's range is [-8, 7]: a value as large as the block's extreme but of the
                // other sign clamps to 7, one step off; everything else rounds.
                let allowed = if format == QFormat::Q4 { 1.0 } else { 0.5 };
                assert!((a - b).abs() <= allowed * step * 1.01 + 1e-6, "{format:?} {i}: {a} vs {b} (step {step})");
            }
            // Padding decodes to zero.
            for i in k..padded_k(k) {
                assert_eq!(stored_value(format, &qs, i) as f32 * scales[i / QBLOCK].to_f32(), 0.0);
            }
        }
    }

    #[test]
    fn activations_keep_sixteen_bits() {
        let a = QActs::quantize(2, 40, |r, c| (r as f32 + 1.0) * (c as f32 - 20.0));
        assert_eq!(a.kp, 64);
        assert_eq!(a.qs[0], -32767);
        assert_eq!(a.qs[63], 0);
        for c in 0..40 {
            let back = a.qs[64 + c] as f32 * a.scales[1];
            assert!((back - 2.0 * (c as f32 - 20.0)).abs() <= 0.5 * a.scales[1] * 1.0001);
        }
    }
}
