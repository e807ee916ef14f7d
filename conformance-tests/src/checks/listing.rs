use std::collections::HashSet;

use session_kit_core::ErrorKind;

use super::{R, ensure, expect_kind, get, list_all, put, put_many};
use crate::Ctx;

pub(crate) async fn list_by_prefix(ctx: &Ctx) -> R {
    // The last one contains the prefix `{ns}foo` without starting with it.
    let inner = format!("z/{}foo", ctx.ns);
    for k in ["foo", "foobar", "foo/x", "fo", "bar", "Foo", &inner] {
        put(ctx, &ctx.key(k), "v").await?;
    }
    let expect = |ks: &[&str]| ks.iter().map(|k| ctx.key(k)).collect::<Vec<_>>();
    let got = list_all(ctx, &ctx.key("foo")).await?;
    ensure!(
        got == expect(&["foo", "foo/x", "foobar"]),
        "list(\"foo\") returned {got:?}"
    );
    let got = list_all(ctx, &ctx.key("foobar")).await?;
    ensure!(
        got == expect(&["foobar"]),
        "list(\"foobar\") returned {got:?}"
    );
    let got = list_all(ctx, &ctx.key("zzz")).await?;
    ensure!(got.is_empty(), "list(\"zzz\") returned {got:?}");
    let got = list_all(ctx, &ctx.ns).await?;
    ensure!(
        got.len() == 7,
        "list of the namespace returned {} keys, expected 7",
        got.len()
    );
    Ok(())
}

