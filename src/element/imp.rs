//! Implementation of `styletransfer`.
//!
//! Frames are stylised off the streaming thread, so inference overlaps the decoding
//! upstream and the encoding or display downstream: a worker thread hands frames in turn to
//! the inference units (threads that own a copy of the model: one, or several with
//! `parallel-frames`), takes them back in order and blends them over time.
//! `submit_input_buffer` sends a frame to the worker through a bounded channel (at most one
//! frame per unit plus one waiting in the element), `generate_output` pushes finished
//! frames in order. Serialized events (EOS,
//! segments, caps) wait until every frame before them has been pushed; FLUSH discards them.
//! A model change while playing loads on its own thread and is swapped in by the worker at a
//! frame boundary, after a test inference at the current frame size.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded, unbounded};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_transform::GenerateOutputSuccess;
use gst_base::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;
use gst_video::{VideoFormat, VideoInfo};

use super::{FlowPresetProp, ProviderProp, Temporal, UpsamplerProp};
use crate::engine::{EngineOptions, parse_resolutions};
use crate::frame::{FrameMut, OwnedFrame, PixelFormat};
use crate::model::{SpecOverrides, parse_extra_input};
use crate::temporal::{BlendOutcome, TemporalFilter, TemporalOptions};
use crate::{Stylizer, StylizerOptions, catalog};

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "styletransfer",
        gst::DebugColorFlags::empty(),
        Some("Neural style transfer"),
    )
});

const DEFAULT_STRENGTH: f64 = 1.0;
const DEFAULT_INFERENCE_SCALE: f64 = 1.0;
const DEFAULT_UPSAMPLER: UpsamplerProp = UpsamplerProp::Guided;
const DEFAULT_TEMPORAL: Temporal = Temporal::None;
const DEFAULT_TEMPORAL_WEIGHT: f64 = 0.5;
const DEFAULT_PROVIDER: ProviderProp = ProviderProp::Auto;
const DEFAULT_DEVICE_ID: u32 = 0;
const DEFAULT_FP16: bool = true;
const DEFAULT_THREADS: u32 = 0;
const DEFAULT_DROP_FRAMES: bool = true;
const DEFAULT_PARALLEL_FRAMES: u32 = 1;
const DEFAULT_FLOW_PRESET: FlowPresetProp = FlowPresetProp::Medium;
const DEFAULT_FLOW_SCALE: f64 = 0.0;

/// Capacity of the finished-frames channel: never reached (at most `window` + 1 frames are
/// outstanding, and `parallel-frames` is at most 8), so the worker never blocks on it, and a bounded channel does not
/// allocate per message.
const DONE_CAPACITY: usize = 16;
/// Inference times kept for the mean and p95 statistics.
const STATS_WINDOW: usize = 256;

#[derive(Debug, Clone)]
struct Settings {
    model: Option<String>,
    provider: ProviderProp,
    device_id: u32,
    fp16: bool,
    engine_cache_dir: Option<String>,
    trt_resolutions: Option<String>,
    threads: u32,
    strength: f64,
    inference_scale: f64,
    upsampler: UpsamplerProp,
    temporal: Temporal,
    temporal_weight: f64,
    flow_preset: FlowPresetProp,
    flow_scale: f64,
    input_range: Option<String>,
    output_range: Option<String>,
    channel_order: Option<String>,
    layout: Option<String>,
    multiple_of: u32,
    input_name: Option<String>,
    output_name: Option<String>,
    extra_input: Option<String>,
    drop_frames: bool,
    parallel_frames: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            provider: DEFAULT_PROVIDER,
            device_id: DEFAULT_DEVICE_ID,
            fp16: DEFAULT_FP16,
            engine_cache_dir: None,
            trt_resolutions: None,
            threads: DEFAULT_THREADS,
            strength: DEFAULT_STRENGTH,
            inference_scale: DEFAULT_INFERENCE_SCALE,
            upsampler: DEFAULT_UPSAMPLER,
            temporal: DEFAULT_TEMPORAL,
            temporal_weight: DEFAULT_TEMPORAL_WEIGHT,
            flow_preset: DEFAULT_FLOW_PRESET,
            flow_scale: DEFAULT_FLOW_SCALE,
            input_range: None,
            output_range: None,
            channel_order: None,
            layout: None,
            multiple_of: 0,
            input_name: None,
            output_name: None,
            extra_input: None,
            drop_frames: DEFAULT_DROP_FRAMES,
            parallel_frames: DEFAULT_PARALLEL_FRAMES,
        }
    }
}

impl Settings {
    /// Whether the frame path takes I420 as it is: at a reduced inference scale with the
    /// guided upsampler, which writes Y, U and V itself, and without temporal blending, which
    /// works on packed RGB. Elsewhere I420 would only be converted to RGB and back here, which
    /// an upstream converter does as well.
    fn takes_i420(&self) -> bool {
        self.temporal == Temporal::None
            && self.inference_scale < 1.0
            && self.upsampler == UpsamplerProp::Guided
    }

    fn model_path(&self) -> Result<PathBuf, String> {
        match &self.model {
            Some(m) if !m.is_empty() => Ok(catalog::resolve(m)),
            _ => catalog::default_model().ok_or_else(|| {
                format!(
                    "no model set and the default model {}/{}.onnx is not there",
                    catalog::models_dir().display(),
                    catalog::DEFAULT_MODEL
                )
            }),
        }
    }

    fn overrides(&self) -> Result<SpecOverrides, String> {
        let mut o = SpecOverrides {
            input_range: parse_opt(&self.input_range, "input-range")?,
            output_range: parse_opt(&self.output_range, "output-range")?,
            channel_order: parse_opt(&self.channel_order, "channel-order")?,
            layout: parse_opt(&self.layout, "layout")?,
            multiple_of: (self.multiple_of > 0).then_some(self.multiple_of as usize),
            input: self.input_name.clone(),
            output: self.output_name.clone(),
            ..Default::default()
        };
        for part in self
            .extra_input
            .as_deref()
            .unwrap_or("")
            .split(';')
            .filter(|p| !p.trim().is_empty())
        {
            let (k, v) = parse_extra_input(part).map_err(|e| format!("extra-input: {e}"))?;
            o.extra_inputs.insert(k, v);
        }
        Ok(o)
    }

    /// Loads the configured model with this many intra-op threads (0 = ONNX Runtime's
    /// choice).
    fn load_with(&self, threads: usize) -> Result<(Stylizer, PathBuf), String> {
        let path = self.model_path()?;
        let engine = EngineOptions {
            provider: self.provider.into(),
            device_id: self.device_id,
            threads,
            fp16: self.fp16,
            engine_cache_dir: self.engine_cache_dir.as_ref().map(PathBuf::from),
            profile: None,
            resolutions: match &self.trt_resolutions {
                Some(r) => parse_resolutions(r).map_err(|e| format!("trt-resolutions: {e}"))?,
                None => Vec::new(),
            },
        };
        let s = Stylizer::load(
            &path,
            &self.overrides()?,
            &engine,
            StylizerOptions {
                inference_scale: self.inference_scale as f32,
                upsampler: self.upsampler.into(),
            },
        )
        .map_err(|e| e.to_string())?;
        Ok((s, path))
    }

    /// Loads one copy of the model per inference unit: `parallel-frames`, or for 0 (auto)
    /// what `initial_units` expects until the frame size is known (`auto_units` then
    /// decides, and the model is reloaded only if that differs).
    fn load_units(&self) -> Result<(Vec<Stylizer>, PathBuf), String> {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let n = match self.parallel_frames {
            0 => initial_units(self.provider, self.threads, cores),
            n => n as usize,
        };
        self.load_n_units(n, true)
    }

