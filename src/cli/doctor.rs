//! `stylize doctor`: what this machine can run, and why not when it cannot.

use std::path::Path;

use anyhow::Result;
use clap::Args;
use serde_json::{Value, json};
use stylize::engine::{ActiveProvider, probe, probe_provider, tensorrt};
use stylize::{catalog, runtime};

/// Arguments of `stylize doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// GStreamer elements the project uses, with the Debian package that provides each.
const ELEMENTS: &[(&str, &str, &str)] = &[
    (
        "videoconvert",
        "gstreamer1.0-plugins-base",
        "pixel format conversion",
    ),
    ("videoscale", "gstreamer1.0-plugins-base", "scaling"),
    ("videorate", "gstreamer1.0-plugins-base", "frame rate"),
    (
        "decodebin3",
        "gstreamer1.0-plugins-base",
        "decoding any input",
    ),
    ("appsrc", "gstreamer1.0-plugins-base", "feeding frames"),
    ("appsink", "gstreamer1.0-plugins-base", "reading frames"),
    ("videotestsrc", "gstreamer1.0-plugins-base", "test pattern"),
    ("audiotestsrc", "gstreamer1.0-plugins-base", "test sound"),
    (
        "audioconvert",
        "gstreamer1.0-plugins-base",
        "sound conversion",
    ),
    (
        "audioresample",
        "gstreamer1.0-plugins-base",
        "sound resampling",
    ),
    ("opusenc", "gstreamer1.0-plugins-base", "Opus sound (WebM)"),
    ("qtdemux", "gstreamer1.0-plugins-good", "MP4/MOV input"),
    ("mp4mux", "gstreamer1.0-plugins-good", "MP4 output"),
    ("matroskamux", "gstreamer1.0-plugins-good", "MKV output"),
    ("webmmux", "gstreamer1.0-plugins-good", "WebM output"),
    ("vp9enc", "gstreamer1.0-plugins-good", "VP9 encoding"),
    ("v4l2src", "gstreamer1.0-plugins-good", "camera capture"),
    (
        "v4l2sink",
        "gstreamer1.0-plugins-good",
        "virtual camera output",
    ),
    (
        "autovideosink",
        "gstreamer1.0-plugins-good",
        "preview window",
    ),
    ("x264enc", "gstreamer1.0-plugins-ugly", "H.264 encoding"),
    ("x265enc", "gstreamer1.0-plugins-bad", "H.265 encoding"),
    ("av1enc", "gstreamer1.0-plugins-bad", "AV1 encoding"),
    (
        "avenc_mpeg4",
        "gstreamer1.0-libav",
        "MPEG-4 Part 2 encoding (--codec mpeg4)",
    ),
    ("avdec_h264", "gstreamer1.0-libav", "H.264 decoding"),
    ("avenc_aac", "gstreamer1.0-libav", "AAC sound encoding"),
];

fn providers_report(rt: Option<&runtime::Runtime>) -> Vec<Value> {
    let probe = probe::write_probe_model();
    let mut out = Vec::new();
    for p in [
        ActiveProvider::TensorRt,
        ActiveProvider::Cuda,
        ActiveProvider::Cpu,
    ] {
        let compiled = rt.is_some_and(|rt| rt.providers.iter().any(|n| n == p.ort_name()));
        let usable = match (&probe, rt) {
            (_, None) => Err("ONNX Runtime is not loaded".to_string()),
            (Err(e), _) => Err(format!("cannot write a probe model: {e}")),
            (Ok(path), Some(_)) => probe_provider(p, path),
        };
        out.push(json!({
            "provider": p.as_str(),
            "compiled_in": compiled,
            "usable": usable.is_ok(),
            "reason": usable.err(),
        }));
    }
    if let Ok(p) = probe {
        let _ = std::fs::remove_file(p);
    }
    out
}

fn gpu_report(rt: Option<&runtime::Runtime>) -> Value {
    let names = tensorrt::gpu_names();
    let dev = Path::new("/dev/nvidia0").exists();
    let driver = std::fs::read_to_string("/proc/driver/nvidia/version")
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string));
    let trt = tensorrt::library_version(rt.and_then(|r| r.path.parent()));
    json!({
        "gpus": names,
        "dev_nvidia0": dev,
        "driver": driver,
        "tensorrt": trt.as_ref().ok(),
        "tensorrt_error": trt.err(),
    })
}

fn gstreamer_report() -> Value {
    if let Err(e) = gst::init() {
        return json!({ "error": format!("GStreamer cannot start: {e}") });
    }
    let elements: Vec<Value> = ELEMENTS
        .iter()
        .map(|(name, pkg, what)| {
            json!({
                "element": name,
                "present": gst::ElementFactory::find(name).is_some(),
                "package": pkg,
                "for": what,
            })
        })
        .collect();
    json!({ "version": gst::version_string().to_string(), "elements": elements })
}

