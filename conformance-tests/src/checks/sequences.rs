//! Random sequences of operations on a few keys, each answer compared with a model of the
//! contract: what fixed checks miss when a bug needs a particular order of operations (a read
//! cache that one write path forgets, a version that one mode does not advance).

use std::{fmt::Write as _, time::Duration};

use rand::{Rng, SeedableRng, rngs::StdRng};
use session_kit_core::{DriverError, ErrorKind, PutOptions, Version, WriteMode};

use super::{R, bytes, list_all};
use crate::Ctx;

/// Operations per run (each change is read back, so up to twice as many requests).
const STEPS: usize = 400;
/// Keys the operations share (few, so that most operations meet an earlier one's key).
const KEYS: usize = 3;
/// Operations a failure lists (the last ones; the seed replays them all).
const LOGGED: usize = 40;
/// Names the seed to replay a failed run with.
const SEED_ENV: &str = "SESSION_CONFORMANCE_SEED";

/// One operation the sequence may take.
#[derive(Debug, Clone)]
enum Op {
    Get,
    Put(WriteMode, Option<Duration>),
    Delete,
    Touch(Duration),
    List,
}

/// What the model holds for a key: its value and version, and every version it ever had.
#[derive(Default)]
struct Key {
    current: Option<(Vec<u8>, Version)>,
    past: Vec<Version>,
}

pub(crate) async fn random_operations_match_a_model(ctx: &Ctx) -> R {
    let seed = match std::env::var(SEED_ENV) {
        Ok(s) => s
            .parse()
            .map_err(|_| format!("{SEED_ENV}={s:?} is not a number"))?,
        Err(_) => rand::rng().random(),
    };
    let mut log = String::new();
    run(ctx, seed, &mut log).await.map_err(|failure| {
        let lines: Vec<&str> = log.lines().collect();
        let last = lines[lines.len().saturating_sub(LOGGED)..].join("\n");
        format!(
            "{failure}\n  (seed {seed}: replay with {SEED_ENV}={seed}; the last operations:\n{last})"
        )
    })
}

async fn run(ctx: &Ctx, seed: u64, log: &mut String) -> R {
    let caps = ctx.caps().clone();
    let mut rng = StdRng::seed_from_u64(seed);
    let names: Vec<String> = (0..KEYS).map(|i| ctx.key(&format!("seq{i}"))).collect();
    let mut model: Vec<Key> = (0..KEYS).map(|_| Key::default()).collect();
    // A TTL no run outlives, above any declared minimum.
    let ttl = caps.ttl.map(|t| t.min.max(Duration::from_secs(3600)));
    let mut ops = vec![
        Op::Get,
        Op::Get,
        Op::Put(WriteMode::Overwrite, None),
        Op::Delete,
    ];
    if let Some(ttl) = ttl {
        ops.push(Op::Put(WriteMode::Overwrite, Some(ttl)));
    }
    if caps.create_only {
        ops.push(Op::Put(WriteMode::CreateOnly, None));
    }
    if caps.update_only {
        ops.push(Op::Put(WriteMode::UpdateOnly, None));
    }
    if caps.compare_and_swap {
        // The version is chosen when the operation runs: the key's current one or another.
        ops.push(Op::Put(WriteMode::IfVersion(Version::from_u64(0)), None));
        ops.push(Op::Put(WriteMode::IfVersion(Version::from_u64(0)), None));
    }
    if let (true, Some(ttl)) = (caps.touch, ttl) {
        ops.push(Op::Touch(ttl));
    }
    if caps.list {
        ops.push(Op::List);
    }

    for step in 0..STEPS {
        let k = rng.random_range(0..KEYS);
        let name = &names[k];
        let op = ops[rng.random_range(0..ops.len())].clone();
        let at = |what: &str| format!("step {step}, {what} on key {k}");
        let changes = !matches!(op, Op::Get | Op::List);
        match op {
            Op::Get => {
                let _ = write!(log, "\n  {step}: get {k}");
                read_back(ctx, name, &model[k], &at("get")).await?;
            }
            Op::Put(mode, ttl) => {
                let value = format!("{step}:{}", rng.random::<u32>()).into_bytes();
                let mode = match mode {
                    WriteMode::IfVersion(_) => match pick_version(&mut rng, &model, k) {
                        Some(version) => WriteMode::IfVersion(version),
                        None => WriteMode::Overwrite,
                    },
                    mode => mode,
                };
                let key = &mut model[k];
                let _ = write!(log, "\n  {step}: put {k} {mode:?} ttl {ttl:?}");
                let expected = match (&mode, &key.current) {
                    (WriteMode::Overwrite, _) => None,
                    (WriteMode::CreateOnly, Some(_)) => Some(ErrorKind::AlreadyExists),
                    (WriteMode::CreateOnly, None) => None,
                    (WriteMode::UpdateOnly, current) => {
                        current.is_none().then_some(ErrorKind::Conflict)
                    }
                    (WriteMode::IfVersion(v), Some((_, current))) if v == current => None,
                    (WriteMode::IfVersion(_), _) => Some(ErrorKind::Conflict),
                };
                let options = PutOptions::new().mode(mode.clone()).ttl_opt(ttl);
                let result = ctx.driver.put(name, bytes(value.clone()), options).await;
                let what = at(&format!("{mode:?} put"));
                match (result, expected) {
                    (Ok(version), None) => {
                        if version_seen(key, &version) {
                            return Err(format!(
                                "{what}: returned {version}, a version the key had before"
                            ));
                        }
                        if let Some((_, old)) = key.current.take() {
                            key.past.push(old);
                        }
                        key.current = Some((value, version));
                    }
                    (Err(e), Some(kind)) if e.kind() == kind => {}
                    (Ok(_), Some(kind)) => {
                        return Err(format!("{what}: succeeded, expected {kind:?}"));
                    }
                    (Err(e), _) => return Err(unexpected(&what, &e)),
                }
            }
            Op::Delete => {
                let _ = write!(log, "\n  {step}: delete {k}");
                ctx.driver
                    .delete(name)
                    .await
                    .map_err(|e| unexpected(&at("delete"), &e))?;
                let key = &mut model[k];
                if let Some((_, old)) = key.current.take() {
                    key.past.push(old);
                }
            }
            Op::Touch(ttl) => {
                let _ = write!(log, "\n  {step}: touch {k}");
                let touched = ctx
                    .driver
                    .touch(name, ttl)
                    .await
                    .map_err(|e| unexpected(&at("touch"), &e))?;
                let present = model[k].current.is_some();
                if touched != present {
                    return Err(format!(
                        "{}: answered {touched}, but the key is {}",
                        at("touch"),
                        if present { "present" } else { "absent" }
                    ));
                }
            }
            Op::List => {
                let _ = write!(log, "\n  {step}: list");
                let listed = list_all(ctx, &ctx.key("seq")).await?;
                let mut want: Vec<String> = (0..KEYS)
                    .filter(|i| model[*i].current.is_some())
                    .map(|i| names[i].clone())
                    .collect();
                want.sort();
                if listed != want {
                    return Err(format!(
                        "step {step}, list: {listed:?}, the keys present are {want:?}"
                    ));
                }
            }
        }
        // Every change is read back at once: a stale read shows the operation that missed.
        if changes {
            let _ = write!(log, "\n  {step}: get {k}");
            read_back(ctx, name, &model[k], &at("the read after it")).await?;
        }
    }
    Ok(())
}

