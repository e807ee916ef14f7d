use session_kit_core::Version;

use super::{R, delete, ensure, get, list_all, put};
use crate::Ctx;

pub(crate) async fn fresh_namespace_is_empty(ctx: &Ctx) -> R {
    for suffix in ["a", "b/c", "session:x", ""] {
        let key = ctx.key(suffix);
        ensure!(
            get(ctx, &key).await?.is_none(),
            "get {key:?} in a fresh namespace found a value"
        );
    }
    if ctx.caps().list {
        let keys = list_all(ctx, &ctx.ns).await?;
        ensure!(
            keys.is_empty(),
            "list of a fresh namespace returned {keys:?}"
        );
    }
    Ok(())
}

pub(crate) async fn put_get_round_trip(ctx: &Ctx) -> R {
    let key = ctx.key("k");
    let version = put(ctx, &key, "hello").await?;
    let entry = ctx.driver.get(&key).await.map_err(super::fail("get"))?;
    let entry = entry.ok_or("get after put found nothing")?;
    ensure!(
        entry.value == "hello",
        "got {:?}, wrote \"hello\"",
        entry.value
    );
    ensure!(
        entry.version == version,
        "get returned version {:?}, put returned {:?}",
        entry.version,
        version
    );
    Ok(())
}

pub(crate) async fn overwrite_replaces_completely(ctx: &Ctx) -> R {
    let key = ctx.key("k");
    put(ctx, &key, vec![b'x'; 1000]).await?;
    let v1 = put(ctx, &key, "ab").await?;
    ensure!(
        get(ctx, &key).await?.as_deref() == Some(&b"ab"[..]),
        "overwrite left a different value"
    );
    let v2 = put(ctx, &key, "ab").await?;
    ensure!(v1 != v2, "two writes returned the same version {v1:?}");
    Ok(())
}

pub(crate) async fn missing_key_get_and_delete(ctx: &Ctx) -> R {
    let key = ctx.key("never-written");
    ensure!(
        get(ctx, &key).await?.is_none(),
        "a key never written was found"
    );
    delete(ctx, &key).await?;
    delete(ctx, &key).await
}

pub(crate) async fn delete_then_get_is_none(ctx: &Ctx) -> R {
    let key = ctx.key("k");
    put(ctx, &key, "v").await?;
    delete(ctx, &key).await?;
    ensure!(
        get(ctx, &key).await?.is_none(),
        "the key is still there after delete"
    );
    Ok(())
}

pub(crate) async fn deletes_are_final(ctx: &Ctx) -> R {
    let key = ctx.key("deleted");
    put(ctx, &key, "old").await?;
    // Reads first, so that a cache or replica holds the value before it is deleted.
    for _ in 0..2 {
        ensure!(
            get(ctx, &key).await?.is_some(),
            "a written key was not readable"
        );
    }
    delete(ctx, &key).await?;
    for read in 1..=5 {
        ensure!(
            get(ctx, &key).await?.is_none(),
            "the deleted key came back on read {read} after the delete"
        );
    }
    if ctx.caps().list {
        let keys = list_all(ctx, &ctx.ns).await?;
        ensure!(keys.is_empty(), "the deleted key is still listed: {keys:?}");
    }
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    ensure!(
        get(ctx, &key).await?.is_none(),
        "the deleted key came back a second after the delete"
    );
    put(ctx, &key, "new").await?;
    ensure!(
        get(ctx, &key).await?.as_deref() == Some(&b"new"[..]),
        "a key written again after a delete did not read back the new value"
    );
    Ok(())
}

pub(crate) async fn versions_are_never_reused(ctx: &Ctx) -> R {
    use std::collections::HashSet;

    use session_kit_core::{ErrorKind, PutOptions, WriteMode};

    let caps = ctx.caps().clone();
    let key = ctx.key("versioned");
    let mut seen: HashSet<Version> = HashSet::new();
    let mut fresh = |v: Version, how: &str| -> R {
        ensure!(
            seen.insert(v.clone()),
            "{how} returned version {v:?}, which this key already had: a version must never be reused"
        );
        Ok(())
    };
    for round in 0..3 {
        let v = put(ctx, &key, "same").await?;
        fresh(v.clone(), &format!("put (round {round})"))?;
        fresh(
            put(ctx, &key, "same").await?,
            "a second put of the same bytes",
        )?;
        delete(ctx, &key).await?;
        if caps.create_only {
            let created = ctx
                .driver
                .put(
                    &key,
                    super::bytes("same"),
                    PutOptions::new().mode(WriteMode::CreateOnly),
                )
                .await
                .map_err(super::fail("create-only put after delete"))?;
            fresh(created, "create-only after delete")?;
            delete(ctx, &key).await?;
        }
        let again = put(ctx, &key, "same").await?;
        fresh(again, "put after delete")?;
        if caps.compare_and_swap {
            super::expect_kind(
                ctx.driver
                    .put(
                        &key,
                        super::bytes("stale"),
                        PutOptions::new().mode(WriteMode::IfVersion(v)),
                    )
                    .await,
                ErrorKind::Conflict,
                "compare-and-swap with a version from before the delete",
            )?;
        }
        delete(ctx, &key).await?;
    }
    Ok(())
}
