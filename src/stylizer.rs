//! One model applied to frames: resize and pad to what the model takes, convert, run, convert
//! back, crop, resize to the frame, mix by strength. All scratch memory is kept between
//! frames, so a stream of same-sized frames allocates nothing after the first.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::engine::{
    Constant, Engine, EngineError, EngineOptions, OrtEngine, Provider, ShapeProfile,
};
use crate::frame::{
    FrameError, FrameMut, GuidedUpsampler, I420Mut, OwnedFrame, PixelFormat, Resizer, YuvMatrix,
    downscale_to_rgb, i420_to_rgb, mix, pack, rgb_to_i420, unpack,
};
use crate::model::{AUTO_MULTIPLES, ModelError, ModelSpec, SpecOverrides};

/// Errors while stylising a frame.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StylizeError {
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The frame could not be converted.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The model is unusable.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// The model's output for this frame has NaN or infinite values. The frame was left as it
    /// was given (the input picture, as at strength 0): no garbage pixels are ever written.
    #[error(
        "the model produced NaN or infinite values ({count} of the {total} output values for a {width}x{height} frame); the frame was left unstylised"
    )]
    NonFinite {
        /// Output values that are NaN or ±infinity.
        count: usize,
        /// Output values that make the frame.
        total: usize,
        /// Frame width.
        width: usize,
        /// Frame height.
        height: usize,
    },
}

/// How a result computed at `inference_scale` < 1 is brought back to the frame's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Upsampler {
    /// Bilinear: fastest, blurs the scene's edges by the inference scale.
    Bilinear,
    /// Guided by the full-resolution input ([`GuidedUpsampler`]): the input's edges stay sharp.
    #[default]
    Guided,
}

impl Upsampler {
    /// The name used by the CLI and the element.
    pub const fn name(self) -> &'static str {
        match self {
            Upsampler::Bilinear => "bilinear",
            Upsampler::Guided => "guided",
        }
    }
}

impl std::str::FromStr for Upsampler {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bilinear" => Ok(Upsampler::Bilinear),
            "guided" => Ok(Upsampler::Guided),
            _ => Err(format!(
                "unknown upsampler '{s}' (expected guided or bilinear)"
            )),
        }
    }
}

impl std::fmt::Display for Upsampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Options of the frame path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StylizerOptions {
    /// Run free-size models on a frame scaled by this (0 < s ≤ 1) and scale the result back.
    pub inference_scale: f32,
    /// How the result is scaled back when `inference_scale` < 1.
    pub upsampler: Upsampler,
}

impl Default for StylizerOptions {
    fn default() -> Self {
        StylizerOptions {
            inference_scale: 1.0,
            upsampler: Upsampler::default(),
        }
    }
}

/// Time spent in each stage of the last frame.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Resize (if any) and frame → tensor.
    pub to_tensor: Duration,
    /// The model.
    pub inference: Duration,
    /// Tensor → frame, resize back and strength mix.
    pub to_frame: Duration,
}

/// Sizes worked out once per frame size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Plan {
    frame: (usize, usize),
    /// Picture size the model sees (before padding).
    model: (usize, usize),
    /// Tensor size (after padding).
    padded: (usize, usize),
}

/// The sizes a frame of `w`×`h` is run at.
fn plan(spec: &ModelSpec, inference_scale: f32, w: usize, h: usize) -> Plan {
    let s = inference_scale;
    let scaled = |v: usize| ((v as f32 * s).round() as usize).max(1);
    let (sw, sh) = if s < 1.0 {
        (scaled(w), scaled(h))
    } else {
        (w, h)
    };
    let model = spec.model_size(sw, sh);
    Plan {
        frame: (w, h),
        model,
        padded: spec.padded_size(model.0, model.1),
    }
}

