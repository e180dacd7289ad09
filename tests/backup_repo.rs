//! The repository layer against real files and Debian's stock `restic`: one snapshot from a
//! volume directory and a streamed dump; stock restic checks every pack and restores identical
//! files (content, size, owner, mode); a dump that fails after printing data leaves no snapshot;
//! a wrong key is named as such; an export opens with only `age`, `zstd` and `tar`; a damaged
//! or truncated pack is named by the check and restore refuses to write damaged data; a full
//! target disk fails clearly and leaves earlier snapshots intact; a damaged pack, index file or
//! tree pack is repaired after a plan that changes nothing, and old snapshots heal.

use bytes::Bytes;
use hafen_backup::repo::{Location, Part, Repo, RepoError};
use hafen_daemon::secrets::Secret;
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
    let repo = Repo::open_or_init(Location::local(&repo_dir), key()).unwrap();
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
    // The directories the snapshot makes up are dated to the backup (not 1901), by restic and hafen.
    let now = std::time::SystemTime::now();
    for root in [&theirs, &mine] {
        for dir in ["dumps", "volumes"] {
            let t = std::fs::metadata(root.join(dir)).unwrap().modified().unwrap();
            let age = now.duration_since(t).unwrap_or_default();
            assert!(age.as_secs() < 3600, "{}/{dir} is dated {:?} ago", root.display(), age);
        }
    }

    // A second backup after a small change adds little.
    std::fs::write(vol.join("c.txt"), "neu").unwrap();
    let (data, done) = stream(dump_bytes(), Ok(()), &rt);
    let second = repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }, Part::Stream { dst: "/dumps/tryton.sql".into(), data, done }], "tryton", &["stack:tryton".into()], "test").unwrap();
    assert!(second.added < 100_000, "second backup added {} bytes", second.added);
}

#[test]
fn a_restore_in_small_parts_gives_the_same_files_owners_and_modes() {
    let d = tempfile::tempdir().unwrap();
    let vol = volume(d.path());
    for i in 0..20 {
        std::fs::write(vol.join("sub").join(format!("f{i}.txt")), format!("Akte {i}\n").repeat(5000)).unwrap();
    }
    std::os::unix::fs::chown(vol.join("sub"), Some(1001), Some(1001)).unwrap();
    std::fs::set_permissions(vol.join("sub"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let repo = Repo::open_or_init(Location::local(&d.path().join("repo")), key()).unwrap().with_restore_batch(100_000);
    repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &["stack:s".into()], "t").unwrap();
    let out = d.path().join("out");
    repo.restore("latest", &["stack:s".into()], "", &out).unwrap();
    let diff = Command::new("diff").arg("-r").arg(&vol).arg(out.join("volumes/data")).output().unwrap();
    assert!(diff.status.success(), "{}", String::from_utf8_lossy(&diff.stdout));
    for rel in ["", "sub", "a.txt", "sub/f7.txt"] {
        let (a, b) = (std::fs::metadata(vol.join(rel)).unwrap(), std::fs::metadata(out.join("volumes/data").join(rel)).unwrap());
        assert_eq!((a.uid(), a.gid(), a.mode()), (b.uid(), b.gid(), b.mode()), "{rel}");
        if !a.is_dir() || rel == "sub" {
            assert_eq!(a.mtime(), b.mtime(), "mtime of {rel}");
        }
    }
}

#[test]
fn a_dump_that_fails_after_printing_data_leaves_no_snapshot() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    let vol = volume(d.path());
    let repo = Repo::open_or_init(Location::local(&d.path().join("repo")), key()).unwrap();
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
    Repo::open_or_init(Location::local(&loc), key()).unwrap();
    match Repo::open_existing(Location::local(&loc), Secret::from_string("b".repeat(64))) {
        Err(RepoError::WrongKey { .. }) => {}
        Err(e) => panic!("expected WrongKey, got {e}"),
        Ok(_) => panic!("opened with the wrong key"),
    }
    // The daemon keeps the master keys it opened; a later open with the right key uses it, and
    // another key is still refused.
    let again = Repo::open_or_init(Location::local(&loc), key()).unwrap();
    assert!(again.snapshots().unwrap().is_empty());
    match Repo::open_or_init(Location::local(&loc), Secret::from_string("c".repeat(64))) {
        Err(RepoError::WrongKey { .. }) => {}
        Err(e) => panic!("expected WrongKey after a cached open, got {e}"),
        Ok(_) => panic!("opened with the wrong key after a cached open"),
    }
    let missing = Repo::open_existing(Location::local(&d.path().join("nothing")), key()).err().expect("missing repo opened");
    assert!(missing.to_string().contains("No repository config file found"), "{missing}");
}

