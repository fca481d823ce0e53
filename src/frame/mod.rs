//! Video frames in system memory and their conversion to and from model tensors.
//!
//! A [`Frame`] is a borrowed, stride-aware view of packed 8-bit pixels (RGB, BGR, RGBA, BGRA,
//! RGBx, BGRx). [`pack`] turns one into an `f32` tensor in the layout, channel order and value
//! range a model wants, padding by edge replication; [`unpack`] writes a tensor back into a
//! frame, mixing with what the frame held by a strength. Neither allocates.
//! [`Resizer`] resamples frames (PIL-compatible antialiased bilinear); [`GuidedUpsampler`]
//! brings a low-resolution stylised frame back to full size with the input's edges.

mod convert;
mod guided;
mod resize;
mod yuv;

use std::fmt;
use std::str::FromStr;

pub use convert::{mix, pack, unpack};
pub use guided::GuidedUpsampler;
pub use resize::Resizer;
pub use yuv::{I420, I420Mut, YuvMatrix, chroma_size, downscale_to_rgb, i420_to_rgb, rgb_to_i420};

/// Errors in describing or converting a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Width or height is zero.
    #[error("frame size {width}x{height} is empty")]
    Empty {
        /// Frame width in pixels.
        width: usize,
        /// Frame height in pixels.
        height: usize,
    },
    /// The row stride is shorter than a row of pixels.
    #[error("stride {stride} is shorter than a row of {width} {format} pixels ({row} bytes)")]
    StrideTooSmall {
        /// Bytes between rows.
        stride: usize,
        /// Frame width in pixels.
        width: usize,
        /// Pixel format.
        format: PixelFormat,
        /// Bytes one row of pixels needs.
        row: usize,
    },
    /// The buffer cannot hold the frame.
    #[error(
        "buffer of {len} bytes is too small for a {width}x{height} frame with stride {stride} ({needed} bytes)"
    )]
    BufferTooSmall {
        /// Buffer length in bytes.
        len: usize,
        /// Bytes needed.
        needed: usize,
        /// Frame width in pixels.
        width: usize,
        /// Frame height in pixels.
        height: usize,
        /// Bytes between rows.
        stride: usize,
    },
    /// A tensor buffer does not match the size it is said to have.
    #[error("tensor of {len} values does not match {width}x{height}x3 ({needed} values)")]
    TensorSize {
        /// Values in the buffer.
        len: usize,
        /// Values needed.
        needed: usize,
        /// Tensor width.
        width: usize,
        /// Tensor height.
        height: usize,
    },
    /// The tensor is smaller than the frame it is converted from or to.
    #[error("tensor {tensor_width}x{tensor_height} is smaller than the frame {width}x{height}")]
    TensorTooSmall {
        /// Tensor width.
        tensor_width: usize,
        /// Tensor height.
        tensor_height: usize,
        /// Frame width.
        width: usize,
        /// Frame height.
        height: usize,
    },
    /// Two frames that must match in size or format do not.
    #[error("frames do not match: {0}")]
    Mismatch(String),
    /// A pixel format name that is not one of the supported ones.
    #[error("unknown pixel format '{0}' (expected RGB, BGR, RGBA, BGRA, RGBx or BGRx)")]
    UnknownFormat(String),
    /// A frame to be allocated whose size in bytes does not fit in memory.
    #[error("a {width}x{height} {format} frame is too large to allocate")]
    TooLarge {
        /// Frame width in pixels.
        width: usize,
        /// Frame height in pixels.
        height: usize,
        /// Pixel format.
        format: PixelFormat,
    },
}

/// Packed 8-bit pixel formats the frame path handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// R, G, B.
    Rgb,
    /// B, G, R.
    Bgr,
    /// R, G, B, alpha.
    Rgba,
    /// B, G, R, alpha.
    Bgra,
    /// R, G, B, padding byte.
    Rgbx,
    /// B, G, R, padding byte.
    Bgrx,
}

