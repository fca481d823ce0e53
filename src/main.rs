//! The `stylize` command line.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    // ONNX Runtime keeps a telemetry database and a device id under
    // ~/.cache/Microsoft/DeveloperTools even with telemetry events disabled through its API
    // (which the runtime does); opening it took ~30 ms of every start. Only this variable
    // stops it, and only if set before the runtime's environment is made. A user's own
    // setting wins.
    if std::env::var_os("ORT_DISABLE_TELEMETRY").is_none() {
        // SAFETY: the first thing the process does: no other thread exists yet to read or
        // write the environment.
        unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    }
    cli::main()
}
