//! Finding and loading the ONNX Runtime shared library.
//!
//! `ort` is built with `load-dynamic`: the library is opened at run time, from the first of
//! 1. `ORT_DYLIB_PATH` (when set, only that file is tried),
//! 2. the project cache filled by `scripts/setup.sh` (`$STYLIZE_CACHE_DIR`, else `.cache/` in
//!    the source tree): `onnxruntime/gpu/` before `onnxruntime/cpu/`,
//! 3. the system's library search path (`libonnxruntime.so`, `libonnxruntime.so.1`).
//!
//! A library older than the API level `ort` was built for is refused with a one-line error
//! naming the set-up command; nothing here panics.

use std::ffi::{CStr, c_char};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The command that installs ONNX Runtime into the project cache.
pub const SETUP_COMMAND: &str = "scripts/setup.sh";

/// The oldest ONNX Runtime minor version (1.x) the engine can use.
pub const MIN_MINOR_VERSION: u32 = ort::MINOR_VERSION;

/// Why ONNX Runtime could not be loaded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// No library file was found anywhere it was looked for.
    #[error(
        "ONNX Runtime library not found (looked in: {}); run `{SETUP_COMMAND}` or set ORT_DYLIB_PATH",
        .searched.join(", ")
    )]
    NotFound {
        /// The places searched, in order.
        searched: Vec<String>,
    },
    /// A library was found but could not be opened or used.
    #[error(
        "cannot load ONNX Runtime from {path}: {reason}; run `{SETUP_COMMAND}` or set ORT_DYLIB_PATH"
    )]
    Load {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The library is older than the engine needs.
    #[error(
        "ONNX Runtime at {path} is version {version}, but 1.{MIN_MINOR_VERSION} or newer is needed; run `{SETUP_COMMAND}` or set ORT_DYLIB_PATH"
    )]
    TooOld {
        /// The file.
        path: PathBuf,
        /// Its version string.
        version: String,
    },
}

/// Where a candidate library came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The `ORT_DYLIB_PATH` environment variable.
    EnvVar,
    /// The project cache (`scripts/setup.sh`).
    ProjectCache,
    /// The system library search path.
    System,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::EnvVar => "ORT_DYLIB_PATH",
            Source::ProjectCache => "project cache",
            Source::System => "system",
        })
    }
}

/// A place the library may be.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// A file path, or a bare soname for the system search.
    pub path: PathBuf,
    /// Where the candidate comes from.
    pub source: Source,
}

/// The loaded runtime.
#[derive(Debug)]
pub struct Runtime {
    /// The ONNX Runtime environment all sessions share.
    pub env: ort::environment::Environment,
    /// The library file that was loaded.
    pub path: PathBuf,
    /// Where it was found.
    pub source: Source,
    /// Its version, e.g. `1.31.1`.
    pub version: String,
    /// Execution providers compiled into this build of the library.
    pub providers: Vec<String>,
}

/// The project cache directory: `$STYLIZE_CACHE_DIR`, else `.cache` in the source tree.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("STYLIZE_CACHE_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache"),
    }
}

/// The places searched for the library, in order.
pub fn candidates() -> Vec<Candidate> {
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return vec![Candidate {
            path: PathBuf::from(p),
            source: Source::EnvVar,
        }];
    }
    let cache = cache_dir().join("onnxruntime");
    let mut out: Vec<Candidate> = ["gpu", "cpu"]
        .iter()
        .map(|flavour| Candidate {
            path: cache.join(flavour).join("libonnxruntime.so"),
            source: Source::ProjectCache,
        })
        .collect();
    for name in ["libonnxruntime.so", "libonnxruntime.so.1"] {
        out.push(Candidate {
            path: PathBuf::from(name),
            source: Source::System,
        });
    }
    out
}

/// Opens a library file just long enough to read its version string.
pub fn probe_version(path: &Path) -> Result<String, String> {
    // SAFETY: loading ONNX Runtime runs only its static initialisers, which have no
    // preconditions; the symbol is the documented C entry point with this signature.
    unsafe {
        let lib = libloading::Library::new(path).map_err(|e| e.to_string())?;
        let get_base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase")
                .map_err(|_| "not an ONNX Runtime library (no OrtGetApiBase)".to_string())?;
        let base = get_base();
        if base.is_null() {
            return Err("OrtGetApiBase returned null".into());
        }
        let v: *const c_char = ((*base).GetVersionString)();
        Ok(CStr::from_ptr(v).to_string_lossy().into_owned())
    }
}

fn minor_of(version: &str) -> Option<u32> {
    version.split('.').nth(1)?.parse().ok()
}

