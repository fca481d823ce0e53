//! The ONNX Runtime backend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use half::f16;
use ort::AsPointer;
use ort::ep::{self, ExecutionProviderDispatch};
use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{IoBinding, Session};
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use super::tensorrt::{self, CacheKey};
use super::{
    ActiveProvider, Constant, ElemType, Engine, EngineError, EngineOptions, ModelIo, Output,
    TensorInfo,
};
use crate::model::ModelError;
use crate::runtime::{self, Runtime};

fn elem_type(t: TensorElementType) -> ElemType {
    match t {
        TensorElementType::Float32 => ElemType::F32,
        TensorElementType::Float16 => ElemType::F16,
        other => ElemType::Other(
            match other {
                TensorElementType::Uint8 => "uint8",
                TensorElementType::Int8 => "int8",
                TensorElementType::Uint16 => "uint16",
                TensorElementType::Int16 => "int16",
                TensorElementType::Int32 => "int32",
                TensorElementType::Int64 => "int64",
                TensorElementType::Uint32 => "uint32",
                TensorElementType::Uint64 => "uint64",
                TensorElementType::Float64 => "float64",
                TensorElementType::Bfloat16 => "bfloat16",
                TensorElementType::Bool => "bool",
                TensorElementType::String => "string",
                _ => "an unsupported type",
            }
            .to_string(),
        ),
    }
}

fn tensor_info(name: &str, t: &ValueType) -> TensorInfo {
    match t {
        ValueType::Tensor { ty, shape, .. } => TensorInfo {
            name: name.to_string(),
            elem: elem_type(*ty),
            shape: shape.to_vec(),
        },
        other => TensorInfo {
            name: name.to_string(),
            elem: ElemType::Other(format!("{other:?}").to_lowercase()),
            shape: Vec::new(),
        },
    }
}

