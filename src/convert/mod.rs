//! Offline video conversion: decode any input GStreamer can read (decodebin: decodebin3 of
//! GStreamer 1.22 hangs on some truncated MP4 files, about one run in fifteen here), stylise the video with the
//! `styletransfer` element, keep the sound (copied when the output container takes it,
//! re-encoded when not), encode and mux by the output's extension.
//!
//! ```text
//! filesrc ! decodebin ─ video ─ queue ! videoflip(auto) ! videoconvertscale ! styletransfer
//!                     │          ! queue ! videoconvert ! encoder ! parser ! queue ! mux ! filesink
//!                     └ audio ─ (copy | audioconvert ! audioresample ! encoder) ─┘
//! ```
//!
//! The two short queues give the decoder, the element's feeding and the encoder a thread each.
//! Where the element takes I420 (an inference scale below 1 with the guided upsampler and no
//! temporal blending) the decoder's frames reach it and the encoder as they are, and the two
//! converters only pass them on (or scale, with `--size`); elsewhere they convert to and from
//! packed RGB.
//!
//! `--start`, `--duration` and `--frames` cut by timestamp on the decoded streams (a pad
//! offset makes the output start at zero), so no seek and no preroll round-trip through the
//! encoder is needed.

mod preview;
mod reader;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;

pub use preview::PreviewSheet;
pub use reader::VideoReader;

/// Output containers, chosen by the output file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// `.mp4`
    Mp4,
    /// `.mkv`
    Mkv,
    /// `.webm`
    Webm,
    /// `.mov`
    Mov,
}

impl Container {
    /// The container for a path's extension.
    pub fn from_path(path: &Path) -> Option<Container> {
        Self::from_extension(path.extension()?.to_str()?)
    }
    /// The container an extension (without the dot, any case) names.
    pub fn from_extension(ext: &str) -> Option<Container> {
        match ext.to_ascii_lowercase().as_str() {
            "mp4" | "m4v" => Some(Container::Mp4),
            "mkv" => Some(Container::Mkv),
            "webm" => Some(Container::Webm),
            "mov" => Some(Container::Mov),
            _ => None,
        }
    }
    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4",
            Container::Mkv => "mkv",
            Container::Webm => "webm",
            Container::Mov => "mov",
        }
    }
    pub(crate) fn muxer(self) -> &'static str {
        match self {
            Container::Mp4 => "mp4mux",
            Container::Mkv => "matroskamux",
            Container::Webm => "webmmux",
            Container::Mov => "qtmux",
        }
    }
    /// The codec a container suits when none is asked for.
    pub fn default_codec(self) -> Codec {
        match self {
            Container::Webm => Codec::Vp9,
            _ => Codec::H264,
        }
    }
    /// Whether the container can hold this video codec.
    pub fn takes(self, codec: Codec) -> bool {
        match self {
            Container::Webm => matches!(codec, Codec::Vp9 | Codec::Av1),
            // MPEG-4 Part 2 has no WebM mapping; MP4, MOV and Matroska carry it.
            Container::Mkv => true,
            Container::Mp4 | Container::Mov => true,
        }
    }
    fn audio_encoder(self) -> &'static str {
        match self {
            Container::Webm => "opusenc",
            _ => "avenc_aac",
        }
    }
}

/// Video codecs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// H.264 (x264).
    H264,
    /// H.265 (x265).
    H265,
    /// VP9 (libvpx).
    Vp9,
    /// AV1 (libaom).
    Av1,
    /// MPEG-4 Part 2 (libavcodec's `mpeg4`, what OpenCV writes as `mp4v`): larger files than
    /// H.264 at the same quality, but about half its encoding time, which the model gets
    /// when it runs on the CPU.
    Mpeg4,
}

impl FromStr for Codec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "h264" | "avc" => Ok(Codec::H264),
            "h265" | "hevc" => Ok(Codec::H265),
            "vp9" => Ok(Codec::Vp9),
            "av1" => Ok(Codec::Av1),
            "mpeg4" | "mp4v" => Ok(Codec::Mpeg4),
            _ => Err(format!(
                "--codec: '{s}' is not a codec (expected h264, h265, vp9, av1 or mpeg4)"
            )),
        }
    }
}

impl Codec {
    /// Name as `--codec` takes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Codec::H264 => "h264",
            Codec::H265 => "h265",
            Codec::Vp9 => "vp9",
            Codec::Av1 => "av1",
            Codec::Mpeg4 => "mpeg4",
        }
    }
    /// Valid `--quality` values (lower is better for all five). For MPEG-4 it is the
    /// quantizer itself, held constant.
    pub fn quality_range(self) -> (u32, u32) {
        match self {
            Codec::H264 | Codec::H265 => (0, 51),
            Codec::Vp9 | Codec::Av1 => (0, 63),
            Codec::Mpeg4 => (1, 31),
        }
    }
    /// Whether `--bitrate` works with this codec here.
    pub fn takes_bitrate(self) -> bool {
        // GStreamer 1.22.0's avenc_mpeg4 scales its time base to 1/65535 s, so its rate
        // control budgets bits for 65535 frames a second and every bitrate gives the same
        // file at the coarsest quantizer (measured: 200 kbit/s to 4 Mbit/s, 252 kB each).
        !matches!(self, Codec::Mpeg4)
    }
    /// `--quality` when neither it nor `--bitrate` is given.
    pub fn default_quality(self) -> u32 {
        match self {
            Codec::H264 => 20,
            Codec::H265 => 24,
            Codec::Vp9 => 32,
            Codec::Av1 => 34,
            // About the luma PSNR of h264 at 20 (stylised bikes.mp4 at 640x272: 39.1 against
            // 39.3 dB) for 25 % more bytes.
            Codec::Mpeg4 => 5,
        }
    }
}

/// Why `--bitrate` is refused with `codec`.
pub fn bitrate_refusal(codec: Codec) -> String {
    let (lo, hi) = codec.quality_range();
    format!(
        "--bitrate does not work with {} here (GStreamer 1.22's encoder ignores it); use --quality {lo}-{hi} (lower is better, default {})",
        codec.as_str(),
        codec.default_quality()
    )
}

/// Rate control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// Constant quality (CRF-like); lower is better.
    Quality(u32),
    /// Average bitrate in kbit/s.
    Bitrate(u32),
}

/// What a codec and a container take: the smallest side, and whether sides must be even
/// (4:2:0 in x264 and x265). MP4, MOV and WebM muxers take 16 pixels or more; x265 too; the
/// AV1 encoder 4; x264 and MPEG-4 2 (even); VP9 in Matroska any size.
pub fn size_constraints(codec: Codec, container: Container) -> (u32, bool) {
    let container_min = match container {
        Container::Mkv => 1,
        Container::Mp4 | Container::Mov | Container::Webm => 16,
    };
    let (codec_min, even) = match codec {
        Codec::H264 => (2, true),
        Codec::H265 => (16, true),
        Codec::Vp9 => (1, false),
        Codec::Av1 => (4, false),
        Codec::Mpeg4 => (2, true),
    };
    (container_min.max(codec_min), even)
}

/// The frame size written for decoded frames of `width`×`height`: the same when the codec and
/// the container take it; otherwise the smallest size they take with about the same shape
/// (scaled up to the minimum side keeping the aspect ratio, then odd sides rounded up to
/// even). `stylize convert` never crops: every decoded pixel is in the output.
pub fn encodable_size(width: u32, height: u32, codec: Codec, container: Container) -> (u32, u32) {
    let (min, even) = size_constraints(codec, container);
    let (w, h) = (width.max(1), height.max(1));
    let (mut w, mut h) = if w < min || h < min {
        let s = (min as f64 / w as f64).max(min as f64 / h as f64);
        (
            ((w as f64 * s).round() as u32).max(min),
            ((h as f64 * s).round() as u32).max(min),
        )
    } else {
        (w, h)
    };
    if even {
        w += w % 2;
        h += h % 2;
    }
    (w, h)
}

/// MPEG-4 Part 2 codes each side in 13 bits.
const MPEG4_MAX_SIDE: u32 = 8191;

