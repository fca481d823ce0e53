//! `stylize bench`: the bare engine against the element in a real pipeline, on the same
//! frames, per resolution.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use gst::prelude::*;
use serde_json::json;
use stylize::frame::{OwnedFrame, PixelFormat};
use stylize::temporal::{FlowPreset, TemporalFilter, TemporalMode, TemporalOptions};

use super::BadInput;
use super::common::ModelArgs;

/// Arguments of `stylize bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Resolutions, comma-separated.
    #[arg(long, default_value = "640x360,1280x720", value_name = "WxH,...")]
    pub resolution: String,
    /// Frames measured per resolution (after warm-up).
    #[arg(long, default_value_t = 60, value_parser = super::common::whole::<u32>("--frames", 2, u64::MAX), value_name = "N")]
    pub frames: u32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Blending measured with the model: none, ema, or flow (the flow and blend stages).
    #[arg(long, default_value = "flow", value_parser = ["none", "ema", "flow"], value_name = "none|ema|flow")]
    pub temporal: String,
    /// Optical-flow preset for --temporal flow.
    #[arg(long, default_value = "medium", value_parser = ["ultrafast", "fast", "medium"], value_name = "PRESET")]
    pub flow_preset: String,
    /// Weight of the previous output when blending (0..1).
    #[arg(long, default_value = "0.5", value_parser = super::convert::parse_weight, value_name = "F")]
    pub temporal_weight: f64,
    /// Frames the element stylises at once, each by its own copy of the model (0 = auto).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(0..=8), value_name = "N")]
    pub parallel_frames: u32,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// The temporal settings of a bench run.
struct Temporal {
    mode: TemporalMode,
    name: String,
    preset: String,
    weight: f32,
    parallel_frames: u32,
}

impl Temporal {
    fn from_args(a: &BenchArgs) -> Temporal {
        let mode = match a.temporal.as_str() {
            "ema" => TemporalMode::Ema,
            "flow" => TemporalMode::Flow,
            _ => TemporalMode::None,
        };
        Temporal {
            mode,
            name: a.temporal.clone(),
            preset: a.flow_preset.clone(),
            weight: a.temporal_weight as f32,
            parallel_frames: a.parallel_frames,
        }
    }

    fn options(&self) -> TemporalOptions {
        TemporalOptions {
            // clap only lets the preset names through.
            preset: self.preset.parse().unwrap_or(FlowPreset::Medium),
            ..TemporalOptions::default()
        }
    }
}

fn parse_resolutions(s: &str) -> Result<Vec<(usize, usize)>> {
    stylize::engine::parse_resolutions(s).map_err(|e| BadInput(format!("--resolution: {e}")).into())
}

