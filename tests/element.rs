//! The `styletransfer` element, registered statically: Harness tests and real pipelines.

mod common;

use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use gst_check::Harness;
use stylize::engine::{EngineOptions, Provider};
use stylize::frame::{FrameMut, PixelFormat};
use stylize::{SpecOverrides, Stylizer, StylizerOptions};

const GAN: &str = "models/gan_pm1_mult8.onnx";
const MULTI: &str = "models/multistyle_unit.onnx";

fn model(rel: &str) -> String {
    data().join(rel).display().to_string()
}

fn harness(props: &[(&str, &str)]) -> Harness {
    init();
    // The Harness answers the LATENCY query as a live source: keep every frame, so that
    // these tests see exactly what they push.
    let e = gst::ElementFactory::make("styletransfer")
        .property_from_str("provider", "cpu")
        .property("threads", 1u32)
        .property("drop-frames", false)
        .build()
        .unwrap();
    for (k, v) in props {
        e.set_property_from_str(k, v);
    }
    let mut h = Harness::with_element(&e, Some("sink"), Some("src"));
    h.play();
    h.set_src_caps_str("video/x-raw,format=RGB,width=61,height=47,framerate=30/1");
    h
}

/// GStreamer pads RGB rows to 4 bytes.
fn stride(w: usize) -> usize {
    (w * 3).div_ceil(4) * 4
}

/// Packed RGB rows into a buffer with GStreamer's stride.
fn padded(w: usize, h: usize, rgb: &[u8]) -> Vec<u8> {
    let st = stride(w);
    let mut out = vec![0u8; st * h];
    for y in 0..h {
        out[y * st..y * st + w * 3].copy_from_slice(&rgb[y * w * 3..(y + 1) * w * 3]);
    }
    out
}

fn input_buffer(i: u64) -> gst::Buffer {
    let (w, h, rgb) = load_rgb(&data().join("input.png"));
    let mut b = gst::Buffer::from_mut_slice(padded(w, h, &rgb));
    {
        let b = b.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(i * 33));
        b.set_duration(gst::ClockTime::from_mseconds(33));
        b.set_offset(i);
    }
    b
}

/// The packed RGB pixels of a 61x47 output buffer.
fn bytes(b: &gst::Buffer) -> Vec<u8> {
    let m = b.map_readable().unwrap();
    let (w, h) = (61, 47);
    (0..h)
        .flat_map(|y| m[y * stride(w)..y * stride(w) + w * 3].to_vec())
        .collect()
}

/// What the engine alone gives for the test picture.
fn engine_output(rel: &str, extra: &[(&str, Vec<f32>)]) -> Vec<u8> {
    let (w, h, mut rgb) = load_rgb(&data().join("input.png"));
    let mut flags = SpecOverrides::default();
    for (k, v) in extra {
        flags.extra_inputs.insert(k.to_string(), v.clone());
    }
    let opts = EngineOptions {
        provider: Provider::Cpu,
        threads: 1,
        ..Default::default()
    };
    let mut s =
        Stylizer::load(&data().join(rel), &flags, &opts, StylizerOptions::default()).unwrap();
    let mut f = FrameMut::new(&mut rgb, w, h, w * 3, PixelFormat::Rgb).unwrap();
    s.process(&mut f, 1.0).unwrap();
    rgb
}

/// The engine's output for packed RGB pixels of the test picture's size.
fn engine_output_of(rgb: &[u8]) -> Vec<u8> {
    let mut px = rgb.to_vec();
    let opts = EngineOptions {
        provider: Provider::Cpu,
        threads: 1,
        ..Default::default()
    };
    let mut s = Stylizer::load(
        &data().join(GAN),
        &SpecOverrides::default(),
        &opts,
        StylizerOptions::default(),
    )
    .unwrap();
    let mut f = FrameMut::new(&mut px, 61, 47, 61 * 3, PixelFormat::Rgb).unwrap();
    s.process(&mut f, 1.0).unwrap();
    px
}

fn buffer_of(rgb: &[u8], i: u64, discont: bool) -> gst::Buffer {
    let mut b = gst::Buffer::from_mut_slice(padded(61, 47, rgb));
    {
        let b = b.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(i * 33));
        if discont {
            b.set_flags(gst::BufferFlags::DISCONT);
        }
    }
    b
}