fn load() -> Result<Runtime, RuntimeError> {
    let mut searched = Vec::new();
    for c in candidates() {
        let is_file_path = c.path.components().count() > 1;
        if is_file_path && !c.path.exists() {
            if c.source == Source::EnvVar {
                return Err(RuntimeError::Load {
                    path: c.path,
                    reason: "ORT_DYLIB_PATH names a file that does not exist".into(),
                });
            }
            searched.push(c.path.display().to_string());
            continue;
        }
        let version = match probe_version(&c.path) {
            Ok(v) => v,
            // A bare soname the system does not have is "not found", not an error.
            Err(_) if c.source == Source::System => {
                searched.push(format!("system path ({})", c.path.display()));
                continue;
            }
            Err(reason) => {
                return Err(RuntimeError::Load {
                    path: c.path,
                    reason,
                });
            }
        };
        if minor_of(&version).is_none_or(|m| m < MIN_MINOR_VERSION) {
            return Err(RuntimeError::TooOld {
                path: c.path,
                version,
            });
        }
        let builder = ort::init_from(&c.path).map_err(|e| RuntimeError::Load {
            path: c.path.clone(),
            reason: e.to_string(),
        })?;
        let env = builder
            .with_name("stylize")
            .with_telemetry(false)
            .build()
            .map_err(|e| RuntimeError::Load {
                path: c.path.clone(),
                reason: e.to_string(),
            })?;
        env.set_log_level(log_level());
        let providers = available_providers();
        let path = std::fs::canonicalize(&c.path).unwrap_or(c.path);
        return Ok(Runtime {
            env,
            path,
            source: c.source,
            version,
            providers,
        });
    }
    Err(RuntimeError::NotFound { searched })
}

/// ONNX Runtime's own log level: `$STYLIZE_ORT_LOG` (verbose, info, warning, error, fatal),
/// default fatal. Every error also comes back to the caller as a status, which is reported
/// with context; ONNX Runtime's copy on stderr would only repeat it.
fn log_level() -> ort::logging::LogLevel {
    use ort::logging::LogLevel;
    match std::env::var("STYLIZE_ORT_LOG").as_deref() {
        Ok("verbose") => LogLevel::Verbose,
        Ok("info") => LogLevel::Info,
        Ok("warning") => LogLevel::Warning,
        Ok("error") => LogLevel::Error,
        _ => LogLevel::Fatal,
    }
}

/// The GPU build's CUDA provider needs the CUDA and cuDNN libraries that `setup.sh --gpu`
/// unpacks beside it; they are not on the loader path, so open them first by full path.
/// Failures are ignored here: the provider then fails to register and says why.
/// Called only when a GPU provider is about to be tried, so CPU runs do not map them.
pub fn preload_cuda_libraries(ort_path: &Path) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| preload_from(ort_path));
}

fn preload_from(ort_path: &Path) {
    let Some(dir) = ort_path.parent() else { return };
    if !dir.join("libonnxruntime_providers_cuda.so").exists() {
        return;
    }
    // Dependencies first (ort's lists are in dependency order), then any other cuDNN
    // sub-library the wheel ships, which cuDNN itself opens by soname on demand.
    let mut names: Vec<String> = ort::ep::cuda::CUDA_DYLIBS
        .iter()
        .chain(ort::ep::cuda::CUDNN_DYLIBS)
        .map(|s| s.to_string())
        .collect();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut extra: Vec<String> = entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with("libcudnn") && !names.contains(n))
            .collect();
        extra.sort();
        names.extend(extra);
    }
    for name in names {
        let p = dir.join(&name);
        if p.exists() {
            // SAFETY: these are the CUDA runtime libraries, loaded for their symbols only.
            if let Ok(lib) = unsafe { libloading::Library::new(&p) } {
                // Keep them loaded for the life of the process.
                std::mem::forget(lib);
            }
        }
    }
}

/// Providers compiled into the loaded library (e.g. `CUDAExecutionProvider`).
fn available_providers() -> Vec<String> {
    let mut names: *mut *mut c_char = std::ptr::null_mut();
    let mut count: i32 = 0;
    let api = ort::api();
    // SAFETY: documented C API; the array is released with the matching call.
    unsafe {
        let status = (api.GetAvailableProviders)(&mut names, &mut count);
        if !status.0.is_null() {
            (api.ReleaseStatus)(status.0);
            return Vec::new();
        }
        let out = (0..count as usize)
            .map(|i| CStr::from_ptr(*names.add(i)).to_string_lossy().into_owned())
            .collect();
        let _ = (api.ReleaseAvailableProviders)(names, count);
        out
    }
}

static RUNTIME: OnceLock<Result<Runtime, RuntimeError>> = OnceLock::new();

/// Loads ONNX Runtime once per process and returns it, or why it cannot be loaded.
pub fn runtime() -> Result<&'static Runtime, RuntimeError> {
    RUNTIME.get_or_init(load).as_ref().map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_version_parse() {
        assert_eq!(minor_of("1.31.1"), Some(31));
        assert_eq!(minor_of("1.16.3"), Some(16));
        assert_eq!(minor_of("garbage"), None);
    }

    #[test]
    fn not_found_names_the_setup_command() {
        let e = RuntimeError::NotFound {
            searched: vec!["/a/libonnxruntime.so".into()],
        };
        let s = e.to_string();
        assert!(s.contains("scripts/setup.sh"), "{s}");
        assert!(s.contains("/a/libonnxruntime.so"), "{s}");
        assert!(!s.contains('\n'));
    }
}
