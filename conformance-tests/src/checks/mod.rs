//! Every check, with the capability it needs.

mod basic;
mod conditional;
mod expiry;
mod keys;
mod listing;
mod sequences;
mod session;
mod values;

use std::time::Duration;

use futures::StreamExt;
use session_kit_core::{Capabilities, DriverError, ErrorKind, PutOptions, Version, bytes::Bytes};

use crate::{Check, Ctx, Options};

pub(crate) type R = Result<(), String>;

/// Returns `Err(message)` from the check unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}
pub(crate) use ensure;

macro_rules! check {
    ($module:ident :: $name:ident, $skip:expr, $description:literal) => {
        Check {
            name: stringify!($name),
            description: $description,
            skip_unless: $skip,
            run: |ctx| Box::pin($module::$name(ctx)),
        }
    };
}

pub(crate) static ALL: &[Check] = &[
    check!(
        basic::fresh_namespace_is_empty,
        always,
        "in a fresh namespace every get is none and list is empty"
    ),
    check!(
        basic::put_get_round_trip,
        always,
        "put then get returns identical bytes and the version put returned"
    ),
    check!(
        basic::overwrite_replaces_completely,
        always,
        "a shorter value written over a longer one leaves no tail"
    ),
    check!(
        basic::missing_key_get_and_delete,
        always,
        "get of a missing key is Ok(None); delete of a missing key is Ok"
    ),
    check!(
        basic::delete_then_get_is_none,
        always,
        "after delete, get is none"
    ),
    check!(
        basic::deletes_are_final,
        always,
        "a deleted key stays deleted: on five reads in a row, after a second, and in listings"
    ),
    check!(
        basic::versions_are_never_reused,
        always,
        "every write returns a version the key never had, also after delete and re-create; a stale compare-and-swap fails"
    ),
    check!(
        sequences::random_operations_match_a_model,
        always,
        "400 random gets, writes (each declared mode, with and without TTL), deletes, touches and lists on three keys, each change read back, answer as a model of the contract does; a failure names its seed and the operations"
    ),
    check!(
        keys::empty_key_is_invalid,
        always,
        "an empty key is a clean InvalidKey error"
    ),
    check!(
        keys::unicode_and_punctuation_keys,
        always,
        "unicode, emoji, spaces and punctuation keys round-trip and can be deleted"
    ),
    check!(
        keys::similar_keys_are_distinct,
        always,
        "a/b, a:b, a%2Fb, %48%49 vs HI, a?x=1 vs a?x=2, Key vs key are distinct keys"
    ),
    check!(
        keys::keys_are_not_normalised,
        always,
        "keys differing only by spaces, Unicode normalisation (NFC/NFD/NFKC), a trailing / or a #, ?, % suffix are distinct"
    ),
    check!(
        keys::traversal_keys_are_plain_keys,
        always,
        "path-like keys (.., ../x, /abs, x/../../y) are distinct plain keys"
    ),
    check!(
        keys::control_character_keys,
        always,
        "NUL and control characters round-trip or are InvalidKey, never truncated"
    ),
    check!(
        keys::max_length_keys,
        always,
        "a key of the declared maximum length works; one byte more is InvalidKey"
    ),
    check!(
        keys::long_keys_differ_at_the_end,
        always,
        "keys of the maximum length that differ only in their last bytes are distinct (no truncation or prefix hashing)"
    ),
    check!(
        keys::random_keys_at_max_length,
        always,
        "incompressible random keys of the maximum length round-trip"
    ),
    check!(
        keys::prefix_keys_coexist,
        always,
        "a key and a longer key it prefixes (a, a/b) coexist"
    ),
    check!(
        values::empty_value_round_trips,
        always,
        "an empty value round-trips and differs from a missing key"
    ),
    check!(
        values::binary_values_round_trip,
        always,
        "binary values (0x00, 0xFF, invalid UTF-8, every byte) round-trip"
    ),
    check!(
        values::values_are_stored_verbatim,
        always,
        "values are never trimmed or normalised: whitespace, newlines, BOM, JSON-looking text"
    ),
    check!(
        values::large_values,
        always,
        "random values up to the maximum (at least 1 MiB) round-trip byte for byte; one byte more is ValueTooLarge"
    ),
    check!(
        values::reads_never_see_torn_writes,
        always,
        "reads racing writes see a whole old or new value; no temporary key appears"
    ),
    check!(
        expiry::ttl_expires,
        needs_ttl_wait,
        "a key with a sub-second TTL is readable until its TTL, gone after TTL + granularity, with an accurate reported expiry"
    ),
    check!(
        expiry::long_ttls_are_kept,
        needs_ttl,
        "30- and 400-day TTLs, through every declared write mode, keep the key with an accurate reported expiry"
    ),
    check!(
        expiry::conditional_writes_expire,
        needs_ttl_wait_and_a_conditional_mode,
        "create-only, update-only and compare-and-swap writes apply their TTL (and clear it when given none)"
    ),
    check!(
        expiry::overwrite_resets_or_clears_ttl,
        needs_ttl_wait,
        "no TTL persists; overwriting without a TTL clears it; a new TTL resets it"
    ),
    check!(
        expiry::expired_entries_are_absent,
        needs_ttl_wait,
        "an expired entry is absent for every operation: create-only succeeds, update-only, compare-and-swap and touch fail"
    ),
    check!(
        expiry::ttl_below_minimum,
        needs_ttl,
        "a TTL below the minimum is rejected or rounded up, as declared"
    ),
    check!(
        expiry::ttl_unsupported_is_rejected,
        needs_no_ttl,
        "without native TTL, a put with a TTL is Unsupported and writes nothing"
    ),
    check!(
        expiry::touch_extends_expiry,
        needs_touch_wait,
        "touch extends the expiry without changing value bytes or version; touch of a missing key is false"
    ),
    check!(
        expiry::touch_shortens_expiry,
        needs_touch_wait,
        "touch with a shorter TTL shortens the expiry"
    ),
    check!(
        expiry::touch_unsupported_is_rejected,
        needs_no_touch,
        "without touch, touch is Unsupported"
    ),
    check!(
        expiry::expired_entries_are_not_listed,
        needs_ttl_wait_and_list,
        "listing never includes expired keys"
    ),
    check!(
        conditional::create_only,
        needs_create_only,
        "create-only: the first write wins, the second is AlreadyExists and changes nothing"
    ),
    check!(
        conditional::create_only_race,
        needs_create_only,
        "32 rounds of 8 tasks released together racing to create one key: exactly one wins each"
    ),
    check!(
        conditional::update_only,
        needs_update_only,
        "update-only on a missing key is Conflict and creates nothing"
    ),
    check!(
        conditional::compare_and_swap,
        needs_cas,
        "compare-and-swap: the matching version wins, a stale or missing one is Conflict"
    ),
    check!(
        conditional::compare_and_swap_race,
        needs_cas,
        "4 workers released together x 25 increments through CAS retry loops end at exactly 100"
    ),
    check!(
        conditional::unsupported_write_modes_are_rejected,
        needs_a_missing_mode,
        "an undeclared write mode is Unsupported and writes nothing"
    ),
    check!(
        conditional::concurrent_distinct_writes,
        always,
        "64 tasks writing distinct keys: all present afterwards"
    ),
    check!(
        conditional::concurrent_same_key_writes,
        always,
        "16 tasks writing one key: the final value is one of those written"
    ),
    check!(
        conditional::namespaces_are_isolated,
        always,
        "two namespaces never see each other's keys; clearing one leaves the other"
    ),
    check!(
        listing::list_by_prefix,
        needs_list,
        "list returns exactly the keys starting with the raw prefix (foo vs foobar, not keys that merely contain it)"
    ),
    check!(
        listing::list_pages,
        needs_list,
        "1100 keys (more than one backend page) all come back once, and no page strays outside the prefix"
    ),
    check!(
        listing::prefixes_end_where_they_say,
        needs_list,
        "list and clear of ns-a/ leave ns-ab/ and ns-a alone"
    ),
    check!(
        listing::wildcards_in_prefixes_are_literal,
        needs_list,
        "SQL LIKE (_ %), glob (* ? [ ]) and regex characters in a prefix match only themselves, in list and clear"
    ),
    check!(
        listing::clear_by_prefix,
        needs_list,
        "clear on an empty namespace succeeds twice and counts 0; clear removes and counts every key"
    ),
    check!(
        listing::list_unsupported_is_rejected,
        needs_no_list,
        "without list, list is Unsupported"
    ),
    check!(
        session::session_round_trip,
        always,
        "session: commit, then load with the returned cookie, gives the same data"
    ),
    check!(
        session::session_expiry,
        always,
        "session: idle and absolute timeouts load as a new session"
    ),
    check!(
        session::session_sliding_expiry,
        needs_session_idle_wait,
        "session: read-only requests (a touch where declared) keep a session alive past its first idle deadline, in real time"
    ),
    check!(
        session::session_remember_me,
        always,
        "session: a 30-day idle, 400-day absolute session loads, and again 29 days later"
    ),
    check!(
        session::session_regenerate,
        always,
        "session: regenerate gives a new id and the old id no longer loads"
    ),
    check!(
        session::session_destroy,
        always,
        "session: a destroyed session cannot be loaded again"
    ),
    check!(
        session::session_logout_replay,
        always,
        "session: a logged-out cookie replayed with writes, at once and a second later, never loads the session"
    ),
    check!(
        session::session_destroy_beats_concurrent_commit,
        needs_conditional_update,
        "session: a request committing after a concurrent destroy does not bring the session back"
    ),
    check!(
        session::session_overlapping_commits,
        needs_cas,
        "session: overlapping requests on two app servers keep every change (different keys, and two increments of one)"
    ),
    check!(
        session::session_flash_once,
        always,
        "session: a flash value is read exactly once"
    ),
];

