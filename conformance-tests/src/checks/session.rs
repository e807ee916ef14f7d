use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use session_kit_core::{
    DynamicData, ExpiryPolicy, Keyring, ManualClock, SessionStorage, SessionStorageBuilder,
    SetCookie,
};

use super::{MARGIN, R, ensure, session_idle};
use crate::Ctx;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// A session storage on the driver under the check's namespace, which is as long as the
/// default `session:`: keys are 72 bytes.
fn builder(ctx: &Ctx, policy: ExpiryPolicy) -> Result<SessionStorageBuilder<DynamicData>, String> {
    let keyring = Keyring::from_secrets(["the conformance suite's own secret, 32+ bytes"])
        .map_err(|e| e.to_string())?;
    Ok(SessionStorage::builder(Arc::clone(&ctx.driver))
        .keyring(keyring)
        .namespace(ctx.ns.clone())
        .expiry(policy))
}

fn build(builder: SessionStorageBuilder<DynamicData>, ctx: &Ctx) -> Result<SessionStorage, String> {
    builder.build().map_err(|e| {
        format!(
            "building the session storage (session keys are {} bytes under the default namespace; the driver accepts {}): {e}",
            "session:".len() + 64,
            ctx.caps().max_key_len
        )
    })
}

/// A storage on a manual clock: the session layer's time moves only when the check says.
fn storage(
    ctx: &Ctx,
    policy: ExpiryPolicy,
) -> Result<(SessionStorage<DynamicData>, Arc<ManualClock>), String> {
    let clock = Arc::new(ManualClock::starting_now());
    let storage = build(builder(ctx, policy)?.clock(clock.clone()), ctx)?;
    Ok((storage, clock))
}

fn default_policy() -> ExpiryPolicy {
    ExpiryPolicy::new()
        .idle_timeout(Some(HOUR))
        .absolute_timeout(Some(24 * HOUR))
}

