//! Host checks: disk usage and its fill-up forecast, memory pressure, out-of-memory kills, clock
//! synchronisation and the SMART health of the disks. Plain functions over the kernel's interfaces
//! (`statvfs`, `/proc`, `adjtimex`) and `smartctl`; every parser is separate from the reading so
//! unit tests feed it text samples.
//!
//! Owns: reading and judging the host. Must not: know about stacks, the store, alerts or the
//! `App` — the watcher decides what to do with a [`Level`]. Everything here is blocking (file
//! reads, a child process for SMART): call it from `spawn_blocking`.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

pub use hafen_core::alerts::Level;


// ---------------------------------------------------------------------------------------------
// Disk

/// One file system's size in bytes, as `statvfs` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskUsage {
    /// Size of the file system.
    pub total: u64,
    /// Bytes an unprivileged process can still write (`f_bavail`): blocks reserved for root do
    /// not count.
    pub free: u64,
    /// Bytes in use (`total` minus all free blocks, reserved ones included).
    pub used: u64,
}

impl DiskUsage {
    /// What unprivileged processes can ever use: `used + free` (`total` less the root reserve).
    /// Pass this, not `total`, to [`forecast_days`] to forecast when writes start failing.
    pub fn capacity(&self) -> u64 {
        self.used.saturating_add(self.free)
    }

    /// Free share of the total in percent (100 for an empty or zero-sized file system).
    pub fn free_pct(&self) -> f64 {
        if self.total == 0 {
            return 100.0;
        }
        self.free as f64 * 100.0 / self.total as f64
    }
}

/// Size, free and used bytes of the file system holding `path`.
pub fn disk_usage(path: &Path) -> io::Result<DiskUsage> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, format!("disk usage of {}: the path contains a NUL byte", path.display()))
    })?;
    // SAFETY: `c` is a valid NUL-terminated string and `st` a properly sized, writable struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("statvfs {}: {e}", path.display())));
    }
    let frsize = if st.f_frsize > 0 { st.f_frsize as u64 } else { st.f_bsize as u64 };
    let blocks = st.f_blocks as u64;
    let bfree = (st.f_bfree as u64).min(blocks);
    let bavail = (st.f_bavail as u64).min(bfree);
    Ok(DiskUsage {
        total: blocks.saturating_mul(frsize),
        free: bavail.saturating_mul(frsize),
        used: (blocks - bfree).saturating_mul(frsize),
    })
}

/// The level of a disk by its free share ([`DiskUsage::free_pct`]): `Critical` when strictly
/// below `critical_pct`, `Warning` when strictly below `warning_pct`, else `Ok`. A zero-sized
/// file system (a pseudo file system) is `Ok`.
pub fn disk_level(u: &DiskUsage, warning_pct: f64, critical_pct: f64) -> Level {
    let free = u.free_pct();
    if free < critical_pct {
        Level::Critical
    } else if free < warning_pct {
        Level::Warning
    } else {
        Level::Ok
    }
}

/// The shortest span of samples a forecast is made from (a few checks at the default interval
/// of 60 s would be minutes; 10 s keeps one quick burst of writes from being extrapolated).
pub const FORECAST_MIN_SPAN_SECS: f64 = 10.0;

/// Days until `used` reaches `total`, from the least-squares line through `samples`
/// (`(unix seconds, used bytes)`), measured from the newest sample's time. `Some(0.0)` when the
/// line is already at or past `total`. `None` when there are fewer than two samples, they span
/// less than [`FORECAST_MIN_SPAN_SECS`], or usage is flat or shrinking.
pub fn forecast_days(samples: &[(f64, u64)], total: u64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let (t_min, t_max) = samples.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &(t, _)| (lo.min(t), hi.max(t)));
    let span = t_max - t_min;
    if span.is_nan() || span < FORECAST_MIN_SPAN_SECS {
        return None;
    }
    // Centre both axes: unix seconds squared lose precision in an f64.
    let n = samples.len() as f64;
    let t_mean = samples.iter().map(|&(t, _)| t).sum::<f64>() / n;
    let y_mean = samples.iter().map(|&(_, y)| y as f64).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for &(t, y) in samples {
        let dt = t - t_mean;
        sxy += dt * (y as f64 - y_mean);
        sxx += dt * dt;
    }
    let slope = sxy / sxx; // bytes per second
    if !slope.is_finite() || slope <= 0.0 {
        return None;
    }
    let now_used = y_mean + slope * (t_max - t_mean);
    let remaining = total as f64 - now_used;
    if remaining <= 0.0 {
        return Some(0.0);
    }
    let days = remaining / slope / 86_400.0;
    days.is_finite().then_some(days)
}