    /// Loads `n` copies of the model, all at once when `together` (each load is mostly one
    /// thread's work: two take as long as one on two cores; for loads nothing waits behind,
    /// not for a model swap while frames flow, which must leave the stream its cores). Units
    /// share the cores: unless `threads` is set, each gets cores / n threads.
    fn load_n_units(&self, n: usize, together: bool) -> Result<(Vec<Stylizer>, PathBuf), String> {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        let threads = if self.threads > 0 {
            self.threads as usize
        } else if n > 1 {
            (cores / n).max(1)
        } else {
            0
        };
        std::thread::scope(|scope| {
            let others: Vec<_> = (1..n)
                .filter(|_| together)
                .map(|_| scope.spawn(|| self.load_with(threads)))
                .collect();
            let (first, path) = self.load_with(threads)?;
            let mut units = vec![first];
            for other in others {
                let loaded = other
                    .join()
                    .map_err(|_| "loading a copy of the model panicked".to_string())??;
                units.push(loaded.0);
            }
            // Not together: the rest one after the other, here.
            while units.len() < n {
                units.push(self.load_with(threads)?.0);
            }
            Ok((units, path))
        })
    }
}

/// Units `parallel-frames=0` loads before the frame size is known: the two one-thread units
/// that `auto_units` picks for small frames where the model is sure to run on the CPU (most
/// inputs made cheap enough to run on a CPU are small), so that they need no reload once
/// caps arrive; else one. Large frames on the CPU then reload once into one unit on every
/// core, a cost that is small next to one large frame's inference.
fn initial_units(provider: ProviderProp, threads: u32, cores: usize) -> usize {
    if threads == 0 {
        auto_units(crate::Provider::from(provider).expects_cpu(), cores, 0)
    } else {
        1
    }
}

/// The most pixels an inference may have for `parallel-frames=0` to run two frames at once
/// on the CPU (640x480). On small frames one model with two threads leaves cores idle
/// (its threads wait for each other after every layer), so two one-thread models do more.
/// On large ones two models at once fight over memory: their activations (over 32 MB, more
/// than glibc keeps for reuse) are mapped and faulted in afresh on every run. Measured with
/// `stylize convert --provider cpu` on 2 cores: 1280x720 inference 1.7 fps with one model
/// against 1.3 with two, 960x540 2.4-3.0 against 2.3-2.4, 320x136 and 160x68 about 10-20 %
/// more with two.
const AUTO_PARALLEL_MAX_PIXELS: usize = 640 * 480;

/// Inference units for `parallel-frames=0`: two on a CPU with two cores or more when the
/// model runs on frames of at most `AUTO_PARALLEL_MAX_PIXELS`, else one.
fn auto_units(on_cpu: bool, cores: usize, inference_pixels: usize) -> usize {
    if on_cpu && cores >= 2 && inference_pixels <= AUTO_PARALLEL_MAX_PIXELS {
        2
    } else {
        1
    }
}

/// An optional string property parsed into its type; the error names the property.
fn parse_opt<T: std::str::FromStr>(v: &Option<String>, name: &str) -> Result<Option<T>, String>
where
    T::Err: std::fmt::Display,
{
    v.as_deref()
        .map(str::parse)
        .transpose()
        .map_err(|e| format!("{name}: {e}"))
}

/// Per-frame parameters, read from the settings once per frame on the streaming thread.
#[derive(Debug, Clone, Copy)]
struct Params {
    strength: f32,
    inference_scale: f32,
    upsampler: crate::Upsampler,
    temporal: Temporal,
    temporal_weight: f32,
    flow_preset: FlowPresetProp,
    /// Flow image divisor (0 = auto).
    flow_divisor: usize,
    drop_frames: bool,
}

enum Job {
    Frame {
        buffer: gst::Buffer,
        info: VideoInfo,
        params: Params,
        reset_history: bool,
    },
    /// Runs the model once on a black frame of this size: proves it can take such frames.
    /// The reply is the number of pixels the model runs on for such frames.
    Probe {
        width: usize,
        height: usize,
        format: PixelFormat,
        reply: Sender<Result<usize, String>>,
    },
}

enum Done {
    Frame(gst::Buffer),
    Failed(String),
}

struct Swap {
    generation: u64,
    /// One per inference unit.
    stylizers: Vec<Stylizer>,
    path: PathBuf,
}

/// What the statistics properties report.
struct Stats {
    processed: u64,
    /// Frames passed through because the model gave NaN or infinite values.
    non_finite: u64,
    dropped: u64,
    scene_cuts: u64,
    times_ms: [f64; STATS_WINDOW],
    count: usize,
    next: usize,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            processed: 0,
            non_finite: 0,
            dropped: 0,
            scene_cuts: 0,
            times_ms: [0.0; STATS_WINDOW],
            count: 0,
            next: 0,
        }
    }
}

impl Stats {
    fn record(&mut self, ms: f64) {
        self.processed += 1;
        self.times_ms[self.next] = ms;
        self.next = (self.next + 1) % STATS_WINDOW;
        self.count = (self.count + 1).min(STATS_WINDOW);
    }
    fn mean(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        self.times_ms[..self.count].iter().sum::<f64>() / self.count as f64
    }
    fn p95(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        let mut v = self.times_ms[..self.count].to_vec();
        v.sort_by(f64::total_cmp);
        v[((self.count as f64 * 0.95).ceil() as usize).clamp(1, self.count) - 1]
    }
}

/// State shared with the worker and loader threads.
#[derive(Default)]
struct Shared {
    stats: Mutex<Stats>,
    active_provider: Mutex<String>,
    active_model: Mutex<String>,
    /// The frame size the stream has now, for loaders to test a new model on.
    frame_size: Mutex<Option<(usize, usize, PixelFormat)>>,
    /// The newest model load asked for; older loads that finish later are discarded.
    generation: AtomicU64,
    /// Whether this stream has had its warning about NaN or infinite model output.
    non_finite_warned: std::sync::atomic::AtomicBool,
}

struct State {
    jobs: Sender<Job>,
    /// The worker's end too, so that a live stream can take back a stale waiting frame.
    pending: Receiver<Job>,
    done: Receiver<Done>,
    swaps: Sender<Swap>,
    worker: Option<JoinHandle<()>>,
    info: Option<VideoInfo>,
    in_flight: usize,
    /// Frames the element holds at most: one per inference unit and one waiting.
    window: usize,
    live: Option<bool>,
    reset_history: bool,
}

