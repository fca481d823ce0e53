//! `stylize live`: a camera (or a test pattern, or a file) stylised in real time, to a
//! window, a virtual camera, a file or nowhere; keys on the terminal change the style.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use clap::{Args, ValueEnum};
use crossbeam_channel::{Receiver, unbounded};
use gst::prelude::*;
use stylize::catalog;
use stylize::live::{
    CameraSelector, Capture, FileSource, GstCamera, Live, LiveEvent, LiveOptions, NokhwaCamera,
    SinkSpec, Summary, TestPattern,
};

use super::BadInput;
use super::common::ModelArgs;
use super::convert::{EXIT_INTERRUPTED, parse_flow_scale, parse_size, parse_weight};

/// Set by Ctrl-C (the signal, or the key in raw mode).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Whether the terminal is in raw mode (to restore it from the signal handler and panics).
static RAW: AtomicBool = AtomicBool::new(false);

/// How long the pipeline may take to drain and finish its sink after a stop.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// nokhwa (Video4Linux), MJPEG or YUYV decoded in the process.
    Nokhwa,
    /// GStreamer's v4l2src.
    Gst,
}

/// Arguments of `stylize live`.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Where frames come from: camera, test (a moving test pattern), or a video file played
    /// at its own frame rate.
    #[arg(long, default_value = "camera", value_name = "camera|test|FILE")]
    pub source: String,
    /// Which camera: an index, a /dev/video path, or part of its name (see `stylize devices`).
    #[arg(long, default_value = "0", value_name = "INDEX|NAME")]
    pub camera: CameraSelector,
    /// How the camera is read.
    #[arg(long, value_enum, default_value = "nokhwa")]
    pub backend: Backend,
    /// Size of the frames the model gets and the sink shows (default 640x360; a file's own
    /// size with --source FILE).
    #[arg(long, value_parser = parse_size, value_name = "WxH")]
    pub size: Option<(u32, u32)>,
    /// Frame rate asked of the camera or the test pattern (a file plays at its own).
    #[arg(long, default_value = "30", value_parser = clap::value_parser!(u32).range(1..=240), value_name = "N")]
    pub fps: u32,
    /// Where frames go: window, v4l2:/dev/videoN (a v4l2loopback virtual camera), null, or
    /// a file (.mp4, .mkv, .webm, .mov).
    #[arg(long, default_value = "window", value_parser = parse_sink, value_name = "window|v4l2:DEV|null|FILE")]
    pub sink: SinkSpec,
    /// Stop after N frames have been output.
    #[arg(long, value_name = "N", value_parser = super::common::whole::<u64>("--frames", 1, u64::MAX))]
    pub frames: Option<u64>,
    /// Draw fps and latency on the picture.
    #[arg(long)]
    pub overlay: bool,
    /// Print a JSON summary at the end.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Blend each output with the previous one: none, ema, or flow (key t cycles them).
    #[arg(long, default_value = "none", value_parser = ["none", "ema", "flow"], value_name = "none|ema|flow")]
    pub temporal: String,
    /// Optical-flow preset for --temporal flow (ultrafast keeps up on a CPU).
    #[arg(long, default_value = "ultrafast", value_parser = ["ultrafast", "fast", "medium"], value_name = "PRESET")]
    pub flow_preset: String,
    /// Scale of the frame the optical flow runs on, 1/n (0 = auto: about 320 pixels wide).
    #[arg(long, default_value = "0", value_parser = parse_flow_scale, value_name = "F")]
    pub flow_scale: f64,
    /// Weight of the previous output when blending (0..1).
    #[arg(long, default_value = "0.5", value_parser = parse_weight, value_name = "F")]
    pub temporal_weight: f64,
}

fn parse_sink(s: &str) -> Result<SinkSpec, String> {
    s.parse()
}

const DEFAULT_SIZE: (u32, u32) = (640, 360);

/// The source, and the size the pipeline scales it to (`None`: its own).
type Source = (Box<dyn Capture>, Option<(u32, u32)>);

fn open_source(args: &LiveArgs) -> Result<Source> {
    let (w, h) = args.size.unwrap_or(DEFAULT_SIZE);
    let fps = gstreamer_fraction(args.fps);
    Ok(match args.source.as_str() {
        "test" => (Box::new(TestPattern::new(w, h, fps)), Some((w, h))),
        "camera" => {
            let cam: Box<dyn Capture> = match args.backend {
                Backend::Nokhwa => Box::new(NokhwaCamera::open(&args.camera, w, h, args.fps)?),
                Backend::Gst => {
                    stylize::element::register_static()?;
                    Box::new(GstCamera::open(&args.camera, w, h)?)
                }
            };
            (cam, Some((w, h)))
        }
        file => {
            let path = PathBuf::from(file);
            if !path.is_file() {
                return Err(BadInput(format!(
                    "--source {file}: no such file (expected camera, test or a video file)"
                ))
                .into());
            }
            (Box::new(FileSource::open(&path, args.size)?), None)
        }
    })
}

