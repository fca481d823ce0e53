//! `stylize convert` on clips the tests make (test pattern + test tone, muxed), run as a
//! user runs it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::*;
use gst::prelude::*;
use predicates::prelude::*;

const MODEL: &str = "models/gan_pm1_mult8.onnx";

fn run_pipeline(desc: &str) {
    gst::init().unwrap();
    let p = gst::parse::launch(desc).unwrap();
    play_to_end(&p, 60).unwrap_or_else(|e| panic!("{desc}: {e}"));
}

/// A clip of `frames` frames at 25 fps, 160x120, with a tone as long as the video when
/// `audio` names an encoder (`avenc_aac`, `vorbisenc`, `opusenc`).
fn make_clip(path: &Path, frames: u32, audio: Option<&str>) {
    let mux = match path.extension().unwrap().to_str().unwrap() {
        "mp4" => "mp4mux",
        "mkv" => "matroskamux",
        "webm" => "webmmux",
        other => panic!("{other}"),
    };
    let venc = if mux == "webmmux" {
        "vp8enc deadline=1"
    } else {
        "x264enc ! h264parse"
    };
    let mut desc = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width=160,height=120,framerate=25/1 ! \
         {venc} ! {mux} name=m ! filesink location={}",
        path.display()
    );
    if let Some(aenc) = audio {
        let samples = frames as u64 * 48000 / 25;
        let parse = if aenc == "avenc_aac" {
            " ! aacparse"
        } else {
            ""
        };
        desc.push_str(&format!(
            " audiotestsrc num-buffers={} samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=2 ! \
             audioconvert ! {aenc}{parse} ! m.",
            samples / 960
        ));
    }
    run_pipeline(&desc);
}

#[derive(Debug, Default)]
struct Probe {
    video_frames: u64,
    video_start: Option<f64>,
    video_end: f64,
    audio: bool,
    audio_start: Option<f64>,
    audio_end: f64,
    width: i32,
}

/// Decodes a file and measures its streams.
fn probe(path: &Path) -> Probe {
    gst::init().unwrap();
    let pipeline = gst::Pipeline::new();
    let src = gst::ElementFactory::make("filesrc")
        .property("location", path.to_str().unwrap())
        .build()
        .unwrap();
    let dec = gst::ElementFactory::make("decodebin").build().unwrap();
    pipeline.add_many([&src, &dec]).unwrap();
    src.link(&dec).unwrap();
    let info = std::sync::Arc::new(std::sync::Mutex::new(Probe::default()));
    let pw = pipeline.downgrade();
    let i2 = info.clone();
    dec.connect_pad_added(move |_, pad| {
        let pipeline = pw.upgrade().unwrap();
        let sink = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .build()
            .unwrap();
        pipeline.add(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        pad.link(&sink.static_pad("sink").unwrap()).unwrap();
        let video = pad
            .current_caps()
            .unwrap()
            .structure(0)
            .unwrap()
            .name()
            .starts_with("video");
        let i3 = i2.clone();
        pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let b = info.buffer().unwrap();
            let start = b.pts().map(|t| t.seconds_f64()).unwrap_or(0.0);
            let end = start + b.duration().map(|d| d.seconds_f64()).unwrap_or(0.0);
            let mut p = i3.lock().unwrap();
            if video {
                p.video_frames += 1;
                p.video_start.get_or_insert(start);
                p.video_end = p.video_end.max(end);
                if let Some(c) = pad.current_caps() {
                    p.width = c.structure(0).unwrap().get::<i32>("width").unwrap_or(0);
                }
            } else {
                p.audio = true;
                p.audio_start.get_or_insert(start);
                p.audio_end = p.audio_end.max(end);
            }
            gst::PadProbeReturn::Ok
        });
    });
    // Measures whatever was decoded, also from a broken file.
    let _ = play_to_end(pipeline.upcast_ref(), 60);
    std::mem::take(&mut *info.lock().unwrap())
}

fn convert_cmd(input: &Path, output: &Path) -> Command {
    let mut c = stylize();
    c.arg("convert")
        .arg(input)
        .arg(output)
        .arg("--model")
        .arg(data().join(MODEL))
        .args(["--provider", "cpu"]);
    c
}

