//! Frame ↔ tensor conversion. The inner loops are monomorphised per bytes-per-pixel so the
//! compiler can unroll and vectorise them; nothing here allocates.

use super::{ChannelOrder, Frame, FrameError, FrameMut, Layout, TensorFormat};

fn channel_offsets(frame_offsets: [usize; 3], order: ChannelOrder) -> [usize; 3] {
    // Tensor channel c reads byte offset off[c] of a pixel.
    match order {
        ChannelOrder::Rgb => frame_offsets,
        ChannelOrder::Bgr => [frame_offsets[2], frame_offsets[1], frame_offsets[0]],
    }
}

fn check_tensor(len: usize, tw: usize, th: usize, fw: usize, fh: usize) -> Result<(), FrameError> {
    // Checked: sizes whose product overflows match no buffer (saturated in the message).
    let needed = tw.checked_mul(th).and_then(|n| n.checked_mul(3));
    if needed != Some(len) {
        return Err(FrameError::TensorSize {
            len,
            needed: needed.unwrap_or(usize::MAX),
            width: tw,
            height: th,
        });
    }
    if tw < fw || th < fh {
        return Err(FrameError::TensorTooSmall {
            tensor_width: tw,
            tensor_height: th,
            width: fw,
            height: fh,
        });
    }
    Ok(())
}

/// Writes `src` into the top-left of a `width`×`height` tensor (`dst`, 3 channels, batch 1)
/// and fills the rest by repeating the last column and row, so padded borders look like the
/// picture's edge rather than a black bar the network would react to.
pub fn pack(
    src: &Frame<'_>,
    dst: &mut [f32],
    width: usize,
    height: usize,
    format: TensorFormat,
) -> Result<(), FrameError> {
    check_tensor(dst.len(), width, height, src.width(), src.height())?;
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        unsafe { pack_avx2(src, dst, width, height, format) };
        return Ok(());
    }
    pack_any(src, dst, width, height, format);
    Ok(())
}

/// [`pack_any`] compiled for AVX2 (about a third faster): Rust's float arithmetic and
/// conversions mean the same on every instruction set, and it fuses no multiply-add, so the
/// tensor is the same to the bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn pack_avx2(src: &Frame<'_>, dst: &mut [f32], width: usize, height: usize, format: TensorFormat) {
    pack_any(src, dst, width, height, format);
}

#[inline(always)]
fn pack_any(src: &Frame<'_>, dst: &mut [f32], width: usize, height: usize, format: TensorFormat) {
    let off = channel_offsets(src.format().rgb_offsets(), format.order);
    let (scale, offset) = format.range.from_byte();
    match (src.format().bytes_per_pixel(), format.layout) {
        (3, Layout::Nchw) => pack_planar::<3>(src, dst, width, height, off, scale, offset),
        (4, Layout::Nchw) => pack_planar::<4>(src, dst, width, height, off, scale, offset),
        (3, Layout::Nhwc) => pack_interleaved::<3>(src, dst, width, height, off, scale, offset),
        (_, Layout::Nhwc) => pack_interleaved::<4>(src, dst, width, height, off, scale, offset),
        _ => unreachable!("bytes per pixel is 3 or 4"),
    }
}

#[inline(always)]
fn pack_planar<const BPP: usize>(
    src: &Frame<'_>,
    dst: &mut [f32],
    width: usize,
    height: usize,
    off: [usize; 3],
    scale: f32,
    offset: f32,
) {
    let plane = width * height;
    let (p0, rest) = dst.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    let fw = src.width();
    for y in 0..src.height() {
        let row = src.row(y);
        let o = y * width;
        let (d0, d1, d2) = (
            &mut p0[o..o + width],
            &mut p1[o..o + width],
            &mut p2[o..o + width],
        );
        for (x, px) in row.chunks_exact(BPP).enumerate() {
            d0[x] = px[off[0]] as f32 * scale + offset;
            d1[x] = px[off[1]] as f32 * scale + offset;
            d2[x] = px[off[2]] as f32 * scale + offset;
        }
        if width > fw {
            let (l0, l1, l2) = (d0[fw - 1], d1[fw - 1], d2[fw - 1]);
            d0[fw..].fill(l0);
            d1[fw..].fill(l1);
            d2[fw..].fill(l2);
        }
    }
    // Padding rows repeat the last row of the picture.
    let last = (src.height() - 1) * width;
    for p in [p0, p1, p2] {
        for y in src.height()..height {
            p.copy_within(last..last + width, y * width);
        }
    }
}