fn sh(cmd: &str) -> std::process::Output {
    let o = Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

#[test]
fn an_export_opens_with_only_age_zstd_and_tar() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = tempfile::tempdir().unwrap();
    let vol = volume(d.path());
    std::os::unix::fs::symlink("a.txt", vol.join("link")).unwrap();
    let repo = Repo::open_or_init(Location::local(&d.path().join("repo")), key()).unwrap();
    let (data, done) = stream(dump_bytes(), Ok(()), &rt);
    let parts = vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }, Part::Stream { dst: "/dumps/tryton.sql".into(), data, done }];
    let snap = repo.backup(parts, "tryton", &["stack:tryton".into()], "test").unwrap();
    let id = hafen_backup::keys::generate_identity();
    let idfile = d.path().join("recovery.txt");
    std::fs::write(&idfile, id.expose_secret()).unwrap();
    let out = d.path().join("archiv").join("tryton.tar.zst.age");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let seen = std::sync::atomic::AtomicU64::new(0);
    let r = hafen_backup::export::export(&repo, "tryton", "latest", std::slice::from_ref(&id.recipient), &out, &|done, _| seen.store(done, std::sync::atomic::Ordering::Relaxed)).unwrap();
    assert_eq!(r.snapshot.id, snap.id);
    assert!(seen.load(std::sync::atomic::Ordering::Relaxed) > 1_000_000, "progress was not reported");
    assert_eq!(std::fs::metadata(&out).unwrap().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), r.bytes);
    assert!(!out.with_extension("age.partial").exists());
    let sha = sh(&format!("sha256sum {}", out.display()));
    assert!(String::from_utf8_lossy(&sha.stdout).starts_with(&r.sha256), "the printed SHA-256 is not the file's");
    // An export never overwrites.
    let again = hafen_backup::export::export(&repo, "tryton", "latest", std::slice::from_ref(&id.recipient), &out, &|_, _| {});
    assert!(matches!(again, Err(hafen_backup::export::ExportError::Exists(_))));
    // Only the stock tools.
    let x = d.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    // As docs/restore.md says: decrypt into a file, unpack only when age succeeded.
    let unpack = |file: &Path, into: &Path| {
        Command::new("sh")
            .arg("-c")
            .arg(format!("cd {} && age -d -i {} -o archiv.tar.zst {} && zstd -dc archiv.tar.zst | tar -x --numeric-owner -p", into.display(), idfile.display(), file.display()))
            .output()
            .unwrap()
    };
    let o = unpack(&out, &x);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let day = &snap.time[..10];
    let root = x.join(format!("tryton-{day}"));
    assert!(x.join("LIESMICH.txt").is_file() && x.join("README.txt").is_file());
    let dump: Vec<u8> = dump_bytes().concat();
    assert_eq!(std::fs::read(root.join("dumps/tryton.sql")).unwrap(), dump);
    assert_eq!(std::fs::read(root.join("volumes/data/a.txt")).unwrap(), std::fs::read(vol.join("a.txt")).unwrap());
    assert_eq!(std::fs::read(root.join("volumes/data/sub/b.bin")).unwrap(), std::fs::read(vol.join("sub/b.bin")).unwrap());
    assert_eq!(std::fs::read_link(root.join("volumes/data/link")).unwrap(), PathBuf::from("a.txt"));
    let m = std::fs::metadata(root.join("volumes/data/a.txt")).unwrap();
    assert_eq!((m.uid(), m.gid()), (999, 999), "owners kept");
    let t = std::fs::metadata(root.join("dumps")).unwrap().modified().unwrap();
    assert!(std::time::SystemTime::now().duration_since(t).unwrap_or_default().as_secs() < 3600, "dumps/ in the export is dated {t:?}");
    // Damage to the export (BK-08, RS-01): a flipped byte in the age header, one in the middle
    // of the stream, and the file cut short. The printed checksum no longer matches, age refuses
    // (it checks the header's MAC before any output, every 64 KiB chunk, and knows the last
    // chunk), and the documented way unpacks nothing.
    let bytes = std::fs::read(&out).unwrap();
    let header = bytes.windows(4).position(|w| w == b"\n---").unwrap();
    for (what, damaged) in [
        ("header", { let mut b = bytes.clone(); b[header / 2] ^= 0x01; b }),
        ("middle", { let mut b = bytes.clone(); let m = b.len() / 2; b[m] ^= 0x01; b }),
        ("cut short", bytes[..bytes.len() * 2 / 3].to_vec()),
    ] {
        let file = d.path().join(format!("damaged-{}.age", what.replace(' ', "-")));
        std::fs::write(&file, &damaged).unwrap();
        let sha = sh(&format!("sha256sum {}", file.display()));
        assert!(!String::from_utf8_lossy(&sha.stdout).starts_with(&r.sha256), "{what}: the checksum does not show the damage");
        let into = d.path().join(format!("unpacked-{}", what.replace(' ', "-")));
        std::fs::create_dir_all(&into).unwrap();
        let o = unpack(&file, &into);
        assert!(!o.status.success() && !o.stderr.is_empty(), "{what}: age did not refuse the damaged export");
        let unpacked: Vec<_> = std::fs::read_dir(&into).unwrap().flatten().map(|e| e.file_name()).filter(|n| n != "archiv.tar.zst").collect();
        assert!(unpacked.is_empty(), "{what}: unpacked from a damaged export: {unpacked:?}");
    }
    // The wrong identity cannot read it.
    let stranger = hafen_backup::keys::generate_identity();
    std::fs::write(d.path().join("other.txt"), stranger.expose_secret()).unwrap();
    let o = Command::new("age").arg("-d").arg("-i").arg(d.path().join("other.txt")).arg(&out).output().unwrap();
    assert!(!o.status.success());
    // A snapshot that is not there: clear error, no file.
    let none = hafen_backup::export::export(&repo, "nextcloud", "latest", std::slice::from_ref(&id.recipient), &d.path().join("n.age"), &|_, _| {});
    assert!(matches!(none, Err(hafen_backup::export::ExportError::Repo(RepoError::NoSnapshot(_)))), "{none:?}");
    assert!(!d.path().join("n.age").exists() && !d.path().join("n.age.partial").exists());
}

