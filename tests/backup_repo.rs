//! The repository layer against real files and Debian's stock `restic`: one snapshot from a
//! volume directory and a streamed dump; stock restic checks every pack and restores identical
//! files (content, size, owner, mode); a dump that fails after printing data leaves no snapshot;
//! a wrong key is named as such.

use bytes::Bytes;
use hafen::backup::repo::{Part, Repo, RepoError};
use hafen::secrets::Secret;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn key() -> Secret {
    Secret::from_string("a".repeat(64))
}

/// A producer like the engine's exec stream: sends `chunks`, then its verdict.
fn stream(chunks: Vec<Vec<u8>>, verdict: Result<(), String>, rt: &tokio::runtime::Runtime) -> (tokio::sync::mpsc::Receiver<Bytes>, std::sync::mpsc::Receiver<Result<(), String>>) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let (dtx, drx) = std::sync::mpsc::channel();
    rt.spawn(async move {
        for c in chunks {
            if tx.send(Bytes::from(c)).await.is_err() {
                return;
            }
        }
        drop(tx);
        let _ = dtx.send(verdict);
    });
    (rx, drx)
}

fn volume(dir: &Path) -> PathBuf {
    let v = dir.join("vol");
    std::fs::create_dir_all(v.join("sub")).unwrap();
    std::fs::write(v.join("a.txt"), "Kinderhaus Sonnenschein\n".repeat(1000)).unwrap();
    std::fs::write(v.join("sub/b.bin"), (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    std::os::unix::fs::chown(&v, Some(999), Some(999)).unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(v.join("a.txt"), Some(999), Some(999)).unwrap();
    v
}

fn dump_bytes() -> Vec<Vec<u8>> {
    (0..50).map(|i| format!("INSERT INTO party VALUES ({i}, 'Träger {i}');\n").repeat(2000).into_bytes()).collect()
}

fn restic(repo: &Path, pw: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("restic").arg("-r").arg(repo).arg("--password-file").arg(pw).args(args).env("RESTIC_CACHE_DIR", repo.join("..").join("restic-cache")).output().expect("restic must be installed (tests/run installs it)");
    assert!(out.status.success(), "restic {args:?} failed: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn one_snapshot_of_volume_and_stream_is_restored_identically_by_stock_restic() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    let vol = volume(d.path());
    let repo_dir = d.path().join("repo");
    let repo = Repo::open_or_init(repo_dir.to_str().unwrap(), key()).unwrap();
    let (data, done) = stream(dump_bytes(), Ok(()), &rt);
    let parts = vec![
        Part::Dir { src: vol.clone(), dst: "/volumes/data".into() },
        Part::Stream { dst: "/dumps/tryton.sql".into(), data, done },
    ];
    let snap = repo.backup(parts, "tryton", &["stack:tryton".into(), "run:1".into()], "test").unwrap();
    assert!(snap.tags.contains(&"stack:tryton".to_string()));
    assert_eq!(repo.snapshots().unwrap().len(), 1);
    assert!(repo.check(true, None).unwrap().is_empty());

    // hafen's own restore.
    let mine = d.path().join("mine");
    repo.restore("latest", &["stack:tryton".into()], "", &mine).unwrap();
    let want: Vec<u8> = dump_bytes().concat();
    assert_eq!(std::fs::read(mine.join("dumps/tryton.sql")).unwrap(), want);
    assert_eq!(std::fs::read(mine.join("volumes/data/sub/b.bin")).unwrap(), std::fs::read(vol.join("sub/b.bin")).unwrap());
    let m = std::fs::metadata(mine.join("volumes/data")).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (999, 999, 0o700));

    // Stock restic: full read of every pack, then a restore with identical files.
    let pw = d.path().join("pw");
    std::fs::write(&pw, "a".repeat(64)).unwrap();
    let out = restic(&repo_dir, &pw, &["check", "--read-data"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no errors were found"));
    let theirs = d.path().join("theirs");
    restic(&repo_dir, &pw, &["restore", "latest", "--target", theirs.to_str().unwrap()]);
    assert_eq!(std::fs::read(theirs.join("dumps/tryton.sql")).unwrap(), want, "restic restored the streamed dump differently");
    let diff = Command::new("diff").arg("-r").arg(&vol).arg(theirs.join("volumes/data")).status().unwrap();
    assert!(diff.success());
    let m = std::fs::metadata(theirs.join("volumes/data/a.txt")).unwrap();
    assert_eq!((m.uid(), m.gid()), (999, 999));

    // A second backup after a small change adds little.
    std::fs::write(vol.join("c.txt"), "neu").unwrap();
    let (data, done) = stream(dump_bytes(), Ok(()), &rt);
    let second = repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }, Part::Stream { dst: "/dumps/tryton.sql".into(), data, done }], "tryton", &["stack:tryton".into()], "test").unwrap();
    assert!(second.added < 100_000, "second backup added {} bytes", second.added);
}

#[test]
fn a_dump_that_fails_after_printing_data_leaves_no_snapshot() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    let vol = volume(d.path());
    let repo = Repo::open_or_init(d.path().join("repo").to_str().unwrap(), key()).unwrap();
    let (data, done) = stream(dump_bytes(), Err("pg_dump exited with 1: connection lost".into()), &rt);
    let r = repo.backup(vec![Part::Dir { src: vol, dst: "/volumes/data".into() }, Part::Stream { dst: "/dumps/tryton.sql".into(), data, done }], "tryton", &[], "test");
    match r {
        Err(RepoError::Capture { errors, .. }) => assert!(errors.iter().any(|e| e.contains("connection lost")), "{errors:?}"),
        other => panic!("expected a failed capture, got {other:?}"),
    }
    assert!(repo.snapshots().unwrap().is_empty(), "a failed dump left a snapshot");
}

#[test]
fn wrong_key_is_named() {
    let d = tempfile::tempdir().unwrap();
    let loc = d.path().join("repo");
    Repo::open_or_init(loc.to_str().unwrap(), key()).unwrap();
    match Repo::open_existing(loc.to_str().unwrap(), Secret::from_string("b".repeat(64))) {
        Err(RepoError::WrongKey { .. }) => {}
        Err(e) => panic!("expected WrongKey, got {e}"),
        Ok(_) => panic!("opened with the wrong key"),
    }
    let missing = Repo::open_existing(d.path().join("nothing").to_str().unwrap(), key()).err().expect("missing repo opened");
    assert!(missing.to_string().contains("No repository config file found"), "{missing}");
}
