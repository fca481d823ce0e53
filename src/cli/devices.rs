//! `stylize devices`: the cameras `stylize live` can use, with their formats.

use anyhow::Result;
use clap::Args;
use stylize::live;

/// Arguments of `stylize devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `stylize devices`.
pub fn run(args: DevicesArgs) -> Result<()> {
    let cams = live::list_cameras();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "cameras": cams }))?
        );
        return Ok(());
    }
    if cams.is_empty() {
        println!(
            "no cameras found (looked for Video4Linux devices /dev/video*).\n\
             `stylize live --source test` runs the live path on a test pattern without one."
        );
        return Ok(());
    }
    for c in &cams {
        println!("camera {}: {} ({})", c.index, c.name, c.description);
        if let Some(e) = &c.error {
            println!("  formats unknown: {e}");
        }
        for f in &c.formats {
            println!("  {f}");
        }
    }
    Ok(())
}
