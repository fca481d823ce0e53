//! Bad input (issue #9): broken and unusual models, videos and flags, through `stylize image`,
//! `stylize convert`, the library and the `styletransfer` element. Each case has one clear
//! outcome: an error that names the file or flag and what was expected (exit status 2), or a
//! documented way of going on; never a panic, a hang or a silent loss. docs/RELIABILITY.md
//! ("Bad input") lists every case with the test that proves it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use assert_cmd::Command;
use common::*;
use gst::prelude::*;
use gst_check::Harness;
use predicates::prelude::*;
use stylize::frame::{FrameMut, PixelFormat};
use stylize::{SpecOverrides, StylizeError, Stylizer, StylizerOptions};

const GAN: &str = "models/gan_pm1_mult8.onnx";
const NAN: &str = "models/bad_nan.onnx";
const INF: &str = "models/bad_inf.onnx";
const POINTWISE: &str = "models/pointwise_1x1.onnx";

fn model(rel: &str) -> PathBuf {
    data().join(rel)
}

fn run_pipeline(desc: &str) {
    init();
    let p = gst::parse::launch(desc).unwrap();
    play_to_end(&p, 60).unwrap_or_else(|e| panic!("{desc}: {e}"));
}

/// A clip of test-pattern frames: `enc` is the encoder part of the pipeline, `mux` the muxer.
fn make_clip(path: &Path, w: u32, h: u32, frames: u32, enc: &str, mux: &str) {
    run_pipeline(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! \
         video/x-raw,width={w},height={h},framerate=25/1 ! videoconvert ! {enc} ! {mux} ! \
         filesink location={}",
        path.display()
    ));
}

/// A 160x120 H.264 MP4 of `frames` frames, with AAC sound.
fn make_mp4(path: &Path, frames: u32) {
    run_pipeline(&format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=160,height=120,framerate=25/1 ! \
         x264enc ! h264parse ! mp4mux name=m ! filesink location={} \
         audiotestsrc num-buffers={} samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=2 ! \
         audioconvert ! avenc_aac ! aacparse ! m.",
        path.display(),
        frames as u64 * 48000 / 25 / 960
    ));
}

/// What a decoded video file holds: frame count, size of the last frame, timestamps (ms).
#[derive(Debug, Default, Clone)]
struct Video {
    frames: u64,
    width: i32,
    height: i32,
    pts_ms: Vec<f64>,
}

fn probe(path: &Path) -> Video {
    init();
    let p = gst::parse::launch(&format!(
        "filesrc location={} ! decodebin ! video/x-raw ! fakesink name=s sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let info = Arc::new(Mutex::new(Video::default()));
    let i = info.clone();
    p.by_name("s")
        .unwrap()
        .static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let mut v = i.lock().unwrap();
            v.frames += 1;
            if let Some(pts) = info.buffer().and_then(|b| b.pts()) {
                v.pts_ms.push(pts.nseconds() as f64 / 1e6);
            }
            if let Some(s) = pad.current_caps().as_ref().and_then(|c| c.structure(0)) {
                v.width = s.get("width").unwrap_or(0);
                v.height = s.get("height").unwrap_or(0);
            }
            gst::PadProbeReturn::Ok
        });
    play_to_end(p.upcast_ref(), 60).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    info.lock().unwrap().clone()
}

fn no_partials(dir: &Path) {
    let left: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.contains(".partial-") || n.ends_with(".tmp")
        })
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

// ------------------------------------------------------------------------------------------
// Models
// ------------------------------------------------------------------------------------------

