//! Model conventions: what a style generator expects and returns.
//!
//! Generators in the wild disagree on everything: layout, channel order, value range, fixed or
//! free size, extra inputs. A [`ModelSpec`] pins these down for one model, from these sources,
//! highest first:
//! 1. command-line flags / element properties ([`SpecOverrides`]),
//! 2. a sidecar JSON file next to the model, named `<model file>.json`
//!    (e.g. `candy.onnx.json`, see [`SpecOverrides::from_sidecar_json`]),
//! 3. ONNX `metadata_props` with the keys in [`meta`], written by `scripts/export_onnx.py`,
//! 4. what the graph's shapes tell (fixed sizes, which dimension has the 3 channels).
//!
//! Without any of these: RGB, values 0-255 in and out, NCHW, free sizes taken as they are;
//! if the model then refuses a size, the frame path pads to multiples of
//! [`AUTO_MULTIPLES`] in turn.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::{ElemType, ModelIo, TensorInfo};
use crate::frame::{ChannelOrder, Layout, TensorFormat, ValueRange};

/// When no source gives `multiple_of` and a model refuses a frame size (typically a
/// generator whose skip connections need sizes divisible by 2^stages), these paddings are
/// tried in turn. Padding replicates the edge and is cropped away afterwards.
pub const AUTO_MULTIPLES: [usize; 2] = [8, 32];

/// The largest `multiple_of` any source may give (flag, element property, sidecar, metadata).
pub const MAX_MULTIPLE_OF: usize = 1024;

/// The largest fixed width or height a model's input may declare. Larger ones (a corrupt or
/// hostile file) would make tensors whose size overflows; such a model is refused.
pub const MAX_FIXED_SIDE: usize = 65536;

/// The ONNX `metadata_props` keys the engine reads.
pub mod meta {
    /// `nchw` or `nhwc`.
    pub const LAYOUT: &str = "stylize.layout";
    /// `rgb` or `bgr`.
    pub const CHANNEL_ORDER: &str = "stylize.channel_order";
    /// `0-1`, `0-255` or `-1-1`.
    pub const INPUT_RANGE: &str = "stylize.input_range";
    /// `0-1`, `0-255` or `-1-1`; defaults to the input range.
    pub const OUTPUT_RANGE: &str = "stylize.output_range";
    /// Free sizes are padded up to a multiple of this integer.
    pub const MULTIPLE_OF: &str = "stylize.multiple_of";
    /// Name of the image input tensor.
    pub const INPUT: &str = "stylize.input";
    /// Name of the image output tensor.
    pub const OUTPUT: &str = "stylize.output";
    /// Values of extra inputs: `name=v1,v2,...;name2=...`.
    pub const EXTRA_INPUTS: &str = "stylize.extra_inputs";
    /// Informational keys shown by `stylize models` (not used for processing).
    pub const STYLE: &str = "stylize.style";
    /// `fast` or `quality`.
    pub const WIDTH: &str = "stylize.width";
    /// Licence of the weights.
    pub const LICENSE: &str = "stylize.license";
    /// One-line description.
    pub const DESCRIPTION: &str = "stylize.description";
}

