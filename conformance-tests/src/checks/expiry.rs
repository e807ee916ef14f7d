//! TTL, expiry and touch: keys live exactly as long as asked (never shorter, at most the
//! declared granularity longer), whatever the write mode and however long the TTL, and an
//! expired entry is absent for every operation.

use std::time::{Duration, Instant, SystemTime};

use futures::future::{BoxFuture, FutureExt, join_all};
use session_kit_core::{BelowMinTtl, ErrorKind, PutOptions, Version, WriteMode};

use super::{
    R, TtlPlan, bytes, ensure, expect_kind, get, list_all, put, put_with, random_bytes, ttl_plan,
};
use crate::Ctx;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// Reported expiries may be rounded to the millisecond.
const ROUNDING: Duration = Duration::from_millis(2);

fn plan(ctx: &Ctx) -> Result<TtlPlan, String> {
    ttl_plan(ctx.caps(), &ctx.options)
}

/// When a write (or touch) that set a TTL ran: the TTL counts from some moment in between.
#[derive(Clone)]
pub(crate) struct Written {
    start: Instant,
    start_wall: SystemTime,
    end: Instant,
    version: Option<Version>,
}

impl Written {
    async fn timed<T, E>(op: impl Future<Output = Result<T, E>>) -> Result<(Self, T), E> {
        let (start, start_wall) = (Instant::now(), SystemTime::now());
        let out = op.await?;
        let written = Self {
            start,
            start_wall,
            end: Instant::now(),
            version: None,
        };
        Ok((written, out))
    }
}

/// The write modes a TTL must survive.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Via {
    Overwrite,
    CreateOnly,
    UpdateOnly,
    CompareAndSwap,
}

impl Via {
    /// The modes this driver declares.
    fn declared(ctx: &Ctx) -> Vec<Via> {
        let c = ctx.caps();
        [
            (true, Via::Overwrite),
            (c.create_only, Via::CreateOnly),
            (c.update_only, Via::UpdateOnly),
            (c.compare_and_swap, Via::CompareAndSwap),
        ]
        .into_iter()
        .filter_map(|(declared, via)| declared.then_some(via))
        .collect()
    }
}

/// Writes `value` under `key` through `via` (setting up what the mode needs first: an existing
/// value for update-only and compare-and-swap), timing the write itself.
pub(crate) async fn write_via(
    ctx: &Ctx,
    key: &str,
    value: &[u8],
    via: Via,
    ttl: Option<Duration>,
) -> Result<Written, String> {
    let mode = match via {
        Via::Overwrite => WriteMode::Overwrite,
        Via::CreateOnly => WriteMode::CreateOnly,
        Via::UpdateOnly => {
            put(ctx, key, "before").await?;
            WriteMode::UpdateOnly
        }
        Via::CompareAndSwap => WriteMode::IfVersion(put(ctx, key, "before").await?),
    };
    let options = PutOptions::new().ttl_opt(ttl).mode(mode);
    let (mut written, version) =
        Written::timed(ctx.driver.put(key, bytes(value.to_vec()), options))
            .await
            .map_err(super::fail(&format!(
                "{via:?} put of {key:?} with a TTL of {ttl:?}"
            )))?;
    written.version = Some(version);
    Ok(written)
}

/// Checks a reported expiry against a TTL set during `written` and read back by `read_end`.
fn check_reported(
    at: Option<SystemTime>,
    written: &Written,
    read_end: SystemTime,
    ttl: Duration,
    late: Duration,
    what: &str,
) -> R {
    let Some(at) = at else { return Ok(()) };
    let earliest = written.start_wall + ttl - ROUNDING.min(ttl);
    let latest = read_end + ttl + late;
    let show = |t: SystemTime| match t.duration_since(written.start_wall) {
        Ok(d) => format!("{d:?} after the write began"),
        Err(e) => format!("{:?} before the write began", e.duration()),
    };
    ensure!(
        at >= earliest && at <= latest,
        "{what}: reported expiry is {}, expected between {} and {} for a TTL of {ttl:?}",
        show(at),
        show(earliest),
        show(latest)
    );
    Ok(())
}