/// The `name=value` part of a `Set-Cookie`, as a browser sends it back.
fn cookie(set: &SetCookie) -> String {
    set.as_str()
        .split(';')
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn e(context: &'static str) -> impl Fn(session_kit_core::SessionError) -> String {
    move |err| format!("{context}: {err}")
}

/// Commits a new session holding `user = "ada"` and returns its cookie.
async fn new_session(storage: &SessionStorage) -> Result<String, String> {
    let s = storage.get_session(None);
    s.insert("user", "ada").await.map_err(e("insert"))?;
    s.insert("n", 1).await.map_err(e("insert"))?;
    let set = storage.commit_session(&s).await.map_err(e("commit"))?;
    let set = set.ok_or("committing a new, changed session sent no cookie")?;
    Ok(cookie(&set))
}

async fn user(storage: &SessionStorage, cookie: &str) -> Result<Option<String>, String> {
    storage
        .get_session(Some(cookie))
        .get("user")
        .await
        .map_err(e("get"))
}

pub(crate) async fn session_round_trip(ctx: &Ctx) -> R {
    let (storage, _) = storage(ctx, default_policy())?;
    let c = new_session(&storage).await?;
    let s = storage.get_session(Some(&c));
    ensure!(
        s.get::<String>("user").await.map_err(e("get"))?.as_deref() == Some("ada"),
        "the committed value did not load"
    );
    ensure!(
        s.get::<u32>("n").await.map_err(e("get"))? == Some(1),
        "the committed number did not load"
    );
    ensure!(
        !s.is_new().await.map_err(e("is_new"))?,
        "a stored session loaded as new"
    );
    ensure!(
        storage
            .commit_session(&s)
            .await
            .map_err(e("commit"))?
            .is_none(),
        "a read-only commit sent a cookie"
    );
    Ok(())
}

pub(crate) async fn session_expiry(ctx: &Ctx) -> R {
    let (storage, clock) = storage(ctx, default_policy())?;
    let c = new_session(&storage).await?;
    clock.advance(HOUR + Duration::from_secs(1));
    ensure!(
        user(&storage, &c).await?.is_none(),
        "a session idle past its idle timeout still loaded"
    );

    let policy = ExpiryPolicy::new()
        .idle_timeout(Some(10 * HOUR))
        .absolute_timeout(Some(24 * HOUR));
    let (storage, clock) = self::storage(ctx, policy)?;
    let c = new_session(&storage).await?;
    // Active every 5 hours (each request writes, so the idle deadline moves with the record
    // whatever the driver's own clock says).
    for step in 1..=4 {
        clock.advance(5 * HOUR);
        let s = storage.get_session(Some(&c));
        ensure!(
            s.get::<String>("user").await.map_err(e("get"))?.is_some(),
            "an active session ended early (after {} h)",
            step * 5
        );
        s.insert("step", step).await.map_err(e("insert"))?;
        storage.commit_session(&s).await.map_err(e("commit"))?;
    }
    clock.advance(5 * HOUR);
    ensure!(
        user(&storage, &c).await?.is_none(),
        "an active session outlived its absolute timeout"
    );
    Ok(())
}

pub(crate) async fn session_sliding_expiry(ctx: &Ctx) -> R {
    let idle = session_idle(ctx.caps(), &ctx.options)?;
    let late = ctx.caps().ttl.map(|t| t.granularity).unwrap_or_default() + MARGIN;
    // The real clock: the driver's own expiry (extended by touch where declared) must keep
    // up with the session layer's.
    let policy = ExpiryPolicy::new()
        .idle_timeout(Some(idle))
        .absolute_timeout(Some(idle * 100));
    let storage = build(builder(ctx, policy)?, ctx)?;
    let mut c = new_session(&storage).await?;
    let started = Instant::now();
    // Read-only requests every 2/5 of the idle timeout: by the last one, 6/5 of the idle
    // timeout have passed since the session was written.
    for step in 1..=3 {
        tokio::time::sleep(idle * 2 / 5).await;
        let s = storage.get_session(Some(&c));
        ensure!(
            s.get::<String>("user").await.map_err(e("get"))?.is_some(),
            "a session read every {:?} ended {:?} after it was written (read {step}; idle timeout {idle:?}): the refresh (a touch where declared) did not extend it",
            idle * 2 / 5,
            started.elapsed()
        );
        if let Some(set) = storage.commit_session(&s).await.map_err(e("commit"))? {
            c = cookie(&set);
        }
    }
    tokio::time::sleep(idle + late).await;
    ensure!(
        user(&storage, &c).await?.is_none(),
        "a session left alone for its idle timeout ({idle:?}) still loaded"
    );
    Ok(())
}

pub(crate) async fn session_remember_me(ctx: &Ctx) -> R {
    let policy = ExpiryPolicy::new()
        .idle_timeout(Some(30 * DAY))
        .absolute_timeout(Some(400 * DAY));
    let (storage, clock) = storage(ctx, policy)?;
    let mut c = new_session(&storage).await?;
    ensure!(
        user(&storage, &c).await?.is_some(),
        "a session with a 30-day idle timeout did not load right after it was written"
    );
    // Two returns 29 days apart, each a write (with a 30-day TTL from the driver's own clock;
    // the session layer's clock is the manual one), then a month away.
    for visit in 1..=2 {
        clock.advance(29 * DAY);
        let s = storage.get_session(Some(&c));
        ensure!(
            s.get::<String>("user").await.map_err(e("get"))?.is_some(),
            "a remember-me session did not load {} days after it was written",
            29 * visit
        );
        s.insert("visit", visit).await.map_err(e("insert"))?;
        if let Some(set) = storage.commit_session(&s).await.map_err(e("commit"))? {
            c = cookie(&set);
        }
    }
    clock.advance(31 * DAY);
    ensure!(
        user(&storage, &c).await?.is_none(),
        "a remember-me session idle for 31 days still loaded"
    );
    Ok(())
}

pub(crate) async fn session_logout_replay(ctx: &Ctx) -> R {
    let (storage, _) = storage(ctx, default_policy())?;
    let c = new_session(&storage).await?;
    let s = storage.get_session(Some(&c));
    s.get::<String>("user").await.map_err(e("get"))?;
    storage.destroy_session(&s).await.map_err(e("destroy"))?;
    for (replay, pause) in [(1, 0), (2, 0), (3, 1100)] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let s = storage.get_session(Some(&c));
        ensure!(
            s.get::<String>("user").await.map_err(e("get"))?.is_none(),
            "a logged-out cookie loaded the session again (replay {replay})"
        );
        // The replaying client writes: that must start a new session, not revive the old one.
        s.insert("replayed", replay).await.map_err(e("insert"))?;
        let set = storage.commit_session(&s).await.map_err(e("commit"))?;
        if let Some(set) = set {
            ensure!(
                cookie(&set) != c,
                "a write through a logged-out cookie was given the old cookie back (replay {replay})"
            );
        }
        ensure!(
            user(&storage, &c).await?.is_none(),
            "a logged-out cookie loaded the session again after a replayed write (replay {replay})"
        );
    }
    Ok(())
}

pub(crate) async fn session_regenerate(ctx: &Ctx) -> R {
    let (storage, _) = storage(ctx, default_policy())?;
    let old = new_session(&storage).await?;
    let s = storage.get_session(Some(&old));
    let old_id = s.id().await.map_err(e("id"))?;
    s.regenerate().await.map_err(e("regenerate"))?;
    let set = storage
        .commit_session(&s)
        .await
        .map_err(e("commit"))?
        .ok_or("regenerate sent no cookie")?;
    let new = cookie(&set);
    ensure!(new != old, "regenerate kept the cookie");
    ensure!(
        s.id().await.map_err(e("id"))? != old_id,
        "regenerate kept the id"
    );
    ensure!(
        user(&storage, &new).await?.as_deref() == Some("ada"),
        "regenerate lost the data"
    );
    ensure!(
        user(&storage, &old).await?.is_none(),
        "the old id still loads after regenerate"
    );
    Ok(())
}

