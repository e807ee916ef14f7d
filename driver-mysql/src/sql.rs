//! The statements, each one operation with its condition inside it (but `clear`, see
//! [`Statements::clear_expired`]), and the schema.
//!
//! Every expiry is measured by the database's clock (`UTC_TIMESTAMP(6)`, fixed for the length
//! of a statement, and free of the session time zone): a row is live while
//! `expires_at IS NULL OR expires_at > UTC_TIMESTAMP(6)`.

const LIVE: &str = "(expires_at IS NULL OR expires_at > UTC_TIMESTAMP(6))";
const EXPIRED: &str = "expires_at <= UTC_TIMESTAMP(6)";
/// `?` microseconds from now, or no expiry for a null parameter.
const DEADLINE: &str = "UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND";

/// The statements for one table.
#[derive(Debug)]
pub(crate) struct Statements {
    /// `` `table` ``, for messages and the schema statements.
    pub(crate) table: String,
    pub(crate) get: String,
    pub(crate) overwrite: String,
    pub(crate) create: String,
    pub(crate) update: String,
    pub(crate) compare_and_swap: String,
    pub(crate) touch: String,
    pub(crate) is_live: String,
    pub(crate) delete: String,
    pub(crate) list_all: String,
    pub(crate) list_range: String,
    /// MySQL's `DELETE` has no `RETURNING` and its count cannot tell live rows from expired
    /// ones: a clear first deletes the expired rows of its range (not counted), then the rest.
    pub(crate) clear_expired_all: String,
    pub(crate) clear_expired_range: String,
    pub(crate) clear_all: String,
    pub(crate) clear_range: String,
    pub(crate) sweep: String,
    pub(crate) count: String,
}

impl Statements {
    /// The statements for `table` in `schema` (a database; the connection's when `None`),
    /// both checked by `check_identifier`.
    pub(crate) fn new(schema: Option<&str>, table: &str) -> Self {
        let t = match schema {
            Some(schema) => format!("`{schema}`.`{table}`"),
            None => format!("`{table}`"),
        };
        let insert = format!(
            "INSERT INTO {t} (`key`, value, version, expires_at) VALUES (?, ?, ?, {DEADLINE}) \
             ON DUPLICATE KEY UPDATE"
        );
        let update = format!(
            "UPDATE {t} SET value = ?, version = ?, expires_at = {DEADLINE} \
             WHERE `key` = ? AND {LIVE}"
        );
        let list = |range: &str| {
            format!(
                "SELECT `key` FROM {t} WHERE `key` > ? {range} AND {LIVE} ORDER BY `key` LIMIT ?"
            )
        };
        Self {
            get: format!(
                "SELECT value, version, TIMESTAMPDIFF(MICROSECOND, UTC_TIMESTAMP(6), expires_at) \
                 FROM {t} WHERE `key` = ? AND {LIVE}"
            ),
            overwrite: format!(
                "{insert} value = VALUES(value), version = VALUES(version), \
                 expires_at = VALUES(expires_at)"
            ),
            // An expired row counts as absent: replaced (2 rows affected); a live one is left
            // as it is (0 rows affected); an insert is 1. `expires_at` is assigned last, as
            // the others' condition reads it.
            create: format!(
                "{insert} value = IF({EXPIRED}, VALUES(value), value), \
                 version = IF({EXPIRED}, VALUES(version), version), \
                 expires_at = IF({EXPIRED}, VALUES(expires_at), expires_at)"
            ),
            compare_and_swap: format!("{update} AND version = ?"),
            update,
            touch: format!("UPDATE {t} SET expires_at = {DEADLINE} WHERE `key` = ? AND {LIVE}"),
            is_live: format!("SELECT 1 FROM {t} WHERE `key` = ? AND {LIVE}"),
            delete: format!("DELETE FROM {t} WHERE `key` = ?"),
            list_all: list(""),
            list_range: list("AND `key` >= ? AND `key` < ?"),
            clear_expired_all: format!("DELETE FROM {t} WHERE {EXPIRED}"),
            clear_expired_range: format!(
                "DELETE FROM {t} WHERE `key` >= ? AND `key` < ? AND {EXPIRED}"
            ),
            clear_all: format!("DELETE FROM {t}"),
            clear_range: format!("DELETE FROM {t} WHERE `key` >= ? AND `key` < ?"),
            sweep: format!("DELETE FROM {t} WHERE {EXPIRED}"),
            count: format!("SELECT COUNT(*) FROM {t} WHERE {LIVE}"),
            table: t,
        }
    }

    /// The statements that create the table (idempotent).
    pub(crate) fn schema(&self, table: &str, expiry_index: bool) -> Vec<String> {
        let t = &self.table;
        let mut out = vec![format!(
            "CREATE TABLE IF NOT EXISTS {t} (\
             `key` VARBINARY({}) NOT NULL PRIMARY KEY, \
             value LONGBLOB NOT NULL, \
             version BIGINT NOT NULL, \
             expires_at DATETIME(6) NULL) ENGINE = InnoDB",
            crate::MAX_KEY_LEN
        )];
        if expiry_index {
            // MySQL 8 has no CREATE INDEX IF NOT EXISTS: `migrate` checks for it first.
            out.push(format!(
                "CREATE INDEX `{table}_expires_at` ON {t} (expires_at)"
            ));
        }
        out
    }
}
