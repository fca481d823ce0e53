//! Live style transfer: frames from a [`Capture`] (camera, test pattern, file) through the
//! `styletransfer` element to a window, a virtual camera, a file or nowhere, in real time.
//!
//! ```text
//! capture thread ──newest wins (1 slot)──> feeder ──> appsrc (live) ! videoconvert ! videoscale
//!   ! RGB ! styletransfer (drop-frames) ! [overlay probe] ! videoconvert ! [latency probe] sink
//! ```
//!
//! Real time: the capture thread never waits for the pipeline. A frame nobody took yet is
//! replaced by the newer one (dropped at capture); the element keeps one frame in the
//! model and at most one waiting, and drops the waiting one when a newer one comes
//! (dropped by the element). So no frame waits behind more than one other, and the
//! latency stays near two inference times whatever the model's speed.
//!
//! Each buffer's timestamp is the pipeline's running time when its frame was captured; a
//! probe where the frame reaches the sink measures capture-to-output latency from it.

pub mod capture;
pub mod latest;
pub mod overlay;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;

pub use capture::{
    CameraDescription, CameraSelector, Capture, CaptureError, CaptureFormat, FileSource, GstCamera,
    NokhwaCamera, Pacer, TestPattern, list_cameras,
};
use latest::latest;

use crate::convert::{Container, Rate};
use crate::frame::{FrameMut, PixelFormat};

/// Where the stylised frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkSpec {
    /// A preview window (`autovideosink`).
    Window,
    /// A virtual camera: `v4l2sink` on a v4l2loopback device.
    V4l2(PathBuf),
    /// Nowhere (`fakesink`): for benchmarks.
    Null,
    /// A video file, encoded as `stylize convert` does, by its extension.
    File(PathBuf),
}

impl FromStr for SinkSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "window" => SinkSpec::Window,
            "null" => SinkSpec::Null,
            _ if s.starts_with("v4l2:") => {
                let dev = &s["v4l2:".len()..];
                if dev.is_empty() {
                    return Err("--sink v4l2: needs a device, e.g. v4l2:/dev/video10".into());
                }
                SinkSpec::V4l2(PathBuf::from(dev))
            }
            _ => {
                let p = PathBuf::from(s);
                if Container::from_path(&p).is_none() {
                    return Err(format!(
                        "--sink takes window, null, v4l2:/dev/videoN or a file ending in .mp4, .mkv, .webm or .mov; got '{s}'"
                    ));
                }
                SinkSpec::File(p)
            }
        })
    }
}

impl std::fmt::Display for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkSpec::Window => write!(f, "window"),
            SinkSpec::V4l2(d) => write!(f, "v4l2:{}", d.display()),
            SinkSpec::Null => write!(f, "null"),
            SinkSpec::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Size the model works at and the sink gets (default: the source's).
    pub size: Option<(u32, u32)>,
    /// Where the frames go.
    pub sink: SinkSpec,
    /// Stop after this many frames have reached the sink.
    pub frames: Option<u64>,
    /// Draw fps and latency on the picture.
    pub overlay: bool,
    /// Properties of the `styletransfer` element (name, value as text).
    pub style: Vec<(String, String)>,
    /// Time between [`LiveEvent::Report`]s.
    pub report_every: Duration,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions {
            size: None,
            sink: SinkSpec::Null,
            frames: None,
            overlay: false,
            style: Vec::new(),
            report_every: Duration::from_secs(1),
        }
    }
}

/// Why a live run failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LiveError {
    /// The source cannot deliver frames.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// The sink cannot be used here (no display, no such device, missing elements).
    #[error("{0}")]
    Sink(String),
    /// The style model cannot be used.
    #[error("{0}")]
    Model(String),
    /// Anything else that went wrong while running.
    #[error("live pipeline failed: {0}")]
    Failed(String),
}

impl LiveError {
    /// Whether the error is the input's or the options' fault (as opposed to a failure).
    pub fn is_bad_input(&self) -> bool {
        match self {
            LiveError::Capture(e) => e.is_bad_input(),
            LiveError::Sink(_) | LiveError::Model(_) => true,
            LiveError::Failed(_) => false,
        }
    }
}

