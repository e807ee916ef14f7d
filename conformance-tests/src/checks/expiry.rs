use std::time::{Duration, SystemTime};

use session_core::{BelowMinTtl, ErrorKind, PutOptions};

use super::{R, bytes, ensure, expect_kind, get, list_all, put, put_with, ttl_plan};
use crate::Ctx;

fn plan(ctx: &Ctx) -> Result<(Duration, Duration), String> {
    ttl_plan(ctx.caps(), &ctx.options)
}

pub(crate) async fn ttl_expires(ctx: &Ctx) -> R {
    let (ttl, wait) = plan(ctx)?;
    let key = ctx.key("ttl");
    let before = SystemTime::now();
    put_with(ctx, &key, "v", PutOptions::new().ttl(ttl)).await?;
    let entry = ctx.driver.get(&key).await.map_err(super::fail("get"))?;
    let entry = entry.ok_or("a key with a TTL was gone right after the write")?;
    if let Some(at) = entry.expires_at {
        let granularity = ctx.caps().ttl.map(|t| t.granularity).unwrap_or_default();
        let latest = SystemTime::now() + ttl + granularity + Duration::from_secs(1);
        ensure!(
            at >= before && at <= latest,
            "reported expiry {at:?} is not about {ttl:?} from now"
        );
    }
    tokio::time::sleep(wait).await;
    ensure!(
        get(ctx, &key).await?.is_none(),
        "the key was still readable {wait:?} after a {ttl:?} TTL"
    );
    Ok(())
}

pub(crate) async fn overwrite_resets_or_clears_ttl(ctx: &Ctx) -> R {
    let (ttl, wait) = plan(ctx)?;
    let (cleared, reset, plain) = (ctx.key("cleared"), ctx.key("reset"), ctx.key("plain"));
    put_with(ctx, &cleared, "1", PutOptions::new().ttl(ttl)).await?;
    put(ctx, &cleared, "2").await?;
    put_with(ctx, &reset, "1", PutOptions::new().ttl(ttl)).await?;
    put_with(
        ctx,
        &reset,
        "2",
        PutOptions::new().ttl(ttl + Duration::from_secs(120)),
    )
    .await?;
    put(ctx, &plain, "3").await?;
    if let Some(entry) = ctx.driver.get(&cleared).await.map_err(super::fail("get"))? {
        ensure!(
            entry.expires_at.is_none(),
            "overwriting without a TTL left an expiry of {:?}",
            entry.expires_at
        );
    }
    tokio::time::sleep(wait).await;
    ensure!(
        get(ctx, &cleared).await?.as_deref() == Some(&b"2"[..]),
        "overwriting without a TTL did not clear the TTL"
    );
    ensure!(
        get(ctx, &reset).await?.as_deref() == Some(&b"2"[..]),
        "overwriting with a longer TTL did not reset the deadline"
    );
    ensure!(
        get(ctx, &plain).await?.as_deref() == Some(&b"3"[..]),
        "a key without TTL did not persist"
    );
    Ok(())
}

pub(crate) async fn ttl_below_minimum(ctx: &Ctx) -> R {
    let Some(support) = ctx.caps().ttl else {
        return Err("no TTL support declared".into());
    };
    let short = if support.min > Duration::from_millis(1) {
        support.min / 2
    } else {
        Duration::ZERO
    };
    let key = ctx.key("short");
    // Taken before the write: the expiry counts from when the driver wrote, which is later.
    let before = SystemTime::now();
    let result = ctx
        .driver
        .put(&key, bytes("v"), PutOptions::new().ttl(short))
        .await;
    match support.below_min {
        BelowMinTtl::Reject => {
            expect_kind(
                result,
                ErrorKind::Unsupported,
                &format!("put with a {short:?} TTL"),
            )?;
            ensure!(
                get(ctx, &key).await?.is_none(),
                "a refused put wrote the key"
            );
        }
        BelowMinTtl::RoundUp => {
            result.map_err(super::fail(&format!(
                "put with a {short:?} TTL (declared: rounded up)"
            )))?;
            let entry = ctx.driver.get(&key).await.map_err(super::fail("get"))?;
            // A minimum long enough to observe must leave the key readable; a tiny one (1 ms)
            // may already have passed, so the reported expiry is what proves the rounding.
            if support.min >= Duration::from_secs(1) {
                ensure!(
                    entry.is_some(),
                    "a TTL of {short:?} was not rounded up to {:?}",
                    support.min
                );
            }
            if let Some(at) = entry.and_then(|e| e.expires_at) {
                let ttl = at.duration_since(before).unwrap_or_default();
                ensure!(
                    ttl + Duration::from_millis(1) >= support.min,
                    "a TTL of {short:?} was not rounded up to {:?} (it expires after {ttl:?})",
                    support.min
                );
            }
        }
    }
    Ok(())
}