/// Reads `name` and compares value and version with what the model holds.
async fn read_back(ctx: &Ctx, name: &str, key: &Key, at: &str) -> R {
    let entry = ctx.driver.get(name).await.map_err(|e| unexpected(at, &e))?;
    let got = entry.map(|e| (e.value.to_vec(), e.version));
    let want = &key.current;
    if got.as_ref().map(|(v, _)| v) != want.as_ref().map(|(v, _)| v) {
        return Err(format!(
            "{at}: read {:?}, the key holds {:?}",
            got.map(|(v, _)| show(&v)),
            want.as_ref().map(|(v, _)| show(v))
        ));
    }
    if let (Some((_, got)), Some((_, want))) = (&got, want)
        && got != want
    {
        return Err(format!(
            "{at}: version {got}, but the last write returned {want}"
        ));
    }
    Ok(())
}

/// The version a compare-and-swap sends: the key's current one (half the time, when it has
/// one), or another this driver returned (a past one of this key, or one of another key);
/// `None` before any write.
fn pick_version(rng: &mut StdRng, model: &[Key], k: usize) -> Option<Version> {
    if let (Some((_, current)), true) = (&model[k].current, rng.random_bool(0.5)) {
        return Some(current.clone());
    }
    let others: Vec<&Version> = model
        .iter()
        .enumerate()
        .flat_map(|(i, key)| {
            let current = key.current.as_ref().map(|(_, v)| v).filter(|_| i != k);
            key.past.iter().chain(current)
        })
        .filter(|v| model[k].current.as_ref().is_none_or(|(_, c)| c != *v))
        .collect();
    if others.is_empty() {
        return model[k].current.as_ref().map(|(_, v)| v.clone());
    }
    Some(others[rng.random_range(0..others.len())].clone())
}

fn version_seen(key: &Key, version: &Version) -> bool {
    key.past.contains(version) || key.current.as_ref().is_some_and(|(_, v)| v == version)
}

fn unexpected(what: &str, e: &DriverError) -> String {
    format!("{what}: unexpected error {e} ({:?})", e.kind())
}

fn show(value: &[u8]) -> String {
    String::from_utf8_lossy(value).into_owned()
}