fn pull_all(h: &mut Harness, n: usize) -> Vec<gst::Buffer> {
    assert!(h.push_event(gst::event::Eos::new()));
    (0..n)
        .map(|i| {
            h.try_pull()
                .unwrap_or_else(|| panic!("output {i} of {n} missing"))
        })
        .collect()
}

#[test]
fn output_equals_the_engine_and_keeps_timestamps() {
    let mut h = harness(&[("model", &model(GAN))]);
    for i in 0..5 {
        h.push(input_buffer(i)).unwrap();
    }
    let out = pull_all(&mut h, 5);
    let want = engine_output(GAN, &[]);
    for (i, b) in out.iter().enumerate() {
        assert_eq!(bytes(b), want, "frame {i}");
        assert_eq!(b.pts(), Some(gst::ClockTime::from_mseconds(i as u64 * 33)));
        assert_eq!(b.duration(), Some(gst::ClockTime::from_mseconds(33)));
        assert_eq!(b.offset(), i as u64);
    }
    assert!(h.try_pull().is_none(), "nothing duplicated");
    let e = h.element().unwrap();
    assert_eq!(e.property::<String>("active-provider"), "cpu");
    assert_eq!(e.property::<u64>("frames-processed"), 5);
    assert!(e.property::<f64>("mean-inference-ms") > 0.0);
    assert!(e.property::<f64>("p95-inference-ms") >= e.property::<f64>("mean-inference-ms") * 0.5);
}

#[test]
fn strength_zero_is_bit_exact_and_changes_while_playing() {
    let mut h = harness(&[("model", &model(GAN)), ("strength", "0")]);
    let (_, _, orig) = load_rgb(&data().join("input.png"));
    for i in 0..3 {
        h.push(input_buffer(i)).unwrap();
    }
    let e = h.element().unwrap();
    e.set_property("strength", 1.0f64);
    for i in 3..6 {
        h.push(input_buffer(i)).unwrap();
    }
    let out = pull_all(&mut h, 6);
    let styled = engine_output(GAN, &[]);
    // Frames already submitted keep the strength they were submitted with.
    for b in &out[..3] {
        assert_eq!(bytes(b), orig);
    }
    for b in &out[3..] {
        assert_eq!(bytes(b), styled);
    }
}

#[test]
fn temporal_ema_blends_and_weight_zero_is_per_frame() {
    let mut h = harness(&[
        ("model", &model(GAN)),
        ("temporal", "ema"),
        ("temporal-weight", "0.5"),
    ]);
    let (_, _, orig) = load_rgb(&data().join("input.png"));
    let styled = engine_output(GAN, &[]);
    h.push(input_buffer(0)).unwrap();
    // The second frame is the plain picture (strength 0 resets history), the third is
    // stylised again: with history reset it equals the per-frame output.
    h.element().unwrap().set_property("temporal-weight", 0.0f64);
    h.push(input_buffer(1)).unwrap();
    let out = pull_all(&mut h, 2);
    assert_eq!(bytes(&out[0]), styled, "first frame has no history");
    assert_eq!(bytes(&out[1]), styled, "weight 0 is per-frame");
    assert_ne!(styled, orig);
}

#[test]
fn temporal_ema_blends_with_the_previous_output_and_discont_resets_it() {
    let (_, _, x) = load_rgb(&data().join("input.png"));
    let y: Vec<u8> = x.iter().map(|v| 255 - v).collect();
    let (sx, sy) = (engine_output_of(&x), engine_output_of(&y));
    let mut h = harness(&[
        ("model", &model(GAN)),
        ("temporal", "ema"),
        ("temporal-weight", "0.5"),
    ]);
    h.push(buffer_of(&x, 0, false)).unwrap();
    h.push(buffer_of(&y, 1, false)).unwrap();
    h.push(buffer_of(&y, 2, true)).unwrap();
    let out = pull_all(&mut h, 3);
    assert_eq!(bytes(&out[0]), sx);
    let blended: Vec<u8> = sy
        .iter()
        .zip(&sx)
        .map(|(&cur, &prev)| {
            let (c, p) = (cur as f32, prev as f32);
            ((c + 0.5 * (p - c)) + 0.5).clamp(0.0, 255.0) as u8
        })
        .collect();
    assert_ne!(sx, sy);
    assert_eq!(bytes(&out[1]), blended, "half of the previous output");
    assert_eq!(bytes(&out[2]), sy, "DISCONT resets the history");
}

