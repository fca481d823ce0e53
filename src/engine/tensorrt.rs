//! TensorRT configuration: engine and timing caches keyed so that a cached engine is only
//! reused for the same model, shapes, precision, GPU and TensorRT version; optimisation
//! profiles from the shapes the caller declares; and finding the TensorRT library.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::ShapeProfile;

/// Sonames of the TensorRT 10 runtime, tried in order.
pub const LIBRARY_NAMES: [&str; 2] = ["libnvinfer.so.10", "libnvinfer.so"];

/// Opens the TensorRT library and returns its version (`10.9.0`), or why it cannot be found.
/// `extra_dir` is searched before the system path (the project cache's GPU directory).
pub fn library_version(extra_dir: Option<&Path>) -> Result<String, String> {
    let mut tried = Vec::new();
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(d) = extra_dir {
        candidates.extend(LIBRARY_NAMES.iter().map(|n| d.join(n)));
    }
    candidates.extend(LIBRARY_NAMES.iter().map(PathBuf::from));
    for c in candidates {
        if c.components().count() > 1 && !c.exists() {
            continue;
        }
        // SAFETY: the TensorRT runtime has no load-time preconditions; `getInferLibVersion`
        // is its exported C function `int32_t getInferLibVersion()`.
        match unsafe { libloading::Library::new(&c) } {
            Ok(lib) => {
                let v = unsafe {
                    lib.get::<unsafe extern "C" fn() -> i32>(b"getInferLibVersion")
                        .map(|f| f())
                };
                // Kept loaded: the provider will open it again by soname.
                std::mem::forget(lib);
                return match v {
                    Ok(v) => Ok(format_version(v)),
                    Err(_) => Ok("unknown".into()),
                };
            }
            Err(e) => tried.push(format!("{}: {e}", c.display())),
        }
    }
    Err(format!(
        "TensorRT 10 library not found ({}); install TensorRT 10 (libnvinfer) for CUDA 13, or use --provider cuda",
        LIBRARY_NAMES.join(" or ")
    ))
}

/// `getInferLibVersion` encodes major·10000 + minor·100 + patch (10.x and later).
fn format_version(v: i32) -> String {
    format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
}

/// Names of the NVIDIA GPUs the kernel driver reports, in index order.
pub fn gpu_names() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc/driver/nvidia/gpus") else {
        return Vec::new();
    };
    let mut entries: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    entries
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("information")).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string()))
        })
        .collect()
}

/// SHA-256 of a file, hex.
pub fn file_hash(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `name:1x3x360x640`, the form ONNX Runtime's TensorRT profile options take.
pub fn shape_option(input: &str, shape: &[usize; 4]) -> String {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    format!("{input}:{}", dims.join("x"))
}

/// Everything that decides whether a built engine can be reused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey<'a> {
    /// SHA-256 of the model file.
    pub model_hash: &'a str,
    /// Optimisation profile, if any.
    pub profile: Option<&'a ShapeProfile>,
    /// fp16 enabled.
    pub fp16: bool,
    /// GPU model name.
    pub gpu: &'a str,
    /// TensorRT version.
    pub trt_version: &'a str,
}

impl CacheKey<'_> {
    /// The directory for this key's engines under `root`: readable prefix plus a digest.
    pub fn dir(&self, root: &Path) -> PathBuf {
        let profile = self
            .profile
            .map(|p| format!("{:?}-{:?}-{:?}", p.min, p.opt, p.max))
            .unwrap_or_else(|| "dynamic".into());
        let text = format!(
            "model={}\nprofile={profile}\nfp16={}\ngpu={}\ntrt={}\n",
            self.model_hash, self.fp16, self.gpu, self.trt_version
        );
        let digest = hex(&Sha256::digest(text.as_bytes()));
        let short_model = &self.model_hash[..self.model_hash.len().min(12)];
        root.join(format!(
            "{short_model}-{}-{}",
            if self.fp16 { "fp16" } else { "fp32" },
            &digest[..16]
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_changes_with_every_part() {
        let p = ShapeProfile {
            input: "input".into(),
            min: [1, 3, 240, 320],
            opt: [1, 3, 360, 640],
            max: [1, 3, 720, 1280],
        };
        let base = CacheKey {
            model_hash: "abcdef0123456789",
            profile: Some(&p),
            fp16: true,
            gpu: "NVIDIA H100",
            trt_version: "10.9.0",
        };
        let root = Path::new("/c");
        let d = base.dir(root);
        assert!(d.starts_with(root));
        assert!(
            d.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("abcdef012345-fp16-")
        );
        let variants = [
            CacheKey {
                model_hash: "ffff",
                ..base.clone()
            },
            CacheKey {
                profile: None,
                ..base.clone()
            },
            CacheKey {
                fp16: false,
                ..base.clone()
            },
            CacheKey {
                gpu: "NVIDIA H200",
                ..base.clone()
            },
            CacheKey {
                trt_version: "10.10.0",
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.dir(root), d, "{v:?}");
        }
        assert_eq!(base.clone().dir(root), d);
    }

    #[test]
    fn profile_option_text() {
        assert_eq!(
            shape_option("input", &[1, 3, 360, 640]),
            "input:1x3x360x640"
        );
        assert_eq!(format_version(100903), "10.9.3");
    }

    #[test]
    fn missing_library_message_is_actionable() {
        // The build machines have no TensorRT: the error must say what to install.
        if let Err(e) = library_version(Some(Path::new("/nonexistent"))) {
            assert!(
                e.contains("libnvinfer") && e.contains("--provider cuda"),
                "{e}"
            );
        }
    }

    #[test]
    fn hashes_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("m");
        std::fs::write(&f, b"abc").unwrap();
        assert_eq!(
            file_hash(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
