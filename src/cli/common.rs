//! Flags shared by every command that runs a model, and their validation.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use stylize::engine::{EngineOptions, Provider};
use stylize::frame::{ChannelOrder, Layout, ValueRange};
use stylize::model::{SpecOverrides, parse_extra_input};
use stylize::{Stylizer, StylizerOptions, Upsampler, catalog};

use super::BadInput;

fn unit_interval(flag: &'static str) -> impl Fn(&str) -> Result<f32, String> + Clone {
    move |s| match s.parse::<f32>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{flag} must be between 0 and 1, got {v}")),
        Err(_) => Err(format!("{flag} takes a number between 0 and 1, got '{s}'")),
    }
}

/// A whole-number flag from `min` to `max` (`u64::MAX`: no upper bound); the error names the
/// flag and the range.
pub fn whole<T: TryFrom<u64>>(
    flag: &'static str,
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone + Send + Sync + 'static {
    move |s| {
        s.trim()
            .parse::<u64>()
            .ok()
            .filter(|v| (min..=max).contains(v))
            .and_then(|v| T::try_from(v).ok())
            .ok_or_else(|| {
                let range = if max == u64::MAX {
                    format!("of {min} or more")
                } else {
                    format!("from {min} to {max}")
                };
                format!("{flag} takes a whole number {range}, got '{s}'")
            })
    }
}

fn parse_strength(s: &str) -> Result<f32, String> {
    unit_interval("--strength")(s)
}

fn parse_scale(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v > 0.0 && v <= 1.0 => Ok(v),
        Ok(v) => Err(format!(
            "--inference-scale must be above 0 and at most 1, got {v}"
        )),
        Err(_) => Err(format!(
            "--inference-scale takes a number in (0, 1], got '{s}'"
        )),
    }
}

fn parse_multiple(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if (1..=1024).contains(&v) => Ok(v),
        _ => Err(format!(
            "--multiple-of takes a whole number from 1 to 1024, got '{s}'"
        )),
    }
}

/// Frame sizes given as one flag value (a newtype, so that clap takes the list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolutions(pub Vec<(usize, usize)>);

fn parse_trt_resolutions(s: &str) -> Result<Resolutions, String> {
    stylize::engine::parse_resolutions(s)
        .map(Resolutions)
        .map_err(|e| format!("--trt-resolutions: {e}"))
}

fn parse_threads(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(v) if v <= 1024 => Ok(v),
        _ => Err(format!(
            "--threads takes a whole number from 0 (automatic) to 1024, got '{s}'"
        )),
    }
}

/// Model and engine flags.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// ONNX style model: a path, or the name of a shipped model (see `stylize models`).
    /// Default: the shipped default style.
    #[arg(long, short = 'm', value_name = "PATH")]
    pub model: Option<String>,

    /// Execution provider: auto tries TensorRT, then CUDA, then CPU; a named one is strict.
    #[arg(long, default_value = "auto", value_name = "auto|tensorrt|cuda|cpu")]
    pub provider: Provider,

    /// GPU index for CUDA and TensorRT.
    #[arg(long, default_value_t = 0, value_parser = whole::<u32>("--device-id", 0, 64), value_name = "N")]
    pub device_id: u32,

    /// CPU threads for inference (0: one per core).
    #[arg(long, default_value = "0", value_parser = parse_threads, value_name = "N")]
    pub threads: usize,

    /// Build TensorRT engines in fp32 only (default: fp16 allowed).
    #[arg(long)]
    pub no_fp16: bool,

    /// Frame sizes TensorRT builds its engine for (its optimisation profile covers them and
    /// is tuned for the first), e.g. 1280x720,1920x1080. Default: the first size it sees.
    #[arg(long, value_parser = parse_trt_resolutions, value_name = "WxH,...")]
    pub trt_resolutions: Option<Resolutions>,

    /// Where TensorRT keeps built engines and timing caches.
    #[arg(long, value_name = "DIR")]
    pub engine_cache_dir: Option<PathBuf>,

    /// 1 = fully stylised, 0 = the original picture.
    #[arg(long, default_value = "1", value_parser = parse_strength, value_name = "0..1")]
    pub strength: f32,

    /// Run the model on a picture scaled by this (0 < F ≤ 1) and scale the result back.
    #[arg(long, default_value = "1", value_parser = parse_scale, value_name = "F")]
    pub inference_scale: f32,

    /// How a result computed at --inference-scale below 1 is scaled back: guided by the
    /// full-size input (sharp edges) or bilinear.
    #[arg(long, default_value = "guided", value_name = "guided|bilinear")]
    pub upsampler: Upsampler,

    /// Value range the model takes (overrides sidecar and metadata).
    #[arg(long, value_name = "0-1|0-255|-1-1", allow_hyphen_values = true)]
    pub input_range: Option<ValueRange>,

    /// Value range the model gives (default: its input range).
    #[arg(long, value_name = "0-1|0-255|-1-1", allow_hyphen_values = true)]
    pub output_range: Option<ValueRange>,

    /// Channel order of the model's tensors.
    #[arg(long, value_name = "rgb|bgr")]
    pub channel_order: Option<ChannelOrder>,

    /// Tensor layout of the model.
    #[arg(long, value_name = "nchw|nhwc")]
    pub layout: Option<Layout>,

    /// Pad free-size inputs to a multiple of N.
    #[arg(long, value_parser = parse_multiple, value_name = "N")]
    pub multiple_of: Option<usize>,

    /// Value of another model input, e.g. style_weights=1,0,0 (repeatable).
    #[arg(long, value_name = "NAME=V1,V2,...")]
    pub extra_input: Vec<String>,

    /// Name of the model's image input, when it has several rank-4 inputs.
    #[arg(long, value_name = "NAME")]
    pub input_name: Option<String>,

    /// Name of the model's image output.
    #[arg(long, value_name = "NAME")]
    pub output_name: Option<String>,
}