/// Why `--size` cannot be written with this codec and container, if it cannot.
fn check_size(size: (u32, u32), codec: Codec, container: Container) -> Result<(), String> {
    let (min, even) = size_constraints(codec, container);
    let (w, h) = size;
    if w < min || h < min || (even && (w % 2 == 1 || h % 2 == 1)) {
        let (ew, eh) = encodable_size(w, h, codec, container);
        return Err(format!(
            "--size {w}x{h}: {} video in a .{} file needs {}sides of at least {min} pixels (e.g. --size {ew}x{eh})",
            codec.as_str(),
            container.extension(),
            if even { "even " } else { "" },
        ));
    }
    if codec == Codec::Mpeg4 && w.max(h) > MPEG4_MAX_SIDE {
        return Err(format!(
            "--size {w}x{h}: mpeg4 video takes sides of at most {MPEG4_MAX_SIDE} pixels (h264 takes more)"
        ));
    }
    Ok(())
}

/// Sets a property of `element` from text, refusing (instead of panicking, as
/// `set_property_from_str` does) a name it does not have or a value out of its range.
pub fn set_property_checked(element: &gst::Element, name: &str, value: &str) -> Result<(), String> {
    use gst::glib;
    let pspec = element
        .find_property(name)
        .ok_or_else(|| format!("the {} element has no property '{name}'", element.name()))?;
    let v = <glib::Value as gst::prelude::GstValueExt>::deserialize_with_pspec(value, &pspec)
        .map_err(|_| format!("{name}: '{value}' is not a valid value"))?;
    let out_of_range =
        |min: String, max: String| format!("{name} must be from {min} to {max}, got {value}");
    if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
        let x = v.get::<u32>().map_err(|e| e.to_string())?;
        if x < p.minimum() || x > p.maximum() {
            return Err(out_of_range(
                p.minimum().to_string(),
                p.maximum().to_string(),
            ));
        }
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecInt>() {
        let x = v.get::<i32>().map_err(|e| e.to_string())?;
        if x < p.minimum() || x > p.maximum() {
            return Err(out_of_range(
                p.minimum().to_string(),
                p.maximum().to_string(),
            ));
        }
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt64>() {
        let x = v.get::<u64>().map_err(|e| e.to_string())?;
        if x < p.minimum() || x > p.maximum() {
            return Err(out_of_range(
                p.minimum().to_string(),
                p.maximum().to_string(),
            ));
        }
    } else if let Some(p) = pspec.downcast_ref::<glib::ParamSpecDouble>() {
        let x = v.get::<f64>().map_err(|e| e.to_string())?;
        if !(p.minimum()..=p.maximum()).contains(&x) {
            return Err(out_of_range(
                p.minimum().to_string(),
                p.maximum().to_string(),
            ));
        }
    }
    element.set_property_from_value(name, &v);
    Ok(())
}

/// Settings of the `styletransfer` element for a conversion.
#[derive(Debug, Clone, Default)]
pub struct StyleSettings {
    /// Property name → value as text (`gst::Object::set_property_from_str`).
    pub properties: Vec<(String, String)>,
}

/// What to convert and how.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Element properties (model, provider, strength, ...).
    pub style: StyleSettings,
    /// Video codec (default: what the container suits).
    pub codec: Option<Codec>,
    /// Rate control (default: the codec's default quality).
    pub rate: Option<Rate>,
    /// Output size (default: the input's).
    pub size: Option<(u32, u32)>,
    /// Skip this much of the input.
    pub start: Option<Duration>,
    /// Convert at most this much.
    pub duration: Option<Duration>,
    /// Convert at most this many video frames.
    pub frames: Option<u64>,
    /// Write a side-by-side sheet of a few frames here.
    pub preview: Option<PathBuf>,
}

/// Why a conversion failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ConvertError {
    /// The input is missing, not a video, or broken.
    #[error("input {path}: {reason}")]
    Input {
        /// The input file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The options cannot work (e.g. a codec the container cannot hold).
    #[error("{0}")]
    Options(String),
    /// The style model could not be used.
    #[error("{0}")]
    Model(String),
    /// Encoding, muxing or writing failed.
    #[error("conversion failed: {0}")]
    Failed(String),
    /// Stopped by the caller (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

impl ConvertError {
    /// Whether the error is the input's or the options' fault (as opposed to a failure).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            ConvertError::Input { .. } | ConvertError::Options(_) | ConvertError::Model(_)
        )
    }
}

/// Progress of a running conversion.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Video frames written.
    pub frames: u64,
    /// Frames expected in all, when known.
    pub total: Option<u64>,
    /// Time since the conversion started.
    pub elapsed: Duration,
}

/// What a conversion did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Video frames written.
    pub frames: u64,
    /// Duration of the output's video, seconds.
    pub duration_s: f64,
    /// Wall time, seconds.
    pub wall_s: f64,
    /// Frames per second of the conversion.
    pub fps: f64,
    /// The provider that ran the model.
    pub provider: String,
    /// The model that ran.
    pub model: String,
    /// Video codec written.
    pub codec: String,
    /// `copied`, `re-encoded (...)` or `none`.
    pub audio: String,
    /// Mean and p95 time to stylise one frame, ms.
    pub stylize_ms_mean: f64,
    /// p95 of the time to stylise one frame, ms.
    pub stylize_ms_p95: f64,
    /// Size of the video written.
    pub width: u32,
    /// Size of the video written.
    pub height: u32,
    /// Set when the frames were written at another size than they were decoded, and why:
    /// a size the codec or container cannot take (e.g. odd sides for h264), or a resolution
    /// change in the middle of the input (later frames are scaled to the first size).
    pub size_note: Option<String>,
    /// Frames passed through unstylised because the model gave NaN or infinite values.
    pub non_finite_frames: u64,
    /// Coded video frames the decoder could not decode and went past (damaged data): they
    /// are missing from the output. Counted for whole inputs (no --start, --duration or
    /// --frames).
    pub undecodable_frames: u64,
}

/// A queue of a few frames that gives the elements after it a thread of their own.
fn short_queue() -> Result<gst::Element, ConvertError> {
    let q = make("queue")?;
    q.set_property("max-size-buffers", 3u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 0u64);
    Ok(q)
}

/// A queue deep enough for an encoder's lookahead (x264 holds ~40 frames): the other
/// stream must be able to run ahead by that much, or the muxer and the demuxer deadlock.
fn deep_queue() -> Result<gst::Element, String> {
    let q = gst::ElementFactory::make("queue")
        .build()
        .map_err(|e| e.to_string())?;
    q.set_property("max-size-buffers", 0u32);
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-time", 10 * gst::ClockTime::SECOND.nseconds());
    Ok(q)
}

pub(crate) fn make(factory: &str) -> Result<gst::Element, ConvertError> {
    gst::ElementFactory::make(factory).build().map_err(|_| {
        ConvertError::Failed(format!(
            "GStreamer element '{factory}' is missing (run scripts/setup.sh; `stylize doctor` lists what is missing)"
        ))
    })
}