/// The recent usage samples of one disk, for [`forecast_days`]: keeps those of the last
/// `window_secs` and at most `capacity` (the oldest are dropped). Kept in memory by the daemon,
/// one per disk; a restart starts it afresh.
#[derive(Debug, Clone)]
pub struct Trend {
    capacity: usize,
    window_secs: f64,
    samples: VecDeque<(f64, u64)>,
}

impl Trend {
    /// `capacity` samples at most (at least 2), none older than `window_secs` before the newest.
    pub fn new(capacity: usize, window_secs: f64) -> Trend {
        let capacity = capacity.max(2);
        Trend { capacity, window_secs, samples: VecDeque::with_capacity(capacity) }
    }

    /// Adds a sample. A time before the newest sample (the clock was set back) discards the
    /// history: a line through both sides of the step would be meaningless.
    pub fn push(&mut self, unix_secs: f64, used: u64) {
        if self.samples.back().is_some_and(|&(t, _)| unix_secs < t) {
            self.samples.clear();
        }
        self.samples.push_back((unix_secs, used));
        while self.samples.len() > self.capacity {
            self.samples.pop_front();
        }
        while self.samples.front().is_some_and(|&(t, _)| t < unix_secs - self.window_secs) {
            self.samples.pop_front();
        }
    }

    pub fn samples(&self) -> Vec<(f64, u64)> {
        self.samples.iter().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// [`forecast_days`] over the kept samples.
    pub fn forecast_days(&self, total: u64) -> Option<f64> {
        match self.samples.as_slices() {
            (a, []) => forecast_days(a, total),
            _ => forecast_days(&self.samples(), total),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory

/// Warning below this share of available memory (percent).
pub const MEM_WARNING_AVAILABLE_PCT: f64 = 10.0;
/// Critical below this share of available memory (percent).
pub const MEM_CRITICAL_AVAILABLE_PCT: f64 = 5.0;
/// Warning above this PSI `some avg60` (percent of time some task stalled on memory).
pub const PSI_WARNING_AVG60: f64 = 10.0;
/// Critical above this PSI `some avg60`.
pub const PSI_CRITICAL_AVG60: f64 = 40.0;

const MEMINFO: &str = "/proc/meminfo";
const PSI_MEMORY: &str = "/proc/pressure/memory";
const VMSTAT: &str = "/proc/vmstat";

/// Memory in bytes, and the memory pressure stall information when the kernel offers it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Memory {
    pub total: u64,
    pub available: u64,
    /// `some avg60` of `/proc/pressure/memory`; `None` without PSI (kernel < 4.20 or `psi=0`).
    pub psi_some_avg60: Option<f64>,
}

/// Reads `/proc/meminfo` and `/proc/pressure/memory` (absent → no PSI).
pub fn memory() -> io::Result<Memory> {
    let text = std::fs::read_to_string(MEMINFO).map_err(|e| io::Error::new(e.kind(), format!("reading {MEMINFO}: {e}")))?;
    let (total, available) =
        parse_meminfo(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{MEMINFO}: {e}")))?;
    let psi_some_avg60 = std::fs::read_to_string(PSI_MEMORY).ok().and_then(|t| parse_psi_some_avg60(&t));
    Ok(Memory { total, available, psi_some_avg60 })
}

/// `(MemTotal, MemAvailable)` in bytes. Kernels without `MemAvailable` (before 3.14) get
/// `MemFree + Buffers + Cached` instead.
pub fn parse_meminfo(text: &str) -> Result<(u64, u64), String> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let mut parts = rest.split_whitespace();
            let n: u64 = parts.next()?.parse().ok()?;
            Some(match parts.next() {
                Some("kB") => n.saturating_mul(1024),
                _ => n,
            })
        })
    };
    let total = field("MemTotal").ok_or("no readable MemTotal line")?;
    let available = match field("MemAvailable") {
        Some(a) => a,
        None => match (field("MemFree"), field("Buffers"), field("Cached")) {
            (Some(f), b, c) => f + b.unwrap_or(0) + c.unwrap_or(0),
            _ => return Err("neither MemAvailable nor MemFree".into()),
        },
    };
    Ok((total, available.min(total)))
}

