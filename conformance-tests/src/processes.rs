//! Checks that need more than one process: create-only and compare-and-swap must hold between
//! processes sharing one backend (a directory, a database file, a server).

use std::{future::Future, process::Command, sync::Arc};

use session_kit_core::{Driver, DriverError, PutOptions, WriteMode, bytes::Bytes};

const CHILD_ENV: &str = "SESSION_CONFORMANCE_CHILD_LOCATION";
const INCREMENTS: u64 = 40;

/// Conflicts in a row after which [`cas_increment`] gives up: each conflict of a correct
/// driver is another worker's increment, and no test makes this many.
const MAX_CONFLICTS: u64 = 10_000;

/// Increments the decimal counter under `key` `times` times, each through a read and a
/// compare-and-swap retried on conflict (yielding in between, as network latency would, so
/// concurrent workers really interleave). Fails, rather than retrying forever, when
/// compare-and-swap with the version just read keeps conflicting (reads that never see the
/// latest write, a version the driver does not compare as it returned it).
pub async fn cas_increment(driver: &dyn Driver, key: &str, times: u64) -> Result<(), String> {
    for _ in 0..times {
        let mut conflicts = 0;
        loop {
            let entry = driver
                .get(key)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("counter vanished")?;
            let n: u64 = std::str::from_utf8(&entry.value)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or("counter is not a number")?;
            tokio::task::yield_now().await;
            let next = Bytes::from((n + 1).to_string());
            match driver
                .put(
                    key,
                    next,
                    PutOptions::new().mode(WriteMode::IfVersion(entry.version)),
                )
                .await
            {
                Ok(_) => break,
                Err(DriverError::Conflict) if conflicts < MAX_CONFLICTS => conflicts += 1,
                Err(DriverError::Conflict) => {
                    return Err(format!(
                        "compare-and-swap with the version just read conflicted {MAX_CONFLICTS} times in a row"
                    ));
                }
                Err(e) => return Err(e.to_string()),
            }
        }
    }
    Ok(())
}

/// Certifies that create-only and compare-and-swap hold between processes: call it from a
/// `#[test]` named `test_name`. It runs that same test again in `processes` child processes,
/// each opening its own driver with `make(location)` on the shared `location`; each child races
/// to create one key and increments a shared counter 40 times through compare-and-swap. Panics
/// unless exactly one child won the race and the counter ends at `processes × 40`.
pub fn cross_process_check<F, Fut>(test_name: &str, location: &str, processes: usize, make: F)
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<Arc<dyn Driver>, DriverError>>,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => panic!("cannot start a Tokio runtime: {e}"),
    };
    let open = |location: String| async {
        match make(location).await {
            Ok(driver) => driver,
            Err(e) => panic!("could not create the driver under test: {e}"),
        }
    };
    if let Ok(shared) = std::env::var(CHILD_ENV) {
        runtime.block_on(async {
            let driver = open(shared).await;
            let won = driver
                .put(
                    "winner",
                    Bytes::new(),
                    PutOptions::new().mode(WriteMode::CreateOnly),
                )
                .await;
            match won {
                Ok(_) => println!("RACE:WON"),
                Err(DriverError::AlreadyExists) => println!("RACE:LOST"),
                Err(e) => panic!("create-only put: {e}"),
            }
            if let Err(e) = cas_increment(driver.as_ref(), "counter", INCREMENTS).await {
                panic!("compare-and-swap increments: {e}");
            }
        });
        return;
    }
    runtime.block_on(async {
        let driver = open(location.to_owned()).await;
        if let Err(e) = driver
            .put("counter", Bytes::from_static(b"0"), PutOptions::new())
            .await
        {
            panic!("writing the counter: {e}");
        }
    });
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => panic!("cannot find the test binary: {e}"),
    };
    let children: Vec<_> = (0..processes)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, location)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start a child process: {e}"))
        })
        .collect();
    let mut winners = 0;
    for child in children {
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("child process: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("RACE:"),
            "a child process failed (is `{test_name}` the name of the calling test?): {stdout}"
        );
        winners += stdout.matches("RACE:WON").count();
    }
    assert_eq!(
        winners, 1,
        "exactly one process must win a create-only race"
    );
    let counter = runtime.block_on(async { open(location.to_owned()).await.get("counter").await });
    let value = match counter {
        Ok(Some(entry)) => String::from_utf8_lossy(&entry.value).into_owned(),
        other => panic!("reading the counter: {other:?}"),
    };
    assert_eq!(
        value,
        (processes as u64 * INCREMENTS).to_string(),
        "lost updates between processes"
    );
}