/// Every broken model, the text its error must hold besides its file name, and its path.
fn broken_models(dir: &Path) -> Vec<(PathBuf, &'static str)> {
    let empty = dir.join("empty.onnx");
    std::fs::write(&empty, b"").unwrap();
    let mut v = vec![
        (empty, "not a valid ONNX model: the file is empty"),
        (model("models/truncated.onnx"), "not a valid ONNX model"),
        (model("models/not_onnx.onnx"), "not a valid ONNX model"),
        // rank-2 input and output
        (
            model("models/bad_classifier.onnx"),
            "not an image generator: input 'input' is float32 [1,1000], expected a rank-4 image tensor",
        ),
        // an image in, class probabilities (rank 2) out
        (
            model("models/bad_logits.onnx"),
            "not an image generator: no rank-4 image output",
        ),
        (
            model("models/bad_gray.onnx"),
            "not an image generator: input 'input' is float32 [1,1,?,?] (nchw): 1 channel(s), expected 3",
        ),
        (
            model("models/bad_rgba.onnx"),
            "not an image generator: input 'input' is float32 [1,4,?,?] (nchw): 4 channel(s), expected 3",
        ),
        (
            model("models/bad_int8.onnx"),
            "not an image generator: input 'input' is int8",
        ),
        (dir.to_path_buf(), "is a directory, expected an .onnx file"),
        (dir.join("missing.onnx"), "no such file"),
    ];
    // Root reads any file whatever its permissions, so the unreadable case can only be
    // checked as another user (CI runs as root here: the case is then skipped).
    if !is_root() {
        let locked = dir.join("locked.onnx");
        std::fs::copy(model(GAN), &locked).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        v.push((locked, "cannot read"));
    } else {
        eprintln!("running as root: the unreadable-model case is skipped (root can read it)");
    }
    v
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn broken_models_through_image_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    for (m, want) in broken_models(dir.path()) {
        let assert = stylize()
            .arg("image")
            .arg(data().join("input.png"))
            .arg(&out)
            .arg("--model")
            .arg(&m)
            .assert()
            .code(2);
        let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(
            err.contains(&file_name(&m)) && err.contains(want) && err.lines().count() == 1,
            "{}: {err}",
            m.display()
        );
        assert!(!out.exists());
    }
    no_partials(dir.path());
}

#[test]
fn broken_models_through_convert_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    make_clip(&input, 64, 48, 3, "vp8enc deadline=1", "matroskamux");
    let out = dir.path().join("o.mp4");
    for (m, want) in broken_models(dir.path()) {
        if m == dir.path() {
            continue; // the directory holds the input: it is its own case below
        }
        let assert = stylize()
            .arg("convert")
            .arg(&input)
            .arg(&out)
            .arg("--model")
            .arg(&m)
            .assert()
            .code(2);
        let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(
            err.contains(&file_name(&m)) && err.contains(want),
            "{}: {err}",
            m.display()
        );
        assert!(!out.exists());
    }
    let models_dir = data().join("models");
    stylize()
        .arg("convert")
        .arg(&input)
        .arg(&out)
        .arg("--model")
        .arg(&models_dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is a directory, expected an .onnx file",
        ));
    no_partials(dir.path());
}

/// Starts a pipeline with `styletransfer model=...`; returns the error message on the bus.
fn element_start_error(model_path: &Path) -> String {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=32,height=24 ! \
         styletransfer name=st provider=cpu ! fakesink",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let st = pipeline.by_name("st").unwrap();
    st.set_property("model", model_path.to_str().unwrap());
    let changed = pipeline.set_state(gst::State::Playing);
    let msg = pipeline
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("neither an error nor EOS");
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(
        changed.is_err(),
        "{}: the state change must fail",
        model_path.display()
    );
    match msg.view() {
        gst::MessageView::Error(e) => format!("{} {:?}", e.error(), e.debug()),
        other => panic!("{}: expected an error, got {other:?}", model_path.display()),
    }
}

#[test]
fn broken_models_fail_the_element_state_change_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (m, want) in broken_models(dir.path()) {
        let err = element_start_error(&m);
        assert!(
            err.contains("cannot load the style model")
                && err.contains(&file_name(&m))
                && err.contains(want),
            "{}: {err}",
            m.display()
        );
    }
}

#[test]
fn a_model_with_another_output_size_keeps_the_frame_size_in_the_element() {
    // bad_output_size halves the picture (tests/conventions.rs checks the library scales it
    // back); through the element every buffer keeps its size.
    let mut h = harness(&[(
        "model",
        model("models/bad_output_size.onnx").to_str().unwrap(),
    )]);
    h.set_src_caps_str("video/x-raw,format=RGBx,width=33,height=17,framerate=25/1");
    for i in 0..2 {
        h.push(frame_buffer(33, 17, 4, i, |x, y, c| {
            (x * 7 + y * 3 + c * 50) as u8
        }))
        .unwrap();
    }
    for b in pull_all(&mut h, 2) {
        assert_eq!(b.size(), 33 * 17 * 4);
    }
}

// ------------------------------------------------------------------------------------------
// NaN / Inf output: never garbage pixels
// ------------------------------------------------------------------------------------------

