//! `libgststyletransfer.so`: the GStreamer plugin that registers the `styletransfer` element,
//! which lives in the `stylize` library.
//!
//! ```text
//! GST_PLUGIN_PATH=target/release gst-inspect-1.0 styletransfer
//! ```

use gst::glib;

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    stylize::element::register(Some(plugin))
}

gst::plugin_define!(
    styletransfer,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    // GStreamer's name for the MIT licence.
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