/// The encoder elements for `codec`. `cpu_bound`: the model runs on the CPU, so the encoder
/// takes a faster preset to leave the cores to it.
pub(crate) fn video_encoder(
    codec: Codec,
    rate: Rate,
    cpu_bound: bool,
) -> Result<Vec<gst::Element>, ConvertError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(2);
    Ok(match codec {
        Codec::H264 => {
            let e = make("x264enc")?;
            // The encoder shares the cores with the model. `faster` costs a few per cent in
            // size at the same quantizer and a fraction of `medium`'s time. With the model on
            // the CPU every core-millisecond the encoder takes is one the model loses:
            // `superfast` takes half of `veryfast`'s CPU time (stylised bikes.mp4, 640x272:
            // 2.6 against 5.0 ms a frame) for a file of about the same size at the same
            // quantizer; `ultrafast` turns off CABAC and the deblocking filter, too visible.
            e.set_property_from_str(
                "speed-preset",
                if cpu_bound { "superfast" } else { "faster" },
            );
            if cpu_bound {
                // x264enc's own `trellis` property (default on) overrides the preset, which
                // turns trellis quantisation off at `superfast`. It took a quarter of the
                // encoder's time (bigbuckbunny.mp4 at 640x360: 0.49 against 0.36 s of CPU for
                // 132 frames) for a file 1.3 % smaller.
                e.set_property("trellis", false);
                // Frame threads cost CPU to coordinate (x264 picks 1.5 per core): on 2 cores
                // one thread encoded stylised bikes.mp4 in 0.61 s of CPU against 0.68-0.82,
                // to the same bytes. The model keeps the other cores busy meanwhile.
                e.set_property("threads", (threads / 2).max(1));
                // Intra partitions in P and B frames off (I frames keep theirs): 2.5-10 % of
                // the encoder's instructions, about the bitrate it costs. Stylised frames
                // (scripts/bench/x264_settings.sh, inference scale 0.25): bikes.mp4 4.2 %
                // smaller at 0.29 dB less luma PSNR, 9.8 % fewer instructions;
                // bigbuckbunny.mp4 at 640x360 1.2 % smaller at 0.11 dB less, 2.5 % fewer.
                e.set_property("option-string", "partitions=none");
            }
            match rate {
                Rate::Quality(q) => {
                    e.set_property_from_str("pass", "qual");
                    e.set_property("quantizer", q);
                    // In `qual` mode x264enc also caps the rate at `bitrate` (default 2048
                    // kbit/s) through the VBV, which starved 1080p output of bits. Constant
                    // quality means no cap: no VBV buffer turns it off (a huge bitrate would
                    // instead raise the stream's level to 6.2, which players may refuse).
                    e.set_property("vbv-buf-capacity", 0u32);
                }
                Rate::Bitrate(k) => e.set_property("bitrate", k),
            }
            vec![e, make("h264parse")?]
        }
        Codec::H265 => {
            let e = make("x265enc")?;
            e.set_property_from_str("speed-preset", "fast");
            match rate {
                Rate::Quality(q) => e.set_property("option-string", format!("crf={q}")),
                Rate::Bitrate(k) => e.set_property("bitrate", k),
            }
            vec![e, make("h265parse")?]
        }
        Codec::Vp9 => {
            let e = make("vp9enc")?;
            e.set_property("deadline", 1i64);
            e.set_property("cpu-used", 4i32);
            e.set_property("threads", threads as i32);
            e.set_property("row-mt", true);
            match rate {
                Rate::Quality(q) => {
                    e.set_property_from_str("end-usage", "cq");
                    e.set_property("cq-level", q as i32);
                    e.set_property("target-bitrate", 20_000_000i32);
                }
                Rate::Bitrate(k) => e.set_property("target-bitrate", (k * 1000) as i32),
            }
            vec![e]
        }
        Codec::Av1 => {
            let e = make("av1enc")?;
            e.set_property("cpu-used", 8i32);
            e.set_property("threads", threads);
            e.set_property("row-mt", true);
            match rate {
                Rate::Quality(q) => {
                    e.set_property_from_str("end-usage", "q");
                    e.set_property("min-quantizer", q);
                    e.set_property("max-quantizer", q);
                }
                Rate::Bitrate(k) => e.set_property("target-bitrate", k),
            }
            vec![e, make("av1parse")?]
        }
        Codec::Mpeg4 => {
            let e = make("avenc_mpeg4")?;
            let Rate::Quality(q) = rate else {
                return Err(ConvertError::Options(bitrate_refusal(codec)));
            };
            // A constant quantizer: its own rate control cannot work here (`takes_bitrate`).
            e.set_property("qmin", q as i32);
            e.set_property("qmax", q as i32);
            // Frames leave in the order they came, which `restore_timestamps` relies on.
            e.set_property("max-bframes", 0i32);
            if !cpu_bound {
                // One thread unless told; with the model on the CPU, one is what it can spare.
                e.set_property_from_str("threads", "auto");
            }
            restore_timestamps(&e);
            vec![e, make("mpeg4videoparse")?]
        }
    })
}

