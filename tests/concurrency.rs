//! Several `styletransfer` elements at once: four behind a tee in one pipeline, and two such
//! pipelines (two models) in one process at the same time. Each branch must give exactly
//! what a single element gives on the same frames (CPU inference is deterministic; the
//! settings are equal but for `parallel-frames`, which must not change the output). The fast
//! version of `cargo run --release --example storm -- tee` (docs/RELIABILITY.md).

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use gst::prelude::*;

const FRAMES: u64 = 8;

type Frames = Arc<Mutex<Vec<(Option<gst::ClockTime>, Vec<u8>)>>>;

fn model(rel: &str) -> String {
    data().join(rel).display().to_string()
}

fn source() -> String {
    format!(
        "videotestsrc pattern=ball num-buffers={FRAMES} ! \
         video/x-raw,width=64,height=48,format=RGBx,framerate=30/1"
    )
}

fn element(model: &str, parallel: u32) -> String {
    format!(
        "styletransfer provider=cpu threads=1 drop-frames=false temporal=flow \
         flow-preset=ultrafast parallel-frames={parallel} model={model}"
    )
}

fn collect(p: &gst::Pipeline, sink: &str) -> Frames {
    let frames: Frames = Arc::default();
    let f = frames.clone();
    p.by_name(sink)
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                let m = b.map_readable().unwrap();
                f.lock().unwrap().push((b.pts(), m.to_vec()));
            }
            gst::PadProbeReturn::Ok
        });
    frames
}

fn launch(desc: &str) -> gst::Pipeline {
    stylize::element::register_static().unwrap();
    gst::parse::launch(desc)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap()
}

/// Waits for EOS (panics on an error or after 60 s) and stops the pipeline.
fn finish(p: &gst::Pipeline) {
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("neither EOS nor an error within 60 s");
    p.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
}

fn reference(model: &str) -> Vec<(Option<gst::ClockTime>, Vec<u8>)> {
    let p = launch(&format!(
        "{} ! {} ! fakesink name=out sync=false",
        source(),
        element(model, 1)
    ));
    let out = collect(&p, "out");
    p.set_state(gst::State::Playing).unwrap();
    finish(&p);
    let v = std::mem::take(&mut *out.lock().unwrap());
    assert_eq!(v.len() as u64, FRAMES);
    v
}

fn tee(model: &str, branches: usize) -> (gst::Pipeline, Vec<Frames>) {
    let mut desc = format!("{} ! tee name=t", source());
    for i in 0..branches {
        desc += &format!(
            " t. ! queue ! {} ! fakesink name=out{i} sync=false",
            element(model, 1 + (i % 2) as u32)
        );
    }
    let p = launch(&desc);
    let sinks = (0..branches)
        .map(|i| collect(&p, &format!("out{i}")))
        .collect();
    (p, sinks)
}

fn assert_same(what: &str, want: &[(Option<gst::ClockTime>, Vec<u8>)], sinks: &[Frames]) {
    for (i, s) in sinks.iter().enumerate() {
        let got = s.lock().unwrap();
        assert_eq!(got.len(), want.len(), "{what}, branch {i}: frame count");
        for (n, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(g.0, w.0, "{what}, branch {i}, frame {n}: timestamp");
            if g.1 != w.1 {
                let d = g.1.iter().zip(&w.1).filter(|(a, b)| a != b).count();
                panic!("{what}, branch {i}, frame {n}: {d} bytes differ");
            }
        }
    }
}

#[test]
fn four_elements_behind_a_tee_match_one_element() {
    let a = model("models/gan_pm1_mult8.onnx");
    let want = reference(&a);
    let (p, sinks) = tee(&a, 4);
    p.set_state(gst::State::Playing).unwrap();
    finish(&p);
    assert_same("tee x4", &want, &sinks);
}

#[test]
fn two_pipelines_at_once_each_match_their_reference() {
    let (a, b) = (
        model("models/gan_pm1_mult8.onnx"),
        model("models/nhwc_unit_fp16.onnx"),
    );
    let (want_a, want_b) = (reference(&a), reference(&b));
    assert!(want_a != want_b, "two models, two outputs");
    let (pa, sa) = tee(&a, 2);
    let (pb, sb) = tee(&b, 2);
    pa.set_state(gst::State::Playing).unwrap();
    pb.set_state(gst::State::Playing).unwrap();
    finish(&pa);
    finish(&pb);
    assert_same("pipeline A", &want_a, &sa);
    assert_same("pipeline B", &want_b, &sb);
}

/// Found by the tee storm: outputs with temporal blending differed from run to run. The
/// element took the base class's `is_discont`, which stays set until the first output is
/// pushed, as "this buffer is discontinuous": the second input (and the third, when the
/// model was slower) also reset the history. Only the first frame may restart it: from the
/// second on, the element's output is the library's EMA of the stylised frames.
#[test]
fn only_the_first_frame_restarts_the_history() {
    use stylize::frame::{Frame, FrameMut, PixelFormat};
    use stylize::temporal::{TemporalFilter, TemporalMode, TemporalOptions};
    use stylize::{EngineOptions, Provider, Stylizer};

    let a = model("models/gan_pm1_mult8.onnx");
    let p = launch(&format!(
        "{} ! styletransfer name=st provider=cpu threads=1 drop-frames=false temporal=ema \
         temporal-weight=0.5 model={a} ! fakesink name=out sync=false",
        source()
    ));
    let out = collect(&p, "out");
    let inputs: Frames = Arc::default();
    let i = inputs.clone();
    p.by_name("st")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(b) = info.buffer() {
                i.lock()
                    .unwrap()
                    .push((b.pts(), b.map_readable().unwrap().to_vec()));
            }
            gst::PadProbeReturn::Ok
        });
    p.set_state(gst::State::Playing).unwrap();
    finish(&p);

    let opts = EngineOptions {
        provider: Provider::Cpu,
        threads: 1,
        ..Default::default()
    };
    let mut s = Stylizer::load(
        std::path::Path::new(&a),
        &Default::default(),
        &opts,
        Default::default(),
    )
    .unwrap();
    let mut t = TemporalFilter::new(TemporalOptions::default());
    let got = out.lock().unwrap();
    let inputs = inputs.lock().unwrap();
    assert_eq!(got.len() as u64, FRAMES);
    for (n, ((_, input), (_, output))) in inputs.iter().zip(got.iter()).enumerate() {
        let mut px = input.clone();
        t.observe(
            &Frame::new(&px, 64, 48, 256, PixelFormat::Rgbx).unwrap(),
            TemporalMode::Ema,
        );
        let mut f = FrameMut::new(&mut px, 64, 48, 256, PixelFormat::Rgbx).unwrap();
        s.process(&mut f, 1.0).unwrap();
        t.blend(&mut f, TemporalMode::Ema, 0.5).unwrap();
        assert!(
            px == *output,
            "frame {n} is not the EMA of the stylised frames"
        );
    }
}