fn no_partials(dir: &Path) {
    let left: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".partial-"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

#[test]
fn mp4_with_aac_keeps_frames_duration_and_sound_in_sync() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    make_clip(&input, 50, Some("avenc_aac"));
    let output = dir.path().join("out.mp4");
    let sheet = dir.path().join("sheet.png");
    let out = convert_cmd(&input, &output)
        .arg("--json")
        .arg("--preview")
        .arg(&sheet)
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(v["frames"], 50);
    assert_eq!(v["audio"], "copied");
    assert_eq!(v["provider"], "cpu");
    assert_eq!(v["codec"], "h264");
    let (i, o) = (probe(&input), probe(&output));
    assert_eq!(o.video_frames, i.video_frames);
    assert!(o.audio, "sound kept");
    assert!((o.video_end - i.video_end).abs() < 0.05, "{i:?} {o:?}");
    assert!(
        (o.audio_end - o.video_end).abs() < 0.1,
        "audio and video end together: {o:?}"
    );
    assert!(
        (o.audio_start.unwrap() - o.video_start.unwrap()).abs() < 0.1,
        "audio and video start together: {o:?}"
    );
    let sheet = image::open(&sheet).unwrap();
    assert!(sheet.width() > sheet.height() / 3, "a side-by-side sheet");
    no_partials(dir.path());
}

#[test]
fn mkv_with_vorbis_to_mp4_re_encodes_the_sound() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    make_clip(&input, 30, Some("vorbisenc"));
    let output = dir.path().join("out.mp4");
    let out = convert_cmd(&input, &output)
        .arg("--json")
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert!(
        v["audio"].as_str().unwrap().starts_with("re-encoded"),
        "{v}"
    );
    let o = probe(&output);
    assert_eq!(o.video_frames, 30);
    assert!(o.audio);
    assert!((o.audio_end - o.video_end).abs() < 0.1, "{o:?}");
}

#[test]
fn webm_out_and_no_sound_in_gives_no_sound_out() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    make_clip(&input, 20, None);
    let output = dir.path().join("out.webm");
    convert_cmd(&input, &output)
        .args(["--size", "96x64"])
        .assert()
        .success()
        .stdout(predicate::str::contains("audio none"));
    let o = probe(&output);
    assert_eq!(o.video_frames, 20);
    assert_eq!(o.width, 96);
    assert!(!o.audio);
}

#[test]
fn mpeg4_keeps_frames_timestamps_and_sound() {
    // GStreamer 1.22.0's avenc_mpeg4 loses every timestamp; the conversion puts them back
    // (`restore_timestamps`), from the middle of a clip too, where the segment starts late.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    make_clip(&input, 40, Some("avenc_aac"));
    for (name, part) in [("out.mov", false), ("part.mkv", true)] {
        let output = dir.path().join(name);
        let mut cmd = convert_cmd(&input, &output);
        cmd.args(["--codec", "mpeg4", "--json"]);
        if part {
            cmd.args(["--start", "0.4", "--duration", "0.8"]);
        }
        let out = cmd.assert().success();
        let v: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
        assert_eq!(v["codec"], "mpeg4");
        let want = if part { 20 } else { 40 };
        let o = probe(&output);
        assert_eq!(o.video_frames, want, "{name}: {o:?}");
        assert!(
            o.video_start.unwrap() < 0.01,
            "{name} starts at zero: {o:?}"
        );
        assert!(
            (o.video_end - want as f64 / 25.0).abs() < 0.01,
            "{name} lasts its frames: {o:?}"
        );
        assert!(o.audio, "{name}: sound kept");
        assert!((o.audio_end - o.video_end).abs() < 0.1, "{name}: {o:?}");
    }
}

#[test]
fn frames_start_and_duration_convert_a_part() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    make_clip(&input, 50, Some("avenc_aac"));
    let output = dir.path().join("ten.mp4");
    convert_cmd(&input, &output)
        .args(["--frames", "10"])
        .assert()
        .success();
    let o = probe(&output);
    assert_eq!(o.video_frames, 10);
    assert!(
        o.audio_end - o.audio_start.unwrap() < 0.5,
        "sound cut too: {o:?}"
    );
    let output = dir.path().join("part.mp4");
    convert_cmd(&input, &output)
        .args(["--start", "0.4", "--duration", "0:00.8"])
        .assert()
        .success();
    let o = probe(&output);
    assert_eq!(o.video_frames, 20);
    assert!(o.video_start.unwrap() < 0.1, "output starts at zero: {o:?}");
}

#[test]
fn existing_output_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    make_clip(&input, 5, None);
    let output = dir.path().join("out.mp4");
    std::fs::write(&output, b"precious").unwrap();
    convert_cmd(&input, &output)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("exists; add --force"));
    assert_eq!(std::fs::read(&output).unwrap(), b"precious");
    convert_cmd(&input, &output)
        .arg("--force")
        .assert()
        .success();
    assert_eq!(probe(&output).video_frames, 5);
}