/// GStreamer 1.22.0's avenc_mpeg4 stamps every output buffer with FFmpeg's "no timestamp"
/// (it scales its time base to 1/65535 s and then cannot map packets back to frames), which
/// muxers refuse. Without B-frames it encodes one buffer per frame, in order, so each output
/// takes the running time its frame came in with, placed in the encoder's output segment
/// (which starts 1000 hours later, room it keeps for B-frames' decoding times). On a build
/// that keeps its timestamps this changes nothing.
fn restore_timestamps(encoder: &gst::Element) {
    use std::collections::VecDeque;
    type Segment = gst::FormattedSegment<gst::ClockTime>;
    // Running time and duration of the frames inside the encoder: a few, for its delay.
    let pending = Arc::new(Mutex::new(VecDeque::<(
        Option<gst::ClockTime>,
        Option<gst::ClockTime>,
    )>::with_capacity(16)));
    let (Some(sink), Some(src)) = (encoder.static_pad("sink"), encoder.static_pad("src")) else {
        return;
    };
    // A time segment from a segment event, if it is one.
    fn time_segment(e: &gst::EventRef) -> Option<Segment> {
        match e.view() {
            gst::EventView::Segment(s) => s.segment().clone().downcast::<gst::ClockTime>().ok(),
            _ => None,
        }
    }
    {
        let pending = pending.clone();
        // Probes are `Fn`; each pad's runs on one thread, so these locks never wait.
        let segment = Mutex::new(Segment::new());
        sink.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                match &info.data {
                    Some(gst::PadProbeData::Buffer(b)) => {
                        let (pts, duration) = (b.pts(), b.duration());
                        // The encoder drops frames wholly outside the segment and clips the
                        // start of the rest: so do these lists, to stay paired with its output.
                        let running = match pts {
                            Some(p) => {
                                let segment = segment.lock().unwrap();
                                match segment.clip(p, duration.map(|d| p + d)) {
                                    Some((start, _)) => {
                                        start.and_then(|s| segment.to_running_time(s))
                                    }
                                    None => return gst::PadProbeReturn::Ok,
                                }
                            }
                            None => None,
                        };
                        pending.lock().unwrap().push_back((running, duration));
                    }
                    Some(gst::PadProbeData::Event(e)) => {
                        if let Some(s) = time_segment(e) {
                            *segment.lock().unwrap() = s;
                        } else if let gst::EventView::FlushStop(_) = e.view() {
                            pending.lock().unwrap().clear();
                        }
                    }
                    _ => {}
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    let segment = Mutex::new(Segment::new());
    src.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let buffer = match &mut info.data {
                Some(gst::PadProbeData::Buffer(buffer)) => buffer,
                Some(gst::PadProbeData::Event(e)) => {
                    if let Some(s) = time_segment(e) {
                        *segment.lock().unwrap() = s;
                    }
                    return gst::PadProbeReturn::Ok;
                }
                _ => return gst::PadProbeReturn::Ok,
            };
            let Some((running, duration)) = pending.lock().unwrap().pop_front() else {
                return gst::PadProbeReturn::Ok;
            };
            let pts = running.and_then(|r| segment.lock().unwrap().position_from_running_time(r));
            if pts.is_some() && (buffer.pts() != pts || buffer.dts() != pts) {
                let b = buffer.make_mut();
                b.set_pts(pts);
                b.set_dts(pts);
                if b.duration().is_none() {
                    b.set_duration(duration);
                }
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// How long an input may take to show its first stream.
const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Caps that decodebin should hand over still encoded, so that audio can be copied.
fn passthrough_caps() -> gst::Caps {
    gst::Caps::from_str(
        "video/x-raw(ANY); audio/x-raw(ANY); audio/mpeg; audio/x-opus; audio/x-vorbis; \
         audio/x-ac3; audio/x-eac3; audio/x-flac; audio/x-alac",
    )
    .expect("valid caps")
}

/// Cut points shared by the stream probes.
struct Cut {
    /// Frame rate of the video, known at its first buffer.
    frame_rate: Mutex<Option<gst::Fraction>>,
    start: gst::ClockTime,
    /// End in input time; set from --duration, or from --frames once the frame rate is known.
    end: Mutex<Option<gst::ClockTime>>,
    max_frames: Option<u64>,
    video_frames: AtomicU64,
    /// Signalled when the frame rate (and with --frames, the end) is known.
    known: std::sync::Condvar,
}

impl Cut {
    fn end(&self) -> Option<gst::ClockTime> {
        *self.end.lock().unwrap()
    }

    /// Reads the frame rate from the negotiated caps and, with --frames, turns the frame
    /// count into an end time, so that the sound stops with the last frame.
    fn learn_frame_rate(&self, pad: &gst::Pad, first_pts: Option<gst::ClockTime>) {
        let Some(fps) = pad
            .current_caps()
            .and_then(|c| c.structure(0)?.get::<gst::Fraction>("framerate").ok())
        else {
            return;
        };
        // The end first: the sound thread reads it as soon as the frame rate is known.
        if let (Some(n), true) = (self.max_frames, fps.numer() > 0) {
            // Counted from the first frame kept: streams need not start at zero.
            let base = first_pts.map_or(self.start, |p| p.max(self.start));
            let frames_end = base
                + gst::ClockTime::SECOND
                    .mul_div_floor(n * fps.denom() as u64, fps.numer() as u64)
                    .unwrap_or(gst::ClockTime::ZERO);
            let mut end = self.end.lock().unwrap();
            *end = Some(end.map_or(frames_end, |e| e.min(frames_end)));
        }
        *self.frame_rate.lock().unwrap() = Some(fps);
        self.known.notify_all();
    }

    /// With --frames, the sound must not run past the end before the video has said where
    /// the end is: hold the sound until then (10 s at most, e.g. a file without video).
    fn wait_for_end(&self) {
        if self.max_frames.is_none() {
            return;
        }
        let guard = self.frame_rate.lock().unwrap();
        let _ = self
            .known
            .wait_timeout_while(guard, Duration::from_secs(10), |f| f.is_none());
    }
}

/// Drops buffers before the start, and ends the stream at the end (and, for video, after
/// the last frame asked for). Kept buffers and the segment are moved back by the start, so
/// encoders see an ordinary stream beginning at zero (a pad offset would leave their
/// decode timestamps negative in running time, and muxers would lose the first frames).
fn add_cut_probe(pad: &gst::Pad, cut: Arc<Cut>, video: bool) {
    let ended = AtomicBool::new(false);
    let shift = cut.start;
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            if let Some(gst::PadProbeData::Event(ev)) = &info.data {
                if shift > gst::ClockTime::ZERO
                    && let gst::EventView::Segment(seg) = ev.view()
                    && let Some(seg) = seg.segment().downcast_ref::<gst::ClockTime>()
                {
                    let mut moved = seg.clone();
                    moved.set_start(seg.start().map(|s| s.saturating_sub(shift)));
                    moved.set_stop(seg.stop().map(|s| s.saturating_sub(shift)));
                    moved.set_time(seg.time().map(|s| s.saturating_sub(shift)));
                    moved.set_position(seg.position().map(|s| s.saturating_sub(shift)));
                    let new = gst::event::Segment::builder(&moved)
                        .seqnum(ev.seqnum())
                        .build();
                    info.data = Some(gst::PadProbeData::Event(new));
                }
                return gst::PadProbeReturn::Ok;
            }
            if ended.load(Ordering::SeqCst) {
                // EOS upstream too: the decoder stops instead of decoding the rest.
                info.flow_res = Err(gst::FlowError::Eos);
                return gst::PadProbeReturn::Drop;
            }
            let Some(buf) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            if video && cut.frame_rate.lock().unwrap().is_none() {
                cut.learn_frame_rate(pad, buf.pts());
            } else if !video {
                cut.wait_for_end();
            }
            let pts = buf.pts();
            if let Some(pts) = pts {
                let end = pts + buf.duration().unwrap_or(gst::ClockTime::ZERO);
                let before = match buf.duration() {
                    Some(_) => end <= cut.start,
                    None => pts < cut.start,
                };
                if before {
                    return gst::PadProbeReturn::Drop;
                }
            }
            let past_end = match (pts, cut.end()) {
                (Some(p), Some(e)) => p >= e,
                _ => false,
            };
            let too_many = video
                && cut
                    .max_frames
                    .is_some_and(|m| cut.video_frames.load(Ordering::SeqCst) >= m);
            if past_end || too_many {
                ended.store(true, Ordering::SeqCst);
                // Into the peer, not pushed on this pad: an EOS pad fails every sticky event
                // pushed after it (the decoder's bitrate tags, which come at any time), and
                // that failure stopped the conversion with "Internal data stream error".
                if let Some(peer) = pad.peer() {
                    peer.send_event(gst::event::Eos::new());
                }
                info.flow_res = Err(gst::FlowError::Eos);
                return gst::PadProbeReturn::Drop;
            }
            if video {
                cut.video_frames.fetch_add(1, Ordering::SeqCst);
            }
            if shift > gst::ClockTime::ZERO
                && let Some(gst::PadProbeData::Buffer(b)) = info.data.as_mut()
            {
                let b = b.make_mut();
                b.set_pts(b.pts().map(|t| t.saturating_sub(shift)));
                b.set_dts(b.dts().map(|t| t.saturating_sub(shift)));
            }
            gst::PadProbeReturn::Ok
        },
    );
}

/// Loads, on other threads, what the pipeline will need on its critical path: ONNX Runtime,
/// which the styletransfer element's model load waits for, and the plugins that decodebin
/// loads only once it has found the stream's type. Loading libav pulls in libavcodec and its
/// many libraries (70-100 ms here), which otherwise happens after the model is loaded, on
/// the only busy core. Joined on drop, so that no library is still being loaded when the
/// process exits.
struct WarmUp(Vec<std::thread::JoinHandle<()>>);

/// Plugins decodebin loads for most inputs: the type finders and the libav decoders.
const WARM_PLUGINS: [&str; 2] = ["typefindfunctions", "libav"];

impl WarmUp {
    fn new() -> Self {
        Self(Vec::new())
    }

    fn spawn(&mut self, work: impl FnOnce() + Send + 'static) {
        if let Ok(h) = std::thread::Builder::new()
            .name("stylize-warm-up".into())
            .spawn(work)
        {
            self.0.push(h);
        }
    }

    /// ONNX Runtime: needs no GStreamer, so it starts first.
    fn runtime(&mut self) {
        // An error here is the element's to report when it loads its model.
        self.spawn(|| drop(crate::runtime::runtime()));
    }

    /// The plugins, once the pipeline's own elements exist: GStreamer loads one plugin at a
    /// time, so loading libav while the pipeline was built made its elements wait for it
    /// (10 frames of bikes.mp4, 12 alternating runs: median wall time 0.206 against 0.216 s,
    /// whole process 0.27 against 0.28 s).
    fn plugins(&mut self) {
        self.spawn(|| {
            let registry = gst::Registry::get();
            for name in WARM_PLUGINS {
                if let Some(plugin) = registry.find_plugin(name) {
                    let _ = plugin.load();
                }
            }
        });
    }
}

impl Drop for WarmUp {
    fn drop(&mut self) {
        for h in self.0.drain(..) {
            let _ = h.join();
        }
    }
}

/// Converts `input` into `output` (the caller's temporary path; its extension picks the
/// container via `container`). Calls `progress` about twice a second; stops promptly when
/// `cancel` becomes true.
pub fn convert(
    input: &Path,
    output: &Path,
    container: Container,
    options: &ConvertOptions,
    cancel: &AtomicBool,
    mut progress: impl FnMut(Progress),
) -> Result<Summary, ConvertError> {
    let bad = |reason: String| ConvertError::Input {
        path: input.to_path_buf(),
        reason,
    };
    match std::fs::metadata(input) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(bad("no such file".into()));
        }
        Err(e) => return Err(bad(format!("cannot read: {e}"))),
        Ok(m) if m.is_dir() => return Err(bad("is a directory".into())),
        Ok(m) if m.len() == 0 => return Err(bad("the file is empty".into())),
        Ok(_) => {}
    }
    if let Some(kind) = still_picture(input) {
        return Err(bad(format!(
            "is a still picture ({kind}), not a video: use `stylize image {} OUTPUT.png` for pictures",
            input.display()
        )));
    }
    let mut warm = WarmUp::new();
    warm.runtime();
    crate::element::register_static().map_err(|e| ConvertError::Failed(e.to_string()))?;
    let codec = options.codec.unwrap_or(container.default_codec());
    if !container.takes(codec) {
        return Err(ConvertError::Options(format!(
            "a .{} file cannot hold {} video (use vp9 or av1, or another container)",
            container.extension(),
            codec.as_str()
        )));
    }
    if let Some(size) = options.size {
        check_size(size, codec, container).map_err(ConvertError::Options)?;
    }
    let rate = options
        .rate
        .unwrap_or(Rate::Quality(codec.default_quality()));
    match rate {
        Rate::Quality(q) => {
            let (lo, hi) = codec.quality_range();
            if !(lo..=hi).contains(&q) {
                return Err(ConvertError::Options(format!(
                    "--quality for {} must be from {lo} to {hi}, got {q}",
                    codec.as_str()
                )));
            }
        }
        Rate::Bitrate(_) if !codec.takes_bitrate() => {
            return Err(ConvertError::Options(bitrate_refusal(codec)));
        }
        Rate::Bitrate(_) => {}
    }

    let pipeline = gst::Pipeline::new();
    let src = make("filesrc")?;
    src.set_property("location", input.to_string_lossy().to_string());
    let decode = make("decodebin")?;
    decode.set_property("caps", passthrough_caps());
    let mux = make(container.muxer())?;
    let sink = make("filesink")?;
    sink.set_property("location", output.to_string_lossy().to_string());
    pipeline
        .add_many([&src, &decode, &mux, &sink])
        .map_err(|e| ConvertError::Failed(e.to_string()))?;
    src.link(&decode)
        .map_err(|e| ConvertError::Failed(e.to_string()))?;
    mux.link(&sink)
        .map_err(|e| ConvertError::Failed(e.to_string()))?;

    // The video branch, built now so that a model error shows before anything runs.
    let flip = make("videoflip")?;
    flip.set_property_from_str("video-direction", "auto");
    // The size is fixed for the whole output: --size, else the first frame's size (made
    // encodable: see `encodable_size`). Frames of another size later in the input are scaled
    // to it (letterboxed if their shape differs), since encoders and muxers cannot follow a
    // size change. Scaling and the conversion to the element's RGB are one pass of one
    // converter (a 720p I420 input made 640x360 RGB: 2.1 ms a frame against 2.6 for a
    // videoscale then a videoconvert); where the sizes match it only converts.
    let scale = make("videoconvertscale")?;
    let size_caps = make("capsfilter")?;
    let geometry = Arc::new(Mutex::new(Geometry::default()));
    match options.size {
        Some((w, h)) => size_caps.set_property(
            "caps",
            gst::Caps::builder("video/x-raw")
                .field("width", w as i32)
                .field("height", h as i32)
                .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
                .build(),
        ),
        None => lock_size(&scale, &size_caps, codec, container, geometry.clone()),
    }
    // Three threads take turns on each frame: the decoder's, the one that converts it and
    // hands it to the model, and the encoder's. Without the two short queues the decoder's
    // thread also converted and encoded every frame, a serial chain that the model's threads
    // waited on: with a cheap model on 2 cores (bikes.mp4 at inference scale 0.25) the cores
    // were 83 % busy; with the queues (and the decoder's threads below) 89 %, for about 10 %
    // less wall time.
    let mut video_chain = vec![short_queue()?, flip, scale.clone(), size_caps];
    let style = make("styletransfer")?;
    for (k, v) in &options.style.properties {
        set_property_checked(&style, k, v).map_err(ConvertError::Options)?;
    }
    // Whether the model competes with decoding and encoding for the cores. Read by the
    // enum's nick, not as this crate's enum type: with GST_PLUGIN_PATH also holding the
    // plugin, the element and its enum type may come from there.
    let cpu_bound = gst::glib::EnumValue::from_value(&style.property_value("provider"))
        .and_then(|(_, v)| v.nick().parse::<crate::Provider>().ok())
        .unwrap_or_default()
        .expects_cpu();
    if style.property::<f64>("inference-scale") < 1.0 {
        // The model sees a smaller copy and the guided upsampler only the luma, so the
        // chroma's interpolation filter changes nothing worth its cost: replicating 4:2:0
        // chroma instead of the cubic filter takes 30 % off this converter (720p I420 to
        // 640x360 RGB: 1.4 against 2.1 ms a frame).
        scale.set_property_from_str("chroma-mode", "none");
    }
    video_chain.push(style.clone());
    video_chain.push(short_queue()?);
    video_chain.push(make("videoconvert")?);
    // 4:2:0, which every player decodes (x264 would otherwise pick 4:4:4 from RGB).
    let i420 = make("capsfilter")?;
    i420.set_property(
        "caps",
        gst::Caps::builder("video/x-raw")
            .field("format", "I420")
            .build(),
    );
    video_chain.push(i420);
    let encoder = video_encoder(codec, rate, cpu_bound)?;
    if matches!(container, Container::Mp4 | Container::Mov) {
        keep_last_frame_shown(
            &encoder
                .last()
                .expect("an encoder")
                .static_pad("src")
                .expect("src"),
        );
    }
    video_chain.extend(encoder);
    let video_queue = deep_queue().map_err(ConvertError::Failed)?;
    video_chain.push(video_queue);
    pipeline
        .add_many(&video_chain)
        .map_err(|e| ConvertError::Failed(e.to_string()))?;
    gst::Element::link_many(&video_chain).map_err(|e| ConvertError::Failed(e.to_string()))?;
    let video_out = video_chain.last().expect("non-empty").clone();
    let video_mux_pad = mux
        .request_pad_simple("video_%u")
        .ok_or_else(|| ConvertError::Failed("the muxer has no video pad".into()))?;
    video_out
        .static_pad("src")
        .expect("queue has src")
        .link(&video_mux_pad)
        .map_err(|e| ConvertError::Failed(format!("video into the muxer: {e}")))?;

    // Frame counting and the preview sheet, around the style element.
    let frames_out = Arc::new(AtomicU64::new(0));
    // First timestamp and end of the last frame: the duration, also of variable-rate video.
    let span = Arc::new(Mutex::new(None::<(gst::ClockTime, gst::ClockTime)>));
    let (fo, sp) = (frames_out.clone(), span.clone());
    style.static_pad("src").expect("src pad").add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| {
            fo.fetch_add(1, Ordering::SeqCst);
            if let Some(b) = info.buffer()
                && let Some(pts) = b.pts()
            {
                let end = pts + b.duration().unwrap_or(gst::ClockTime::ZERO);
                let mut sp = sp.lock().unwrap();
                *sp = Some(match *sp {
                    Some((first, last)) => (first.min(pts), last.max(end)),
                    None => (pts, end),
                });
            }
            gst::PadProbeReturn::Ok
        },
    );
    let sheet = options
        .preview
        .as_ref()
        .map(|_| PreviewSheet::attach(&style));

    let cut = Arc::new(Cut {
        start: gst::ClockTime::from_nseconds(options.start.unwrap_or_default().as_nanos() as u64),
        end: Mutex::new(options.duration.map(|d| {
            gst::ClockTime::from_nseconds((options.start.unwrap_or_default() + d).as_nanos() as u64)
        })),
        max_frames: options.frames,
        video_frames: AtomicU64::new(0),
        frame_rate: Mutex::new(None),
        known: std::sync::Condvar::new(),
    });
    let audio_mode = Arc::new(Mutex::new(String::from("none")));
    let link_error = Arc::new(Mutex::new(None::<String>));
    let video_linked = Arc::new(AtomicBool::new(false));
    {
        let pipeline_weak = pipeline.downgrade();
        let video_sink = video_chain[0].static_pad("sink").expect("sink pad");
        let mux = mux.clone();
        let cut = cut.clone();
        let audio_mode = audio_mode.clone();
        let link_error = link_error.clone();
        let video_linked = video_linked.clone();
        decode.connect_pad_added(move |_, pad| {
            let Some(pipeline) = pipeline_weak.upgrade() else {
                return;
            };
            let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
            let Some(s) = caps.structure(0) else { return };
            let name = s.name().to_string();
            if name.starts_with("video/") {
                if video_linked.swap(true, Ordering::SeqCst) {
                    return; // one video stream
                }
                add_cut_probe(pad, cut.clone(), true);
                if let Err(e) = pad.link(&video_sink) {
                    *link_error.lock().unwrap() = Some(format!("cannot link the video: {e:?}"));
                }
            } else if name.starts_with("audio/") {
                if *audio_mode.lock().unwrap() != "none" {
                    return; // one audio stream
                }
                match link_audio(&pipeline, pad, &caps, &mux, container) {
                    Ok(mode) => {
                        add_cut_probe(pad, cut.clone(), false);
                        *audio_mode.lock().unwrap() = mode;
                    }
                    Err(e) => *link_error.lock().unwrap() = Some(e),
                }
            }
        });
    }

    // Frames in and out of the video decoder: a decoder goes past data it cannot decode
    // (damaged files) without a message, and those frames are missing from the output.
    let decoded = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    {
        let decoded = decoded.clone();
        let found = AtomicBool::new(false);
        let bin = decode
            .downcast_ref::<gst::Bin>()
            .expect("decodebin is a bin");
        bin.connect_deep_element_added(move |_, _, element| {
            let is_video_decoder = element.factory().is_some_and(|f| {
                let klass = f.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or_default();
                klass.contains("Decoder") && klass.contains("Video")
            });
            if !is_video_decoder || found.swap(true, Ordering::SeqCst) {
                return;
            }
            if cpu_bound && element.find_property("max-threads").is_some() {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                // libav's frame threads hand each frame between threads many times (row by
                // row, for the references), and the thread that feeds them waits at each
                // frame: with the model on every core that is CPU and waiting for no speed
                // (bigbuckbunny.mp4 decoded alone: 0.37-0.40 s of CPU on one thread against
                // 0.47-0.63 s on libav's three). One per two cores, like the encoder; with the
                // model on a GPU libav keeps its own choice, which large inputs need.
                element.set_property("max-threads", (cores / 2).max(1) as i32);
            }
            if let Some(pad) = element.static_pad("sink") {
                // Coded frames meant to be shown: inside the segment (an MP4 edit list can
                // leave frames outside it, which the decoder decodes but drops).
                let decoded = decoded.clone();
                let segment = Mutex::new(None::<(gst::ClockTime, Option<gst::ClockTime>)>);
                pad.add_probe(
                    gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
                    move |_, info| {
                        match &info.data {
                            Some(gst::PadProbeData::Event(ev)) => {
                                if let gst::EventView::Segment(seg) = ev.view()
                                    && let Some(seg) =
                                        seg.segment().downcast_ref::<gst::ClockTime>()
                                {
                                    *segment.lock().unwrap() = Some((
                                        seg.start().unwrap_or(gst::ClockTime::ZERO),
                                        seg.stop(),
                                    ));
                                }
                            }
                            Some(gst::PadProbeData::Buffer(b)) => {
                                let shown = match (b.pts(), *segment.lock().unwrap()) {
                                    (Some(pts), Some((start, stop))) => {
                                        pts >= start && stop.is_none_or(|stop| pts < stop)
                                    }
                                    _ => true,
                                };
                                if shown {
                                    decoded.0.fetch_add(1, Ordering::Relaxed);
                                }
                            }
                            _ => {}
                        }
                        gst::PadProbeReturn::Ok
                    },
                );
            }
            if let Some(pad) = element.static_pad("src") {
                let decoded = decoded.clone();
                pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    decoded.1.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                });
            }
        });
    }

    // An input without video: decodebin says it has exposed all it will.
    let no_video = Arc::new(AtomicBool::new(false));
    {
        let no_video = no_video.clone();
        let video_linked = video_linked.clone();
        decode.connect_no_more_pads(move |_| {
            if !video_linked.load(Ordering::SeqCst) {
                no_video.store(true, Ordering::SeqCst);
            }
        });
    }

    warm.plugins();
    let started = Instant::now();
    let bus = pipeline.bus().expect("pipeline has a bus");
    let classify = |msg: &gst::message::Error| -> ConvertError {
        let from = msg
            .src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_default();
        let text = msg.error().to_string();
        let debug = msg.debug().map(|d| d.to_string()).unwrap_or_default();
        if from.contains("styletransfer") {
            ConvertError::Model(text)
        } else if from.contains("decodebin")
            || from.contains("filesrc")
            || from.contains("typefind")
        {
            let e = msg.error();
            let reason = if e.matches(gst::StreamError::TypeNotFound)
                || e.matches(gst::StreamError::WrongType)
                || text.contains("text file")
            {
                format!("not a video file GStreamer can decode ({text})")
            } else if e.matches(gst::CoreError::MissingPlugin)
                || e.matches(gst::StreamError::CodecNotFound)
            {
                format!(
                    "no decoder for this format here ({text}); `stylize doctor` lists what is missing"
                )
            } else {
                format!("{text} (the file may be truncated or corrupt)")
            };
            ConvertError::Input {
                path: input.to_path_buf(),
                reason,
            }
        } else {
            ConvertError::Failed(format!("{text} [{from}] {debug}"))
        }
    };
    if let Err(e) = pipeline.set_state(gst::State::Playing) {
        // The reason is on the bus.
        let msg =
            bus.timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error]);
        let _ = pipeline.set_state(gst::State::Null);
        return Err(match msg.as_ref().map(|m| m.view()) {
            Some(gst::MessageView::Error(err)) => classify(err),
            _ => ConvertError::Failed(format!("cannot start: {e}")),
        });
    }

    let mut total: Option<u64> = options.frames;
    let mut input_duration = None::<gst::ClockTime>;
    let mut last_report = Instant::now();
    let result = loop {
        if cancel.load(Ordering::SeqCst) {
            break Err(ConvertError::Interrupted);
        }
        if let Some(e) = link_error.lock().unwrap().take() {
            break Err(ConvertError::Failed(e));
        }
        if no_video.load(Ordering::SeqCst) {
            break Err(bad("has no video stream".into()));
        }
        // Reading the first bytes of a file never takes long: no stream after this long
        // means a demuxer stuck on a broken file (GStreamer 1.22's qtdemux, fed through
        // decodebin, stalls on some truncated MP4 files instead of posting an error).
        if !video_linked.load(Ordering::SeqCst) && started.elapsed() > STREAM_TIMEOUT {
            break Err(bad(format!(
                "no stream found in {} s (the file may be truncated or corrupt)",
                STREAM_TIMEOUT.as_secs()
            )));
        }
        if let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) {
            match msg.view() {
                gst::MessageView::Eos(_) => break Ok(()),
                gst::MessageView::Error(err) => break Err(classify(err)),
                _ => {}
            }
        }
        if input_duration.is_none() {
            input_duration = pipeline.query_duration::<gst::ClockTime>();
        }
        if total.is_none()
            && let (Some(d), Some(fps)) = (
                pipeline.query_duration::<gst::ClockTime>(),
                *cut.frame_rate.lock().unwrap(),
            )
            && fps.numer() > 0
        {
            let start = cut.start;
            let end = cut.end().unwrap_or(d).min(d);
            let span = end.saturating_sub(start);
            total = Some(
                (span.nseconds() as u128 * fps.numer() as u128
                    / (fps.denom() as u128 * 1_000_000_000)) as u64,
            );
        }
        if last_report.elapsed() >= Duration::from_millis(500) {
            last_report = Instant::now();
            progress(Progress {
                frames: frames_out.load(Ordering::SeqCst),
                total,
                elapsed: started.elapsed(),
            });
        }
    };
    let provider = style.property::<String>("active-provider");
    let model = style.property::<String>("active-model");
    let mean = style.property::<f64>("mean-inference-ms");
    let p95 = style.property::<f64>("p95-inference-ms");
    let non_finite_frames = style.property::<u64>("frames-non-finite");
    let (width, height) = style
        .static_pad("src")
        .and_then(|p| p.current_caps())
        .and_then(|c| gst_video::VideoInfo::from_caps(&c).ok())
        .map_or((0, 0), |i| (i.width(), i.height()));
    let _ = pipeline.set_state(gst::State::Null);
    result?;
    let frames = frames_out.load(Ordering::SeqCst);
    if frames == 0 {
        if let (Some(start), Some(d)) = (options.start, input_duration)
            && start.as_nanos() >= d.nseconds() as u128
        {
            return Err(ConvertError::Options(format!(
                "--start {:.3} s is at or past the end of {} ({:.3} s of video): nothing to convert",
                start.as_secs_f64(),
                input.display(),
                d.seconds_f64()
            )));
        }
        return Err(bad("no video frames could be decoded".into()));
    }
    if let (Some(sheet), Some(path)) = (sheet, options.preview.as_ref()) {
        sheet
            .write(path)
            .map_err(|e| ConvertError::Failed(format!("preview {}: {e}", path.display())))?;
    }
    let wall = started.elapsed().as_secs_f64();
    // From the timestamps (right for variable frame rates too), else from the frame rate.
    let duration_s = match *span.lock().unwrap() {
        Some((first, end)) if end > first => (end - first).seconds_f64(),
        _ => cut
            .frame_rate
            .lock()
            .unwrap()
            .filter(|f| f.numer() > 0)
            .map(|f| frames as f64 * f.denom() as f64 / f.numer() as f64)
            .unwrap_or(0.0),
    };
    let size_note = geometry.lock().unwrap().note(codec, container);
    // Only for a whole input: a cut stops the output while the decoder still has frames.
    let whole = options.start.is_none() && options.duration.is_none() && options.frames.is_none();
    let (coded, decoded) = (
        decoded.0.load(Ordering::SeqCst),
        decoded.1.load(Ordering::SeqCst),
    );
    let undecodable_frames = if whole {
        coded.saturating_sub(decoded)
    } else {
        0
    };
    progress(Progress {
        frames,
        total: Some(frames),
        elapsed: started.elapsed(),
    });
    let audio = audio_mode.lock().unwrap().clone();
    Ok(Summary {
        frames,
        duration_s,
        wall_s: wall,
        fps: frames as f64 / wall,
        provider,
        model,
        codec: codec.as_str().into(),
        audio,
        stylize_ms_mean: mean,
        stylize_ms_p95: p95,
        width,
        height,
        size_note,
        non_finite_frames,
        undecodable_frames,
    })
}