fn load(rel: &str, scale: f32) -> Stylizer {
    Stylizer::load(
        &model(rel),
        &SpecOverrides::default(),
        &cpu(),
        StylizerOptions {
            inference_scale: scale,
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn nan_or_inf_output_leaves_the_frame_unchanged() {
    let (w, h, rgb) = load_rgb(&data().join("input.png"));
    // Direct path (full size) and resized path (inference scale), full and half strength,
    // a model with some NaN (dark pixels) and one with only Inf/NaN.
    for (m, scale) in [(NAN, 1.0), (NAN, 0.5), (INF, 1.0), (INF, 0.5)] {
        let mut s = load(m, scale);
        for strength in [1.0, 0.5] {
            let mut px = rgb.clone();
            let mut f = FrameMut::new(&mut px, w, h, w * 3, PixelFormat::Rgb).unwrap();
            match s.process(&mut f, strength) {
                Err(StylizeError::NonFinite {
                    count,
                    total,
                    width,
                    height,
                }) => {
                    assert!(count > 0 && count <= total, "{m}: {count} of {total}");
                    assert_eq!((width, height), (w, h));
                }
                other => panic!("{m} at scale {scale}: {other:?}"),
            }
            assert_eq!(
                px, rgb,
                "{m} at scale {scale}, strength {strength}: frame changed"
            );
        }
    }
    // A bright picture gives finite values: the same model stylises it.
    let mut s = load(NAN, 1.0);
    let mut px = vec![180u8; 8 * 4 * 3];
    let mut f = FrameMut::new(&mut px, 8, 4, 24, PixelFormat::Rgb).unwrap();
    s.process(&mut f, 1.0).unwrap();
    assert!(px.iter().all(|&v| v == 143), "16 * sqrt(180 - 100) = 143.1");
}

#[test]
fn nan_output_through_image_exits_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    for m in [NAN, INF] {
        stylize()
            .arg("image")
            .arg(data().join("input.png"))
            .arg(&out)
            .arg("--model")
            .arg(model(m))
            .assert()
            .code(2)
            .stderr(predicate::str::contains(file_name(&model(m))))
            .stderr(predicate::str::contains(
                "the model produced NaN or infinite values",
            ))
            .stderr(predicate::str::contains("nothing was written"));
        assert!(!out.exists());
    }
    no_partials(dir.path());
}

#[test]
fn nan_output_through_convert_warns_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    make_clip(&input, 64, 48, 6, "vp8enc deadline=1", "matroskamux");
    let out = dir.path().join("o.mkv");
    let assert = stylize()
        .arg("convert")
        .arg(&input)
        .arg(&out)
        .arg("--model")
        .arg(model(NAN))
        .arg("--json")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "bad_nan.onnx produced NaN or infinite values for 6 of 6 frames",
        ));
    let v: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(v["frames"], 6);
    assert_eq!(v["non_finite_frames"], 6);
    assert_eq!(probe(&out).frames, 6, "nothing lost");
}

/// A harness around `styletransfer` on the CPU that keeps every frame.
fn harness(props: &[(&str, &str)]) -> Harness {
    init();
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
    h
}

/// A `w`×`h` frame with `bpp` bytes per pixel in GStreamer's layout (rows padded to 4 bytes).
fn frame_buffer(
    w: usize,
    h: usize,
    bpp: usize,
    i: u64,
    px: impl Fn(usize, usize, usize) -> u8,
) -> gst::Buffer {
    let stride = (w * bpp).div_ceil(4) * 4;
    let mut data = vec![0u8; stride * h];
    for y in 0..h {
        for x in 0..w {
            for c in 0..bpp {
                data[y * stride + x * bpp + c] = px(x, y, c);
            }
        }
    }
    let mut b = gst::Buffer::from_mut_slice(data);
    {
        let b = b.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(i * 40));
        b.set_duration(gst::ClockTime::from_mseconds(40));
        b.set_offset(i);
    }
    b
}

fn pull_all(h: &mut Harness, n: usize) -> Vec<gst::Buffer> {
    assert!(h.push_event(gst::event::Eos::new()));
    let out: Vec<gst::Buffer> = (0..n)
        .map(|i| {
            h.try_pull()
                .unwrap_or_else(|| panic!("output {i} of {n} missing"))
        })
        .collect();
    assert!(h.try_pull().is_none(), "more outputs than inputs");
    out
}

fn bytes(b: &gst::Buffer) -> Vec<u8> {
    b.map_readable().unwrap().to_vec()
}