#[test]
fn temporal_flow_keeps_a_static_scene_and_resets_on_a_cut() {
    let (_, _, x) = load_rgb(&data().join("input.png"));
    let y: Vec<u8> = x.iter().map(|v| 255 - v).collect();
    let (sx, sy) = (engine_output_of(&x), engine_output_of(&y));
    let mut h = harness(&[
        ("model", &model(GAN)),
        ("temporal", "flow"),
        ("temporal-weight", "0.8"),
    ]);
    for i in 0..3 {
        h.push(buffer_of(&x, i, false)).unwrap();
    }
    // A different picture: nothing of it can be followed from the last one.
    h.push(buffer_of(&y, 3, false)).unwrap();
    let out = pull_all(&mut h, 4);
    for (i, o) in out[..3].iter().enumerate() {
        assert_eq!(bytes(o), sx, "static frame {i} equals the per-frame output");
    }
    assert_eq!(
        bytes(&out[3]),
        sy,
        "the cut leaves no ghost of the old scene"
    );
    assert_eq!(h.element().unwrap().property::<u64>("scene-cuts"), 1);
}

#[test]
fn temporal_flow_weight_zero_is_per_frame() {
    let (_, _, x) = load_rgb(&data().join("input.png"));
    let y: Vec<u8> = x.iter().map(|v| v / 2 + 40).collect();
    let (sx, sy) = (engine_output_of(&x), engine_output_of(&y));
    let mut h = harness(&[
        ("model", &model(GAN)),
        ("temporal", "flow"),
        ("temporal-weight", "0"),
    ]);
    h.push(buffer_of(&x, 0, false)).unwrap();
    h.push(buffer_of(&y, 1, false)).unwrap();
    let out = pull_all(&mut h, 2);
    assert_eq!(bytes(&out[0]), sx);
    assert_eq!(bytes(&out[1]), sy);
}

#[test]
fn temporal_flow_through_a_pipeline() {
    // A moving ball: every frame is blended along the motion and none is lost.
    let n = run_pipeline(&format!(
        "videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=320,height=180,format=BGRx ! \
         styletransfer provider=cpu model={} temporal=flow temporal-weight=0.7 flow-preset=ultrafast ! \
         fakesink name=out",
        model(GAN)
    ))
    .unwrap();
    assert_eq!(n, 30);
}

#[test]
fn parallel_frames_keep_order_and_blend_as_one_model_does() {
    let (_, _, x) = load_rgb(&data().join("input.png"));
    let y: Vec<u8> = x.iter().map(|v| 255 - v).collect();
    let z: Vec<u8> = x.iter().map(|v| v / 2 + 60).collect();
    let run = |parallel: &str, temporal: &str| {
        let mut h = harness(&[
            ("model", &model(GAN)),
            ("parallel-frames", parallel),
            ("temporal", temporal),
            ("temporal-weight", "0.5"),
        ]);
        for (i, f) in [&x, &y, &z, &x, &z, &y].iter().enumerate() {
            h.push(buffer_of(f, i as u64, false)).unwrap();
        }
        pull_all(&mut h, 6)
    };
    for temporal in ["none", "ema"] {
        let (one, two) = (run("1", temporal), run("2", temporal));
        for (i, (a, b)) in one.iter().zip(&two).enumerate() {
            assert_eq!(b.pts(), Some(gst::ClockTime::from_mseconds(i as u64 * 33)));
            assert_eq!(bytes(a), bytes(b), "{temporal}: frame {i}");
        }
    }
}