impl State {
    /// Ends the worker and waits for it: closing the job channel (with the rest of the
    /// state) ends it after the frame it is on.
    fn shut_down(mut self) {
        let handle = self.worker.take();
        drop(self);
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

#[derive(Default)]
pub struct StyleTransfer {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    shared: Arc<Shared>,
}

/// Packed RGB formats: every path of the element works on them.
const PACKED_FORMATS: [VideoFormat; 6] = [
    VideoFormat::Rgba,
    VideoFormat::Bgra,
    VideoFormat::Rgbx,
    VideoFormat::Bgrx,
    VideoFormat::Rgb,
    VideoFormat::Bgr,
];

static PACKED_CAPS: LazyLock<gst::Caps> = LazyLock::new(|| {
    gst_video::VideoCapsBuilder::new()
        .format_list(PACKED_FORMATS)
        .build()
});

/// The packed formats, then I420 (decoders' and encoders' own format).
static ALL_CAPS: LazyLock<gst::Caps> = LazyLock::new(|| {
    gst_video::VideoCapsBuilder::new()
        .format_list(PACKED_FORMATS.into_iter().chain([VideoFormat::I420]))
        .build()
});

/// The packed format the model side works in for frames of `f`: the same, or for I420
/// (converted at the model's size) RGBx.
fn model_format(f: VideoFormat) -> Option<PixelFormat> {
    match f {
        VideoFormat::I420 => Some(PixelFormat::Rgbx),
        f => pixel_format(f),
    }
}

fn pixel_format(f: VideoFormat) -> Option<PixelFormat> {
    Some(match f {
        VideoFormat::Rgb => PixelFormat::Rgb,
        VideoFormat::Bgr => PixelFormat::Bgr,
        VideoFormat::Rgba => PixelFormat::Rgba,
        VideoFormat::Bgra => PixelFormat::Bgra,
        VideoFormat::Rgbx => PixelFormat::Rgbx,
        VideoFormat::Bgrx => PixelFormat::Bgrx,
        _ => return None,
    })
}

/// Work for one inference unit (a thread that owns one copy of the model).
enum UnitJob {
    Frame {
        buffer: gst::Buffer,
        info: VideoInfo,
        strength: f32,
        inference_scale: f32,
        upsampler: crate::Upsampler,
    },
    Probe {
        width: usize,
        height: usize,
        format: PixelFormat,
        reply: Sender<Result<usize, String>>,
    },
    Swap(Box<Stylizer>),
}

/// A stylised frame and the time the model took, or why it failed.
/// The third field is set when the model gave NaN or infinite values for the frame: the
/// buffer then holds the input unchanged, and the text says how many values.
type UnitDone = Result<(gst::Buffer, f64, Option<String>), String>;

/// One inference unit: stylises the frames it is given, in order.
fn unit_main(mut stylizer: Stylizer, jobs: Receiver<UnitJob>, done: Sender<UnitDone>) {
    while let Ok(job) = jobs.recv() {
        match job {
            UnitJob::Frame {
                buffer,
                info,
                strength,
                inference_scale,
                upsampler,
            } => {
                if done
                    .send(stylise(
                        &mut stylizer,
                        buffer,
                        &info,
                        strength,
                        inference_scale,
                        upsampler,
                    ))
                    .is_err()
                {
                    break;
                }
            }
            UnitJob::Probe {
                width,
                height,
                format,
                reply,
            } => {
                let _ = reply.send(check_frames(&stylizer, width, height, format));
            }
            UnitJob::Swap(s) => stylizer = *s,
        }
    }
}

fn stylise(
    stylizer: &mut Stylizer,
    mut buffer: gst::Buffer,
    info: &VideoInfo,
    strength: f32,
    inference_scale: f32,
    upsampler: crate::Upsampler,
) -> UnitDone {
    let i420 = info.format() == VideoFormat::I420;
    let format = model_format(info.format())
        .ok_or_else(|| format!("unsupported format {:?}", info.format()))?;
    buffer.make_mut();
    let mut vf = gst_video::VideoFrame::from_buffer_writable(buffer, info)
        .map_err(|_| "cannot map the frame for writing".to_string())?;
    let (w, h) = (info.width() as usize, info.height() as usize);
    if (stylizer.options().inference_scale - inference_scale).abs() > f32::EPSILON {
        stylizer.set_inference_scale(inference_scale);
    }
    if stylizer.options().upsampler != upsampler {
        stylizer.set_upsampler(upsampler);
    }
    let t = Instant::now();
    let result = if i420 {
        let st = vf.plane_stride();
        let strides = [st[0] as usize, st[1] as usize, st[2] as usize];
        let [y, u, v, _] = vf.planes_data_mut();
        let mut frame =
            crate::frame::I420Mut::new([y, u, v], strides, w, h).map_err(|e| e.to_string())?;
        stylizer.process_i420(&mut frame, &super::yuv_matrix(info), strength)
    } else {
        let stride = vf.plane_stride()[0] as usize;
        let data = vf.plane_data_mut(0).map_err(|e| e.to_string())?;
        let mut frame = FrameMut::new(data, w, h, stride, format).map_err(|e| e.to_string())?;
        stylizer.process(&mut frame, strength)
    };
    let non_finite = match result {
        Ok(()) => None,
        // The frame is the input unchanged: it goes on as if at strength 0.
        Err(e @ crate::StylizeError::NonFinite { .. }) => Some(e.to_string()),
        Err(e) => return Err(e.to_string()),
    };
    Ok((
        vf.into_buffer(),
        t.elapsed().as_secs_f64() * 1e3,
        non_finite,
    ))
}

/// A frame inside the worker, in stream order.
enum Slot {
    /// Being stylised by a unit.
    Busy {
        unit: usize,
        info: VideoInfo,
        params: Params,
        reset: bool,
    },
    /// Passed through unchanged (strength 0).
    Ready(gst::Buffer),
}

/// The worker: hands frames to the inference units in turn (one unit normally; several
/// stylise successive frames in parallel with `parallel-frames`), takes them back in order
/// and applies the temporal blending, which needs the frames one after another.
struct Worker {
    units: Vec<(Sender<UnitJob>, Receiver<UnitDone>)>,
    threads: Vec<JoinHandle<()>>,
    order: std::collections::VecDeque<Slot>,
    temporal: TemporalFilter,
    /// A new model took over: the next frame starts a new history.
    reset_next: bool,
    shared: Arc<Shared>,
    /// The element, to post warnings from this thread.
    element: glib::WeakRef<super::StyleTransfer>,
}

impl Worker {
    fn new(
        stylizers: Vec<Stylizer>,
        shared: Arc<Shared>,
        element: glib::WeakRef<super::StyleTransfer>,
    ) -> Result<Self, String> {
        let n = stylizers.len();
        let mut units = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for (i, s) in stylizers.into_iter().enumerate() {
            // Capacity 1: a unit holds at most one frame (frames go to idle units only).
            let (jtx, jrx) = bounded::<UnitJob>(1);
            let (dtx, drx) = bounded::<UnitDone>(1);
            let handle = std::thread::Builder::new()
                .name(format!("styletransfer-{i}"))
                .spawn(move || unit_main(s, jrx, dtx))
                .map_err(|e| format!("cannot start an inference thread: {e}"))?;
            units.push((jtx, drx));
            threads.push(handle);
        }
        Ok(Worker {
            units,
            threads,
            order: std::collections::VecDeque::with_capacity(n + 2),
            temporal: TemporalFilter::new(TemporalOptions::default()),
            reset_next: false,
            shared,
            element,
        })
    }

    fn busy(&self) -> usize {
        self.order
            .iter()
            .filter(|s| matches!(s, Slot::Busy { .. }))
            .count()
    }

    fn run(mut self, jobs: Receiver<Job>, done: Sender<Done>, swaps: Receiver<Swap>) {
        loop {
            // The oldest frame leaves as soon as it is ready; a new frame is taken whenever a
            // unit is free.
            if let Some(Slot::Ready(_)) = self.order.front() {
                let Some(Slot::Ready(b)) = self.order.pop_front() else {
                    unreachable!()
                };
                if done.send(Done::Frame(b)).is_err() {
                    break;
                }
                continue;
            }
            let oldest_unit = match self.order.front() {
                Some(Slot::Busy { unit, .. }) => Some(*unit),
                _ => None,
            };
            let take_job = self.busy() < self.units.len();
            let mut sel = crossbeam_channel::Select::new();
            let job_op = take_job.then(|| sel.recv(&jobs));
            let unit_op = oldest_unit.map(|u| sel.recv(&self.units[u].1));
            if job_op.is_none() && unit_op.is_none() {
                break; // cannot happen: with no frame inside, a unit is free
            }
            let op = sel.select();
            if Some(op.index()) == job_op {
                match op.recv(&jobs) {
                    Ok(job) => {
                        self.take_swaps(&swaps);
                        self.dispatch(job);
                    }
                    Err(_) => {
                        // The element stopped: frames inside are not wanted any more.
                        break;
                    }
                }
            } else {
                let u = oldest_unit.expect("selected a unit");
                let result = op.recv(&self.units[u].1);
                let Some(Slot::Busy {
                    info,
                    params,
                    reset,
                    ..
                }) = self.order.pop_front()
                else {
                    unreachable!()
                };
                let out = match result {
                    Ok(Ok((b, ms, None))) => self.finish((b, ms), &info, params, reset),
                    Ok(Ok((b, ms, Some(why)))) => Ok(self.pass_non_finite(b, ms, &why)),
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err("an inference thread stopped".to_string()),
                };
                if out.is_err() {
                    self.temporal.skip();
                }
                let msg = match out {
                    Ok(b) => Done::Frame(b),
                    Err(e) => Done::Failed(e),
                };
                if done.send(msg).is_err() {
                    break;
                }
            }
        }
        drop(self.units);
        for t in self.threads {
            let _ = t.join();
        }
    }

    /// A model that finished loading takes over at this frame boundary.
    fn take_swaps(&mut self, swaps: &Receiver<Swap>) {
        while let Ok(swap) = swaps.try_recv() {
            if swap.generation != self.shared.generation.load(Ordering::SeqCst)
                || swap.stylizers.len() != self.units.len()
            {
                continue;
            }
            *self.shared.active_provider.lock().unwrap() =
                swap.stylizers[0].engine().provider().to_string();
            *self.shared.active_model.lock().unwrap() = swap.path.display().to_string();
            for (unit, s) in self.units.iter().zip(swap.stylizers) {
                let _ = unit.0.send(UnitJob::Swap(Box::new(s)));
            }
            self.reset_next = true;
        }
    }

    fn dispatch(&mut self, job: Job) {
        match job {
            Job::Probe {
                width,
                height,
                format,
                reply,
            } => {
                // Probes come with no frame inside (caps changes drain first).
                let _ = self.units[0].0.send(UnitJob::Probe {
                    width,
                    height,
                    format,
                    reply,
                });
            }
            Job::Frame {
                buffer,
                info,
                params,
                reset_history,
            } => {
                let reset = std::mem::take(&mut self.reset_next) || reset_history;
                if params.strength <= 0.0 {
                    // Bit-exact passthrough; the history no longer matches what is shown.
                    self.temporal.reset();
                    self.order.push_back(Slot::Ready(buffer));
                    return;
                }
                self.observe(&buffer, &info, params);
                // Any idle unit: results are taken back in stream order whichever unit
                // made them, so a slow frame on one unit does not idle the others.
                let unit = (0..self.units.len())
                    .find(|u| {
                        !self
                            .order
                            .iter()
                            .any(|s| matches!(s, Slot::Busy { unit, .. } if unit == u))
                    })
                    .unwrap_or(0);
                let sent = self.units[unit].0.send(UnitJob::Frame {
                    buffer,
                    info: info.clone(),
                    strength: params.strength,
                    inference_scale: params.inference_scale,
                    upsampler: params.upsampler,
                });
                if sent.is_err() {
                    gst::error!(CAT, "inference thread {unit} has stopped");
                }
                self.order.push_back(Slot::Busy {
                    unit,
                    info,
                    params,
                    reset,
                });
            }
        }
    }

    /// Shows the input to the temporal filter (flow needs it before stylisation).
    fn observe(&mut self, buffer: &gst::Buffer, info: &VideoInfo, p: Params) {
        let options = self.temporal.options();
        let preset = p.flow_preset.into();
        if options.preset != preset || options.flow_divisor != p.flow_divisor {
            self.temporal.set_options(TemporalOptions {
                preset,
                flow_divisor: p.flow_divisor,
                ..options.clone()
            });
        }
        let mode = p.temporal.into();
        let Some(format) = pixel_format(info.format()) else {
            return self.temporal.observe_none();
        };
        let Ok(vf) = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer.as_ref(), info)
        else {
            return self.temporal.observe_none();
        };
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = vf.plane_stride()[0] as usize;
        match vf
            .plane_data(0)
            .ok()
            .and_then(|d| crate::frame::Frame::new(d, w, h, stride, format).ok())
        {
            Some(f) => self.temporal.observe(&f, mode),
            None => self.temporal.observe_none(),
        }
    }

    /// A frame whose model output had NaN or infinite values: it goes out as it came in (as
    /// at strength 0), the history restarts after it, and the first such frame of a stream
    /// posts a warning (the others are only counted: `frames-non-finite`).
    fn pass_non_finite(&mut self, buffer: gst::Buffer, ms: f64, why: &str) -> gst::Buffer {
        self.temporal.skip();
        let count = {
            let mut stats = self.shared.stats.lock().unwrap();
            stats.record(ms);
            stats.non_finite += 1;
            stats.non_finite
        };
        gst::debug!(CAT, "frame passed through unstylised: {why}");
        if !self.shared.non_finite_warned.swap(true, Ordering::SeqCst)
            && let Some(element) = self.element.upgrade()
        {
            let model = self.shared.active_model.lock().unwrap().clone();
            gst::element_warning!(
                element,
                gst::StreamError::Failed,
                ("model {model}: {why}. Frames with NaN or infinite output pass through unstylised ({count} so far); later ones are counted in the frames-non-finite property without another warning")
            );
        }
        buffer
    }

    /// Blends a stylised frame (in order) and records the statistics.
    fn finish(
        &mut self,
        (buffer, ms): (gst::Buffer, f64),
        info: &VideoInfo,
        p: Params,
        reset: bool,
    ) -> Result<gst::Buffer, String> {
        if reset {
            self.temporal.reset();
        }
        if info.format() == VideoFormat::I420 {
            // I420 is negotiated only without temporal blending; a frame in flight while a
            // change of `temporal` renegotiates to RGB goes out unblended.
            self.temporal.skip();
            self.shared.stats.lock().unwrap().record(ms);
            return Ok(buffer);
        }
        let format = pixel_format(info.format())
            .ok_or_else(|| format!("unsupported format {:?}", info.format()))?;
        let mut vf = gst_video::VideoFrame::from_buffer_writable(buffer, info)
            .map_err(|_| "cannot map the frame for writing".to_string())?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = vf.plane_stride()[0] as usize;
        let data = vf.plane_data_mut(0).map_err(|e| e.to_string())?;
        let mut frame = FrameMut::new(data, w, h, stride, format).map_err(|e| e.to_string())?;
        let outcome = self
            .temporal
            .blend(&mut frame, p.temporal.into(), p.temporal_weight)
            .map_err(|e| e.to_string())?;
        let mut stats = self.shared.stats.lock().unwrap();
        if let BlendOutcome::Cut { tracked } = outcome {
            gst::debug!(
                CAT,
                "scene cut ({:.0}% of pixels followed): history reset",
                tracked * 100.0
            );
            stats.scene_cuts += 1;
        }
        stats.record(ms);
        drop(stats);
        Ok(vf.into_buffer())
    }
}

/// Whether frames of this size and format can be held, and the number of pixels the model
/// runs on for them, without running it: a run here would cost the stream a whole extra
/// inference at every start (0.5 s for 720p on two CPU cores), and the first frame runs it
/// anyway. What only a run can show (a graph that fails on these shapes) fails that first
/// frame with the reason.
fn check_frames(s: &Stylizer, w: usize, h: usize, format: PixelFormat) -> Result<usize, String> {
    crate::frame::packed_len(w, h, format).map_err(|e| e.to_string())?;
    let (iw, ih) = s.inference_size_for(w, h);
    Ok(iw * ih)
}

/// Runs the model once on a black frame. NaN or infinite output is no reason to refuse the
/// model: such frames pass through unstylised at run time (and are reported then).
fn probe(s: &mut Stylizer, w: usize, h: usize, format: PixelFormat) -> Result<(), String> {
    let mut f = OwnedFrame::new(w, h, format).map_err(|e| e.to_string())?;
    match s.process(&mut f.as_frame_mut(), 1.0) {
        Ok(()) | Err(crate::StylizeError::NonFinite { .. }) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

impl StyleTransfer {
    fn params(&self) -> Params {
        let s = self.settings.lock().unwrap();
        Params {
            strength: s.strength as f32,
            inference_scale: s.inference_scale as f32,
            upsampler: s.upsampler.into(),
            temporal: s.temporal,
            temporal_weight: s.temporal_weight as f32,
            flow_preset: s.flow_preset,
            flow_divisor: if s.flow_scale > 0.0 {
                (1.0 / s.flow_scale).round().max(1.0) as usize
            } else {
                0
            },
            drop_frames: s.drop_frames,
        }
    }

    /// Pushes every frame still in the element, in order.
    fn drain(&self) -> Result<(), gst::FlowError> {
        loop {
            let (done, pending) = {
                let state = self.state.lock().unwrap();
                match state.as_ref() {
                    Some(s) if s.in_flight > 0 => (s.done.clone(), s.in_flight),
                    _ => return Ok(()),
                }
            };
            gst::debug!(CAT, imp = self, "draining {pending} frame(s)");
            let out = done.recv().map_err(|_| gst::FlowError::Error)?;
            if let Some(s) = self.state.lock().unwrap().as_mut() {
                s.in_flight -= 1;
            }
            match out {
                Done::Frame(b) => {
                    self.obj().src_pad().push(b)?;
                }
                Done::Failed(e) => {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Failed,
                        ("inference failed: {e}")
                    );
                    return Err(gst::FlowError::Error);
                }
            }
        }
    }

    /// Drops every frame still in the element (flush).
    fn discard(&self) {
        let mut state = self.state.lock().unwrap();
        if let Some(s) = state.as_mut() {
            while s.in_flight > 0 {
                if s.done.recv().is_err() {
                    break;
                }
                s.in_flight -= 1;
            }
            s.reset_history = true;
        }
    }

    fn upstream_is_live(&self) -> bool {
        let mut q = gst::query::Latency::new();
        self.obj().sink_pad().peer_query(&mut q) && q.result().0
    }

    /// Starts loading the current settings' model off the streaming thread; the worker swaps
    /// it in when it is ready and proven on the current frame size.
    fn reload(&self) {
        let settings = self.settings.lock().unwrap().clone();
        // As many copies as run now (the worker only takes a swap that fits its units).
        let (swaps, units) = match self.state.lock().unwrap().as_ref() {
            Some(s) => (s.swaps.clone(), s.window - 1),
            None => return, // not running: the next start loads it
        };
        let generation = self.shared.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let shared = self.shared.clone();
        let element = self.obj().clone();
        let spawned = std::thread::Builder::new()
            .name("styletransfer-load".into())
            .spawn(move || {
                let result = settings
                    .load_n_units(units, false)
                    .and_then(|(mut units, path)| {
                        if let Some((w, h, f)) = *shared.frame_size.lock().unwrap() {
                            probe(&mut units[0], w, h, f).map_err(|e| {
                                format!("{} cannot take {w}x{h} {f} frames: {e}", path.display())
                            })?;
                        }
                        Ok((units, path))
                    });
                match result {
                    Ok((stylizers, path)) => {
                        gst::info!(CAT, obj = element, "model {} loaded", path.display());
                        let _ = swaps.send(Swap {
                            generation,
                            stylizers,
                            path,
                        });
                    }
                    Err(e) => {
                        gst::element_warning!(
                            element,
                            gst::LibraryError::Settings,
                            ("cannot switch model, keeping the current one: {e}")
                        );
                    }
                }
            });
        if let Err(e) = spawned {
            gst::element_imp_warning!(self, gst::CoreError::Thread, ("cannot start a loader: {e}"));
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for StyleTransfer {
    const NAME: &'static str = "GstStyleTransfer";
    type Type = super::StyleTransfer;
    type ParentType = gst_video::VideoFilter;
}

fn mutable_note(playing: bool) -> &'static str {
    if playing {
        " Can change while PLAYING."
    } else {
        " Takes effect at the next start (READY -> PAUSED)."
    }
}

impl ObjectImpl for StyleTransfer {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("model")
                    .nick("Model")
                    .blurb(&format!(
                        "ONNX style model: a path or the name of a shipped model. Default: the shipped '{}' model.{} The new model loads in the background and replaces the old one at a frame boundary; the stream never stalls.",
                        catalog::DEFAULT_MODEL,
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("provider", DEFAULT_PROVIDER)
                    .nick("Provider")
                    .blurb(&format!(
                        "Execution provider: auto tries TensorRT, CUDA, then CPU; a named one fails if it cannot run.{}",
                        mutable_note(false)
                    ))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("device-id")
                    .nick("Device ID")
                    .blurb(&format!("GPU index for CUDA and TensorRT.{}", mutable_note(false)))
                    .maximum(64)
                    .default_value(DEFAULT_DEVICE_ID)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoolean::builder("fp16")
                    .nick("FP16")
                    .blurb(&format!("Let TensorRT build fp16 engines.{}", mutable_note(false)))
                    .default_value(DEFAULT_FP16)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("engine-cache-dir")
                    .nick("Engine cache directory")
                    .blurb(&format!(
                        "Where TensorRT keeps built engines and timing caches (default: the project cache).{}",
                        mutable_note(false)
                    ))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecString::builder("trt-resolutions")
                    .nick("TensorRT resolutions")
                    .blurb(&format!(
                        "Frame sizes TensorRT builds its engine for, e.g. 1280x720,1920x1080: its optimisation profile covers them and is tuned for the first (default: the first size it sees).{}",
                        mutable_note(false)
                    ))
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("threads")
                    .nick("Threads")
                    .blurb(&format!(
                        "CPU inference threads, 0 = one per core.{}",
                        mutable_note(false)
                    ))
                    .maximum(1024)
                    .default_value(DEFAULT_THREADS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecDouble::builder("strength")
                    .nick("Strength")
                    .blurb(&format!(
                        "1 = fully stylised, 0 = the input unchanged (bit-exact passthrough).{}",
                        mutable_note(true)
                    ))
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_STRENGTH)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("inference-scale")
                    .nick("Inference scale")
                    .blurb(&format!(
                        "Run the model on the frame scaled by this and scale the result back up (free-size models).{}",
                        mutable_note(true)
                    ))
                    .minimum(0.05)
                    .maximum(1.0)
                    .default_value(DEFAULT_INFERENCE_SCALE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("upsampler", DEFAULT_UPSAMPLER)
                    .nick("Upsampler")
                    .blurb(&format!(
                        "How a result computed at inference-scale below 1 is scaled back: guided by the full-size input (sharp edges) or bilinear.{}",
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("temporal", DEFAULT_TEMPORAL)
                    .nick("Temporal blending")
                    .blurb(&format!(
                        "How each output is blended with the previous one to reduce flicker.{}",
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("temporal-weight")
                    .nick("Temporal weight")
                    .blurb(&format!(
                        "Weight of the previous output (0 = per-frame, bit-exact).{}",
                        mutable_note(true)
                    ))
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_TEMPORAL_WEIGHT)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("flow-preset", DEFAULT_FLOW_PRESET)
                    .nick("Flow preset")
                    .blurb(&format!(
                        "Speed/accuracy of the optical flow for temporal=flow.{}",
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("flow-scale")
                    .nick("Flow scale")
                    .blurb(&format!(
                        "Scale of the frame the optical flow runs on, 1/n (0 = auto: about 320 pixels wide).{}",
                        mutable_note(true)
                    ))
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_FLOW_SCALE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("input-range")
                    .nick("Input range")
                    .blurb(&format!(
                        "Override the model's value range: 0-1, 0-255 or -1-1 (unset: from the model).{} Reloads the model.",
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("channel-order")
                    .nick("Channel order")
                    .blurb(&format!(
                        "Override the model's channel order: rgb or bgr (unset: from the model).{} Reloads the model.",
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("output-range")
                    .nick("Output range")
                    .blurb(&format!(
                        "Override the model's output value range: 0-1, 0-255 or -1-1 (unset: from the model, else its input range).{} Reloads the model.",
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("layout")
                    .nick("Layout")
                    .blurb(&format!(
                        "Override the model's tensor layout: nchw or nhwc (unset: from the model).{} Reloads the model.",
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("multiple-of")
                    .nick("Multiple of")
                    .blurb(&format!(
                        "Pad free-size inputs to a multiple of this, 0 = from the model.{} Reloads the model.",
                        mutable_note(true)
                    ))
                    .maximum(1024)
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("input-name")
                    .nick("Input name")
                    .blurb(&format!(
                        "Name of the model's image input, when it has several (unset: the rank-4 one).{} Reloads the model.",
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("output-name")
                    .nick("Output name")
                    .blurb(&format!(
                        "Name of the model's image output (unset: the first rank-4 one).{} Reloads the model.",
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("extra-input")
                    .nick("Extra inputs")
                    .blurb(&format!(
                        "Values of the model's other inputs: name=v1,v2,...;name2=... (e.g. style_weights=1,0,0).{} Reloads the model.",
                        mutable_note(true)
                    ))
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("drop-frames")
                    .nick("Drop frames")
                    .blurb(&format!(
                        "When upstream is live, drop a frame that would wait behind a busy model (the newest frame wins) instead of queueing it; false keeps every frame (e.g. recording a camera to a file).{}",
                        mutable_note(true)
                    ))
                    .default_value(DEFAULT_DROP_FRAMES)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("active-provider")
                    .nick("Active provider")
                    .blurb("The execution provider that really runs (tensorrt, cuda or cpu); empty before start.")
                    .read_only()
                    .build(),
                glib::ParamSpecString::builder("active-model")
                    .nick("Active model")
                    .blurb("The model file that really runs.")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt::builder("parallel-frames")
                    .nick("Parallel frames")
                    .blurb(&format!(
                        "Frames stylised at once, each by its own copy of the model (0 = auto: 2 on a CPU with 2+ cores when the model runs on frames of at most 640x480 pixels, else 1; decided when the frame size is known). More frames per second on a CPU, one more frame of latency per frame.{}",
                        mutable_note(false)
                    ))
                    .maximum(8)
                    .default_value(DEFAULT_PARALLEL_FRAMES)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-processed")
                    .nick("Frames processed")
                    .blurb("Frames stylised since start.")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-dropped")
                    .nick("Frames dropped")
                    .blurb("Frames dropped to keep latency bounded (live sources only).")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("frames-non-finite")
                    .nick("Frames with NaN/Inf output")
                    .blurb("Frames passed through unstylised because the model gave NaN or infinite values for them (the first one of a stream posts a warning).")
                    .read_only()
                    .build(),
                glib::ParamSpecUInt64::builder("scene-cuts")
                    .nick("Scene cuts")
                    .blurb("Scene cuts detected by temporal=flow (each resets the history).")
                    .read_only()
                    .build(),
                glib::ParamSpecDouble::builder("mean-inference-ms")
                    .nick("Mean inference time")
                    .blurb("Mean time to stylise a frame over the last 256 frames, in ms.")
                    .minimum(0.0)
                    .read_only()
                    .build(),
                glib::ParamSpecDouble::builder("p95-inference-ms")
                    .nick("p95 inference time")
                    .blurb("95th percentile of the time to stylise a frame over the last 256 frames, in ms.")
                    .minimum(0.0)
                    .read_only()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut s = self.settings.lock().unwrap();
        let was_i420 = s.takes_i420();
        let non_empty = |v: &glib::Value| {
            v.get::<Option<String>>()
                .expect("type checked upstream")
                .filter(|s| !s.trim().is_empty())
        };
        let mut reload = false;
        match pspec.name() {
            "model" => {
                s.model = non_empty(value);
                reload = true;
            }
            "provider" => s.provider = value.get().expect("type checked upstream"),
            "device-id" => s.device_id = value.get().expect("type checked upstream"),
            "fp16" => s.fp16 = value.get().expect("type checked upstream"),
            "engine-cache-dir" => s.engine_cache_dir = non_empty(value),
            "trt-resolutions" => s.trt_resolutions = non_empty(value),
            "threads" => s.threads = value.get().expect("type checked upstream"),
            "strength" => s.strength = value.get().expect("type checked upstream"),
            "drop-frames" => s.drop_frames = value.get().expect("type checked upstream"),
            "parallel-frames" => s.parallel_frames = value.get().expect("type checked upstream"),
            "inference-scale" => s.inference_scale = value.get().expect("type checked upstream"),
            "upsampler" => s.upsampler = value.get().expect("type checked upstream"),
            "temporal" => s.temporal = value.get().expect("type checked upstream"),
            "temporal-weight" => s.temporal_weight = value.get().expect("type checked upstream"),
            "flow-preset" => s.flow_preset = value.get().expect("type checked upstream"),
            "flow-scale" => s.flow_scale = value.get().expect("type checked upstream"),
            name @ ("input-range" | "output-range" | "channel-order" | "layout" | "multiple-of"
            | "input-name" | "output-name" | "extra-input") => {
                let mut candidate = s.clone();
                match name {
                    "input-range" => candidate.input_range = non_empty(value),
                    "output-range" => candidate.output_range = non_empty(value),
                    "channel-order" => candidate.channel_order = non_empty(value),
                    "layout" => candidate.layout = non_empty(value),
                    "multiple-of" => {
                        candidate.multiple_of = value.get().expect("type checked upstream")
                    }
                    "input-name" => candidate.input_name = non_empty(value),
                    "output-name" => candidate.output_name = non_empty(value),
                    _ => candidate.extra_input = non_empty(value),
                }
                match candidate.overrides() {
                    Ok(_) => {
                        *s = candidate;
                        reload = true;
                    }
                    Err(e) => {
                        gst::element_imp_warning!(
                            self,
                            gst::LibraryError::Settings,
                            ("ignoring {name}: {e}")
                        );
                    }
                }
            }
            other => unreachable!("unknown property {other}"),
        }
        gst::debug!(CAT, imp = self, "set {} ", pspec.name());
        let i420 = s.takes_i420();
        drop(s);
        if i420 != was_i420 {
            // Upstream negotiates again: I420 is offered or withdrawn (`transform_caps`).
            self.obj().reconfigure_sink();
        }
        if reload {
            self.reload();
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "model" => s.model.to_value(),
            "provider" => s.provider.to_value(),
            "device-id" => s.device_id.to_value(),
            "fp16" => s.fp16.to_value(),
            "engine-cache-dir" => s.engine_cache_dir.to_value(),
            "trt-resolutions" => s.trt_resolutions.to_value(),
            "threads" => s.threads.to_value(),
            "strength" => s.strength.to_value(),
            "drop-frames" => s.drop_frames.to_value(),
            "parallel-frames" => s.parallel_frames.to_value(),
            "inference-scale" => s.inference_scale.to_value(),
            "upsampler" => s.upsampler.to_value(),
            "temporal" => s.temporal.to_value(),
            "temporal-weight" => s.temporal_weight.to_value(),
            "flow-preset" => s.flow_preset.to_value(),
            "flow-scale" => s.flow_scale.to_value(),
            "input-range" => s.input_range.to_value(),
            "channel-order" => s.channel_order.to_value(),
            "output-range" => s.output_range.to_value(),
            "layout" => s.layout.to_value(),
            "multiple-of" => s.multiple_of.to_value(),
            "input-name" => s.input_name.to_value(),
            "output-name" => s.output_name.to_value(),
            "extra-input" => s.extra_input.to_value(),
            "active-provider" => self.shared.active_provider.lock().unwrap().to_value(),
            "active-model" => self.shared.active_model.lock().unwrap().to_value(),
            "frames-processed" => self.shared.stats.lock().unwrap().processed.to_value(),
            "frames-dropped" => self.shared.stats.lock().unwrap().dropped.to_value(),
            "scene-cuts" => self.shared.stats.lock().unwrap().scene_cuts.to_value(),
            "frames-non-finite" => self.shared.stats.lock().unwrap().non_finite.to_value(),
            "mean-inference-ms" => self.shared.stats.lock().unwrap().mean().to_value(),
            "p95-inference-ms" => self.shared.stats.lock().unwrap().p95().to_value(),
            other => unreachable!("unknown property {other}"),
        }
    }
}

impl GstObjectImpl for StyleTransfer {}

impl ElementImpl for StyleTransfer {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Neural style transfer",
                "Filter/Effect/Video",
                "Restyles video frames with an ONNX style-transfer or GAN generator on ONNX Runtime \
                 (TensorRT, CUDA or CPU). Takes RGB, BGR, RGBA, BGRA, RGBx or BGRx in system memory \
                 (put videoconvert before and after for other formats), and I420 at an \
                 inference-scale below 1 with the guided upsampler and no temporal blending. \
                 Example: \
                 gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! \
                 styletransfer model=models/starry_night.onnx ! videoconvert ! autovideosink",
                "stylize developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = ALL_CAPS.clone();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .expect("valid template"),
            ]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseTransformImpl for StyleTransfer {
    /// The same caps on both sides; I420 only where the frame path works on it directly (see
    /// `Settings::takes_i420`), so that an upstream converter gives packed RGB otherwise.
    fn transform_caps(
        &self,
        _direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let i420 = self.settings.lock().unwrap().takes_i420();
        let allowed = if i420 { &*ALL_CAPS } else { &*PACKED_CAPS };
        let out = caps.intersect_with_mode(allowed, gst::CapsIntersectMode::First);
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let (stylizers, path) = settings.load_units().map_err(|e| {
            gst::error_msg!(
                gst::LibraryError::Init,
                ("cannot load the style model: {e}")
            )
        })?;
        let units = stylizers.len();
        gst::info!(
            CAT,
            imp = self,
            "model {} on {} ({}), {units} frame(s) in parallel",
            path.display(),
            stylizers[0].engine().provider(),
            stylizers[0].spec().summary()
        );
        *self.shared.active_provider.lock().unwrap() = stylizers[0].engine().provider().to_string();
        *self.shared.active_model.lock().unwrap() = path.display().to_string();
        *self.shared.stats.lock().unwrap() = Stats::default();
        *self.shared.frame_size.lock().unwrap() = None;
        self.shared.non_finite_warned.store(false, Ordering::SeqCst);
        let state = self
            .spawn_worker(stylizers)
            .map_err(|e| gst::error_msg!(gst::CoreError::Thread, ("{e}")))?;
        *self.state.lock().unwrap() = Some(state);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        // Invalidate loads still running so they do not swap into a stopped element.
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        let state = self.state.lock().unwrap().take();
        if let Some(s) = state {
            s.shut_down();
        }
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        use gst::EventView;
        match event.view() {
            EventView::FlushStop(_) => self.discard(),
            EventView::Caps(_) => {}
            // Tags go on at once, ahead of the frames still in the model: decoders and parsers
            // send one (the bitrate so far) every frame or two, and draining for each of them
            // left one frame in the element at a time, so no inference overlapped anything
            // (stylize convert ran 1.4x slower on small frames). Stream tags describe the
            // stream, not a frame; GStreamer's video codec base classes move them too.
            EventView::Tag(_) => {}
            _ if event.is_serialized() => {
                if self.drain().is_err() {
                    return false;
                }
                if matches!(
                    event.view(),
                    EventView::Segment(_) | EventView::StreamStart(_)
                ) && let Some(s) = self.state.lock().unwrap().as_mut()
                {
                    s.reset_history = true;
                    s.live = None;
                }
                if let EventView::StreamStart(_) = event.view() {
                    // A new stream gets its own warning about NaN or infinite output.
                    self.shared.non_finite_warned.store(false, Ordering::SeqCst);
                }
            }
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn query(&self, direction: gst::PadDirection, query: &mut gst::QueryRef) -> bool {
        if direction == gst::PadDirection::Src
            && let gst::QueryViewMut::Latency(q) = query.view_mut()
        {
            let mut upstream = gst::query::Latency::new();
            if !self.obj().sink_pad().peer_query(&mut upstream) {
                return false;
            }
            let (live, min, max) = upstream.result();
            let ours = self.added_latency();
            gst::debug!(
                CAT,
                imp = self,
                "latency: upstream {min}..{max:?}, ours {ours}"
            );
            q.set(live, min + ours, max.map(|m| m + ours));
            return true;
        }
        BaseTransformImplExt::parent_query(self, direction, query)
    }

    fn submit_input_buffer(
        &self,
        _is_discont: bool,
        inbuf: gst::Buffer,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let params = self.params();
        let live = {
            let state = self.state.lock().unwrap();
            match state.as_ref() {
                Some(s) => s.live,
                None => return Err(gst::FlowError::Flushing),
            }
        };
        let live = match live {
            Some(l) => l,
            None => {
                let l = self.upstream_is_live();
                if let Some(s) = self.state.lock().unwrap().as_mut() {
                    s.live = Some(l);
                }
                l
            }
        };
        let (jobs, info, reset) = {
            let mut state = self.state.lock().unwrap();
            let s = state.as_mut().ok_or(gst::FlowError::Flushing)?;
            let info = s.info.clone().ok_or(gst::FlowError::NotNegotiated)?;
            let waiting = s.in_flight.saturating_sub(s.done.len());
            if live && params.drop_frames && waiting >= s.window {
                // Live: the newest frame wins. The frame waiting for the model is stale;
                // take it back and drop it (unless the worker took it meanwhile).
                if let Ok(stale) = s.pending.try_recv() {
                    s.in_flight -= 1;
                    drop(stale);
                    self.shared.stats.lock().unwrap().dropped += 1;
                    gst::debug!(CAT, imp = self, "live: dropped a stale frame");
                }
            }
            s.in_flight += 1;
            // The buffer's own DISCONT flag, not `is_discont`: the base class keeps that set
            // until it pushes an output, so with frames in flight it marks the second and
            // third input too, resetting the history at a frame that depends on timing.
            let discont = inbuf.flags().contains(gst::BufferFlags::DISCONT);
            let reset = std::mem::take(&mut s.reset_history) || discont;
            (s.jobs.clone(), info, reset)
        };
        // Blocks while the window is full (not live): back-pressure to upstream.
        jobs.send(Job::Frame {
            buffer: inbuf,
            info,
            params,
            reset_history: reset,
        })
        .map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("the worker has stopped"));
            gst::FlowError::Error
        })?;
        Ok(gst::FlowSuccess::Ok)
    }

    fn generate_output(&self) -> Result<GenerateOutputSuccess, gst::FlowError> {
        let mut state = self.state.lock().unwrap();
        let Some(s) = state.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        if s.in_flight == 0 {
            return Ok(GenerateOutputSuccess::NoOutput);
        }
        let mut done = s.done.try_recv();
        if matches!(done, Err(TryRecvError::Empty))
            && let Some(wait) = self.live_wait(s)
        {
            // Live, and the model is quick: wait for the frame here rather than send it on
            // with the next input a frame period later. The lock is not held meanwhile.
            let rx = s.done.clone();
            drop(state);
            done = match rx.recv_timeout(wait) {
                Ok(d) => Ok(d),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(TryRecvError::Empty),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    Err(TryRecvError::Disconnected)
                }
            };
            state = self.state.lock().unwrap();
        }
        let Some(s) = state.as_mut() else {
            return Err(gst::FlowError::Flushing);
        };
        match done {
            Ok(Done::Frame(b)) => {
                s.in_flight -= 1;
                Ok(GenerateOutputSuccess::Buffer(b))
            }
            Ok(Done::Failed(e)) => {
                s.in_flight -= 1;
                drop(state);
                gst::element_imp_error!(self, gst::StreamError::Failed, ("inference failed: {e}"));
                Err(gst::FlowError::Error)
            }
            Err(TryRecvError::Empty) => Ok(GenerateOutputSuccess::NoOutput),
            Err(TryRecvError::Disconnected) => {
                drop(state);
                gst::element_imp_error!(self, gst::CoreError::Failed, ("the worker has stopped"));
                Err(gst::FlowError::Error)
            }
        }
    }
}

impl StyleTransfer {
    /// A worker thread over these inference units, and the state that talks to it.
    fn spawn_worker(&self, stylizers: Vec<Stylizer>) -> Result<State, String> {
        let units = stylizers.len();
        // One frame waits while every unit has one.
        let (jobs_tx, jobs_rx) = bounded::<Job>(1);
        let pending = jobs_rx.clone();
        let (done_tx, done_rx) = bounded::<Done>(DONE_CAPACITY);
        let (swap_tx, swap_rx) = unbounded::<Swap>();
        let worker = Worker::new(stylizers, self.shared.clone(), self.obj().downgrade())?;
        let handle = std::thread::Builder::new()
            .name("styletransfer".into())
            .spawn(move || worker.run(jobs_rx, done_tx, swap_rx))
            .map_err(|e| format!("cannot start the worker: {e}"))?;
        Ok(State {
            jobs: jobs_tx,
            pending,
            done: done_rx,
            swaps: swap_tx,
            worker: Some(handle),
            info: None,
            in_flight: 0,
            window: units + 1,
            live: None,
            reset_history: true,
        })
    }

    /// With `parallel-frames=0`, once the frame size is known: runs as many frames at once
    /// as suit frames the model runs at this many pixels (see `auto_units`), reloading the
    /// model once if that differs from what runs. Called with no frame inside.
    fn replan_units(&self, inference_pixels: usize) -> Result<(), String> {
        let settings = self.settings.lock().unwrap().clone();
        if settings.parallel_frames != 0 {
            return Ok(());
        }
        let on_cpu =
            *self.shared.active_provider.lock().unwrap() == crate::ActiveProvider::Cpu.to_string();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let want = auto_units(on_cpu, cores, inference_pixels);
        let now = match self.state.lock().unwrap().as_ref() {
            Some(s) => s.window - 1,
            None => return Ok(()),
        };
        if want == now {
            return Ok(());
        }
        let t = Instant::now();
        let (stylizers, path) = settings.load_n_units(want, true)?;
        let mut new = self.spawn_worker(stylizers)?;
        // A model load still running was asked for with settings this load already has.
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
        *self.shared.active_model.lock().unwrap() = path.display().to_string();
        let old = {
            let mut state = self.state.lock().unwrap();
            let Some(s) = state.as_mut() else {
                return Ok(());
            };
            new.live = s.live;
            std::mem::replace(s, new)
        };
        old.shut_down();
        gst::info!(
            CAT,
            imp = self,
            "parallel-frames auto: {want} frame(s) at once for {inference_pixels} pixels (reloaded in {} ms)",
            t.elapsed().as_millis()
        );
        Ok(())
    }

    /// How long the streaming thread may wait for a frame in the model: only with a live
    /// source, and only when the model usually takes well under a frame period (then the
    /// frame leaves after its inference time instead of with the next input; a slower
    /// model gets no wait, so new frames are never held back).
    fn live_wait(&self, s: &State) -> Option<std::time::Duration> {
        if s.live != Some(true) {
            return None;
        }
        let fps = s.info.as_ref()?.fps();
        if fps.numer() <= 0 || fps.denom() <= 0 {
            return None;
        }
        let period_ms = 1e3 * fps.denom() as f64 / fps.numer() as f64;
        let mean_ms = self.shared.stats.lock().unwrap().mean();
        (mean_ms > 0.0 && mean_ms < 0.7 * period_ms)
            .then(|| std::time::Duration::from_secs_f64((2.0 * mean_ms).min(0.8 * period_ms) / 1e3))
    }
}

impl VideoFilterImpl for StyleTransfer {
    fn set_info(
        &self,
        incaps: &gst::Caps,
        in_info: &VideoInfo,
        outcaps: &gst::Caps,
        _out_info: &VideoInfo,
    ) -> Result<(), gst::LoggableError> {
        let info = in_info.clone();
        let format = model_format(info.format())
            .ok_or_else(|| gst::loggable_error!(CAT, "unsupported format {:?}", info.format()))?;
        if incaps != outcaps {
            return Err(gst::loggable_error!(CAT, "input and output caps differ"));
        }
        // Frames of the old caps leave before the new caps take effect.
        if self.drain().is_err() {
            return Err(gst::loggable_error!(
                CAT,
                "cannot drain before a caps change"
            ));
        }
        let (w, h) = (info.width() as usize, info.height() as usize);
        let jobs = match self.state.lock().unwrap().as_ref() {
            Some(s) => s.jobs.clone(),
            None => return Err(gst::loggable_error!(CAT, "not started")),
        };
        // A model that cannot take these frames fails negotiation, with the reason on the bus.
        let (reply_tx, reply_rx) = bounded(1);
        let probed = jobs
            .send(Job::Probe {
                width: w,
                height: h,
                format,
                reply: reply_tx,
            })
            .map_err(|_| "the worker has stopped".to_string())
            .and_then(|_| {
                reply_rx
                    .recv()
                    .map_err(|_| "the worker has stopped".to_string())?
            });
        if let Err(e) = probed {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ("the model cannot take {w}x{h} {format} frames: {e}")
            );
            return Err(gst::loggable_error!(
                CAT,
                "model refused {w}x{h} {format}: {e}"
            ));
        }
        // The old worker ends (in `replan_units`) only once every sender of its jobs is gone.
        drop(jobs);
        if let Ok(pixels) = probed
            && let Err(e) = self.replan_units(pixels)
        {
            gst::element_imp_error!(
                self,
                gst::LibraryError::Init,
                ("cannot load the style model for parallel frames: {e}")
            );
            return Err(gst::loggable_error!(CAT, "parallel-frames: {e}"));
        }
        *self.shared.frame_size.lock().unwrap() = Some((w, h, format));
        if let Some(s) = self.state.lock().unwrap().as_mut() {
            s.info = Some(info);
            s.reset_history = true;
        }
        gst::debug!(CAT, imp = self, "caps {incaps}");
        Ok(())
    }
}

impl StyleTransfer {
    /// Latency this element adds: a frame can wait for the one before it in the model, so
    /// up to `window` frame periods (or inference times when the rate is unknown).
    fn added_latency(&self) -> gst::ClockTime {
        let state = self.state.lock().unwrap();
        let window = state.as_ref().map_or(2, |s| s.window) as u64;
        let period = state.as_ref().and_then(|s| s.info.as_ref()).and_then(|i| {
            let fps = i.fps();
            (fps.numer() > 0).then(|| {
                gst::ClockTime::SECOND
                    .mul_div_floor(fps.denom() as u64, fps.numer() as u64)
                    .unwrap_or(gst::ClockTime::ZERO)
            })
        });
        drop(state);
        let p95 = self.shared.stats.lock().unwrap().p95();
        let per = period.unwrap_or_else(|| gst::ClockTime::from_nseconds((p95 * 1e6) as u64));
        per * window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_parallel_frames_runs_two_small_frames_at_once_on_a_multi_core_cpu_only() {
        // Small inference (bikes.mp4 at scale 0.5): two one-thread models.
        assert_eq!(auto_units(true, 2, 320 * 136), 2);
        assert_eq!(auto_units(true, 16, 640 * 480), 2);
        // 720p: one model with every core; two would fight over memory.
        assert_eq!(auto_units(true, 2, 1280 * 720), 1);
        assert_eq!(auto_units(true, 2, 640 * 480 + 4), 1);
        // One core, or a GPU: one.
        assert_eq!(auto_units(true, 1, 160 * 68), 1);
        assert_eq!(auto_units(false, 16, 160 * 68), 1);
    }

    #[test]
    fn auto_parallel_frames_starts_with_the_small_frame_layout_only_where_the_cpu_runs_it() {
        assert_eq!(initial_units(ProviderProp::Cpu, 0, 2), 2);
        assert_eq!(initial_units(ProviderProp::Cpu, 0, 1), 1);
        // A thread count set by hand: one unit until the frame size is known.
        assert_eq!(initial_units(ProviderProp::Cpu, 2, 2), 1);
        assert_eq!(initial_units(ProviderProp::Cuda, 0, 16), 1);
        assert_eq!(initial_units(ProviderProp::TensorRt, 0, 16), 1);
        assert_eq!(
            initial_units(ProviderProp::Auto, 0, 2),
            if crate::engine::gpu_visible() { 1 } else { 2 }
        );
    }
}
