//! Behaviour specific to the file-system driver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use session_kit_core::{
    Driver, DriverConfig, DriverError, PutOptions, Registry, WriteMode, bytes::Bytes,
};
use session_kit_fs::{FsConfig, FsDriver};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if path.is_dir() {
            walk(&path, out);
        }
    }
}

#[tokio::test]
async fn hostile_keys_create_nothing_outside_the_base() {
    let root = tempfile::tempdir().unwrap();
    let base = root.path().join("base");
    let d = FsDriver::builder(&base).build().unwrap();
    let keys = [
        "..".to_owned(),
        ".".into(),
        "../escape".into(),
        "../../../../../../tmp/escape".into(),
        "/etc/passwd".into(),
        "/absolute".into(),
        "a/../../b".into(),
        "x\0y".into(),
        "C:\\windows\\system32".into(),
        ".lock".into(),
        ".tmp-0000".into(),
        "k".repeat(session_kit_fs::MAX_KEY_LEN),
    ];
    for (i, key) in keys.iter().enumerate() {
        d.put(key, Bytes::from(format!("{i}")), PutOptions::new())
            .await
            .unwrap();
    }
    for (i, key) in keys.iter().enumerate() {
        assert_eq!(
            d.get(key).await.unwrap().unwrap().value,
            format!("{i}"),
            "{key:?}"
        );
    }
    let mut all = Vec::new();
    walk(root.path(), &mut all);
    let mut records = 0;
    for path in &all {
        let rel = path
            .strip_prefix(&base)
            .unwrap_or_else(|_| panic!("{} is outside the base", path.display()));
        let parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let shard_ok = |s: &str| s.len() == 2 && s.chars().all(|c| c.is_ascii_hexdigit());
        match parts.as_slice() {
            [] => {}
            [shard] => assert!(shard_ok(shard), "{rel:?}"),
            [shard, name] if name == ".lock" => assert!(shard_ok(shard)),
            [shard, name] => {
                assert!(
                    shard_ok(shard)
                        && name.len() == 64
                        && name.chars().all(|c| c.is_ascii_hexdigit()),
                    "{rel:?}"
                );
                records += 1;
            }
            _ => panic!("unexpected path {rel:?}"),
        }
    }
    assert_eq!(records, keys.len(), "one file per key, no collisions");
    let mut listed = d.list("", None).await.unwrap().keys;
    listed.sort();
    let mut expected = keys.to_vec();
    expected.sort();
    assert_eq!(
        listed, expected,
        "leading-dot keys are listed like any other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_racing_a_writer_never_see_partial_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = Arc::new(FsDriver::builder(dir.path()).build().unwrap());
    let big = Bytes::from(vec![b'x'; 4 << 20]);
    let small = Bytes::from(vec![b'y'; 3 << 20]);
    d.put("k", big.clone(), PutOptions::new()).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (d, stop, big, small) = (d.clone(), stop.clone(), big.clone(), small.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let v = d.get("k").await.unwrap().expect("never missing").value;
                    assert!(v == big || v == small, "partial value of {} bytes", v.len());
                    n += 1;
                }
                n
            })
        })
        .collect();
    for i in 0..40 {
        d.put(
            "k",
            if i % 2 == 0 {
                small.clone()
            } else {
                big.clone()
            },
            PutOptions::new(),
        )
        .await
        .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let reads: usize = futures_total(readers).await;
    assert!(reads > 0);
    assert_eq!(
        d.list("", None).await.unwrap().keys,
        ["k"],
        "no temporary file is listed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_racing_in_place_updates_never_see_partial_or_missing_values() {
    // Small records are updated in place (two slots); readers take no lock unless they catch
    // a write half done, so this checks the checksum fallback and the locked re-read.
    let dir = tempfile::tempdir().unwrap();
    let d = Arc::new(FsDriver::builder(dir.path()).build().unwrap());
    let values: Vec<Bytes> = (0..4u8)
        .map(|i| Bytes::from(vec![b'a' + i; 100 + 50 * usize::from(i)]))
        .collect();
    d.put("k", values[0].clone(), PutOptions::new())
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (d, stop, values) = (d.clone(), stop.clone(), values.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let v = d.get("k").await.unwrap().expect("never missing").value;
                    assert!(values.contains(&v), "partial value of {} bytes", v.len());
                    n += 1;
                }
                n
            })
        })
        .collect();
    for i in 0..3000 {
        d.put("k", values[i % values.len()].clone(), PutOptions::new())
            .await
            .unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    assert!(futures_total(readers).await > 0);
    let mut files = Vec::new();
    walk(dir.path(), &mut files);
    assert_eq!(
        files
            .iter()
            .filter(|p| p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-"))
            .count(),
        0,
        "updated in place, no temporary files"
    );
}

async fn futures_total(tasks: Vec<tokio::task::JoinHandle<usize>>) -> usize {
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    total
}

#[test]
fn create_only_and_cas_hold_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    session_kit_conformance::cross_process_check(
        "create_only_and_cas_hold_across_processes",
        &dir.path().display().to_string(),
        4,
        |base| async move { Ok(Arc::new(FsDriver::builder(base).build()?) as Arc<dyn Driver>) },
    );
}