#[test]
fn nan_frames_pass_through_the_element_with_one_warning() {
    let (w, h, rgb) = load_rgb(&data().join("input.png"));
    let dark = move |x: usize, y: usize, c: usize| rgb[(y * w + x) * 3 + c];
    for temporal in ["none", "ema", "flow"] {
        let mut hs = harness(&[
            ("model", model(NAN).to_str().unwrap()),
            ("temporal", temporal),
            ("temporal-weight", "0.5"),
        ]);
        let element = hs.element().unwrap();
        let bus = gst::Bus::new();
        element.set_bus(Some(&bus));
        hs.set_src_caps_str(&format!(
            "video/x-raw,format=RGB,width={w},height={h},framerate=25/1"
        ));
        // bright (finite), dark (NaN), brighter (finite), dark, dark at half strength
        let inputs = [
            frame_buffer(w, h, 3, 0, |_, _, _| 180),
            frame_buffer(w, h, 3, 1, &dark),
            frame_buffer(w, h, 3, 2, |_, _, _| 200),
            frame_buffer(w, h, 3, 3, &dark),
            frame_buffer(w, h, 3, 4, &dark),
        ];
        let kept: Vec<Vec<u8>> = inputs.iter().map(bytes).collect();
        for (i, b) in inputs.into_iter().enumerate() {
            if i == 4 {
                element.set_property("strength", 0.5f64);
            }
            hs.push(b).unwrap();
        }
        let out = pull_all(&mut hs, 5);
        let stride = (w * 3).div_ceil(4) * 4;
        let colour = |b: &gst::Buffer| -> Vec<u8> {
            let m = b.map_readable().unwrap();
            (0..h)
                .flat_map(|y| m[y * stride..y * stride + w * 3].to_vec())
                .collect()
        };
        assert!(colour(&out[0]).iter().all(|&v| v == 143), "{temporal}");
        for i in [1, 3, 4] {
            assert_eq!(
                bytes(&out[i]),
                kept[i],
                "{temporal}: frame {i} passes through"
            );
            assert_eq!(
                out[i].pts(),
                Some(gst::ClockTime::from_mseconds(i as u64 * 40))
            );
        }
        // The history restarts after a passed-through frame: no blend with frame 0.
        assert!(
            colour(&out[2]).iter().all(|&v| v == 160),
            "{temporal}: 16 * sqrt(200 - 100)"
        );
        assert_eq!(element.property::<u64>("frames-non-finite"), 3);
        let warnings: Vec<String> = std::iter::from_fn(|| bus.pop())
            .filter_map(|m| match m.view() {
                gst::MessageView::Warning(w) => Some(w.error().to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(
            warnings.len(),
            1,
            "{temporal}: one warning per stream: {warnings:?}"
        );
        assert!(
            warnings[0].contains("bad_nan.onnx") && warnings[0].contains("NaN"),
            "{}",
            warnings[0]
        );
    }
}

// ------------------------------------------------------------------------------------------
// Videos
// ------------------------------------------------------------------------------------------

fn convert_cmd(input: &Path, output: &Path) -> Command {
    let mut c = stylize();
    c.arg("convert")
        .arg(input)
        .arg(output)
        .arg("--model")
        .arg(model(GAN))
        .args(["--provider", "cpu"]);
    c
}

#[test]
fn a_corrupt_middle_converts_what_decodes_and_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.mp4");
    make_mp4(&good, 40);
    let mut b = std::fs::read(&good).unwrap();
    let n = b.len();
    // Bytes flipped in the middle tenth of the file: the media data of a few frames.
    for v in &mut b[n * 45 / 100..n * 55 / 100] {
        *v ^= 0xFF;
    }
    let corrupt = dir.path().join("corrupt.mp4");
    std::fs::write(&corrupt, &b).unwrap();
    let out = dir.path().join("o.mkv");
    let assert = convert_cmd(&corrupt, &out)
        .arg("--json")
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "could not be decoded (damaged data)",
        ));
    let v: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    let (frames, missing) = (
        v["frames"].as_u64().unwrap(),
        v["undecodable_frames"].as_u64().unwrap(),
    );
    assert!(missing > 0 && frames + missing == 40, "{v}");
    assert_eq!(probe(&out).frames, frames);
    // The intact file: no warning.
    convert_cmd(&good, &dir.path().join("g.mkv"))
        .assert()
        .success()
        .stderr(predicate::str::contains("warning").not());
    no_partials(dir.path());
}

#[test]
fn a_still_picture_is_refused_pointing_to_stylize_image() {
    let dir = tempfile::tempdir().unwrap();
    let jpeg = dir.path().join("photo.jpg");
    image::open(data().join("input.png"))
        .unwrap()
        .to_rgb8()
        .save(&jpeg)
        .unwrap();
    // Named like a video, still a picture.
    let disguised = dir.path().join("clip.mp4");
    std::fs::copy(data().join("input.png"), &disguised).unwrap();
    for (input, kind) in [
        (data().join("input.png"), "PNG"),
        (jpeg, "JPEG"),
        (disguised, "PNG"),
    ] {
        let out = dir.path().join("o.mp4");
        convert_cmd(&input, &out)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(format!(
                "{}: is a still picture ({kind}), not a video: use `stylize image",
                input.display()
            )));
        assert!(!out.exists());
    }
    no_partials(dir.path());
}

