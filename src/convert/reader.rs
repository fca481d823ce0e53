//! Reading decoded video frames, one at a time, as packed RGB.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gst::prelude::*;
use gst_video::prelude::*;

use super::ConvertError;
use crate::frame::{OwnedFrame, PixelFormat};

/// Decodes a video file to RGB frames (rotation metadata applied, optionally scaled).
///
/// ```no_run
/// # use stylize::convert::VideoReader;
/// # use stylize::frame::{OwnedFrame, PixelFormat};
/// let mut reader = VideoReader::open("in.mp4".as_ref(), None)?;
/// let mut frame = OwnedFrame::new(1, 1, PixelFormat::Rgb).unwrap();
/// while reader.next_frame(&mut frame)? {
///     println!("{}x{}", frame.width(), frame.height());
/// }
/// # Ok::<(), stylize::convert::ConvertError>(())
/// ```
pub struct VideoReader {
    path: PathBuf,
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    frame_rate: Option<gst::Fraction>,
}

/// No frame for this long means the decoder is stuck (a broken file).
const STALL: Duration = Duration::from_secs(10);

impl VideoReader {
    /// Opens `path`; frames are scaled to `size` when given.
    pub fn open(path: &Path, size: Option<(u32, u32)>) -> Result<Self, ConvertError> {
        let input_err = |reason: String| ConvertError::Input {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_file() {
            return Err(input_err("no such file".into()));
        }
        crate::element::register_static().map_err(|e| ConvertError::Failed(e.to_string()))?;
        let caps = match size {
            Some((w, h)) => {
                format!("video/x-raw,format=RGB,width={w},height={h},pixel-aspect-ratio=1/1")
            }
            None => "video/x-raw,format=RGB".to_string(),
        };
        let desc = format!(
            "filesrc name=src ! decodebin ! videoflip video-direction=auto ! videoconvert ! \
             videoscale ! {caps} ! appsink name=sink sync=false max-buffers=4"
        );
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| ConvertError::Failed(format!("cannot build the decoder: {e}")))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| ConvertError::Failed("not a pipeline".into()))?;
        let src = pipeline.by_name("src").expect("named in the description");
        src.set_property("location", path.to_string_lossy().as_ref());
        let sink = pipeline
            .by_name("sink")
            .expect("named in the description")
            .downcast::<gst_app::AppSink>()
            .map_err(|_| ConvertError::Failed("appsink missing".into()))?;
        pipeline
            .set_state(gst::State::Playing)
            .map_err(|_| input_err(bus_error(&pipeline).unwrap_or("cannot be read".into())))?;
        Ok(Self {
            path: path.to_path_buf(),
            pipeline,
            sink,
            frame_rate: None,
        })
    }

    /// The video's frame rate, known once a frame has been read (`None` before, or for a
    /// variable-rate stream).
    pub fn frame_rate(&self) -> Option<gst::Fraction> {
        self.frame_rate
    }

    /// Reads the next frame into `frame` (reshaped as needed); `false` at the end.
    pub fn next_frame(&mut self, frame: &mut OwnedFrame) -> Result<bool, ConvertError> {
        let input_err = |reason: String| ConvertError::Input {
            path: self.path.clone(),
            reason,
        };
        let started = std::time::Instant::now();
        let sample = loop {
            // Short waits, so that a decoding error on the bus is reported at once.
            if let Some(s) = self
                .sink
                .try_pull_sample(gst::ClockTime::from_mseconds(100))
            {
                break s;
            }
            if self.sink.is_eos() {
                return Ok(false);
            }
            if let Some(e) = bus_error(&self.pipeline) {
                return Err(input_err(e));
            }
            if started.elapsed() > STALL {
                return Err(input_err("no video frames (not a video, or broken)".into()));
            }
        };
        let caps = sample
            .caps()
            .ok_or_else(|| input_err("frame without caps".into()))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| input_err(e.to_string()))?;
        let fps = info.fps();
        self.frame_rate = (fps.numer() > 0 && fps.denom() > 0).then_some(fps);
        let buffer = sample
            .buffer()
            .ok_or_else(|| input_err("empty sample".into()))?;
        let vf = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|_| input_err("cannot map a frame".into()))?;
        let (w, h) = (info.width() as usize, info.height() as usize);
        if (frame.width(), frame.height(), frame.format()) != (w, h, PixelFormat::Rgb) {
            frame
                .reshape(w, h, PixelFormat::Rgb)
                .map_err(|e| input_err(e.to_string()))?;
        }
        let stride = vf.plane_stride()[0] as usize;
        let data = vf.plane_data(0).map_err(|e| input_err(e.to_string()))?;
        let mut dst = frame.as_frame_mut();
        for y in 0..h {
            dst.row_mut(y)
                .copy_from_slice(&data[y * stride..y * stride + w * 3]);
        }
        Ok(true)
    }
}

impl Drop for VideoReader {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// The first error message on the bus, if any.
fn bus_error(pipeline: &gst::Pipeline) -> Option<String> {
    let bus = pipeline.bus()?;
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Error(e) = msg.view() {
            return Some(e.error().to_string());
        }
    }
    None
}
