//! The built plugin file, loaded by the real `gst-launch-1.0` and `gst-inspect-1.0` with an
//! isolated registry.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `libgststyletransfer.so` from this build, copied alone into a fresh plugin directory
/// (the build's `deps/` also holds unrelated shared libraries GStreamer would try to load).
fn plugin_env() -> (tempfile::TempDir, Vec<(&'static str, PathBuf)>) {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let so = [
        deps.join("libgststyletransfer.so"),
        deps.parent().unwrap().join("libgststyletransfer.so"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("libgststyletransfer.so is built with the tests");
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(&so, plugins.join("libgststyletransfer.so")).unwrap();
    let env = vec![
        ("GST_PLUGIN_PATH", plugins),
        ("GST_REGISTRY", dir.path().join("registry.bin")),
    ];
    (dir, env)
}

fn model(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(rel)
        .display()
        .to_string()
}

fn run(tool: &str, args: &[&str]) -> std::process::Output {
    let (_dir, env) = plugin_env();
    let mut c = Command::new(tool);
    c.args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap_or_else(|e| panic!("{tool}: {e}"))
}

#[test]
fn gst_inspect_documents_the_element() {
    let out = run("gst-inspect-1.0", &["styletransfer"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        "gst-launch-1.0 filesrc location=in.mp4 ! decodebin ! videoconvert ! styletransfer",
        "strength",
        "changeable in NULL, READY, PAUSED or PLAYING state",
        "changeable only in NULL or READY state",
        "active-provider",
        "MIT/X11",
    ] {
        assert!(text.contains(want), "missing '{want}' in:\n{text}");
    }
}

#[test]
fn gst_launch_runs_a_pipeline_through_the_plugin() {
    let m = format!("model={}", model("models/gan_pm1_mult8.onnx"));
    let out = run(
        "gst-launch-1.0",
        &[
            "-q",
            "videotestsrc",
            "num-buffers=15",
            "!",
            "video/x-raw,width=64,height=48",
            "!",
            "videoconvert",
            "!",
            "styletransfer",
            &m,
            "provider=cpu",
            "!",
            "videoconvert",
            "!",
            "fakesink",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn gst_launch_reports_a_broken_model() {
    let m = format!("model={}", model("models/not_onnx.onnx"));
    let out = run(
        "gst-launch-1.0",
        &[
            "videotestsrc",
            "num-buffers=3",
            "!",
            "videoconvert",
            "!",
            "styletransfer",
            &m,
            "!",
            "fakesink",
        ],
    );
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success());
    assert!(
        all.contains("not_onnx.onnx") && all.contains("not a valid ONNX model"),
        "{all}"
    );
}

#[test]
fn python_applications_use_it_through_gobject_introspection() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/python_gi.py");
    let m = model("models/gan_pm1_mult8.onnx");
    // Debian's python3-gi belongs to the system interpreter (scripts/setup.sh installs it).
    let out = run("/usr/bin/python3", &[script.to_str().unwrap(), &m, "12"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "provider=cpu frames=12");
}

/// The `stylize` binary of this build (`cargo test --workspace` builds it beside the tests).
fn stylize_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().unwrap().parent().unwrap().join("stylize");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// The README has users export GST_PLUGIN_PATH for gst-launch; the CLI, which registers the
/// element itself, must still work with the plugin file on that path (its types exist twice
/// then: `convert` once panicked reading the element's provider as its own enum type).
#[test]
fn the_cli_converts_with_the_plugin_on_gst_plugin_path() {
    let (dir, env) = plugin_env();
    let clip = dir.path().join("in.mp4");
    let out = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=10", "!"])
        .args(["video/x-raw,width=64,height=48,framerate=25/1", "!"])
        .args(["x264enc", "!", "h264parse", "!", "mp4mux", "!", "filesink"])
        .arg(format!("location={}", clip.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = dir.path().join("out.mp4");
    for provider in ["cpu", "auto"] {
        let mut c = Command::new(stylize_bin());
        c.arg("convert")
            .arg(&clip)
            .arg(&result)
            .args(["--model", &model("models/gan_pm1_mult8.onnx")])
            .args(["--provider", provider, "--force"]);
        for (k, v) in &env {
            c.env(k, v);
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "--provider {provider}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(result.metadata().unwrap().len() > 0);
    }
}
