//! Where live frames come from: a camera (through nokhwa, or GStreamer's `v4l2src`), a
//! synthetic test pattern, or a video file played at its own frame rate.
//!
//! Every source is a [`Capture`]: it says its format and blocks in [`Capture::read`] until
//! the next frame is due, so the live path downstream sees the same real-time stream from
//! a file or a test pattern as from a camera.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;
use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use crate::convert::VideoReader;
use crate::frame::{FrameMut, OwnedFrame, PixelFormat};

/// Size and rate of a source's frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaptureFormat {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: gst::Fraction,
}

impl CaptureFormat {
    /// Time between frames.
    pub fn period(&self) -> Duration {
        frame_period(self.fps)
    }
}

/// Time between frames at `fps` (a second when the rate is unknown).
pub fn frame_period(fps: gst::Fraction) -> Duration {
    if fps.numer() > 0 && fps.denom() > 0 {
        Duration::from_nanos(1_000_000_000 * fps.denom() as u64 / fps.numer() as u64)
    } else {
        Duration::from_secs(1)
    }
}

/// Why a source cannot deliver frames.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CaptureError {
    /// No camera matches what was asked for.
    #[error("no camera found ({looked_for}); to try the live path without one, use --source test")]
    NoCamera {
        /// What was looked for, e.g. `Video4Linux devices /dev/video*`.
        looked_for: String,
    },
    /// The camera exists but cannot be opened or read.
    #[error("camera {name}: {reason}")]
    Camera {
        /// The camera.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A file source cannot be read.
    #[error("{0}")]
    File(String),
    /// Anything else (a frame of the wrong size, GStreamer failing).
    #[error("capture failed: {0}")]
    Failed(String),
}

impl CaptureError {
    /// Whether the error is the user's input's fault (no such camera, an unreadable file).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, CaptureError::NoCamera { .. } | CaptureError::File(_))
    }
}

/// A live source of RGB frames.
pub trait Capture: Send {
    /// Size and rate of the frames [`Capture::read`] gives.
    fn format(&self) -> CaptureFormat;
    /// Blocks until the next frame, writes it into `out` (RGB, [`Capture::format`]'s size)
    /// and returns when it was captured; `None` at the end of the stream (a file's end).
    fn read(&mut self, out: &mut FrameMut<'_>) -> Result<Option<Instant>, CaptureError>;
    /// One line naming the source, e.g. `test pattern 640x360 @ 30 fps`.
    fn describe(&self) -> String;
}

/// Paces frames on the real clock: frame `n` is due at `start + n × period`. Sleeping until
/// each deadline (not for a period after the last frame) keeps the rate exact however long
/// a frame took to make; a source that falls more than a period behind starts counting
/// again from now, rather than bursting to catch up.
#[derive(Debug, Clone)]
pub struct Pacer {
    start: Option<Instant>,
    period: Duration,
    n: u32,
}

impl Pacer {
    /// A pacer for frames `period` apart; the first frame is due at the first
    /// [`Pacer::wait`].
    pub fn new(period: Duration) -> Pacer {
        Pacer {
            start: None,
            period,
            n: 0,
        }
    }

    /// Sleeps until the next frame is due and returns its deadline.
    pub fn wait(&mut self) -> Instant {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let mut due = start + self.period * self.n;
        if now > due + self.period {
            // Fell behind (a slow disk, a stopped process): start counting again.
            self.start = Some(now);
            self.n = 0;
            due = now;
        } else if due > now {
            std::thread::sleep(due - now);
        }
        self.n += 1;
        due
    }
}

fn check_out(out: &FrameMut<'_>, f: CaptureFormat) -> Result<(), CaptureError> {
    if (out.width(), out.height()) != (f.width as usize, f.height as usize)
        || out.format() != PixelFormat::Rgb
    {
        return Err(CaptureError::Failed(format!(
            "the frame given is {}x{} {}, the source makes {}x{} RGB",
            out.width(),
            out.height(),
            out.format(),
            f.width,
            f.height
        )));
    }
    Ok(())
}

/// A moving synthetic picture (drifting colour gradient, a bouncing box, a frame counter)
/// at a fixed rate on the real clock: the live path without a camera.
#[derive(Debug)]
pub struct TestPattern {
    format: CaptureFormat,
    pacer: Pacer,
    frame: u64,
}

impl TestPattern {
    /// A `width`×`height` pattern at `fps`.
    pub fn new(width: u32, height: u32, fps: gst::Fraction) -> TestPattern {
        let format = CaptureFormat { width, height, fps };
        TestPattern {
            pacer: Pacer::new(format.period()),
            format,
            frame: 0,
        }
    }