/// Tags (a decoder sends one every frame or two) pass without draining the frames in the
/// model; none is lost, and the frames keep their order and pixels.
#[test]
fn tags_between_frames_pass_and_frames_keep_order() {
    let (_, _, x) = load_rgb(&data().join("input.png"));
    let mut h = harness(&[("model", &model(GAN)), ("parallel-frames", "2")]);
    for i in 0..8u64 {
        h.push(buffer_of(&x, i, false)).unwrap();
        let mut tags = gst::TagList::new();
        tags.get_mut()
            .unwrap()
            .add::<gst::tags::Bitrate>(&(1000 + i as u32), gst::TagMergeMode::Replace);
        assert!(h.push_event(gst::event::Tag::new(tags)));
    }
    let out = pull_all(&mut h, 8);
    let want = bytes(&out[0]);
    for (i, b) in out.iter().enumerate() {
        assert_eq!(b.pts(), Some(gst::ClockTime::from_mseconds(i as u64 * 33)));
        assert_eq!(bytes(b), want, "frame {i}");
    }
    let mut bitrates = Vec::new();
    while let Some(ev) = h.try_pull_event() {
        if let gst::EventView::Tag(t) = ev.view()
            && let Some(b) = t.tag().get::<gst::tags::Bitrate>()
        {
            bitrates.push(b.get());
        }
    }
    // Sticky: consecutive tags may merge into the newest; the last one always arrives.
    assert_eq!(bitrates.last(), Some(&1007), "{bitrates:?}");
}

#[test]
fn parallel_frames_through_a_pipeline_with_flow_and_a_model_swap() {
    let n = run_pipeline(&format!(
        "videotestsrc num-buffers=30 pattern=ball ! video/x-raw,width=160,height=90,format=RGBx ! \
         styletransfer provider=cpu model={} parallel-frames=2 temporal=flow flow-preset=ultrafast ! \
         fakesink name=out",
        model(GAN)
    ))
    .unwrap();
    assert_eq!(n, 30);
    // A new model while playing: loaded once per unit, swapped in without a gap.
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=150 is-live=true ! \
         video/x-raw,width=64,height=48,format=RGB,framerate=100/1 ! \
         styletransfer name=st provider=cpu model={} parallel-frames=2 drop-frames=false ! \
         fakesink name=out sync=false",
        model(GAN)
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let st = pipeline.by_name("st").unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (c, st2) = (count.clone(), st.clone());
    let other = model("models/nhwc_unit_fp16.onnx");
    pipeline
        .by_name("out")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            if c.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 10 {
                st2.set_property("model", other.as_str());
            }
            gst::PadProbeReturn::Ok
        });
    play_to_end(pipeline.upcast_ref(), 60).unwrap();
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 150);
    let active: String = st.property("active-model");
    assert!(active.ends_with("nhwc_unit_fp16.onnx"), "{active}");
}

#[test]
fn model_swap_mid_stream_has_no_gap() {
    let weights: Vec<f32> = (0..26).map(|i| if i == 2 { 1.0 } else { 0.0 }).collect();
    let mut h = harness(&[("model", &model(GAN))]);
    let e = h.element().unwrap();
    let a = engine_output(GAN, &[]);
    let b = engine_output(MULTI, &[("style_weights", weights.clone())]);
    let mut pushed = 0u64;
    let mut outputs = Vec::new();
    for _ in 0..4 {
        h.push(input_buffer(pushed)).unwrap();
        pushed += 1;
    }
    e.set_property(
        "extra-input",
        "style_weights=0,0,1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0",
    );
    e.set_property("model", model(MULTI));
    // The stream keeps flowing while the new model loads; it takes over within a few seconds.
    let start = Instant::now();
    while !e
        .property::<String>("active-model")
        .ends_with("multistyle_unit.onnx")
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "swap never happened"
        );
        h.push(input_buffer(pushed)).unwrap();
        pushed += 1;
        while let Some(o) = h.try_pull() {
            outputs.push(o);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for _ in 0..4 {
        h.push(input_buffer(pushed)).unwrap();
        pushed += 1;
    }
    assert!(h.push_event(gst::event::Eos::new()));
    while let Some(o) = h.try_pull() {
        outputs.push(o);
    }
    assert_eq!(outputs.len() as u64, pushed, "every frame comes out once");
    for (i, o) in outputs.iter().enumerate() {
        assert_eq!(o.offset(), i as u64, "in order");
        let px = bytes(o);
        assert!(px == a || px == b, "frame {i} is whole output of one model");
    }
    assert_eq!(bytes(&outputs[0]), a);
    assert_eq!(bytes(outputs.last().unwrap()), b);
}