/// Statistics of the last interval, sent every [`LiveOptions::report_every`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// Frames out in all.
    pub frames: u64,
    /// Frames out per second in this interval.
    pub fps: f64,
    /// Frames dropped so far: at capture plus by the element.
    pub dropped: u64,
    /// Median capture-to-output latency in this interval, ms.
    pub latency_p50_ms: f64,
    /// 95th percentile of the latency in this interval, ms.
    pub latency_p95_ms: f64,
    /// The provider running the model.
    pub provider: String,
    /// The model running now.
    pub model: String,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// `--frames` reached.
    Frames,
    /// The source ended (end of a file).
    EndOfStream,
    /// The preview window was closed.
    WindowClosed,
    /// [`Live::finish`] was called while running (Ctrl-C, `q`).
    Stopped,
}

/// Something that happened while running.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// Periodic statistics.
    Report(Report),
    /// A warning, e.g. a model switch that failed (the old model keeps running).
    Warning(String),
    /// The run has ended; call [`Live::finish`].
    Ended(EndReason),
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Frames that reached the sink.
    pub frames: u64,
    /// Wall time from the start of capture to the end, seconds.
    pub seconds: f64,
    /// Frames out per second, from the first output frame to the last.
    pub fps: f64,
    /// Frames dropped: at capture plus by the element.
    pub dropped: u64,
    /// Frames replaced at capture before the pipeline took them.
    pub dropped_capture: u64,
    /// Frames the element dropped because a newer one came while they waited.
    pub dropped_element: u64,
    /// Median capture-to-output latency, ms (after the first frame).
    pub latency_p50_ms: f64,
    /// 95th percentile of the latency, ms.
    pub latency_p95_ms: f64,
    /// Largest latency, ms.
    pub latency_max_ms: f64,
    /// Latency of the first frame, which also waits for the model's first run, ms.
    pub first_frame_ms: f64,
    /// Mean inference time per frame, ms.
    pub inference_mean_ms: f64,
    /// 95th percentile of the inference time, ms.
    pub inference_p95_ms: f64,
    /// The provider that ran the model.
    pub provider: String,
    /// The model running at the end.
    pub model: String,
    /// The source, in words.
    pub source: String,
    /// The sink.
    pub sink: String,
    /// Why it ended.
    pub ended: EndReason,
}

#[derive(Default)]
struct Stats {
    frames: u64,
    first_out: Option<Instant>,
    last_out: Option<Instant>,
    first_frame_ms: f64,
    interval_frames: u64,
    interval_latency: Vec<f64>,
    all_latency: Vec<f32>,
}

/// The `p`-th percentile (0..100) of `v` by nearest rank; 0 when empty. Sorts `v`.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_unstable_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// A running live pipeline.
pub struct Live {
    pipeline: gst::Pipeline,
    style: gst::Element,
    stats: Arc<Mutex<Stats>>,
    stop: Arc<AtomicBool>,
    limit_reached: Arc<AtomicBool>,
    dropped_capture: Arc<AtomicU64>,
    capture_error: Arc<Mutex<Option<CaptureError>>>,
    overlay_text: Arc<Mutex<String>>,
    threads: Vec<JoinHandle<()>>,
    started: Instant,
    last_report: Instant,
    report_every: Duration,
    ended: Option<EndReason>,
    errored: bool,
    source: String,
    sink: SinkSpec,
}

fn missing(factory: &str) -> LiveError {
    LiveError::Sink(format!(
        "GStreamer element '{factory}' is missing (run scripts/setup.sh; `stylize doctor` lists what is missing)"
    ))
}

fn make(factory: &str) -> Result<gst::Element, LiveError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| missing(factory))
}

fn caps_filter(caps: gst::Caps) -> Result<gst::Element, LiveError> {
    let f = make("capsfilter")?;
    f.set_property("caps", caps);
    Ok(f)
}