    /// Draws frame `n` of the pattern.
    pub fn draw(out: &mut FrameMut<'_>, n: u64) {
        let (w, h) = (out.width(), out.height());
        let t = n as usize;
        let bpp = out.format().bytes_per_pixel();
        // A box crossing the picture and back, about two seconds each way at 30 fps.
        let side = (h / 4).max(2);
        let span = w.saturating_sub(side).max(1);
        let phase = (t * 8) % (2 * span);
        let bx = if phase < span {
            phase
        } else {
            2 * span - phase
        };
        let by = h / 2 - side / 2;
        for y in 0..h {
            let row = out.row_mut(y);
            let g = ((y * 255) / h.max(1)) as u8;
            let in_box_row = (by..by + side).contains(&y);
            for x in 0..w {
                let p = &mut row[x * bpp..x * bpp + 3];
                if in_box_row && (bx..bx + side).contains(&x) {
                    p.copy_from_slice(&[250, 250, 240]);
                } else {
                    p[0] = ((x + t * 2) * 255 / w.max(1)) as u8;
                    p[1] = g;
                    p[2] = 128u8.wrapping_add((t as u8).wrapping_mul(3));
                }
            }
        }
        super::overlay::draw_text(out, 4, 4, 2, &format!("{n}"));
    }
}

impl Capture for TestPattern {
    fn format(&self) -> CaptureFormat {
        self.format
    }

    fn read(&mut self, out: &mut FrameMut<'_>) -> Result<Option<Instant>, CaptureError> {
        check_out(out, self.format)?;
        let due = self.pacer.wait();
        TestPattern::draw(out, self.frame);
        self.frame += 1;
        Ok(Some(due))
    }

    fn describe(&self) -> String {
        format!(
            "test pattern {}x{} @ {} fps",
            self.format.width,
            self.format.height,
            fps_text(self.format.fps)
        )
    }
}

fn fps_text(f: gst::Fraction) -> String {
    if f.denom() == 1 {
        f.numer().to_string()
    } else {
        format!("{:.2}", f.numer() as f64 / f.denom().max(1) as f64)
    }
}

/// A video file played at its own frame rate (scaled to a size when asked), ending at its
/// end: a repeatable stand-in for a camera.
pub struct FileSource {
    path: PathBuf,
    reader: VideoReader,
    format: CaptureFormat,
    pacer: Pacer,
    scratch: OwnedFrame,
    /// The first frame, read at open to learn the size and rate.
    pending: bool,
}

impl FileSource {
    /// Opens `path`, scaled to `size` when given.
    pub fn open(path: &Path, size: Option<(u32, u32)>) -> Result<FileSource, CaptureError> {
        let mut reader =
            VideoReader::open(path, size).map_err(|e| CaptureError::File(e.to_string()))?;
        let mut scratch = OwnedFrame::new(1, 1, PixelFormat::Rgb)
            .map_err(|e| CaptureError::Failed(e.to_string()))?;
        if !reader
            .next_frame(&mut scratch)
            .map_err(|e| CaptureError::File(e.to_string()))?
        {
            return Err(CaptureError::File(format!(
                "input {}: no video frames",
                path.display()
            )));
        }
        // A variable-rate file has no nominal rate: play it at 30 fps.
        let fps = reader.frame_rate().unwrap_or(gst::Fraction::new(30, 1));
        let format = CaptureFormat {
            width: scratch.width() as u32,
            height: scratch.height() as u32,
            fps,
        };
        Ok(FileSource {
            path: path.to_path_buf(),
            reader,
            pacer: Pacer::new(format.period()),
            format,
            scratch,
            pending: true,
        })
    }
}

impl Capture for FileSource {
    fn format(&self) -> CaptureFormat {
        self.format
    }