fn cameras() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("video"))
                .map(|n| format!("/dev/{n}"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Runs `stylize doctor`.
pub fn run(args: DoctorArgs) -> Result<()> {
    let rt = runtime::runtime();
    let rt_ok = rt.as_ref().ok().copied();
    let searched: Vec<String> = runtime::candidates()
        .iter()
        .map(|c| format!("{} ({})", c.path.display(), c.source))
        .collect();
    let ort = match &rt {
        Ok(r) => json!({
            "version": r.version,
            "path": r.path,
            "source": r.source.to_string(),
            "providers_in_library": r.providers,
            "minimum": format!("1.{}", runtime::MIN_MINOR_VERSION),
            "searched": searched,
        }),
        Err(e) => json!({ "error": e.to_string(), "searched": searched }),
    };
    let providers = providers_report(rt_ok);
    let gpu = gpu_report(rt_ok);
    let gst = gstreamer_report();
    let cams = cameras();
    let models = catalog::list().unwrap_or_default();
    let default = catalog::default_model();
    let report = json!({
        "onnxruntime": ort,
        "providers": providers,
        "gpu": gpu,
        "gstreamer": gst,
        "cameras": cams,
        "models": {
            "dir": catalog::models_dir(),
            "count": models.len(),
            "default": default,
        },
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    print_text(&report);
    Ok(())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_text(r: &Value) {
    let ort = &r["onnxruntime"];
    println!("ONNX Runtime");
    if let Some(e) = ort.get("error") {
        println!("  NOT LOADED: {}", s(e));
    } else {
        println!(
            "  {} from {} ({}), needs 1.{} or newer",
            s(&ort["version"]),
            s(&ort["path"]),
            s(&ort["source"]),
            runtime::MIN_MINOR_VERSION
        );
    }
    if let Some(list) = ort["searched"].as_array() {
        println!(
            "  search order: {}",
            list.iter().map(s).collect::<Vec<_>>().join(", ")
        );
    }
    println!("Providers");
    for p in r["providers"].as_array().into_iter().flatten() {
        let name = s(&p["provider"]);
        let compiled = p["compiled_in"].as_bool().unwrap_or(false);
        if p["usable"].as_bool().unwrap_or(false) {
            println!("  {name:<9} usable");
        } else {
            println!(
                "  {name:<9} not usable{}: {}",
                if compiled {
                    ""
                } else {
                    " (not in this library)"
                },
                s(&p["reason"])
            );
        }
    }
    let gpu = &r["gpu"];
    println!("GPU");
    match gpu["gpus"].as_array() {
        Some(g) if !g.is_empty() => {
            for (i, n) in g.iter().enumerate() {
                println!("  {i}: {}", s(n));
            }
            println!("  driver: {}", s(&gpu["driver"]));
        }
        _ if gpu["dev_nvidia0"].as_bool() == Some(true) => {
            println!("  /dev/nvidia0 present, driver did not report a model")
        }
        _ => println!("  none visible (no /dev/nvidia0, no NVIDIA driver)"),
    }
    match gpu["tensorrt"].as_str() {
        Some(v) => println!("  TensorRT {v}"),
        None => println!("  TensorRT: {}", s(&gpu["tensorrt_error"])),
    }
    let g = &r["gstreamer"];
    println!("GStreamer");
    if let Some(e) = g.get("error") {
        println!("  {}", s(e));
    } else {
        println!("  {}", s(&g["version"]));
        let missing: Vec<String> = g["elements"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["present"] == json!(false))
            .map(|e| {
                format!(
                    "{} ({}; {})",
                    s(&e["element"]),
                    s(&e["for"]),
                    s(&e["package"])
                )
            })
            .collect();
        let n = g["elements"].as_array().map_or(0, |a| a.len());
        if missing.is_empty() {
            println!("  all {n} elements the project uses are present");
        } else {
            println!("  {} of {n} elements present; missing:", n - missing.len());
            for m in missing {
                println!("    {m}");
            }
        }
    }
    println!("Cameras");
    match r["cameras"].as_array() {
        Some(c) if !c.is_empty() => {
            for d in c {
                println!("  {}", s(d));
            }
        }
        _ => println!("  none found (no /dev/video* devices); use --source test or a file"),
    }
    let m = &r["models"];
    println!("Models");
    println!(
        "  {} shipped in {}; default: {}",
        s(&m["count"]),
        s(&m["dir"]),
        match &m["default"] {
            Value::Null => format!("{} MISSING", catalog::DEFAULT_MODEL),
            v => s(v),
        }
    );
}