/// The sink's elements, first to last; the last of a file sink is the `filesink`.
fn sink_chain(sink: &SinkSpec) -> Result<Vec<gst::Element>, LiveError> {
    Ok(match sink {
        SinkSpec::Null => {
            let s = make("fakesink")?;
            s.set_property("sync", false);
            vec![s]
        }
        SinkSpec::Window => {
            let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
                .iter()
                .any(|v| std::env::var_os(v).is_some_and(|d| !d.is_empty()));
            if !has_display {
                return Err(LiveError::Sink(
                    "no display here (DISPLAY and WAYLAND_DISPLAY are unset) for --sink window; \
                     use --sink null, --sink FILE or --sink v4l2:/dev/videoN"
                        .into(),
                ));
            }
            let s = make("autovideosink")?;
            // Shown as soon as it is ready: a live preview has nothing to wait for.
            s.set_property("sync", false);
            vec![s]
        }
        SinkSpec::V4l2(dev) => {
            if !dev.exists() {
                return Err(LiveError::Sink(format!(
                    "{} does not exist: create a v4l2loopback device first (see docs/LIVE.md: \
                     sudo modprobe v4l2loopback video_nr=10 card_label=stylize exclusive_caps=1)",
                    dev.display()
                )));
            }
            // YUY2: the format browsers and video-call applications take from a webcam.
            let caps = caps_filter(
                gst::Caps::builder("video/x-raw")
                    .field("format", "YUY2")
                    .build(),
            )?;
            let s = make("v4l2sink")?;
            s.set_property("device", dev.to_string_lossy().to_string());
            s.set_property("sync", false);
            vec![caps, s]
        }
        SinkSpec::File(path) => {
            let container = Container::from_path(path).ok_or_else(|| {
                LiveError::Sink(format!(
                    "{}: unsupported extension (expected .mp4, .mkv, .webm or .mov)",
                    path.display()
                ))
            })?;
            let codec = container.default_codec();
            // 4:2:0, which every player decodes (x264 would otherwise pick 4:4:4 from RGB).
            let mut chain = vec![caps_filter(
                gst::Caps::builder("video/x-raw")
                    .field("format", "I420")
                    .build(),
            )?];
            // Without a GPU the model is on the CPU whatever the provider setting says.
            let encoder = crate::convert::video_encoder(
                codec,
                Rate::Quality(codec.default_quality()),
                crate::Provider::Auto.expects_cpu(),
            )
            .map_err(|e| LiveError::Sink(e.to_string()))?;
            if let Some(e) = encoder.first()
                && e.factory().is_some_and(|f| f.name() == "x264enc")
            {
                // No lookahead or B-frames: a live stream should not sit in the encoder.
                e.set_property_from_str("tune", "zerolatency");
            }
            chain.extend(encoder);
            chain.push(make(container.muxer())?);
            let s = make("filesink")?;
            s.set_property("location", path.to_string_lossy().to_string());
            chain.push(s);
            chain
        }
    })
}

/// The pipeline's clock and base time: running time now, from any thread, in any state.
#[derive(Clone)]
struct RunningClock {
    clock: gst::Clock,
    base: gst::ClockTime,
}

impl RunningClock {
    fn now(&self) -> gst::ClockTime {
        self.clock.time().saturating_sub(self.base)
    }
}

