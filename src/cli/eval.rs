//! `stylize eval temporal`: how much a stylised video flickers, against its input and the
//! per-frame stylisation.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use stylize::convert::VideoReader;
use stylize::frame::{OwnedFrame, PixelFormat};
use stylize::temporal::FlowPreset;
use stylize::temporal::eval::{MetricOptions, TemporalMetric};

use super::BadInput;

/// Arguments of `stylize eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    #[command(subcommand)]
    command: EvalCommand,
}

#[derive(Debug, Subcommand)]
enum EvalCommand {
    /// Warping error (Lai et al. 2018) of a stylised video and of its input, and its drift
    /// from the per-frame stylisation; prints JSON.
    ///
    /// Example: stylize eval temporal --input in.mp4 --output flow.mp4 --reference perframe.mp4
    #[command(allow_negative_numbers = true)]
    Temporal(TemporalArgs),
}

/// Arguments of `stylize eval temporal`.
#[derive(Debug, Args)]
pub struct TemporalArgs {
    /// The original video.
    #[arg(long, value_name = "IN")]
    input: PathBuf,
    /// The stylised video to measure.
    #[arg(long, value_name = "OUT")]
    output: PathBuf,
    /// The per-frame stylisation of the same input (`--temporal none`), for the share of
    /// flicker removed and the drift.
    #[arg(long, value_name = "PERFRAME")]
    reference: Option<PathBuf>,
    /// Measure at most N frames.
    #[arg(long, value_name = "N", value_parser = super::common::whole::<u64>("--frames", 2, u64::MAX))]
    frames: Option<u64>,
    /// Optical-flow preset of the metric.
    #[arg(long, default_value = "medium", value_parser = ["ultrafast", "fast", "medium"], value_name = "PRESET")]
    flow_preset: String,
    /// The metric's flow runs on frames this many times smaller (1 = full size).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16), value_name = "N")]
    flow_divisor: u32,
}

/// Runs `stylize eval`.
pub fn run(args: EvalArgs) -> Result<()> {
    match args.command {
        EvalCommand::Temporal(a) => temporal(a),
    }
}

fn temporal(a: TemporalArgs) -> Result<()> {
    let preset: FlowPreset = a.flow_preset.parse().map_err(BadInput)?;
    let blank = || OwnedFrame::new(1, 1, PixelFormat::Rgb).expect("1x1 frame");
    let (mut inp, mut out, mut reference) = (blank(), blank(), blank());
    // The output's size rules: the input and the reference are scaled to it.
    let mut out_reader = VideoReader::open(&a.output, None)?;
    if !out_reader.next_frame(&mut out)? {
        return Err(BadInput(format!("output {}: has no frames", a.output.display())).into());
    }
    let size = Some((out.width() as u32, out.height() as u32));
    let mut in_reader = VideoReader::open(&a.input, size)?;
    let mut ref_reader = a
        .reference
        .as_ref()
        .map(|p| VideoReader::open(p, size))
        .transpose()?;
    let mut metric = TemporalMetric::new(MetricOptions {
        preset,
        flow_divisor: a.flow_divisor as usize,
    });
    let limit = a.frames.unwrap_or(u64::MAX);
    let mut n = 0u64;
    loop {
        if !in_reader.next_frame(&mut inp)? {
            break;
        }
        let r = match ref_reader.as_mut() {
            Some(rr) => {
                if !rr.next_frame(&mut reference)? {
                    break;
                }
                Some(reference.as_frame())
            }
            None => None,
        };
        metric
            .push(&inp.as_frame(), &out.as_frame(), r.as_ref())
            .context("cannot compare the frames")?;
        n += 1;
        if n >= limit || !out_reader.next_frame(&mut out)? {
            break;
        }
    }
    if n < 2 {
        return Err(BadInput("need at least two frames in every video".into()).into());
    }
    let report = metric.report();
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