/// Unmounts its directory when dropped (also when the test fails).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// A 24 MB ext4 file system on a loop device under `dir`, mounted at `dir/mnt`: a small real
/// disk to fill up or turn read-only.
fn small_disk(dir: &Path) -> (PathBuf, Unmount) {
    let (img, mnt) = (dir.join("disk.img"), dir.join("mnt"));
    std::fs::create_dir_all(&mnt).unwrap();
    sh(&format!("truncate -s 24M {0} && mkfs.ext4 -q -m 0 {0} && mount -o loop {0} {1}", img.display(), mnt.display()));
    (mnt.clone(), Unmount(mnt))
}

/// The pack files of a repository, largest first.
fn packs(repo: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walk(&repo.join("data"));
    v.sort_by_key(|p| std::cmp::Reverse(std::fs::metadata(p).unwrap().len()));
    v
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_damaged_or_truncated_pack_is_named_and_never_restored() {
    let d = tempfile::tempdir().unwrap();
    let vol = volume(d.path());
    for (case, damage) in [("corrupt", 0), ("truncated", 1)] {
        let repo_dir = d.path().join(format!("repo-{case}"));
        let repo = Repo::open_or_init(Location::local(&repo_dir), key()).unwrap();
        repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &["stack:s".into()], "test").unwrap();
        assert!(repo.check(true, None).unwrap().is_empty());
        let pack = packs(&repo_dir).into_iter().next().unwrap();
        let name = pack.file_name().unwrap().to_string_lossy().to_string();
        let mut bytes = std::fs::read(&pack).unwrap();
        if damage == 0 {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
            bytes[mid + 1] ^= 0xff;
        } else {
            bytes.truncate(bytes.len() / 2);
        }
        std::fs::write(&pack, &bytes).unwrap();
        let problems = repo.check(true, None).unwrap();
        assert!(problems.iter().any(|p| p.contains(&name[..8])), "{case}: the check does not name pack {name}: {problems:?}");
        let target = d.path().join(format!("restore-{case}"));
        let err = repo.restore("latest", &["stack:s".into()], "", &target).expect_err(case);
        assert!(matches!(err, RepoError::Damaged { .. }), "{case}: named as damage: {err}");
        // Nothing damaged (or half-written) is left behind.
        assert!(!target.exists() || walk(&target).is_empty(), "{case}: files were written: {:?}", walk(&target));
        // An export of it fails as clearly, and leaves no file, partial or whole.
        let id = hafen_backup::keys::generate_identity();
        let out = d.path().join(format!("export-{case}.age"));
        let err = hafen_backup::export::export(&repo, "s", "latest", std::slice::from_ref(&id.recipient), &out, &|_, _| {}).expect_err(case);
        assert!(err.to_string().contains(&name[..8]) || matches!(err, hafen_backup::export::ExportError::Repo(RepoError::Damaged { .. })), "{case}: {err}");
        assert!(!out.exists() && !d.path().join(format!("export-{case}.age.partial")).exists(), "{case}: an export file was left");
    }
}

