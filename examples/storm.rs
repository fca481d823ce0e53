//! Storms: the `styletransfer` element started and stopped, re-modelled and multiplied far
//! more often than a real stream would, each storm printing its figures as JSON on stdout
//! (exit status 1 when a check fails, 3 when something hangs). Run by hand, in release mode
//! (`scripts/reliability/storms.sh` runs them all); results in docs/RELIABILITY.md.
//!
//! ```text
//! cargo run --release --example storm -- cycles [N=1000]     NULL <-> PLAYING N times
//! cargo run --release --example storm -- swaps [N=1000]      N model swaps while playing
//! cargo run --release --example storm -- tee [FRAMES=300]    4 elements behind a tee, then
//!                                                            two such pipelines at once
//! cargo run --release --example storm -- count-frames FILE   decode FILE, print its frames
//! ```
//!
//! Models: the small test models under tests/data/models (CPU provider, one thread each).
//! `STORM_TIMEOUT` (seconds, default 30): how long any one step may take before the storm
//! is reported as hung.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gst::prelude::*;
use serde_json::json;

mod common;
use common::Usage;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const MODEL_A: &str = "tests/data/models/gan_pm1_mult8.onnx";
const MODEL_B: &str = "tests/data/models/nhwc_unit_fp16.onnx";

fn step_timeout() -> Duration {
    let secs = std::env::var("STORM_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// Watches for progress: when `step` has not changed for the step timeout, prints a hang
/// report naming the step and exits with status 3.
struct Watchdog {
    step: Arc<Mutex<(String, Instant)>>,
}

impl Watchdog {
    fn start(storm: &'static str) -> Watchdog {
        let step = Arc::new(Mutex::new(("start".to_string(), Instant::now())));
        let s = step.clone();
        let limit = step_timeout();
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(200));
                let (what, since) = s.lock().unwrap().clone();
                if since.elapsed() > limit {
                    let report = json!({
                        "storm": storm,
                        "hang": what,
                        "seconds_without_progress": since.elapsed().as_secs_f64(),
                        "usage": Usage::now().json(),
                    });
                    println!("{}", serde_json::to_string_pretty(&report).unwrap());
                    eprintln!("storm {storm}: HANG at {what}");
                    std::process::exit(3);
                }
            }
        });
        Watchdog { step }
    }

    fn at(&self, what: impl Into<String>) {
        *self.step.lock().unwrap() = (what.into(), Instant::now());
    }
}

fn pipeline(desc: &str) -> Result<gst::Pipeline> {
    Ok(gst::parse::launch(desc)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?)
}

fn by_name(p: &gst::Pipeline, name: &str) -> Result<gst::Element> {
    Ok(p.by_name(name)
        .ok_or_else(|| format!("no element {name}"))?)
}

/// Counts the buffers through a pad.
fn count_buffers(pad: &gst::Pad) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        c.fetch_add(1, Ordering::SeqCst);
        gst::PadProbeReturn::Ok
    });
    n
}

/// Pops the bus until EOS (`Ok`) or an error (`Err`), feeding the watchdog.
fn wait_eos(p: &gst::Pipeline, dog: &Watchdog, what: &str) -> Result<()> {
    dog.at(format!("{what}: waiting for EOS"));
    let bus = p.bus().ok_or("no bus")?;
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(3600),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .ok_or("no EOS")?;
    match msg.view() {
        gst::MessageView::Eos(_) => Ok(()),
        gst::MessageView::Error(e) => {
            Err(format!("{what}: {} ({:?})", e.error(), e.debug()).into())
        }
        _ => unreachable!(),
    }
}