/// Validated model settings.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    pub model: PathBuf,
    pub flags: SpecOverrides,
    pub engine: EngineOptions,
    pub stylizer: StylizerOptions,
    pub strength: f32,
}

impl ModelArgs {
    /// Validates the flags into a config.
    pub fn validate(&self) -> Result<ModelConfig> {
        let model = match &self.model {
            Some(m) => catalog::resolve(m),
            None => catalog::default_model().ok_or_else(|| {
                BadInput(format!(
                    "no --model given and the default model {}/{}.onnx is not there",
                    catalog::models_dir().display(),
                    catalog::DEFAULT_MODEL
                ))
            })?,
        };
        let mut flags = SpecOverrides {
            input: self.input_name.clone(),
            output: self.output_name.clone(),
            layout: self.layout,
            channel_order: self.channel_order,
            input_range: self.input_range,
            output_range: self.output_range,
            multiple_of: self.multiple_of,
            ..Default::default()
        };
        for e in &self.extra_input {
            let (name, values) =
                parse_extra_input(e).map_err(|err| BadInput(format!("--extra-input: {err}")))?;
            if flags.extra_inputs.insert(name.clone(), values).is_some() {
                return Err(BadInput(format!("--extra-input: '{name}' is given twice")).into());
            }
        }
        Ok(ModelConfig {
            model,
            flags,
            engine: EngineOptions {
                provider: self.provider,
                device_id: self.device_id,
                threads: self.threads,
                fp16: !self.no_fp16,
                engine_cache_dir: self.engine_cache_dir.clone(),
                profile: None,
                resolutions: self
                    .trt_resolutions
                    .clone()
                    .map(|r| r.0)
                    .unwrap_or_default(),
            },
            stylizer: StylizerOptions {
                inference_scale: self.inference_scale,
                upsampler: self.upsampler,
            },
            strength: self.strength,
        })
    }
}

impl ModelConfig {
    /// The `styletransfer` element's properties for these settings (name, value as text);
    /// the temporal ones are the command's.
    pub fn element_properties(&self) -> Vec<(String, String)> {
        let f = &self.flags;
        let mut p = vec![
            ("model".to_string(), self.model.display().to_string()),
            ("provider".into(), self.engine.provider.as_str().into()),
            ("device-id".into(), self.engine.device_id.to_string()),
            ("threads".into(), self.engine.threads.to_string()),
            ("fp16".into(), self.engine.fp16.to_string()),
            ("strength".into(), self.strength.to_string()),
            (
                "inference-scale".into(),
                self.stylizer.inference_scale.max(0.05).to_string(),
            ),
            ("upsampler".into(), self.stylizer.upsampler.name().into()),
        ];
        if let Some(d) = &self.engine.engine_cache_dir {
            p.push(("engine-cache-dir".into(), d.display().to_string()));
        }
        if !self.engine.resolutions.is_empty() {
            let r: Vec<String> = self
                .engine
                .resolutions
                .iter()
                .map(|(w, h)| format!("{w}x{h}"))
                .collect();
            p.push(("trt-resolutions".into(), r.join(",")));
        }
        if let Some(r) = f.input_range {
            p.push(("input-range".into(), r.to_string()));
        }
        if let Some(o) = f.channel_order {
            p.push(("channel-order".into(), o.to_string()));
        }
        if let Some(r) = f.output_range {
            p.push(("output-range".into(), r.to_string()));
        }
        if let Some(l) = f.layout {
            p.push(("layout".into(), l.to_string()));
        }
        if let Some(n) = f.multiple_of {
            p.push(("multiple-of".into(), n.to_string()));
        }
        if let Some(n) = &f.input {
            p.push(("input-name".into(), n.clone()));
        }
        if let Some(n) = &f.output {
            p.push(("output-name".into(), n.clone()));
        }
        if !f.extra_inputs.is_empty() {
            let parts: Vec<String> = f
                .extra_inputs
                .iter()
                .map(|(k, v)| {
                    let vals: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                    format!("{k}={}", vals.join(","))
                })
                .collect();
            p.push(("extra-input".into(), parts.join(";")));
        }
        p
    }

    /// Loads the model; the error names the model and the reason.
    pub fn load(&self) -> Result<Stylizer> {
        Ok(Stylizer::load(
            &self.model,
            &self.flags,
            &self.engine,
            self.stylizer,
        )?)
    }
}

/// `cpu`, or `cpu (tensorrt, cuda not usable here; see `stylize doctor`)` when `auto`
/// passed over GPU providers.
pub fn provider_line(s: &Stylizer) -> String {
    let p = s.engine().provider();
    let fallbacks = s.engine().fallbacks();
    if fallbacks.is_empty() {
        p.to_string()
    } else {
        let names: Vec<&str> = fallbacks.iter().map(|(p, _)| p.as_str()).collect();
        format!(
            "{p} ({} not usable here; see `stylize doctor`)",
            names.join(", ")
        )
    }
}
