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

/// Resident memory in MB, threads and open file descriptors of this process.
fn usage() -> (f64, usize, usize) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let count = |dir: &str| std::fs::read_dir(dir).map_or(0, |d| d.count());
    (
        rss_kb / 1024.0,
        count("/proc/self/task"),
        count("/proc/self/fd"),
    )
}

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
                *e2.lock().unwrap() = Some(usage());
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
    let end = usage();
    pipeline.set_state(gst::State::Null)?;
    let after_null = usage();
    let early = early.lock().unwrap().unwrap_or((0.0, 0, 0));
    let out = serde_json::json!({
        "frames_in": frames,
        "frames_out": seen.load(Ordering::Relaxed),
        "seconds": start.elapsed().as_secs_f64(),
        "temporal": temporal,
        "model": model,
        "rss_mb_at_1000": early.0,
        "rss_mb_at_end": end.0,
        "rss_growth_mb": end.0 - early.0,
        "threads_at_1000": early.1,
        "threads_at_end": end.1,
        "threads_after_null": after_null.1,
        "fds_at_1000": early.2,
        "fds_at_end": end.2,
        "fds_after_null": after_null.2,
        "error": error,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