#[inline(always)]
fn pack_interleaved<const BPP: usize>(
    src: &Frame<'_>,
    dst: &mut [f32],
    width: usize,
    height: usize,
    off: [usize; 3],
    scale: f32,
    offset: f32,
) {
    let fw = src.width();
    let row_len = width * 3;
    for y in 0..src.height() {
        let d = &mut dst[y * row_len..(y + 1) * row_len];
        for (t, px) in d.chunks_exact_mut(3).zip(src.row(y).chunks_exact(BPP)) {
            t[0] = px[off[0]] as f32 * scale + offset;
            t[1] = px[off[1]] as f32 * scale + offset;
            t[2] = px[off[2]] as f32 * scale + offset;
        }
        if width > fw {
            let last = [d[fw * 3 - 3], d[fw * 3 - 2], d[fw * 3 - 1]];
            for t in d[fw * 3..].chunks_exact_mut(3) {
                t.copy_from_slice(&last);
            }
        }
    }
    let last = (src.height() - 1) * row_len;
    for y in src.height()..height {
        dst.copy_within(last..last + row_len, y * row_len);
    }
}

/// Converts a value in tensor range to a byte: round half up, clamp. NaN becomes 0.
#[inline(always)]
fn to_byte(v: f32) -> u8 {
    // `max` returns 0 for NaN and both bounds take infinities, so the value is finite and in
    // [0.5, 255] or 0 here; adding 0.5 then truncating rounds half up. The unchecked
    // conversion vectorises where the saturating `as` cast does not.
    // Not `clamp`: that keeps NaN, and NaN must become 0 here.
    #[allow(clippy::manual_clamp)]
    let c = (v + 0.5).max(0.0).min(255.0);
    // SAFETY: `c` is finite and within 0..=255, so it fits an i32.
    unsafe { c.to_int_unchecked::<i32>() as u8 }
}

/// Writes the top-left `dst.width()`×`dst.height()` of a `width`×`height` tensor into the
/// colour bytes of `dst`. `dst` holds the original picture: with `strength` below 1 the result
/// is `original + strength × (stylised − original)`. Alpha and padding bytes are left as they
/// are.
///
/// Returns how many of the tensor values it read are not finite (NaN or ±infinity), counted
/// in the same pass: 0 means every byte written is a real value. Otherwise the bytes made from
/// those values are meaningless (NaN becomes 0, infinities clamp) and the caller should not
/// show the frame.
pub fn unpack(
    src: &[f32],
    width: usize,
    height: usize,
    format: TensorFormat,
    dst: &mut FrameMut<'_>,
    strength: f32,
) -> Result<usize, FrameError> {
    check_tensor(src.len(), width, height, dst.width(), dst.height())?;
    let s = strength.clamp(0.0, 1.0);
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return Ok(unsafe { unpack_avx2(src, width, height, format, dst, s) });
    }
    Ok(unpack_any(src, width, height, format, dst, s))
}

/// [`unpack_any`] compiled for AVX2; the same bytes (see [`pack_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn unpack_avx2(
    src: &[f32],
    width: usize,
    height: usize,
    format: TensorFormat,
    dst: &mut FrameMut<'_>,
    s: f32,
) -> usize {
    unpack_any(src, width, height, format, dst, s)
}