/// `avg60` of the `some` line of a PSI file (`some avg10=0.00 avg60=1.25 avg300=0.00 total=…`).
pub fn parse_psi_some_avg60(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    line.split_whitespace().find_map(|kv| kv.strip_prefix("avg60=")?.parse::<f64>().ok()).filter(|v| v.is_finite())
}

/// The kernel's count of out-of-memory kills since boot (`oom_kill` in `/proc/vmstat`, kernel
/// 4.13+); `None` when unreadable.
pub fn oom_kills() -> Option<u64> {
    parse_vmstat_oom_kill(&std::fs::read_to_string(VMSTAT).ok()?)
}

pub fn parse_vmstat_oom_kill(text: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next()? == "oom_kill").then_some(())?;
        parts.next()?.parse().ok()
    })
}

/// `Critical` when available memory is below [`MEM_CRITICAL_AVAILABLE_PCT`] or PSI `some avg60`
/// above [`PSI_CRITICAL_AVG60`]; `Warning` below [`MEM_WARNING_AVAILABLE_PCT`] or above
/// [`PSI_WARNING_AVG60`]; else `Ok`.
pub fn memory_level(m: &Memory) -> Level {
    let avail_pct = if m.total == 0 { 100.0 } else { m.available as f64 * 100.0 / m.total as f64 };
    let psi = m.psi_some_avg60.unwrap_or(0.0);
    if avail_pct < MEM_CRITICAL_AVAILABLE_PCT || psi > PSI_CRITICAL_AVG60 {
        Level::Critical
    } else if avail_pct < MEM_WARNING_AVAILABLE_PCT || psi > PSI_WARNING_AVG60 {
        Level::Warning
    } else {
        Level::Ok
    }
}

// ---------------------------------------------------------------------------------------------
// Clock

/// Whether the kernel considers the system clock synchronised (by chrony, ntpd or
/// systemd-timesyncd, which all clear `STA_UNSYNC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockSync {
    pub synchronised: bool,
    /// The kernel's maximum error estimate in microseconds (grows by 500 ppm while unsynced).
    pub max_error_us: i64,
    /// The kernel's flags that say why the clock counts as unsynchronised (`STA_UNSYNC`,
    /// `TIME_ERROR`); empty when it is synchronised.
    pub why: String,
    /// One line for people, as a catalogue key (`host.clock_…`) with arguments.
    pub detail: hafen_api::Message,
}

/// The time since boot, suspend included (`CLOCK_BOOTTIME`): no one sets it, so the wall clock
/// is compared with it to see a jump (`hafen_core::clock`).
pub fn boot_clock() -> std::time::Duration {
    // SAFETY: a zeroed `timespec` is valid; CLOCK_BOOTTIME exists on every Linux since 2.6.39.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return std::time::Duration::ZERO;
    }
    std::time::Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32)
}

/// Reads the kernel clock state with `adjtimex` (modes = 0: read only, needs no privilege).
pub fn clock_sync() -> Result<ClockSync, String> {
    // SAFETY: a zeroed `timex` is valid; modes = 0 makes the call read-only.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    tx.modes = 0;
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state == -1 {
        return Err(format!("adjtimex (reading the clock state) failed: {}", io::Error::last_os_error()));
    }
    Ok(interpret_timex(state, tx.status, i64::from(tx.maxerror), i64::from(tx.esterror)))
}