/// Checks the file before ONNX Runtime sees it, so that its errors name what is wrong.
fn check_file(path: &Path) -> Result<(), ModelError> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ModelError::NotFound {
            path: path.to_path_buf(),
        },
        _ => ModelError::Unreadable {
            path: path.to_path_buf(),
            reason: e.to_string(),
        },
    })?;
    if meta.is_dir() {
        return Err(ModelError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    std::fs::File::open(path).map_err(|e| ModelError::Unreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if meta.len() == 0 {
        return Err(ModelError::Invalid {
            path: path.to_path_buf(),
            reason: "the file is empty".into(),
        });
    }
    Ok(())
}

fn cpu_session(rt: &Runtime, path: &Path, threads: usize) -> Result<Session, String> {
    let mut b = Session::builder(&rt.env)
        .map_err(|e| e.to_string())?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| e.to_string())?;
    if threads > 0 {
        b = b.with_intra_threads(threads).map_err(|e| e.to_string())?;
    }
    // ONNX Runtime's threads spin between layers (its default): waking a sleeping thread
    // for every layer cost `stylize convert` 8 % of its frames per second at 1280x720 on two
    // cores (median of 5 runs: 1.50 against 1.63 fps).
    b.commit_from_file(path).map_err(|e| e.to_string())
}

fn read_io(session: &Session) -> ModelIo {
    let inputs = session
        .inputs()
        .iter()
        .map(|o| tensor_info(o.name(), o.dtype()))
        .collect();
    let outputs = session
        .outputs()
        .iter()
        .map(|o| tensor_info(o.name(), o.dtype()))
        .collect();
    let mut metadata = BTreeMap::new();
    if let Ok(m) = session.metadata() {
        for k in m.custom_keys().unwrap_or_default() {
            if let Some(v) = m.custom(&k) {
                metadata.insert(k, v);
            }
        }
    }
    ModelIo {
        inputs,
        outputs,
        metadata,
    }
}

/// Why a GPU provider cannot be used before a session is even tried, if it cannot.
fn gpu_precheck(rt: &Runtime, p: ActiveProvider) -> Result<(), String> {
    if !rt.providers.iter().any(|n| n == p.ort_name()) {
        return Err(format!(
            "the ONNX Runtime at {} ({}) is built without {}; install the GPU build with `{} --gpu`",
            rt.path.display(),
            rt.version,
            p.ort_name(),
            runtime::SETUP_COMMAND
        ));
    }
    if !super::gpu_visible() {
        return Err("no NVIDIA GPU is visible (no /dev/nvidia0, no driver)".into());
    }
    runtime::preload_cuda_libraries(&rt.path);
    if p == ActiveProvider::TensorRt {
        tensorrt::library_version(rt.path.parent())?;
    }
    Ok(())
}

fn cuda_ep(opts: &EngineOptions) -> ExecutionProviderDispatch {
    ep::CUDA::default()
        .with_device_id(opts.device_id as i32)
        .build()
        .error_on_failure()
}

fn tensorrt_ep(
    rt: &Runtime,
    path: &Path,
    opts: &EngineOptions,
    input: Option<&str>,
) -> Result<ExecutionProviderDispatch, String> {
    let root = opts
        .engine_cache_dir
        .clone()
        .unwrap_or_else(|| runtime::cache_dir().join("tensorrt"));
    let model_hash = tensorrt::file_hash(path).map_err(|e| e.to_string())?;
    let gpus = tensorrt::gpu_names();
    let gpu = gpus
        .get(opts.device_id as usize)
        .map(String::as_str)
        .unwrap_or("unknown-gpu");
    let trt_version = tensorrt::library_version(rt.path.parent())?;
    let profile = opts.profile.as_ref().filter(|_| input.is_some());
    let key = CacheKey {
        model_hash: &model_hash,
        profile,
        fp16: opts.fp16,
        gpu,
        trt_version: &trt_version,
    };
    let dir = key.dir(&root);
    let timing = root.join("timing");
    for d in [&dir, &timing] {
        std::fs::create_dir_all(d)
            .map_err(|e| format!("cannot create TensorRT cache {}: {e}", d.display()))?;
    }
    let mut trt = ep::TensorRT::default()
        .with_device_id(opts.device_id as i32)
        .with_fp16(opts.fp16)
        .with_engine_cache(true)
        .with_engine_cache_path(dir.display())
        .with_timing_cache(true)
        .with_timing_cache_path(timing.display())
        .with_builder_optimization_level(3);
    if let (Some(p), Some(name)) = (profile, input) {
        trt = trt
            .with_profile_min_shapes(tensorrt::shape_option(name, &p.min))
            .with_profile_opt_shapes(tensorrt::shape_option(name, &p.opt))
            .with_profile_max_shapes(tensorrt::shape_option(name, &p.max));
    }
    Ok(trt.build().error_on_failure())
}

fn gpu_session(
    rt: &Runtime,
    path: &Path,
    p: ActiveProvider,
    opts: &EngineOptions,
    input: Option<&str>,
) -> Result<Session, String> {
    gpu_precheck(rt, p)?;
    let eps = match p {
        // TensorRT takes what it can; CUDA runs the rest on the GPU too.
        ActiveProvider::TensorRt => vec![tensorrt_ep(rt, path, opts, input)?, cuda_ep(opts)],
        _ => vec![cuda_ep(opts)],
    };
    let mut b = Session::builder(&rt.env)
        .map_err(|e| e.to_string())?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| e.to_string())?;
    if opts.threads > 0 {
        b = b
            .with_intra_threads(opts.threads)
            .map_err(|e| e.to_string())?;
    }
    b.with_execution_providers(eps)
        .map_err(|e| e.to_string())?
        .commit_from_file(path)
        .map_err(|e| e.to_string())
}

/// Whether `provider` can run a session on this machine: `Ok(())` or why not.
/// Uses `model` as the probe.
pub fn probe_provider(provider: ActiveProvider, model: &Path) -> Result<(), String> {
    let rt = runtime::runtime().map_err(|e| e.to_string())?;
    let opts = EngineOptions::default();
    match provider {
        ActiveProvider::Cpu => cpu_session(rt, model, 1).map(drop),
        ActiveProvider::Native => Ok(()),
        p => gpu_session(rt, model, p, &opts, None).map(drop),
    }
}

enum InputBuf {
    F32(Tensor<f32>),
    F16(Tensor<f16>, Vec<f32>),
}

enum OutputBuf {
    /// Not bound yet for this shape: ONNX Runtime allocates on the first run.
    Unbound,
    F32(Tensor<f32>),
    F16(Tensor<f16>, Vec<f32>),
}

/// ONNX Runtime engine. I/O binding keeps input and output tensors allocated between runs.
pub struct OrtEngine {
    session: Session,
    path: PathBuf,
    io: ModelIo,
    provider: ActiveProvider,
    fallbacks: Vec<(ActiveProvider, String)>,
    binding: IoBinding,
    input_name: String,
    output_name: String,
    input_elem: ElemType,
    in_shape: [usize; 4],
    input: Option<InputBuf>,
    output: OutputBuf,
    out_shape: Vec<usize>,
    /// Keeps constant input values alive while bound.
    _constants: Vec<DynValue>,
    /// Runs on CUDA or TensorRT.
    gpu: bool,
    /// On CUDA and TensorRT: page-locked host memory for the input and output tensors, so
    /// that the copies to and from the GPU are direct DMA (`None` on CPU, or if ONNX Runtime
    /// cannot give it, when ordinary memory is used).
    pinned: Option<Allocator>,
    /// On CUDA and TensorRT, ONNX Runtime copies a host input to the GPU when it is bound,
    /// not when the session runs: the input is bound again before every run, by this name.
    rebind_input: Option<std::ffi::CString>,
}