impl PixelFormat {
    /// Every supported format.
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
    ];

    /// Bytes per pixel.
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb | PixelFormat::Bgr => 3,
            _ => 4,
        }
    }

    /// Byte offsets of red, green and blue within a pixel.
    pub const fn rgb_offsets(self) -> [usize; 3] {
        match self {
            PixelFormat::Rgb | PixelFormat::Rgba | PixelFormat::Rgbx => [0, 1, 2],
            PixelFormat::Bgr | PixelFormat::Bgra | PixelFormat::Bgrx => [2, 1, 0],
        }
    }

    /// The GStreamer / common name of the format (`RGBA`, `BGRx`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb => "RGB",
            PixelFormat::Bgr => "BGR",
            PixelFormat::Rgba => "RGBA",
            PixelFormat::Bgra => "BGRA",
            PixelFormat::Rgbx => "RGBx",
            PixelFormat::Bgrx => "BGRx",
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PixelFormat {
    type Err = FrameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PixelFormat::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| FrameError::UnknownFormat(s.to_string()))
    }
}

/// Order of the tensor dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Layout {
    /// Batch, channel, height, width (PyTorch exports).
    #[default]
    Nchw,
    /// Batch, height, width, channel (TensorFlow exports).
    Nhwc,
}

/// Order of the colour channels in the tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChannelOrder {
    /// Red, green, blue.
    #[default]
    Rgb,
    /// Blue, green, red (Caffe-style and many fast-neural-style exports).
    Bgr,
}

/// The range of tensor values that stands for 8-bit 0..=255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ValueRange {
    /// `0-1`.
    Unit,
    /// `0-255`.
    #[default]
    Byte,
    /// `-1-1` (tanh outputs: CycleGAN, AnimeGAN).
    Signed,
}

impl ValueRange {
    /// `(scale, offset)` such that `value = byte * scale + offset`.
    pub const fn from_byte(self) -> (f32, f32) {
        match self {
            ValueRange::Unit => (1.0 / 255.0, 0.0),
            ValueRange::Byte => (1.0, 0.0),
            ValueRange::Signed => (1.0 / 127.5, -1.0),
        }
    }

    /// `(scale, offset)` such that `byte = value * scale + offset`.
    pub const fn to_byte(self) -> (f32, f32) {
        match self {
            ValueRange::Unit => (255.0, 0.0),
            ValueRange::Byte => (1.0, 0.0),
            ValueRange::Signed => (127.5, 127.5),
        }
    }
}

/// Parse error for the small enums above, naming what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{value}' is not a valid {what} (expected {expected})")]
pub struct ParseEnumError {
    /// The text given.
    pub value: String,
    /// What it was meant to be.
    pub what: &'static str,
    /// The accepted values.
    pub expected: &'static str,
}

macro_rules! text_enum {
    ($ty:ty, $what:literal, $expected:literal, { $($variant:path => $text:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl $ty {
            /// The canonical text of this value.
            pub const fn as_str(self) -> &'static str {
                match self { $($variant => $text),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl FromStr for $ty {
            type Err = ParseEnumError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text $(| $alias)* => Ok($variant),)+
                    _ => Err(ParseEnumError { value: s.to_string(), what: $what, expected: $expected }),
                }
            }
        }
    };
}

text_enum!(Layout, "tensor layout", "nchw or nhwc", {
    Layout::Nchw => "nchw",
    Layout::Nhwc => "nhwc",
});
text_enum!(ChannelOrder, "channel order", "rgb or bgr", {
    ChannelOrder::Rgb => "rgb",
    ChannelOrder::Bgr => "bgr",
});
text_enum!(ValueRange, "value range", "0-1, 0-255 or -1-1", {
    ValueRange::Unit => "0-1" | "0..1",
    ValueRange::Byte => "0-255" | "0..255",
    ValueRange::Signed => "-1-1" | "-1..1",
});

/// How pixels map to the values of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TensorFormat {
    /// Dimension order.
    pub layout: Layout,
    /// Channel order.
    pub order: ChannelOrder,
    /// Value range.
    pub range: ValueRange,
}

