use session_kit_core::{ErrorKind, PutOptions};

use super::{R, bytes, delete, ensure, expect_kind, get, put, random_printable};
use crate::Ctx;

pub(crate) async fn empty_key_is_invalid(ctx: &Ctx) -> R {
    let d = &ctx.driver;
    expect_kind(d.get("").await, ErrorKind::InvalidKey, "get(\"\")")?;
    expect_kind(
        d.put("", bytes("v"), PutOptions::new()).await,
        ErrorKind::InvalidKey,
        "put(\"\")",
    )?;
    expect_kind(d.delete("").await, ErrorKind::InvalidKey, "delete(\"\")")?;
    let err = d.get("").await.err().ok_or("get(\"\") succeeded")?;
    ensure!(!err.is_retryable(), "an invalid key must not be retryable");
    Ok(())
}

/// Writes every key with a distinct value, reads each back, deletes each.
async fn round_trip_distinct(ctx: &Ctx, suffixes: &[&str]) -> R {
    let keys: Vec<String> = suffixes.iter().map(|s| ctx.key(s)).collect();
    for (i, key) in keys.iter().enumerate() {
        put(ctx, key, format!("value {i}")).await?;
    }
    for (i, key) in keys.iter().enumerate() {
        let got = get(ctx, key).await?;
        ensure!(
            got.as_deref() == Some(format!("value {i}").as_bytes()),
            "key {key:?} read back {got:?}, expected \"value {i}\" (keys must not be normalised)"
        );
    }
    for key in &keys {
        delete(ctx, key).await?;
        ensure!(
            get(ctx, key).await?.is_none(),
            "key {key:?} survived delete"
        );
    }
    Ok(())
}

pub(crate) async fn unicode_and_punctuation_keys(ctx: &Ctx) -> R {
    round_trip_distinct(
        ctx,
        &[
            "héllo wörld",
            "日本語のキー",
            "emoji 🎉🔑",
            "with space",
            " leading",
            "trailing ",
            "!@#$%^&()_+-=;',.<>?*[]~\\\"",
            "{braces}|pipe`tick",
        ],
    )
    .await
}

pub(crate) async fn similar_keys_are_distinct(ctx: &Ctx) -> R {
    round_trip_distinct(
        ctx,
        &[
            "a/b", "a:b", "a%2Fb", "%48%49", "HI", "a?x=1", "a?x=2", "Key", "key", "a#b", "a+b",
            "a b",
        ],
    )
    .await
}

pub(crate) async fn keys_are_not_normalised(ctx: &Ctx) -> R {
    round_trip_distinct(
        ctx,
        &[
            // Trimming and collapsing spaces.
            "k", " k", "k ", "k  ", " k ", "k\u{a0}",
            // Unicode normalisation: NFC, NFD, the Angstrom sign (NFC-equivalent), a ligature
            // and full-width letters (NFKC-equivalent).
            "\u{e9}", "e\u{301}", "\u{c5}", "A\u{30a}", "\u{212b}", "\u{fb01}", "fi", "\u{ff41}",
            "a",
            // Path and URL handling: a trailing or doubled /, fragments, queries, escapes.
            "a/", "a//", "a#", "a#frag", "a?", "a?q=1", "a%", "a%25", "a%2", "a.", "a;", "a\\",
        ],
    )
    .await
}

pub(crate) async fn traversal_keys_are_plain_keys(ctx: &Ctx) -> R {
    round_trip_distinct(
        ctx,
        &[
            "..",
            "../x",
            "x/../../y",
            ".",
            "/abs",
            "//double",
            "C:\\win",
            "..\\..\\x",
            "./x",
            "x/.",
        ],
    )
    .await?;
    for raw in ["..", "../escape", "/etc/passwd-conformance"] {
        // Unprefixed, as an attacker would send them.
        put(ctx, raw, "contained").await?;
        ensure!(
            get(ctx, raw).await?.as_deref() == Some(&b"contained"[..]),
            "{raw:?} did not round-trip"
        );
        delete(ctx, raw).await?;
    }
    Ok(())
}

pub(crate) async fn control_character_keys(ctx: &Ctx) -> R {
    for (i, suffix) in [
        "nul\0byte",
        "new\nline",
        "tab\tkey",
        "bell\u{7}",
        "del\u{7f}",
        "cr\rkey",
        "esc\u{1b}[0m",
    ]
    .iter()
    .enumerate()
    {
        let key = ctx.key(suffix);
        let value = format!("v{i}");
        match ctx
            .driver
            .put(&key, bytes(value.clone()), PutOptions::new())
            .await
        {
            Err(e) if e.kind() == ErrorKind::InvalidKey => continue,
            Err(e) => {
                return Err(format!(
                    "put {key:?}: expected success or InvalidKey, got {e}"
                ));
            }
            Ok(_) => {}
        }
        let got = get(ctx, &key).await?;
        ensure!(
            got.as_deref() == Some(value.as_bytes()),
            "{key:?} read back {got:?}"
        );
        let cut = suffix.find(|c: char| c.is_control()).unwrap_or(0);
        let truncated = ctx.key(&suffix[..cut]);
        ensure!(
            get(ctx, &truncated).await?.is_none(),
            "{key:?} was stored as the truncated key {truncated:?}"
        );
        delete(ctx, &key).await?;
    }
    Ok(())
}

