//! The statements, each one operation with its condition inside it, and the schema.
//!
//! Every expiry is measured by the database's clock (`now()`, the statement's start): a row
//! is live while `expires_at IS NULL OR expires_at > now()`, whatever the application
//! servers' clocks say.

const LIVE: &str = "(expires_at IS NULL OR expires_at > now())";
/// `$n` microseconds from now, or no expiry when `$n` is null.
fn deadline(param: u8) -> String {
    format!("now() + ${param}::int8 * interval '1 microsecond'")
}

/// The statements for one table.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `"schema"."table"`, for messages and the schema statements.
    pub(crate) table: String,
    pub(crate) get: String,
    pub(crate) overwrite: String,
    pub(crate) create: String,
    pub(crate) update: String,
    pub(crate) compare_and_swap: String,
    pub(crate) touch: String,
    pub(crate) delete: String,
    pub(crate) list_all: String,
    pub(crate) list_range: String,
    pub(crate) clear_all: String,
    pub(crate) clear_range: String,
    pub(crate) sweep: String,
    pub(crate) count: String,
    /// The channel the table's trigger notifies changes on.
    pub(crate) channel: String,
    /// How many of the two notification triggers exist.
    pub(crate) triggers: String,
}

impl Statements {
    /// The statements for `schema.table` (both checked by `check_identifier`).
    pub(crate) fn new(schema: &str, table: &str) -> Self {
        let t = format!("\"{schema}\".\"{table}\"");
        let seq = format!("\"{schema}\".\"{table}_version\"");
        let insert = format!(
            "INSERT INTO {t} AS s (key, value, version, expires_at) \
             VALUES ($1, $2, nextval('{seq}'), {}) ON CONFLICT (key) DO UPDATE \
             SET value = EXCLUDED.value, version = EXCLUDED.version, expires_at = EXCLUDED.expires_at",
            deadline(3)
        );
        let update = format!(
            "UPDATE {t} SET value = $2, version = nextval('{seq}'), expires_at = {} \
             WHERE key = $1 AND {LIVE}",
            deadline(3)
        );
        let list = |range: &str| {
            format!("SELECT key FROM {t} WHERE key > $1 {range} AND {LIVE} ORDER BY key LIMIT $2")
        };
        let clear = |range: &str| {
            format!(
                "WITH gone AS (DELETE FROM {t} WHERE true {range} RETURNING expires_at) \
                 SELECT count(*) FROM gone WHERE {LIVE}"
            )
        };
        Self {
            get: format!(
                "SELECT value, version, \
                 ceil(extract(epoch FROM (expires_at - now())) * 1000)::int8 \
                 FROM {t} WHERE key = $1 AND {LIVE}"
            ),
            overwrite: format!("{insert} RETURNING version"),
            // An expired row counts as absent: the insert replaces it.
            create: format!("{insert} WHERE s.expires_at <= now() RETURNING version"),
            compare_and_swap: format!("{update} AND version = $4 RETURNING version"),
            update: format!("{update} RETURNING version"),
            touch: format!(
                "UPDATE {t} SET expires_at = {} WHERE key = $1 AND {LIVE}",
                deadline(2)
            ),
            delete: format!("DELETE FROM {t} WHERE key = $1"),
            // $1 is the cursor (the last key of the previous page, or the prefix's first key
            // minus nothing: an empty key sorts first); $3/$4 bound the prefix as a key range.
            list_all: list(""),
            list_range: list("AND key >= $3 AND key < $4"),
            clear_all: clear(""),
            clear_range: clear("AND key >= $1 AND key < $2"),
            sweep: format!("DELETE FROM {t} WHERE expires_at <= now()"),
            count: format!("SELECT count(*) FROM {t} WHERE {LIVE}"),
            channel: channel(schema, table),
            triggers: format!(
                "SELECT count(*) FROM pg_trigger WHERE tgrelid = '{t}'::regclass \
                 AND tgname IN ('{table}_updated', '{table}_deleted')"
            ),
            table: t,
        }
    }

    /// The statements that create the schema objects, in order (each idempotent).
    pub(crate) fn schema(&self, schema: &str, table: &str, options: &SchemaOptions) -> Vec<String> {
        let t = &self.table;
        let mut out = vec![
            format!("CREATE SEQUENCE IF NOT EXISTS \"{schema}\".\"{table}_version\" AS int8"),
            format!(
                "CREATE {}TABLE IF NOT EXISTS {t} (\
                 key bytea PRIMARY KEY, \
                 value bytea NOT NULL, \
                 version int8 NOT NULL, \
                 expires_at timestamptz) WITH (fillfactor = {})",
                if options.unlogged { "UNLOGGED " } else { "" },
                options.fillfactor
            ),
        ];
        if !options.notify {
            return self.with_index(out, table, options);
        }
        // With the read cache: every update, and every delete of a row live within the last
        // minute (not the sweep's old rows), is notified with the writer's id and the key, for
        // the read caches of every process. The triggers are created only when missing.
        let function = format!("\"{schema}\".\"{table}_notify\"");
        out.push(format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $f$ \
             BEGIN PERFORM pg_notify('{}', coalesce(current_setting('{WRITER_SETTING}', true), '') \
             || ':' || encode(OLD.key, 'hex')); RETURN NULL; END $f$",
            self.channel
        ));
        let trigger = |name: &str, event: &str, when: &str| {
            format!(
                "DO $d$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_trigger \
                 WHERE tgname = '{table}_{name}' AND tgrelid = '{t}'::regclass) THEN \
                 CREATE TRIGGER \"{table}_{name}\" AFTER {event} ON {t} FOR EACH ROW {when} \
                 EXECUTE FUNCTION {function}(); END IF; END $d$"
            )
        };
        out.push(trigger("updated", "UPDATE", ""));
        out.push(trigger(
            "deleted",
            "DELETE",
            "WHEN (OLD.expires_at IS NULL OR OLD.expires_at > now() - interval '1 minute')",
        ));
        self.with_index(out, table, options)
    }

    fn with_index(
        &self,
        mut out: Vec<String>,
        table: &str,
        options: &SchemaOptions,
    ) -> Vec<String> {
        let t = &self.table;
        if options.expiry_index {
            out.push(format!(
                "CREATE INDEX IF NOT EXISTS \"{table}_expires_at\" ON {t} (expires_at) \
                 WHERE expires_at IS NOT NULL"
            ));
        }
        out
    }
}

/// The session setting that carries a connection's writer id (set at connect, read by the
/// trigger).
pub(crate) const WRITER_SETTING: &str = "session_driver.writer";

/// The notification channel of `schema.table`: a stable hash (FNV-1a), so that every process
/// agrees and the name stays within PostgreSQL's 63 bytes.
pub(crate) fn channel(schema: &str, table: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schema.bytes().chain([b'.']).chain(table.bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("session_driver_{hash:016x}")
}

/// How the table is created.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SchemaOptions {
    pub(crate) unlogged: bool,
    /// The notification triggers of the read cache.
    pub(crate) notify: bool,
    pub(crate) expiry_index: bool,
    pub(crate) fillfactor: u8,
}