    fn read(&mut self, out: &mut FrameMut<'_>) -> Result<Option<Instant>, CaptureError> {
        check_out(out, self.format)?;
        if !std::mem::take(&mut self.pending)
            && !self
                .reader
                .next_frame(&mut self.scratch)
                .map_err(|e| CaptureError::File(e.to_string()))?
        {
            return Ok(None);
        }
        if (self.scratch.width(), self.scratch.height()) != (out.width(), out.height()) {
            return Err(CaptureError::File(format!(
                "{}: the frame size changed mid-stream",
                self.path.display()
            )));
        }
        let due = self.pacer.wait();
        out.copy_from(&self.scratch.as_frame())
            .map_err(|e| CaptureError::Failed(e.to_string()))?;
        Ok(Some(due))
    }

    fn describe(&self) -> String {
        format!(
            "file {} ({}x{} @ {} fps)",
            self.path.display(),
            self.format.width,
            self.format.height,
            fps_text(self.format.fps)
        )
    }
}

/// Which camera: an index (`0`), a device path (`/dev/video2`) or part of its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraSelector {
    /// The n-th camera (`/dev/videoN` on Linux).
    Index(u32),
    /// A device path or part of the camera's name (case-insensitive).
    Name(String),
}

impl std::str::FromStr for CameraSelector {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().parse::<u32>() {
            Ok(i) => CameraSelector::Index(i),
            Err(_) => CameraSelector::Name(s.trim().to_string()),
        })
    }
}

impl std::fmt::Display for CameraSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CameraSelector::Index(i) => write!(f, "camera {i}"),
            CameraSelector::Name(n) => write!(f, "camera '{n}'"),
        }
    }
}

const V4L2_LOOKED_FOR: &str = "Video4Linux devices /dev/video*";

/// A camera and what it can deliver.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CameraDescription {
    /// Index to pass as `--camera`.
    pub index: String,
    /// Human-readable name.
    pub name: String,
    /// Driver description (often the device path).
    pub description: String,
    /// `MJPEG 1280x720 @ 30,15 fps`, ... (empty when the camera could not be queried).
    pub formats: Vec<String>,
    /// Why the formats could not be listed, if so.
    pub error: Option<String>,
}

/// The cameras on this machine, with their formats. Empty when there are none.
pub fn list_cameras() -> Vec<CameraDescription> {
    let infos = nokhwa::query(ApiBackend::Video4Linux).unwrap_or_default();
    infos
        .into_iter()
        .map(|info| {
            let index = info.index().clone();
            let mut d = CameraDescription {
                index: index.as_string(),
                name: info.human_name(),
                description: info.description().to_string(),
                formats: Vec::new(),
                error: None,
            };
            let opened = nokhwa::Camera::with_backend(
                index,
                RequestedFormat::new::<RgbFormat>(RequestedFormatType::None),
                ApiBackend::Video4Linux,
            );
            match opened {
                Ok(mut cam) => match cam.compatible_fourcc() {
                    Ok(fourccs) => {
                        for fourcc in fourccs {
                            let Ok(by_res) = cam.compatible_list_by_resolution(fourcc) else {
                                continue;
                            };
                            let mut res: Vec<_> = by_res.into_iter().collect();
                            res.sort_by_key(|(r, _)| std::cmp::Reverse((r.width(), r.height())));
                            for (r, mut rates) in res {
                                rates.sort_unstable_by(|a, b| b.cmp(a));
                                let rates: Vec<String> =
                                    rates.iter().map(|f| f.to_string()).collect();
                                d.formats.push(format!(
                                    "{fourcc} {}x{} @ {} fps",
                                    r.width(),
                                    r.height(),
                                    rates.join(",")
                                ));
                            }
                        }
                    }
                    Err(e) => d.error = Some(e.to_string()),
                },
                Err(e) => d.error = Some(e.to_string()),
            }
            d
        })
        .collect()
}

