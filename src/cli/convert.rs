//! `stylize convert`: video files in, stylised video files out, with their sound.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use stylize::convert::{
    self, Codec, Container, ConvertError, ConvertOptions, Rate, StyleSettings, bitrate_refusal,
};

use super::BadInput;
use super::common::{ModelArgs, ModelConfig, whole};

/// Exit status when interrupted (Ctrl-C), as shells report SIGINT.
pub const EXIT_INTERRUPTED: u8 = 130;

static CANCEL: AtomicBool = AtomicBool::new(false);

/// Arguments of `stylize convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// INPUT... OUTPUT: one video file and the file to write (.mp4, .mkv, .webm, .mov), or
    /// several files and/or directories and an output directory.
    #[arg(required = true, num_args = 2.., value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Blend each output with the previous one: none, ema, or flow (moved along the motion
    /// of the scene, where it can be followed).
    #[arg(long, default_value = "none", value_parser = ["none", "ema", "flow"], value_name = "none|ema|flow")]
    pub temporal: String,
    /// Optical-flow preset for --temporal flow.
    #[arg(long, default_value = "medium", value_parser = ["ultrafast", "fast", "medium"], value_name = "PRESET")]
    pub flow_preset: String,
    /// Scale of the frame the optical flow runs on, 1/n (0 = auto: about 320 pixels wide).
    #[arg(long, default_value = "0", value_parser = parse_flow_scale, value_name = "F")]
    pub flow_scale: f64,
    /// Frames stylised at once, each by its own copy of the model (0 = auto: 2 on a CPU
    /// with two or more cores when the model runs on at most 640x480 pixels, else 1).
    /// Offline, throughput is what counts.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=8), value_name = "N")]
    pub parallel_frames: u32,
    /// Weight of the previous output when blending (0..1).
    #[arg(long, default_value = "0.5", value_parser = parse_weight, value_name = "F")]
    pub temporal_weight: f64,
    /// Video codec (default: h264, vp9 for .webm). mpeg4 (MPEG-4 Part 2, OpenCV's `mp4v`)
    /// encodes in about half of h264's time for larger files: the fastest with the model on
    /// the CPU.
    #[arg(long, value_parser = parse_codec, value_name = "h264|h265|vp9|av1|mpeg4")]
    pub codec: Option<Codec>,
    /// Constant quality, lower is better (h264/h265 0-51, vp9/av1 0-63, mpeg4 1-31: its
    /// quantizer).
    #[arg(long, value_name = "N", conflicts_with = "bitrate", value_parser = parse_quality)]
    pub quality: Option<u32>,
    /// Average bitrate in kbit/s (not with mpeg4).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(50..=200_000))]
    pub bitrate: Option<u32>,
    /// Output size, e.g. 1280x720 (default: the input's).
    #[arg(long, value_parser = parse_size, value_name = "WxH")]
    pub size: Option<(u32, u32)>,
    /// Skip this much of the input: seconds, MM:SS or HH:MM:SS(.ms).
    #[arg(long, value_parser = parse_time, value_name = "T")]
    pub start: Option<Duration>,
    /// Convert this much: seconds, MM:SS or HH:MM:SS(.ms).
    #[arg(long, value_parser = parse_duration, value_name = "T")]
    pub duration: Option<Duration>,
    /// Convert at most N video frames.
    #[arg(long, value_name = "N", value_parser = whole::<u64>("--frames", 1, u64::MAX))]
    pub frames: Option<u64>,
    /// Container of the outputs in a batch (default: mp4).
    #[arg(long, value_parser = ["mp4", "mkv", "webm", "mov"], value_name = "mp4|mkv|webm|mov")]
    pub container: Option<String>,
    /// Overwrite outputs that exist.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary at the end.
    #[arg(long)]
    pub json: bool,
    /// Write a side-by-side sheet (original | stylised) of a few frames to this PNG.
    /// In a batch: one `<output>.preview.png` beside each output.
    #[arg(long, value_name = "FILE.png")]
    pub preview: Option<PathBuf>,
}

pub(super) fn parse_weight(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "--temporal-weight must be between 0 and 1, got '{s}'"
        )),
    }
}

pub(super) fn parse_flow_scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("--flow-scale must be between 0 and 1, got '{s}'")),
    }
}

