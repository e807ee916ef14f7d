use session_core::{ErrorKind, PutOptions};

use super::{R, bytes, delete, ensure, expect_kind, get, put};
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

pub(crate) async fn prefix_keys_coexist(ctx: &Ctx) -> R {
    round_trip_distinct(ctx, &["a", "a/b", "a/b/c", "ab"]).await
}