/// The TensorRT optimisation profile for the frame sizes the caller declared (`engine.resolutions`), when TensorRT
/// may run and none was given: the model's conventions are read first (from a CPU session)
/// to know which tensor shapes those frames become.
pub fn tensorrt_profile(
    model: &Path,
    flags: &SpecOverrides,
    engine: &EngineOptions,
    options: StylizerOptions,
) -> Result<Option<ShapeProfile>, StylizeError> {
    let may_use_trt = matches!(engine.provider, Provider::Auto | Provider::TensorRt);
    if engine.profile.is_some() || engine.resolutions.is_empty() || !may_use_trt {
        return Ok(None);
    }
    let io = OrtEngine::read_io_of(model, engine)?;
    let given = layered_overrides(model, &io.metadata, flags)?;
    let spec = ModelSpec::resolve(model, &io, &given)?;
    let scale = if options.inference_scale.is_finite() {
        options.inference_scale.clamp(0.01, 1.0)
    } else {
        1.0
    };
    let shapes: Vec<[usize; 4]> = engine
        .resolutions
        .iter()
        .map(|&(w, h)| {
            let p = plan(&spec, scale, w, h);
            spec.input_shape(p.padded.0, p.padded.1)
        })
        .collect();
    Ok(ShapeProfile::covering(&spec.input, &shapes))
}

/// A model ready to stylise frames.
pub struct Stylizer {
    engine: Box<dyn Engine>,
    spec: ModelSpec,
    options: StylizerOptions,
    plan: Option<Plan>,
    small_in: OwnedFrame,
    small_out: OwnedFrame,
    full_out: OwnedFrame,
    resize_in: Resizer,
    resize_out: Resizer,
    guided: GuidedUpsampler,
    times: StageTimes,
    auto_padding: Option<usize>,
    /// I420 frames: luma and chroma plane resizers, the small planes, and the whole frame in
    /// RGB where the frame goes through the packed path.
    resize_planes: [Resizer; 2],
    small_planes: Vec<u8>,
    full_rgb: Option<OwnedFrame>,
}

impl std::fmt::Debug for Stylizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stylizer")
            .field("provider", &self.engine.provider())
            .field("spec", &self.spec)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// The layered spec sources of a model file: `flags`, then its sidecar, then its metadata.
pub fn layered_overrides(
    model: &Path,
    metadata: &std::collections::BTreeMap<String, String>,
    flags: &SpecOverrides,
) -> Result<SpecOverrides, ModelError> {
    let sidecar = SpecOverrides::from_sidecar_of(model)?.unwrap_or_default();
    let meta = SpecOverrides::from_metadata(metadata, model)?;
    Ok(flags.clone().or(sidecar).or(meta))
}

impl Stylizer {
    /// Loads a model file with ONNX Runtime and resolves its conventions (flags over sidecar
    /// over metadata over graph).
    pub fn load(
        model: &Path,
        flags: &SpecOverrides,
        engine: &EngineOptions,
        options: StylizerOptions,
    ) -> Result<Stylizer, StylizeError> {
        let profiled;
        let engine = match tensorrt_profile(model, flags, engine, options)? {
            Some(profile) => {
                profiled = EngineOptions {
                    profile: Some(profile),
                    ..engine.clone()
                };
                &profiled
            }
            None => engine,
        };
        let engine = OrtEngine::load(model, engine)?;
        let given = layered_overrides(model, &engine.io().metadata, flags)?;
        let spec = ModelSpec::resolve(model, engine.io(), &given)?;
        Stylizer::new(Box::new(engine), spec, options)
    }

    /// Wraps an engine whose model has this spec.
    pub fn new(
        mut engine: Box<dyn Engine>,
        spec: ModelSpec,
        options: StylizerOptions,
    ) -> Result<Stylizer, StylizeError> {
        let constants: Vec<Constant> = spec
            .extra_inputs
            .iter()
            .map(|e| Constant {
                name: e.name.clone(),
                elem: e.elem.clone(),
                shape: e.shape.clone(),
                values: e.values.clone(),
            })
            .collect();
        engine.bind(&spec.input, &spec.output, &constants)?;
        let placeholder = || OwnedFrame::new(1, 1, crate::frame::PixelFormat::Rgb);
        Ok(Stylizer {
            engine,
            spec,
            options: StylizerOptions {
                inference_scale: if options.inference_scale.is_finite() {
                    options.inference_scale.clamp(0.01, 1.0)
                } else {
                    1.0
                },
                upsampler: options.upsampler,
            },
            plan: None,
            small_in: placeholder()?,
            small_out: placeholder()?,
            full_out: placeholder()?,
            resize_in: Resizer::new(),
            resize_out: Resizer::new(),
            guided: GuidedUpsampler::new(),
            times: StageTimes::default(),
            auto_padding: None,
            resize_planes: [Resizer::new(), Resizer::new()],
            small_planes: Vec::new(),
            full_rgb: None,
        })
    }