#[test]
fn broken_inputs_are_named_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.mp4");
    make_clip(&good, 40, Some("avenc_aac"));
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "this is not a video\n".repeat(50)).unwrap();
    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();
    let audio_only = dir.path().join("tone.mkv");
    run_pipeline(&format!(
        "audiotestsrc num-buffers=20 ! audioconvert ! vorbisenc ! matroskamux ! filesink location={}",
        audio_only.display()
    ));
    for (input, want) in [
        (truncated.clone(), "truncated.mp4"),
        (text.clone(), "not a video file"),
        (empty.clone(), "the file is empty"),
        (audio_only.clone(), "has no video stream"),
        (dir.path().join("missing.mp4"), "no such file"),
    ] {
        let output = dir.path().join("out.mp4");
        convert_cmd(&input, &output)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(want));
        assert!(!output.exists(), "{}", input.display());
    }
    no_partials(dir.path());
    // A codec the container cannot hold.
    convert_cmd(&good, &dir.path().join("x.webm"))
        .args(["--codec", "h264"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot hold h264"));
    convert_cmd(&good, &dir.path().join("x.mp4"))
        .args(["--quality", "99"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--quality for h264 must be from 0 to 51",
        ));
    // The range is the codec's that the output gets: vp9 for .webm, unless told otherwise.
    convert_cmd(&good, &dir.path().join("x.webm"))
        .args(["--quality", "64"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--quality for vp9 must be from 0 to 63",
        ));
    convert_cmd(&good, &dir.path().join("x.mkv"))
        .args(["--codec", "mpeg4", "--quality", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--quality for mpeg4 must be from 1 to 31",
        ));
    convert_cmd(&good, &dir.path().join("x.mkv"))
        .args(["--codec", "mpeg4", "--bitrate", "800"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--bitrate does not work with mpeg4",
        ));
    convert_cmd(&good, &dir.path().join("x.webm"))
        .args(["--codec", "mpeg4"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot hold mpeg4"));
    no_partials(dir.path());
}

#[test]
fn ctrl_c_stops_promptly_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("long.mkv");
    make_clip(&input, 1500, Some("vorbisenc"));
    let output = dir.path().join("out.mp4");
    let mut child = StdCommand::new(assert_cmd::cargo::cargo_bin("stylize"))
        .arg("convert")
        .arg(&input)
        .arg(&output)
        .arg("--model")
        .arg(data().join("models/fns_rgb_720.onnx"))
        .args(["--provider", "cpu", "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is writing.
    let t = Instant::now();
    loop {
        let writing = std::fs::read_dir(dir.path()).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".partial-")
        });
        if writing {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "never started writing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(sent.elapsed() < Duration::from_secs(10), "stopped promptly");
    assert_eq!(status.code(), Some(130));
    assert!(!output.exists());
    no_partials(dir.path());
}

#[test]
fn a_batch_goes_on_past_a_broken_file() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    std::fs::create_dir(&inputs).unwrap();
    make_clip(&inputs.join("a.mp4"), 10, Some("avenc_aac"));
    make_clip(&inputs.join("b.mkv"), 12, None);
    std::fs::write(inputs.join("c.mp4"), b"garbage garbage garbage").unwrap();
    let out = dir.path().join("out");
    stylize()
        .arg("convert")
        .arg(&inputs)
        .arg(&out)
        .arg("--model")
        .arg(data().join(MODEL))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("2 converted, 0 skipped, 1 failed"))
        .stderr(predicate::str::contains("c.mp4"));
    assert_eq!(probe(&out.join("a.mp4")).video_frames, 10);
    assert_eq!(probe(&out.join("b.mp4")).video_frames, 12);
    assert!(!out.join("c.mp4").exists());
    // Again: what exists is skipped.
    stylize()
        .arg("convert")
        .arg(inputs.join("a.mp4"))
        .arg(inputs.join("b.mkv"))
        .arg(&out)
        .arg("--model")
        .arg(data().join(MODEL))
        .assert()
        .success()
        .stdout(predicate::str::contains("0 converted, 2 skipped, 0 failed"));
}

#[test]
fn takes_the_model_convention_flags_of_stylize_image() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mkv");
    make_clip(&input, 6, None);
    // The multiple-of-8 generator without its sidecar: the flags must say it all.
    let model = dir.path().join("gan.onnx");
    std::fs::copy(data().join(MODEL), &model).unwrap();
    let output = dir.path().join("out.mp4");
    stylize()
        .arg("convert")
        .arg(&input)
        .arg(&output)
        .arg("--model")
        .arg(&model)
        .args([
            "--input-range=-1-1",
            "--output-range=-1-1",
            "--layout",
            "nchw",
            "--channel-order",
            "rgb",
            "--multiple-of",
            "8",
            "--input-name",
            "input",
            "--output-name",
            "output",
        ])
        .assert()
        .success();
    assert_eq!(probe(&output).video_frames, 6);
    // A wrong name is refused with the model's real names.
    stylize()
        .arg("convert")
        .arg(&input)
        .arg(dir.path().join("bad.mp4"))
        .arg("--model")
        .arg(&model)
        .args(["--input-name", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no input named 'nope'"));
}

/// Sets the display matrix of the first `tkhd` box of an MP4 to a 90° rotation, as phones
/// write it (GStreamer's muxers here do not write orientation).
fn rotate_mp4_90(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let i = b.windows(4).position(|w| w == b"tkhd").unwrap() - 4;
    let version = b[i + 8];
    let off = i + 8 + 4 + if version == 0 { 20 } else { 32 } + 8 + 8;
    let m: [u32; 9] = [0, 0x0001_0000, 0, 0xFFFF_0000, 0, 0, 0, 0, 0x4000_0000];
    for (k, v) in m.iter().enumerate() {
        b[off + 4 * k..off + 4 * k + 4].copy_from_slice(&v.to_be_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn rotation_metadata_is_respected() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("phone.mp4");
    make_clip(&input, 8, None); // 160x120
    rotate_mp4_90(&input);
    let output = dir.path().join("upright.mp4");
    convert_cmd(&input, &output).assert().success();
    let o = probe(&output);
    assert_eq!(o.video_frames, 8);
    assert_eq!(
        o.width, 120,
        "the 160x120 picture turned upright is 120 wide"
    );
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let out = stylize()
        .arg("eval")
        .arg("temporal")
        .args(args)
        .assert()
        .success();
    serde_json::from_slice(&out.get_output().stdout).unwrap()
}

#[test]
fn temporal_flow_output_and_its_measure() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mp4");
    make_clip(&input, 30, None);
    let (none, flow) = (dir.path().join("none.mp4"), dir.path().join("flow.mp4"));
    convert_cmd(&input, &none)
        .args(["--temporal", "none", "--quality", "10"])
        .assert()
        .success();
    convert_cmd(&input, &flow)
        .args([
            "--temporal",
            "flow",
            "--temporal-weight",
            "0.8",
            "--quality",
            "10",
        ])
        .args(["--flow-preset", "fast"])
        .assert()
        .success();
    assert_eq!(probe(&flow).video_frames, 30);
    let s = |p: &Path| p.to_str().unwrap().to_string();

    // A video measured against itself: no drift, the input's own warping error.
    let same = eval_json(&[
        "--input",
        &s(&input),
        "--output",
        &s(&input),
        "--reference",
        &s(&input),
    ]);
    assert_eq!(same["frames"], 30);
    assert_eq!(same["drift"], 0.0);
    assert_eq!(same["warp_error_output"], same["warp_error_input"]);

    let per = eval_json(&["--input", &s(&input), "--output", &s(&none)]);
    let r = eval_json(&[
        "--input",
        &s(&input),
        "--output",
        &s(&flow),
        "--reference",
        &s(&none),
    ]);
    let (e_out, e_ref) = (
        r["warp_error_output"].as_f64().unwrap(),
        r["warp_error_reference"].as_f64().unwrap(),
    );
    assert_eq!(e_ref, per["warp_error_output"].as_f64().unwrap());
    assert!(e_out <= e_ref * 1.01, "flow {e_out} vs per-frame {e_ref}");
    let drift = r["drift"].as_f64().unwrap();
    assert!(drift > 0.0 && drift < 0.1, "drift {drift}");
}

#[test]
fn eval_names_a_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("in.mp4");
    make_clip(&good, 5, None);
    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "not a video").unwrap();
    for (bad, why) in [
        (dir.path().join("missing.mp4"), "no such file"),
        (text, "notes.mp4"),
    ] {
        stylize()
            .args(["eval", "temporal", "--input"])
            .arg(&good)
            .arg("--output")
            .arg(&bad)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                bad.file_name().unwrap().to_str().unwrap(),
            ))
            .stderr(predicate::str::contains(why));
    }
}
