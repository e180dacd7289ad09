//! The daemon's configuration (`/etc/hafen/hafen.yaml`): `hafen_daemon::config::Config::parse`,
//! which `Config::load_file` calls on the file's text.
use std::path::Path;

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Ok(src) = std::str::from_utf8(data) else { return };
        if let Err(issues) = hafen_daemon::config::Config::parse("fuzz/hafen.yaml", src, Path::new("/etc/hafen")) {
            assert!(!issues.is_empty(), "Config::parse failed with no issue");
        }
    });
}