type Skip = Option<String>;

fn always(_: &Capabilities, _: &Options) -> Skip {
    None
}

fn unless(ok: bool, reason: &str) -> Skip {
    (!ok).then(|| reason.to_owned())
}

fn needs_ttl(c: &Capabilities, _: &Options) -> Skip {
    unless(c.ttl.is_some(), "the driver declares no native TTL")
}

fn needs_no_ttl(c: &Capabilities, _: &Options) -> Skip {
    unless(
        c.ttl.is_none(),
        "the driver declares native TTL (covered by the TTL checks)",
    )
}

/// How much later than its TTL plus the declared granularity a key may still be read: the time
/// between the suite's clock readings and the backend's.
pub(crate) const MARGIN: Duration = Duration::from_millis(30);

/// The TTL the expiry checks write, and how late after it the key must be gone.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TtlPlan {
    /// The TTL: under a second where the declared minimum allows (rounding to whole seconds
    /// shows), never below the minimum.
    pub(crate) ttl: Duration,
    /// The declared granularity plus [`MARGIN`].
    pub(crate) late: Duration,
}

/// The TTL plan, or why waiting for it is too slow.
pub(crate) fn ttl_plan(c: &Capabilities, o: &Options) -> Result<TtlPlan, String> {
    let ttl_caps = c.ttl.ok_or("the driver declares no native TTL")?;
    let ttl = ttl_caps.min.max(Duration::from_millis(450));
    let late = ttl_caps.granularity + MARGIN;
    let wait = ttl + late;
    if wait > o.max_wait && !o.slow {
        return Err(format!(
            "slow: needs a {wait:?} wait (minimum TTL {:?}); enable slow checks with SESSION_CONFORMANCE_SLOW=1 or --slow",
            ttl_caps.min
        ));
    }
    Ok(TtlPlan { ttl, late })
}