#[inline(always)]
fn unpack_any(
    src: &[f32],
    width: usize,
    height: usize,
    format: TensorFormat,
    dst: &mut FrameMut<'_>,
    s: f32,
) -> usize {
    let off = channel_offsets(dst.format().rgb_offsets(), format.order);
    let (scale, offset) = format.range.to_byte();
    match (dst.format().bytes_per_pixel(), format.layout) {
        (3, Layout::Nchw) => unpack_planar::<3>(src, width, height, dst, off, scale, offset, s),
        (4, Layout::Nchw) => unpack_planar::<4>(src, width, height, dst, off, scale, offset, s),
        (3, Layout::Nhwc) => unpack_interleaved::<3>(src, width, dst, off, scale, offset, s),
        (_, Layout::Nhwc) => unpack_interleaved::<4>(src, width, dst, off, scale, offset, s),
        _ => unreachable!("bytes per pixel is 3 or 4"),
    }
}

/// 1 for NaN and ±infinity, else 0: a compare the unpack loops vectorise.
#[inline(always)]
fn non_finite(v: f32) -> u32 {
    u32::from(!v.is_finite())
}

#[inline(always)]
fn put(px: &mut [u8], i: usize, v: f32, s: f32) {
    if s >= 1.0 {
        px[i] = to_byte(v);
    } else {
        let o = px[i] as f32;
        px[i] = to_byte(o + s * (v.clamp(0.0, 255.0) - o));
    }
}

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn unpack_planar<const BPP: usize>(
    src: &[f32],
    width: usize,
    height: usize,
    dst: &mut FrameMut<'_>,
    off: [usize; 3],
    scale: f32,
    offset: f32,
    s: f32,
) -> usize {
    let plane = width * height;
    let (p0, p1, p2) = (
        &src[..plane],
        &src[plane..2 * plane],
        &src[2 * plane..3 * plane],
    );
    let fw = dst.width();
    if s >= 1.0 {
        return unpack_planar_full::<BPP>([p0, p1, p2], width, dst, off, scale, offset);
    }
    let mut bad = 0usize;
    for y in 0..dst.height() {
        let o = y * width;
        let (s0, s1, s2) = (&p0[o..o + fw], &p1[o..o + fw], &p2[o..o + fw]);
        let mut row_bad = 0u32;
        for (x, px) in dst.row_mut(y).chunks_exact_mut(BPP).enumerate() {
            let (v0, v1, v2) = (s0[x], s1[x], s2[x]);
            row_bad += non_finite(v0) + non_finite(v1) + non_finite(v2);
            put(px, off[0], v0 * scale + offset, s);
            put(px, off[1], v1 * scale + offset, s);
            put(px, off[2], v2 * scale + offset, s);
        }
        bad += row_bad as usize;
    }
    bad
}

/// Full strength: convert a run of each plane to bytes (a vectorisable loop), then
/// interleave them into the pixels.
#[inline(always)]
fn unpack_planar_full<const BPP: usize>(
    planes: [&[f32]; 3],
    width: usize,
    dst: &mut FrameMut<'_>,
    off: [usize; 3],
    scale: f32,
    offset: f32,
) -> usize {
    const RUN: usize = 64;
    let mut bytes = [[0u8; RUN]; 3];
    let mut bad = 0usize;
    for y in 0..dst.height() {
        let row_start = y * width;
        for (run, pixels) in dst.row_mut(y).chunks_mut(RUN * BPP).enumerate() {
            let n = pixels.len() / BPP;
            let start = row_start + run * RUN;
            for (plane, out) in planes.iter().zip(bytes.iter_mut()) {
                let mut run_bad = 0u32;
                for (b, &v) in out[..n].iter_mut().zip(&plane[start..start + n]) {
                    *b = to_byte(v * scale + offset);
                    run_bad += non_finite(v);
                }
                bad += run_bad as usize;
            }
            for (i, px) in pixels.chunks_exact_mut(BPP).enumerate() {
                px[off[0]] = bytes[0][i];
                px[off[1]] = bytes[1][i];
                px[off[2]] = bytes[2][i];
            }
        }
    }
    bad
}