/// A synthetic but natural-looking frame: gradients and texture, moved right by `dx` pixels
/// (so that successive frames have motion for the optical flow to follow).
fn test_frame(w: usize, h: usize, dx: usize) -> OwnedFrame {
    let mut data = vec![0u8; w * h * 4];
    for y in 0..h {
        for x0 in 0..w {
            let i = (y * w + x0) * 4;
            let x = x0.saturating_sub(dx);
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
    /// Input luma and both optical flows with the confidence map.
    flow_ms: f64,
    blend_ms: f64,
    /// Model load to the first stylised frame.
    startup_ms: f64,
    provider: String,
}

/// The frame path without GStreamer, serially: the model's stages, then the temporal ones.
fn bench_engine(
    config: &super::common::ModelConfig,
    templates: &[OwnedFrame; 2],
    frames: u32,
    temporal: &Temporal,
) -> Result<EngineResult> {
    let loading = Instant::now();
    let mut s = config.load()?;
    let mut filter = TemporalFilter::new(temporal.options());
    let mut frame = templates[0].clone();
    let mut step = |i: u32, s: &mut stylize::Stylizer, filter: &mut TemporalFilter| -> Result<()> {
        frame
            .as_frame_mut()
            .copy_from(&templates[i as usize % 2].as_frame())?;
        filter.observe(&frame.as_frame(), temporal.mode);
        s.process(&mut frame.as_frame_mut(), config.strength)?;
        filter.blend(&mut frame.as_frame_mut(), temporal.mode, temporal.weight)?;
        Ok(())
    };
    let mut startup_ms = 0.0;
    for i in 0..3 {
        step(i, &mut s, &mut filter)?;
        if i == 0 {
            startup_ms = loading.elapsed().as_secs_f64() * 1e3;
        }
    }
    let mut sums = [Duration::ZERO; 5];
    let t = Instant::now();
    for i in 0..frames {
        step(i + 3, &mut s, &mut filter)?;
        let st = s.times();
        let tt = filter.times();
        for (sum, d) in sums.iter_mut().zip([
            st.to_tensor,
            st.inference,
            st.to_frame,
            tt.luma + tt.flow,
            tt.blend,
        ]) {
            *sum += d;
        }
    }
    let total = t.elapsed().as_secs_f64();
    let per = |d: Duration| d.as_secs_f64() * 1e3 / frames as f64;
    Ok(EngineResult {
        fps: frames as f64 / total,
        to_tensor_ms: per(sums[0]),
        inference_ms: per(sums[1]),
        to_frame_ms: per(sums[2]),
        flow_ms: per(sums[3]),
        blend_ms: per(sums[4]),
        startup_ms,
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
    templates: &[OwnedFrame; 2],
    frames: u32,
    temporal: &Temporal,
) -> Result<ElementResult> {
    stylize::element::register_static()?;
    let (w, h) = (templates[0].width(), templates[0].height());
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
        .property_from_str("upsampler", config.stylizer.upsampler.name())
        .property_from_str("temporal", &temporal.name)
        .property_from_str("flow-preset", &temporal.preset)
        .property("temporal-weight", temporal.weight as f64)
        .property("parallel-frames", temporal.parallel_frames)
        .build()?;
    let sink = gst::ElementFactory::make("fakesink")
        .property("sync", false)
        .build()?;
    let pipeline = gst::Pipeline::new();
    pipeline.add_many([appsrc.upcast_ref(), &st, &sink])?;
    gst::Element::link_many([appsrc.upcast_ref(), &st, &sink])?;
    // Time from the first output frame to the last: excludes model load and the first
    // inference's warm-up.
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
            let mut b = gst::Buffer::from_mut_slice(templates[i as usize % 2].data().to_vec());
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
    let temporal = Temporal::from_args(&args);
    let mut rows = Vec::new();
    for (w, h) in resolutions {
        let templates = [test_frame(w, h, 0), test_frame(w, h, 2)];
        let e = bench_engine(&config, &templates, args.frames, &temporal)?;
        let el = bench_element(&config, &templates, args.frames, &temporal)?;
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
                "flow": e.flow_ms,
                "blend": e.blend_ms,
            },
            "startup_ms": e.startup_ms,
            "engine_fps": e.fps,
            "element_fps": element_fps,
            "element_to_engine": element_fps / e.fps,
            "peak_rss_mb": peak_rss_mb(),
        });
        if !args.json {
            println!(
                "{w}x{h} on {}: engine {:.1} fps (to tensor {:.2} ms, inference {:.2} ms, to frame {:.2} ms, flow {:.2} ms, blend {:.2} ms), element {:.1} fps = {:.0}% of engine, element latency p50 {:.1} ms p95 {:.1} ms, model load to first frame {:.0} ms",
                e.provider,
                e.fps,
                e.to_tensor_ms,
                e.inference_ms,
                e.to_frame_ms,
                e.flow_ms,
                e.blend_ms,
                element_fps,
                100.0 * element_fps / e.fps,
                el.latency_p50_ms,
                el.latency_p95_ms,
                e.startup_ms
            );
        }
        rows.push(row);
    }
    if args.json {
        let out = json!({
            "model": config.model,
            "frames": args.frames,
            "inference_scale": config.stylizer.inference_scale,
            "upsampler": config.stylizer.upsampler.name(),
            "temporal": { "mode": temporal.name, "flow_preset": temporal.preset, "weight": temporal.weight },
            "parallel_frames": temporal.parallel_frames,
            "results": rows,
            "peak_rss_mb": peak_rss_mb(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if let Some(mb) = peak_rss_mb() {
        println!("peak resident memory {mb:.0} MB");
    }
    Ok(())
}