/// The judgement of [`clock_sync`] from `adjtimex`'s return value and fields.
pub fn interpret_timex(state: i32, status: i32, max_error_us: i64, est_error_us: i64) -> ClockSync {
    let unsync_flag = status & libc::STA_UNSYNC != 0;
    let time_error = state == libc::TIME_ERROR;
    let synchronised = !unsync_flag && !time_error;
    let why = match (unsync_flag, time_error) {
        (false, false) => "",
        (true, true) => "STA_UNSYNC, TIME_ERROR",
        (true, false) => "STA_UNSYNC",
        (false, true) => "TIME_ERROR",
    };
    let detail = hafen_api::Message::new(if synchronised { "host.clock_synced" } else { "host.clock_unsynced" })
        .arg("max", max_error_us)
        .arg("est", est_error_us)
        .arg("why", why);
    ClockSync { synchronised, max_error_us, why: why.into(), detail }
}

// ---------------------------------------------------------------------------------------------
// SMART

/// The overall SMART health of one disk.
///
/// How odd results are judged: a disk is `passed = false` only on evidence of failure —
/// `smart_status.passed` false, or smartctl's exit status bit 3 ("DISK FAILING") or bit 4
/// ("prefail attributes at or below threshold"). A disk whose status cannot be read (USB bridges
/// without SAT pass-through, virtual disks, a device that vanished, unparsable output) is
/// `passed = true` with a `detail` starting with [`SMART_UNREADABLE`]: unreadable is not failing,
/// and an alert that can never clear would only teach people to ignore alerts. Callers that want
/// to show it can match the prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartResult {
    pub device: String,
    pub passed: bool,
    pub detail: String,
}

/// How every detail of an unreadable SMART status starts.
pub const SMART_UNREADABLE: &str = "status unreadable";

const EXIT_DISK_FAILING: i64 = 1 << 3;
const EXIT_PREFAIL_AT_THRESHOLD: i64 = 1 << 4;
const EXIT_PREFAIL_IN_PAST: i64 = 1 << 5;

/// Whether `smartctl` is an executable file in a directory of `PATH`.
pub fn smart_available() -> bool {
    smartctl_path().is_some()
}

fn smartctl_path() -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join("smartctl")).find(|p| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// One device found by `smartctl --scan`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedDevice {
    pub name: String,
    /// The `-d` type smartctl chose (`sat`, `nvme`, `megaraid,0` …), passed back when asking.
    pub kind: Option<String>,
}

impl ScannedDevice {
    /// The name shown to people: the path, plus the type when it tells devices behind one
    /// controller apart (`/dev/bus/0 [megaraid,1]`).
    pub fn label(&self) -> String {
        match &self.kind {
            Some(k) if k.contains(',') => format!("{} [{k}]", self.name),
            _ => self.name.clone(),
        }
    }
}

/// The SMART health of every disk `smartctl --scan` finds; empty when smartctl is not on `PATH`
/// or the scan fails (the failure is logged). Blocking: runs smartctl once per disk.
pub fn smart() -> Vec<SmartResult> {
    let Some(smartctl) = smartctl_path() else { return Vec::new() };
    let scan = match Command::new(&smartctl).args(["--scan", "-j"]).output() {
        Ok(o) => o,
        Err(e) => {
            tracing::warn!(path = %smartctl.display(), error = %e, "could not run smartctl --scan");
            return Vec::new();
        }
    };
    let devices = match parse_scan(&String::from_utf8_lossy(&scan.stdout)) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, status = ?scan.status.code(), "could not read the output of smartctl --scan");
            return Vec::new();
        }
    };
    devices
        .iter()
        .map(|d| {
            let mut cmd = Command::new(&smartctl);
            cmd.args(["-H", "-j"]);
            if let Some(k) = &d.kind {
                cmd.args(["-d", k]);
            }
            cmd.arg(&d.name);
            match cmd.output() {
                Ok(o) => parse_health(&d.label(), &String::from_utf8_lossy(&o.stdout), o.status.code()),
                Err(e) => SmartResult {
                    device: d.label(),
                    passed: true,
                    detail: format!("{SMART_UNREADABLE}: could not run smartctl -H {}: {e}", d.name),
                },
            }
        })
        .collect()
}

/// The devices of `smartctl --scan -j` output (`{"devices": [{"name": …, "type": …}]}`).
pub fn parse_scan(json: &str) -> Result<Vec<ScannedDevice>, String> {
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let Some(list) = v.get("devices") else {
        return Err(smartctl_messages(&v).unwrap_or_else(|| "no `devices` list".into()));
    };
    let list = list.as_array().ok_or("`devices` is not a list")?;
    Ok(list
        .iter()
        .filter_map(|d| {
            let name = d.get("name")?.as_str()?.to_string();
            let kind = d.get("type").and_then(|t| t.as_str()).map(str::to_string);
            Some(ScannedDevice { name, kind })
        })
        .collect())
}