#[test]
fn a_full_target_disk_fails_clearly_and_keeps_earlier_snapshots() {
    let d = tempfile::tempdir().unwrap();
    let (mnt, _guard) = small_disk(d.path());
    let repo_dir = mnt.join("hafen");
    let repo = Repo::open_or_init(Location::local(&repo_dir), key()).unwrap();
    let small = volume(d.path());
    let first = repo.backup(vec![Part::Dir { src: small.clone(), dst: "/volumes/data".into() }], "s", &["stack:s".into()], "first").unwrap();
    // 40 MB that does not compress: does not fit.
    let big = d.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    sh(&format!("head -c 40000000 /dev/urandom > {}/random.bin", big.display()));
    let err = repo.backup(vec![Part::Dir { src: big, dst: "/volumes/data".into() }], "s", &["stack:s".into()], "second").expect_err("the disk is full");
    let text = err.to_string();
    assert!(text.to_lowercase().contains("no space left") || text.contains("os error 28"), "{text}");
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0].id, first.id);
    let problems = repo.check(true, None).unwrap();
    assert!(problems.is_empty(), "the earlier snapshot is damaged: {problems:?}");
    let out = d.path().join("back");
    repo.restore(&first.id, &[], "", &out).unwrap();
    assert_eq!(std::fs::read(out.join("volumes/data/a.txt")).unwrap(), std::fs::read(small.join("a.txt")).unwrap());
}

/// Regression: a scheduled first backup and a listing opened a new target at the same moment;
/// both created a repository, and the second config made the first one's data unreadable.
#[test]
fn first_opens_at_the_same_time_create_one_repository() {
    let d = tempfile::tempdir().unwrap();
    let loc = d.path().join("repo");
    let repos: Vec<Repo> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6).map(|_| s.spawn(|| Repo::open_or_init(Location::local(&loc), key()).unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(std::fs::read_dir(loc.join("keys")).unwrap().count(), 1, "more than one repository was created");
    let vol = volume(d.path());
    repos[0].backup(vec![Part::Dir { src: vol, dst: "/volumes/data".into() }], "s", &["stack:s".into()], "t").unwrap();
    for r in &repos {
        assert_eq!(r.snapshots().unwrap().len(), 1);
    }
}

/// Damage stays local: one truncated snapshot file hides no other snapshot — the others list
/// and restore (also as `latest`, by id and in an export), new backups run (never on the
/// damaged one as their parent), and the damaged file is named.
#[test]
fn a_truncated_snapshot_file_hides_no_other_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let vol = volume(d.path());
    let repo_dir = d.path().join("repo");
    let repo = Repo::open_or_init(Location::local(&repo_dir), key()).unwrap();
    let tags = ["stack:s".to_string()];
    let older = repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &tags, "test").unwrap();
    std::fs::write(vol.join("a.txt"), "geändert\n").unwrap();
    let newer = repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &tags, "test").unwrap();
    let file = std::fs::read_dir(repo_dir.join("snapshots")).unwrap().map(|e| e.unwrap().path()).find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&newer.id)).unwrap();
    let newer_full = file.file_name().unwrap().to_string_lossy().to_string();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();

    let (snaps, damaged) = repo.snapshots_and_damage().unwrap();
    assert_eq!(snaps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![older.id.as_str()]);
    assert_eq!(damaged, vec![newer_full.clone()], "the damaged snapshot file is named");
    let problems = repo.check(false, None).unwrap();
    assert!(problems.len() == 1 && problems[0].contains(&newer_full), "the check names the damaged file and nothing else: {problems:?}");
    // `latest` is the newest one that can be read; by id too.
    for id in ["latest", &older.id[..8]] {
        let target = d.path().join(format!("restore-{id}"));
        let got = repo.restore(id, &tags, "", &target).unwrap();
        assert_eq!(got.id, older.id);
        assert_eq!(std::fs::read(target.join("volumes/data/a.txt")).unwrap(), "Kinderhaus Sonnenschein\n".repeat(1000).into_bytes());
    }
    let asked = repo.restore(&newer_full, &tags, "", &d.path().join("restore-newer"));
    assert!(matches!(asked, Err(RepoError::NoSnapshot(_))), "{asked:?}");
    // A new backup runs, reading everything again rather than trusting the damaged parent.
    std::fs::write(vol.join("a.txt"), "noch einmal\n").unwrap();
    let third = repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &tags, "test").unwrap();
    let target = d.path().join("restore-third");
    repo.restore("latest", &tags, "", &target).unwrap();
    assert_eq!(std::fs::read_to_string(target.join("volumes/data/a.txt")).unwrap(), "noch einmal\n");
    assert_eq!(repo.snapshots().unwrap().len(), 2, "{third:?}");
    // An export of a readable snapshot works.
    let id = hafen_backup::keys::generate_identity();
    let out = d.path().join("export.tar.zst.age");
    hafen_backup::export::export(&repo, "s", &older.id[..8], std::slice::from_ref(&id.recipient), &out, &|_, _| {}).unwrap();
    assert!(out.is_file());
}