/// The kind of still picture `path` holds (by its first bytes), if it is one that
/// `stylize image` reads: `stylize convert` refuses those rather than write a one-frame video.
fn still_picture(path: &Path) -> Option<&'static str> {
    use std::io::Read;
    let mut head = [0u8; 32];
    let mut file = std::fs::File::open(path).ok()?;
    let n = file.read(&mut head).ok()?;
    match image::guess_format(&head[..n]).ok()? {
        image::ImageFormat::Png => Some("PNG"),
        image::ImageFormat::Jpeg => Some("JPEG"),
        image::ImageFormat::Bmp => Some("BMP"),
        image::ImageFormat::Tiff => Some("TIFF"),
        image::ImageFormat::WebP => Some("WebP"),
        _ => None,
    }
}

/// The size of the decoded frames and what became of it.
#[derive(Debug, Default)]
struct Geometry {
    /// The decoded size (after rotation) the output size was chosen for.
    first: Option<(u32, u32)>,
    /// The size written.
    locked: Option<(u32, u32)>,
    /// Whether a frame has passed: the size is fixed from then on.
    frozen: bool,
    /// Decoded sizes that differed from the first, later in the stream.
    changes: Vec<(u32, u32)>,
}

impl Geometry {
    fn note(&self, codec: Codec, container: Container) -> Option<String> {
        let (first, locked) = (self.first?, self.locked?);
        let mut notes = Vec::new();
        if first != locked {
            let (min, even) = size_constraints(codec, container);
            notes.push(format!(
                "frames of {}x{} written as {}x{}: {} video in a .{} file needs {}sides of at least {min} pixels",
                first.0,
                first.1,
                locked.0,
                locked.1,
                codec.as_str(),
                container.extension(),
                if even { "even " } else { "" }
            ));
        }
        if let Some(&(w, h)) = self.changes.first() {
            notes.push(format!(
                "the input changes size mid-stream ({} time(s), first to {w}x{h}); later frames were scaled to {}x{}",
                self.changes.len(),
                locked.0,
                locked.1
            ));
        }
        (!notes.is_empty()).then(|| notes.join("; "))
    }
}

