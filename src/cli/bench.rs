//! `stylize bench`: the bare engine against the element in a real pipeline, on the same
//! frames, per resolution.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use gst::prelude::*;
use serde_json::json;
use stylize::frame::{OwnedFrame, PixelFormat};

use super::BadInput;
use super::common::ModelArgs;

/// Arguments of `stylize bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Resolutions, comma-separated.
    #[arg(long, default_value = "640x360,1280x720", value_name = "WxH,...")]
    pub resolution: String,
    /// Frames measured per resolution (after warm-up).
    #[arg(long, default_value_t = 60, value_name = "N")]
    pub frames: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
}

fn parse_resolutions(s: &str) -> Result<Vec<(usize, usize)>> {
    s.split(',')
        .map(|r| {
            let (w, h) = r.trim().split_once('x').ok_or_else(|| {
                BadInput(format!("--resolution: '{r}' is not WxH (e.g. 1280x720)"))
            })?;
            let parse = |v: &str| -> Result<usize> {
                match v.parse::<usize>() {
                    Ok(n) if (1..=16384).contains(&n) => Ok(n),
                    _ => Err(
                        BadInput(format!("--resolution: '{r}' needs sizes from 1 to 16384")).into(),
                    ),
                }
            };
            Ok((parse(w)?, parse(h)?))
        })
        .collect()
}

/// A synthetic but natural-looking frame: gradients and texture.
fn test_frame(w: usize, h: usize) -> OwnedFrame {
    let mut data = vec![0u8; w * h * 4];
    for y in 0..h {
        for x in 0..w {
            let i = (y * w + x) * 4;
            let t = ((x * 7 + y * 13) % 64) as u8;
            data[i] = (x * 255 / w.max(1)) as u8 ^ t;
            data[i + 1] = (y * 255 / h.max(1)) as u8;
            data[i + 2] = (((x + y) * 255) / (w + h)) as u8 ^ (t >> 1);
            data[i + 3] = 255;
        }
    }
    OwnedFrame::from_vec(data, w, h, PixelFormat::Rgbx).expect("valid frame")
}

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

struct EngineResult {
    fps: f64,
    to_tensor_ms: f64,
    inference_ms: f64,
    to_frame_ms: f64,
    provider: String,
}

fn bench_engine(
    config: &super::common::ModelConfig,
    template: &OwnedFrame,
    frames: u32,
) -> Result<EngineResult> {
    let mut s = config.load()?;
    let mut frame = template.clone();
    for _ in 0..3 {
        s.process(&mut frame.as_frame_mut(), config.strength)?;
    }
    let (mut a, mut b, mut c) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let t = Instant::now();
    for _ in 0..frames {
        s.process(&mut frame.as_frame_mut(), config.strength)?;
        let st = s.times();
        a += st.to_tensor;
        b += st.inference;
        c += st.to_frame;
    }
    let total = t.elapsed().as_secs_f64();
    let per = |d: Duration| d.as_secs_f64() * 1e3 / frames as f64;
    Ok(EngineResult {
        fps: frames as f64 / total,
        to_tensor_ms: per(a),
        inference_ms: per(b),
        to_frame_ms: per(c),
        provider: s.engine().provider().to_string(),
    })
}

struct ElementResult {
    fps: f64,
    provider: String,
    /// Time from a frame entering the element to leaving it: p50 and p95, ms.
    latency_p50_ms: f64,
    latency_p95_ms: f64,
}