fn needs_ttl_wait(c: &Capabilities, o: &Options) -> Skip {
    ttl_plan(c, o).err()
}

fn needs_touch_wait(c: &Capabilities, o: &Options) -> Skip {
    unless(c.touch, "the driver declares no touch").or_else(|| ttl_plan(c, o).err())
}

fn needs_ttl_wait_and_list(c: &Capabilities, o: &Options) -> Skip {
    needs_list(c, o).or_else(|| ttl_plan(c, o).err())
}

fn needs_ttl_wait_and_a_conditional_mode(c: &Capabilities, o: &Options) -> Skip {
    unless(
        c.create_only || c.update_only || c.compare_and_swap,
        "the driver declares no conditional write mode",
    )
    .or_else(|| ttl_plan(c, o).err())
}

/// The wait of a session check that lives through a real idle timeout.
pub(crate) fn session_idle(c: &Capabilities, o: &Options) -> Result<Duration, String> {
    let min = c.ttl.map(|t| t.min).unwrap_or_default();
    let idle = min.max(Duration::from_millis(1200));
    // Reads at 3 intervals of 2/5 of the idle timeout, then the idle timeout itself.
    let wait = idle * 11 / 5;
    if wait > o.max_wait * 2 && !o.slow {
        return Err(format!(
            "slow: lives through two idle timeouts of {idle:?} (minimum TTL {min:?}); enable slow checks with SESSION_CONFORMANCE_SLOW=1 or --slow"
        ));
    }
    Ok(idle)
}

fn needs_session_idle_wait(c: &Capabilities, o: &Options) -> Skip {
    session_idle(c, o).err()
}

fn needs_no_touch(c: &Capabilities, _: &Options) -> Skip {
    unless(
        !c.touch,
        "the driver declares touch (covered by touch_extends_expiry)",
    )
}