    /// The resolved conventions.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The engine.
    pub fn engine(&self) -> &dyn Engine {
        self.engine.as_ref()
    }

    /// Stage times of the last frame.
    pub fn times(&self) -> StageTimes {
        self.times
    }

    /// The options in force.
    pub fn options(&self) -> StylizerOptions {
        self.options
    }

    /// Changes the upsampler; takes effect on the next frame.
    pub fn set_upsampler(&mut self, upsampler: Upsampler) {
        self.options.upsampler = upsampler;
    }

    /// Changes the inference scale; takes effect on the next frame.
    pub fn set_inference_scale(&mut self, scale: f32) {
        if scale.is_finite() {
            self.options.inference_scale = scale.clamp(0.01, 1.0);
            self.plan = None;
        }
    }

    fn plan_for(&self, w: usize, h: usize) -> Plan {
        plan(&self.spec, self.options.inference_scale, w, h)
    }

    /// The tensor shape a frame of this size is run at (for TensorRT profiles).
    pub fn input_shape_for(&self, width: usize, height: usize) -> [usize; 4] {
        let p = self.plan_for(width, height);
        self.spec.input_shape(p.padded.0, p.padded.1)
    }

    /// The tensor size (width, height) a frame of this size is run at.
    pub fn inference_size_for(&self, width: usize, height: usize) -> (usize, usize) {
        self.plan_for(width, height).padded
    }

    /// The TensorRT optimisation profile covering frames of these sizes.
    pub fn profile_for(&self, sizes: &[(usize, usize)]) -> Option<ShapeProfile> {
        let shapes: Vec<[usize; 4]> = sizes
            .iter()
            .map(|&(w, h)| self.input_shape_for(w, h))
            .collect();
        ShapeProfile::covering(&self.spec.input, &shapes)
    }

    /// Stylises `frame` in place: `frame = frame + strength × (stylised − frame)`.
    /// Alpha and padding bytes are kept.
    ///
    /// When the model's output has NaN or infinite values, the frame is left as it was and
    /// [`StylizeError::NonFinite`] says how many: callers may show the frame unstylised.
    ///
    /// When the model's padding is not known and it refuses the frame's size, the frame is
    /// padded to the next of [`AUTO_MULTIPLES`] and tried again; the padding that worked is
    /// kept for the frames that follow ([`Stylizer::auto_padding`]).
    pub fn process(&mut self, frame: &mut FrameMut<'_>, strength: f32) -> Result<(), StylizeError> {
        self.padding_retried(|s| s.process_once(frame, strength))
    }

    /// Runs `once`; when the model's padding is not known and it refuses the size, pads to
    /// the next of [`AUTO_MULTIPLES`] and runs it again.
    fn padding_retried(
        &mut self,
        mut once: impl FnMut(&mut Self) -> Result<(), StylizeError>,
    ) -> Result<(), StylizeError> {
        loop {
            match once(self) {
                Err(StylizeError::Engine(EngineError::Run(reason)))
                    if !self.spec.multiple_of_given =>
                {
                    let Some(&next) = AUTO_MULTIPLES.iter().find(|&&m| m > self.spec.multiple_of)
                    else {
                        return Err(EngineError::Run(format!(
                            "{reason} (also tried padding to multiples of {:?}; if the model needs another size, give --multiple-of)",
                            AUTO_MULTIPLES
                        ))
                        .into());
                    };
                    self.spec.multiple_of = next;
                    self.auto_padding = Some(next);
                    self.plan = None;
                }
                other => return other,
            }
        }
    }

    /// The plan for frames of this size, kept while the size stays.
    fn plan_of(&mut self, fw: usize, fh: usize) -> Plan {
        match self.plan {
            Some(p) if p.frame == (fw, fh) => p,
            _ => {
                let p = self.plan_for(fw, fh);
                self.plan = Some(p);
                p
            }
        }
    }