/// Judges the output of `smartctl -H -j <device>` (see [`SmartResult`] for the rules).
/// `process_exit` is the process exit code, used when the JSON carries no `exit_status`.
pub fn parse_health(device: &str, json: &str, process_exit: Option<i32>) -> SmartResult {
    let v: Option<serde_json::Value> = serde_json::from_str(json).ok();
    let exit = v
        .as_ref()
        .and_then(|v| v.pointer("/smartctl/exit_status"))
        .and_then(|e| e.as_i64())
        .or(process_exit.map(i64::from))
        .unwrap_or(0);
    let failing_bits = exit & (EXIT_DISK_FAILING | EXIT_PREFAIL_AT_THRESHOLD);
    let passed_field = v.as_ref().and_then(|v| v.pointer("/smart_status/passed")).and_then(|p| p.as_bool());
    let result = |passed: bool, detail: String| SmartResult { device: device.to_string(), passed, detail };
    match passed_field {
        Some(false) => result(false, "SMART overall health: FAILED — back up now and replace the disk".into()),
        Some(true) if exit & EXIT_DISK_FAILING != 0 => {
            result(false, format!("SMART reports the disk failing (smartctl exit status {exit}) — back up now and replace the disk"))
        }
        Some(true) if exit & EXIT_PREFAIL_AT_THRESHOLD != 0 => result(
            false,
            format!("SMART pre-failure attributes at or below threshold (smartctl exit status {exit}) — plan to replace the disk"),
        ),
        Some(true) if exit & EXIT_PREFAIL_IN_PAST != 0 => result(
            true,
            "SMART overall health: PASSED (some attributes were at or below threshold in the past)".into(),
        ),
        Some(true) => result(true, "SMART overall health: PASSED".into()),
        None => {
            let why = match &v {
                None => "smartctl gave no JSON".to_string(),
                Some(v) => smartctl_messages(v).unwrap_or_else(|| "no smart_status in smartctl's answer".into()),
            };
            if failing_bits != 0 {
                result(false, format!("SMART reports the disk failing (smartctl exit status {exit}): {why}"))
            } else {
                result(true, format!("{SMART_UNREADABLE}: {why} (smartctl exit status {exit})"))
            }
        }
    }
}