fn parse_quality(s: &str) -> Result<u32, String> {
    // The range depends on the codec: `options` checks it once both are known.
    s.trim().parse::<u32>().map_err(|_| {
        format!("--quality takes a whole number, from 0 to 51 for h264/h265, 0 to 63 for vp9/av1 or 1 to 31 for mpeg4, got '{s}'")
    })
}

fn parse_codec(s: &str) -> Result<Codec, String> {
    s.parse()
}

pub(super) fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let err = || format!("--size takes WxH with sizes from 2 to 16384, e.g. 1280x720; got '{s}'");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(err)?;
    let p = |v: &str| {
        v.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (2..=16384).contains(n))
    };
    Ok((p(w).ok_or_else(err)?, p(h).ok_or_else(err)?))
}

/// Seconds (`12.5`), `MM:SS(.ms)` or `HH:MM:SS(.ms)`.
pub fn parse_time(s: &str) -> Result<Duration, String> {
    let err = || {
        format!(
            "'{s}' is not a time of 0 or more (expected seconds, MM:SS or HH:MM:SS, e.g. 1:30.5)"
        )
    };
    let parts: Vec<&str> = s.trim().split(':').collect();
    if parts.len() > 3 {
        return Err(err());
    }
    let mut secs = 0.0f64;
    for (i, p) in parts.iter().enumerate() {
        let v: f64 = p.parse().map_err(|_| err())?;
        let last = i == parts.len() - 1;
        if !v.is_finite() || v < 0.0 || (!last && v.fract() != 0.0) || (i > 0 && v >= 60.0) {
            return Err(err());
        }
        secs = secs * 60.0 + v;
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A `--duration`: a time above 0.
fn parse_duration(s: &str) -> Result<Duration, String> {
    match parse_time(s)? {
        d if d.is_zero() => Err(format!(
            "--duration must be above 0 (seconds, MM:SS or HH:MM:SS), got '{s}'"
        )),
        d => Ok(d),
    }
}

fn style_settings(m: &ModelConfig, args: &ConvertArgs) -> StyleSettings {
    let mut p = m.element_properties();
    p.extend([
        ("temporal".to_string(), args.temporal.clone()),
        ("temporal-weight".into(), args.temporal_weight.to_string()),
        ("flow-preset".into(), args.flow_preset.clone()),
        ("flow-scale".into(), args.flow_scale.to_string()),
        ("parallel-frames".into(), args.parallel_frames.to_string()),
    ]);
    StyleSettings { properties: p }
}

fn options(args: &ConvertArgs, m: &ModelConfig) -> Result<ConvertOptions> {
    // The codec the output gets: --codec, else what its container suits (a batch's
    // --container, else the output's extension), so that --quality is checked against the
    // right range before anything runs.
    let codec = args.codec.unwrap_or_else(|| {
        let (inputs, output) = args.paths.split_at(args.paths.len() - 1);
        let container = if inputs.len() > 1 || inputs[0].is_dir() {
            Container::from_extension(args.container.as_deref().unwrap_or("mp4"))
        } else {
            Container::from_path(&output[0])
        };
        container.map_or(Codec::H264, Container::default_codec)
    });
    let rate = match (args.quality, args.bitrate) {
        (Some(q), _) => {
            let (lo, hi) = codec.quality_range();
            if !(lo..=hi).contains(&q) {
                return Err(BadInput(format!(
                    "--quality for {} must be from {lo} to {hi}, got {q}",
                    codec.as_str()
                ))
                .into());
            }
            Some(Rate::Quality(q))
        }
        (None, Some(_)) if !codec.takes_bitrate() => {
            return Err(BadInput(bitrate_refusal(codec)).into());
        }
        (None, Some(k)) => Some(Rate::Bitrate(k)),
        (None, None) => None,
    };
    Ok(ConvertOptions {
        style: style_settings(m, args),
        codec: args.codec,
        rate,
        size: args.size,
        start: args.start,
        duration: args.duration,
        frames: args.frames,
        preview: None,
    })
}

/// The temporary file a conversion writes before it is renamed into place.
fn partial_path(target: &Path) -> PathBuf {
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty());
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    let ext = target
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let tmp = format!(".{name}.partial-{}{ext}", std::process::id());
    dir.map_or_else(|| PathBuf::from(&tmp), |d| d.join(&tmp))
}

struct Reporter {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    last_line: std::time::Instant,
    quiet: bool,
}

impl Reporter {
    fn new(label: String, quiet: bool) -> Reporter {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} frames, {per_sec}, ETA {eta}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            b.set_message(label.clone());
            b
        });
        Reporter {
            bar,
            label,
            last_line: std::time::Instant::now(),
            quiet,
        }
    }

    fn update(&mut self, p: convert::Progress) {
        if let Some(b) = &self.bar {
            if let Some(t) = p.total {
                b.set_length(t.max(p.frames));
            }
            b.set_position(p.frames);
            return;
        }
        if self.quiet || self.last_line.elapsed() < Duration::from_secs(2) {
            return;
        }
        self.last_line = std::time::Instant::now();
        let fps = p.frames as f64 / p.elapsed.as_secs_f64().max(1e-3);
        match p.total {
            Some(t) if t > 0 => {
                let eta = (t.saturating_sub(p.frames)) as f64 / fps.max(1e-3);
                eprintln!(
                    "{}: {}/{} frames ({:.0}%), {:.1} fps, ETA {:.0} s",
                    self.label,
                    p.frames,
                    t,
                    100.0 * p.frames as f64 / t as f64,
                    fps,
                    eta
                );
            }
            _ => eprintln!("{}: {} frames, {:.1} fps", self.label, p.frames, fps),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

enum Outcome {
    Done(convert::Summary),
    Skipped,
}

fn convert_one(
    input: &Path,
    output: &Path,
    opts: &ConvertOptions,
    force: bool,
    quiet: bool,
) -> Result<Outcome, ConvertError> {
    let container = Container::from_path(output).ok_or_else(|| {
        ConvertError::Options(format!(
            "output {}: unsupported extension (expected .mp4, .mkv, .webm or .mov)",
            output.display()
        ))
    })?;
    if output.exists() && !force {
        return Ok(Outcome::Skipped);
    }
    let tmp = partial_path(output);
    let mut reporter = Reporter::new(input.display().to_string(), quiet);
    let result = convert::convert(input, &tmp, container, opts, &CANCEL, |p| {
        reporter.update(p)
    });
    reporter.finish();
    match result {
        Ok(summary) => match std::fs::rename(&tmp, output) {
            Ok(()) => Ok(Outcome::Done(summary)),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(ConvertError::Failed(format!(
                    "cannot move the result to {}: {e}",
                    output.display()
                )))
            }
        },
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn is_video_name(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref(),
        Some(
            "mp4"
                | "mkv"
                | "webm"
                | "mov"
                | "avi"
                | "m4v"
                | "mpg"
                | "mpeg"
                | "ts"
                | "flv"
                | "ogv"
                | "wmv"
                | "3gp"
        )
    )
}

/// Runs `stylize convert`; returns the exit status.
pub fn run(args: ConvertArgs) -> Result<u8> {
    let m = args.model.validate()?;
    let mut opts = options(&args, &m)?;
    let (inputs, output) = args.paths.split_at(args.paths.len() - 1);
    let output = &output[0];
    let batch = inputs.len() > 1 || inputs[0].is_dir();
    let _ = ctrlc::set_handler(|| CANCEL.store(true, Ordering::SeqCst));

    if !batch {
        opts.preview = args.preview.clone();
        let input = &inputs[0];
        if output.exists() && !args.force {
            return Err(BadInput(format!(
                "output {} exists; add --force to overwrite it",
                output.display()
            ))
            .into());
        }
        return match convert_one(input, output, &opts, args.force, args.json) {
            Ok(Outcome::Done(s)) => {
                report(input, output, &s, args.json, args.preview.as_deref())?;
                Ok(super::EXIT_OK)
            }
            Ok(Outcome::Skipped) => Ok(super::EXIT_OK),
            Err(ConvertError::Interrupted) => {
                eprintln!("interrupted: {} was not written", output.display());
                Ok(EXIT_INTERRUPTED)
            }
            Err(e) => Err(e.into()),
        };
    }

    // Batch: every video in the inputs (directories: their video files) into `output/`.
    let mut files = Vec::new();
    for i in inputs {
        if i.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(i)
                .map_err(|e| BadInput(format!("input {}: {e}", i.display())))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && is_video_name(p))
                .collect();
            v.sort();
            files.extend(v);
        } else {
            files.push(i.clone());
        }
    }
    if files.is_empty() {
        return Err(BadInput("no video files in the inputs".into()).into());
    }
    if output.exists() && !output.is_dir() {
        return Err(BadInput(format!(
            "with several inputs the output must be a directory; {} is a file",
            output.display()
        ))
        .into());
    }
    std::fs::create_dir_all(output)
        .map_err(|e| BadInput(format!("cannot create {}: {e}", output.display())))?;
    let ext = args.container.as_deref().unwrap_or("mp4");
    let (mut done, mut skipped, mut failed) = (Vec::new(), 0usize, Vec::new());
    let mut summaries = Vec::new();
    for input in &files {
        let stem = input
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "video".into());
        let target = output.join(format!("{stem}.{ext}"));
        let mut o = opts.clone();
        if args.preview.is_some() {
            o.preview = Some(output.join(format!("{stem}.preview.png")));
        }
        match convert_one(input, &target, &o, args.force, args.json) {
            Ok(Outcome::Done(s)) => {
                if !args.json {
                    eprintln!(
                        "ok      {} -> {} ({} frames, {:.1} fps)",
                        input.display(),
                        target.display(),
                        s.frames,
                        s.fps
                    );
                }
                warn(input, &s);
                summaries.push(serde_json::json!({"input": input, "output": target, "summary": s}));
                done.push(target);
            }
            Ok(Outcome::Skipped) => {
                skipped += 1;
                if !args.json {
                    eprintln!(
                        "skipped {} ({} exists; --force overwrites)",
                        input.display(),
                        target.display()
                    );
                }
            }
            Err(ConvertError::Interrupted) => {
                eprintln!(
                    "interrupted at {}: {} was not written",
                    input.display(),
                    target.display()
                );
                return Ok(EXIT_INTERRUPTED);
            }
            Err(e) => {
                eprintln!("failed  {}: {e}", input.display());
                failed.push((input.clone(), e.to_string()));
            }
        }
    }
    if args.json {
        let out = serde_json::json!({
            "converted": summaries,
            "skipped": skipped,
            "failed": failed.iter().map(|(p, e)| serde_json::json!({"input": p, "error": e})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "batch: {} converted, {} skipped, {} failed",
            done.len(),
            skipped,
            failed.len()
        );
    }
    Ok(if failed.is_empty() {
        super::EXIT_OK
    } else {
        super::EXIT_FAILURE
    })
}

/// What went less than perfectly in a conversion that succeeded, on stderr (also with
/// --json, whose summary has the same counts).
fn warn(input: &Path, s: &convert::Summary) {
    if s.non_finite_frames > 0 {
        eprintln!(
            "warning: {}: the model {} produced NaN or infinite values for {} of {} frames; those frames are in the output unstylised",
            input.display(),
            s.model,
            s.non_finite_frames,
            s.frames
        );
    }
    if s.undecodable_frames > 0 {
        eprintln!(
            "warning: {}: {} frame(s) could not be decoded (damaged data) and are missing from the output ({} written)",
            input.display(),
            s.undecodable_frames,
            s.frames
        );
    }
    if let Some(note) = &s.size_note {
        eprintln!("note: {}: {note}", input.display());
    }
}

fn report(
    input: &Path,
    output: &Path,
    s: &convert::Summary,
    json: bool,
    preview: Option<&Path>,
) -> Result<()> {
    warn(input, s);
    if json {
        let v = serde_json::json!({
            "input": input,
            "output": output,
            "preview": preview,
            "frames": s.frames,
            "duration_s": s.duration_s,
            "wall_s": s.wall_s,
            "fps": s.fps,
            "provider": s.provider,
            "model": s.model,
            "codec": s.codec,
            "audio": s.audio,
            "width": s.width,
            "height": s.height,
            "size_note": s.size_note,
            "non_finite_frames": s.non_finite_frames,
            "undecodable_frames": s.undecodable_frames,
            "stages_ms": { "stylize_mean": s.stylize_ms_mean, "stylize_p95": s.stylize_ms_p95 },
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "converted {} -> {}: {} frames ({:.1} s of video) in {:.1} s = {:.1} fps on {}, audio {}",
            input.display(),
            output.display(),
            s.frames,
            s.duration_s,
            s.wall_s,
            s.fps,
            s.provider,
            s.audio
        );
        if let Some(p) = preview {
            println!("preview {}", p.display());
        }
    }
    Ok(())
}