/// Fixes the output size at the size of the first frame that reaches `scale` (made encodable),
/// by setting `caps` (the capsfilter after it) while the caps of that frame go by, so that the
/// first frame is already scaled when it needs to be. Later size changes are recorded.
fn lock_size(
    scale: &gst::Element,
    caps: &gst::Element,
    codec: Codec,
    container: Container,
    geometry: Arc<Mutex<Geometry>>,
) {
    let caps = caps.clone();
    scale.static_pad("sink").expect("sink pad").add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |_, info| {
            let mut g = geometry.lock().unwrap();
            let Some(gst::PadProbeData::Event(ev)) = &info.data else {
                // A frame: the size it was negotiated at is the output's from now on.
                g.frozen = true;
                return gst::PadProbeReturn::Ok;
            };
            let gst::EventView::Caps(c) = ev.view() else {
                return gst::PadProbeReturn::Ok;
            };
            let Ok(vi) = gst_video::VideoInfo::from_caps(c.caps()) else {
                return gst::PadProbeReturn::Ok;
            };
            let (w, h) = (vi.width(), vi.height());
            if g.frozen {
                if Some((w, h)) != g.first && g.changes.last() != Some(&(w, h)) {
                    g.changes.push((w, h));
                }
                return gst::PadProbeReturn::Ok;
            }
            // Before the first frame (e.g. a rotation tag turned the picture): (re)choose.
            let (ow, oh) = encodable_size(w, h, codec, container);
            // Keep the display shape: PAR × w/h = PAR' × ow/oh.
            let par = vi.par();
            let (n, d) = (
                par.numer() as i64 * w as i64 * oh as i64,
                par.denom() as i64 * h as i64 * ow as i64,
            );
            let g_ = gcd(n, d).max(1);
            let out_par = gst::Fraction::new((n / g_) as i32, (d / g_) as i32);
            caps.set_property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("width", ow as i32)
                    .field("height", oh as i32)
                    .field("pixel-aspect-ratio", out_par)
                    .build(),
            );
            g.first = Some((w, h));
            g.locked = Some((ow, oh));
            gst::PadProbeReturn::Ok
        },
    );
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