/// The `smartctl.messages[].string` texts, joined; `None` when there are none.
fn smartctl_messages(v: &serde_json::Value) -> Option<String> {
    let msgs: Vec<&str> = v
        .pointer("/smartctl/messages")?
        .as_array()?
        .iter()
        .filter_map(|m| m.get("string").and_then(|s| s.as_str()))
        .collect();
    (!msgs.is_empty()).then(|| msgs.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: f64 = 86_400.0;
    const GB: u64 = 1_000_000_000;
    const T0: f64 = 1_767_225_600.0; // 2026-01-01, large enough to catch precision loss

    #[test]
    fn forecast_table() {
        // 1 GB a day, hourly samples over two days, 100 GB used of 200 GB at the end → 100 days.
        let steady: Vec<(f64, u64)> = (0..=48).map(|h| (T0 + h as f64 * 3600.0, 98 * GB + h * GB / 24)).collect();
        let flat: Vec<(f64, u64)> = (0..=48).map(|h| (T0 + h as f64 * 3600.0, 50 * GB)).collect();
        let shrinking: Vec<(f64, u64)> = (0..=48).map(|h| (T0 + h as f64 * 3600.0, 100 * GB - h * GB / 24)).collect();
        // The same growth with ±0.3 GB of deterministic jitter.
        let noisy: Vec<(f64, u64)> = (0..=48u64)
            .map(|h| {
                let jitter = [0i64, 3, -2, 1, -3, 2, -1][(h % 7) as usize] * (GB as i64) / 10;
                (T0 + h as f64 * 3600.0, ((98 * GB + h * GB / 24) as i64 + jitter) as u64)
            })
            .collect();
        let too_short = vec![(T0, 10 * GB), (T0 + 5.0, 11 * GB)];
        let one = vec![(T0, 10 * GB)];
        let full = vec![(T0, 199 * GB), (T0 + DAY, 201 * GB)];
        let cases: Vec<(&str, &[(f64, u64)], u64, Option<(f64, f64)>)> = vec![
            ("steady growth", &steady, 200 * GB, Some((100.0, 1e-6))),
            ("flat", &flat, 200 * GB, None),
            ("shrinking", &shrinking, 200 * GB, None),
            ("noisy growth", &noisy, 200 * GB, Some((100.0, 10.0))),
            ("span under 10 s", &too_short, 200 * GB, None),
            ("one sample", &one, 200 * GB, None),
            ("empty", &[], 200 * GB, None),
            ("already past total", &full, 200 * GB, Some((0.0, 0.0))),
        ];
        for (name, samples, total, want) in cases {
            let got = forecast_days(samples, total);
            match (got, want) {
                (None, None) => {}
                (Some(g), Some((w, tol))) => assert!((g - w).abs() <= tol, "{name}: got {g} days, want {w} ± {tol}"),
                _ => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn forecast_tolerates_unordered_samples() {
        let s = vec![(T0 + DAY, 11 * GB), (T0, 10 * GB), (T0 + 2.0 * DAY, 12 * GB)];
        let d = forecast_days(&s, 20 * GB).unwrap();
        assert!((d - 8.0).abs() < 1e-6, "{d}");
    }

    #[test]
    fn trend_keeps_a_window_and_a_capacity() {
        let mut t = Trend::new(4, 3.0 * 3600.0);
        for h in 0..6 {
            t.push(T0 + h as f64 * 3600.0, h * GB);
        }
        // Capacity 4 → hours 2..=5; window 3 h before hour 5 → hours 2..=5 too.
        assert_eq!(t.samples().iter().map(|s| s.1 / GB).collect::<Vec<_>>(), vec![2, 3, 4, 5]);
        let mut w = Trend::new(100, 2.0 * 3600.0);
        for h in 0..6 {
            w.push(T0 + h as f64 * 3600.0, h * GB);
        }
        assert_eq!(w.samples().iter().map(|s| s.1 / GB).collect::<Vec<_>>(), vec![3, 4, 5]);
        // 1 GB an hour, 5 GB used of 29 → 1 day left.
        assert!((w.forecast_days(29 * GB).unwrap() - 1.0).abs() < 1e-9);
        // The clock set back discards the history.
        w.push(T0, GB);
        assert_eq!(w.len(), 1);
        assert_eq!(w.forecast_days(29 * GB), None);
    }

    #[test]
    fn trend_forecasts_after_wrapping() {
        // Many pushes through a small deque make its storage wrap; the forecast must still see
        // every sample.
        let mut t = Trend::new(5, 1e9);
        for h in 0..23u64 {
            t.push(T0 + h as f64 * 3600.0, h * GB);
            if t.len() >= 2 {
                let left = t.forecast_days(100 * GB).expect("growing");
                let want = (100 - h) as f64 / 24.0;
                assert!((left - want).abs() < 1e-6, "after {h}: {left} vs {want}");
            }
        }
    }

    #[test]
    fn disk_level_edges() {
        let u = |free: u64| DiskUsage { total: 100, free, used: 100 - free };
        let cases = [
            (50, Level::Ok),
            (20, Level::Ok), // exactly at the warning threshold
            (19, Level::Warning),
            (10, Level::Warning), // exactly at the critical threshold
            (9, Level::Critical),
            (0, Level::Critical),
        ];
        for (free, want) in cases {
            assert_eq!(disk_level(&u(free), 20.0, 10.0), want, "free {free} %");
        }
        assert_eq!(disk_level(&DiskUsage { total: 0, free: 0, used: 0 }, 20.0, 10.0), Level::Ok);
        assert!(Level::Critical > Level::Warning && Level::Warning > Level::Ok);
    }

    #[test]
    fn disk_usage_of_a_real_path_and_a_missing_one() {
        let u = disk_usage(Path::new("/")).unwrap();
        assert!(u.total > 0 && u.free <= u.total && u.used <= u.total, "{u:?}");
        assert!(u.capacity() <= u.total);
        let e = disk_usage(Path::new("/no/such/hafen/path")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("/no/such/hafen/path"), "{e}");
    }

    const MEMINFO_SAMPLE: &str = "MemTotal:        8040412 kB\nMemFree:          512344 kB\nMemAvailable:    4020206 kB\nBuffers:          123456 kB\nCached:          2345678 kB\nSwapCached:            0 kB\n";

    #[test]
    fn meminfo_parsing() {
        assert_eq!(parse_meminfo(MEMINFO_SAMPLE), Ok((8040412 * 1024, 4020206 * 1024)));
        let old = "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n";
        assert_eq!(parse_meminfo(old), Ok((1000 * 1024, 400 * 1024)));
        assert!(parse_meminfo("garbage\n").unwrap_err().contains("MemTotal"));
        assert!(parse_meminfo("MemTotal: 1000 kB\n").is_err());
        // MemTotalX must not be mistaken for MemTotal.
        assert!(parse_meminfo("MemTotalX: 5 kB\n").is_err());
    }

    #[test]
    fn psi_and_vmstat_parsing() {
        let psi = "some avg10=0.00 avg60=12.50 avg300=3.10 total=123456\nfull avg10=0.00 avg60=50.00 avg300=0.00 total=0\n";
        assert_eq!(parse_psi_some_avg60(psi), Some(12.5));
        assert_eq!(parse_psi_some_avg60("full avg10=1 avg60=2\n"), None);
        assert_eq!(parse_psi_some_avg60("some avg60=nonsense\n"), None);
        let vmstat = "nr_free_pages 12345\noom_kill_other 9\noom_kill 3\npgfault 1\n";
        assert_eq!(parse_vmstat_oom_kill(vmstat), Some(3));
        assert_eq!(parse_vmstat_oom_kill("nr_free_pages 1\n"), None);
    }

    #[test]
    fn memory_level_table() {
        let m = |avail: u64, psi: Option<f64>| Memory { total: 1000, available: avail, psi_some_avg60: psi };
        let cases = [
            (m(500, None), Level::Ok),
            (m(100, Some(10.0)), Level::Ok), // both exactly at the warning edge
            (m(99, None), Level::Warning),
            (m(500, Some(10.01)), Level::Warning),
            (m(50, Some(40.0)), Level::Warning), // both exactly at the critical edge
            (m(49, None), Level::Critical),
            (m(500, Some(40.5)), Level::Critical),
        ];
        for (mem, want) in cases {
            assert_eq!(memory_level(&mem), want, "{mem:?}");
        }
    }

    #[test]
    fn memory_reads_this_host() {
        let m = memory().unwrap();
        assert!(m.total > 0 && m.available <= m.total, "{m:?}");
        let _ = oom_kills();
    }

    #[test]
    fn clock_sync_runs_and_explains() {
        let en = |c: &ClockSync| hafen_core::i18n::render("en", &c.detail);
        let c = clock_sync().unwrap();
        assert!(en(&c).contains("clock"), "{c:?}");
        let unsynced = interpret_timex(libc::TIME_OK, libc::STA_UNSYNC, 16_000_000, 0);
        assert!(!unsynced.synchronised && en(&unsynced).contains("STA_UNSYNC"), "{unsynced:?}");
        let error = interpret_timex(libc::TIME_ERROR, 0, 100, 0);
        assert!(!error.synchronised && en(&error).contains("TIME_ERROR"));
        let ok = interpret_timex(libc::TIME_OK, 0x2001 /* STA_PLL | STA_NANO */, 1200, 30);
        assert!(ok.synchronised && ok.max_error_us == 1200 && en(&ok).contains("1200 µs"), "{ok:?}");
        assert!(hafen_core::i18n::render("de", &unsynced.detail).starts_with("Uhr nicht abgeglichen (STA_UNSYNC;"), "{unsynced:?}");
    }

    const SCAN: &str = r#"{
  "json_format_version": [1, 0],
  "smartctl": {"version": [7, 4], "svn_revision": "5530", "platform_info": "x86_64-linux-6.12.0", "build_info": "(local build)", "argv": ["smartctl", "--scan", "-j"], "exit_status": 0},
  "devices": [
    {"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"},
    {"name": "/dev/nvme0", "info_name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"},
    {"name": "/dev/bus/0", "info_name": "/dev/bus/0 [megaraid_disk_01]", "type": "megaraid,1", "protocol": "SCSI"},
    {"info_name": "nameless"}
  ]
}"#;

    #[test]
    fn scan_parsing() {
        let d = parse_scan(SCAN).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(d[0], ScannedDevice { name: "/dev/sda".into(), kind: Some("sat".into()) });
        assert_eq!(d[1].label(), "/dev/nvme0");
        assert_eq!(d[2].label(), "/dev/bus/0 [megaraid,1]");
        assert_eq!(parse_scan(r#"{"devices": []}"#).unwrap(), vec![]);
        assert!(parse_scan("smartctl: command not found").unwrap_err().contains("not JSON"));
        let err = r#"{"smartctl": {"messages": [{"string": "Permission denied", "severity": "error"}], "exit_status": 2}}"#;
        assert_eq!(parse_scan(err).unwrap_err(), "Permission denied");
    }

    fn health(exit: i64, status: &str) -> String {
        format!(
            r#"{{"json_format_version": [1, 0],
  "smartctl": {{"version": [7, 4], "argv": ["smartctl", "-H", "-j", "/dev/sda"], "exit_status": {exit}}},
  "device": {{"name": "/dev/sda", "info_name": "/dev/sda [SAT]", "type": "sat", "protocol": "ATA"}}{status}}}"#
        )
    }

    #[test]
    fn health_parsing_table() {
        let passed = r#", "smart_status": {"passed": true}"#;
        let failed = r#", "smart_status": {"passed": false}"#;
        let nvme_ok = r#", "smart_status": {"passed": true, "nvme": {"value": 0}}"#;
        let unreadable = r#"{"json_format_version": [1, 0], "smartctl": {"messages": [{"string": "/dev/sdb: Unknown USB bridge [0x152d:0x0578 (0x209)]", "severity": "error"}], "exit_status": 1}}"#;
        let vanished = r#"{"smartctl": {"messages": [{"string": "Smartctl open device: /dev/sdc failed: No such device", "severity": "error"}], "exit_status": 2}}"#;
        let cases: Vec<(&str, String, Option<i32>, bool, &str)> = vec![
            ("passed", health(0, passed), Some(0), true, "PASSED"),
            ("nvme passed", health(0, nvme_ok), Some(0), true, "PASSED"),
            ("failed", health(8, failed), Some(8), false, "FAILED"),
            ("passed field but failing bit", health(8, passed), Some(8), false, "failing"),
            ("prefail at threshold", health(16, passed), Some(16), false, "threshold"),
            ("prefail in the past", health(32, passed), Some(32), true, "in the past"),
            ("error log only", health(64, passed), Some(64), true, "PASSED"),
            ("unknown USB bridge", unreadable.into(), Some(1), true, "Unknown USB bridge"),
            ("device vanished", vanished.into(), Some(2), true, "No such device"),
            ("no JSON, exit 2", "Segmentation fault".into(), Some(2), true, "no JSON"),
            ("no JSON, failing exit", String::new(), Some(8), false, "failing"),
            ("odd types", r#"{"smart_status": {"passed": "yes"}, "smartctl": {"exit_status": "x"}}"#.into(), None, true, SMART_UNREADABLE),
            ("killed by a signal", String::new(), None, true, SMART_UNREADABLE),
        ];
        for (name, json, exit, want_passed, want_detail) in cases {
            let r = parse_health("/dev/sda", &json, exit);
            assert_eq!(r.device, "/dev/sda");
            assert_eq!(r.passed, want_passed, "{name}: {r:?}");
            assert!(r.detail.contains(want_detail), "{name}: {r:?}");
            if r.detail.starts_with(SMART_UNREADABLE) {
                assert!(r.passed, "{name}: unreadable must not count as failing");
            }
        }
    }

    #[test]
    fn smart_is_empty_or_well_formed() {
        // On a machine without smartctl (CI) this is empty; with it, every entry names a device.
        let results = smart();
        if !smart_available() {
            assert!(results.is_empty());
        }
        for r in results {
            assert!(!r.device.is_empty() && !r.detail.is_empty(), "{r:?}");
        }
    }
}