/// Fuzzing the repository reader on stable Rust: the snapshot, index and pack files of a real
/// repository, mutated at random (bytes flipped, cut short, garbage appended), one file per
/// round. Listing, checking and restoring never panic, and a restore either fails or gives back
/// exactly the data that was backed up — damage never turns into wrong data. The seed is fixed
/// (a failure repeats); `HAFEN_FUZZ_ROUNDS` asks for more rounds.
#[test]
fn a_repository_mutated_at_random_never_panics_and_never_restores_wrong_data() {
    let d = tempfile::tempdir().unwrap();
    let vol = volume(d.path());
    let pristine = d.path().join("pristine");
    let repo = Repo::open_or_init(Location::local(&pristine), key()).unwrap();
    repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &["stack:s".into()], "test").unwrap();
    drop(repo);
    let files: Vec<PathBuf> = ["snapshots", "index", "data"].iter().flat_map(|k| walk(&pristine.join(k))).collect();
    assert!(files.len() >= 3, "{files:?}");
    let rounds: usize = std::env::var("HAFEN_FUZZ_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    // xorshift64*: small, fixed, enough to spread the faults.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let (mut refused, mut restored) = (0, 0);
    for round in 0..rounds {
        let copy = d.path().join(format!("round-{round}"));
        assert!(Command::new("cp").arg("-a").arg(&pristine).arg(&copy).status().unwrap().success());
        let victim = copy.join(files[next() as usize % files.len()].strip_prefix(&pristine).unwrap());
        let mut bytes = std::fs::read(&victim).unwrap();
        let what = match next() % 3 {
            0 => {
                for _ in 0..1 + next() % 4 {
                    let i = next() as usize % bytes.len();
                    bytes[i] ^= 1 << (next() % 8);
                }
                "flipped"
            }
            1 => {
                bytes.truncate(next() as usize % bytes.len());
                "cut"
            }
            _ => {
                bytes.extend((0..1 + next() % 64).map(|_| next() as u8));
                "appended"
            }
        };
        std::fs::write(&victim, &bytes).unwrap();
        let case = format!("round {round}: {what} {}", victim.display());
        let Ok(repo) = Repo::open_or_init(Location::local(&copy), key()) else {
            refused += 1;
            continue;
        };
        let _ = repo.snapshots();
        let _ = repo.check(false, None);
        let target = d.path().join(format!("restore-{round}"));
        match repo.restore("latest", &["stack:s".into()], "", &target) {
            Ok(_) => {
                restored += 1;
                let diff = Command::new("diff").arg("-r").arg(&vol).arg(target.join("volumes/data")).output().unwrap();
                assert!(diff.status.success(), "{case}: restored data differs:\n{}", String::from_utf8_lossy(&diff.stdout));
            }
            Err(_) => {
                refused += 1;
                assert!(!target.exists() || walk(&target).is_empty(), "{case}: a failed restore left files");
            }
        }
        let _ = std::fs::remove_dir_all(&copy);
        let _ = std::fs::remove_dir_all(&target);
    }
    assert_eq!(refused + restored, rounds);
}

/// BK-06: the target turns read-only (a failing USB disk, a NAS share remounted): the backup
/// fails clearly and never counts as a success; the earlier snapshot stays whole, and once the
/// disk is writable again the next backup succeeds.
#[test]
fn a_target_that_turns_read_only_fails_the_backup_and_keeps_the_earlier_one() {
    let d = tempfile::tempdir().unwrap();
    let (mnt, _guard) = small_disk(d.path());
    let repo_dir = mnt.join("hafen");
    let repo = Repo::open_or_init(Location::local(&repo_dir), key()).unwrap();
    let vol = volume(d.path());
    let first = repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &["stack:s".into()], "first").unwrap();
    sh(&format!("mount -o remount,ro {}", mnt.display()));
    std::fs::write(vol.join("c.txt"), "neu nach der ersten Sicherung\n".repeat(500)).unwrap();
    let err = repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &["stack:s".into()], "second").expect_err("a read-only target");
    let text = err.to_string();
    assert!(text.contains("Read-only") || text.contains("read-only") || text.contains("os error 30"), "{text}");
    let snaps = repo.snapshots().unwrap();
    assert_eq!(snaps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![first.id.as_str()]);
    sh(&format!("mount -o remount,rw {}", mnt.display()));
    assert!(repo.check(true, None).unwrap().is_empty(), "the earlier snapshot is damaged");
    let third = repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &["stack:s".into()], "third").unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 2, "{third:?}");
}

/// Every file of a repository with its content, to prove that a planned repair changes nothing.
fn contents(repo: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = walk(repo).into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect();
    v.sort();
    v
}

fn files_of(dir: &Path) -> Vec<PathBuf> {
    if dir.exists() {
        walk(dir)
    } else {
        Vec::new()
    }
}