fn gstreamer_fraction(fps: u32) -> gst::Fraction {
    gst::Fraction::new(fps as i32, 1)
}

/// Raw mode on the terminal while it lives, so that keys arrive without Enter.
struct Terminal;

impl Terminal {
    fn raw() -> Option<Terminal> {
        if !std::io::stdin().is_terminal() || crossterm::terminal::enable_raw_mode().is_err() {
            return None;
        }
        RAW.store(true, Ordering::SeqCst);
        Some(Terminal)
    }
}

fn restore_terminal() {
    if RAW.swap(false, Ordering::SeqCst) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        restore_terminal();
    }
}

/// A line on stderr; raw mode needs the carriage return spelled out.
fn say(line: &str) {
    if RAW.load(Ordering::SeqCst) {
        eprint!("{line}\r\n");
    } else {
        eprintln!("{line}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    NextModel,
    PreviousModel,
    Stronger,
    Weaker,
    Temporal,
    Quit,
}

/// Reads keys until `stop`; Ctrl-C (a key in raw mode) counts as the interrupt.
fn key_reader(stop: std::sync::Arc<AtomicBool>) -> Receiver<Key> {
    use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
    let (tx, rx) = unbounded();
    let _ = std::thread::Builder::new()
        .name("live-keys".into())
        .spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if !event::poll(Duration::from_millis(100)).unwrap_or(false) {
                    continue;
                }
                let Ok(Event::Key(k)) = event::read() else {
                    continue;
                };
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                let key = match k.code {
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        INTERRUPTED.store(true, Ordering::SeqCst);
                        continue;
                    }
                    KeyCode::Char('n') | KeyCode::Right => Key::NextModel,
                    KeyCode::Char('p') | KeyCode::Left => Key::PreviousModel,
                    KeyCode::Char('+') | KeyCode::Char('=') | KeyCode::Up => Key::Stronger,
                    KeyCode::Char('-') | KeyCode::Down => Key::Weaker,
                    KeyCode::Char('t') => Key::Temporal,
                    KeyCode::Char('q') | KeyCode::Esc => Key::Quit,
                    _ => continue,
                };
                if tx.send(key).is_err() {
                    break;
                }
            }
        });
    rx
}

/// What the keys change, as the element was last told.
struct Controls {
    strength: f32,
    temporal: &'static str,
    models: Vec<PathBuf>,
}