pub(crate) async fn ttl_unsupported_is_rejected(ctx: &Ctx) -> R {
    let key = ctx.key("ttl");
    expect_kind(
        ctx.driver
            .put(
                &key,
                bytes("v"),
                PutOptions::new().ttl(Duration::from_secs(60)),
            )
            .await,
        ErrorKind::Unsupported,
        "put with a TTL",
    )?;
    ensure!(
        get(ctx, &key).await?.is_none(),
        "a refused put wrote the key"
    );
    Ok(())
}

pub(crate) async fn touch_extends_expiry(ctx: &Ctx) -> R {
    let (ttl, wait) = plan(ctx)?;
    let key = ctx.key("touched");
    let version = put_with(ctx, &key, "v", PutOptions::new().ttl(ttl)).await?;
    let first = ctx
        .driver
        .get(&key)
        .await
        .map_err(super::fail("get"))?
        .ok_or("missing after put")?;
    let touched = ctx
        .driver
        .touch(&key, ttl + Duration::from_secs(120))
        .await
        .map_err(super::fail("touch"))?;
    ensure!(touched, "touch of an existing key returned false");
    let second = ctx
        .driver
        .get(&key)
        .await
        .map_err(super::fail("get"))?
        .ok_or("missing after touch")?;
    ensure!(second.value == "v", "touch changed the value");
    ensure!(second.version == version, "touch changed the version");
    match (first.expires_at, second.expires_at) {
        (Some(a), Some(b)) => ensure!(
            b > a,
            "touch did not move the reported expiry ({a:?} -> {b:?})"
        ),
        _ => return Err("a driver with touch must report expires_at on get".into()),
    }
    tokio::time::sleep(wait).await;
    ensure!(
        get(ctx, &key).await?.is_some(),
        "the touched key expired at its old deadline"
    );
    let missing = ctx
        .driver
        .touch(&ctx.key("missing"), ttl)
        .await
        .map_err(super::fail("touch"))?;
    ensure!(!missing, "touch of a missing key returned true");
    ensure!(
        get(ctx, &ctx.key("missing")).await?.is_none(),
        "touch created a key"
    );
    Ok(())
}

pub(crate) async fn touch_unsupported_is_rejected(ctx: &Ctx) -> R {
    let key = ctx.key("k");
    put(ctx, &key, "v").await?;
    expect_kind(
        ctx.driver.touch(&key, Duration::from_secs(60)).await,
        ErrorKind::Unsupported,
        "touch",
    )
}

pub(crate) async fn expired_entries_are_not_listed(ctx: &Ctx) -> R {
    let (ttl, wait) = plan(ctx)?;
    put_with(ctx, &ctx.key("dies"), "v", PutOptions::new().ttl(ttl)).await?;
    put(ctx, &ctx.key("lives"), "v").await?;
    tokio::time::sleep(wait).await;
    let keys = list_all(ctx, &ctx.ns).await?;
    ensure!(
        keys == [ctx.key("lives")],
        "list after expiry returned {keys:?}"
    );
    Ok(())
}