#[inline(always)]
fn unpack_interleaved<const BPP: usize>(
    src: &[f32],
    width: usize,
    dst: &mut FrameMut<'_>,
    off: [usize; 3],
    scale: f32,
    offset: f32,
    s: f32,
) -> usize {
    let row_len = width * 3;
    let mut bad = 0usize;
    for y in 0..dst.height() {
        let t = &src[y * row_len..(y + 1) * row_len];
        let mut row_bad = 0u32;
        for (px, v) in dst.row_mut(y).chunks_exact_mut(BPP).zip(t.chunks_exact(3)) {
            row_bad += non_finite(v[0]) + non_finite(v[1]) + non_finite(v[2]);
            put(px, off[0], v[0] * scale + offset, s);
            put(px, off[1], v[1] * scale + offset, s);
            put(px, off[2], v[2] * scale + offset, s);
        }
        bad += row_bad as usize;
    }
    bad
}

/// Mixes the colour bytes of `styled` into `dst` (same size and format):
/// `dst = dst + strength × (styled − dst)`. Alpha and padding bytes of `dst` are kept.
pub fn mix(dst: &mut FrameMut<'_>, styled: &Frame<'_>, strength: f32) -> Result<(), FrameError> {
    if (dst.width(), dst.height(), dst.format())
        != (styled.width(), styled.height(), styled.format())
    {
        return Err(FrameError::Mismatch(format!(
            "cannot mix a {}x{} {} frame into a {}x{} {} frame",
            styled.width(),
            styled.height(),
            styled.format(),
            dst.width(),
            dst.height(),
            dst.format()
        )));
    }
    let bpp = dst.format().bytes_per_pixel();
    let s = strength.clamp(0.0, 1.0);
    if s <= 0.0 {
        return Ok(());
    }
    for y in 0..dst.height() {
        let (src, row) = (styled.row(y), dst.row_mut(y));
        match (bpp, s >= 1.0) {
            (3, true) => row.copy_from_slice(src),
            (3, false) => mix_row::<false>(row, src, s),
            (_, true) => copy_colour(row, src),
            (_, false) => mix_row::<true>(row, src, s),
        }
    }
    Ok(())
}

/// Bytes of an `N`-byte block that `mix` leaves alone: the fourth of every 4-byte pixel
/// (alpha or padding, last in every 4-byte format), when `FOUR`.
const fn kept<const N: usize, const FOUR: bool>() -> [u8; N] {
    let mut m = [0u8; N];
    let mut i = 3;
    while FOUR && i < N {
        m[i] = 0xFF;
        i += 4;
    }
    m
}

/// Bytes per block of `mix`, a multiple of 3 and 4 so that whole pixels remain: fixed-size
/// blocks compile to vector code, where a loop over pixels and their channels did not
/// (640x360 RGBx: at strength 1 464 µs against 19, at 0.5 800 against 315).
const MIX_BLOCK: usize = 48;

/// `dst = src` for the colour bytes of a row of 4-byte pixels; the fourth byte stays.
fn copy_colour(dst: &mut [u8], src: &[u8]) {
    // 64 bytes, a multiple of 4, were faster here than 48 (19 against 28 µs).
    const KEEP: [u8; 64] = kept::<64, true>();
    let mut d = dst.chunks_exact_mut(KEEP.len());
    let mut s = src.chunks_exact(KEEP.len());
    for (d, s) in (&mut d).zip(&mut s) {
        for i in 0..KEEP.len() {
            d[i] = (d[i] & KEEP[i]) | (s[i] & !KEEP[i]);
        }
    }
    for (d, s) in d
        .into_remainder()
        .chunks_exact_mut(4)
        .zip(s.remainder().chunks_exact(4))
    {
        d[..3].copy_from_slice(&s[..3]);
    }
}

