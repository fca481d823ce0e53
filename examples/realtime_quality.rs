//! The quality cost of CPU real-time mode: a model at inference scale 1 against the same model
//! at a reduced scale, brought back with the guided and with the bilinear upsampler.
//!
//!     cargo run --release --example realtime_quality -- VIDEO [--model PATH] [--scale 0.25] \
//!         [--size 640x360] [--frames 30] [--every 10] [--sheet OUT.png]
//!
//! Prints one JSON line: the mean absolute difference from the scale-1 output, in grey levels
//! (0–255, over R, G and B) for each upsampler, and writes a sheet of a few frames: input |
//! scale 1 | reduced scale, guided | reduced scale, bilinear.

use std::path::PathBuf;
use std::process::ExitCode;

use stylize::convert::VideoReader;
use stylize::engine::{EngineOptions, Provider};
use stylize::frame::OwnedFrame;
use stylize::{SpecOverrides, Stylizer, StylizerOptions, Upsampler, catalog};

struct Args {
    video: PathBuf,
    model: PathBuf,
    scale: f32,
    size: (u32, u32),
    frames: usize,
    every: usize,
    sheet: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut a = Args {
        video: PathBuf::new(),
        model: catalog::default_model().ok_or("no shipped default model")?,
        scale: 0.25,
        size: (640, 360),
        frames: 30,
        every: 10,
        sheet: None,
    };
    let mut video = None;
    while let Some(arg) = it.next() {
        let mut value = || it.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--model" => a.model = catalog::resolve(&value()?),
            "--scale" => a.scale = value()?.parse().map_err(|e| format!("--scale: {e}"))?,
            "--size" => {
                let v = value()?;
                let (w, h) = v.split_once('x').ok_or("--size takes WxH")?;
                a.size = (
                    w.parse().map_err(|e| format!("--size: {e}"))?,
                    h.parse().map_err(|e| format!("--size: {e}"))?,
                );
            }
            "--frames" => a.frames = value()?.parse().map_err(|e| format!("--frames: {e}"))?,
            "--every" => a.every = value()?.parse().map_err(|e| format!("--every: {e}"))?,
            "--sheet" => a.sheet = Some(value()?.into()),
            _ if !arg.starts_with('-') && video.is_none() => video = Some(PathBuf::from(arg)),
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    a.video = video.ok_or("usage: realtime_quality VIDEO [--model PATH] [--scale F] ...")?;
    Ok(a)
}

fn mad(a: &OwnedFrame, b: &OwnedFrame) -> f64 {
    let s: u64 = a
        .data()
        .iter()
        .zip(b.data())
        .map(|(&x, &y)| (x as i64 - y as i64).unsigned_abs())
        .sum();
    s as f64 / a.data().len() as f64
}

fn run(a: Args) -> Result<String, Box<dyn std::error::Error>> {
    let engine = EngineOptions {
        provider: Provider::Cpu,
        ..EngineOptions::default()
    };
    let load = |scale: f32, upsampler: Upsampler| {
        Stylizer::load(
            &a.model,
            &SpecOverrides::default(),
            &engine,
            StylizerOptions {
                inference_scale: scale,
                upsampler,
            },
        )
    };
    let mut full = load(1.0, Upsampler::Guided)?;
    let mut guided = load(a.scale, Upsampler::Guided)?;
    let mut bilinear = load(a.scale, Upsampler::Bilinear)?;
    let mut reader = VideoReader::open(&a.video, Some(a.size))?;
    let mut input = OwnedFrame::new(1, 1, stylize::frame::PixelFormat::Rgb)?;
    let (mut d_guided, mut d_bilinear, mut n) = (0.0, 0.0, 0usize);
    let mut rows: Vec<[OwnedFrame; 4]> = Vec::new();
    while n < a.frames && reader.next_frame(&mut input)? {
        let mut f1 = input.clone();
        let mut fg = input.clone();
        let mut fb = input.clone();
        full.process(&mut f1.as_frame_mut(), 1.0)?;
        guided.process(&mut fg.as_frame_mut(), 1.0)?;
        bilinear.process(&mut fb.as_frame_mut(), 1.0)?;
        d_guided += mad(&f1, &fg);
        d_bilinear += mad(&f1, &fb);
        if n % a.every.max(1) == 0 && rows.len() < 3 {
            rows.push([input.clone(), f1, fg, fb]);
        }
        n += 1;
    }
    if n == 0 {
        return Err("the video has no frames".into());
    }
    if let Some(path) = &a.sheet {
        let (w, h) = (a.size.0 as usize, a.size.1 as usize);
        let mut sheet = image::RgbImage::new((4 * w) as u32, (rows.len() * h) as u32);
        for (r, row) in rows.iter().enumerate() {
            for (c, f) in row.iter().enumerate() {
                for y in 0..h {
                    for x in 0..w {
                        let p = &f.data()[(y * w + x) * 3..(y * w + x) * 3 + 3];
                        sheet.put_pixel(
                            (c * w + x) as u32,
                            (r * h + y) as u32,
                            image::Rgb([p[0], p[1], p[2]]),
                        );
                    }
                }
            }
        }
        sheet.save(path)?;
    }
    Ok(format!(
        "{{\"video\":{:?},\"model\":{:?},\"size\":\"{}x{}\",\"scale\":{},\"frames\":{n},\"mad_guided\":{:.3},\"mad_bilinear\":{:.3}}}",
        a.video.display().to_string(),
        a.model.display().to_string(),
        a.size.0,
        a.size.1,
        a.scale,
        d_guided / n as f64,
        d_bilinear / n as f64
    ))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("realtime_quality: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("realtime_quality: {e}");
            ExitCode::FAILURE
        }
    }
}