#[tokio::test]
async fn sweep_reclaims_expired_files_and_stale_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let d = FsDriver::builder(dir.path()).build().unwrap();
    for i in 0..20 {
        d.put(
            &format!("dies{i}"),
            Bytes::new(),
            PutOptions::new().ttl(Duration::from_millis(1)),
        )
        .await
        .unwrap();
    }
    d.put("lives", Bytes::new(), PutOptions::new())
        .await
        .unwrap();
    d.put(
        "later",
        Bytes::new(),
        PutOptions::new().ttl(Duration::from_secs(600)),
    )
    .await
    .unwrap();
    // A temporary file left by a crash an hour ago, and one being written right now.
    let shard = dir.path().join("00");
    std::fs::create_dir_all(&shard).unwrap();
    let stale = std::fs::File::create(shard.join(".tmp-stale")).unwrap();
    stale
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    std::fs::write(shard.join(".tmp-fresh"), b"in progress").unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;

    let stats = d.sweep().await.unwrap();
    assert_eq!((stats.expired, stats.temp_files), (20, 1));
    let mut files = Vec::new();
    walk(dir.path(), &mut files);
    let records = files
        .iter()
        .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(records, 2, "only live records remain");
    assert!(shard.join(".tmp-fresh").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sweeper_runs_and_stops_with_the_driver() {
    let dir = tempfile::tempdir().unwrap();
    let d = session_kit_core::layers::with_defaults(Arc::new(
        FsDriver::builder(dir.path())
            .sweep_interval(Duration::from_millis(50))
            .build()
            .unwrap(),
    ));
    d.put(
        "dies",
        Bytes::new(),
        PutOptions::new().ttl(Duration::from_millis(1)),
    )
    .await
    .unwrap();
    let count = || {
        let mut files = Vec::new();
        walk(dir.path(), &mut files);
        files
            .iter()
            .filter(|p| p.is_file() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .count()
    };
    assert_eq!(count(), 1);
    for _ in 0..100 {
        if count() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(count(), 0, "the sweeper deleted the expired file");
    // Once its driver is gone, the sweeper must stop: an expired file written by another
    // driver without a sweeper stays for many intervals.
    drop(d);
    let other = FsDriver::builder(dir.path()).build().unwrap();
    other
        .put(
            "stays",
            Bytes::new(),
            PutOptions::new().ttl(Duration::from_millis(1)),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(),
        1,
        "the sweeper kept running after its driver was dropped"
    );
}

#[tokio::test]
async fn corrupt_files_read_as_missing_and_can_be_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let d = FsDriver::builder(dir.path()).build().unwrap();
    d.put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    let mut files = Vec::new();
    walk(dir.path(), &mut files);
    let record = files
        .iter()
        .find(|p| p.is_file() && p.file_name().unwrap().len() == 64)
        .unwrap();
    std::fs::write(record, b"truncated").unwrap();
    assert!(d.get("k").await.unwrap().is_none());
    d.put(
        "k",
        Bytes::from_static(b"again"),
        PutOptions::new().mode(WriteMode::CreateOnly),
    )
    .await
    .unwrap();
    assert_eq!(d.get("k").await.unwrap().unwrap().value, "again");
}

#[tokio::test]
async fn durable_mode_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let d = FsDriver::builder(dir.path()).durable(true).build().unwrap();
    let v = d
        .put(
            "k",
            Bytes::from_static(b"v"),
            PutOptions::new().ttl(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(d.touch("k", Duration::from_secs(120)).await.unwrap());
    assert_eq!(d.get("k").await.unwrap().unwrap().version, v);
    d.delete("k").await.unwrap();
    assert!(d.get("k").await.unwrap().is_none());
}

#[tokio::test]
async fn two_instances_on_one_directory_share_data_and_conditions() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (
        FsDriver::builder(dir.path()).build().unwrap(),
        FsDriver::builder(dir.path()).build().unwrap(),
    );
    let v = a
        .put("k", Bytes::from_static(b"1"), PutOptions::new())
        .await
        .unwrap();
    b.put(
        "k",
        Bytes::from_static(b"2"),
        PutOptions::new().mode(WriteMode::IfVersion(v.clone())),
    )
    .await
    .unwrap();
    let stale = a
        .put(
            "k",
            Bytes::from_static(b"3"),
            PutOptions::new().mode(WriteMode::IfVersion(v)),
        )
        .await;
    assert!(matches!(stale, Err(DriverError::Conflict)));
    assert_eq!(a.get("k").await.unwrap().unwrap().value, "2");
}

#[tokio::test]
async fn selectable_by_config_string() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::new();
    session_kit_fs::register(&mut registry);
    let url = format!(
        "fs://{}?durable=true&sweep_interval=0",
        dir.path().display()
    );
    let d = registry.open(&url).await.unwrap();
    assert!(!d.layers().contains(&"sweep"), "{:?}", d.layers());
    d.put("k", Bytes::from_static(b"v"), PutOptions::new())
        .await
        .unwrap();
    assert!(
        std::fs::read_dir(dir.path()).unwrap().count() > 0,
        "files under the URL's path"
    );

    let json = format!(
        r#"{{"driver":"fs","base":"{}","sweep_interval":"1m"}}"#,
        dir.path().display()
    );
    let d = registry.open(&json).await.unwrap();
    assert!(d.layers().contains(&"sweep"), "{:?}", d.layers());
    assert_eq!(d.get("k").await.unwrap().unwrap().value, "v");
    let plain = format!("fs://{}", dir.path().display());
    let d = registry.open(&plain).await.unwrap();
    assert!(d.layers().contains(&"sweep"), "every 10 minutes by default");

    let config = FsConfig::from_driver_config(&DriverConfig::new("fs")).unwrap();
    assert_eq!(config.base, PathBuf::from(".sessions"));

    let err = registry.open("fs://somehost/x").await.err().unwrap();
    assert!(err.to_string().contains("host"), "{err}");
    let err = registry
        .open(&format!("fs://{}?durable=maybe", dir.path().display()))
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("durable"), "{err}");
    let err = registry
        .open("fs:///tmp/x?colour=blue")
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("colour"), "{err}");
}

#[tokio::test]
async fn an_injected_clock_sets_and_checks_expiry() {
    use session_kit_core::{Clock, ManualClock, driver::unix_millis};
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let d = FsDriver::builder(dir.path())
        .clock(clock.clone())
        .build()
        .unwrap();
    let hour = Duration::from_secs(3600);
    d.put("k", Bytes::from_static(b"v"), PutOptions::new().ttl(hour))
        .await
        .unwrap();
    let expires_at = d.get("k").await.unwrap().unwrap().expires_at.unwrap();
    let expected = unix_millis(clock.now()) + 3_600_000;
    assert!(
        unix_millis(expires_at).abs_diff(expected) <= 1,
        "on the injected clock"
    );
    // An hour passes on the injected clock, none on the wall clock.
    clock.advance(hour);
    assert!(d.get("k").await.unwrap().is_none());
    assert!(!d.touch("k", hour).await.unwrap());
    assert_eq!(d.sweep().await.unwrap().expired, 1);
}