// SAFETY: an OrtEngine is used by one thread at a time (`&mut self` for every run); the
// session, binding and values it owns are plain ONNX Runtime objects without thread
// affinity, which ONNX Runtime allows to be moved between threads.
unsafe impl Send for OrtEngine {}

impl std::fmt::Debug for OrtEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrtEngine")
            .field("path", &self.path)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

impl OrtEngine {
    /// Loads `path` on the provider `opts` asks for. `Provider::Auto` tries TensorRT, CUDA,
    /// then CPU and records why each GPU provider was passed over ([`OrtEngine::fallbacks`]);
    /// a named provider that cannot run is an error that says why.
    pub fn load(path: &Path, opts: &EngineOptions) -> Result<OrtEngine, EngineError> {
        let rt = runtime::runtime()?;
        check_file(path)?;
        // A CPU session first: it proves the file is a loadable model (so provider errors
        // are never mistaken for model errors) and is the CPU engine itself if it comes to
        // that.
        let cpu = cpu_session(rt, path, opts.threads).map_err(|reason| ModelError::Invalid {
            path: path.to_path_buf(),
            reason,
        })?;
        let io = read_io(&cpu);
        let image_input = opts.profile.as_ref().map(|p| p.input.clone()).or_else(|| {
            io.inputs
                .iter()
                .find(|t| t.shape.len() == 4)
                .map(|t| t.name.clone())
        });
        let mut fallbacks = Vec::new();
        let mut cpu = Some(cpu);
        for &p in opts.provider.candidates() {
            let session = match p {
                ActiveProvider::Cpu | ActiveProvider::Native => cpu.take().map(Ok),
                _ => Some(gpu_session(rt, path, p, opts, image_input.as_deref())),
            };
            match session {
                Some(Ok(s)) => return Self::new(s, path, io, p, fallbacks),
                Some(Err(reason)) => fallbacks.push((p, reason)),
                None => {}
            }
        }
        let (provider, reason) = fallbacks
            .pop()
            .unwrap_or((ActiveProvider::Cpu, "no provider was tried".into()));
        Err(EngineError::ProviderUnavailable { provider, reason })
    }

    /// The inputs, outputs and metadata of a model file, from a CPU session (no GPU
    /// provider is started).
    pub fn read_io_of(path: &Path, opts: &EngineOptions) -> Result<ModelIo, EngineError> {
        let rt = runtime::runtime()?;
        check_file(path)?;
        let cpu =
            cpu_session(rt, path, opts.threads.max(1)).map_err(|reason| ModelError::Invalid {
                path: path.to_path_buf(),
                reason,
            })?;
        Ok(read_io(&cpu))
    }

    fn new(
        session: Session,
        path: &Path,
        io: ModelIo,
        provider: ActiveProvider,
        fallbacks: Vec<(ActiveProvider, String)>,
    ) -> Result<OrtEngine, EngineError> {
        let binding = session
            .create_binding()
            .map_err(|e| EngineError::Run(e.to_string()))?;
        let gpu = matches!(provider, ActiveProvider::Cuda | ActiveProvider::TensorRt);
        let pinned = gpu
            .then(|| {
                // ONNX Runtime registers its one pinned allocator under device 0.
                MemoryInfo::new(
                    AllocationDevice::CUDA_PINNED,
                    0,
                    AllocatorType::Device,
                    MemoryType::CPUInput,
                )
                .and_then(|info| Allocator::new(&session, info))
                .ok()
            })
            .flatten();
        Ok(OrtEngine {
            session,
            path: path.to_path_buf(),
            io,
            provider,
            fallbacks,
            binding,
            input_name: String::new(),
            output_name: String::new(),
            input_elem: ElemType::F32,
            in_shape: [0; 4],
            input: None,
            output: OutputBuf::Unbound,
            out_shape: Vec::new(),
            _constants: Vec::new(),
            pinned,
            rebind_input: None,
            gpu,
        })
    }

    /// The allocator of the host-side input and output tensors.
    fn host_allocator(&self) -> &Allocator {
        self.pinned.as_ref().unwrap_or(self.session.allocator())
    }