fn check_geometry(
    len: usize,
    width: usize,
    height: usize,
    stride: usize,
    format: PixelFormat,
) -> Result<(), FrameError> {
    if width == 0 || height == 0 {
        return Err(FrameError::Empty { width, height });
    }
    // Saturating: sizes beyond the address space (from a caller's arithmetic gone wrong or
    // a corrupt header) are reported as too large for the stride or the buffer, never wrap.
    let row = width.saturating_mul(format.bytes_per_pixel());
    if stride < row {
        return Err(FrameError::StrideTooSmall {
            stride,
            width,
            format,
            row,
        });
    }
    let needed = stride.saturating_mul(height - 1).saturating_add(row);
    if len < needed {
        return Err(FrameError::BufferTooSmall {
            len,
            needed,
            width,
            height,
            stride,
        });
    }
    Ok(())
}

/// Bytes of a tightly packed frame; an error when it is empty or too large to allocate
/// (the product overflows, or exceeds what one allocation may hold).
pub(crate) fn packed_len(
    width: usize,
    height: usize,
    format: PixelFormat,
) -> Result<usize, FrameError> {
    if width == 0 || height == 0 {
        return Err(FrameError::Empty { width, height });
    }
    width
        .checked_mul(format.bytes_per_pixel())
        .and_then(|row| row.checked_mul(height))
        .filter(|&len| len <= isize::MAX as usize)
        .ok_or(FrameError::TooLarge {
            width,
            height,
            format,
        })
}

/// A borrowed, read-only frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    data: &'a [u8],
    width: usize,
    height: usize,
    stride: usize,
    format: PixelFormat,
}