#[test]
fn tiny_and_odd_frame_sizes_convert_to_a_size_the_codec_takes() {
    let dir = tempfile::tempdir().unwrap();
    // (decoded size, written size in .mkv (h264: even), written size in .mp4 (16 and even))
    for ((w, h), mkv, mp4) in [
        ((1, 1), (2, 2), (16, 16)),
        ((2, 2), (2, 2), (16, 16)),
        ((17, 9), (18, 10), (30, 16)),
        ((33, 17), (34, 18), (34, 18)),
    ] {
        let input = dir.path().join(format!("in_{w}x{h}.mkv"));
        make_clip(&input, w, h, 4, "vp8enc deadline=1", "matroskamux");
        for (ext, want) in [("mkv", mkv), ("mp4", mp4)] {
            let out = dir.path().join(format!("o_{w}x{h}.{ext}"));
            let assert = convert_cmd(&input, &out).arg("--json").assert().success();
            let v: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
            assert_eq!(
                (v["width"].as_u64(), v["height"].as_u64()),
                (Some(want.0 as u64), Some(want.1 as u64)),
                "{w}x{h} .{ext}: {v}"
            );
            let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
            if (w, h) != want {
                assert!(
                    err.contains(&format!(
                        "frames of {w}x{h} written as {}x{}",
                        want.0, want.1
                    )),
                    "{err}"
                );
            }
            let o = probe(&out);
            assert_eq!(
                (o.frames, o.width as u32, o.height as u32),
                (4, want.0, want.1),
                "{w}x{h} .{ext}"
            );
        }
    }
    // VP9 in Matroska takes any size: kept as it is.
    let input = dir.path().join("in_17x9.mkv");
    let out = dir.path().join("o_vp9.mkv");
    convert_cmd(&input, &out)
        .args(["--codec", "vp9"])
        .assert()
        .success();
    let o = probe(&out);
    assert_eq!((o.frames, o.width, o.height), (4, 17, 9));
    // An explicit --size the codec cannot take is refused with one it can.
    convert_cmd(&input, &dir.path().join("x.mp4"))
        .args(["--size", "17x9"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--size 17x9: h264 video in a .mp4 file needs even sides of at least 16 pixels (e.g. --size 30x16)",
        ));
    no_partials(dir.path());
}

#[test]
fn a_start_past_the_end_is_refused_with_the_video_length() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    make_clip(&input, 64, 48, 5, "vp8enc deadline=1", "matroskamux");
    let out = dir.path().join("o.mp4");
    convert_cmd(&input, &out)
        .args(["--start", "10"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--start 10.000 s is at or past the end of",
        ))
        .stderr(predicate::str::contains(
            "(0.200 s of video): nothing to convert",
        ));
    assert!(!out.exists());
    no_partials(dir.path());
}

