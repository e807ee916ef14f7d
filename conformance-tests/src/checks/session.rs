use std::{sync::Arc, time::Duration};

use session_core::{DynamicData, ExpiryPolicy, Keyring, ManualClock, SessionStorage, SetCookie};

use super::{R, ensure};
use crate::Ctx;

const HOUR: Duration = Duration::from_secs(3600);

fn storage(
    ctx: &Ctx,
    policy: ExpiryPolicy,
) -> Result<(SessionStorage<DynamicData>, Arc<ManualClock>), String> {
    let clock = Arc::new(ManualClock::starting_now());
    let keyring = Keyring::from_secrets(["the conformance suite's own secret, 32+ bytes"])
        .map_err(|e| e.to_string())?;
    let storage = SessionStorage::builder(Arc::clone(&ctx.driver))
        .keyring(keyring)
        .namespace(ctx.key("s:"))
        .clock(clock.clone())
        .expiry(policy)
        .build()
        .map_err(|e| format!("building the session storage: {e}"))?;
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

fn e(context: &'static str) -> impl Fn(session_core::SessionError) -> String {
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
