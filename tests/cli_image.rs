//! The `stylize` command line, run as a user runs it.

mod common;

use common::*;
use predicates::prelude::*;

#[test]
fn image_matches_the_python_reference_for_each_convention() {
    let dir = tempfile::tempdir().unwrap();
    for entry in manifest()["models"].as_array().unwrap() {
        let name = entry["name"].as_str().unwrap();
        let out = dir.path().join(format!("{name}.png"));
        let mut cmd = stylize();
        cmd.arg("image")
            .arg(data().join("input.png"))
            .arg(&out)
            .arg("--model")
            .arg(data().join(entry["file"].as_str().unwrap()))
            .args(["--provider", "cpu"]);
        for e in extra_inputs(entry) {
            cmd.arg("--extra-input").arg(e);
        }
        cmd.assert()
            .success()
            .stdout(predicate::str::contains("on cpu"));
        let (_, _, got) = load_rgb(&out);
        let (_, _, want) = load_rgb(&data().join(entry["reference"].as_str().unwrap()));
        let mad = mean_abs_diff(&got, &want);
        assert!(mad < 1.0, "{name}: {mad}");
    }
}

#[test]
fn json_summary_says_which_provider_ran() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.jpg");
    let assert = stylize()
        .arg("image")
        .arg(data().join("input.png"))
        .arg(&out)
        .arg("--model")
        .arg(data().join("models/gan_pm1_mult8.onnx"))
        .args(["--json", "--strength", "0.7"])
        .assert()
        .success();
    let v: serde_json::Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(v["provider"], "cpu");
    assert_eq!(v["width"], 61);
    assert_eq!(v["strength"].as_f64().unwrap() as f32, 0.7);
    // auto passed over TensorRT and CUDA on this CPU-only machine, and says why.
    let fb = v["fallbacks"].as_array().unwrap();
    assert_eq!(fb.len(), 2);
    assert!(fb[1]["reason"].as_str().unwrap().len() > 10);
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (61, 47));
}

#[test]
fn cuda_on_a_machine_without_cuda_fails_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    stylize()
        .arg("image")
        .arg(data().join("input.png"))
        .arg(&out)
        .arg("--model")
        .arg(data().join("models/gan_pm1_mult8.onnx"))
        .args(["--provider", "cuda"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "provider cuda is not usable here:",
        ));
    assert!(!out.exists(), "nothing written on failure");
}

#[test]
fn bad_inputs_exit_2_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    let model = data().join("models/gan_pm1_mult8.onnx");
    let input = data().join("input.png");
    let cases: Vec<(Vec<std::ffi::OsString>, &str)> = vec![
        (
            vec![
                "missing.png".into(),
                out.clone().into(),
                "--model".into(),
                model.clone().into(),
            ],
            "input missing.png: no such file",
        ),
        (
            vec![
                model.clone().into(),
                out.clone().into(),
                "--model".into(),
                model.clone().into(),
            ],
            "not a picture",
        ),
        (
            vec![
                input.clone().into(),
                out.clone().into(),
                "--model".into(),
                data().join("models/bad_rgba.onnx").into(),
            ],
            "bad_rgba.onnx: not an image generator",
        ),
        (
            vec![
                input.clone().into(),
                out.clone().into(),
                "--model".into(),
                data().join("models/truncated.onnx").into(),
            ],
            "truncated.onnx: not a valid ONNX model",
        ),
        (
            vec![
                input.clone().into(),
                dir.path().join("o.gif").into(),
                "--model".into(),
                model.clone().into(),
            ],
            "expected .png, .jpg or .jpeg",
        ),
        (
            vec![
                input.clone().into(),
                out.clone().into(),
                "--model".into(),
                data().join("models/multistyle_unit.onnx").into(),
            ],
            "--extra-input style_weights=",
        ),
        (
            vec![
                input.clone().into(),
                out.clone().into(),
                "--model".into(),
                model.clone().into(),
                "--extra-input".into(),
                "style=1,x".into(),
            ],
            "'x' is not a number",
        ),
        (
            vec![
                input.clone().into(),
                out.clone().into(),
                "--model".into(),
                model.clone().into(),
                "--strength".into(),
                "2".into(),
            ],
            "--strength must be between 0 and 1",
        ),
        (
            vec![
                input.clone().into(),
                out.clone().into(),
                "--model".into(),
                model.clone().into(),
                "--inference-scale".into(),
                "0".into(),
            ],
            "--inference-scale must be above 0",
        ),
        (
            vec![
                input.clone().into(),
                out.clone().into(),
                "--model".into(),
                model.clone().into(),
                "--input-range".into(),
                "0-2".into(),
            ],
            "expected 0-1, 0-255 or -1-1",
        ),
    ];
    for (args, want) in cases {
        stylize()
            .arg("image")
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(want));
    }
    assert!(!out.exists());
}

