//! DIS optical flow between two images, for evaluation against references:
//!
//!     cargo run --release --example dis_flow -- [--preset ultrafast|fast|medium] \
//!         [--gt FLOW.flo] [--out OUT.flo] [--repeat N] A.png B.png
//!
//! Prints one JSON line: `width`, `height`, `preset`, `ms_per_call` (median over the
//! repeats, one thread), `epe` (mean end-point error against `--gt` over its known pixels,
//! or null) and `photometric` (mean |A(x) - B(x + flow)| in grey levels).

use std::process::ExitCode;
use std::time::Instant;

use stylize::temporal::flow::{
    DisFlow, DisParams, FlowField, FlowPreset, GrayImage, endpoint_error, photometric_error,
    read_flo, write_flo,
};

struct Args {
    preset: FlowPreset,
    preset_name: String,
    gt: Option<String>,
    out: Option<String>,
    repeat: usize,
    a: String,
    b: String,
}

const USAGE: &str = "usage: dis_flow [--preset ultrafast|fast|medium] [--gt FLOW.flo] \
                     [--out OUT.flo] [--repeat N] A.png B.png";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut preset_name, mut gt, mut out, mut repeat) = ("fast".to_string(), None, None, 1);
    let mut files = Vec::new();
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--preset" => preset_name = value()?,
            "--gt" => gt = Some(value()?),
            "--out" => out = Some(value()?),
            "--repeat" => {
                repeat = value()?
                    .parse::<usize>()
                    .map_err(|e| format!("--repeat: {e}"))?
                    .max(1)
            }
            "-h" | "--help" => return Err(USAGE.to_string()),
            _ if arg.starts_with("--") => return Err(format!("unknown option {arg}\n{USAGE}")),
            _ => files.push(arg),
        }
    }
    let preset = match preset_name.as_str() {
        "ultrafast" => FlowPreset::UltraFast,
        "fast" => FlowPreset::Fast,
        "medium" => FlowPreset::Medium,
        other => return Err(format!("unknown preset {other}")),
    };
    let [a, b] = <[String; 2]>::try_from(files).map_err(|_| USAGE.to_string())?;
    Ok(Args {
        preset,
        preset_name,
        gt,
        out,
        repeat,
        a,
        b,
    })
}

fn load(path: &str) -> Result<GrayImage, String> {
    let img = image::open(path)
        .map_err(|e| format!("{path}: {e}"))?
        .into_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    GrayImage::from_vec(w, h, img.into_raw()).ok_or_else(|| format!("{path}: bad size"))
}

fn json_num(v: Option<f64>) -> String {
    v.map_or("null".to_string(), |v| format!("{v:.6}"))
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let (a, b) = (load(&args.a)?, load(&args.b)?);
    let mut dis = DisFlow::new(DisParams::preset(args.preset));
    let mut flow = FlowField::default();
    let mut times = Vec::with_capacity(args.repeat);
    for _ in 0..args.repeat {
        let t = Instant::now();
        dis.calc(&a, &b, &mut flow).map_err(|e| e.to_string())?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let ms = times[times.len() / 2];
    let epe = match &args.gt {
        Some(path) => {
            let gt = read_flo(path).map_err(|e| format!("{path}: {e}"))?;
            Some(endpoint_error(&flow, &gt).ok_or(format!("{path}: size or no known pixel"))?)
        }
        None => None,
    };
    if let Some(path) = &args.out {
        write_flo(path, &flow).map_err(|e| format!("{path}: {e}"))?;
    }
    let photometric = photometric_error(&a, &b, &flow);
    println!(
        "{{\"width\":{},\"height\":{},\"preset\":\"{}\",\"ms_per_call\":{:.4},\"epe\":{},\"photometric\":{}}}",
        a.width(),
        a.height(),
        args.preset_name,
        ms,
        json_num(epe),
        json_num(photometric)
    );
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dis_flow: {e}");
            ExitCode::FAILURE
        }
    }
}