/// A variable-frame-rate clip (caps framerate 0/1, irregular timestamps) in Matroska.
fn make_vfr_clip(path: &Path, gaps_ms: &[u64]) {
    init();
    let p = gst::parse::launch(&format!(
        "appsrc name=src format=time caps=video/x-raw,format=RGB,width=64,height=48,framerate=0/1 ! \
         videoconvert ! x264enc ! h264parse ! matroskamux ! filesink location={}",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = p
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut t = 0;
    for (i, &g) in gaps_ms.iter().enumerate() {
        let mut b = gst::Buffer::from_mut_slice(vec![(i * 20 % 256) as u8; 64 * 48 * 3]);
        {
            let b = b.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(t));
            b.set_duration(gst::ClockTime::from_mseconds(g));
        }
        src.push_buffer(b).unwrap();
        t += g;
    }
    src.end_of_stream().unwrap();
    let msg = p
        .bus()
        .unwrap()
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .unwrap();
    p.set_state(gst::State::Null).unwrap();
    assert!(matches!(msg.view(), gst::MessageView::Eos(_)), "{msg:?}");
}

#[test]
fn variable_frame_rate_keeps_every_frame_and_its_timing() {
    let dir = tempfile::tempdir().unwrap();
    let gaps = [40, 10, 90, 33, 200, 16, 50, 40, 70, 20];
    let input = dir.path().join("vfr.mkv");
    make_vfr_clip(&input, &gaps);
    let i = probe(&input);
    assert_eq!(i.frames, 10);
    let rel = |v: &[f64]| -> Vec<i64> { v.iter().map(|t| (t - v[0]).round() as i64).collect() };
    for ext in ["mkv", "mp4", "mov"] {
        let out = dir.path().join(format!("o.{ext}"));
        let assert = convert_cmd(&input, &out).arg("--json").assert().success();
        let v: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
        assert_eq!(v["frames"], 10, ".{ext}");
        // The duration is the span of the timestamps, not frames / frame rate (0/1).
        let d = v["duration_s"].as_f64().unwrap();
        assert!((d - 0.549).abs() < 0.01, ".{ext}: {d}");
        let o = probe(&out);
        assert_eq!(o.frames, 10, ".{ext}: every frame is shown");
        let mut got = o.pts_ms.clone();
        got.sort_by(f64::total_cmp);
        assert_eq!(rel(&got), rel(&i.pts_ms), ".{ext}: the timing is kept");
    }
}

#[test]
fn variable_frame_rate_through_the_element_keeps_timestamps() {
    let gaps = [0u64, 40, 50, 140, 173, 373, 389];
    for temporal in ["none", "flow"] {
        let mut h = harness(&[
            ("model", model(GAN).to_str().unwrap()),
            ("temporal", temporal),
        ]);
        h.set_src_caps_str("video/x-raw,format=RGBx,width=64,height=48,framerate=0/1");
        for (i, &t) in gaps.iter().enumerate() {
            let mut b = frame_buffer(64, 48, 4, i as u64, |x, y, c| {
                (x + y * 2 + c * 40 + i * 3) as u8
            });
            {
                let b = b.get_mut().unwrap();
                b.set_pts(gst::ClockTime::from_mseconds(t));
                b.set_duration(gst::ClockTime::NONE);
            }
            h.push(b).unwrap();
        }
        let out = pull_all(&mut h, gaps.len());
        let pts: Vec<u64> = out.iter().map(|b| b.pts().unwrap().mseconds()).collect();
        assert_eq!(pts, gaps, "{temporal}");
    }
}

/// A transport stream whose picture size changes mid-stream (two streams, concatenated).
fn make_size_change_ts(path: &Path) {
    let dir = path.parent().unwrap();
    let (a, b) = (dir.join("a.ts"), dir.join("b.ts"));
    for (p, w, h, pattern, offset) in [
        (&a, 160, 120, "ball", 0u64),
        (&b, 96, 64, "smpte", 400_000_000),
    ] {
        run_pipeline(&format!(
            "videotestsrc num-buffers=10 pattern={pattern} timestamp-offset={offset} ! \
             video/x-raw,width={w},height={h},framerate=25/1,format=I420 ! x264enc key-int-max=10 ! \
             video/x-h264,stream-format=byte-stream ! mpegtsmux ! filesink location={}",
            p.display()
        ));
    }
    let mut bytes = std::fs::read(&a).unwrap();
    bytes.extend(std::fs::read(&b).unwrap());
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_size_change_mid_stream_converts_at_the_first_size() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("resize.ts");
    make_size_change_ts(&input);
    assert_eq!(probe(&input).frames, 20);
    for ext in ["mkv", "mp4"] {
        let out = dir.path().join(format!("o.{ext}"));
        let assert = convert_cmd(&input, &out).arg("--json").assert().success();
        let v: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
        assert_eq!(
            (v["width"].as_u64(), v["height"].as_u64()),
            (Some(160), Some(120))
        );
        let err = String::from_utf8_lossy(&assert.get_output().stderr).into_owned();
        assert!(
            err.contains("the input changes size mid-stream (1 time(s), first to 96x64); later frames were scaled to 160x120"),
            "{err}"
        );
        let o = probe(&out);
        assert_eq!((o.frames, o.width, o.height), (20, 160, 120), ".{ext}");
    }
}

#[test]
fn tiny_and_odd_frames_through_the_element() {
    for (w, h) in [(1usize, 1usize), (2, 2), (17, 9), (9, 17)] {
        for (format, bpp) in [("RGB", 3usize), ("BGRx", 4)] {
            for temporal in ["none", "flow"] {
                let mut hs = harness(&[
                    ("model", model(GAN).to_str().unwrap()),
                    ("temporal", temporal),
                ]);
                hs.set_src_caps_str(&format!(
                    "video/x-raw,format={format},width={w},height={h},framerate=25/1"
                ));
                for i in 0..3 {
                    hs.push(frame_buffer(w, h, bpp, i, |x, y, c| {
                        (x * 30 + y * 20 + c * 60) as u8
                    }))
                    .unwrap();
                }
                let stride = (w * bpp).div_ceil(4) * 4;
                for b in pull_all(&mut hs, 3) {
                    assert_eq!(b.size(), stride * h, "{w}x{h} {format} {temporal}");
                }
            }
        }
    }
}

#[test]
fn an_8k_frame_through_the_element() {
    // 7680x4320 RGBx (132 MB a frame) with a 1x1 model: each output pixel depends on its input
    // pixel only, so the frame is a 16x16 tile repeated and the output must be the library's
    // output for that tile, repeated.
    let (w, h, t) = (7680usize, 4320usize, 16usize);
    let mut tile: Vec<u8> = (0..t * t * 4).map(|i| (i * 37 % 251) as u8).collect();
    let tile_in = tile.clone();
    let mut s = load(POINTWISE, 1.0);
    let mut f = FrameMut::new(&mut tile, t, t, t * 4, PixelFormat::Rgbx).unwrap();
    s.process(&mut f, 1.0).unwrap();
    assert_ne!(tile, tile_in);
    let rows = |tile: &[u8]| -> Vec<Vec<u8>> {
        (0..t)
            .map(|y| tile[y * t * 4..(y + 1) * t * 4].repeat(w / t))
            .collect()
    };
    let (rows_in, rows_out) = (rows(&tile_in), rows(&tile));
    let mut data = vec![0u8; w * h * 4];
    for (y, row) in data.chunks_exact_mut(w * 4).enumerate() {
        row.copy_from_slice(&rows_in[y % t]);
    }
    let mut hs = harness(&[("model", model(POINTWISE).to_str().unwrap())]);
    hs.set_src_caps_str(&format!(
        "video/x-raw,format=RGBx,width={w},height={h},framerate=25/1"
    ));
    // One frame: the element has already run the model once on a black 8K frame (the probe
    // at caps time), so this is its second 8K inference.
    hs.push(gst::Buffer::from_mut_slice(data)).unwrap();
    for b in pull_all(&mut hs, 1) {
        let m = b.map_readable().unwrap();
        assert_eq!(m.len(), w * h * 4);
        for (y, row) in m.chunks_exact(w * 4).enumerate() {
            assert!(row == rows_out[y % t].as_slice(), "8K output row {y}");
        }
    }
}

// ------------------------------------------------------------------------------------------
// Flags
// ------------------------------------------------------------------------------------------

#[test]
fn every_out_of_range_flag_names_itself_and_its_range() {
    let m = model(GAN).display().to_string();
    let img = data().join("input.png").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out_png = dir.path().join("o.png").display().to_string();
    let out_mp4 = dir.path().join("o.mp4").display().to_string();
    // Where each flag is given: a command line that is valid without it.
    let image = vec![
        "image",
        img.as_str(),
        out_png.as_str(),
        "--model",
        m.as_str(),
    ];
    let convert = vec![
        "convert",
        img.as_str(),
        out_mp4.as_str(),
        "--model",
        m.as_str(),
    ];
    let live = vec![
        "live",
        "--source",
        "test",
        "--sink",
        "null",
        "--model",
        m.as_str(),
    ];
    let live_any_sink = vec!["live", "--source", "test", "--model", m.as_str()];
    let bench = vec!["bench", "--model", m.as_str()];
    let eval = vec![
        "eval", "temporal", "--input", "in.mp4", "--output", "out.mp4",
    ];
    // (flag, out-of-range value, text naming the valid range)
    let model_flags: Vec<(&str, &str, &str)> = vec![
        ("--provider", "gpu", "expected auto, tensorrt, cuda or cpu"),
        ("--device-id", "65", "from 0 to 64"),
        ("--device-id", "-1", "from 0 to 64"),
        ("--threads", "1025", "from 0 (automatic) to 1024"),
        ("--strength", "1.5", "between 0 and 1"),
        ("--strength", "-1", "between 0 and 1"),
        ("--strength", "nan", "between 0 and 1"),
        ("--inference-scale", "0", "above 0 and at most 1"),
        ("--inference-scale", "2", "above 0 and at most 1"),
        ("--input-range", "0-2", "expected 0-1, 0-255 or -1-1"),
        ("--output-range", "1-2", "expected 0-1, 0-255 or -1-1"),
        ("--channel-order", "rbg", "expected rgb or bgr"),
        ("--layout", "nhcw", "expected nchw or nhwc"),
        ("--multiple-of", "0", "from 1 to 1024"),
        ("--multiple-of", "2048", "from 1 to 1024"),
        ("--upsampler", "nearest", "expected guided or bilinear"),
        ("--trt-resolutions", "12x", "needs sizes from 1 to 16384"),
        ("--trt-resolutions", "1280", "is not WxH"),
    ];
    let temporal_flags: Vec<(&str, &str, &str)> = vec![
        ("--temporal", "blur", "[possible values: none, ema, flow]"),
        (
            "--flow-preset",
            "slow",
            "[possible values: ultrafast, fast, medium]",
        ),
        ("--temporal-weight", "1.5", "between 0 and 1"),
        ("--temporal-weight", "-0.1", "between 0 and 1"),
    ];
    let mut cases: Vec<(Vec<&str>, &str, &str, &str)> = Vec::new();
    for base in [&image, &convert, &live, &bench] {
        for &(flag, value, range) in &model_flags {
            cases.push((base.clone(), flag, value, range));
        }
    }
    for base in [&convert, &live, &bench] {
        for &(flag, value, range) in &temporal_flags {
            cases.push((base.clone(), flag, value, range));
        }
    }
    for base in [&convert, &live] {
        cases.push((base.clone(), "--flow-scale", "2", "between 0 and 1"));
        cases.push((base.clone(), "--frames", "0", "of 1 or more"));
        cases.push((base.clone(), "--frames", "-3", "of 1 or more"));
        cases.push((base.clone(), "--size", "1x1", "sizes from 2 to 16384"));
        cases.push((base.clone(), "--size", "640by360", "sizes from 2 to 16384"));
    }
    let specific: Vec<(&Vec<&str>, &str, &str, &str)> = vec![
        (&convert, "--parallel-frames", "9", "0..=8"),
        (
            &convert,
            "--codec",
            "mpeg2",
            "expected h264, h265, vp9, av1 or mpeg4",
        ),
        (
            &convert,
            "--quality",
            "52",
            "--quality for h264 must be from 0 to 51",
        ),
        (
            &convert,
            "--quality",
            "-1",
            "from 0 to 51 for h264/h265, 0 to 63 for vp9/av1 or 1 to 31 for mpeg4",
        ),
        (&convert, "--bitrate", "10", "50..=200000"),
        (&convert, "--start", "-1", "a time of 0 or more"),
        (&convert, "--duration", "0", "--duration must be above 0"),
        (&convert, "--duration", "1:99", "a time of 0 or more"),
        (
            &convert,
            "--container",
            "avi",
            "[possible values: mp4, mkv, webm, mov]",
        ),
        (&live, "--fps", "0", "1..=240"),
        (&live, "--fps", "241", "1..=240"),
        (
            &live,
            "--backend",
            "dshow",
            "[possible values: nokhwa, gst]",
        ),
        (
            &live_any_sink,
            "--sink",
            "hdmi",
            "--sink takes window, null, v4l2:/dev/videoN or a file",
        ),
        (&bench, "--frames", "1", "of 2 or more"),
        (&bench, "--resolution", "0x5", "needs sizes from 1 to 16384"),
        (&bench, "--parallel-frames", "9", "0..=8"),
        (&eval, "--frames", "1", "of 2 or more"),
        (&eval, "--flow-divisor", "17", "1..=16"),
        (
            &eval,
            "--flow-preset",
            "slow",
            "[possible values: ultrafast, fast, medium]",
        ),
    ];
    for (base, flag, value, range) in specific {
        cases.push((base.clone(), flag, value, range));
    }
    // `--quality` for VP9 has its own range.
    cases.push((
        vec![
            "convert",
            img.as_str(),
            out_mp4.as_str(),
            "--model",
            m.as_str(),
            "--codec",
            "vp9",
        ],
        "--quality",
        "64",
        "--quality for vp9 must be from 0 to 63",
    ));
    let mut failures = Vec::new();
    for (base, flag, value, range) in &cases {
        let out = stylize()
            .args(base)
            .arg(flag)
            .arg(value)
            .timeout(std::time::Duration::from_secs(30))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        if out.status.code() != Some(2) || !err.contains(flag) || !err.contains(range) {
            failures.push(format!(
                "stylize {} {flag} {value}: exit {:?}, stderr: {err}",
                base.join(" "),
                out.status.code()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(!Path::new(&out_png).exists() && !Path::new(&out_mp4).exists());
    // The element's own ranges: a value out of range is refused, not applied.
    init();
    let e = gst::ElementFactory::make("styletransfer").build().unwrap();
    for (name, value) in [
        ("device-id", "65"),
        ("strength", "2"),
        ("parallel-frames", "9"),
    ] {
        let err = stylize::convert::set_property_checked(&e, name, value).unwrap_err();
        assert!(err.contains(name) && err.contains("must be from"), "{err}");
    }
}