pub(crate) async fn max_length_keys(ctx: &Ctx) -> R {
    let max = ctx.caps().max_key_len;
    ensure!(
        max > ctx.ns.len(),
        "max_key_len {max} is shorter than the suite's namespace"
    );
    let key = format!("{}{}", ctx.ns, "k".repeat(max - ctx.ns.len()));
    put(ctx, &key, "long").await?;
    ensure!(
        get(ctx, &key).await?.as_deref() == Some(&b"long"[..]),
        "a key of {max} bytes did not round-trip"
    );
    delete(ctx, &key).await?;
    let too_long = format!("{key}k");
    expect_kind(
        ctx.driver
            .put(&too_long, bytes("x"), PutOptions::new())
            .await,
        ErrorKind::InvalidKey,
        &format!("put of a {}-byte key", max + 1),
    )?;
    expect_kind(
        ctx.driver.get(&too_long).await,
        ErrorKind::InvalidKey,
        "get of an over-long key",
    )
}

/// A key of exactly `len` bytes: the namespace, `body`, and `fill` to pad it.
fn padded(ctx: &Ctx, body: &str, fill: char, len: usize) -> Result<String, String> {
    let mut key = ctx.key(body);
    ensure!(
        key.len() <= len,
        "max_key_len {len} is too short for the suite's keys"
    );
    while key.len() < len {
        key.push(fill);
    }
    Ok(key)
}

pub(crate) async fn long_keys_differ_at_the_end(ctx: &Ctx) -> R {
    let max = ctx.caps().max_key_len;
    ensure!(
        max >= ctx.ns.len() + 4,
        "max_key_len {max} is shorter than the suite's namespace"
    );
    let base = padded(ctx, "", 'k', max - 2)?;
    let keys = [
        format!("{base}aa"),
        format!("{base}ab"),
        format!("{base}ba"),
        format!("{base}a"),
        format!("{base}b"),
        base.clone(),
    ];
    for (i, key) in keys.iter().enumerate() {
        put(ctx, key, format!("value {i}")).await?;
    }
    for (i, key) in keys.iter().enumerate() {
        let got = get(ctx, key).await?;
        ensure!(
            got.as_deref() == Some(format!("value {i}").as_bytes()),
            "the {}-byte key ending {:?} read back {got:?}, expected \"value {i}\": long keys that differ only at the end collide (truncated or hashed by a prefix?)",
            key.len(),
            &key[key.len().saturating_sub(3)..]
        );
    }
    for key in &keys {
        delete(ctx, key).await?;
    }
    Ok(())
}

/// `ns` and random one- to four-byte characters, exactly `max` bytes long.
fn random_wide_key(ns: &str, max: usize) -> String {
    use rand::Rng;
    let alphabet = ['é', '日', '🎉', 'ß', 'Ω', 'x', '/', '%'];
    let mut rng = rand::rng();
    let mut key = ns.to_owned();
    while key.len() < max {
        let c = alphabet[rng.random_range(0..alphabet.len())];
        key.push(if key.len() + c.len_utf8() > max {
            'x'
        } else {
            c
        });
    }
    key
}

pub(crate) async fn random_keys_at_max_length(ctx: &Ctx) -> R {
    let max = ctx.caps().max_key_len;
    ensure!(
        max > ctx.ns.len(),
        "max_key_len {max} is shorter than the suite's namespace"
    );
    let mut keys: Vec<String> = (0..3)
        .map(|_| format!("{}{}", ctx.ns, random_printable(max - ctx.ns.len())))
        .collect();
    keys.push(random_wide_key(&ctx.ns, max));
    for (i, key) in keys.iter().enumerate() {
        ctx.driver
            .put(key, bytes(format!("random {i}")), PutOptions::new())
            .await
            .map_err(super::fail(&format!(
                "put of a random {}-byte key (the declared maximum)",
                key.len()
            )))?;
    }
    for (i, key) in keys.iter().enumerate() {
        let got = get(ctx, key).await?;
        ensure!(
            got.as_deref() == Some(format!("random {i}").as_bytes()),
            "a random {}-byte key read back {got:?}",
            key.len()
        );
        delete(ctx, key).await?;
    }
    Ok(())
}

pub(crate) async fn prefix_keys_coexist(ctx: &Ctx) -> R {
    round_trip_distinct(ctx, &["a", "a/b", "a/b/c", "ab"]).await
}