#[test]
fn a_bad_model_swap_keeps_the_old_model_and_warns() {
    let mut h = harness(&[("model", &model(GAN))]);
    let e = h.element().unwrap();
    h.push(input_buffer(0)).unwrap();
    e.set_property("model", model("models/bad_gray.onnx"));
    std::thread::sleep(Duration::from_millis(500));
    for i in 1..4 {
        h.push(input_buffer(i)).unwrap();
    }
    let out = pull_all(&mut h, 4);
    let a = engine_output(GAN, &[]);
    assert!(out.iter().all(|b| bytes(b) == a));
    assert!(
        e.property::<String>("active-model")
            .ends_with("gan_pm1_mult8.onnx")
    );
}

fn run_pipeline(desc: &str) -> Result<u64, String> {
    init();
    let pipeline = gst::parse::launch(desc).map_err(|e| e.to_string())?;
    let pipeline = pipeline.downcast::<gst::Pipeline>().unwrap();
    let sink = pipeline.by_name("out").unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = count.clone();
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    let bus = pipeline.bus().unwrap();
    let mut result = Ok(());
    // A failed state change posts its reason on the bus; read it below.
    let _ = pipeline.set_state(gst::State::Playing);
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(60)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => {
                result = Err(format!("{} ({:?})", e.error(), e.debug()));
                break;
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    result.map(|_| count.load(std::sync::atomic::Ordering::SeqCst))
}

#[test]
fn videotestsrc_pipeline_reaches_eos_with_every_frame() {
    for format in ["RGBx", "BGR", "RGBA"] {
        let n = run_pipeline(&format!(
            "videotestsrc num-buffers=25 ! video/x-raw,width=160,height=90,format={format} ! \
             styletransfer provider=cpu model={} ! fakesink name=out",
            model(GAN)
        ))
        .unwrap();
        assert_eq!(n, 25, "{format}");
    }
}

#[test]
fn decodes_a_file_made_here() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.mkv");
    init();
    let enc = gst::parse::launch(&format!(
        "videotestsrc num-buffers=20 pattern=ball ! video/x-raw,width=128,height=72,framerate=25/1 ! \
         x264enc ! matroskamux ! filesink location={}",
        file.display()
    ))
    .unwrap();
    let _ = play_to_end(&enc, 30);
    let n = run_pipeline(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! styletransfer provider=cpu model={} ! \
         videoconvert ! fakesink name=out",
        file.display(),
        model(GAN)
    ))
    .unwrap();
    assert_eq!(n, 20);
}

/// Runs `desc` (with a `styletransfer name=st` and a `fakesink name=out`) to the end: the
/// format the element's sink pad negotiated last, and the bytes of every output buffer.
/// `at_20` runs on the element after the 20th output frame.
fn run_collecting(
    desc: &str,
    at_20: impl Fn(&gst::Element) + Send + Sync + 'static,
) -> (String, Vec<Vec<u8>>) {
    init();
    let pipeline = gst::parse::launch(desc).unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let st = bin.by_name("st").unwrap();
    let formats = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
    {
        let formats = formats.clone();
        st.static_pad("sink").unwrap().add_probe(
            gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| {
                if let Some(gst::PadProbeData::Event(e)) = &info.data
                    && let gst::EventView::Caps(c) = e.view()
                {
                    let f = c
                        .caps()
                        .structure(0)
                        .unwrap()
                        .get::<String>("format")
                        .unwrap();
                    formats.lock().unwrap().push(f);
                }
                gst::PadProbeReturn::Ok
            },
        );
    }
    {
        let out = out.clone();
        let st = st.clone();
        bin.by_name("out")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                let b = info.buffer().unwrap();
                let mut o = out.lock().unwrap();
                o.push(b.map_readable().unwrap().to_vec());
                if o.len() == 20 {
                    at_20(&st);
                }
                gst::PadProbeReturn::Ok
            });
    }
    play_to_end(&pipeline, 60).unwrap();
    let f = formats.lock().unwrap().last().cloned().unwrap_or_default();
    (f, std::mem::take(&mut *out.lock().unwrap()))
}