/// A camera read through nokhwa (Video4Linux): MJPEG or YUYV, decoded to RGB.
pub struct NokhwaCamera {
    camera: nokhwa::Camera,
    name: String,
    format: CaptureFormat,
    fourcc: FrameFormat,
    scratch: Vec<u8>,
}

impl NokhwaCamera {
    /// Opens a camera, asking for the closest to `width`×`height` at `fps` (MJPEG first,
    /// as it reaches higher rates over USB, then YUYV); the format it gives may differ.
    pub fn open(
        which: &CameraSelector,
        width: u32,
        height: u32,
        fps: u32,
    ) -> Result<NokhwaCamera, CaptureError> {
        let cameras = nokhwa::query(ApiBackend::Video4Linux).unwrap_or_default();
        if cameras.is_empty() {
            return Err(CaptureError::NoCamera {
                looked_for: V4L2_LOOKED_FOR.into(),
            });
        }
        let info = match which {
            CameraSelector::Index(i) => cameras
                .iter()
                .find(|c| matches!(c.index(), CameraIndex::Index(n) if n == i)),
            CameraSelector::Name(n) => {
                let want = n.to_ascii_lowercase();
                let dev_index = n.strip_prefix("/dev/video").and_then(|s| s.parse().ok());
                cameras.iter().find(|c| {
                    dev_index
                        .is_some_and(|d: u32| matches!(c.index(), CameraIndex::Index(n) if *n == d))
                        || c.human_name().to_ascii_lowercase().contains(&want)
                        || c.description().to_ascii_lowercase() == want
                })
            }
        }
        .ok_or_else(|| {
            let have: Vec<String> = cameras
                .iter()
                .map(|c| format!("{} ({})", c.index().as_string(), c.human_name()))
                .collect();
            CaptureError::NoCamera {
                looked_for: format!("{which} among {}", have.join(", ")),
            }
        })?;
        let name = format!("{} ({})", info.human_name(), info.index().as_string());
        let mut last_err = String::new();
        for fourcc in [FrameFormat::MJPEG, FrameFormat::YUYV] {
            let want = CameraFormat::new(Resolution::new(width, height), fourcc, fps);
            let requested = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(want));
            let opened = nokhwa::Camera::with_backend(
                info.index().clone(),
                requested,
                ApiBackend::Video4Linux,
            )
            .and_then(|mut cam| cam.open_stream().map(|_| cam));
            match opened {
                Ok(camera) => {
                    let f = camera.camera_format();
                    return Ok(NokhwaCamera {
                        format: CaptureFormat {
                            width: f.width(),
                            height: f.height(),
                            fps: gst::Fraction::new(f.frame_rate().max(1) as i32, 1),
                        },
                        fourcc: f.format(),
                        scratch: Vec::new(),
                        camera,
                        name,
                    });
                }
                Err(e) => last_err = e.to_string(),
            }
        }
        Err(CaptureError::Camera {
            name,
            reason: format!("cannot open it in MJPEG or YUYV: {last_err}"),
        })
    }
}

impl Capture for NokhwaCamera {
    fn format(&self) -> CaptureFormat {
        self.format
    }

    fn read(&mut self, out: &mut FrameMut<'_>) -> Result<Option<Instant>, CaptureError> {
        check_out(out, self.format)?;
        let err = |e: nokhwa::NokhwaError| CaptureError::Camera {
            name: self.name.clone(),
            reason: e.to_string(),
        };
        let buffer = self.camera.frame().map_err(err)?;
        // The frame is here: that is its capture time (decoding is part of the latency).
        let captured = Instant::now();
        let (w, h) = (out.width(), out.height());
        let res = buffer.resolution();
        if (res.width() as usize, res.height() as usize) != (w, h) {
            return Err(CaptureError::Camera {
                name: self.name.clone(),
                reason: format!(
                    "gave a {}x{} frame in a {w}x{h} stream",
                    res.width(),
                    res.height()
                ),
            });
        }
        self.scratch.resize(w * h * 3, 0);
        buffer
            .decode_image_to_buffer::<RgbFormat>(&mut self.scratch)
            .map_err(|e| CaptureError::Camera {
                name: self.name.clone(),
                reason: format!("cannot decode a {} frame: {e}", self.fourcc),
            })?;
        for y in 0..h {
            out.row_mut(y)
                .copy_from_slice(&self.scratch[y * w * 3..(y + 1) * w * 3]);
        }
        Ok(Some(captured))
    }