/// `dst += strength × (src − dst)` for the colour bytes of a row (0 < strength < 1); with
/// `FOUR` the fourth byte of every 4-byte pixel stays.
fn mix_row<const FOUR: bool>(dst: &mut [u8], src: &[u8], strength: f32) {
    let keep: [u8; MIX_BLOCK] = kept::<MIX_BLOCK, FOUR>();
    let one = |d: u8, s: u8| to_byte(d as f32 + strength * (s as f32 - d as f32));
    let mut d = dst.chunks_exact_mut(MIX_BLOCK);
    let mut s = src.chunks_exact(MIX_BLOCK);
    for (d, s) in (&mut d).zip(&mut s) {
        for i in 0..MIX_BLOCK {
            d[i] = (d[i] & keep[i]) | (one(d[i], s[i]) & !keep[i]);
        }
    }
    let bpp = if FOUR { 4 } else { 3 };
    for (d, s) in d
        .into_remainder()
        .chunks_exact_mut(bpp)
        .zip(s.remainder().chunks_exact(bpp))
    {
        for c in 0..3 {
            d[c] = one(d[c], s[c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{OwnedFrame, PixelFormat, ValueRange};
    use proptest::prelude::*;

    /// A frame with a padded stride, filled with a pattern that differs per channel.
    fn pattern(w: usize, h: usize, stride_pad: usize, format: PixelFormat) -> (Vec<u8>, usize) {
        let bpp = format.bytes_per_pixel();
        let stride = w * bpp + stride_pad;
        let mut buf = vec![0xEEu8; stride * h];
        for y in 0..h {
            for x in 0..w {
                for c in 0..bpp {
                    buf[y * stride + x * bpp + c] = ((x * 7 + y * 13 + c * 61) % 256) as u8;
                }
            }
        }
        (buf, stride)
    }

    fn rgb_at(f: &Frame<'_>, x: usize, y: usize) -> [u8; 3] {
        let o = f.format().rgb_offsets();
        let px = &f.row(y)[x * f.format().bytes_per_pixel()..];
        [px[o[0]], px[o[1]], px[o[2]]]
    }

    #[test]
    fn pack_nchw_bgr_pads_with_edges() {
        let (buf, stride) = pattern(5, 3, 7, PixelFormat::Rgba);
        let f = Frame::new(&buf, 5, 3, stride, PixelFormat::Rgba).unwrap();
        let (tw, th) = (8, 4);
        let mut t = vec![0.0; tw * th * 3];
        let fmt = TensorFormat {
            layout: Layout::Nchw,
            order: ChannelOrder::Bgr,
            range: ValueRange::Byte,
        };
        pack(&f, &mut t, tw, th, fmt).unwrap();
        for y in 0..th {
            for x in 0..tw {
                let p = rgb_at(&f, x.min(4), y.min(2));
                // Channel 0 is blue in a BGR tensor.
                assert_eq!(t[y * tw + x], p[2] as f32, "b at {x},{y}");
                assert_eq!(t[tw * th + y * tw + x], p[1] as f32);
                assert_eq!(t[2 * tw * th + y * tw + x], p[0] as f32);
            }
        }
    }

    #[test]
    fn pack_nhwc_signed_range() {
        let (buf, stride) = pattern(3, 2, 1, PixelFormat::Bgr);
        let f = Frame::new(&buf, 3, 2, stride, PixelFormat::Bgr).unwrap();
        let mut t = vec![0.0; 4 * 3 * 3];
        let fmt = TensorFormat {
            layout: Layout::Nhwc,
            order: ChannelOrder::Rgb,
            range: ValueRange::Signed,
        };
        pack(&f, &mut t, 4, 3, fmt).unwrap();
        for y in 0..3 {
            for x in 0..4 {
                let p = rgb_at(&f, x.min(2), y.min(1));
                for c in 0..3 {
                    let v = t[(y * 4 + x) * 3 + c];
                    assert!((v - (p[c] as f32 / 127.5 - 1.0)).abs() < 1e-6);
                }
            }
        }
    }

    #[test]
    fn sizes_are_checked() {
        let (buf, stride) = pattern(4, 4, 0, PixelFormat::Rgb);
        let f = Frame::new(&buf, 4, 4, stride, PixelFormat::Rgb).unwrap();
        let mut t = vec![0.0; 3 * 3 * 3];
        assert!(matches!(
            pack(&f, &mut t, 3, 3, TensorFormat::default()),
            Err(FrameError::TensorTooSmall { .. })
        ));
        let mut t = vec![0.0; 10];
        assert!(matches!(
            pack(&f, &mut t, 4, 4, TensorFormat::default()),
            Err(FrameError::TensorSize { .. })
        ));
    }

    #[test]
    fn unpack_keeps_alpha_and_padding_and_mixes() {
        let (mut buf, stride) = pattern(3, 2, 5, PixelFormat::Bgra);
        let orig = buf.clone();
        let mut t = vec![0.0; 3 * 2 * 3];
        t.fill(0.5); // mid-grey in 0-1
        let fmt = TensorFormat {
            layout: Layout::Nchw,
            order: ChannelOrder::Rgb,
            range: ValueRange::Unit,
        };
        let mut f = FrameMut::new(&mut buf, 3, 2, stride, PixelFormat::Bgra).unwrap();
        unpack(&t, 3, 2, fmt, &mut f, 0.5).unwrap();
        for y in 0..2 {
            for x in 0..3 {
                let i = y * stride + x * 4;
                assert_eq!(buf[i + 3], orig[i + 3], "alpha kept");
                for c in 0..3 {
                    let want = orig[i + c] as f32 + 0.5 * (127.5 - orig[i + c] as f32);
                    assert_eq!(buf[i + c], (want + 0.5) as u8);
                }
            }
            // Stride padding untouched.
            assert!(
                buf[y * stride + 12..y * stride + stride.min(buf.len() - y * stride)]
                    .iter()
                    .all(|&b| b == 0xEE)
            );
        }
    }

    #[test]
    fn unpack_clamps_and_survives_nan() {
        let mut buf = vec![0u8; 3 * 2];
        let t = [
            f32::NAN,
            -5.0,
            300.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            254.6,
        ];
        let fmt = TensorFormat {
            layout: Layout::Nhwc,
            ..Default::default()
        };
        let mut f = FrameMut::new(&mut buf, 2, 1, 6, PixelFormat::Rgb).unwrap();
        assert_eq!(
            unpack(&t, 2, 1, fmt, &mut f, 1.0).unwrap(),
            3,
            "NaN, +Inf, -Inf"
        );
        assert_eq!(buf, [0, 0, 255, 255, 0, 255]);
    }

    #[test]
    fn unpack_counts_non_finite_values_in_every_path() {
        // One NaN and one infinity inside the frame, one NaN in the padding (not read).
        let (w, h, tw, th) = (5, 3, 6, 4);
        for layout in [Layout::Nchw, Layout::Nhwc] {
            for format in [PixelFormat::Rgb, PixelFormat::Bgra] {
                for strength in [1.0, 0.5, 0.0] {
                    let mut t = vec![100.0f32; tw * th * 3];
                    let at = |x: usize, y: usize, c: usize| match layout {
                        Layout::Nchw => c * tw * th + y * tw + x,
                        Layout::Nhwc => (y * tw + x) * 3 + c,
                    };
                    t[at(1, 1, 0)] = f32::NAN;
                    t[at(4, 2, 2)] = f32::NEG_INFINITY;
                    t[at(5, 3, 1)] = f32::NAN; // padding column and row
                    let (mut buf, stride) = pattern(w, h, 3, format);
                    let mut f = FrameMut::new(&mut buf, w, h, stride, format).unwrap();
                    let fmt = TensorFormat {
                        layout,
                        ..Default::default()
                    };
                    let bad = unpack(&t, tw, th, fmt, &mut f, strength).unwrap();
                    assert_eq!(bad, 2, "{layout:?} {format} strength {strength}");
                    t[at(1, 1, 0)] = 1.0;
                    t[at(4, 2, 2)] = 1.0;
                    let mut f = FrameMut::new(&mut buf, w, h, stride, format).unwrap();
                    assert_eq!(unpack(&t, tw, th, fmt, &mut f, strength).unwrap(), 0);
                }
            }
        }
    }

    #[test]
    fn mix_blends_colour_and_keeps_alpha_and_stride_padding() {
        // Wider than one block of `mix`, and not a multiple of it.
        const W: usize = 21;
        for format in PixelFormat::ALL {
            for strength in [1.0, 0.5] {
                let bpp = format.bytes_per_pixel();
                let (mut buf, stride) = pattern(W, 3, 3, format);
                let orig = buf.clone();
                let styled = OwnedFrame::from_vec(
                    (0..W * 3 * bpp).map(|i| (i * 89 % 256) as u8).collect(),
                    W,
                    3,
                    format,
                )
                .unwrap();
                let mut f = FrameMut::new(&mut buf, W, 3, stride, format).unwrap();
                mix(&mut f, &styled.as_frame(), strength).unwrap();
                for y in 0..3 {
                    for x in 0..W {
                        for c in 0..bpp {
                            let o = orig[y * stride + x * bpp + c];
                            let v = styled.as_frame().row(y)[x * bpp + c];
                            let want = match (c, strength == 1.0) {
                                (3, _) => o,
                                (_, true) => v,
                                (_, false) => ((o as f32 + v as f32) / 2.0 + 0.5) as u8,
                            };
                            let got = buf[y * stride + x * bpp + c];
                            assert_eq!(got, want, "{format} at {strength}: ({x}, {y}) byte {c}");
                        }
                    }
                    // The stride's padding is not the frame's.
                    let end = y * stride + W * bpp;
                    assert_eq!(buf[end..end + 3], orig[end..end + 3], "{format}");
                }
            }
        }
    }

    #[test]
    fn mix_zero_strength_is_identity() {
        let (mut buf, stride) = pattern(4, 3, 2, PixelFormat::Rgbx);
        let orig = buf.clone();
        let other = OwnedFrame::new(4, 3, PixelFormat::Rgbx).unwrap();
        let mut f = FrameMut::new(&mut buf, 4, 3, stride, PixelFormat::Rgbx).unwrap();
        mix(&mut f, &other.as_frame(), 0.0).unwrap();
        assert_eq!(buf, orig);
        let mut f = FrameMut::new(&mut buf, 4, 3, stride, PixelFormat::Rgbx).unwrap();
        mix(&mut f, &other.as_frame(), 1.0).unwrap();
        for y in 0..3 {
            for x in 0..4 {
                let i = y * stride + x * 4;
                assert_eq!(&buf[i..i + 3], &[0, 0, 0]);
                assert_eq!(buf[i + 3], orig[i + 3]);
            }
        }
    }

    fn any_format() -> impl Strategy<Value = PixelFormat> {
        prop::sample::select(PixelFormat::ALL.to_vec())
    }
    fn any_tensor_format() -> impl Strategy<Value = TensorFormat> {
        (
            prop::sample::select(vec![Layout::Nchw, Layout::Nhwc]),
            prop::sample::select(vec![ChannelOrder::Rgb, ChannelOrder::Bgr]),
            prop::sample::select(vec![ValueRange::Unit, ValueRange::Byte, ValueRange::Signed]),
        )
            .prop_map(|(layout, order, range)| TensorFormat {
                layout,
                order,
                range,
            })
    }

    proptest! {
        /// pack then unpack gives back every colour byte, for any size, stride, padding and
        /// tensor convention.
        #[test]
        fn round_trip(
            w in 1usize..19, h in 1usize..13, pad in 0usize..9, tpw in 0usize..5, tph in 0usize..5,
            format in any_format(), tf in any_tensor_format(), seed in any::<u64>(),
        ) {
            let bpp = format.bytes_per_pixel();
            let stride = w * bpp + pad;
            let mut state = seed | 1;
            let src: Vec<u8> = (0..stride * h).map(|_| {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                (state >> 24) as u8
            }).collect();
            let f = Frame::new(&src, w, h, stride, format).unwrap();
            let (tw, th) = (w + tpw, h + tph);
            let mut t = vec![0.0; tw * th * 3];
            pack(&f, &mut t, tw, th, tf).unwrap();
            let mut out = vec![0u8; stride * h];
            let mut o = FrameMut::new(&mut out, w, h, stride, format).unwrap();
            unpack(&t, tw, th, tf, &mut o, 1.0).unwrap();
            let o = o.as_frame();
            for y in 0..h {
                for x in 0..w {
                    prop_assert_eq!(rgb_at(&f, x, y), rgb_at(&o, x, y));
                }
            }
        }
    }
}
