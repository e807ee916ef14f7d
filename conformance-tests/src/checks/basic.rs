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
