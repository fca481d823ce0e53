//! A side-by-side sheet (original | stylised) of a few frames of a conversion.

use std::path::Path;
use std::sync::{Arc, Mutex};

use gst::prelude::*;
use gst_video::prelude::*;
use image::{RgbImage, imageops};

use crate::frame::PixelFormat;

/// Rows kept on the sheet.
const ROWS: usize = 3;
/// Width of each picture on the sheet.
const COLUMN_WIDTH: u32 = 480;

#[derive(Default)]
struct Captures {
    /// Frame index → (original, stylised); frames at power-of-two indices, the last ROWS.
    rows: Vec<(u64, Option<RgbImage>, Option<RgbImage>)>,
    seen_in: u64,
    seen_out: u64,
}

/// Collects frames around the style element and writes the sheet.
pub struct PreviewSheet {
    captures: Arc<Mutex<Captures>>,
}

fn wanted(index: u64) -> bool {
    // 1, 2, 4, 8, ...: the last three cover roughly the second half, quarter and eighth of
    // any length without knowing it in advance.
    index > 0 && index.is_power_of_two()
}

fn to_rgb(pad: &gst::Pad, buffer: &gst::BufferRef) -> Option<RgbImage> {
    let caps = pad.current_caps()?;
    let info = gst_video::VideoInfo::from_caps(&caps).ok()?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).ok()?;
    let (w, h) = (info.width() as usize, info.height() as usize);
    if info.format() == gst_video::VideoFormat::I420 {
        let st = frame.plane_stride();
        let planes = [
            frame.plane_data(0).ok()?,
            frame.plane_data(1).ok()?,
            frame.plane_data(2).ok()?,
        ];
        let i420 = crate::frame::I420::new(
            planes,
            [st[0] as usize, st[1] as usize, st[2] as usize],
            w,
            h,
        )
        .ok()?;
        let mut rgb = crate::frame::OwnedFrame::new(w, h, PixelFormat::Rgb).ok()?;
        crate::frame::i420_to_rgb(
            &i420,
            &mut rgb.as_frame_mut(),
            &crate::element::yuv_matrix(&info),
        )
        .ok()?;
        return RgbImage::from_raw(w as u32, h as u32, rgb.into_vec());
    }
    let format: PixelFormat = info.format().to_str().parse().ok()?;
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).ok()?;
    let bpp = format.bytes_per_pixel();
    let [r, g, b] = format.rgb_offsets();
    let mut out = RgbImage::new(w as u32, h as u32);
    for y in 0..h {
        let row = &data[y * stride..y * stride + w * bpp];
        for (x, px) in row.chunks_exact(bpp).enumerate() {
            out.put_pixel(x as u32, y as u32, image::Rgb([px[r], px[g], px[b]]));
        }
    }
    Some(out)
}

impl PreviewSheet {
    /// Watches frames entering and leaving `style`.
    pub fn attach(style: &gst::Element) -> PreviewSheet {
        let captures = Arc::new(Mutex::new(Captures::default()));
        for (pad_name, original) in [("sink", true), ("src", false)] {
            let c = captures.clone();
            let pad = style.static_pad(pad_name).expect("pad");
            pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
                let Some(buffer) = info.buffer() else {
                    return gst::PadProbeReturn::Ok;
                };
                let mut c = c.lock().unwrap();
                let index = if original {
                    c.seen_in += 1;
                    c.seen_in
                } else {
                    c.seen_out += 1;
                    c.seen_out
                };
                if !wanted(index) {
                    return gst::PadProbeReturn::Ok;
                }
                let img = to_rgb(pad, buffer);
                if original {
                    c.rows.push((index, img, None));
                    if c.rows.len() > ROWS + 1 {
                        c.rows.remove(0);
                    }
                } else if let Some(row) = c.rows.iter_mut().find(|r| r.0 == index) {
                    row.2 = img;
                }
                gst::PadProbeReturn::Ok
            });
        }
        PreviewSheet { captures }
    }

    /// Writes the sheet as PNG (or JPEG by extension).
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let c = self.captures.lock().unwrap();
        let pairs: Vec<(&RgbImage, &RgbImage)> = c
            .rows
            .iter()
            .filter_map(|(_, a, b)| Some((a.as_ref()?, b.as_ref()?)))
            .collect();
        let pairs = &pairs[pairs.len().saturating_sub(ROWS)..];
        if pairs.is_empty() {
            return Err("no frames were captured".into());
        }
        let (w0, h0) = pairs[0].0.dimensions();
        let cw = COLUMN_WIDTH.min(w0).max(1);
        let ch = ((h0 as u64 * cw as u64) / w0.max(1) as u64).max(1) as u32;
        let gap = 4;
        let mut sheet = RgbImage::from_pixel(
            cw * 2 + gap,
            ch * pairs.len() as u32 + gap * (pairs.len() as u32 - 1),
            image::Rgb([255, 255, 255]),
        );
        for (i, (a, b)) in pairs.iter().enumerate() {
            let y = i as u32 * (ch + gap);
            let a = imageops::resize(*a, cw, ch, imageops::FilterType::Triangle);
            let b = imageops::resize(*b, cw, ch, imageops::FilterType::Triangle);
            imageops::replace(&mut sheet, &a, 0, y as i64);
            imageops::replace(&mut sheet, &b, (cw + gap) as i64, y as i64);
        }
        sheet.save(path).map_err(|e| e.to_string())
    }
}