/// MP4 and MOV: with B-frames and a variable frame rate, the muxer sizes the edit list from
/// the decoding times, which can end before the last frame is shown, so players (and
/// GStreamer's own demuxer) lose it. The last buffer's duration is what the muxer uses to
/// end the track: give every buffer (only the last one's counts) a duration that reaches the
/// end of the last frame shown. Constant-rate video is left exactly as it was.
fn keep_last_frame_shown(pad: &gst::Pad) {
    #[derive(Default)]
    struct Span {
        first_dts: Option<gst::ClockTime>,
        min_pts: Option<gst::ClockTime>,
        max_pts: Option<gst::ClockTime>,
        max_end: Option<gst::ClockTime>,
        count: u64,
    }
    let span = Mutex::new(Span::default());
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Some(gst::PadProbeData::Buffer(buf)) = info.data.as_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let (Some(pts), Some(dts)) = (buf.pts(), buf.dts()) else {
            return gst::PadProbeReturn::Ok;
        };
        let dur = buf.duration().unwrap_or(gst::ClockTime::ZERO);
        let mut s = span.lock().unwrap();
        let first_dts = *s.first_dts.get_or_insert(dts);
        let min_pts = s.min_pts.map_or(pts, |m| m.min(pts));
        let max_pts = s.max_pts.map_or(pts, |m| m.max(pts));
        s.count += 1;
        // Variable-rate streams often come without real durations (none, or 1 ns): a frame
        // is shown for the mean interval then.
        let shown = if dur < gst::ClockTime::MSECOND && s.count > 1 {
            (max_pts - min_pts) / (s.count - 1)
        } else {
            dur
        };
        let max_end = s.max_end.map_or(pts + shown, |m| m.max(pts + shown));
        s.min_pts = Some(min_pts);
        s.max_pts = Some(max_pts);
        s.max_end = Some(max_end);
        let need = (max_end - min_pts).saturating_sub(dts.saturating_sub(first_dts));
        if need > dur {
            buf.make_mut().set_duration(need);
        }
        gst::PadProbeReturn::Ok
    });
}

