//! Compiles `cuda/*.cu` to PTX, only under the `cuda` feature (a plain build never looks for
//! nvcc). Honours `CUDA_COMPUTE_CAP` (default 90: H100/H200) and finds nvcc in `CUDA_ROOT`,
//! `CUDA_HOME`, `CUDA_PATH` or `PATH`. The PTX is embedded into the crate and JIT-compiled by
//! the driver when a kernel is first used.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Kernel sources, one PTX module each.
const MODULES: [&str; 5] = ["norm", "rope", "moe", "gemm", "attention"];
/// Compute capability when `CUDA_COMPUTE_CAP` is not set.
const DEFAULT_CAP: &str = "90";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cuda");
    for v in ["CUDA_COMPUTE_CAP", "CUDA_ROOT", "CUDA_HOME", "CUDA_PATH", "NVCC"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let cap = std::env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| {
        println!("cargo:warning=CUDA_COMPUTE_CAP not set: building PTX for sm_{DEFAULT_CAP} (H100/H200)");
        DEFAULT_CAP.to_string()
    });
    let cap = cap.trim().trim_start_matches("sm_").to_string();
    assert!(
        cap.len() >= 2 && cap.chars().take(2).all(|c| c.is_ascii_digit()),
        "CUDA_COMPUTE_CAP must look like 90 or 89, got {cap}"
    );
    let nvcc = find_nvcc();
    let version = nvcc_version(&nvcc);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    let src = Path::new("cuda");
    let jobs: Vec<_> = MODULES
        .iter()
        .map(|m| {
            let (nvcc, cap, out, src) = (nvcc.clone(), cap.clone(), out.clone(), src.to_path_buf());
            let m = m.to_string();
            std::thread::spawn(move || {
                let ptx = out.join(format!("{m}.ptx"));
                let status = Command::new(&nvcc)
                    .args(["--ptx", "-O3", "-std=c++17", &format!("-arch=sm_{cap}"), "-I"])
                    .arg(&src)
                    .arg("-o")
                    .arg(&ptx)
                    .arg(src.join(format!("{m}.cu")))
                    .status()
                    .unwrap_or_else(|e| panic!("running {}: {e}", nvcc.display()));
                assert!(status.success(), "nvcc failed on cuda/{m}.cu");
            })
        })
        .collect();
    for j in jobs {
        j.join().expect("nvcc thread");
    }
    println!("cargo:rustc-env=DOCSEEK_CUDA_CAP={cap}");
    println!("cargo:rustc-env=DOCSEEK_CUDA_VERSION={version}");
}

fn find_nvcc() -> PathBuf {
    if let Some(p) = std::env::var_os("NVCC") {
        return PathBuf::from(p);
    }
    for var in ["CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"] {
        if let Some(root) = std::env::var_os(var) {
            let p = Path::new(&root).join("bin").join("nvcc");
            if p.is_file() {
                return p;
            }
        }
    }
    PathBuf::from("nvcc")
}

/// `13.0` from `nvcc --version` ("Cuda compilation tools, release 13.0, V13.0.88").
fn nvcc_version(nvcc: &Path) -> String {
    let out = Command::new(nvcc)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("nvcc not found ({e}): run scripts/setup.sh --cuda and source vendor/cuda/env.sh"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("release ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}
