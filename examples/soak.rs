//! Soak: many frames through `styletransfer` in one pipeline, reporting resident memory,
//! threads and open file descriptors early in the run and at the end (JSON on stdout).
//!
//! ```text
//! cargo run --release --example soak -- [FRAMES] [MODEL] [TEMPORAL]
//! cargo run --release --example soak -- 100000 tests/data/models/gan_pm1_mult8.onnx flow
//! ```
//!
//! 320x240 RGBx test pattern (a moving ball), CPU provider, one thread, ultrafast flow.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use gst::prelude::*;

mod common;
use common::Usage;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let frames: u64 = args.next().map_or(Ok(100_000), |v| v.parse())?;
    let model = args
        .next()
        .unwrap_or_else(|| "tests/data/models/gan_pm1_mult8.onnx".into());
    let temporal = args.next().unwrap_or_else(|| "flow".into());
    stylize::element::register_static()?;
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! \
         video/x-raw,width=320,height=240,format=RGBx,framerate=30/1 ! \
         styletransfer provider=cpu threads=1 temporal={temporal} flow-preset=ultrafast name=st ! \
         fakesink sync=false name=out"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    pipeline
        .by_name("st")
        .ok_or("no styletransfer")?
        .set_property("model", model.as_str());
    let seen = Arc::new(AtomicU64::new(0));
    // Usage once the stream has settled (after the first 1,000 frames).
    let early = Arc::new(std::sync::Mutex::new(None));
    let (s2, e2) = (seen.clone(), early.clone());
    pipeline
        .by_name("out")
        .ok_or("no sink")?
        .static_pad("sink")
        .ok_or("no sink pad")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if s2.fetch_add(1, Ordering::Relaxed) + 1 == 1_000.min(frames) {
                *e2.lock().unwrap() = Some(Usage::now());
            }
            gst::PadProbeReturn::Ok
        });
    let start = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let mut error = None;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                error = Some(e.error().to_string());
                break;
            }
            _ => {}
        }
    }
    let end = Usage::now();
    pipeline.set_state(gst::State::Null)?;
    let after_null = Usage::now();
    let early = early.lock().unwrap().unwrap_or_default();
    let out = serde_json::json!({
        "frames_in": frames,
        "frames_out": seen.load(Ordering::Relaxed),
        "seconds": start.elapsed().as_secs_f64(),
        "temporal": temporal,
        "model": model,
        "rss_mb_at_1000": early.rss_mb,
        "rss_mb_at_end": end.rss_mb,
        "rss_growth_mb": end.rss_mb - early.rss_mb,
        "threads_at_1000": early.threads,
        "threads_at_end": end.threads,
        "threads_after_null": after_null.threads,
        "fds_at_1000": early.fds,
        "fds_at_end": end.fds,
        "fds_after_null": after_null.fds,
        "error": error,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
