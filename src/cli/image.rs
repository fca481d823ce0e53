//! `stylize image`: one picture in, one stylised picture out.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use image::{DynamicImage, ImageFormat, ImageReader};
use stylize::frame::{FrameMut, PixelFormat};

use super::BadInput;
use super::common::{ModelArgs, provider_line};

/// Arguments of `stylize image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Picture to stylise (PNG, JPEG, BMP, GIF, TIFF or WebP).
    pub input: PathBuf,
    /// Where to write the result: .png (keeps transparency) or .jpg/.jpeg.
    pub output: PathBuf,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Overwrite OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print a JSON summary instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

fn output_format(path: &Path) -> Result<ImageFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("png") => Ok(ImageFormat::Png),
        Some("jpg" | "jpeg") => Ok(ImageFormat::Jpeg),
        _ => Err(BadInput(format!(
            "output {}: unsupported extension (expected .png, .jpg or .jpeg)",
            path.display()
        ))
        .into()),
    }
}

fn decode(path: &Path) -> Result<DynamicImage> {
    if !path.exists() {
        return Err(BadInput(format!("input {}: no such file", path.display())).into());
    }
    if path.is_dir() {
        return Err(BadInput(format!("input {}: is a directory", path.display())).into());
    }
    let reader = ImageReader::open(path)
        .map_err(|e| BadInput(format!("input {}: cannot open: {e}", path.display())))?
        .with_guessed_format()
        .map_err(|e| BadInput(format!("input {}: cannot read: {e}", path.display())))?;
    if reader.format().is_none() {
        return Err(BadInput(format!(
            "input {}: not a picture in a format this tool reads (PNG, JPEG, BMP, GIF, TIFF, WebP)",
            path.display()
        ))
        .into());
    }
    reader
        .decode()
        .map_err(|e| BadInput(format!("input {}: cannot decode: {e}", path.display())).into())
}

/// Writes beside the target and renames, so a failure never leaves a partial file there.
fn save_atomically(img: &DynamicImage, path: &Path, format: ImageFormat) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("output");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> Result<()> {
        let file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = BufWriter::new(file);
        match format {
            ImageFormat::Jpeg => {
                let rgb = img.to_rgb8();
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 92)
                    .encode_image(&rgb)
                    .with_context(|| format!("cannot encode {}", path.display()))?;
            }
            _ => img
                .write_to(&mut w, format)
                .with_context(|| format!("cannot encode {}", path.display()))?,
        }
        w.into_inner()
            .map_err(|e| e.into_error())
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Runs `stylize image`.
pub fn run(args: ImageArgs) -> Result<()> {
    let config = args.model.validate()?;
    let format = output_format(&args.output)?;
    if args.output.exists() && !args.force {
        return Err(BadInput(format!(
            "output {} exists; add --force to overwrite it",
            args.output.display()
        ))
        .into());
    }
    let decoded = decode(&args.input)?;
    let (mut img, pixel_format) = if decoded.color().has_alpha() {
        (
            DynamicImage::ImageRgba8(decoded.into_rgba8()),
            PixelFormat::Rgba,
        )
    } else {
        (
            DynamicImage::ImageRgb8(decoded.into_rgb8()),
            PixelFormat::Rgb,
        )
    };
    let (w, h) = (img.width() as usize, img.height() as usize);

    let t_load = Instant::now();
    let mut stylizer = config.load()?;
    let load_ms = t_load.elapsed().as_secs_f64() * 1e3;

    let t_run = Instant::now();
    {
        let bytes: &mut [u8] = match &mut img {
            DynamicImage::ImageRgba8(b) => b,
            DynamicImage::ImageRgb8(b) => b,
            _ => unreachable!("converted above"),
        };
        let stride = w * pixel_format.bytes_per_pixel();
        let mut frame = FrameMut::new(bytes, w, h, stride, pixel_format)?;
        stylizer
            .process(&mut frame, config.strength)
            .with_context(|| {
                format!(
                    "stylising {} with model {} (nothing was written)",
                    args.input.display(),
                    config.model.display()
                )
            })?;
    }
    let run_ms = t_run.elapsed().as_secs_f64() * 1e3;
    save_atomically(&img, &args.output, format)?;

    let provider = stylizer.engine().provider();
    if args.json {
        let times = stylizer.times();
        let summary = serde_json::json!({
            "input": args.input,
            "output": args.output,
            "width": w,
            "height": h,
            "model": config.model,
            "provider": provider.as_str(),
            "fallbacks": stylizer.engine().fallbacks().iter()
                .map(|(p, r)| serde_json::json!({"provider": p.as_str(), "reason": r}))
                .collect::<Vec<_>>(),
            "spec": stylizer.spec().summary(),
            "auto_padding": stylizer.auto_padding(),
            "strength": config.strength,
            "inference_scale": config.stylizer.inference_scale,
            "upsampler": config.stylizer.upsampler.name(),
            "load_ms": load_ms,
            "stylize_ms": run_ms,
            "stages_ms": {
                "to_tensor": times.to_tensor.as_secs_f64() * 1e3,
                "inference": times.inference.as_secs_f64() * 1e3,
                "to_frame": times.to_frame.as_secs_f64() * 1e3,
            },
        });
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "stylised {} -> {} ({w}x{h}) with {} on {} in {run_ms:.1} ms (model load {load_ms:.0} ms)",
            args.input.display(),
            args.output.display(),
            config.model.display(),
            provider_line(&stylizer),
        );
    }
    Ok(())
}