    /// Runs `run` on the I420 `frame` converted to packed RGB, then converts the result back.
    /// On an error (a model output with NaN among them) the frame is left as it was.
    fn through_rgb(
        &mut self,
        frame: &mut I420Mut<'_>,
        matrix: &YuvMatrix,
        run: impl FnOnce(&mut Self, &mut FrameMut<'_>) -> Result<(), StylizeError>,
    ) -> Result<(), StylizeError> {
        let mut rgb = self.full_rgb.take();
        let result = (|| {
            let (fw, fh) = (frame.width(), frame.height());
            let rgb = match &mut rgb {
                Some(f) => {
                    f.reshape(fw, fh, PixelFormat::Rgbx)?;
                    f
                }
                None => rgb.insert(OwnedFrame::new(fw, fh, PixelFormat::Rgbx)?),
            };
            i420_to_rgb(&frame.as_i420(), &mut rgb.as_frame_mut(), matrix)?;
            run(self, &mut rgb.as_frame_mut())?;
            rgb_to_i420(&rgb.as_frame(), frame, matrix)?;
            Ok(())
        })();
        self.full_rgb = rgb;
        result
    }

    /// [`Self::process`] for an I420 frame, whose colours `matrix` describes. At a reduced
    /// inference scale with the guided upsampler, the model gets the planes resampled to its
    /// size and converted there, and the upsampler writes Y, U and V itself (no conversion at
    /// full resolution); otherwise the frame goes through packed RGB and back.
    pub fn process_i420(
        &mut self,
        frame: &mut I420Mut<'_>,
        matrix: &YuvMatrix,
        strength: f32,
    ) -> Result<(), StylizeError> {
        let (fw, fh) = (frame.width(), frame.height());
        let (mw, mh) = self.plan_of(fw, fh).model;
        let direct = self.options.upsampler == Upsampler::Guided
            && self.options.inference_scale < 1.0
            && (mw, mh) != (fw, fh);
        if !direct {
            return self.through_rgb(frame, matrix, |s, rgb| s.process(rgb, strength));
        }
        self.padding_retried(|s| s.process_i420_once(frame, matrix, strength))
    }

    fn process_i420_once(
        &mut self,
        frame: &mut I420Mut<'_>,
        matrix: &YuvMatrix,
        strength: f32,
    ) -> Result<(), StylizeError> {
        let (fw, fh) = (frame.width(), frame.height());
        let plan = self.plan_of(fw, fh);
        let t0 = Instant::now();
        let (mw, mh) = plan.model;
        let (pw, ph) = plan.padded;
        let shape = self.spec.input_shape(pw, ph);
        self.small_in.reshape(mw, mh, PixelFormat::Rgbx)?;
        downscale_to_rgb(
            &frame.as_i420(),
            &mut self.small_in.as_frame_mut(),
            matrix,
            &mut self.resize_planes,
            &mut self.small_planes,
        )?;
        let buf = self.engine.input(shape)?;
        pack(
            &self.small_in.as_frame(),
            buf,
            pw,
            ph,
            self.spec.input_format(),
        )?;
        let t1 = Instant::now();
        let out = self.engine.run()?;
        let t2 = Instant::now();
        let (ow, oh) = self.spec.output_size(out.shape).ok_or_else(|| {
            EngineError::Output(format!(
                "output '{}' has shape {:?}, expected 3 channels in {} layout",
                self.spec.output, out.shape, self.spec.layout
            ))
        })?;
        if (ow, oh) != (pw, ph) {
            // A model whose output is another size than its input: the packed path handles it.
            return self.through_rgb(frame, matrix, |s, rgb| s.process_once(rgb, strength));
        }
        self.small_out.reshape(mw, mh, PixelFormat::Rgbx)?;
        let bad = unpack(
            out.data,
            ow,
            oh,
            self.spec.output_format(),
            &mut self.small_out.as_frame_mut(),
            1.0,
        )?;
        if bad > 0 {
            // The frame is untouched so far.
            return Err(StylizeError::NonFinite {
                count: bad,
                total: mw * mh * 3,
                width: fw,
                height: fh,
            });
        }
        self.guided.upsample_mix_i420(
            &self.small_in.as_frame(),
            &self.small_out.as_frame(),
            frame,
            matrix,
            strength,
        )?;
        self.times = StageTimes {
            to_tensor: t1 - t0,
            inference: t2 - t1,
            to_frame: t2.elapsed(),
        };
        Ok(())
    }

    /// The padding multiple the frame path chose by itself after the model refused a size.
    pub fn auto_padding(&self) -> Option<usize> {
        self.auto_padding
    }

    fn process_once(
        &mut self,
        frame: &mut FrameMut<'_>,
        strength: f32,
    ) -> Result<(), StylizeError> {
        let (fw, fh) = (frame.width(), frame.height());
        let plan = self.plan_of(fw, fh);
        let t0 = Instant::now();
        let (mw, mh) = plan.model;
        let (pw, ph) = plan.padded;
        let shape = self.spec.input_shape(pw, ph);
        let input_format = self.spec.input_format();
        let resized_in = (mw, mh) != (fw, fh);
        if resized_in {
            self.small_in.reshape(mw, mh, frame.format())?;
            self.resize_in
                .resize(&frame.as_frame(), &mut self.small_in.as_frame_mut())?;
        }
        let buf = self.engine.input(shape)?;
        if resized_in {
            pack(&self.small_in.as_frame(), buf, pw, ph, input_format)?;
        } else {
            pack(&frame.as_frame(), buf, pw, ph, input_format)?;
        }
        let t1 = Instant::now();
        let out = self.engine.run()?;
        let t2 = Instant::now();
        let (ow, oh) = self.spec.output_size(out.shape).ok_or_else(|| {
            EngineError::Output(format!(
                "output '{}' has shape {:?}, expected 3 channels in {} layout",
                self.spec.output, out.shape, self.spec.layout
            ))
        })?;
        // The picture is the top-left (mw, mh) of the padded tensor; a model whose output is
        // another size (e.g. ×2) gives the same fraction of its output.
        let (cw, ch) = if (ow, oh) == (pw, ph) {
            (mw, mh)
        } else {
            (
                ((mw * ow) as f64 / pw as f64).round().clamp(1.0, ow as f64) as usize,
                ((mh * oh) as f64 / ph as f64).round().clamp(1.0, oh as f64) as usize,
            )
        };
        let output_format = self.spec.output_format();
        let non_finite = |count: usize| StylizeError::NonFinite {
            count,
            total: cw * ch * 3,
            width: fw,
            height: fh,
        };
        // The non-finite check is counted by `unpack` in the same pass (no second read).
        if (cw, ch) == (fw, fh) && !resized_in {
            let bad = unpack(out.data, ow, oh, output_format, frame, strength)?;
            if bad > 0 {
                // Rare: put the picture back from the input tensor, which holds it exactly
                // (pack then unpack at full strength is the identity).
                let input = self.engine.input(shape)?;
                unpack(input, pw, ph, input_format, frame, 1.0)?;
                return Err(non_finite(bad));
            }
        } else {
            self.small_out.reshape(cw, ch, frame.format())?;
            let bad = unpack(
                out.data,
                ow,
                oh,
                output_format,
                &mut self.small_out.as_frame_mut(),
                1.0,
            )?;
            if bad > 0 {
                // The frame is untouched so far.
                return Err(non_finite(bad));
            }
            // Only at a reduced inference scale (fixed-size models keep the reference
            // pictures' resampling). The guide is the picture the model saw, so it needs the
            // same size as the result.
            if self.options.upsampler == Upsampler::Guided
                && self.options.inference_scale < 1.0
                && resized_in
                && (cw, ch) == (mw, mh)
            {
                self.guided.upsample_mix(
                    &self.small_in.as_frame(),
                    &self.small_out.as_frame(),
                    frame,
                    strength,
                )?;
                self.times = StageTimes {
                    to_tensor: t1 - t0,
                    inference: t2 - t1,
                    to_frame: t2.elapsed(),
                };
                return Ok(());
            }
            self.full_out.reshape(fw, fh, frame.format())?;
            self.resize_out.resize(
                &self.small_out.as_frame(),
                &mut self.full_out.as_frame_mut(),
            )?;
            mix(frame, &self.full_out.as_frame(), strength)?;
        }
        self.times = StageTimes {
            to_tensor: t1 - t0,
            inference: t2 - t1,
            to_frame: t2.elapsed(),
        };
        Ok(())
    }
}