impl<'a> Frame<'a> {
    /// Describes `data` as a frame; `stride` is the distance between rows in bytes.
    pub fn new(
        data: &'a [u8],
        width: usize,
        height: usize,
        stride: usize,
        format: PixelFormat,
    ) -> Result<Self, FrameError> {
        check_geometry(data.len(), width, height, stride, format)?;
        Ok(Frame {
            data,
            width,
            height,
            stride,
            format,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// Bytes between rows.
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// The whole buffer, rows `stride` bytes apart.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// The pixels of row `y` (without the stride padding).
    #[inline]
    pub fn row(&self, y: usize) -> &'a [u8] {
        let start = y * self.stride;
        &self.data[start..start + self.width * self.format.bytes_per_pixel()]
    }
}

/// A borrowed, writable frame.
#[derive(Debug)]
pub struct FrameMut<'a> {
    data: &'a mut [u8],
    width: usize,
    height: usize,
    stride: usize,
    format: PixelFormat,
}

impl<'a> FrameMut<'a> {
    /// Describes `data` as a writable frame.
    pub fn new(
        data: &'a mut [u8],
        width: usize,
        height: usize,
        stride: usize,
        format: PixelFormat,
    ) -> Result<Self, FrameError> {
        check_geometry(data.len(), width, height, stride, format)?;
        Ok(FrameMut {
            data,
            width,
            height,
            stride,
            format,
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// Bytes between rows.
    pub fn stride(&self) -> usize {
        self.stride
    }
    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// A read-only view of the same pixels.
    pub fn as_frame(&self) -> Frame<'_> {
        Frame {
            data: self.data,
            width: self.width,
            height: self.height,
            stride: self.stride,
            format: self.format,
        }
    }
    /// The pixels of row `y`, writable.
    #[inline]
    pub fn row_mut(&mut self, y: usize) -> &mut [u8] {
        let start = y * self.stride;
        let len = self.width * self.format.bytes_per_pixel();
        &mut self.data[start..start + len]
    }
    /// Copies the pixels of `src` (same size and format) into this frame.
    pub fn copy_from(&mut self, src: &Frame<'_>) -> Result<(), FrameError> {
        if (src.width, src.height, src.format) != (self.width, self.height, self.format) {
            return Err(FrameError::Mismatch(format!(
                "cannot copy a {}x{} {} frame into a {}x{} {} frame",
                src.width, src.height, src.format, self.width, self.height, self.format
            )));
        }
        for y in 0..self.height {
            self.row_mut(y).copy_from_slice(src.row(y));
        }
        Ok(())
    }
}

/// A frame that owns its pixels, tightly packed; used for scratch space that is reused.
#[derive(Debug, Clone)]
pub struct OwnedFrame {
    data: Vec<u8>,
    width: usize,
    height: usize,
    format: PixelFormat,
}

impl OwnedFrame {
    /// A black frame.
    pub fn new(width: usize, height: usize, format: PixelFormat) -> Result<Self, FrameError> {
        let len = packed_len(width, height, format)?;
        Ok(OwnedFrame {
            data: vec![0; len],
            width,
            height,
            format,
        })
    }

    /// Takes ownership of tightly packed pixels.
    pub fn from_vec(
        data: Vec<u8>,
        width: usize,
        height: usize,
        format: PixelFormat,
    ) -> Result<Self, FrameError> {
        let stride = width.saturating_mul(format.bytes_per_pixel());
        check_geometry(data.len(), width, height, stride, format)?;
        Ok(OwnedFrame {
            data,
            width,
            height,
            format,
        })
    }

    /// Changes the size and format; reallocates only when the frame grows.
    pub fn reshape(
        &mut self,
        width: usize,
        height: usize,
        format: PixelFormat,
    ) -> Result<(), FrameError> {
        let len = packed_len(width, height, format)?;
        self.data.resize(len, 0);
        self.width = width;
        self.height = height;
        self.format = format;
        Ok(())
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }
    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }
    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.format
    }
    /// The packed pixels.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
    /// Gives the pixel buffer back.
    pub fn into_vec(self) -> Vec<u8> {
        self.data
    }
    /// A read-only view.
    pub fn as_frame(&self) -> Frame<'_> {
        Frame {
            data: &self.data,
            width: self.width,
            height: self.height,
            stride: self.width * self.format.bytes_per_pixel(),
            format: self.format,
        }
    }
    /// A writable view.
    pub fn as_frame_mut(&mut self) -> FrameMut<'_> {
        FrameMut {
            stride: self.width * self.format.bytes_per_pixel(),
            data: &mut self.data,
            width: self.width,
            height: self.height,
            format: self.format,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_is_checked() {
        let buf = [0u8; 100];
        assert!(matches!(
            Frame::new(&buf, 0, 4, 12, PixelFormat::Rgb),
            Err(FrameError::Empty { .. })
        ));
        assert!(matches!(
            Frame::new(&buf, 4, 4, 11, PixelFormat::Rgb),
            Err(FrameError::StrideTooSmall { .. })
        ));
        // 4 rows of stride 30 need 3*30 + 12 = 102 bytes.
        assert!(matches!(
            Frame::new(&buf, 4, 4, 30, PixelFormat::Rgb),
            Err(FrameError::BufferTooSmall { needed: 102, .. })
        ));
        // The last row need not carry its padding.
        let f = Frame::new(&buf, 4, 4, 29, PixelFormat::Rgb).unwrap();
        assert_eq!(f.row(3).len(), 12);
    }

    #[test]
    fn enums_parse_and_print() {
        for r in [ValueRange::Unit, ValueRange::Byte, ValueRange::Signed] {
            assert_eq!(r.as_str().parse::<ValueRange>().unwrap(), r);
        }
        assert_eq!("BGR".parse::<ChannelOrder>().unwrap(), ChannelOrder::Bgr);
        assert_eq!("NHWC".parse::<Layout>().unwrap(), Layout::Nhwc);
        let e = "0-2".parse::<ValueRange>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "'0-2' is not a valid value range (expected 0-1, 0-255 or -1-1)"
        );
        for f in PixelFormat::ALL {
            assert_eq!(f.name().parse::<PixelFormat>().unwrap(), f);
        }
    }

    #[test]
    fn range_maps_round_trip() {
        for r in [ValueRange::Unit, ValueRange::Byte, ValueRange::Signed] {
            let (a, b) = r.from_byte();
            let (c, d) = r.to_byte();
            for v in [0.0f32, 1.0, 127.0, 128.0, 254.0, 255.0] {
                let back = (v * a + b) * c + d;
                assert!((back - v).abs() < 1e-3, "{r}: {v} -> {back}");
            }
        }
    }
}