/// (a) NULL -> PLAYING -> NULL, `n` times, frames flowing in every cycle.
fn cycles(n: u64) -> Result<bool> {
    let dog = Watchdog::start("cycles");
    let p = pipeline(&format!(
        "videotestsrc pattern=ball ! video/x-raw,width=64,height=48,format=RGB ! \
         styletransfer name=st provider=cpu threads=1 model={MODEL_A} ! fakesink"
    ))?;
    let st = by_name(&p, "st")?;
    let before = Usage::now().json();
    let (mut first, mut warm) = (before.clone(), before.clone());
    let t = Instant::now();
    let mut worst = Duration::ZERO;
    for i in 0..n {
        match i {
            1 => first = Usage::now().json(),
            10 => warm = Usage::now().json(),
            _ => {}
        }
        let c = Instant::now();
        dog.at(format!("cycle {i}: to PLAYING"));
        p.set_state(gst::State::Playing)?;
        let (r, state, _) = p.state(gst::ClockTime::from_seconds(60));
        if r.is_err() || state != gst::State::Playing {
            return Err(format!("cycle {i}: {r:?} {state:?}").into());
        }
        dog.at(format!("cycle {i}: waiting for a frame"));
        while st.property::<u64>("frames-processed") == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        dog.at(format!("cycle {i}: to NULL"));
        p.set_state(gst::State::Null)?;
        worst = worst.max(c.elapsed());
    }
    let secs = t.elapsed().as_secs_f64();
    drop(p);
    let report = json!({
        "storm": "cycles",
        "cycles": n,
        "seconds": secs,
        "mean_cycle_ms": secs * 1000.0 / n as f64,
        "worst_cycle_ms": worst.as_secs_f64() * 1000.0,
        "usage_before_first_start": before,
        "usage_after_1_cycle": first,
        "usage_after_10_cycles": warm,
        "usage_end": Usage::now().json(),
        "hang": null,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(true)
}

/// (b) `n` model swaps while playing; every frame that goes in comes out.
fn swaps(n: u64) -> Result<bool> {
    let dog = Watchdog::start("swaps");
    let p = pipeline(&format!(
        "videotestsrc pattern=ball ! \
         video/x-raw,width=64,height=48,format=RGBx,framerate=30/1 ! \
         styletransfer name=st provider=cpu threads=1 drop-frames=false model={MODEL_A} ! \
         fakesink name=out sync=false"
    ))?;
    let st = by_name(&p, "st")?;
    let frames_in = count_buffers(&st.static_pad("sink").ok_or("no sink pad")?);
    let frames_out = count_buffers(&by_name(&p, "out")?.static_pad("sink").ok_or("no pad")?);
    let models = [
        std::fs::canonicalize(MODEL_A)?,
        std::fs::canonicalize(MODEL_B)?,
    ];
    let start = Usage::now().json();
    let t = Instant::now();
    dog.at("to PLAYING");
    p.set_state(gst::State::Playing)?;
    let mut fewest_between = u64::MAX;
    let mut swap_ms = Vec::with_capacity(n as usize);
    let mut last_out = 0;
    let mut warm = start.clone();
    for i in 0..n {
        if i == 10 {
            warm = Usage::now().json();
        }
        let want = &models[(i as usize + 1) % 2];
        let s = Instant::now();
        dog.at(format!("swap {i}: waiting for {}", want.display()));
        st.set_property("model", want.display().to_string());
        loop {
            if st.property::<String>("active-model") == want.display().to_string() {
                break;
            }
            if let Some(msg) = p
                .bus()
                .and_then(|b| b.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning]))
            {
                return Err(format!("swap {i}: {msg:?}").into());
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        swap_ms.push(s.elapsed().as_secs_f64() * 1000.0);
        let out = frames_out.load(Ordering::SeqCst);
        fewest_between = fewest_between.min(out - last_out);
        last_out = out;
    }
    dog.at("EOS after the swaps");
    p.send_event(gst::event::Eos::new());
    wait_eos(&p, &dog, "swaps")?;
    let end = Usage::now().json();
    p.set_state(gst::State::Null)?;
    let (fi, fo) = (
        frames_in.load(Ordering::SeqCst),
        frames_out.load(Ordering::SeqCst),
    );
    swap_ms.sort_by(f64::total_cmp);
    let report = json!({
        "storm": "swaps",
        "swaps": n,
        "seconds": t.elapsed().as_secs_f64(),
        "frames_in": fi,
        "frames_out": fo,
        "every_frame_accounted_for": fi == fo,
        "fewest_frames_between_swaps": fewest_between,
        "swap_ms_median": swap_ms[swap_ms.len() / 2],
        "swap_ms_max": swap_ms.last(),
        "mean_frames_between_swaps": fo as f64 / n as f64,
        "usage_before_playing": start,
        "usage_after_10_swaps": warm,
        "usage_end": end,
        "usage_after_null": Usage::now().json(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(fi == fo)
}

/// Output frames of one sink: (pts, bytes).
type Frames = Arc<Mutex<Vec<(Option<gst::ClockTime>, Vec<u8>)>>>;

fn collect(sink: &gst::Element) -> Result<Frames> {
    let frames: Frames = Arc::default();
    let f = frames.clone();
    sink.static_pad("sink").ok_or("no sink pad")?.add_probe(
        gst::PadProbeType::BUFFER,
        move |_, info| {
            if let Some(b) = info.buffer() {
                let m = b.map_readable().expect("readable buffer");
                f.lock().unwrap().push((b.pts(), m.to_vec()));
            }
            gst::PadProbeReturn::Ok
        },
    );
    Ok(frames)
}

const SOURCE: &str = "videotestsrc pattern=ball num-buffers={frames} ! \
     video/x-raw,width=128,height=96,format=RGBx,framerate=30/1";

fn settings(model: &str, parallel: u32) -> String {
    format!(
        "styletransfer provider=cpu threads=1 drop-frames=false temporal=flow \
         flow-preset=ultrafast parallel-frames={parallel} model={model}"
    )
}

/// One element: the reference output.
fn reference(
    model: &str,
    frames: u64,
    dog: &Watchdog,
) -> Result<Vec<(Option<gst::ClockTime>, Vec<u8>)>> {
    let p = pipeline(&format!(
        "{} ! {} ! fakesink name=out sync=false",
        SOURCE.replace("{frames}", &frames.to_string()),
        settings(model, 1)
    ))?;
    let out = collect(&by_name(&p, "out")?)?;
    p.set_state(gst::State::Playing)?;
    wait_eos(&p, dog, "reference")?;
    p.set_state(gst::State::Null)?;
    let v = std::mem::take(&mut *out.lock().unwrap());
    Ok(v)
}

/// `branches` elements behind a tee (parallel-frames 1 and 2 in turn): a pipeline and the
/// sinks' frames.
fn tee_pipeline(model: &str, frames: u64, branches: usize) -> Result<(gst::Pipeline, Vec<Frames>)> {
    let mut desc = format!(
        "{} ! tee name=t",
        SOURCE.replace("{frames}", &frames.to_string())
    );
    for i in 0..branches {
        desc += &format!(
            " t. ! queue ! {} ! fakesink name=out{i} sync=false",
            settings(model, 1 + (i % 2) as u32)
        );
    }
    let p = pipeline(&desc)?;
    let sinks = (0..branches)
        .map(|i| collect(&by_name(&p, &format!("out{i}"))?))
        .collect::<Result<Vec<_>>>()?;
    Ok((p, sinks))
}

/// Frames of each branch that differ from the reference (count, pts or bytes).
fn compare(
    name: &str,
    reference: &[(Option<gst::ClockTime>, Vec<u8>)],
    sinks: &[Frames],
) -> serde_json::Value {
    let branches: Vec<serde_json::Value> = sinks
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let got = s.lock().unwrap();
            let differing = got.iter().zip(reference).filter(|(a, b)| a != b).count();
            json!({
                "branch": i,
                "frames": got.len(),
                "frames_differing": differing,
                "bit_exact": got.len() == reference.len() && differing == 0,
            })
        })
        .collect();
    json!({ "pipeline": name, "branches": branches })
}

/// (c) Four elements behind a tee, compared with one element; then two such pipelines (two
/// models) in this process at once.
fn tee(frames: u64) -> Result<bool> {
    let dog = Watchdog::start("tee");
    let start = Usage::now().json();
    let t = Instant::now();
    dog.at("reference A");
    let ref_a = reference(MODEL_A, frames, &dog)?;
    dog.at("reference B");
    let ref_b = reference(MODEL_B, frames, &dog)?;
    let mut results = Vec::new();

    dog.at("one pipeline, 4 branches");
    let (p, sinks) = tee_pipeline(MODEL_A, frames, 4)?;
    p.set_state(gst::State::Playing)?;
    wait_eos(&p, &dog, "tee")?;
    p.set_state(gst::State::Null)?;
    results.push(compare("tee x4 (model A)", &ref_a, &sinks));

    dog.at("two pipelines at once, 4 branches each");
    let (pa, sa) = tee_pipeline(MODEL_A, frames, 4)?;
    let (pb, sb) = tee_pipeline(MODEL_B, frames, 4)?;
    pa.set_state(gst::State::Playing)?;
    pb.set_state(gst::State::Playing)?;
    wait_eos(&pa, &dog, "pipeline A")?;
    wait_eos(&pb, &dog, "pipeline B")?;
    pa.set_state(gst::State::Null)?;
    pb.set_state(gst::State::Null)?;
    results.push(compare("concurrent A: tee x4 (model A)", &ref_a, &sa));
    results.push(compare("concurrent B: tee x4 (model B)", &ref_b, &sb));

    let ok = ref_a.len() as u64 == frames
        && ref_b.len() as u64 == frames
        && results.iter().all(|r| {
            r["branches"]
                .as_array()
                .is_some_and(|b| b.iter().all(|b| b["bit_exact"] == true))
        });
    let report = json!({
        "storm": "tee",
        "frames": frames,
        "size": "128x96 RGBx",
        "settings": settings("<model>", 1),
        "reference_frames": [ref_a.len(), ref_b.len()],
        "results": results,
        "all_bit_exact": ok,
        "seconds": t.elapsed().as_secs_f64(),
        "usage_start": start,
        "usage_end": Usage::now().json(),
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(ok)
}

/// Decodes a file and prints how many video frames it holds (for the Ctrl-C trials).
fn count_frames(file: &str) -> Result<bool> {
    let dog = Watchdog::start("count-frames");
    let p = pipeline(&format!(
        "filesrc location=\"{file}\" ! decodebin ! video/x-raw ! fakesink name=out"
    ))?;
    let n = count_buffers(&by_name(&p, "out")?.static_pad("sink").ok_or("no pad")?);
    p.set_state(gst::State::Playing)?;
    let r = wait_eos(&p, &dog, "decode");
    p.set_state(gst::State::Null)?;
    r?;
    println!("{}", n.load(Ordering::SeqCst));
    Ok(true)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| -> u64 {
        args.get(i)
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    if let Err(e) = gst::init()
        .map_err(|e| e.to_string())
        .and_then(|()| stylize::element::register_static().map_err(|e| e.to_string()))
    {
        eprintln!("storm: {e}");
        std::process::exit(1);
    }
    let r = match args.first().map(String::as_str) {
        Some("cycles") => cycles(num(1, 1000)),
        Some("swaps") => swaps(num(1, 1000)),
        Some("tee") => tee(num(1, 300)),
        Some("count-frames") if args.len() == 2 => count_frames(&args[1]),
        _ => {
            eprintln!("usage: storm cycles [N] | swaps [N] | tee [FRAMES] | count-frames FILE");
            std::process::exit(2);
        }
    };
    match r {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("storm: {e}");
            std::process::exit(1);
        }
    }
}