impl Live {
    /// Builds the pipeline around `capture`, starts it (the model loads here) and starts
    /// capturing.
    pub fn start(capture: Box<dyn Capture>, options: LiveOptions) -> Result<Live, LiveError> {
        crate::element::register_static().map_err(|e| LiveError::Failed(e.to_string()))?;
        let format = capture.format();
        let source = capture.describe();
        let (out_w, out_h) = options.size.unwrap_or((format.width, format.height));

        let pipeline = gst::Pipeline::new();
        // Our own base time, so that running time is known before the pipeline reaches
        // PLAYING (it does only once the sink has its first frame): frames are stamped with
        // it at capture, and the sink probe reads latency off the same clock.
        let clock = gst::SystemClock::obtain();
        pipeline.use_clock(Some(&clock));
        pipeline.set_start_time(gst::ClockTime::NONE);
        pipeline.set_base_time(clock.time());
        let clock = RunningClock {
            clock,
            base: pipeline.base_time().unwrap_or_default(),
        };
        let in_caps = gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", format.width as i32)
            .field("height", format.height as i32)
            .field("framerate", format.fps)
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let appsrc = gst_app::AppSrc::builder()
            .caps(&in_caps)
            .is_live(true)
            .format(gst::Format::Time)
            // One frame queued at most, and the feeder waits for it to go: any backlog
            // stays in the newest-wins slot, where it is replaced rather than queued.
            .max_buffers(1)
            .block(true)
            .build();
        let mut chain: Vec<gst::Element> = vec![appsrc.clone().upcast()];
        chain.push(make("videoconvert")?);
        chain.push(make("videoscale")?);
        chain.push(caps_filter(
            gst::Caps::builder("video/x-raw")
                .field("format", "RGB")
                .field("width", out_w as i32)
                .field("height", out_h as i32)
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        )?);
        let style = make("styletransfer")?;
        for (k, v) in &options.style {
            if style.find_property(k).is_none() {
                return Err(LiveError::Failed(format!(
                    "styletransfer has no property '{k}'"
                )));
            }
            style.set_property_from_str(k, v);
        }
        chain.push(style.clone());
        chain.push(make("videoconvert")?);
        let sinks = sink_chain(&options.sink)?;
        let sink_head = sinks[0].clone();
        let is_file = matches!(options.sink, SinkSpec::File(_));
        if is_file {
            // encoder ... muxer ! filesink: muxers take request pads, link them by hand below.
            let (body, tail) = sinks.split_at(sinks.len() - 2);
            chain.extend(body.iter().cloned());
            pipeline
                .add_many(&chain)
                .and_then(|_| pipeline.add_many(tail))
                .map_err(|e| LiveError::Failed(e.to_string()))?;
            gst::Element::link_many(&chain).map_err(|e| LiveError::Failed(e.to_string()))?;
            tail[0]
                .link(&tail[1])
                .map_err(|e| LiveError::Failed(e.to_string()))?;
            let last = chain.last().expect("non-empty");
            last.link(&tail[0])
                .map_err(|e| LiveError::Failed(format!("encoder into the muxer: {e}")))?;
        } else {
            chain.extend(sinks);
            pipeline
                .add_many(&chain)
                .map_err(|e| LiveError::Failed(e.to_string()))?;
            gst::Element::link_many(&chain).map_err(|e| LiveError::Failed(e.to_string()))?;
        }

        let stats = Arc::new(Mutex::new(Stats::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let limit_reached = Arc::new(AtomicBool::new(false));
        let overlay_text = Arc::new(Mutex::new(String::from("-- fps")));

        // Latency and frame count where frames reach the sink.
        {
            let stats = stats.clone();
            let limit = options.frames;
            let limit_reached = limit_reached.clone();
            let clock = clock.clone();
            sink_head
                .static_pad("sink")
                .expect("sinks have a sink pad")
                .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                    let Some(pts) = info.buffer().and_then(|b| b.pts()) else {
                        return gst::PadProbeReturn::Ok;
                    };
                    let now = Instant::now();
                    let rt = clock.now();
                    let mut s = stats.lock().unwrap();
                    if limit.is_some_and(|n| s.frames >= n) {
                        limit_reached.store(true, Ordering::SeqCst);
                        // Past --frames: consumed here, so the sink gets exactly N frames.
                        // (Returning Drop instead gave GStreamer-CRITICAL unref(NULL)
                        // warnings here, with gstreamer-rs 0.25 and GStreamer 1.22.)
                        drop(info.take_buffer());
                        info.flow_res = Ok(gst::FlowSuccess::Ok);
                        return gst::PadProbeReturn::Handled;
                    }
                    let ms = rt.saturating_sub(pts).nseconds() as f64 / 1e6;
                    s.frames += 1;
                    s.last_out = Some(now);
                    if s.first_out.is_none() {
                        // The first frame also waited for the model's first run at this
                        // size (caps negotiation): kept apart from the steady-state figures.
                        s.first_out = Some(now);
                        s.first_frame_ms = ms;
                    } else {
                        s.interval_frames += 1;
                        s.interval_latency.push(ms);
                        s.all_latency.push(ms as f32);
                    }
                    if limit.is_some_and(|n| s.frames >= n) {
                        limit_reached.store(true, Ordering::SeqCst);
                    }
                    gst::PadProbeReturn::Ok
                });
        }
        if options.overlay {
            let text = overlay_text.clone();
            style.static_pad("src").expect("src pad").add_probe(
                gst::PadProbeType::BUFFER,
                move |pad, info| {
                    draw_overlay(pad, info, &text.lock().unwrap());
                    gst::PadProbeReturn::Ok
                },
            );
        }

        let started = Instant::now();
        let bus = pipeline.bus().expect("pipeline has a bus");
        let start_failed = |pipeline: &gst::Pipeline, what: String| {
            let msg =
                bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error]);
            let _ = pipeline.set_state(gst::State::Null);
            match msg.as_ref().map(|m| m.view()) {
                Some(gst::MessageView::Error(e)) => classify(e, &options.sink),
                _ => LiveError::Failed(what),
            }
        };
        // The model loads here (the element's start), before any frame is captured.
        if let Err(e) = pipeline.set_state(gst::State::Playing) {
            return Err(start_failed(&pipeline, format!("cannot start: {e}")));
        }

        let dropped_capture = Arc::new(AtomicU64::new(0));
        let capture_error = Arc::new(Mutex::new(None));
        let (tx, rx) = latest::<(gst::Buffer, Instant)>();
        let video_info = gst_video::VideoInfo::from_caps(&in_caps)
            .map_err(|e| LiveError::Failed(e.to_string()))?;
        let pool = frame_pool(&in_caps, &video_info)?;
        let capture_thread = {
            let stop = stop.clone();
            let dropped = dropped_capture.clone();
            let error = capture_error.clone();
            let style = style.clone();
            std::thread::Builder::new()
                .name("live-capture".into())
                .spawn(move || {
                    capture_loop(capture, pool, video_info, tx, stop, style, dropped, error)
                })
                .map_err(|e| LiveError::Failed(format!("cannot start capturing: {e}")))?
        };
        let feeder = {
            let clock = clock.clone();
            let period = format.period();
            std::thread::Builder::new()
                .name("live-feeder".into())
                .spawn(move || feed_loop(rx, appsrc, clock, period))
                .map_err(|e| LiveError::Failed(format!("cannot start the feeder: {e}")))?
        };

        Ok(Live {
            pipeline,
            style,
            stats,
            stop,
            limit_reached,
            dropped_capture,
            capture_error,
            overlay_text,
            threads: vec![capture_thread, feeder],
            started,
            last_report: Instant::now(),
            report_every: options.report_every,
            ended: None,
            errored: false,
            source,
            sink: options.sink,
        })
    }

    /// The `styletransfer` element: set `model`, `strength`, `temporal`, ... on it while
    /// running (a model change loads in the background and swaps in without a stall).
    pub fn style(&self) -> &gst::Element {
        &self.style
    }

    /// Asks the source to stop; the pipeline then drains and ends ([`LiveEvent::Ended`]).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether the run has ended.
    pub fn has_ended(&self) -> bool {
        self.ended.is_some()
    }

    fn dropped(&self) -> (u64, u64) {
        (
            self.dropped_capture.load(Ordering::SeqCst),
            self.style.property::<u64>("frames-dropped"),
        )
    }

    fn report(&mut self) -> Report {
        let elapsed = self.last_report.elapsed().as_secs_f64().max(1e-3);
        self.last_report = Instant::now();
        let (frames, n, mut lat) = {
            let mut s = self.stats.lock().unwrap();
            let lat = std::mem::take(&mut s.interval_latency);
            let n = std::mem::take(&mut s.interval_frames);
            (s.frames, n, lat)
        };
        let (dc, de) = self.dropped();
        let r = Report {
            frames,
            fps: n as f64 / elapsed,
            dropped: dc + de,
            latency_p50_ms: percentile(&mut lat, 50.0),
            latency_p95_ms: percentile(&mut lat, 95.0),
            provider: self.style.property::<String>("active-provider"),
            model: self.style.property::<String>("active-model"),
        };
        *self.overlay_text.lock().unwrap() = format!(
            "{:.1} fps lat {:.0}/{:.0} ms drop {}",
            r.fps, r.latency_p50_ms, r.latency_p95_ms, r.dropped
        );
        r
    }

    /// Waits up to `timeout` for something to happen: a report is due, a warning, the end.
    /// Errors of the pipeline (a model that fails, a sink that breaks) come back as `Err`.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<LiveEvent>, LiveError> {
        let deadline = Instant::now() + timeout;
        let bus = self.pipeline.bus().expect("pipeline has a bus");
        loop {
            if let Some(reason) = self.ended {
                return Ok(Some(LiveEvent::Ended(reason)));
            }
            if self.limit_reached.load(Ordering::SeqCst) {
                self.request_stop();
            }
            if self.last_report.elapsed() >= self.report_every {
                return Ok(Some(LiveEvent::Report(self.report())));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let next_report = self.last_report + self.report_every;
            let wait = deadline.min(next_report).saturating_duration_since(now);
            let wait = wait.min(Duration::from_millis(50));
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_nseconds(wait.as_nanos() as u64))
            else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Eos(_) => {
                    let reason = if self.limit_reached.load(Ordering::SeqCst) {
                        EndReason::Frames
                    } else if self.stop.load(Ordering::SeqCst) {
                        EndReason::Stopped
                    } else {
                        EndReason::EndOfStream
                    };
                    self.ended = Some(reason);
                }
                gst::MessageView::Error(e) => {
                    self.errored = true;
                    if matches!(self.sink, SinkSpec::Window)
                        && e.error().matches(gst::ResourceError::NotFound)
                        && e.error().to_string().contains("closed")
                    {
                        self.ended = Some(EndReason::WindowClosed);
                        continue;
                    }
                    return Err(classify(e, &self.sink));
                }
                gst::MessageView::Warning(w) => {
                    return Ok(Some(LiveEvent::Warning(w.error().to_string())));
                }
                _ => {}
            }
        }
    }

    /// Stops (if still running): the source stops, the frames in the pipeline drain and
    /// the sink finishes (a file is finalised), for up to `timeout`; then tears down.
    pub fn finish(mut self, timeout: Duration) -> Result<Summary, LiveError> {
        self.request_stop();
        let mut result = Ok(());
        if self.ended.is_none() && !self.errored {
            let bus = self.pipeline.bus().expect("pipeline has a bus");
            let msg = bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            );
            match msg.as_ref().map(|m| m.view()) {
                Some(gst::MessageView::Eos(_)) => {
                    self.ended = Some(if self.limit_reached.load(Ordering::SeqCst) {
                        EndReason::Frames
                    } else {
                        EndReason::Stopped
                    });
                }
                Some(gst::MessageView::Error(e)) => result = Err(classify(e, &self.sink)),
                _ => {
                    result = Err(LiveError::Failed(format!(
                        "the pipeline did not finish within {} s of stopping",
                        timeout.as_secs()
                    )))
                }
            }
        }
        let (dc, de) = self.dropped();
        let inference_mean_ms = self.style.property::<f64>("mean-inference-ms");
        let inference_p95_ms = self.style.property::<f64>("p95-inference-ms");
        let provider = self.style.property::<String>("active-provider");
        let model = self.style.property::<String>("active-model");
        let _ = self.pipeline.set_state(gst::State::Null);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        result?;
        if let Some(e) = self.capture_error.lock().unwrap().take() {
            return Err(e.into());
        }
        let s = self.stats.lock().unwrap();
        let mut lat: Vec<f64> = s.all_latency.iter().map(|&v| v as f64).collect();
        let fps = match (s.first_out, s.last_out) {
            (Some(a), Some(b)) if s.frames > 1 && b > a => {
                (s.frames - 1) as f64 / (b - a).as_secs_f64()
            }
            _ => 0.0,
        };
        Ok(Summary {
            frames: s.frames,
            seconds: self.started.elapsed().as_secs_f64(),
            fps,
            dropped: dc + de,
            dropped_capture: dc,
            dropped_element: de,
            latency_p50_ms: percentile(&mut lat, 50.0),
            latency_p95_ms: percentile(&mut lat, 95.0),
            latency_max_ms: lat.last().copied().unwrap_or(0.0),
            first_frame_ms: s.first_frame_ms,
            inference_mean_ms,
            inference_p95_ms,
            provider,
            model,
            source: self.source.clone(),
            sink: self.sink.to_string(),
            ended: self.ended.unwrap_or(EndReason::Stopped),
        })
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn classify(e: &gst::message::Error, sink: &SinkSpec) -> LiveError {
    let from = e
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_default();
    let text = e.error().to_string();
    if from.contains("styletransfer") {
        LiveError::Model(text)
    } else if from.contains("sink") || from.contains("mux") || from.contains("enc") {
        LiveError::Failed(format!("sink {sink}: {text}"))
    } else {
        let debug = e.debug().map(|d| d.to_string()).unwrap_or_default();
        LiveError::Failed(format!("{text} [{from}] {debug}"))
    }
}