/// Why a model cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModelError {
    /// The file does not exist.
    #[error("model {path}: no such file")]
    NotFound {
        /// The model path.
        path: PathBuf,
    },
    /// The path is a directory.
    #[error("model {path}: is a directory, expected an .onnx file")]
    IsDirectory {
        /// The model path.
        path: PathBuf,
    },
    /// The file cannot be read (permissions, I/O).
    #[error("model {path}: cannot read: {reason}")]
    Unreadable {
        /// The model path.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// ONNX Runtime cannot load it: not ONNX, truncated, unsupported operators.
    #[error("model {path}: not a valid ONNX model: {reason}")]
    Invalid {
        /// The model path.
        path: PathBuf,
        /// ONNX Runtime's message.
        reason: String,
    },
    /// The graph is valid but cannot be an image generator.
    #[error("model {path}: not an image generator: {detail}")]
    NotImageGenerator {
        /// The model path.
        path: PathBuf,
        /// What was found and what was expected.
        detail: String,
    },
    /// An extra (non-image) input has no value.
    #[error(
        "model {path}: input '{name}' ({info}) needs a value: give it with --extra-input {name}=V1,V2,... ({count} values), in a sidecar {path}.json or in the model's metadata"
    )]
    MissingExtraInput {
        /// The model path.
        path: PathBuf,
        /// The input name.
        name: String,
        /// Its type and shape.
        info: String,
        /// How many values it takes, or "some" when its shape is free.
        count: String,
    },
    /// An extra input's value does not fit the input.
    #[error("model {path}: value for input '{name}': {reason}")]
    BadExtraInput {
        /// The model path.
        path: PathBuf,
        /// The input name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A tensor named by the user does not exist.
    #[error("model {path}: has no {kind} named '{name}' (its {kind}s: {available})")]
    UnknownTensor {
        /// The model path.
        path: PathBuf,
        /// `input` or `output`.
        kind: &'static str,
        /// The name given.
        name: String,
        /// The names that exist.
        available: String,
    },
    /// The sidecar JSON file is malformed.
    #[error("model spec {path}: {reason}")]
    Sidecar {
        /// The sidecar path.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A metadata value cannot be understood.
    #[error("model {path}: metadata {key}='{value}': {reason}")]
    Metadata {
        /// The model path.
        path: PathBuf,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// A malformed `NAME=V1,V2,...` extra-input value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "extra input '{text}': {reason} (expected NAME=V1,V2,... with numbers, e.g. style_weights=1,0,0)"
)]
pub struct ExtraInputSyntaxError {
    /// The text given.
    pub text: String,
    /// What is wrong.
    pub reason: String,
}

/// Parses `NAME=V1,V2,...`.
pub fn parse_extra_input(text: &str) -> Result<(String, Vec<f32>), ExtraInputSyntaxError> {
    let err = |reason: &str| ExtraInputSyntaxError {
        text: text.to_string(),
        reason: reason.to_string(),
    };
    let (name, values) = text.split_once('=').ok_or_else(|| err("no '='"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(err("empty name"));
    }
    if values.trim().is_empty() {
        return Err(err("no values"));
    }
    let values = values
        .split(',')
        .map(|v| {
            let v = v.trim();
            match v.parse::<f32>() {
                Ok(x) if x.is_finite() => Ok(x),
                Ok(_) => Err(err(&format!("'{v}' is not a finite number"))),
                Err(_) => Err(err(&format!("'{v}' is not a number"))),
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((name.to_string(), values))
}

/// Convention settings from one source; `None` means "this source does not say".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecOverrides {
    /// Image input tensor name.
    pub input: Option<String>,
    /// Image output tensor name.
    pub output: Option<String>,
    /// Tensor layout.
    pub layout: Option<Layout>,
    /// Channel order.
    pub channel_order: Option<ChannelOrder>,
    /// Input value range.
    pub input_range: Option<ValueRange>,
    /// Output value range.
    pub output_range: Option<ValueRange>,
    /// Free sizes are padded to a multiple of this.
    pub multiple_of: Option<usize>,
    /// Values for the model's other inputs, by name.
    pub extra_inputs: BTreeMap<String, Vec<f32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Sidecar {
    input: Option<String>,
    output: Option<String>,
    layout: Option<String>,
    channel_order: Option<String>,
    input_range: Option<String>,
    output_range: Option<String>,
    multiple_of: Option<usize>,
    #[serde(default)]
    extra_inputs: BTreeMap<String, Vec<f32>>,
    /// Free text, ignored: lets a sidecar say where the model came from.
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
}

impl SpecOverrides {
    /// Fills what this source leaves open from a lower-priority source.
    pub fn or(mut self, lower: SpecOverrides) -> SpecOverrides {
        self.input = self.input.or(lower.input);
        self.output = self.output.or(lower.output);
        self.layout = self.layout.or(lower.layout);
        self.channel_order = self.channel_order.or(lower.channel_order);
        self.input_range = self.input_range.or(lower.input_range);
        self.output_range = self.output_range.or(lower.output_range);
        self.multiple_of = self.multiple_of.or(lower.multiple_of);
        for (k, v) in lower.extra_inputs {
            self.extra_inputs.entry(k).or_insert(v);
        }
        self
    }

    /// Reads a sidecar file's JSON: an object with any of `input`, `output`, `layout`
    /// (`nchw`|`nhwc`), `channel_order` (`rgb`|`bgr`), `input_range` and `output_range`
    /// (`0-1`|`0-255`|`-1-1`), `multiple_of` (integer ≥ 1), `extra_inputs` (object of name →
    /// array of numbers) and `comment`.
    pub fn from_sidecar_json(text: &str, path: &Path) -> Result<SpecOverrides, ModelError> {
        let bad = |reason: String| ModelError::Sidecar {
            path: path.to_path_buf(),
            reason,
        };
        let s: Sidecar = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if let Some(m) = s.multiple_of.filter(|m| !(1..=MAX_MULTIPLE_OF).contains(m)) {
            return Err(bad(format!(
                "multiple_of must be from 1 to {MAX_MULTIPLE_OF}, got {m}"
            )));
        }
        for (name, values) in &s.extra_inputs {
            if values.is_empty() {
                return Err(bad(format!("extra_inputs.{name} has no values")));
            }
            // JSON numbers beyond f32 (1e39) arrive as infinities: refused, as the flag does.
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Err(bad(format!(
                    "extra_inputs.{name}: {v} is not a finite 32-bit number"
                )));
            }
        }
        Ok(SpecOverrides {
            input: s.input,
            output: s.output,
            layout: s
                .layout
                .map(|v| v.parse())
                .transpose()
                .map_err(|e| bad(format!("layout: {e}")))?,
            channel_order: s
                .channel_order
                .map(|v| v.parse())
                .transpose()
                .map_err(|e| bad(format!("channel_order: {e}")))?,
            input_range: s
                .input_range
                .map(|v| v.parse())
                .transpose()
                .map_err(|e| bad(format!("input_range: {e}")))?,
            output_range: s
                .output_range
                .map(|v| v.parse())
                .transpose()
                .map_err(|e| bad(format!("output_range: {e}")))?,
            multiple_of: s.multiple_of,
            extra_inputs: s.extra_inputs,
        })
    }

    /// Reads the sidecar next to `model` (`<model>.json`), if there is one.
    pub fn from_sidecar_of(model: &Path) -> Result<Option<SpecOverrides>, ModelError> {
        let path = sidecar_path(model);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_sidecar_json(&text, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ModelError::Sidecar {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// Reads the `stylize.*` keys of a model's metadata.
    pub fn from_metadata(
        metadata: &BTreeMap<String, String>,
        model: &Path,
    ) -> Result<SpecOverrides, ModelError> {
        fn get<T: std::str::FromStr>(
            m: &BTreeMap<String, String>,
            key: &str,
            model: &Path,
        ) -> Result<Option<T>, ModelError>
        where
            T::Err: std::fmt::Display,
        {
            m.get(key)
                .map(|v| {
                    v.trim().parse::<T>().map_err(|e| ModelError::Metadata {
                        path: model.to_path_buf(),
                        key: key.to_string(),
                        value: v.clone(),
                        reason: e.to_string(),
                    })
                })
                .transpose()
        }
        let multiple_of: Option<usize> = get(metadata, meta::MULTIPLE_OF, model)?;
        if multiple_of.is_some_and(|m| !(1..=MAX_MULTIPLE_OF).contains(&m)) {
            return Err(ModelError::Metadata {
                path: model.to_path_buf(),
                key: meta::MULTIPLE_OF.into(),
                value: metadata[meta::MULTIPLE_OF].clone(),
                reason: format!("must be from 1 to {MAX_MULTIPLE_OF}"),
            });
        }
        let mut extra_inputs = BTreeMap::new();
        if let Some(v) = metadata.get(meta::EXTRA_INPUTS) {
            for part in v.split(';').filter(|p| !p.trim().is_empty()) {
                let (name, values) = parse_extra_input(part).map_err(|e| ModelError::Metadata {
                    path: model.to_path_buf(),
                    key: meta::EXTRA_INPUTS.into(),
                    value: v.clone(),
                    reason: e.to_string(),
                })?;
                extra_inputs.insert(name, values);
            }
        }
        Ok(SpecOverrides {
            input: metadata.get(meta::INPUT).cloned(),
            output: metadata.get(meta::OUTPUT).cloned(),
            layout: get(metadata, meta::LAYOUT, model)?,
            channel_order: get(metadata, meta::CHANNEL_ORDER, model)?,
            input_range: get(metadata, meta::INPUT_RANGE, model)?,
            output_range: get(metadata, meta::OUTPUT_RANGE, model)?,
            multiple_of,
            extra_inputs,
        })
    }
}

/// The sidecar spec file for a model: the model's path with `.json` appended.
pub fn sidecar_path(model: &Path) -> PathBuf {
    let mut s = model.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// A non-image input with the constant values it is fed.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtraInput {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub elem: ElemType,
    /// Concrete shape.
    pub shape: Vec<usize>,
    /// Values, row-major.
    pub values: Vec<f32>,
}

/// Everything the frame path needs to know about one model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    /// Image input tensor name.
    pub input: String,
    /// Its element type.
    pub input_elem: ElemType,
    /// Image output tensor name.
    pub output: String,
    /// Its element type.
    pub output_elem: ElemType,
    /// Layout of input and output.
    pub layout: Layout,
    /// Channel order of input and output.
    pub channel_order: ChannelOrder,
    /// Input value range.
    pub input_range: ValueRange,
    /// Output value range.
    pub output_range: ValueRange,
    /// Fixed input width, if the graph fixes it.
    pub fixed_width: Option<usize>,
    /// Fixed input height, if the graph fixes it.
    pub fixed_height: Option<usize>,
    /// Free sizes are padded up to a multiple of this.
    pub multiple_of: usize,
    /// Whether a source gave `multiple_of` (else the frame path may raise it on its own).
    pub multiple_of_given: bool,
    /// Other inputs and their constant values.
    pub extra_inputs: Vec<ExtraInput>,
}

fn describe(t: &TensorInfo) -> String {
    format!("{} {}", t.elem, shape_text(&t.shape))
}

/// `[1,3,H,W]`-style text for a shape with free dimensions shown as `?`.
pub fn shape_text(shape: &[i64]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|&d| {
            if d < 0 {
                "?".to_string()
            } else {
                d.to_string()
            }
        })
        .collect();
    format!("[{}]", dims.join(","))
}

fn names(ts: &[TensorInfo]) -> String {
    ts.iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl ModelSpec {
    /// Resolves the spec of the model at `path` with graph `io`, from the given sources
    /// (already layered: flags, then sidecar, then metadata).
    pub fn resolve(path: &Path, io: &ModelIo, given: &SpecOverrides) -> Result<Self, ModelError> {
        let not_gen = |detail: String| ModelError::NotImageGenerator {
            path: path.to_path_buf(),
            detail,
        };
        // The image input: named, else the one rank-4 input.
        let input = match &given.input {
            Some(n) => io.inputs.iter().find(|t| &t.name == n).ok_or_else(|| {
                ModelError::UnknownTensor {
                    path: path.to_path_buf(),
                    kind: "input",
                    name: n.clone(),
                    available: names(&io.inputs),
                }
            })?,
            None => {
                let rank4: Vec<&TensorInfo> =
                    io.inputs.iter().filter(|t| t.shape.len() == 4).collect();
                match rank4.as_slice() {
                    [] => {
                        let first = io
                            .inputs
                            .first()
                            .ok_or_else(|| not_gen("the graph has no inputs".into()))?;
                        return Err(not_gen(format!(
                            "input '{}' is {}, expected a rank-4 image tensor [1,3,H,W] or [1,H,W,3]",
                            first.name,
                            describe(first)
                        )));
                    }
                    [one] => *one,
                    many => many
                        .iter()
                        .find(|t| t.shape[1] == 3 || t.shape[3] == 3)
                        .copied()
                        .unwrap_or(many[0]),
                }
            }
        };
        if input.shape.len() != 4 {
            return Err(not_gen(format!(
                "input '{}' is {}, expected a rank-4 image tensor",
                input.name,
                describe(input)
            )));
        }
        if !input.elem.is_float() {
            return Err(not_gen(format!(
                "input '{}' is {}, expected float32 or float16 values",
                input.name,
                describe(input)
            )));
        }
        let layout = given
            .layout
            .unwrap_or(match (input.shape[1], input.shape[3]) {
                (3, _) => Layout::Nchw,
                (_, 3) => Layout::Nhwc,
                _ => Layout::Nchw,
            });
        let (c_axis, h_axis, w_axis) = match layout {
            Layout::Nchw => (1, 2, 3),
            Layout::Nhwc => (3, 1, 2),
        };
        let channels = input.shape[c_axis];
        if channels >= 0 && channels != 3 {
            return Err(not_gen(format!(
                "input '{}' is {} ({layout}): {channels} channel(s), expected 3 (RGB)",
                input.name,
                describe(input)
            )));
        }
        if input.shape[0] > 1 {
            return Err(not_gen(format!(
                "input '{}' is {}: batch of {}, expected 1",
                input.name,
                describe(input),
                input.shape[0]
            )));
        }
        let fixed = |d: i64| (d > 0).then_some(d as usize);
        for (axis, what) in [(w_axis, "width"), (h_axis, "height")] {
            if fixed(input.shape[axis]).is_some_and(|d| d > MAX_FIXED_SIDE) {
                return Err(not_gen(format!(
                    "input '{}' is {}: a fixed {what} of {}, more than {MAX_FIXED_SIDE}",
                    input.name,
                    describe(input),
                    input.shape[axis]
                )));
            }
        }

        // The image output: named, else the first rank-4 output.
        let output = match &given.output {
            Some(n) => io.outputs.iter().find(|t| &t.name == n).ok_or_else(|| {
                ModelError::UnknownTensor {
                    path: path.to_path_buf(),
                    kind: "output",
                    name: n.clone(),
                    available: names(&io.outputs),
                }
            })?,
            None => io
                .outputs
                .iter()
                .find(|t| t.shape.len() == 4)
                .ok_or_else(|| {
                    not_gen(format!(
                        "no rank-4 image output (outputs: {})",
                        io.outputs
                            .iter()
                            .map(|t| format!("'{}' {}", t.name, describe(t)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
        };
        if output.shape.len() != 4 || !output.elem.is_float() {
            return Err(not_gen(format!(
                "output '{}' is {}, expected a rank-4 float32 or float16 image tensor",
                output.name,
                describe(output)
            )));
        }
        let out_channels = output.shape[c_axis];
        if out_channels >= 0 && out_channels != 3 {
            return Err(not_gen(format!(
                "output '{}' is {} ({layout}): {out_channels} channel(s), expected 3",
                output.name,
                describe(output)
            )));
        }

        // Every other input needs values.
        let mut extra_inputs = Vec::new();
        for t in io.inputs.iter().filter(|t| t.name != input.name) {
            let info = describe(t);
            let static_count: Option<usize> = t.shape.iter().try_fold(1usize, |acc, &d| {
                usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
            });
            let Some(values) = given.extra_inputs.get(&t.name) else {
                return Err(ModelError::MissingExtraInput {
                    path: path.to_path_buf(),
                    name: t.name.clone(),
                    info,
                    count: static_count.map_or("some".into(), |c| c.to_string()),
                });
            };
            let bad = |reason: String| ModelError::BadExtraInput {
                path: path.to_path_buf(),
                name: t.name.clone(),
                reason,
            };
            if !t.elem.is_float() {
                return Err(bad(format!(
                    "it is {info}; only float32 and float16 inputs can be given values"
                )));
            }
            let shape = concrete_shape(&t.shape, values.len()).ok_or_else(|| {
                bad(format!(
                    "{} value(s) given, but it is {info}{}",
                    values.len(),
                    static_count.map_or(String::new(), |c| format!(" ({c} values)"))
                ))
            })?;
            extra_inputs.push(ExtraInput {
                name: t.name.clone(),
                elem: t.elem.clone(),
                shape,
                values: values.clone(),
            });
        }
        if let Some(unknown) = given
            .extra_inputs
            .keys()
            .find(|k| !io.inputs.iter().any(|t| &t.name == *k) || **k == input.name)
        {
            return Err(ModelError::UnknownTensor {
                path: path.to_path_buf(),
                kind: "extra input",
                name: unknown.clone(),
                available: names(
                    &io.inputs
                        .iter()
                        .filter(|t| t.name != input.name)
                        .cloned()
                        .collect::<Vec<_>>(),
                ),
            });
        }

        let input_range = given.input_range.unwrap_or_default();
        Ok(ModelSpec {
            input: input.name.clone(),
            input_elem: input.elem.clone(),
            output: output.name.clone(),
            output_elem: output.elem.clone(),
            layout,
            channel_order: given.channel_order.unwrap_or_default(),
            input_range,
            output_range: given.output_range.unwrap_or(input_range),
            fixed_width: fixed(input.shape[w_axis]),
            fixed_height: fixed(input.shape[h_axis]),
            multiple_of: given.multiple_of.unwrap_or(1).max(1),
            multiple_of_given: given.multiple_of.is_some(),
            extra_inputs,
        })
    }

    /// How frames map to the input tensor.
    pub fn input_format(&self) -> TensorFormat {
        TensorFormat {
            layout: self.layout,
            order: self.channel_order,
            range: self.input_range,
        }
    }

    /// How the output tensor maps to frames.
    pub fn output_format(&self) -> TensorFormat {
        TensorFormat {
            layout: self.layout,
            order: self.channel_order,
            range: self.output_range,
        }
    }

    /// The picture size the model sees for a picture of `width`×`height` (before padding):
    /// fixed dimensions win, free ones follow the picture.
    pub fn model_size(&self, width: usize, height: usize) -> (usize, usize) {
        (
            self.fixed_width.unwrap_or(width),
            self.fixed_height.unwrap_or(height),
        )
    }

    /// The tensor's spatial size for a model-sized picture: free dimensions padded up to
    /// `multiple_of`.
    pub fn padded_size(&self, width: usize, height: usize) -> (usize, usize) {
        let up = |v: usize| v.div_ceil(self.multiple_of) * self.multiple_of;
        (
            self.fixed_width.unwrap_or_else(|| up(width)),
            self.fixed_height.unwrap_or_else(|| up(height)),
        )
    }

    /// The input tensor shape for a padded size.
    pub fn input_shape(&self, width: usize, height: usize) -> [usize; 4] {
        match self.layout {
            Layout::Nchw => [1, 3, height, width],
            Layout::Nhwc => [1, height, width, 3],
        }
    }

    /// Spatial size `(width, height)` of an output tensor shape.
    pub fn output_size(&self, shape: &[usize]) -> Option<(usize, usize)> {
        if shape.len() != 4 {
            return None;
        }
        match self.layout {
            Layout::Nchw if shape[1] == 3 => Some((shape[3], shape[2])),
            Layout::Nhwc if shape[3] == 3 => Some((shape[2], shape[1])),
            _ => None,
        }
    }

    /// A one-line summary, e.g. `NCHW RGB 0-255 → 0-255, free size (multiple of 4)`.
    pub fn summary(&self) -> String {
        let size = match (self.fixed_width, self.fixed_height) {
            (Some(w), Some(h)) => format!("fixed {w}x{h}"),
            (None, None) => format!("free size (multiple of {})", self.multiple_of),
            (w, h) => format!(
                "width {}, height {} (multiple of {})",
                w.map_or("free".into(), |w| w.to_string()),
                h.map_or("free".into(), |h| h.to_string()),
                self.multiple_of
            ),
        };
        let mut s = format!(
            "{} {} {} {} -> {}, {size}, input '{}' {}",
            self.layout.as_str().to_uppercase(),
            self.channel_order.as_str().to_uppercase(),
            self.input_elem,
            self.input_range,
            self.output_range,
            self.input,
            if self.extra_inputs.is_empty() {
                String::new()
            } else {
                format!(
                    "+ {}",
                    self.extra_inputs
                        .iter()
                        .map(|e| e.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
        s.truncate(s.trim_end().len());
        s
    }
}

/// Fills the free dimensions of `shape` so it holds `count` values: all free dimensions but
/// the last become 1, the last takes the rest.
fn concrete_shape(shape: &[i64], count: usize) -> Option<Vec<usize>> {
    // Checked: a hostile graph may declare dimensions whose product overflows.
    let fixed = shape
        .iter()
        .filter(|&&d| d >= 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))?;
    let free = shape.iter().filter(|&&d| d < 0).count();
    if free == 0 {
        return (fixed == count).then(|| shape.iter().map(|&d| d as usize).collect());
    }
    if fixed == 0 || !count.is_multiple_of(fixed) {
        return None;
    }
    let rest = count / fixed;
    let last_free = shape.iter().rposition(|&d| d < 0)?;
    Some(
        shape
            .iter()
            .enumerate()
            .map(|(i, &d)| match (d >= 0, i == last_free) {
                (true, _) => d as usize,
                (false, true) => rest,
                (false, false) => 1,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, elem: ElemType, shape: &[i64]) -> TensorInfo {
        TensorInfo {
            name: name.into(),
            elem,
            shape: shape.to_vec(),
        }
    }

    fn io(inputs: Vec<TensorInfo>, outputs: Vec<TensorInfo>) -> ModelIo {
        ModelIo {
            inputs,
            outputs,
            metadata: BTreeMap::new(),
        }
    }

    fn p() -> &'static Path {
        Path::new("m.onnx")
    }

    #[test]
    fn extra_input_syntax() {
        assert_eq!(
            parse_extra_input("style_weights=1, 0,0.5").unwrap(),
            ("style_weights".into(), vec![1.0, 0.0, 0.5])
        );
        for bad in ["x", "=1", "x=", "x=1,,2", "x=a", "x=inf"] {
            let e = parse_extra_input(bad).unwrap_err();
            assert!(e.to_string().contains("NAME=V1,V2"), "{bad}: {e}");
        }
    }

    #[test]
    fn defaults_and_layout_from_graph() {
        let m = io(
            vec![t("x", ElemType::F32, &[1, -1, -1, 3])],
            vec![t("y", ElemType::F32, &[1, -1, -1, 3])],
        );
        let s = ModelSpec::resolve(p(), &m, &SpecOverrides::default()).unwrap();
        assert_eq!(s.layout, Layout::Nhwc);
        assert_eq!(s.channel_order, ChannelOrder::Rgb);
        assert_eq!(
            (s.input_range, s.output_range),
            (ValueRange::Byte, ValueRange::Byte)
        );
        assert_eq!((s.multiple_of, s.multiple_of_given), (1, false));
        assert_eq!(s.padded_size(61, 47), (61, 47));
        assert_eq!(s.input_shape(64, 48), [1, 48, 64, 3]);
        let s = ModelSpec::resolve(
            p(),
            &m,
            &SpecOverrides {
                multiple_of: Some(8),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(s.padded_size(61, 47), (64, 48));
    }

    #[test]
    fn fixed_size_model() {
        let m = io(
            vec![t("input1", ElemType::F32, &[1, 3, 224, 224])],
            vec![t("output1", ElemType::F32, &[1, 3, 224, 224])],
        );
        let s = ModelSpec::resolve(p(), &m, &SpecOverrides::default()).unwrap();
        assert_eq!(s.model_size(640, 360), (224, 224));
        assert_eq!(s.padded_size(224, 224), (224, 224));
        assert!(s.summary().contains("fixed 224x224"), "{}", s.summary());
    }

    #[test]
    fn rejects_non_generators() {
        let cases = [
            (vec![t("x", ElemType::F32, &[1, 1000])], "rank-4"),
            (vec![t("x", ElemType::F32, &[1, 1, -1, -1])], "1 channel(s)"),
            (vec![t("x", ElemType::F32, &[1, 4, -1, -1])], "4 channel(s)"),
            (
                vec![t("x", ElemType::Other("int8".into()), &[1, 3, -1, -1])],
                "float32 or float16",
            ),
        ];
        for (inputs, want) in cases {
            let m = io(inputs, vec![t("y", ElemType::F32, &[1, 3, -1, -1])]);
            let e = ModelSpec::resolve(p(), &m, &SpecOverrides::default()).unwrap_err();
            let s = e.to_string();
            assert!(
                s.contains(want) && s.contains("m.onnx") && s.contains("'x'"),
                "{s}"
            );
        }
    }

    #[test]
    fn extra_inputs_need_values_of_the_right_size() {
        let m = io(
            vec![
                t("content", ElemType::F32, &[1, 3, -1, -1]),
                t("style_weights", ElemType::F32, &[1, 26]),
            ],
            vec![t("out", ElemType::F32, &[1, 3, -1, -1])],
        );
        let e = ModelSpec::resolve(p(), &m, &SpecOverrides::default()).unwrap_err();
        assert!(
            e.to_string().contains("--extra-input style_weights="),
            "{e}"
        );
        assert!(e.to_string().contains("26 values"), "{e}");
        let mut o = SpecOverrides::default();
        o.extra_inputs.insert("style_weights".into(), vec![0.0; 3]);
        let e = ModelSpec::resolve(p(), &m, &o).unwrap_err();
        assert!(e.to_string().contains("3 value(s) given"), "{e}");
        o.extra_inputs.insert("style_weights".into(), vec![0.5; 26]);
        let s = ModelSpec::resolve(p(), &m, &o).unwrap();
        assert_eq!(s.extra_inputs[0].shape, vec![1, 26]);
        o.extra_inputs.insert("nope".into(), vec![1.0]);
        let e = ModelSpec::resolve(p(), &m, &o).unwrap_err();
        assert!(e.to_string().contains("no extra input named 'nope'"), "{e}");
    }

    #[test]
    fn free_extra_input_shapes() {
        assert_eq!(concrete_shape(&[-1, 26], 26), Some(vec![1, 26]));
        assert_eq!(concrete_shape(&[1, -1], 5), Some(vec![1, 5]));
        assert_eq!(concrete_shape(&[-1, -1], 4), Some(vec![1, 4]));
        assert_eq!(concrete_shape(&[2, -1], 5), None);
        assert_eq!(concrete_shape(&[3], 3), Some(vec![3]));
    }

    #[test]
    fn sources_layer_in_order() {
        let flags = SpecOverrides {
            channel_order: Some(ChannelOrder::Bgr),
            ..Default::default()
        };
        let sidecar = SpecOverrides::from_sidecar_json(
            r#"{"channel_order": "rgb", "input_range": "-1-1", "multiple_of": 16}"#,
            Path::new("m.onnx.json"),
        )
        .unwrap();
        let mut md = BTreeMap::new();
        md.insert(meta::INPUT_RANGE.to_string(), "0-1".to_string());
        md.insert(meta::LAYOUT.to_string(), "nhwc".to_string());
        md.insert(meta::EXTRA_INPUTS.to_string(), "w=1,2;v=3".to_string());
        let metadata = SpecOverrides::from_metadata(&md, p()).unwrap();
        let all = flags.or(sidecar).or(metadata);
        assert_eq!(all.channel_order, Some(ChannelOrder::Bgr));
        assert_eq!(all.input_range, Some(ValueRange::Signed));
        assert_eq!(all.layout, Some(Layout::Nhwc));
        assert_eq!(all.multiple_of, Some(16));
        assert_eq!(all.extra_inputs["w"], vec![1.0, 2.0]);
    }

    #[test]
    fn bad_sidecar_and_metadata_name_the_problem() {
        let e =
            SpecOverrides::from_sidecar_json(r#"{"input_range": "0-100"}"#, Path::new("a.json"))
                .unwrap_err();
        assert!(e.to_string().contains("input_range") && e.to_string().contains("0-1, 0-255"));
        let e = SpecOverrides::from_sidecar_json(r#"{"colour": "rgb"}"#, Path::new("a.json"))
            .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let mut md = BTreeMap::new();
        md.insert(meta::MULTIPLE_OF.to_string(), "four".to_string());
        let e = SpecOverrides::from_metadata(&md, p()).unwrap_err();
        assert!(e.to_string().contains("stylize.multiple_of='four'"), "{e}");
    }
}
