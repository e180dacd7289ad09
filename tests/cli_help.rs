//! German first for the command line's help: `hafen --help` and the help of its commands are
//! German by default and English with HAFEN_LANG=en, and a usage error is German too (exit 2).
//! Runs the built binary; needs no daemon.

use std::process::{Command, Output};

fn hafen(lang: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hafen"))
        .args(args)
        .env("HAFEN_LANG", lang)
        // The help shows these variables' values; the test's environment must not leak in.
        .env_remove("HAFEN_CONFIG")
        .env_remove("HAFEN_SOCKET")
        .output()
        .expect("run hafen")
}

/// The English words of `text`: whole words (`and` is no match inside `Zustand`), and phrases.
fn english(text: &str) -> Vec<&'static str> {
    const WORDS: &[&str] = &["Usage", "Commands", "Options", "Arguments", "Show", "the", "and", "default"];
    const PHRASES: &[&str] = &["Print help", "Print version", "stack's", "[OPTIONS]", "<COMMAND>"];
    let words: Vec<&str> = text.split(|c: char| !c.is_alphabetic()).collect();
    WORDS.iter().filter(|w| words.contains(w)).chain(PHRASES.iter().filter(|p| text.contains(*p))).copied().collect()
}

#[test]
fn help_is_german_by_default_and_english_on_request() {
    for args in [&["--help"][..], &["stack", "--help"], &["backup", "--help"], &["restore", "--help"], &["help", "update"], &["stack", "deploy", "-h"]] {
        let out = hafen("de", args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "hafen {}: {:?}\n{}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("Aufruf: hafen") && stdout.contains("Optionen:"), "hafen {}:\n{stdout}", args.join(" "));
        assert!(english(&stdout).is_empty(), "hafen {} has English {:?}:\n{stdout}", args.join(" "), english(&stdout));
    }
    let out = hafen("de", &["--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Befehle:") && stdout.contains("Hilfe anzeigen") && stdout.contains("Stellt Container-Stacks bereit"), "{stdout}");

    let out = hafen("en", &["--help"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in ["Usage: hafen [OPTIONS] <COMMAND>", "Commands:", "Options:", "Print help", "Deploys, reconciles and guards containerised stacks"] {
        assert!(stdout.contains(want), "no {want:?} in:\n{stdout}");
    }
}

#[test]
fn a_usage_error_is_german_and_exits_2() {
    let out = hafen("de", &["stack", "deploy", "web", "--jsn"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for want in ["Fehler: Unerwartetes Argument '--jsn'", "Tipp: Ein ähnliches Argument gibt es: '--json'", "Aufruf: hafen stack deploy [OPTIONEN] <ID>"] {
        assert!(stderr.contains(want), "no {want:?} in:\n{stderr}");
    }
    assert!(english(&stderr).is_empty() && !stderr.contains("error"), "{stderr}");

    let out = hafen("en", &["stack", "deploy", "web", "--jsn"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: unexpected argument '--jsn' found"));
}