    /// Binds the input tensor again (GPU providers: this is when ONNX Runtime copies it to
    /// the device), without the allocations of `IoBinding::bind_input`.
    fn rebind(&self) -> Result<(), EngineError> {
        let (Some(name), Some(input)) = (&self.rebind_input, &self.input) else {
            return Ok(());
        };
        let value = match input {
            InputBuf::F32(t) => t.ptr(),
            InputBuf::F16(t, _) => t.ptr(),
        };
        let api = ort::api();
        // SAFETY: the binding and the value are live objects of this engine; the value was
        // bound under this name before, so the binding already holds a reference to it.
        unsafe {
            let status = (api.BindInput)(self.binding.ptr().cast_mut(), name.as_ptr(), value);
            if !status.0.is_null() {
                let msg = std::ffi::CStr::from_ptr((api.GetErrorMessage)(status.0))
                    .to_string_lossy()
                    .into_owned();
                (api.ReleaseStatus)(status.0);
                return Err(self.run_err(msg));
            }
        }
        Ok(())
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn run_err(&self, e: impl std::fmt::Display) -> EngineError {
        EngineError::Run(format!("{}: {e}", self.path.display()))
    }

    /// Runs with everything bound, without the per-run bookkeeping allocations of
    /// `Session::run_binding` (which also collects output values we already hold).
    fn run_bound(&self) -> Result<(), EngineError> {
        let api = ort::api();
        // SAFETY: session and binding are live objects of this engine; all inputs and
        // outputs are bound to tensors this engine keeps alive.
        unsafe {
            let status = (api.RunWithBinding)(
                self.session.ptr().cast_mut(),
                std::ptr::null(),
                self.binding.ptr(),
            );
            if !status.0.is_null() {
                let msg = std::ffi::CStr::from_ptr((api.GetErrorMessage)(status.0))
                    .to_string_lossy()
                    .into_owned();
                (api.ReleaseStatus)(status.0);
                return Err(self.run_err(msg));
            }
        }
        Ok(())
    }
}

impl Engine for OrtEngine {
    fn io(&self) -> &ModelIo {
        &self.io
    }

    fn provider(&self) -> ActiveProvider {
        self.provider
    }

    fn fallbacks(&self) -> &[(ActiveProvider, String)] {
        &self.fallbacks
    }

    fn bind(
        &mut self,
        input: &str,
        output: &str,
        constants: &[Constant],
    ) -> Result<(), EngineError> {
        let find = |ts: &[TensorInfo], n: &str| ts.iter().find(|t| t.name == n).cloned();
        let inp = find(&self.io.inputs, input).ok_or(EngineError::UnknownInput(input.into()))?;
        find(&self.io.outputs, output).ok_or(EngineError::UnknownInput(output.into()))?;
        self.binding.clear();
        self._constants.clear();
        for c in constants {
            let value: DynValue = match c.elem {
                ElemType::F16 => Tensor::from_array((
                    c.shape.clone(),
                    c.values
                        .iter()
                        .map(|&v| f16::from_f32(v))
                        .collect::<Vec<_>>(),
                ))
                .map(|t| t.into_dyn()),
                _ => Tensor::from_array((c.shape.clone(), c.values.clone())).map(|t| t.into_dyn()),
            }
            .map_err(|e| self.run_err(e))?;
            self.binding
                .bind_input(c.name.as_str(), &value)
                .map_err(|e| self.run_err(format!("binding '{}': {e}", c.name)))?;
            self._constants.push(value);
        }
        self.input_name = input.to_string();
        self.output_name = output.to_string();
        self.input_elem = inp.elem;
        self.in_shape = [0; 4];
        self.input = None;
        self.output = OutputBuf::Unbound;
        Ok(())
    }