fn needs_create_only(c: &Capabilities, _: &Options) -> Skip {
    unless(c.create_only, "the driver declares no create-only writes")
}

fn needs_update_only(c: &Capabilities, _: &Options) -> Skip {
    unless(c.update_only, "the driver declares no update-only writes")
}

fn needs_cas(c: &Capabilities, _: &Options) -> Skip {
    unless(
        c.compare_and_swap,
        "the driver declares no compare-and-swap (sessions are last-write-wins)",
    )
}

fn needs_conditional_update(c: &Capabilities, _: &Options) -> Skip {
    unless(
        c.compare_and_swap || c.update_only,
        "the driver declares neither compare-and-swap nor update-only, so a late commit can recreate a destroyed session",
    )
}

fn needs_a_missing_mode(c: &Capabilities, _: &Options) -> Skip {
    unless(
        !(c.create_only && c.update_only && c.compare_and_swap),
        "the driver declares every write mode",
    )
}

fn needs_list(c: &Capabilities, _: &Options) -> Skip {
    unless(c.list, "the driver declares no list")
}

fn needs_no_list(c: &Capabilities, _: &Options) -> Skip {
    unless(
        !c.list,
        "the driver declares list (covered by the list checks)",
    )
}

// Helpers shared by the checks.

/// `n` random bytes: incompressible, almost surely not UTF-8.
pub(crate) fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::rng().fill_bytes(&mut v);
    v
}

/// `n` random printable ASCII characters (`!` to `~`): an incompressible key.
pub(crate) fn random_printable(n: usize) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(rng.random_range(b'!'..=b'~')))
        .collect()
}

pub(crate) fn bytes(v: impl Into<Vec<u8>>) -> Bytes {
    Bytes::from(v.into())
}

pub(crate) fn fail(what: &str) -> impl FnOnce(DriverError) -> String + '_ {
    move |e| format!("{what}: unexpected error {e} ({:?})", e.kind())
}

pub(crate) async fn put(
    ctx: &Ctx,
    key: &str,
    value: impl Into<Vec<u8>>,
) -> Result<Version, String> {
    ctx.driver
        .put(key, bytes(value), PutOptions::new())
        .await
        .map_err(fail(&format!("put {key:?}")))
}

pub(crate) async fn put_with(
    ctx: &Ctx,
    key: &str,
    value: impl Into<Vec<u8>>,
    options: PutOptions,
) -> Result<Version, String> {
    ctx.driver
        .put(key, bytes(value), options)
        .await
        .map_err(fail(&format!("put {key:?}")))
}

pub(crate) async fn get(ctx: &Ctx, key: &str) -> Result<Option<Bytes>, String> {
    Ok(ctx
        .driver
        .get(key)
        .await
        .map_err(fail(&format!("get {key:?}")))?
        .map(|e| e.value))
}

pub(crate) async fn delete(ctx: &Ctx, key: &str) -> R {
    ctx.driver
        .delete(key)
        .await
        .map_err(fail(&format!("delete {key:?}")))
}

/// Asserts `result` is an error of `kind`.
pub(crate) fn expect_kind<T>(result: Result<T, DriverError>, kind: ErrorKind, what: &str) -> R {
    match result {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(format!(
            "{what}: expected {kind:?}, got {e} ({:?})",
            e.kind()
        )),
        Ok(_) => Err(format!("{what}: expected {kind:?}, got success")),
    }
}

/// Every key under `prefix`, across pages.
pub(crate) async fn list_all(ctx: &Ctx, prefix: &str) -> Result<Vec<String>, String> {
    let mut cursor: Option<String> = None;
    let mut keys = Vec::new();
    for _ in 0..100_000 {
        let page = ctx
            .driver
            .list(prefix, cursor.as_deref())
            .await
            .map_err(fail(&format!("list {prefix:?}")))?;
        keys.extend(page.keys);
        match page.cursor {
            Some(next) => cursor = Some(next),
            None => {
                keys.sort();
                return Ok(keys);
            }
        }
    }
    Err("list never returned a last page".into())
}

/// Writes `keys` with bounded concurrency.
pub(crate) async fn put_many(ctx: &Ctx, keys: &[String]) -> R {
    let results: Vec<R> = futures::stream::iter(keys.iter().cloned())
        .map(|k: String| async move { put(ctx, &k, k.as_bytes()).await.map(|_| ()) })
        .buffer_unordered(32)
        .collect()
        .await;
    results.into_iter().collect()
}