#[test]
fn i420_is_taken_where_the_frame_path_works_on_it() {
    // I420 in, I420 out at a reduced inference scale with the guided upsampler and no
    // temporal blending; packed RGB from the converter everywhere else.
    for (props, i420) in [
        ("inference-scale=0.5", true),
        ("inference-scale=1", false),
        ("inference-scale=0.5 upsampler=bilinear", false),
        ("inference-scale=0.5 temporal=flow", false),
    ] {
        let (format, frames) = run_collecting(
            &format!(
                "videotestsrc num-buffers=8 pattern=ball ! video/x-raw,format=I420,width=96,height=64,framerate=25/1 ! \
                 videoconvert ! styletransfer name=st provider=cpu threads=1 model={} {props} ! \
                 videoconvert ! video/x-raw,format=I420 ! fakesink name=out",
                model(GAN)
            ),
            |_| {},
        );
        assert_eq!(format == "I420", i420, "{props}: {format}");
        assert_eq!(frames.len(), 8, "{props}");
    }
}

#[test]
fn i420_output_matches_the_packed_path() {
    // The same frames stylised as I420 and through RGBx (converted there and back): the
    // direct path writes Y, U and V from the same fit, so they agree to rounding.
    let run = |caps: &str| {
        run_collecting(
            &format!(
                "videotestsrc num-buffers=6 pattern=ball ! video/x-raw,format=I420,width=96,height=64,framerate=25/1 ! \
                 videoconvert ! video/x-raw,format={caps} ! styletransfer name=st provider=cpu threads=1 \
                 inference-scale=0.5 model={} ! videoconvert ! video/x-raw,format=I420 ! fakesink name=out",
                model(GAN)
            ),
            |_| {},
        )
    };
    let (direct_format, direct) = run("I420");
    let (packed_format, packed) = run("RGBx");
    assert_eq!(
        (direct_format.as_str(), packed_format.as_str()),
        ("I420", "RGBx")
    );
    assert_eq!(direct.len(), 6);
    for (a, b) in direct.iter().zip(&packed) {
        assert_eq!(a.len(), b.len());
        let diff: u64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (x as i32 - y as i32).unsigned_abs() as u64)
            .sum();
        let mean = diff as f64 / a.len() as f64;
        assert!(mean < 2.0, "mean difference {mean:.2}");
        // Stylised: not the input.
        assert_ne!(a, b, "the two paths round differently somewhere");
    }
}

#[test]
fn temporal_blending_switched_on_while_playing_renegotiates_to_rgb() {
    let (format, frames) = run_collecting(
        &format!(
            "videotestsrc num-buffers=40 pattern=ball ! video/x-raw,format=I420,width=96,height=64,framerate=25/1 ! \
             videoconvert ! styletransfer name=st provider=cpu threads=1 inference-scale=0.5 model={} ! \
             videoconvert ! video/x-raw,format=I420 ! fakesink name=out",
            model(GAN)
        ),
        |st| st.set_property_from_str("temporal", "ema"),
    );
    assert_ne!(
        format, "I420",
        "renegotiated to packed RGB for the blending"
    );
    assert_eq!(frames.len(), 40, "every frame came out");
}

#[test]
fn a_broken_model_fails_the_state_change_naming_the_file() {
    let err = run_pipeline(&format!(
        "videotestsrc num-buffers=5 ! video/x-raw,format=RGB ! styletransfer model={} ! fakesink name=out",
        model("models/truncated.onnx")
    ))
    .unwrap_err();
    assert!(
        err.contains("truncated.onnx") && err.contains("not a valid ONNX model"),
        "{err}"
    );
    let err = run_pipeline(
        "videotestsrc num-buffers=5 ! video/x-raw,format=RGB ! styletransfer model=/nonexistent/m.onnx ! fakesink name=out",
    )
    .unwrap_err();
    assert!(err.contains("/nonexistent/m.onnx: no such file"), "{err}");
}

