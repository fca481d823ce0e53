//! Inference engines: a tensor goes in, a tensor comes out.
//!
//! [`Engine`] is the small trait the frame path talks to, so tests and later stages do not care
//! which runtime runs. [`OrtEngine`] is the ONNX Runtime backend with providers TensorRT, CUDA
//! and CPU ([`Provider`]); it always knows which one really runs ([`ActiveProvider`]).

mod onnx;
pub mod probe;
pub mod tensorrt;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use onnx::{OrtEngine, probe_provider};

use crate::model::ModelError;
use crate::runtime::RuntimeError;

/// Element type of a tensor.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ElemType {
    /// 32-bit float.
    F32,
    /// 16-bit float (converted at the boundary: the frame path works in f32).
    F16,
    /// Anything else, by name (`int8`, `int64`, ...).
    Other(String),
}

impl ElemType {
    /// Whether the frame path can feed or read this type.
    pub fn is_float(&self) -> bool {
        matches!(self, ElemType::F32 | ElemType::F16)
    }
}

impl fmt::Display for ElemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElemType::F32 => f.write_str("float32"),
            ElemType::F16 => f.write_str("float16"),
            ElemType::Other(s) => f.write_str(s),
        }
    }
}

/// Name, type and shape of a graph input or output; free dimensions are `-1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub elem: ElemType,
    /// Shape, `-1` for free dimensions.
    pub shape: Vec<i64>,
}

/// What a model takes and gives, and its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelIo {
    /// Graph inputs.
    pub inputs: Vec<TensorInfo>,
    /// Graph outputs.
    pub outputs: Vec<TensorInfo>,
    /// `metadata_props` of the model.
    pub metadata: BTreeMap<String, String>,
}

/// The execution provider asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Provider {
    /// TensorRT, else CUDA, else CPU: the best this machine has.
    #[default]
    Auto,
    /// TensorRT only (error if it cannot run).
    TensorRt,
    /// CUDA only (error if it cannot run).
    Cuda,
    /// CPU only.
    Cpu,
}

impl Provider {
    /// The providers tried, in order.
    pub fn candidates(self) -> &'static [ActiveProvider] {
        match self {
            Provider::Auto => &[
                ActiveProvider::TensorRt,
                ActiveProvider::Cuda,
                ActiveProvider::Cpu,
            ],
            Provider::TensorRt => &[ActiveProvider::TensorRt],
            Provider::Cuda => &[ActiveProvider::Cuda],
            Provider::Cpu => &[ActiveProvider::Cpu],
        }
    }

    /// Whether the model will run on the CPU with this setting (`auto` without a visible GPU):
    /// it then competes for the cores with decoding, encoding and the other copies.
    pub fn expects_cpu(self) -> bool {
        match self {
            Provider::Cpu => true,
            Provider::Auto => !gpu_visible(),
            Provider::TensorRt | Provider::Cuda => false,
        }
    }

    /// Text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Auto => "auto",
            Provider::TensorRt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = crate::frame::ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Provider::Auto),
            "tensorrt" | "trt" => Ok(Provider::TensorRt),
            "cuda" => Ok(Provider::Cuda),
            "cpu" => Ok(Provider::Cpu),
            _ => Err(crate::frame::ParseEnumError {
                value: s.to_string(),
                what: "provider",
                expected: "auto, tensorrt, cuda or cpu",
            }),
        }
    }
}

/// The provider that actually runs a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActiveProvider {
    /// NVIDIA TensorRT (with CUDA for what TensorRT does not take).
    TensorRt,
    /// NVIDIA CUDA.
    Cuda,
    /// The CPU.
    Cpu,
    /// Not ONNX Runtime: an engine implemented in Rust (tests, benchmarks).
    Native,
}

impl ActiveProvider {
    /// Text form, as `--provider` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveProvider::TensorRt => "tensorrt",
            ActiveProvider::Cuda => "cuda",
            ActiveProvider::Cpu => "cpu",
            ActiveProvider::Native => "native",
        }
    }
    /// ONNX Runtime's name for the provider.
    pub fn ort_name(self) -> &'static str {
        match self {
            ActiveProvider::TensorRt => "TensorrtExecutionProvider",
            ActiveProvider::Cuda => "CUDAExecutionProvider",
            ActiveProvider::Cpu => "CPUExecutionProvider",
            ActiveProvider::Native => "native",
        }
    }
}

impl fmt::Display for ActiveProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A range of input shapes TensorRT builds its engine for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeProfile {
    /// The image input's name.
    pub input: String,
    /// Smallest input shape.
    pub min: [usize; 4],
    /// The shape to optimise for.
    pub opt: [usize; 4],
    /// Largest input shape.
    pub max: [usize; 4],
}

impl ShapeProfile {
    /// The profile covering all `shapes`, optimised for the first.
    pub fn covering(input: &str, shapes: &[[usize; 4]]) -> Option<ShapeProfile> {
        let first = *shapes.first()?;
        let mut min = first;
        let mut max = first;
        for s in shapes {
            for i in 0..4 {
                min[i] = min[i].min(s[i]);
                max[i] = max[i].max(s[i]);
            }
        }
        Some(ShapeProfile {
            input: input.to_string(),
            min,
            opt: first,
            max,
        })
    }
}