impl Controls {
    fn apply(&mut self, key: Key, live: &Live) {
        let style = live.style();
        match key {
            Key::Stronger | Key::Weaker => {
                let step = if key == Key::Stronger { 0.1 } else { -0.1 };
                self.strength = ((self.strength + step) * 10.0).round().clamp(0.0, 10.0) / 10.0;
                style.set_property_from_str("strength", &self.strength.to_string());
                say(&format!("strength {:.1}", self.strength));
            }
            Key::Temporal => {
                self.temporal = match self.temporal {
                    "none" => "ema",
                    "ema" => "flow",
                    _ => "none",
                };
                style.set_property_from_str("temporal", self.temporal);
                say(&format!("temporal {}", self.temporal));
            }
            Key::NextModel | Key::PreviousModel => {
                if self.models.is_empty() {
                    say("no shipped models to switch to (see `stylize models`)");
                    return;
                }
                let current = PathBuf::from(style.property::<String>("model"));
                let n = self.models.len();
                let next = match self.models.iter().position(|m| same_file(m, &current)) {
                    Some(i) if key == Key::NextModel => (i + 1) % n,
                    Some(i) => (i + n - 1) % n,
                    None => 0,
                };
                let path = &self.models[next];
                // Loads in the background; the current model runs until the new one is ready.
                style.set_property("model", path.display().to_string());
                say(&format!(
                    "switching to {} ...",
                    model_name(&path.display().to_string())
                ));
            }
            Key::Quit => {}
        }
    }
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

fn model_name(path: &str) -> String {
    std::path::Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

enum Outcome {
    Ended,
    Quit,
    Interrupted,
}

/// Runs `stylize live`; returns the exit status.
pub fn run(args: LiveArgs) -> Result<u8> {
    let m = args.model.validate()?;
    let (capture, size) = open_source(&args)?;
    let mut style = m.element_properties();
    style.extend([
        ("temporal".to_string(), args.temporal.clone()),
        ("temporal-weight".into(), args.temporal_weight.to_string()),
        ("flow-preset".into(), args.flow_preset.clone()),
        ("flow-scale".into(), args.flow_scale.to_string()),
    ]);
    let source = capture.describe();
    let options = LiveOptions {
        size,
        sink: args.sink.clone(),
        frames: args.frames,
        overlay: args.overlay,
        style,
        report_every: Duration::from_secs(1),
    };
    let mut live = Live::start(capture, options)?;

    let first_interrupt = std::sync::OnceLock::<std::time::Instant>::new();
    let _ = ctrlc::set_handler(move || {
        let first = *first_interrupt.get_or_init(std::time::Instant::now);
        // A second Ctrl-C: the clean stop is taking too long for the user. (Not one that
        // comes with the first: `timeout` and some shells signal both the process and its
        // group.)
        if INTERRUPTED.swap(true, Ordering::SeqCst) && first.elapsed() > Duration::from_millis(500)
        {
            restore_terminal();
            std::process::exit(EXIT_INTERRUPTED as i32);
        }
    });
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous_hook(info);
    }));
    let terminal = Terminal::raw();
    let keys_stop = std::sync::Arc::new(AtomicBool::new(false));
    let keys = terminal.as_ref().map(|_| key_reader(keys_stop.clone()));

    say(&format!(
        "live: {source} -> {} | model {} on {}",
        args.sink,
        model_name(&live.style().property::<String>("active-model")),
        live.style().property::<String>("active-provider"),
    ));
    if keys.is_some() {
        say("keys: n/p next/previous model, +/- strength, t temporal (none/ema/flow), q quit");
    }
    let mut controls = Controls {
        strength: m.strength,
        temporal: match args.temporal.as_str() {
            "ema" => "ema",
            "flow" => "flow",
            _ => "none",
        },
        models: catalog::list()
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.path)
            .collect(),
    };
    let mut shown_model = live.style().property::<String>("active-model");
    let result = loop {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break Ok(Outcome::Interrupted);
        }
        if let Some(k) = &keys {
            let mut quit = false;
            while let Ok(key) = k.try_recv() {
                if key == Key::Quit {
                    quit = true;
                } else {
                    controls.apply(key, &live);
                }
            }
            if quit {
                break Ok(Outcome::Quit);
            }
        }
        match live.next_event(Duration::from_millis(100)) {
            Ok(Some(LiveEvent::Report(r))) => {
                if r.model != shown_model {
                    say(&format!("model {} ready", model_name(&r.model)));
                    shown_model = r.model.clone();
                }
                say(&format!(
                    "{:5.1} fps | dropped {} | latency p50 {:.0} ms, p95 {:.0} ms | {} | {}",
                    r.fps,
                    r.dropped,
                    r.latency_p50_ms,
                    r.latency_p95_ms,
                    r.provider,
                    model_name(&r.model)
                ));
            }
            Ok(Some(LiveEvent::Warning(w))) => say(&format!("warning: {w}")),
            Ok(Some(LiveEvent::Ended(_))) => break Ok(Outcome::Ended),
            Ok(None) => {}
            Err(e) => break Err(e),
        }
    };
    keys_stop.store(true, Ordering::SeqCst);
    drop(terminal);
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            let _ = live.finish(Duration::from_secs(2));
            return Err(e.into());
        }
    };
    let summary = live.finish(FINISH_TIMEOUT)?;
    report(&summary, args.json)?;
    Ok(match outcome {
        Outcome::Interrupted => EXIT_INTERRUPTED,
        Outcome::Ended | Outcome::Quit => super::EXIT_OK,
    })
}

fn report(s: &Summary, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
        return Ok(());
    }
    println!(
        "live: {} frames in {:.1} s = {:.1} fps, dropped {} ({} at capture, {} by the model), \
         latency p50 {:.0} ms, p95 {:.0} ms (first frame {:.0} ms), inference mean {:.0} ms, \
         on {} [{}]",
        s.frames,
        s.seconds,
        s.fps,
        s.dropped,
        s.dropped_capture,
        s.dropped_element,
        s.latency_p50_ms,
        s.latency_p95_ms,
        s.first_frame_ms,
        s.inference_mean_ms,
        s.provider,
        serde_json::to_value(s.ended)?.as_str().unwrap_or_default()
    );
    if let SinkSpec::File(p) = &s.sink.parse::<SinkSpec>().unwrap_or(SinkSpec::Null) {
        println!("wrote {}", p.display());
    }
    Ok(())
}