/// The repair path, planned first: one data pack with a flipped byte and one truncated index
/// file. Before the repair, the damaged index file stops nothing: a new backup runs and its
/// files restore. The plan names both, the blobs it saves and loses, and the two snapshots that
/// need the lost data (with the file's path), and changes no byte. Applied, the index is whole
/// again (the packs of the damaged index file indexed from their headers); the next backup of
/// the same live data stores the lost blobs again, and so the older snapshots are whole: both
/// restore identically, and stock restic's `check --read-data` passes.
#[test]
fn a_damaged_pack_and_index_file_are_repaired_after_a_plan_and_old_snapshots_heal() {
    let d = tempfile::tempdir().unwrap();
    let vol = volume(d.path());
    let repo_dir = d.path().join("repo");
    let repo = Repo::open_or_init(Location::local(&repo_dir), key()).unwrap();
    let tags = ["stack:s".to_string()];
    let backup = |note: &str| repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &tags, note).unwrap();
    let first = backup("first");
    let first_a = std::fs::read(vol.join("a.txt")).unwrap();
    let index_before: Vec<PathBuf> = files_of(&repo_dir.join("index"));
    std::fs::write(vol.join("a.txt"), "Wohngruppe Regenbogen\n".repeat(500)).unwrap();
    let second = backup("second");
    // The largest pack holds b.bin (first backup); the second backup's index file is cut short.
    let pack = packs(&repo_dir).into_iter().next().unwrap();
    let pack_name = pack.file_name().unwrap().to_string_lossy().to_string();
    let mut bytes = std::fs::read(&pack).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&pack, &bytes).unwrap();
    let index = files_of(&repo_dir.join("index")).into_iter().find(|p| !index_before.contains(p)).unwrap();
    let index_name = index.file_name().unwrap().to_string_lossy().to_string();
    let raw = std::fs::read(&index).unwrap();
    std::fs::write(&index, &raw[..raw.len() / 3]).unwrap();

    // A new backup still runs with a damaged index file (it stores that data again), and what
    // it stored restores while the index file is damaged.
    std::fs::write(vol.join("a.txt"), "Kita Löwenzahn\n".repeat(700)).unwrap();
    let third = backup("third");
    let early = d.path().join("restore-early");
    repo.restore(&third.id, &tags, "/volumes/data/a.txt", &early).unwrap();
    assert_eq!(std::fs::read(early.join("a.txt")).unwrap(), "Kita Löwenzahn\n".repeat(700).into_bytes());

    let before = contents(&repo_dir);
    let plan = repo.repair(false).unwrap();
    assert_eq!(contents(&repo_dir), before, "a planned repair changed the repository");
    assert!(!plan.applied && !plan.is_clean(), "{plan:?}");
    assert_eq!(plan.damaged_index_files, vec![index_name.clone()], "{plan:?}");
    assert_eq!(plan.damaged_packs.len(), 1, "{plan:?}");
    let damage = &plan.damaged_packs[0];
    assert!(damage.id == pack_name && !damage.missing && damage.lost >= 1 && damage.salvaged + damage.lost == damage.blobs, "{damage:?}");
    assert!(!plan.unindexed_packs.is_empty(), "the damaged index file's packs are to be indexed again: {plan:?}");
    assert!(plan.snapshots_lost.is_empty() && plan.damaged_snapshot_files.is_empty(), "{plan:?}");
    let mut incomplete: Vec<&str> = plan.snapshots_incomplete.iter().map(|s| s.snapshot.id.as_str()).collect();
    incomplete.sort_unstable();
    let mut expected = vec![first.id.as_str(), second.id.as_str(), third.id.as_str()];
    expected.sort_unstable();
    assert_eq!(incomplete, expected, "the snapshots that need the lost blob: {plan:?}");
    assert!(plan.snapshots_incomplete.iter().all(|s| s.paths.iter().any(|p| p == "/volumes/data/sub/b.bin")), "{plan:?}");

    let done = repo.repair(true).unwrap();
    assert!(done.applied, "{done:?}");
    assert!(!pack.exists() && !index.exists(), "the damaged pack and index file are removed");
    // Until the data is stored again, the snapshots stay incomplete, and are named so.
    let again = repo.repair(false).unwrap();
    assert!(again.damaged_packs.is_empty() && again.damaged_index_files.is_empty() && again.unindexed_packs.is_empty() && again.snapshots_incomplete.len() == 3, "{again:?}");

    // The live data still holds b.bin: the next backup stores it again, and the old snapshots
    // are whole.
    backup("fourth");
    assert!(repo.repair(false).unwrap().is_clean());
    assert!(repo.check(true, None).unwrap().is_empty());
    let pw = d.path().join("pw");
    std::fs::write(&pw, key().expose()).unwrap();
    restic(&repo_dir, &pw, &["check", "--read-data"]);
    for (snap, a) in [(&first, first_a.clone()), (&second, "Wohngruppe Regenbogen\n".repeat(500).into_bytes())] {
        let target = d.path().join(format!("restore-{}", &snap.id[..8]));
        repo.restore(&snap.id, &tags, "", &target).unwrap();
        assert_eq!(std::fs::read(target.join("volumes/data/a.txt")).unwrap(), a);
        assert_eq!(std::fs::read(target.join("volumes/data/sub/b.bin")).unwrap(), std::fs::read(vol.join("sub/b.bin")).unwrap());
        let by_restic = d.path().join(format!("restic-{}", &snap.id[..8]));
        restic(&repo_dir, &pw, &["restore", &snap.id, "--target", by_restic.to_str().unwrap()]);
        assert_eq!(std::fs::read(by_restic.join("volumes/data/sub/b.bin")).unwrap(), std::fs::read(vol.join("sub/b.bin")).unwrap());
    }
}

