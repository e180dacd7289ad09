//! Progress of long repository work (restore, check, export) for a person at a terminal: bars
//! with bytes, throughput and time left (indicatif) on stderr when it is a terminal, and a plain
//! line every ten seconds otherwise (logs, `ssh` without a tty, a piped emergency session).

use rustic_core::{Progress as RusticBar, ProgressBars, ProgressType, RusticProgress};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long work is shown: bars with throughput and time left on a terminal, a plain line every
/// few seconds otherwise.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    Terminal,
    Lines,
}

/// rustic_core's progress factory.
#[derive(Debug, Clone, Copy)]
pub struct Bars(pub Progress);

impl ProgressBars for Bars {
    fn progress(&self, kind: ProgressType, prefix: &str) -> RusticBar {
        match self.0 {
            Progress::Terminal => RusticBar::new(TermBar::new(kind, prefix)),
            Progress::Lines => RusticBar::new(LineBar::new(kind, prefix)),
        }
    }
}

#[derive(Debug)]
struct TermBar(indicatif::ProgressBar);

impl TermBar {
    fn new(kind: ProgressType, prefix: &str) -> TermBar {
        let (pb, template) = match kind {
            ProgressType::Spinner => (indicatif::ProgressBar::new_spinner(), "{spinner} {prefix} [{elapsed}]"),
            ProgressType::Counter => (indicatif::ProgressBar::new(0), "{prefix:30} [{bar:30}] {pos}/{len} [{elapsed} / ~{eta}]"),
            ProgressType::Bytes => (
                indicatif::ProgressBar::new(0),
                "{prefix:30} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} [{elapsed}, noch/left ~{eta}]",
            ),
        };
        pb.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        pb.set_style(indicatif::ProgressStyle::with_template(template).unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()).progress_chars("=> "));
        pb.set_prefix(prefix.to_string());
        pb.enable_steady_tick(Duration::from_millis(250));
        TermBar(pb)
    }
}

impl RusticProgress for TermBar {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.0.set_length(len);
    }
    fn set_title(&self, title: &str) {
        self.0.set_prefix(title.to_string());
    }
    fn inc(&self, inc: u64) {
        self.0.inc(inc);
    }
    fn finish(&self) {
        self.0.finish();
    }
}

/// Plain lines: the title when it starts, a line with amount, rate and time left every ten
/// seconds, and one when it ends.
#[derive(Debug)]
pub struct LineBar {
    kind: ProgressType,
    state: Mutex<LineState>,
}

#[derive(Debug)]
struct LineState {
    title: String,
    len: u64,
    pos: u64,
    started: Instant,
    last: Instant,
}

impl LineBar {
    pub fn new(kind: ProgressType, prefix: &str) -> LineBar {
        eprintln!("{prefix}");
        let now = Instant::now();
        LineBar { kind, state: Mutex::new(LineState { title: prefix.to_string(), len: 0, pos: 0, started: now, last: now }) }
    }

    fn line(&self, st: &LineState) -> String {
        let secs = st.started.elapsed().as_secs_f64().max(0.001);
        match self.kind {
            ProgressType::Bytes => {
                let rate = st.pos as f64 / secs;
                let left = if st.len > st.pos && rate > 0.0 { format!(", ~{}s left", ((st.len - st.pos) as f64 / rate).round()) } else { String::new() };
                format!("{}: {} / {} ({}/s{left})", st.title, human(st.pos), human(st.len), human(rate as u64))
            }
            _ => format!("{}: {}/{}", st.title, st.pos, st.len),
        }
    }
}

/// Bytes for people (binary units).
pub fn human(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

impl RusticProgress for LineBar {
    fn is_hidden(&self) -> bool {
        false
    }
    fn set_length(&self, len: u64) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).len = len;
    }
    fn set_title(&self, title: &str) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).title = title.to_string();
    }
    fn inc(&self, inc: u64) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.pos += inc;
        if st.last.elapsed() >= Duration::from_secs(10) {
            st.last = Instant::now();
            eprintln!("{}", self.line(&st));
        }
    }
    fn finish(&self) {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if !matches!(self.kind, ProgressType::Spinner) {
            eprintln!("{} [{:.1}s]", self.line(&st), st.started.elapsed().as_secs_f64());
        }
    }
}

/// The mode for this process: bars when stderr is a terminal, lines otherwise.
pub fn for_stderr() -> Progress {
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        Progress::Terminal
    } else {
        Progress::Lines
    }
}