/// Buffers for captured frames, reused: the capture thread writes straight into them.
fn frame_pool(caps: &gst::Caps, info: &gst_video::VideoInfo) -> Result<gst::BufferPool, LiveError> {
    let pool = gst_video::VideoBufferPool::new();
    let mut config = pool.config();
    // No upper bound: a frame is held by the slot, the feeder, the element (two) and the
    // sink; the pool grows to what the pipeline holds, then recycles.
    config.set_params(Some(caps), info.size() as u32, 4, 0);
    pool.set_config(config)
        .map_err(|e| LiveError::Failed(format!("frame pool: {e}")))?;
    pool.set_active(true)
        .map_err(|e| LiveError::Failed(format!("frame pool: {e}")))?;
    Ok(pool.upcast())
}

#[allow(clippy::too_many_arguments)]
fn capture_loop(
    mut capture: Box<dyn Capture>,
    pool: gst::BufferPool,
    info: gst_video::VideoInfo,
    tx: latest::LatestSender<(gst::Buffer, Instant)>,
    stop: Arc<AtomicBool>,
    style: gst::Element,
    dropped: Arc<AtomicU64>,
    error: Arc<Mutex<Option<CaptureError>>>,
) {
    let mut sent = 0u64;
    let fail = |e: CaptureError| *error.lock().unwrap() = Some(e);
    while !stop.load(Ordering::SeqCst) {
        let buffer = match pool.acquire_buffer(None) {
            Ok(b) => b,
            Err(e) => {
                fail(CaptureError::Failed(format!("no buffer for a frame: {e}")));
                break;
            }
        };
        let mut vf = match gst_video::VideoFrame::from_buffer_writable(buffer, &info) {
            Ok(f) => f,
            Err(_) => {
                fail(CaptureError::Failed("cannot map a frame buffer".into()));
                break;
            }
        };
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = vf.plane_stride()[0] as usize;
        let read = match vf.plane_data_mut(0) {
            Ok(data) => match FrameMut::new(data, w, h, stride, PixelFormat::Rgb) {
                Ok(mut frame) => capture.read(&mut frame),
                Err(e) => Err(CaptureError::Failed(e.to_string())),
            },
            Err(e) => Err(CaptureError::Failed(e.to_string())),
        };
        let captured = match read {
            Ok(Some(t)) => t,
            Ok(None) => break,
            Err(e) => {
                fail(e);
                break;
            }
        };
        if tx.send((vf.into_buffer(), captured)).is_err() {
            break;
        }
        dropped.store(tx.dropped(), Ordering::SeqCst);
        sent += 1;
        if sent == 1 {
            // The first frame meets the model at this size for the first time (caps,
            // a test run): wait until the model has run it rather than drop frames
            // meanwhile. (The element pushes a finished frame out when the next one comes
            // in, so waiting for it to reach the sink would wait for ever.)
            while style.property::<u64>("frames-processed") == 0 && !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    // Dropping the sender ends the feeder, which ends the stream.
}

fn feed_loop(
    rx: latest::LatestReceiver<(gst::Buffer, Instant)>,
    appsrc: gst_app::AppSrc,
    clock: RunningClock,
    period: Duration,
) {
    let mut last_pts: Option<gst::ClockTime> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((mut buffer, captured)) => {
                // The running time at capture: what the sink's clock reads then.
                let age = gst::ClockTime::from_nseconds(captured.elapsed().as_nanos() as u64);
                let mut pts = clock.now().saturating_sub(age);
                if let Some(l) = last_pts
                    && pts <= l
                {
                    pts = l + gst::ClockTime::from_nseconds(1);
                }
                last_pts = Some(pts);
                {
                    let b = buffer.make_mut();
                    b.set_pts(pts);
                    b.set_duration(gst::ClockTime::from_nseconds(period.as_nanos() as u64));
                }
                if appsrc.push_buffer(buffer).is_err() {
                    // Flushing or stopped: nothing more to do.
                    break;
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                let _ = appsrc.end_of_stream();
                break;
            }
        }
    }
}

fn draw_overlay(pad: &gst::Pad, info: &mut gst::PadProbeInfo, text: &str) {
    let Some(caps) = pad.current_caps() else {
        return;
    };
    let Ok(vinfo) = gst_video::VideoInfo::from_caps(&caps) else {
        return;
    };
    let Some(format) = crate::frame::PixelFormat::ALL
        .iter()
        .copied()
        .find(|f| f.name() == vinfo.format().to_str())
    else {
        return;
    };
    let Some(buffer) = info.buffer_mut() else {
        return;
    };
    let buf = buffer.make_mut();
    let Ok(mut vf) = gst_video::VideoFrameRef::from_buffer_ref_writable(buf, &vinfo) else {
        return;
    };
    let (w, h) = (vinfo.width() as usize, vinfo.height() as usize);
    let stride = vf.plane_stride()[0] as usize;
    let Ok(data) = vf.plane_data_mut(0) else {
        return;
    };
    if let Ok(mut frame) = FrameMut::new(data, w, h, stride, format) {
        let scale = (h / 180).clamp(1, 6);
        overlay::draw_text(
            &mut frame,
            4 * scale,
            h.saturating_sub(12 * scale),
            scale,
            text,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), 50.0);
        assert_eq!(percentile(&mut v, 95.0), 95.0);
        assert_eq!(percentile(&mut v, 100.0), 100.0);
        assert_eq!(percentile(&mut [], 50.0), 0.0);
        assert_eq!(percentile(&mut [7.0], 95.0), 7.0);
    }

    #[test]
    fn sinks_parse() {
        assert_eq!("null".parse::<SinkSpec>().unwrap(), SinkSpec::Null);
        assert_eq!("window".parse::<SinkSpec>().unwrap(), SinkSpec::Window);
        assert_eq!(
            "v4l2:/dev/video10".parse::<SinkSpec>().unwrap(),
            SinkSpec::V4l2("/dev/video10".into())
        );
        assert_eq!(
            "out.MKV".parse::<SinkSpec>().unwrap(),
            SinkSpec::File("out.MKV".into())
        );
        assert!("out.txt".parse::<SinkSpec>().is_err());
        assert!("v4l2:".parse::<SinkSpec>().is_err());
    }

    #[test]
    fn live_path_with_a_test_pattern_counts_frames_and_latency() {
        // The smallest test model: this is about the path, not the style.
        let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/models/gan_pm1_mult8.onnx");
        let cap = TestPattern::new(64, 48, gst::Fraction::new(30, 1));
        let mut live = Live::start(
            Box::new(cap),
            LiveOptions {
                frames: Some(10),
                overlay: true,
                style: vec![
                    ("model".into(), model.display().to_string()),
                    ("provider".into(), "cpu".into()),
                ],
                ..Default::default()
            },
        )
        .unwrap();
        let t = Instant::now();
        let reason = loop {
            assert!(t.elapsed() < Duration::from_secs(30), "never ended");
            if let Some(LiveEvent::Ended(r)) = live.next_event(Duration::from_millis(100)).unwrap()
            {
                break r;
            }
        };
        assert_eq!(reason, EndReason::Frames);
        let s = live.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(s.frames, 10);
        assert!(s.latency_p50_ms > 0.0 && s.latency_p95_ms < 1000.0, "{s:?}");
        assert_eq!(s.ended, EndReason::Frames);
    }
}