/// A tree pack cut short: the snapshot whose top directory is lost is forgotten; the newer
/// snapshot that shares an unchanged folder with it is kept and named, and is whole again after
/// the next backup (the folder's tree is stored again under the same id).
#[test]
fn a_snapshot_whose_tree_is_lost_is_forgotten_and_a_sharing_one_heals() {
    let d = tempfile::tempdir().unwrap();
    let vol = volume(d.path());
    let repo_dir = d.path().join("repo");
    let repo = Repo::open_or_init(Location::local(&repo_dir), key()).unwrap();
    let tags = ["stack:s".to_string()];
    let backup = || repo.backup(vec![Part::Dir { src: vol.clone(), dst: "/volumes/data".into() }], "s", &tags, "t").unwrap();
    let first = backup();
    let tree_pack = packs(&repo_dir).into_iter().last().unwrap();
    std::fs::write(vol.join("a.txt"), "geändert\n").unwrap();
    let second = backup();
    std::fs::write(&tree_pack, b"cut").unwrap();

    let plan = repo.repair(false).unwrap();
    assert_eq!(plan.snapshots_lost.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![first.id.as_str()], "{plan:?}");
    assert_eq!(plan.snapshots_incomplete.len(), 1, "{plan:?}");
    assert_eq!(plan.snapshots_incomplete[0].snapshot.id, second.id);
    assert!(plan.snapshots_incomplete[0].paths.contains(&"/volumes/data/sub/".to_string()), "{plan:?}");
    repo.repair(true).unwrap();
    assert_eq!(repo.snapshots().unwrap().iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), vec![second.id.as_str()], "the rootless snapshot is forgotten");
    backup();
    assert!(repo.repair(false).unwrap().is_clean());
    assert!(repo.check(true, None).unwrap().is_empty());
    let target = d.path().join("restore");
    repo.restore(&second.id, &tags, "", &target).unwrap();
    assert_eq!(std::fs::read(target.join("volumes/data/sub/b.bin")).unwrap(), std::fs::read(vol.join("sub/b.bin")).unwrap());
}

