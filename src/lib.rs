//! stylize: real-time neural style transfer for video.
//!
//! - [`runtime`] finds and loads ONNX Runtime;
//! - [`engine`] runs a model on the best provider (TensorRT, CUDA, CPU) and says which;
//! - [`model`] works out a model's conventions (layout, channel order, range, size);
//! - [`frame`] converts frames to and from tensors without allocating;
//! - [`stylizer`] puts these together for one model and a stream of frames;
//! - [`temporal`] blends successive outputs along the motion of the scene (optical flow);
//! - [`catalog`] lists the models shipped in `models/`;
//! - [`live`] runs a camera (or a test pattern, or a file) through the element in real time.
#![warn(missing_docs)]

pub mod catalog;
pub mod convert;
pub mod element;
pub mod engine;
pub mod frame;
pub mod live;
pub mod model;
pub mod runtime;
pub mod stylizer;
pub mod temporal;

pub use engine::{ActiveProvider, Engine, EngineError, EngineOptions, Provider};
pub use model::{ModelError, ModelSpec, SpecOverrides};
pub use stylizer::{StylizeError, Stylizer, StylizerOptions, Upsampler};