    fn describe(&self) -> String {
        format!(
            "{} {} {}x{} @ {} fps (nokhwa)",
            self.name,
            self.fourcc,
            self.format.width,
            self.format.height,
            fps_text(self.format.fps)
        )
    }
}

/// A camera read through GStreamer (`v4l2src ! videoconvert ! videoscale ! appsink`):
/// GStreamer negotiates the camera's format and decodes it.
pub struct GstCamera {
    device: String,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    format: CaptureFormat,
    first: Option<gst::Sample>,
}

/// How long a camera may take to give its first frame.
const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(5);

impl GstCamera {
    /// Opens the camera (`--camera N` is `/dev/videoN`; a path is taken as is), at
    /// `width`×`height`, at the rate the camera picks.
    pub fn open(
        which: &CameraSelector,
        width: u32,
        height: u32,
    ) -> Result<GstCamera, CaptureError> {
        let device = match which {
            CameraSelector::Index(i) => format!("/dev/video{i}"),
            CameraSelector::Name(n) if n.starts_with('/') => n.clone(),
            CameraSelector::Name(n) => {
                return Err(CaptureError::Failed(format!(
                    "--backend gst takes a camera index or a /dev/video path, not a name ('{n}')"
                )));
            }
        };
        if !Path::new(&device).exists() {
            return Err(CaptureError::NoCamera {
                looked_for: format!("{device} for v4l2src"),
            });
        }
        let failed = |reason: String| CaptureError::Camera {
            name: device.clone(),
            reason,
        };
        let desc = format!(
            "v4l2src name=src ! videoconvert ! videoscale ! \
             video/x-raw,format=RGB,width={width},height={height},pixel-aspect-ratio=1/1 ! \
             appsink name=sink sync=false max-buffers=1 drop=true"
        );
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| failed(e.to_string()))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| failed("not a pipeline".into()))?;
        let src = pipeline.by_name("src").expect("named in the description");
        src.set_property("device", &device);
        let sink = pipeline
            .by_name("sink")
            .expect("named in the description")
            .downcast::<gst_app::AppSink>()
            .map_err(|_| failed("appsink missing".into()))?;
        let bus_error = |pipeline: &gst::Pipeline| {
            pipeline
                .bus()
                .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
                .and_then(|m| match m.view() {
                    gst::MessageView::Error(e) => Some(e.error().to_string()),
                    _ => None,
                })
                .unwrap_or_else(|| "cannot start".into())
        };
        if pipeline.set_state(gst::State::Playing).is_err() {
            let e = bus_error(&pipeline);
            let _ = pipeline.set_state(gst::State::Null);
            return Err(failed(e));
        }
        let Some(first) = sink.try_pull_sample(gst::ClockTime::from_nseconds(
            FIRST_FRAME_TIMEOUT.as_nanos() as u64,
        )) else {
            let e = bus_error(&pipeline);
            let _ = pipeline.set_state(gst::State::Null);
            return Err(failed(format!("no frame in 5 s: {e}")));
        };
        let fps = first
            .caps()
            .and_then(|c| c.structure(0)?.get::<gst::Fraction>("framerate").ok())
            .filter(|f| f.numer() > 0)
            .unwrap_or(gst::Fraction::new(30, 1));
        Ok(GstCamera {
            device,
            pipeline,
            sink,
            format: CaptureFormat { width, height, fps },
            first: Some(first),
        })
    }
}

impl Capture for GstCamera {
    fn format(&self) -> CaptureFormat {
        self.format
    }