#[test]
fn existing_output_is_kept_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.png");
    std::fs::write(&out, b"keep me").unwrap();
    let run = |force: bool| {
        let mut c = stylize();
        c.arg("image")
            .arg(data().join("input.png"))
            .arg(&out)
            .arg("--model")
            .arg(data().join("models/gan_pm1_mult8.onnx"));
        if force {
            c.arg("--force");
        }
        c.assert()
    };
    run(false)
        .code(2)
        .stderr(predicate::str::contains("exists; add --force"));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    run(true).success();
    assert!(image::open(&out).is_ok());
    // No temporary files left beside the target.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn doctor_reports_this_machine() {
    stylize()
        .arg("doctor")
        .assert()
        .success()
        .stdout(predicate::str::contains("ONNX Runtime"))
        .stdout(predicate::str::contains("cpu       usable"))
        .stdout(predicate::str::contains("GStreamer 1."));
    let out = stylize().args(["doctor", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["onnxruntime"]["version"]
            .as_str()
            .unwrap()
            .starts_with("1.")
    );
    let cpu = v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "cpu")
        .unwrap();
    assert_eq!(cpu["usable"], true);
}

#[test]
fn models_lists_the_shipped_models() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        data().join("models/gan_pm1_mult8.onnx"),
        dir.path().join("starry_night.onnx"),
    )
    .unwrap();
    std::fs::write(dir.path().join("starry_night.md"), "# Starry\n\nSwirls.\n").unwrap();
    stylize()
        .arg("models")
        .env("STYLIZE_MODELS_DIR", dir.path())
        .assert()
        .success()
        .stdout(predicate::str::contains("*starry_night"))
        .stdout(predicate::str::contains("Swirls."));
    stylize()
        .args(["models", "starry_night"])
        .env("STYLIZE_MODELS_DIR", dir.path())
        .assert()
        .success()
        .stdout("# Starry\n\nSwirls.\n");
    // The default model is used when --model is not given; a shipped name works as --model.
    let out = dir.path().join("o.png");
    stylize()
        .arg("image")
        .arg(data().join("input.png"))
        .arg(&out)
        .env("STYLIZE_MODELS_DIR", dir.path())
        .args(["--input-range=-1-1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("starry_night.onnx"));
    stylize()
        .arg("image")
        .arg(data().join("input.png"))
        .arg(dir.path().join("p.png"))
        .args(["--model", "starry_night"])
        .env("STYLIZE_MODELS_DIR", dir.path())
        .assert()
        .success();
    let empty = tempfile::tempdir().unwrap();
    stylize()
        .arg("image")
        .arg(data().join("input.png"))
        .arg(dir.path().join("q.png"))
        .env("STYLIZE_MODELS_DIR", empty.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no --model given"));
}

#[test]
fn missing_onnx_runtime_names_the_setup_command() {
    let dir = tempfile::tempdir().unwrap();
    stylize()
        .arg("image")
        .arg(data().join("input.png"))
        .arg(dir.path().join("o.png"))
        .arg("--model")
        .arg(data().join("models/gan_pm1_mult8.onnx"))
        .env("ORT_DYLIB_PATH", dir.path().join("libonnxruntime.so"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("scripts/setup.sh"));
    // A file that is not ONNX Runtime at all.
    let fake = dir.path().join("libonnxruntime.so");
    std::fs::write(&fake, b"not a library").unwrap();
    let out = stylize()
        .arg("image")
        .arg(data().join("input.png"))
        .arg(dir.path().join("o.png"))
        .arg("--model")
        .arg(data().join("models/gan_pm1_mult8.onnx"))
        .env("ORT_DYLIB_PATH", &fake)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot load ONNX Runtime") && err.lines().count() == 1,
        "{err}"
    );
}

/// The shipped fp32 models store their last convolution in a space-to-depth form
/// (scripts/optimize_onnx.py); their fp16 twins keep the plain convolution. Both must give the
/// same picture, up to fp16 rounding, at a size whose padded input is not square.
#[test]
fn shipped_fp32_models_match_their_plain_fp16_twins() {
    let dir = tempfile::tempdir().unwrap();
    let models = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    for name in ["starry_night", "wave_crop", "composition_vii"] {
        let mut pictures = Vec::new();
        for file in [format!("{name}.onnx"), format!("{name}.fp16.onnx")] {
            let out = dir.path().join(format!("{file}.png"));
            stylize()
                .arg("image")
                .arg(data().join("input.png"))
                .arg(&out)
                .arg("--model")
                .arg(models.join(&file))
                .args(["--provider", "cpu"])
                .assert()
                .success();
            pictures.push(load_rgb(&out).2);
        }
        let mad = mean_abs_diff(&pictures[0], &pictures[1]);
        let max = pictures[0]
            .iter()
            .zip(&pictures[1])
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(mad < 0.5 && max <= 4, "{name}: mean {mad}, max {max}");
    }
}