/// A failing disk sector under one pack (strace injects EIO into every read of that file, in
/// the real `hafen` binary, offline with only the kit): a restore of the snapshot that needs it
/// fails, names the pack and the system's reason, shows no panic and writes nothing; a snapshot
/// that does not need it restores whole through the same failing disk; the check with
/// `--read-data` names the pack; listing works.
#[test]
fn an_io_error_under_one_pack_is_named_and_stops_nothing_else() {
    let d = tempfile::tempdir().unwrap();
    let repo_dir = d.path().join("repo");
    let repo = Repo::open_or_init(Location::local(&repo_dir), key()).unwrap();
    let first_vol = volume(d.path());
    let first = repo.backup(vec![Part::Dir { src: first_vol.clone(), dst: "/volumes/data".into() }], "s", &["stack:s".into()], "first").unwrap();
    let before: Vec<PathBuf> = packs(&repo_dir);
    let second_vol = d.path().join("second");
    std::fs::create_dir_all(&second_vol).unwrap();
    sh(&format!("head -c 2000000 /dev/urandom > {}/akte.bin", second_vol.display()));
    let second = repo.backup(vec![Part::Dir { src: second_vol, dst: "/volumes/data".into() }], "s", &["stack:s".into()], "second").unwrap();
    // The second backup's largest new pack holds its data, which the first does not need.
    let pack = packs(&repo_dir).into_iter().find(|p| !before.contains(p)).unwrap();
    let name = pack.file_name().unwrap().to_string_lossy().to_string();
    // The recovery kit: an age identity that unwraps the repository key stored in the target.
    let id = hafen_backup::keys::generate_identity();
    std::fs::write(repo_dir.join("hafen-repo-key.age"), hafen_backup::keys::encrypt(std::slice::from_ref(&id.recipient), key().expose().as_bytes(), "key").unwrap()).unwrap();
    let idfile = d.path().join("kit.txt");
    std::fs::write(&idfile, format!("{}\n", id.expose_secret())).unwrap();

    let failing = |args: &[&str]| {
        let log = d.path().join("strace.log");
        let o = Command::new("strace")
            .args(["-f", "-qq", "-o", log.to_str().unwrap(), "-e", "trace=read,pread64,readv,preadv,preadv2", "-e", "inject=read,pread64,readv,preadv,preadv2:error=EIO", "-P"])
            .arg(&pack)
            .arg(env!("CARGO_BIN_EXE_hafen"))
            .args(["restore", "--repo"])
            .arg(&repo_dir)
            .arg("--identity")
            .arg(&idfile)
            .args(args)
            .env("HAFEN_LANG", "en")
            .output()
            .unwrap();
        let (out, err) = (String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string());
        assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
        (o.status.success(), out, err, std::fs::read_to_string(&log).unwrap_or_default())
    };
    let to = d.path().join("second-out");
    let (ok, _, err, traced) = failing(&[&second.id, "--to", to.to_str().unwrap()]);
    assert!(!ok && err.contains(&name[..8]) && err.contains("input/output error"), "the I/O error is not named with its pack {name}:\n{err}");
    assert!(traced.contains("EIO"), "no read of the pack failed, so the test proved nothing:\n{traced}");
    assert!(!to.exists() || walk(&to).is_empty(), "files were written: {:?}", walk(&to));
    let to = d.path().join("first-out");
    let (ok, _, err, _) = failing(&[&first.id, "--to", to.to_str().unwrap()]);
    assert!(ok, "the snapshot that does not need the pack did not restore: {err}");
    assert_eq!(std::fs::read(to.join("volumes/data/a.txt")).unwrap(), std::fs::read(first_vol.join("a.txt")).unwrap());
    assert_eq!(std::fs::read(to.join("volumes/data/sub/b.bin")).unwrap(), std::fs::read(first_vol.join("sub/b.bin")).unwrap());
    let (ok, out, err, _) = failing(&["--check", "--read-data"]);
    assert!(!ok && out.contains(&name[..8]), "the check does not name pack {name}:\n{out}\n{err}");
    let (ok, out, err, _) = failing(&["--list"]);
    assert!(ok && out.contains(&first.id[..8]) && out.contains(&second.id[..8]), "{out}\n{err}");
}

/// The disk fills up during a restore and during an export (a 24 MB ext4 on a loop device,
/// 40 MB of data that does not compress): each stops with the system's reason, leaves nothing
/// behind — no half-restored file, no partial export — and the repository is untouched: the
/// same snapshot restores whole to a disk with room, and the check passes.
#[test]
fn a_disk_that_fills_up_during_a_restore_or_an_export_leaves_nothing_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let repo_dir = d.path().join("repo");
    let repo = Repo::open_or_init(Location::local(&repo_dir), key()).unwrap();
    let big = d.path().join("big");
    std::fs::create_dir_all(&big).unwrap();
    sh(&format!("head -c 40000000 /dev/urandom > {}/random.bin && echo Akte > {}/akte.txt", big.display(), big.display()));
    let snap = repo.backup(vec![Part::Dir { src: big.clone(), dst: "/volumes/data".into() }], "s", &["stack:s".into()], "big").unwrap();
    let (mnt, _guard) = small_disk(d.path());

    let into = mnt.join("restore");
    let err = repo.restore(&snap.id, &[], "", &into).expect_err("the disk is full");
    assert!(matches!(err, RepoError::TargetFull { .. }), "not named as a full disk: {err}");
    assert!(!into.exists() || walk(&into).is_empty(), "a half-restored file was left: {:?}", walk(&into));

    let id = hafen_backup::keys::generate_identity();
    let out = mnt.join("s.tar.zst.age");
    let err = hafen_backup::export::export(&repo, "s", "latest", std::slice::from_ref(&id.recipient), &out, &|_, _| {}).expect_err("the disk is full");
    let text = err.to_string();
    assert!(text.contains("No space left") || text.contains("os error 28") || text.to_lowercase().contains("full"), "{text}");
    assert!(!out.exists() && !mnt.join("s.tar.zst.age.partial").exists(), "an export file was left: {:?}", std::fs::read_dir(&mnt).unwrap().flatten().map(|e| e.file_name()).collect::<Vec<_>>());

    assert!(repo.check(true, None).unwrap().is_empty());
    let roomy = d.path().join("roomy");
    repo.restore(&snap.id, &[], "", &roomy).unwrap();
    assert_eq!(std::fs::read(roomy.join("volumes/data/random.bin")).unwrap(), std::fs::read(big.join("random.bin")).unwrap());
}