    fn read(&mut self, out: &mut FrameMut<'_>) -> Result<Option<Instant>, CaptureError> {
        check_out(out, self.format)?;
        let sample = match self.first.take() {
            Some(s) => s,
            None => match self.sink.try_pull_sample(gst::ClockTime::from_seconds(5)) {
                Some(s) => s,
                None if self.sink.is_eos() => return Ok(None),
                None => {
                    return Err(CaptureError::Camera {
                        name: self.device.clone(),
                        reason: "no frame for 5 s".into(),
                    });
                }
            },
        };
        let captured = Instant::now();
        let failed = |reason: &str| CaptureError::Camera {
            name: self.device.clone(),
            reason: reason.to_string(),
        };
        let info = sample
            .caps()
            .and_then(|c| gst_video::VideoInfo::from_caps(c).ok())
            .ok_or_else(|| failed("frame without caps"))?;
        let buffer = sample.buffer().ok_or_else(|| failed("empty sample"))?;
        let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|_| failed("cannot map a frame"))?;
        let stride = vf.plane_stride()[0] as usize;
        let data = vf.plane_data(0).map_err(|_| failed("cannot map a frame"))?;
        let w3 = out.width() * 3;
        for y in 0..out.height() {
            out.row_mut(y)
                .copy_from_slice(&data[y * stride..y * stride + w3]);
        }
        Ok(Some(captured))
    }

    fn describe(&self) -> String {
        format!(
            "{} {}x{} @ {} fps (v4l2src)",
            self.device,
            self.format.width,
            self.format.height,
            fps_text(self.format.fps)
        )
    }
}

impl Drop for GstCamera {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_keeps_the_rate_on_the_real_clock_without_drift() {
        let period = Duration::from_millis(20);
        let mut p = Pacer::new(period);
        let t0 = Instant::now();
        let first = p.wait();
        let mut deadlines = vec![first];
        for i in 1..15u32 {
            // Work of varying length between frames must not shift the schedule.
            std::thread::sleep(Duration::from_millis((i % 3) as u64 * 5));
            deadlines.push(p.wait());
        }
        for (i, d) in deadlines.iter().enumerate() {
            assert_eq!(*d - first, period * i as u32, "deadline {i} on the grid");
        }
        let elapsed = t0.elapsed();
        assert!(elapsed >= period * 14, "{elapsed:?}: never early");
        assert!(
            elapsed < period * 14 + Duration::from_millis(150),
            "{elapsed:?}"
        );
    }

    #[test]
    fn pacer_starts_again_after_falling_behind() {
        let period = Duration::from_millis(10);
        let mut p = Pacer::new(period);
        p.wait();
        std::thread::sleep(Duration::from_millis(60));
        let late = p.wait();
        // No burst of six frames to catch up: the next one is a period after the late one.
        let next = p.wait();
        assert_eq!(next - late, period);
        assert!(Instant::now() >= next);
    }

    #[test]
    fn test_pattern_runs_at_its_rate_and_moves() {
        let mut src = TestPattern::new(64, 36, gst::Fraction::new(50, 1));
        let mut a = OwnedFrame::new(64, 36, PixelFormat::Rgb).unwrap();
        let mut b = OwnedFrame::new(64, 36, PixelFormat::Rgb).unwrap();
        let t0 = Instant::now();
        let first = src.read(&mut a.as_frame_mut()).unwrap().unwrap();
        let mut last = first;
        for _ in 0..10 {
            last = src.read(&mut b.as_frame_mut()).unwrap().unwrap();
        }
        assert_eq!(last - first, Duration::from_millis(200));
        assert!(t0.elapsed() >= Duration::from_millis(200));
        assert_ne!(a.data(), b.data(), "the picture moves");
        let mut wrong = OwnedFrame::new(32, 36, PixelFormat::Rgb).unwrap();
        assert!(src.read(&mut wrong.as_frame_mut()).is_err());
        assert_eq!(src.describe(), "test pattern 64x36 @ 50 fps");
    }

    #[test]
    fn camera_selector_parses_indices_paths_and_names() {
        assert_eq!(
            "2".parse::<CameraSelector>().unwrap(),
            CameraSelector::Index(2)
        );
        assert_eq!(
            "/dev/video4".parse::<CameraSelector>().unwrap(),
            CameraSelector::Name("/dev/video4".into())
        );
        assert_eq!(
            "Logitech".parse::<CameraSelector>().unwrap(),
            CameraSelector::Name("Logitech".into())
        );
    }
}