/// Whether an NVIDIA GPU is visible to this process (a device node or a driver that reports
/// one). Cheap: starts nothing.
pub fn gpu_visible() -> bool {
    std::path::Path::new("/dev/nvidia0").exists() || !tensorrt::gpu_names().is_empty()
}

/// Parses a list of frame sizes, `WxH[,WxH...]` (e.g. `1280x720,1920x1080`), each side from 1
/// to 16384; the error says which item is wrong and what was expected.
pub fn parse_resolutions(s: &str) -> Result<Vec<(usize, usize)>, String> {
    s.split(',')
        .map(|r| {
            let r = r.trim();
            let (w, h) = r
                .split_once('x')
                .ok_or_else(|| format!("'{r}' is not WxH (e.g. 1280x720)"))?;
            let side = |v: &str| match v.parse::<usize>() {
                Ok(n) if (1..=16384).contains(&n) => Ok(n),
                _ => Err(format!("'{r}' needs sizes from 1 to 16384")),
            };
            Ok((side(w)?, side(h)?))
        })
        .collect()
}

/// How to create an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineOptions {
    /// Provider wanted.
    pub provider: Provider,
    /// GPU index for CUDA and TensorRT.
    pub device_id: u32,
    /// Intra-op threads on CPU; 0 lets ONNX Runtime choose (one per core).
    pub threads: usize,
    /// Let TensorRT build fp16 engines.
    pub fp16: bool,
    /// Where TensorRT engine and timing caches go; `None`: `<project cache>/tensorrt`.
    pub engine_cache_dir: Option<PathBuf>,
    /// Input shapes TensorRT should build for. [`crate::Stylizer::load`] fills it from
    /// `resolutions` when it is `None`.
    pub profile: Option<ShapeProfile>,
    /// Frame sizes the caller will send (width, height): TensorRT's optimisation profile
    /// covers the tensor shapes they give, optimised for the first. Empty: TensorRT builds for
    /// the first shape it sees and again for any shape outside it.
    pub resolutions: Vec<(usize, usize)>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            provider: Provider::Auto,
            device_id: 0,
            threads: 0,
            fp16: true,
            engine_cache_dir: None,
            profile: None,
            resolutions: Vec::new(),
        }
    }
}

/// Why an engine cannot be created or cannot run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// ONNX Runtime itself is missing or too old.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The model cannot be used.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A provider that was asked for by name cannot run here.
    #[error("provider {provider} is not usable here: {reason}")]
    ProviderUnavailable {
        /// The provider asked for.
        provider: ActiveProvider,
        /// Why not.
        reason: String,
    },
    /// A constant input was given for a name the engine does not have.
    #[error("no input named '{0}'")]
    UnknownInput(String),
    /// Inference failed.
    #[error("inference failed: {0}")]
    Run(String),
    /// The model's output cannot be used.
    #[error("unexpected model output: {0}")]
    Output(String),
}

/// The output of one run: shape and values (f32 whatever the model's type).
#[derive(Debug, Clone, Copy)]
pub struct Output<'a> {
    /// Tensor shape.
    pub shape: &'a [usize],
    /// Values, row-major.
    pub data: &'a [f32],
}

/// A constant value for a non-image input.
#[derive(Debug, Clone, PartialEq)]
pub struct Constant {
    /// Input name.
    pub name: String,
    /// Element type the model wants.
    pub elem: ElemType,
    /// Shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Runs a model: one image tensor in, one image tensor out.
///
/// The engine owns its input and output memory, so a caller writes the input in place and
/// reads the output in place: after the first run at a shape, nothing is allocated.
pub trait Engine: Send {
    /// The model's inputs, outputs and metadata.
    fn io(&self) -> &ModelIo;
    /// The provider that actually runs.
    fn provider(&self) -> ActiveProvider;
    /// Chooses the image input and output and feeds the other inputs constants.
    fn bind(
        &mut self,
        input: &str,
        output: &str,
        constants: &[Constant],
    ) -> Result<(), EngineError>;
    /// The input buffer for an input of `shape`, to be filled before [`Engine::run`];
    /// reallocated only when the shape changes.
    fn input(&mut self, shape: [usize; 4]) -> Result<&mut [f32], EngineError>;
    /// Runs the model on the input buffer.
    fn run(&mut self) -> Result<Output<'_>, EngineError>;
    /// Providers that were tried before the one that runs, with the reason each was passed
    /// over (`auto` only).
    fn fallbacks(&self) -> &[(ActiveProvider, String)] {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_parse_and_order() {
        assert_eq!("TensorRT".parse::<Provider>().unwrap(), Provider::TensorRt);
        assert_eq!(
            Provider::Auto.candidates(),
            &[
                ActiveProvider::TensorRt,
                ActiveProvider::Cuda,
                ActiveProvider::Cpu
            ]
        );
        let e = "gpu".parse::<Provider>().unwrap_err();
        assert!(e.to_string().contains("auto, tensorrt, cuda or cpu"));
    }

    #[test]
    fn profile_covers_shapes() {
        let p = ShapeProfile::covering(
            "x",
            &[[1, 3, 360, 640], [1, 3, 720, 1280], [1, 3, 240, 320]],
        )
        .unwrap();
        assert_eq!(p.min, [1, 3, 240, 320]);
        assert_eq!(p.opt, [1, 3, 360, 640]);
        assert_eq!(p.max, [1, 3, 720, 1280]);
        assert!(ShapeProfile::covering("x", &[]).is_none());
    }
}
