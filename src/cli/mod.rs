//! Command-line interface: clap parses, each command validates into a config, then runs.

mod bench;
mod common;
mod convert;
mod devices;
mod doctor;
mod eval;
mod image;
mod live;
mod models;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit status for success.
pub const EXIT_OK: u8 = 0;
/// Exit status for a failure while running (engine, provider, I/O).
pub const EXIT_FAILURE: u8 = 1;
/// Exit status for bad input: usage errors, a missing or broken input file or model.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Real-time neural style transfer for images and video.
#[derive(Debug, Parser)]
#[command(name = "stylize", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Stylise one picture.
    ///
    /// Example: stylize image photo.jpg out.png --model models/starry_night.onnx
    // Negative numbers are values, so that `--strength -1` is refused with the flag's range.
    #[command(allow_negative_numbers = true)]
    Image(image::ImageArgs),
    /// Stylise video files, keeping their sound.
    ///
    /// Example: stylize convert in.mp4 out.mp4 --model starry_night --preview sheet.png
    // Negative numbers are values, so that `--strength -1` is refused with the flag's range.
    #[command(allow_negative_numbers = true)]
    Convert(convert::ConvertArgs),
    /// Stylise a camera (or a test pattern, or a file) live, to a window, a virtual camera,
    /// a file or nowhere.
    ///
    /// Example: stylize live --source test --sink null --frames 300 --inference-scale 0.5
    // Negative numbers are values, so that `--strength -1` is refused with the flag's range.
    #[command(allow_negative_numbers = true)]
    Live(live::LiveArgs),
    /// List the cameras `stylize live` can use, with their formats.
    Devices(devices::DevicesArgs),
    /// List the shipped models and their cards.
    Models(models::ModelsArgs),
    /// Check ONNX Runtime, its providers, the GPU, GStreamer and cameras.
    Doctor(doctor::DoctorArgs),
    /// Measure the engine and the element per resolution.
    ///
    /// Example: stylize bench --model models/starry_night.onnx --resolution 640x360,1280x720
    // Negative numbers are values, so that `--strength -1` is refused with the flag's range.
    #[command(allow_negative_numbers = true)]
    Bench(bench::BenchArgs),
    /// Measure outputs: temporal stability (warping error, drift).
    ///
    /// Example: stylize eval temporal --input in.mp4 --output out.mp4 --reference perframe.mp4
    Eval(eval::EvalArgs),
}

/// An error that is the user's input's fault (exit status 2), as opposed to a failure.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

fn is_bad_input(cause: &(dyn std::error::Error + 'static)) -> bool {
    use stylize::{EngineError, ModelError, StylizeError};
    cause.is::<BadInput>()
        || cause.is::<ModelError>()
        || cause
            .downcast_ref::<stylize::convert::ConvertError>()
            .is_some_and(|e| e.is_bad_input())
        || cause
            .downcast_ref::<stylize::live::LiveError>()
            .is_some_and(|e| e.is_bad_input())
        || cause
            .downcast_ref::<stylize::live::CaptureError>()
            .is_some_and(|e| e.is_bad_input())
        || matches!(
            cause.downcast_ref::<StylizeError>(),
            Some(
                StylizeError::Model(_)
                    | StylizeError::Engine(EngineError::Model(_))
                    | StylizeError::NonFinite { .. }
            )
        )
        || matches!(
            cause.downcast_ref::<EngineError>(),
            Some(EngineError::Model(_))
        )
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(is_bad_input) {
        EXIT_BAD_INPUT
    } else {
        EXIT_FAILURE
    }
}

/// Runs the command line and returns the process exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert(a) => match convert::run(a) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Command::Live(a) => match live::run(a) {
            Ok(code) => return ExitCode::from(code),
            Err(e) => Err(e),
        },
        Command::Devices(a) => devices::run(a),
        Command::Image(a) => image::run(a),
        Command::Models(a) => models::run(a),
        Command::Doctor(a) => doctor::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Eval(a) => eval::run(a),
    };
    match result {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(e) => {
            // One line per cause, outermost first.
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                let c = cause.to_string();
                if !msg.contains(&c) {
                    msg.push_str(&format!(": {c}"));
                }
            }
            eprintln!("{msg}");
            ExitCode::from(exit_code(&e))
        }
    }
}
