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