#[test]
fn caps_change_mid_stream_is_followed() {
    // 61x47, then 20x10, then 61x47 again with another picture, with each temporal mode: the
    // element re-plans, the history restarts at each change, and every buffer has the size
    // of its caps.
    let (_, _, x) = load_rgb(&data().join("input.png"));
    let y: Vec<u8> = x.iter().map(|v| 255 - v).collect();
    let (sx, sy) = (engine_output_of(&x), engine_output_of(&y));
    let grey = vec![128u8; 20 * 10 * 3]; // rows of 60 bytes: no stride padding
    let s_grey = {
        let mut px = grey.clone();
        let opts = EngineOptions {
            provider: Provider::Cpu,
            threads: 1,
            ..Default::default()
        };
        let mut s = Stylizer::load(
            &data().join(GAN),
            &SpecOverrides::default(),
            &opts,
            StylizerOptions::default(),
        )
        .unwrap();
        let mut f = FrameMut::new(&mut px, 20, 10, 60, PixelFormat::Rgb).unwrap();
        s.process(&mut f, 1.0).unwrap();
        px
    };
    for temporal in ["none", "ema", "flow"] {
        let mut h = harness(&[
            ("model", &model(GAN)),
            ("temporal", temporal),
            ("temporal-weight", "0.5"),
        ]);
        h.push(buffer_of(&x, 0, false)).unwrap();
        h.push(buffer_of(&x, 1, false)).unwrap();
        h.set_src_caps_str("video/x-raw,format=RGB,width=20,height=10,framerate=30/1");
        for i in 2..4 {
            let mut b = gst::Buffer::from_mut_slice(grey.clone());
            b.get_mut()
                .unwrap()
                .set_pts(gst::ClockTime::from_mseconds(i * 33));
            h.push(b).unwrap();
        }
        h.set_src_caps_str("video/x-raw,format=RGB,width=61,height=47,framerate=30/1");
        h.push(buffer_of(&y, 4, false)).unwrap();
        let out = pull_all(&mut h, 5);
        let sizes: Vec<usize> = out.iter().map(|b| b.size()).collect();
        let (big, small) = (stride(61) * 47, 20 * 10 * 3);
        assert_eq!(sizes, [big, big, small, small, big], "{temporal}");
        assert_eq!(bytes(&out[0]), sx, "{temporal}");
        assert_eq!(bytes(&out[1]), sx, "{temporal}: a static scene");
        for o in &out[2..4] {
            let m = o.map_readable().unwrap();
            assert_eq!(m.as_slice(), s_grey.as_slice(), "{temporal}: 20x10");
        }
        assert_eq!(
            bytes(&out[4]),
            sy,
            "{temporal}: no history across the change"
        );
        assert!(h.try_pull().is_none());
    }
}

#[test]
fn start_stop_storm() {
    init();
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc ! video/x-raw,width=32,height=24,format=RGB ! \
         styletransfer name=st provider=cpu threads=1 model={} ! fakesink",
        model(GAN)
    ))
    .unwrap();
    let st = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("st")
        .unwrap();
    unsafe extern "C" {
        /// glibc: hands freed heap memory back to the system.
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    let rss_kb = || -> u64 {
        // Live memory, not what malloc keeps for reuse: threads started under load get
        // arenas of their own, which keep what they freed.
        // SAFETY: malloc_trim only walks and trims glibc's own heaps.
        unsafe { malloc_trim(0) };
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    };
    let t = Instant::now();
    let mut warm_rss = 0;
    for i in 0..200 {
        if i == 20 {
            warm_rss = rss_kb();
        }
        pipeline.set_state(gst::State::Playing).unwrap();
        let (r, state, _) = pipeline.state(gst::ClockTime::from_seconds(10));
        assert!(
            r.is_ok() && state == gst::State::Playing,
            "cycle {i}: {r:?} {state:?}"
        );
        // Frames really flow in every cycle.
        let w = Instant::now();
        while st.property::<u64>("frames-processed") == 0 {
            assert!(w.elapsed() < Duration::from_secs(10), "cycle {i}: no frame");
            std::thread::sleep(Duration::from_millis(1));
        }
        if i % 10 == 5 {
            // A model swap racing the shutdown.
            st.set_property("model", model("models/nhwc_unit_fp16.onnx"));
        }
        pipeline.set_state(gst::State::Null).unwrap();
    }
    // Model loads started by the swaps run on their own threads and may outlive the cycle
    // that started them (on a loaded machine, several at once: 24.6 MB in one CI run);
    // what they hold is freed when they end, so measure after they have.
    let loaders = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|c| c.starts_with("styletransfer-l"))
            .count()
    };
    let w = Instant::now();
    while loaders() > 0 && w.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let growth_mb = (rss_kb() as f64 - warm_rss as f64) / 1024.0;
    eprintln!(
        "200 NULL->PLAYING->NULL cycles in {:?}; resident memory grew {growth_mb:.1} MB after warm-up",
        t.elapsed()
    );
    // Each cycle loads a model and runs frames: a leak per cycle would show here.
    assert!(
        growth_mb < 20.0,
        "resident memory grew {growth_mb:.1} MB over 180 cycles"
    );
}