pub(crate) async fn list_pages(ctx: &Ctx) -> R {
    let keys: Vec<String> = (0..1100)
        .map(|i| ctx.key(&format!("page/{i:04}")))
        .collect();
    put_many(ctx, &keys).await?;
    // Neighbours sorting just before and after the prefix, and many after it: a later page
    // that forgets the prefix lists them.
    let outside: Vec<String> = ["page", "page.", "page0", "pagf/x", "pag/x"]
        .iter()
        .map(|k| ctx.key(k))
        .chain((0..300).map(|i| ctx.key(&format!("pagez/{i:04}"))))
        .collect();
    put_many(ctx, &outside).await?;
    let prefix = ctx.key("page/");
    let mut cursor: Option<String> = None;
    let mut seen = Vec::new();
    for number in 1.. {
        let page = ctx
            .driver
            .list(&prefix, cursor.as_deref())
            .await
            .map_err(super::fail("list"))?;
        if let Some(stray) = page.keys.iter().find(|k| !k.starts_with(&prefix)) {
            return Err(format!(
                "page {number} of list({prefix:?}) returned {stray:?}, outside the prefix"
            ));
        }
        seen.extend(page.keys);
        match page.cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    ensure!(
        unique.len() == seen.len(),
        "listing returned {} duplicates",
        seen.len() - unique.len()
    );
    let expected: HashSet<&String> = keys.iter().collect();
    ensure!(
        unique == expected,
        "listing returned {} of 1100 keys",
        unique.intersection(&expected).count()
    );
    Ok(())
}

pub(crate) async fn clear_by_prefix(ctx: &Ctx) -> R {
    for attempt in ["clear", "second clear"] {
        let n = ctx
            .driver
            .clear(&ctx.ns)
            .await
            .map_err(super::fail(&format!("{attempt} of an empty namespace")))?;
        ensure!(n == 0, "{attempt} of an empty namespace counted {n} keys");
    }
    for k in ["a", "b/c", "d"] {
        put(ctx, &ctx.key(k), "v").await?;
    }
    let n = ctx
        .driver
        .clear(&ctx.ns)
        .await
        .map_err(super::fail("clear"))?;
    ensure!(n == 3, "clear of 3 keys counted {n}");
    ensure!(
        list_all(ctx, &ctx.ns).await?.is_empty(),
        "clear left keys behind"
    );
    ensure!(
        get(ctx, &ctx.key("b/c")).await?.is_none(),
        "a cleared key is still readable"
    );
    Ok(())
}

/// `list(prefix)` is exactly `expected` (as suffixes of the namespace).
async fn listed_exactly(ctx: &Ctx, prefix: &str, expected: &[&str]) -> R {
    let got = list_all(ctx, &ctx.key(prefix)).await?;
    let mut want: Vec<String> = expected.iter().map(|k| ctx.key(k)).collect();
    want.sort();
    ensure!(
        got == want,
        "list({:?}) returned {got:?}, expected {want:?}",
        ctx.key(prefix)
    );
    Ok(())
}

/// `clear(prefix)` removes exactly `expected` and counts them.
async fn clears_exactly(ctx: &Ctx, prefix: &str, expected: &[&str], rest: &[&str]) -> R {
    let n = ctx
        .driver
        .clear(&ctx.key(prefix))
        .await
        .map_err(super::fail(&format!("clear {prefix:?}")))?;
    ensure!(
        n == expected.len() as u64,
        "clear({:?}) counted {n} keys, expected {}",
        ctx.key(prefix),
        expected.len()
    );
    for k in expected {
        ensure!(
            get(ctx, &ctx.key(k)).await?.is_none(),
            "clear({:?}) left {:?}",
            ctx.key(prefix),
            ctx.key(k)
        );
    }
    for k in rest {
        ensure!(
            get(ctx, &ctx.key(k)).await?.is_some(),
            "clear({:?}) also removed {:?}, outside the prefix",
            ctx.key(prefix),
            ctx.key(k)
        );
    }
    Ok(())
}

pub(crate) async fn prefixes_end_where_they_say(ctx: &Ctx) -> R {
    let all = ["ns-a", "ns-a/x", "ns-a/y", "ns-ab/x", "ns-a0/x", "ns-a.x"];
    for k in all {
        put(ctx, &ctx.key(k), "v").await?;
    }
    listed_exactly(ctx, "ns-a/", &["ns-a/x", "ns-a/y"]).await?;
    listed_exactly(ctx, "ns-a", &all).await?;
    clears_exactly(
        ctx,
        "ns-a/",
        &["ns-a/x", "ns-a/y"],
        &["ns-a", "ns-ab/x", "ns-a0/x", "ns-a.x"],
    )
    .await?;
    listed_exactly(ctx, "ns-a", &["ns-a", "ns-ab/x", "ns-a0/x", "ns-a.x"]).await
}

pub(crate) async fn wildcards_in_prefixes_are_literal(ctx: &Ctx) -> R {
    // Each special prefix, and decoys its wildcard reading would match: SQL LIKE (`_` one
    // character, `%` any run, `\` escape), globs (`*`, `?`, `[...]`) and regular expressions.
    let special = [
        "a_b/", "a%b/", "a*b/", "a?b/", "a[b]/", "a\\b/", "a.b/", "a^b/", "a$b/", "a|b/", "a(b)/",
        "a{b}/", "a+b/",
    ];
    let decoys = ["axb/1", "aXYZb/1", "ab/1", "a/1", "ab]/1", "aab/1", "b/1"];
    for p in special {
        put(ctx, &ctx.key(&format!("{p}1")), "v").await?;
    }
    for d in decoys {
        put(ctx, &ctx.key(d), "v").await?;
    }
    for p in special {
        listed_exactly(ctx, p, &[&format!("{p}1")]).await?;
    }
    let mut remaining: Vec<String> = special.iter().map(|p| format!("{p}1")).collect();
    for p in special {
        let mine = format!("{p}1");
        remaining.retain(|k| *k != mine);
        let rest: Vec<&str> = remaining.iter().map(String::as_str).chain(decoys).collect();
        clears_exactly(ctx, p, &[&mine], &rest).await?;
    }
    Ok(())
}

pub(crate) async fn list_unsupported_is_rejected(ctx: &Ctx) -> R {
    expect_kind(
        ctx.driver.list(&ctx.ns, None).await,
        ErrorKind::Unsupported,
        "list",
    )
}
