//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(data().join("models/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// (width, height, RGB bytes) of a picture.
pub fn load_rgb(path: &Path) -> (usize, usize, Vec<u8>) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_rgb8();
    (img.width() as usize, img.height() as usize, img.into_raw())
}

/// Mean absolute difference in 8-bit levels.
pub fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .sum::<f64>()
        / a.len() as f64
}

/// The `--extra-input` values of a manifest model entry, as NAME=V1,V2 strings.
pub fn extra_inputs(entry: &serde_json::Value) -> Vec<String> {
    entry["convention"]["extra_inputs"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let vals: Vec<String> = v
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap().to_string())
                .collect();
            format!("{k}={}", vals.join(","))
        })
        .collect()
}

/// Plays `pipeline` until EOS or an error, then sets it to NULL. Panics when neither comes
/// within `secs` seconds; `Err` carries the error message.
pub fn play_to_end(pipeline: &gst::Element, secs: u64) -> Result<(), String> {
    use gst::prelude::*;
    pipeline.set_state(gst::State::Playing).unwrap();
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(secs),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("the pipeline neither finished nor failed in time");
    pipeline.set_state(gst::State::Null).unwrap();
    match msg.view() {
        gst::MessageView::Eos(_) => Ok(()),
        _ => Err(format!("{msg:?}")),
    }
}

/// The `stylize` binary of this build.
pub fn stylize() -> assert_cmd::Command {
    assert_cmd::Command::cargo_bin("stylize").unwrap()
}

/// Registers the `styletransfer` element (and initialises GStreamer).
pub fn init() {
    stylize::element::register_static().unwrap();
}

/// The CPU provider with one thread: deterministic and quick for small test models.
pub fn cpu() -> stylize::engine::EngineOptions {
    stylize::engine::EngineOptions {
        provider: stylize::engine::Provider::Cpu,
        threads: 1,
        ..Default::default()
    }
}
