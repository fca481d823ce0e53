//! The `styletransfer` GStreamer element.
//!
//! ```text
//! gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! \
//!     styletransfer model=models/starry_night.onnx ! videoconvert ! autovideosink
//! ```
//!
//! The element lives in the library so that the CLI, the tests and Rust applications can
//! register it statically ([`register_static`]); `plugins/gst-styletransfer` wraps it as the
//! `libgststyletransfer.so` plugin.

mod imp;

use gst::glib;
use gst::prelude::*;

glib::wrapper! {
    /// Applies an ONNX style-transfer generator to video frames.
    pub struct StyleTransfer(ObjectSubclass<imp::StyleTransfer>)
        @extends gst_video::VideoFilter, gst_base::BaseTransform, gst::Element, gst::Object;
}

/// How successive stylised frames are blended over time.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstStyleTransferTemporal")]
pub enum Temporal {
    /// Each frame on its own.
    #[default]
    #[enum_value(name = "None: each frame stylised on its own", nick = "none")]
    None = 0,
    /// Exponential moving average with the previous output.
    #[enum_value(
        name = "EMA: blend with the previous output by temporal-weight",
        nick = "ema"
    )]
    Ema = 1,
    /// The previous output moved along the optical flow of the input, blended where the
    /// motion can be trusted.
    #[enum_value(
        name = "Flow: blend with the previous output moved along the scene's motion",
        nick = "flow"
    )]
    Flow = 2,
}

impl From<Temporal> for crate::temporal::TemporalMode {
    fn from(t: Temporal) -> Self {
        match t {
            Temporal::None => crate::temporal::TemporalMode::None,
            Temporal::Ema => crate::temporal::TemporalMode::Ema,
            Temporal::Flow => crate::temporal::TemporalMode::Flow,
        }
    }
}

/// How a result computed at `inference-scale` < 1 is brought back to the frame's size.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstStyleTransferUpsampler")]
pub enum UpsamplerProp {
    /// Guided by the full-resolution input: its edges stay sharp.
    #[default]
    #[enum_value(name = "Guided: keep the input's edges sharp", nick = "guided")]
    Guided = 0,
    /// Plain bilinear.
    #[enum_value(name = "Bilinear: fastest, softer edges", nick = "bilinear")]
    Bilinear = 1,
}

impl From<UpsamplerProp> for crate::Upsampler {
    fn from(u: UpsamplerProp) -> Self {
        match u {
            UpsamplerProp::Guided => crate::Upsampler::Guided,
            UpsamplerProp::Bilinear => crate::Upsampler::Bilinear,
        }
    }
}

/// Speed/accuracy preset of the optical flow (`temporal=flow`).
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstStyleTransferFlowPreset")]
pub enum FlowPresetProp {
    /// Fastest.
    #[enum_value(name = "Ultrafast", nick = "ultrafast")]
    Ultrafast = 0,
    /// Faster than medium, less accurate.
    #[enum_value(name = "Fast", nick = "fast")]
    Fast = 1,
    /// Most accurate; the default.
    #[default]
    #[enum_value(name = "Medium", nick = "medium")]
    Medium = 2,
}

impl From<FlowPresetProp> for crate::temporal::FlowPreset {
    fn from(p: FlowPresetProp) -> Self {
        match p {
            FlowPresetProp::Ultrafast => crate::temporal::FlowPreset::UltraFast,
            FlowPresetProp::Fast => crate::temporal::FlowPreset::Fast,
            FlowPresetProp::Medium => crate::temporal::FlowPreset::Medium,
        }
    }
}

/// The execution provider property.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, glib::Enum, Default)]
#[repr(u32)]
#[enum_type(name = "GstStyleTransferProvider")]
pub enum ProviderProp {
    /// TensorRT, else CUDA, else CPU.
    #[default]
    #[enum_value(name = "Auto: TensorRT, then CUDA, then CPU", nick = "auto")]
    Auto = 0,
    /// TensorRT only.
    #[enum_value(name = "TensorRT (strict)", nick = "tensorrt")]
    TensorRt = 1,
    /// CUDA only.
    #[enum_value(name = "CUDA (strict)", nick = "cuda")]
    Cuda = 2,
    /// CPU only.
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 3,
}

impl From<ProviderProp> for crate::Provider {
    fn from(p: ProviderProp) -> Self {
        match p {
            ProviderProp::Auto => crate::Provider::Auto,
            ProviderProp::TensorRt => crate::Provider::TensorRt,
            ProviderProp::Cuda => crate::Provider::Cuda,
            ProviderProp::Cpu => crate::Provider::Cpu,
        }
    }
}

/// Registers the element with a plugin, or statically when `plugin` is `None`.
pub fn register(plugin: Option<&gst::Plugin>) -> Result<(), glib::BoolError> {
    gst::Element::register(
        plugin,
        "styletransfer",
        gst::Rank::NONE,
        StyleTransfer::static_type(),
    )
}

/// Initialises GStreamer (if needed) and registers `styletransfer` in this process, so that
/// `gst::ElementFactory::make("styletransfer")` and `gst::parse::launch` find it without the
/// plugin file. Safe to call more than once.
pub fn register_static() -> Result<(), glib::BoolError> {
    gst::init().map_err(|e| glib::bool_error!("GStreamer cannot start: {e}"))?;
    if gst::ElementFactory::find("styletransfer").is_some() {
        return Ok(());
    }
    register(None)
}

/// The colours of an I420 stream, from its caps (BT.601 where they say nothing else that
/// applies).
pub(crate) fn yuv_matrix(info: &gst_video::VideoInfo) -> crate::frame::YuvMatrix {
    use gst_video::{VideoColorMatrix, VideoColorRange};
    let c = info.colorimetry();
    let (kr, kb) = match c.matrix() {
        VideoColorMatrix::Bt709 => (0.2126, 0.0722),
        VideoColorMatrix::Bt2020 => (0.2627, 0.0593),
        VideoColorMatrix::Smpte240m => (0.212, 0.087),
        VideoColorMatrix::Fcc => (0.30, 0.11),
        _ => (0.299, 0.114),
    };
    crate::frame::YuvMatrix {
        kr,
        kb,
        full_range: c.range() == VideoColorRange::Range0_255,
    }
}