/// Records the instant each frame passes a pad, by frame index (PTS / 33 ms).
fn stamp_probe(pad: &gst::Pad, slots: std::sync::Arc<std::sync::Mutex<Vec<Option<Instant>>>>) {
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
            let i = (pts.mseconds() / 33) as usize;
            if let Some(slot) = slots.lock().unwrap().get_mut(i) {
                *slot = Some(Instant::now());
            }
        }
        gst::PadProbeReturn::Ok
    });
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn bench_element(
    config: &super::common::ModelConfig,
    template: &OwnedFrame,
    frames: u32,
) -> Result<ElementResult> {
    stylize::element::register_static()?;
    let (w, h) = (template.width(), template.height());
    let caps = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgbx, w as u32, h as u32)
        .fps(gst::Fraction::new(30, 1))
        .build()?
        .to_caps()?;
    let appsrc = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Time)
        .block(true)
        .max_buffers(4)
        .build();
    let st = gst::ElementFactory::make("styletransfer")
        .property("model", config.model.display().to_string())
        .property_from_str("provider", config.engine.provider.as_str())
        .property("threads", config.engine.threads as u32)
        .property("strength", config.strength as f64)
        .property("inference-scale", config.stylizer.inference_scale as f64)
        .build()?;
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()?;
    let pipeline = gst::Pipeline::new();
    pipeline.add_many([appsrc.upcast_ref(), &st, &sink])?;
    gst::Element::link_many([appsrc.upcast_ref(), &st, &sink])?;
    // Time from the first output frame to the last: excludes model load and the probe.
    let stamps = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(
        frames as usize + 3,
    )));
    let s2 = stamps.clone();
    sink.static_pad("sink")
        .context("fakesink has a sink pad")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            s2.lock().unwrap().push(Instant::now());
            gst::PadProbeReturn::Ok
        });
    let total = frames + 3;
    // A fresh buffer per frame, made before the clock starts, so that the measurement is of
    // the element and not of producing frames upstream.
    let buffers: Vec<gst::Buffer> = (0..total)
        .map(|i| {
            let mut b = gst::Buffer::from_mut_slice(template.data().to_vec());
            b.get_mut()
                .expect("new buffer is writable")
                .set_pts(gst::ClockTime::from_mseconds(i as u64 * 33));
            b
        })
        .collect();
    let entered = std::sync::Arc::new(std::sync::Mutex::new(vec![None; total as usize]));
    let left = std::sync::Arc::new(std::sync::Mutex::new(vec![None; total as usize]));
    stamp_probe(&st.static_pad("sink").context("sink pad")?, entered.clone());
    stamp_probe(&st.static_pad("src").context("src pad")?, left.clone());
    pipeline.set_state(gst::State::Playing)?;
    let feeder = {
        let appsrc = appsrc.clone();
        std::thread::spawn(move || {
            for b in buffers {
                if appsrc.push_buffer(b).is_err() {
                    break;
                }
            }
            let _ = appsrc.end_of_stream();
        })
    };
    let bus = pipeline.bus().context("pipeline has a bus")?;
    let msg = bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(600),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    );
    let provider = st.property::<String>("active-provider");
    pipeline.set_state(gst::State::Null)?;
    let _ = feeder.join();
    match msg.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Eos(_)) => {}
        Some(gst::MessageView::Error(e)) => bail!("element pipeline failed: {}", e.error()),
        _ => bail!("element pipeline timed out"),
    }
    let stamps = stamps.lock().unwrap();
    if stamps.len() < total as usize {
        bail!("element pipeline gave {} of {total} frames", stamps.len());
    }
    // Skip the warm-up frames, as the engine measurement does.
    let span = stamps[total as usize - 1] - stamps[2];
    let (entered, left) = (entered.lock().unwrap(), left.lock().unwrap());
    let mut lat: Vec<f64> = entered
        .iter()
        .zip(left.iter())
        .skip(3)
        .filter_map(|(a, b)| Some((b.as_ref()?.duration_since(*a.as_ref()?)).as_secs_f64() * 1e3))
        .collect();
    lat.sort_by(f64::total_cmp);
    Ok(ElementResult {
        fps: (total - 3) as f64 / span.as_secs_f64(),
        provider,
        latency_p50_ms: percentile(&lat, 0.5),
        latency_p95_ms: percentile(&lat, 0.95),
    })
}

/// Runs `stylize bench`.
pub fn run(args: BenchArgs) -> Result<()> {
    let config = args.model.validate()?;
    let resolutions = parse_resolutions(&args.resolution)?;
    if args.frames < 2 {
        return Err(BadInput("--frames must be at least 2".into()).into());
    }
    let mut rows = Vec::new();
    for (w, h) in resolutions {
        let template = test_frame(w, h);
        let e = bench_engine(&config, &template, args.frames)?;
        let el = bench_element(&config, &template, args.frames)?;
        let element_fps = el.fps;
        let row = json!({
            "resolution": format!("{w}x{h}"),
            "provider": e.provider,
            "element_provider": el.provider,
            "element_latency_ms": { "p50": el.latency_p50_ms, "p95": el.latency_p95_ms },
            "stages_ms": {
                "to_tensor": e.to_tensor_ms,
                "inference": e.inference_ms,
                "to_frame": e.to_frame_ms,
            },
            "engine_fps": e.fps,
            "element_fps": element_fps,
            "element_to_engine": element_fps / e.fps,
            "peak_rss_mb": peak_rss_mb(),
        });
        if !args.json {
            println!(
                "{w}x{h} on {}: engine {:.1} fps (to tensor {:.2} ms, inference {:.2} ms, to frame {:.2} ms), element {:.1} fps = {:.0}% of engine, element latency p50 {:.1} ms p95 {:.1} ms",
                e.provider,
                e.fps,
                e.to_tensor_ms,
                e.inference_ms,
                e.to_frame_ms,
                element_fps,
                100.0 * element_fps / e.fps,
                el.latency_p50_ms,
                el.latency_p95_ms
            );
        }
        rows.push(row);
    }
    if args.json {
        let out = json!({
            "model": config.model,
            "frames": args.frames,
            "inference_scale": config.stylizer.inference_scale,
            "results": rows,
            "peak_rss_mb": peak_rss_mb(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let Some(mb) = peak_rss_mb() {
        println!("peak resident memory {mb:.0} MB");
    }
    Ok(())
}