#[test]
fn model_swaps_every_few_frames_while_playing() {
    init();
    let pipeline = gst::parse::launch(&format!(
        // identity paces the source (3 ms a frame) so that the polling loop below sees every
        // fifth frame even when the machine is loaded and the model is quick.
        "videotestsrc num-buffers=400 ! video/x-raw,width=48,height=32,format=BGRx ! \
         identity sleep-time=3000 ! \
         styletransfer name=st provider=cpu threads=1 model={} ! fakesink name=out sync=false",
        model(GAN)
    ))
    .unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let st = bin.by_name("st").unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let c = count.clone();
    bin.by_name("out")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let models = [GAN, "models/nhwc_unit_fp16.onnx"];
    let mut swaps = 0;
    let mut last = 0;
    loop {
        if let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(2),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            match msg.view() {
                gst::MessageView::Error(e) => panic!("{}", e.error()),
                _ => break,
            }
        }
        let n = count.load(std::sync::atomic::Ordering::SeqCst);
        if n >= last + 5 {
            last = n;
            swaps += 1;
            st.set_property("model", model(models[swaps % 2]));
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        400,
        "every frame accounted for"
    );
    assert!(swaps > 20, "{swaps} swaps");
}

#[test]
fn live_sources_drop_stale_frames_and_report_latency() {
    init();
    // 240 fps live source, a model far slower than 4 ms per frame (720x720 fixed input; at
    // 60 fps a release build on an idle machine kept up and dropped nothing).
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc is-live=true num-buffers=60 ! video/x-raw,width=320,height=240,framerate=240/1,format=RGBx ! \
         styletransfer name=st provider=cpu threads=1 model={} ! fakesink name=out sync=false",
        model("models/fns_rgb_720.onnx")
    ))
    .unwrap();
    let bin = pipeline.downcast_ref::<gst::Bin>().unwrap();
    let st = bin.by_name("st").unwrap();
    let out = bin.by_name("out").unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let last = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let (c, l) = (count.clone(), last.clone());
    out.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Some(b) = info.buffer() {
                l.store(b.offset(), std::sync::atomic::Ordering::SeqCst);
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let (r, _, _) = pipeline.state(gst::ClockTime::from_seconds(10));
    assert!(r.is_ok());
    let mut q = gst::query::Latency::new();
    assert!(out.static_pad("sink").unwrap().peer_query(&mut q));
    let (live, min, _max) = q.result();
    assert!(live);
    // Two frame periods of 1/240 s at least.
    assert!(
        min >= gst::ClockTime::from_nseconds(2 * 1_000_000_000 / 240),
        "reported latency {min}"
    );
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS");
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
    let processed = st.property::<u64>("frames-processed");
    let dropped = st.property::<u64>("frames-dropped");
    pipeline.set_state(gst::State::Null).unwrap();
    eprintln!("live: {processed} processed, {dropped} dropped");
    assert!(dropped > 0, "a slow model behind a live source must drop");
    assert_eq!(processed + dropped, 60, "every frame accounted for");
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), processed);
    // The newest frame wins: the last frame of the source always comes out.
    assert_eq!(last.load(std::sync::atomic::Ordering::SeqCst), 59);
}