/// Links an audio pad to the muxer: as it is when the muxer takes its (compressed) format,
/// else decoded and re-encoded. Returns `copied` or `re-encoded (...)`.
fn link_audio(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    caps: &gst::Caps,
    mux: &gst::Element,
    container: Container,
) -> Result<String, String> {
    let template = mux
        .pad_template("audio_%u")
        .ok_or("the muxer takes no audio")?;
    let raw = caps
        .structure(0)
        .is_some_and(|s| s.name().as_str() == "audio/x-raw");
    let queue = deep_queue()?;
    let (chain, mode): (Vec<gst::Element>, String) = if !raw && template.caps().can_intersect(caps)
    {
        (vec![queue], "copied".to_string())
    } else {
        let mut chain = vec![queue];
        if !raw {
            chain.push(
                gst::ElementFactory::make("decodebin")
                    .build()
                    .map_err(|e| e.to_string())?,
            );
        }
        let tail: Vec<gst::Element> = ["audioconvert", "audioresample", container.audio_encoder()]
            .iter()
            .map(|f| {
                gst::ElementFactory::make(f)
                    .build()
                    .map_err(|_| format!("GStreamer element '{f}' is missing"))
            })
            .collect::<Result<_, _>>()?;
        let from = caps
            .structure(0)
            .map(|s| s.name().to_string())
            .unwrap_or_default();
        let mode = format!(
            "re-encoded ({from} -> {})",
            if container == Container::Webm {
                "opus"
            } else {
                "aac"
            }
        );
        if raw {
            chain.extend(tail);
            (chain, mode)
        } else {
            // decodebin's pad appears later: link the tail then.
            let decodebin = chain[1].clone();
            let tail_head = tail[0].static_pad("sink").expect("sink");
            pipeline.add_many(&tail).map_err(|e| e.to_string())?;
            gst::Element::link_many(&tail).map_err(|e| e.to_string())?;
            let mux_pad = mux
                .request_pad_simple("audio_%u")
                .ok_or("the muxer has no audio pad")?;
            tail.last()
                .expect("non-empty")
                .static_pad("src")
                .expect("src")
                .link(&mux_pad)
                .map_err(|e| format!("{e:?}"))?;
            decodebin.connect_pad_added(move |_, p| {
                let _ = p.link(&tail_head);
            });
            for e in &tail {
                let _ = e.sync_state_with_parent();
            }
            pipeline.add_many(&chain).map_err(|e| e.to_string())?;
            gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
            for e in &chain {
                e.sync_state_with_parent().map_err(|e| e.to_string())?;
            }
            pad.link(&chain[0].static_pad("sink").expect("sink"))
                .map_err(|e| format!("{e:?}"))?;
            return Ok(mode);
        }
    };
    pipeline.add_many(&chain).map_err(|e| e.to_string())?;
    gst::Element::link_many(&chain).map_err(|e| e.to_string())?;
    let mux_pad = mux
        .request_pad_simple("audio_%u")
        .ok_or("the muxer has no audio pad")?;
    chain
        .last()
        .expect("non-empty")
        .static_pad("src")
        .expect("src")
        .link(&mux_pad)
        .map_err(|e| format!("{e:?}"))?;
    for e in &chain {
        e.sync_state_with_parent().map_err(|e| e.to_string())?;
    }
    pad.link(&chain[0].static_pad("sink").expect("sink"))
        .map_err(|e| format!("{e:?}"))?;
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events after the cut (a decoder's bitrate tags come at any time) must not stop the
    /// stream with an error: the cut once pushed its EOS on the pad it watches, and an EOS
    /// pad fails every sticky event pushed to it after that, so the decoder's next frame
    /// failed with "Internal data stream error".
    #[test]
    fn events_after_the_cut_do_not_stop_the_stream_with_an_error() {
        gst::init().unwrap();
        // upstream (this thread) -> [bin: identity] -> fakesink, the cut on the bin's ghost
        // pad, as on decodebin's in `convert`.
        let inner = gst::ElementFactory::make("identity").build().unwrap();
        let bin = gst::Bin::new();
        bin.add(&inner).unwrap();
        for dir in ["sink", "src"] {
            let ghost = gst::GhostPad::with_target(&inner.static_pad(dir).unwrap()).unwrap();
            bin.add_pad(&ghost).unwrap();
        }
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .unwrap();
        let pipeline = gst::Pipeline::new();
        pipeline.add_many([bin.upcast_ref(), &sink]).unwrap();
        bin.link(&sink).unwrap();
        let cut = Arc::new(Cut {
            start: gst::ClockTime::ZERO,
            end: Mutex::new(None),
            max_frames: Some(3),
            video_frames: AtomicU64::new(0),
            frame_rate: Mutex::new(None),
            known: std::sync::Condvar::new(),
        });
        add_cut_probe(&bin.static_pad("src").unwrap(), cut, true);
        let frames = Arc::new(AtomicU64::new(0));
        let counted = frames.clone();
        sink.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                counted.fetch_add(1, Ordering::SeqCst);
                gst::PadProbeReturn::Ok
            });
        let upstream = gst::Pad::builder(gst::PadDirection::Src).build();
        upstream.set_active(true).unwrap();
        upstream.link(&bin.static_pad("sink").unwrap()).unwrap();
        pipeline.set_state(gst::State::Playing).unwrap();
        assert!(upstream.push_event(gst::event::StreamStart::new("cut")));
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", 4i32)
            .field("height", 4i32)
            .field("framerate", gst::Fraction::new(25, 1))
            .build();
        assert!(upstream.push_event(gst::event::Caps::new(&caps)));
        let segment = gst::FormattedSegment::<gst::ClockTime>::new();
        assert!(upstream.push_event(gst::event::Segment::new(&segment)));
        let mut flows = Vec::new();
        for i in 0..8u64 {
            let mut b = gst::Buffer::from_mut_slice(vec![0u8; 48]);
            let bm = b.get_mut().unwrap();
            bm.set_pts(gst::ClockTime::from_mseconds(40 * i));
            bm.set_duration(gst::ClockTime::from_mseconds(40));
            flows.push(upstream.push(b));
            let mut tags = gst::TagList::new();
            tags.get_mut()
                .unwrap()
                .add::<gst::tags::Bitrate>(&(1000 + i as u32), gst::TagMergeMode::Replace);
            upstream.push_event(gst::event::Tag::new(tags));
        }
        pipeline.set_state(gst::State::Null).unwrap();
        // Kept frames flow; past the cut upstream hears EOS (and stops decoding), never
        // an error.
        assert!(flows[..4].iter().all(|f| f.is_ok()), "{flows:?}");
        assert!(
            flows[4..].iter().all(|f| *f == Err(gst::FlowError::Eos)),
            "{flows:?}"
        );
        assert_eq!(frames.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn encodable_sizes_keep_what_fits_and_round_the_rest_up() {
        use Codec::*;
        use Container::*;
        for (w, h, codec, container, want) in [
            (1920, 1080, H264, Mp4, (1920, 1080)),
            (1919, 1079, H264, Mp4, (1920, 1080)),
            (17, 9, H264, Mkv, (18, 10)),
            (17, 9, H264, Mp4, (30, 16)),
            (17, 9, Vp9, Mkv, (17, 9)),
            (17, 9, Vp9, Webm, (30, 16)),
            (17, 9, Av1, Mkv, (17, 9)),
            (1, 1, H264, Mkv, (2, 2)),
            (1, 1, H264, Mov, (16, 16)),
            (1, 1, Av1, Mkv, (4, 4)),
            (2, 2, H265, Mkv, (16, 16)),
            (7680, 4320, H265, Mp4, (7680, 4320)),
            (1, 500, H264, Mp4, (16, 8000)),
        ] {
            assert_eq!(
                encodable_size(w, h, codec, container),
                want,
                "{w}x{h} {codec:?} {container:?}"
            );
            let (ew, eh) = want;
            assert!(check_size((ew, eh), codec, container).is_ok());
        }
        let e = check_size((17, 9), Codec::H264, Container::Mp4).unwrap_err();
        assert!(
            e.contains("--size 17x9") && e.contains("e.g. --size 30x16"),
            "{e}"
        );
        assert!(check_size((1, 1), Codec::Vp9, Container::Mkv).is_ok());
    }
}
