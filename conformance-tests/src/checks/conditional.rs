use std::{collections::HashSet, sync::Arc};

use session_kit_core::{DriverError, ErrorKind, PutOptions, WriteMode};

use super::{R, bytes, ensure, expect_kind, get, list_all, put, put_many};
use crate::Ctx;

fn mode(m: WriteMode) -> PutOptions {
    PutOptions::new().mode(m)
}

pub(crate) async fn create_only(ctx: &Ctx) -> R {
    let key = ctx.key("once");
    ctx.driver
        .put(&key, bytes("first"), mode(WriteMode::CreateOnly))
        .await
        .map_err(super::fail("first create-only put"))?;
    expect_kind(
        ctx.driver
            .put(&key, bytes("second"), mode(WriteMode::CreateOnly))
            .await,
        ErrorKind::AlreadyExists,
        "second create-only put",
    )?;
    ensure!(
        get(ctx, &key).await?.as_deref() == Some(&b"first"[..]),
        "a refused create-only put changed the value"
    );
    Ok(())
}

pub(crate) async fn create_only_race(ctx: &Ctx) -> R {
    const ROUNDS: usize = 32;
    const RACERS: usize = 8;
    for round in 0..ROUNDS {
        let key = ctx.key(&format!("race{round}"));
        // Released together: a driver that checks, then writes, lets several through.
        let start = Arc::new(tokio::sync::Barrier::new(RACERS));
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let (driver, key, start) =
                    (Arc::clone(&ctx.driver), key.clone(), Arc::clone(&start));
                tokio::spawn(async move {
                    start.wait().await;
                    driver
                        .put(&key, bytes(format!("{i}")), mode(WriteMode::CreateOnly))
                        .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for (i, task) in tasks.into_iter().enumerate() {
            match task.await.map_err(|e| format!("task: {e}"))? {
                Ok(_) => winners.push(i.to_string()),
                Err(DriverError::AlreadyExists) => {}
                Err(e) => return Err(format!("racing create-only put: unexpected {e}")),
            }
        }
        ensure!(
            winners.len() == 1,
            "round {round}: {} of {RACERS} racing create-only writes succeeded",
            winners.len()
        );
        let stored = get(ctx, &key).await?;
        ensure!(
            stored.as_deref() == Some(winners[0].as_bytes()),
            "round {round}: the winner wrote {:?} but the key holds {stored:?}",
            winners[0]
        );
    }
    Ok(())
}

pub(crate) async fn update_only(ctx: &Ctx) -> R {
    let key = ctx.key("upd");
    expect_kind(
        ctx.driver
            .put(&key, bytes("v"), mode(WriteMode::UpdateOnly))
            .await,
        ErrorKind::Conflict,
        "update-only put of a missing key",
    )?;
    ensure!(
        get(ctx, &key).await?.is_none(),
        "a refused update-only put created the key"
    );
    put(ctx, &key, "v1").await?;
    ctx.driver
        .put(&key, bytes("v2"), mode(WriteMode::UpdateOnly))
        .await
        .map_err(super::fail("update-only put of an existing key"))?;
    ensure!(
        get(ctx, &key).await?.as_deref() == Some(&b"v2"[..]),
        "update-only put did not write"
    );
    Ok(())
}

pub(crate) async fn compare_and_swap(ctx: &Ctx) -> R {
    let key = ctx.key("cas");
    let v1 = put(ctx, &key, "1").await?;
    let v2 = ctx
        .driver
        .put(&key, bytes("2"), mode(WriteMode::IfVersion(v1.clone())))
        .await
        .map_err(super::fail("CAS with the current version"))?;
    ensure!(v2 != v1, "CAS returned the old version");
    let entry = ctx
        .driver
        .get(&key)
        .await
        .map_err(super::fail("get"))?
        .ok_or("missing after CAS")?;
    ensure!(
        entry.version == v2,
        "get returned {:?}, CAS returned {v2:?}",
        entry.version
    );
    expect_kind(
        ctx.driver
            .put(&key, bytes("3"), mode(WriteMode::IfVersion(v1)))
            .await,
        ErrorKind::Conflict,
        "CAS with a stale version",
    )?;
    ensure!(
        get(ctx, &key).await?.as_deref() == Some(&b"2"[..]),
        "a refused CAS changed the value"
    );
    let missing = ctx.key("cas-missing");
    expect_kind(
        ctx.driver
            .put(&missing, bytes("x"), mode(WriteMode::IfVersion(v2)))
            .await,
        ErrorKind::Conflict,
        "CAS on a missing key",
    )?;
    ensure!(
        get(ctx, &missing).await?.is_none(),
        "a refused CAS created the key"
    );
    Ok(())
}

pub(crate) async fn compare_and_swap_race(ctx: &Ctx) -> R {
    const WORKERS: u64 = 4;
    const INCREMENTS: u64 = 25;
    let key = ctx.key("counter");
    put(ctx, &key, "0").await?;
    let start = Arc::new(tokio::sync::Barrier::new(WORKERS as usize));
    let tasks: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (driver, key, start) = (Arc::clone(&ctx.driver), key.clone(), Arc::clone(&start));
            tokio::spawn(async move {
                start.wait().await;
                crate::cas_increment(driver.as_ref(), &key, INCREMENTS).await
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| format!("task: {e}"))??;
    }
    let expected = (WORKERS * INCREMENTS).to_string();
    let got = get(ctx, &key).await?;
    ensure!(
        got.as_deref() == Some(expected.as_bytes()),
        "counter ended at {got:?}, expected {expected}: lost updates"
    );
    Ok(())
}

pub(crate) async fn unsupported_write_modes_are_rejected(ctx: &Ctx) -> R {
    let caps = ctx.caps().clone();
    let existing = ctx.key("existing");
    let version = put(ctx, &existing, "v").await?;
    let modes = [
        (caps.create_only, WriteMode::CreateOnly),
        (caps.update_only, WriteMode::UpdateOnly),
        (caps.compare_and_swap, WriteMode::IfVersion(version)),
    ];
    for (declared, m) in modes {
        if declared {
            continue;
        }
        let fresh = ctx.key(&format!("{m:?}").replace(['(', ')', '"', ' '], "_"));
        expect_kind(
            ctx.driver.put(&fresh, bytes("x"), mode(m.clone())).await,
            ErrorKind::Unsupported,
            &format!("{m:?} on a missing key"),
        )?;
        ensure!(
            get(ctx, &fresh).await?.is_none(),
            "a refused {m:?} put wrote the key"
        );
        expect_kind(
            ctx.driver.put(&existing, bytes("x"), mode(m.clone())).await,
            ErrorKind::Unsupported,
            &format!("{m:?} on an existing key"),
        )?;
    }
    ensure!(
        get(ctx, &existing).await?.as_deref() == Some(&b"v"[..]),
        "a refused put changed the value"
    );
    Ok(())
}

pub(crate) async fn concurrent_distinct_writes(ctx: &Ctx) -> R {
    let keys: Vec<String> = (0..64).map(|i| ctx.key(&format!("k{i:02}"))).collect();
    put_many(ctx, &keys).await?;
    for key in &keys {
        ensure!(
            get(ctx, key).await?.as_deref() == Some(key.as_bytes()),
            "{key:?} is missing or wrong after concurrent writes"
        );
    }
    Ok(())
}

pub(crate) async fn concurrent_same_key_writes(ctx: &Ctx) -> R {
    let key = ctx.key("same");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (driver, key) = (Arc::clone(&ctx.driver), key.clone());
            tokio::spawn(async move {
                driver
                    .put(&key, bytes(format!("writer {i}")), PutOptions::new())
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await
            .map_err(|e| format!("task: {e}"))?
            .map_err(super::fail("concurrent put"))?;
    }
    let written: HashSet<String> = (0..16).map(|i| format!("writer {i}")).collect();
    let got = get(ctx, &key)
        .await?
        .ok_or("no value after concurrent writes")?;
    let got = String::from_utf8_lossy(&got).into_owned();
    ensure!(
        written.contains(&got),
        "final value {got:?} is none of the written values"
    );
    Ok(())
}

pub(crate) async fn namespaces_are_isolated(ctx: &Ctx) -> R {
    let (a, b) = (ctx.key("ns-a/"), ctx.key("ns-b/"));
    for (ns, value) in [(&a, "from a"), (&b, "from b")] {
        for k in ["shared", "only"] {
            put(ctx, &format!("{ns}{k}"), value).await?;
        }
    }
    ensure!(
        get(ctx, &format!("{a}shared")).await?.as_deref() == Some(&b"from a"[..]),
        "namespace a sees b's value"
    );
    ensure!(
        get(ctx, &format!("{b}shared")).await?.as_deref() == Some(&b"from b"[..]),
        "namespace b sees a's value"
    );
    if ctx.caps().list {
        let listed = list_all(ctx, &a).await?;
        ensure!(
            listed == [format!("{a}only"), format!("{a}shared")],
            "list of namespace a returned {listed:?}"
        );
        ctx.driver.clear(&a).await.map_err(super::fail("clear"))?;
        ensure!(
            list_all(ctx, &a).await?.is_empty(),
            "clear left keys in namespace a"
        );
        ensure!(
            list_all(ctx, &b).await?.len() == 2,
            "clearing namespace a removed keys of namespace b"
        );
    }
    Ok(())
}