pub(crate) async fn session_destroy(ctx: &Ctx) -> R {
    let (storage, _) = storage(ctx, default_policy())?;
    let c = new_session(&storage).await?;
    let s = storage.get_session(Some(&c));
    let removal = storage.destroy_session(&s).await.map_err(e("destroy"))?;
    ensure!(
        removal.is_removal(),
        "destroy_session did not remove the cookie: {removal:?}"
    );
    let again = storage.get_session(Some(&c));
    ensure!(
        again.is_new().await.map_err(e("is_new"))?,
        "a destroyed session loaded again"
    );
    ensure!(
        again
            .get::<String>("user")
            .await
            .map_err(e("get"))?
            .is_none(),
        "a destroyed session's data loaded again"
    );
    Ok(())
}

pub(crate) async fn session_destroy_beats_concurrent_commit(ctx: &Ctx) -> R {
    let (storage, _) = storage(ctx, default_policy())?;
    let c = new_session(&storage).await?;
    let (a, b) = (storage.get_session(Some(&c)), storage.get_session(Some(&c)));
    b.get::<String>("user").await.map_err(e("get"))?;
    storage.destroy_session(&a).await.map_err(e("destroy"))?;
    b.insert("late", true).await.map_err(e("insert"))?;
    let set = storage.commit_session(&b).await.map_err(e("late commit"))?;
    ensure!(
        set.as_ref().is_none_or(SetCookie::is_removal),
        "a commit after destroy issued a session cookie"
    );
    ensure!(
        user(&storage, &c).await?.is_none(),
        "a commit after destroy brought the session back"
    );
    Ok(())
}

pub(crate) async fn session_overlapping_commits(ctx: &Ctx) -> R {
    // Two storages on the driver are two app servers: their commits meet in the store (one
    // storage combines its own overlapping commits before they reach the driver).
    let (other, _) = storage(ctx, default_policy())?;
    let (storage, _) = storage(ctx, default_policy())?;
    let c = new_session(&storage).await?;
    let (r1, r2) = (storage.get_session(Some(&c)), other.get_session(Some(&c)));
    r1.get::<String>("user").await.map_err(e("get"))?;
    r2.get::<String>("user").await.map_err(e("get"))?;
    r1.insert("a", 1).await.map_err(e("insert"))?;
    r2.insert("b", 2).await.map_err(e("insert"))?;
    for s in [&r1, &r2] {
        s.update(|d| {
            let hits = d.get("hits").and_then(|v| v.as_u64()).unwrap_or(0);
            d.insert("hits".into(), (hits + 1).into());
        })
        .await
        .map_err(e("update"))?;
    }
    storage
        .commit_session(&r1)
        .await
        .map_err(e("first commit"))?;
    other
        .commit_session(&r2)
        .await
        .map_err(e("second commit"))?;
    let s = storage.get_session(Some(&c));
    let (a, b, n) = (
        s.get::<u32>("a").await.map_err(e("get"))?,
        s.get::<u32>("b").await.map_err(e("get"))?,
        s.get::<u32>("hits").await.map_err(e("get"))?,
    );
    ensure!(
        a == Some(1) && b == Some(2),
        "after overlapping commits from two storages a={a:?} b={b:?}: an update was lost"
    );
    ensure!(
        n == Some(2),
        "two overlapping increments from two storages left {n:?}, not 2: compare-and-swap did not catch the second"
    );
    ensure!(
        user(&storage, &c).await?.as_deref() == Some("ada"),
        "overlapping commits lost untouched data"
    );
    Ok(())
}

pub(crate) async fn session_flash_once(ctx: &Ctx) -> R {
    let (storage, _) = storage(ctx, default_policy())?;
    let s = storage.get_session(None);
    s.flash("notice", "saved").await.map_err(e("flash"))?;
    ensure!(
        s.take_flash::<String>("notice")
            .await
            .map_err(e("take_flash"))?
            .is_none(),
        "a flash was readable in the request that set it"
    );
    let c = cookie(
        &storage
            .commit_session(&s)
            .await
            .map_err(e("commit"))?
            .ok_or("a flash sent no cookie")?,
    );
    let s = storage.get_session(Some(&c));
    ensure!(
        s.take_flash::<String>("notice")
            .await
            .map_err(e("take_flash"))?
            .as_deref()
            == Some("saved"),
        "the flash was not readable on the next request"
    );
    ensure!(
        s.take_flash::<String>("notice")
            .await
            .map_err(e("take_flash"))?
            .is_none(),
        "a flash was readable twice in one request"
    );
    storage.commit_session(&s).await.map_err(e("commit"))?;
    let s = storage.get_session(Some(&c));
    ensure!(
        s.take_flash::<String>("notice")
            .await
            .map_err(e("take_flash"))?
            .is_none(),
        "a consumed flash came back"
    );
    Ok(())
}