/// Reads `key` until the TTL set during `written` has passed: any read that finished before
/// the earliest possible deadline and found nothing proves an early expiry. Returns whether a
/// read finished in time to prove anything (on a stalled machine none may have).
async fn watch_until_deadline(
    ctx: &Ctx,
    key: &str,
    written: &Written,
    ttl: Duration,
    late: Duration,
    what: &str,
) -> Result<bool, String> {
    let deadline = written.start + ttl;
    let step = (ttl / 8).clamp(Duration::from_millis(5), Duration::from_secs(5));
    let mut conclusive = false;
    while Instant::now() < deadline {
        let entry = ctx
            .driver
            .get(key)
            .await
            .map_err(super::fail(&format!("get {key:?}")))?;
        let (read_end, read_end_wall) = (Instant::now(), SystemTime::now());
        match entry {
            None if read_end < deadline => {
                return Err(format!(
                    "{what}: expired early: gone {:?} after the write began, with a TTL of {ttl:?}",
                    read_end - written.start
                ));
            }
            None => break,
            Some(entry) => {
                check_reported(entry.expires_at, written, read_end_wall, ttl, late, what)?;
                conclusive |= read_end < deadline;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(step.min(left)).await;
    }
    Ok(conclusive)
}

/// After the TTL and the declared lateness, the key must be gone.
async fn gone_after(
    ctx: &Ctx,
    key: &str,
    written: &Written,
    ttl: Duration,
    late: Duration,
    what: &str,
) -> R {
    tokio::time::sleep_until((written.end + ttl + late).into()).await;
    ensure!(
        get(ctx, key).await?.is_none(),
        "{what}: still readable {:?} after the write ended, with a TTL of {ttl:?} and a declared granularity of {:?}",
        written.end.elapsed(),
        ctx.caps().ttl.map(|t| t.granularity).unwrap_or_default()
    );
    Ok(())
}

/// Runs `attempt(ttl, n)` with `ttl`, then with it doubled, three tries in all, until one
/// proves something (`Ok(true)`). A run in which the TTL passed before the step that needed
/// the key (a stalled machine or backend) proves nothing; a failure ends the check at once.
async fn until_conclusive<F>(ttl: Duration, mut attempt: impl FnMut(Duration, u32) -> F) -> R
where
    F: Future<Output = Result<bool, String>>,
{
    let mut ttl = ttl;
    for n in 0..3 {
        if attempt(ttl, n).await? {
            return Ok(());
        }
        ttl *= 2;
    }
    Err("no read finished before a TTL passed in three attempts: the machine or backend is too slow for these TTLs (run with --slow)".into())
}

/// Writes `key` through `via` with the plan's TTL and proves it readable (with a plausible
/// reported expiry) until the TTL and gone after it plus the granularity. A run on which no
/// read finished before the deadline proves nothing and is repeated with a doubled TTL.
pub(crate) async fn observe_expiry(ctx: &Ctx, key: String, plan: TtlPlan, via: Via) -> R {
    let key = &key;
    until_conclusive(plan.ttl, |ttl, attempt| async move {
        let key = format!("{key}~{attempt}");
        let what = format!("{via:?} put with a TTL of {ttl:?}");
        let written = write_via(ctx, &key, b"expiring", via, Some(ttl)).await?;
        let conclusive = watch_until_deadline(ctx, &key, &written, ttl, plan.late, &what).await?;
        gone_after(ctx, &key, &written, ttl, plan.late, &what).await?;
        Ok(conclusive)
    })
    .await
}

pub(crate) async fn ttl_expires(ctx: &Ctx) -> R {
    observe_expiry(ctx, ctx.key("ttl"), plan(ctx)?, Via::Overwrite).await
}

pub(crate) async fn long_ttls_are_kept(ctx: &Ctx) -> R {
    let late = plan_late(ctx);
    for days in [30, 400] {
        let ttl = DAY * days;
        for via in Via::declared(ctx) {
            let key = ctx.key(&format!("long-{days}-{via:?}"));
            let what = format!("{via:?} put with a TTL of {days} days");
            let written = write_via(ctx, &key, b"remember me", via, Some(ttl)).await?;
            let entry = ctx
                .driver
                .get(&key)
                .await
                .map_err(super::fail(&format!("get {key:?}")))?;
            let entry =
                entry.ok_or_else(|| format!("{what}: the key was gone right after the write"))?;
            ensure!(entry.value == "remember me", "{what}: the value changed");
            check_reported(
                entry.expires_at,
                &written,
                SystemTime::now(),
                ttl,
                late,
                &what,
            )?;
        }
    }
    Ok(())
}

fn plan_late(ctx: &Ctx) -> Duration {
    ctx.caps().ttl.map(|t| t.granularity).unwrap_or_default() + super::MARGIN
}

pub(crate) async fn conditional_writes_expire(ctx: &Ctx) -> R {
    let plan = plan(ctx)?;
    let conditional: Vec<Via> = Via::declared(ctx)
        .into_iter()
        .filter(|v| *v != Via::Overwrite)
        .collect();
    let mut checks: Vec<BoxFuture<'_, R>> = Vec::new();
    for via in conditional {
        checks.push(observe_expiry(ctx, ctx.key(&format!("{via:?}")), plan, via).boxed());
        if via != Via::CreateOnly {
            checks.push(conditional_write_clears_ttl(ctx, plan, via).boxed());
        }
    }
    join_all(checks).await.into_iter().collect()
}

/// A conditional write without a TTL over a key with one leaves it without expiry. A run in
/// which the key's TTL passed before the conditional write was done proves nothing (a
/// stalled machine) and is repeated with a doubled TTL ([`until_conclusive`]).
async fn conditional_write_clears_ttl(ctx: &Ctx, plan: TtlPlan, via: Via) -> R {
    until_conclusive(plan.ttl, |ttl, attempt| async move {
        let key = ctx.key(&format!("clear-{via:?}~{attempt}"));
        conditional_write_clears_ttl_once(ctx, &key, ttl, plan.late, via).await
    })
    .await
}

/// One run of [`conditional_write_clears_ttl`]: `Ok(false)` when it proved nothing.
async fn conditional_write_clears_ttl_once(
    ctx: &Ctx,
    key: &str,
    ttl: Duration,
    late: Duration,
    via: Via,
) -> Result<bool, String> {
    let (first, _) = Written::timed(ctx.driver.put(
        key,
        bytes("expiring"),
        PutOptions::new().ttl(ttl),
    ))
    .await
    .map_err(super::fail("put with a TTL"))?;
    let deadline = first.start + ttl;
    let entry = ctx.driver.get(key).await.map_err(super::fail("get"))?;
    let Some(entry) = entry else {
        let gone = first.start.elapsed();
        ensure!(
            Instant::now() >= deadline,
            "a key with a TTL of {ttl:?} was gone {gone:?} after the write began"
        );
        return Ok(false);
    };
    let mode = match via {
        Via::CompareAndSwap => WriteMode::IfVersion(entry.version),
        _ => WriteMode::UpdateOnly,
    };
    let what = format!("{via:?} put without a TTL");
    let result = Written::timed(
        ctx.driver
            .put(key, bytes("kept"), PutOptions::new().mode(mode)),
    )
    .await;
    let written = match result {
        Ok((written, _)) => written,
        // The key may have expired before the conditional write reached the store.
        Err(e) if e.kind() == ErrorKind::Conflict && Instant::now() >= deadline => {
            return Ok(false);
        }
        Err(e) => return Err(super::fail(&what)(e)),
    };
    tokio::time::sleep_until((written.end + ttl + late).into()).await;
    let entry = ctx.driver.get(key).await.map_err(super::fail("get"))?;
    let entry = entry.ok_or_else(|| {
        format!("a {via:?} write without a TTL did not clear the key's old TTL: the key expired")
    })?;
    ensure!(
        entry.value == "kept" && entry.expires_at.is_none(),
        "after a {via:?} write without a TTL: value {:?}, expiry {:?} (expected \"kept\", none)",
        entry.value,
        entry.expires_at
    );
    Ok(true)
}

pub(crate) async fn expired_entries_are_absent(ctx: &Ctx) -> R {
    let plan = plan(ctx)?;
    let caps = ctx.caps().clone();
    let names = ["create", "update", "cas", "touch", "plain"];
    let mut written = Vec::new();
    for name in names {
        written.push(write_via(ctx, &ctx.key(name), b"old", Via::Overwrite, Some(plan.ttl)).await?);
    }
    let last_end = written
        .iter()
        .map(|w| w.end)
        .max()
        .unwrap_or_else(Instant::now);
    tokio::time::sleep_until((last_end + plan.ttl + plan.late).into()).await;
    // Nothing may be swept in between: the entries are expired but may still be stored.
    let old_cas = written[2].version.clone().ok_or("no version")?;
    for (declared, name, mode, what) in [
        (
            caps.update_only,
            "update",
            WriteMode::UpdateOnly,
            "update-only",
        ),
        (
            caps.compare_and_swap,
            "cas",
            WriteMode::IfVersion(old_cas),
            "compare-and-swap with the expired entry's version",
        ),
    ] {
        if !declared {
            continue;
        }
        let key = ctx.key(name);
        expect_kind(
            ctx.driver
                .put(&key, bytes("new"), PutOptions::new().mode(mode))
                .await,
            ErrorKind::Conflict,
            &format!("{what} over an expired entry"),
        )?;
        ensure!(
            get(ctx, &key).await?.is_none(),
            "{what} revived an expired entry"
        );
    }
    if caps.touch {
        let key = ctx.key("touch");
        let touched = ctx
            .driver
            .touch(&key, DAY)
            .await
            .map_err(super::fail("touch of an expired entry"))?;
        ensure!(!touched, "touch of an expired entry returned true");
        ensure!(
            get(ctx, &key).await?.is_none(),
            "touch revived an expired entry"
        );
    }
    ensure!(
        get(ctx, &ctx.key("plain")).await?.is_none(),
        "an expired entry was readable"
    );
    if caps.create_only {
        let key = ctx.key("create");
        let version = ctx
            .driver
            .put(
                &key,
                bytes("new"),
                PutOptions::new().mode(WriteMode::CreateOnly),
            )
            .await
            .map_err(super::fail(
                "create-only put over an expired entry (it must count as absent)",
            ))?;
        ensure!(
            Some(&version) != written[0].version.as_ref(),
            "create-only over an expired entry returned the expired entry's version {version:?}"
        );
        ensure!(
            get(ctx, &key).await?.as_deref() == Some(&b"new"[..]),
            "create-only over an expired entry did not write"
        );
    }
    Ok(())
}

pub(crate) async fn overwrite_resets_or_clears_ttl(ctx: &Ctx) -> R {
    let plan = plan(ctx)?;
    let (ttl, wait) = (plan.ttl, plan.ttl + plan.late);
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
    let plan = plan(ctx)?;
    until_conclusive(plan.ttl, |ttl, attempt| async move {
        let key = ctx.key(&format!("touched~{attempt}"));
        touch_extends_expiry_once(ctx, &key, ttl, plan.late).await
    })
    .await?;
    let missing = ctx
        .driver
        .touch(&ctx.key("missing"), plan.ttl)
        .await
        .map_err(super::fail("touch"))?;
    ensure!(!missing, "touch of a missing key returned true");
    ensure!(
        get(ctx, &ctx.key("missing")).await?.is_none(),
        "touch created a key"
    );
    Ok(())
}

/// Puts `key` with `ttl`, touches it to a much longer TTL and checks it outlives the first:
/// `Ok(false)` when the first TTL passed before the touch was done (a stalled machine), which
/// proves nothing.
async fn touch_extends_expiry_once(
    ctx: &Ctx,
    key: &str,
    ttl: Duration,
    late: Duration,
) -> Result<bool, String> {
    // Incompressible, not UTF-8: a touch that rewrites the value lossily shows.
    let value = random_bytes(2048);
    let (put, version) = Written::timed(ctx.driver.put(
        key,
        bytes(value.clone()),
        PutOptions::new().ttl(ttl),
    ))
    .await
    .map_err(super::fail("put with a TTL"))?;
    let deadline = put.start + ttl;
    let Some(first) = ctx.driver.get(key).await.map_err(super::fail("get"))? else {
        let gone = put.start.elapsed();
        ensure!(
            Instant::now() >= deadline,
            "a key with a TTL of {ttl:?} was gone {gone:?} after the write began"
        );
        return Ok(false);
    };
    let longer = ttl + Duration::from_secs(120);
    let (touch, touched) = Written::timed(ctx.driver.touch(key, longer))
        .await
        .map_err(super::fail("touch"))?;
    if !touched {
        // The key may have expired before the touch reached the store.
        ensure!(
            Instant::now() >= deadline,
            "touch of an existing key returned false"
        );
        return Ok(false);
    }
    let second = ctx
        .driver
        .get(key)
        .await
        .map_err(super::fail("get"))?
        .ok_or("missing after touch")?;
    ensure!(second.value == value, "touch changed the value's bytes");
    ensure!(second.version == version, "touch changed the version");
    match (first.expires_at, second.expires_at) {
        (Some(a), Some(b)) => ensure!(
            b > a,
            "touch did not move the reported expiry ({a:?} -> {b:?})"
        ),
        _ => return Err("a driver with touch must report expires_at on get".into()),
    }
    check_reported(
        second.expires_at,
        &touch,
        SystemTime::now(),
        longer,
        late,
        "touch",
    )?;
    tokio::time::sleep_until((put.end + ttl + late).into()).await;
    let after = ctx.driver.get(key).await.map_err(super::fail("get"))?;
    let after = after.ok_or("the touched key expired at its old deadline")?;
    ensure!(after.value == value, "the touched key's bytes changed");
    Ok(true)
}

pub(crate) async fn touch_shortens_expiry(ctx: &Ctx) -> R {
    let plan = plan(ctx)?;
    until_conclusive(plan.ttl, |ttl, attempt| async move {
        let key = ctx.key(&format!("shorten~{attempt}"));
        put_with(ctx, &key, "v", PutOptions::new().ttl(DAY)).await?;
        let (touch, touched) = Written::timed(ctx.driver.touch(&key, ttl))
            .await
            .map_err(super::fail("touch"))?;
        ensure!(touched, "touch of an existing key returned false");
        let what = format!("touch from one day down to {ttl:?}");
        let conclusive = watch_until_deadline(ctx, &key, &touch, ttl, plan.late, &what).await?;
        gone_after(ctx, &key, &touch, ttl, plan.late, &what).await?;
        Ok(conclusive)
    })
    .await
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
    let plan = plan(ctx)?;
    put_with(ctx, &ctx.key("dies"), "v", PutOptions::new().ttl(plan.ttl)).await?;
    put(ctx, &ctx.key("lives"), "v").await?;
    tokio::time::sleep(plan.ttl + plan.late).await;
    let keys = list_all(ctx, &ctx.ns).await?;
    ensure!(
        keys == [ctx.key("lives")],
        "list after expiry returned {keys:?}"
    );
    Ok(())
}