    fn input(&mut self, shape: [usize; 4]) -> Result<&mut [f32], EngineError> {
        if self.input_name.is_empty() {
            return Err(EngineError::Run("bind() was not called".into()));
        }
        if self.input.is_none() || self.in_shape != shape {
            let alloc = self.host_allocator();
            let buf = match self.input_elem {
                ElemType::F16 => InputBuf::F16(
                    Tensor::<f16>::new(alloc, shape).map_err(|e| self.run_err(e))?,
                    vec![0.0; shape.iter().product()],
                ),
                _ => InputBuf::F32(Tensor::<f32>::new(alloc, shape).map_err(|e| self.run_err(e))?),
            };
            let bound = match &buf {
                InputBuf::F32(t) => self.binding.bind_input(self.input_name.as_str(), t),
                InputBuf::F16(t, _) => self.binding.bind_input(self.input_name.as_str(), t),
            };
            bound.map_err(|e| self.run_err(e))?;
            self.input = Some(buf);
            self.in_shape = shape;
            if self.gpu {
                self.rebind_input = Some(
                    std::ffi::CString::new(self.input_name.as_str())
                        .map_err(|e| self.run_err(e))?,
                );
            }
            // The output shape may change with the input's: let ONNX Runtime allocate it once.
            let mem = self.session.allocator().memory_info().clone();
            self.binding
                .bind_output_to_device(self.output_name.as_str(), &mem)
                .map_err(|e| self.run_err(e))?;
            self.output = OutputBuf::Unbound;
        }
        Ok(match self.input.as_mut().expect("allocated above") {
            InputBuf::F32(t) => t.extract_tensor_mut().1,
            InputBuf::F16(_, staging) => staging.as_mut_slice(),
        })
    }

    fn run(&mut self) -> Result<Output<'_>, EngineError> {
        match self.input.as_mut() {
            None => return Err(EngineError::Run("no input was prepared".into())),
            Some(InputBuf::F16(t, staging)) => {
                // fp16 models: convert at the boundary.
                for (d, s) in t.extract_tensor_mut().1.iter_mut().zip(staging.iter()) {
                    *d = f16::from_f32(*s);
                }
            }
            Some(InputBuf::F32(_)) => {}
        }
        self.rebind()?;
        if matches!(self.output, OutputBuf::Unbound) {
            // First run at this shape: ONNX Runtime allocates the output; keep a tensor of
            // that shape bound for the runs that follow.
            let outputs = self
                .session
                .run_binding(&self.binding)
                .map_err(|e| EngineError::Run(format!("{}: {e}", self.path.display())))?;
            let value = outputs
                .get(self.output_name.as_str())
                .ok_or_else(|| EngineError::Output(format!("no output '{}'", self.output_name)))?;
            let first: (Vec<usize>, Result<Vec<f32>, Vec<f16>>) = match value.dtype() {
                ValueType::Tensor {
                    ty: TensorElementType::Float32,
                    ..
                } => {
                    let (shape, data) = value
                        .try_extract_tensor::<f32>()
                        .map_err(|e| EngineError::Output(e.to_string()))?;
                    (
                        shape.iter().map(|&d| d as usize).collect(),
                        Ok(data.to_vec()),
                    )
                }
                ValueType::Tensor {
                    ty: TensorElementType::Float16,
                    ..
                } => {
                    let (shape, data) = value
                        .try_extract_tensor::<f16>()
                        .map_err(|e| EngineError::Output(e.to_string()))?;
                    (
                        shape.iter().map(|&d| d as usize).collect(),
                        Err(data.to_vec()),
                    )
                }
                other => {
                    return Err(EngineError::Output(format!(
                        "output '{}' is {other:?}, expected a float32 or float16 tensor",
                        self.output_name
                    )));
                }
            };
            drop(outputs);
            let (dims, data) = first;
            let alloc = self.host_allocator();
            let out = match data {
                Ok(data) => {
                    let mut t = Tensor::<f32>::new(alloc, dims.clone())
                        .map_err(|e| EngineError::Output(e.to_string()))?;
                    t.extract_tensor_mut().1.copy_from_slice(&data);
                    OutputBuf::F32(t)
                }
                Err(data) => {
                    let t = Tensor::<f16>::new(alloc, dims.clone())
                        .map_err(|e| EngineError::Output(e.to_string()))?;
                    OutputBuf::F16(t, data.iter().map(|v| v.to_f32()).collect())
                }
            };
            self.out_shape = dims;
            self.output = out;
            let name = self.output_name.clone();
            let bound = match &mut self.output {
                OutputBuf::F32(t) => self.binding.bind_output(name, t),
                OutputBuf::F16(t, _) => self.binding.bind_output(name, t),
                OutputBuf::Unbound => unreachable!(),
            };
            bound.map_err(|e| EngineError::Run(e.to_string()))?;
        } else {
            self.run_bound()?;
            if let OutputBuf::F16(t, staging) = &mut self.output {
                for (d, s) in staging.iter_mut().zip(t.extract_tensor().1) {
                    *d = s.to_f32();
                }
            }
        }
        let data: &[f32] = match &self.output {
            OutputBuf::F32(t) => t.extract_tensor().1,
            OutputBuf::F16(_, staging) => staging,
            OutputBuf::Unbound => unreachable!("bound above"),
        };
        Ok(Output {
            shape: &self.out_shape,
            data,
        })
    }
}
