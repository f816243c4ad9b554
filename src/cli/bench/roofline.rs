//! What the speed benchmarks set their figures against: the machine's read bandwidth and
//! load, the bytes a format stores per parameter, and the PyTorch reference measured in the
//! same session (`refbench`'s JSON lines).

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use docseek_kernels::linear::Quant;
use rayon::prelude::*;

/// Bytes read by the bandwidth probes.
const PROBE_BYTES: usize = 1 << 30;

/// Read bandwidth (bytes/s), best of 3, by three probes: candle's `sum_all` over a 1 GiB f32
/// tensor (the probe of earlier reports), and two sums over 1 GiB split across all threads: one
/// sequential pass per thread, and one reading 8 interleaved streams with software prefetch,
/// the access pattern of the decode kernels (a GEMV reads several weight rows at once and
/// prefetches the next ones). Returns the candle figure and the better threaded one; the larger
/// of the two is the roofline's basis.
pub fn read_bandwidth(device: &Device) -> anyhow::Result<(f64, f64)> {
    let t = Tensor::ones(PROBE_BYTES / 4, DType::F32, device)?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let s = Instant::now();
        let v: f32 = t.sum_all()?.to_scalar()?;
        anyhow::ensure!(v > 0.0, "bandwidth probe returned {v}");
        best = best.min(s.elapsed().as_secs_f64());
    }
    drop(t);
    let candle = PROBE_BYTES as f64 / best;
    let words = vec![1u64; PROBE_BYTES / 8];
    let threads = docseek_kernels::cpu::pool::threads();
    let mut best = f64::MAX;
    for probe in [sequential_sum as fn(&[u64]) -> u64, streamed_sum] {
        for _ in 0..3 {
            let s = Instant::now();
            let sum: u64 = words.par_chunks(words.len().div_ceil(threads)).map(probe).sum();
            anyhow::ensure!(sum == words.len() as u64, "bandwidth probe returned {sum}");
            best = best.min(s.elapsed().as_secs_f64());
        }
    }
    Ok((candle, PROBE_BYTES as f64 / best))
}

/// Sum of `words` in one sequential pass.
fn sequential_sum(words: &[u64]) -> u64 {
    words.iter().fold(0u64, |a, &w| a.wrapping_add(w))
}

/// Sum of `words` read as [`STREAMS`] interleaved streams of 64-byte lines, each prefetched
/// [`AHEAD`] lines before it is read.
fn streamed_sum(words: &[u64]) -> u64 {
    const STREAMS: usize = 8;
    const LINE: usize = 8; // u64 per 64-byte cache line
    const AHEAD: usize = 16;
    let lines = words.len() / (STREAMS * LINE);
    let stride = lines * LINE;
    let mut acc = [0u64; STREAMS];
    for l in 0..lines {
        for (s, a) in acc.iter_mut().enumerate() {
            let base = s * stride + l * LINE;
            if l + AHEAD < lines {
                prefetch(&words[base + AHEAD * LINE]);
            }
            *a = words[base..base + LINE].iter().fold(*a, |x, &w| x.wrapping_add(w));
        }
    }
    let tail = sequential_sum(&words[STREAMS * stride..]);
    acc.iter().fold(tail, |x, &a| x.wrapping_add(a))
}

/// Asks the CPU to bring the line holding `word` into cache (a no-op off x86-64).
#[inline(always)]
fn prefetch(word: &u64) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch of a valid reference's address; it reads nothing architecturally.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>((word as *const u64).cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = word;
}

/// Reads every `.safetensors` file of the model folder `dir` once, so the timed load and the
/// first forward (which faults the mapped weights in) start from a warm page cache, whatever
/// ran before; returns the bytes read and the seconds it took.
pub fn warm_page_cache(dir: &Path) -> anyhow::Result<(u64, f64)> {
    let start = Instant::now();
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let mut file = std::fs::File::open(&path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            bytes += std::io::copy(&mut file, &mut std::io::sink())?;
        }
    }
    Ok((bytes, start.elapsed().as_secs_f64()))
}

/// The 1-minute load average and the CPU count, for stating the load with each figure.
pub fn load_line() -> String {
    let load =
        std::fs::read_to_string("/proc/loadavg").ok().and_then(|s| s.split_whitespace().next().map(str::to_string));
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("load average {} on {cpus} CPUs", load.unwrap_or_else(|| "n/a".into()))
}

/// The CPU model name and the kernels' instruction-set level.
pub fn machine_line() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{model}, kernels {} ({} threads)",
        docseek_kernels::cpu::Isa::active(),
        docseek_kernels::cpu::pool::threads()
    )
}

/// Bytes per stored parameter of a linear weight in `quant` (q8: 34 bytes per 32 values, q4:
/// 18 per 32; rows whose length is a multiple of 64, as every decoder dimension is).
pub fn bytes_per_param(quant: Quant, dtype: DType) -> f64 {
    match quant {
        Quant::None => dtype.size_in_bytes() as f64,
        Quant::Q8 => 34.0 / 32.0,
        Quant::Q4 => 18.0 / 32.0,
    }
}

/// The last line of a refbench JSONL file with `bench` and the given fields equal.
pub fn reference(
    file: &Path,
    bench: &str,
    fields: &[(&str, serde_json::Value)],
) -> anyhow::Result<Option<serde_json::Value>> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["bench"] == bench && v["smoke"] != true && fields.iter().all(|(k, want)| &v[*k] == want)))
}

/// CPU time (user + system) this process has used, in seconds.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_threaded_probes_sum_every_word_once() {
        // Lengths that leave a tail after the 8 streams of whole lines, and one shorter than a line.
        for n in [0, 5, 64, 64 * 8 * 17 + 13, 100_003] {
            let words: Vec<u64> = (0..n as u64).collect();
            let want = words.iter().sum::<u64>();
            assert_eq!(sequential_sum(&words), want, "n = {n}");
            assert_eq!(streamed_sum(&words), want, "n = {n}");
        }
    }

    #[test]
    fn warming_reads_every_safetensors_file_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("docseek-warm-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.safetensors"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.join("b.safetensors"), vec![0u8; 24]).unwrap();
        std::fs::write(dir.join("config.json"), b"{}").unwrap();
        let (bytes, _) = warm_page_cache(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(bytes, 1024);
    }
}
