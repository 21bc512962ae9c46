//! Where a card's row lives in the embedded registry, and the one routine that writes it.
//!
//! The registry table is keyed by an integer `slot` derived from the card's keyed hash,
//! not by the hash itself (schema migration 3). SQLite stores such a table as one
//! B-tree whose interior cells hold only integers: on 10M rows its interior pages take
//! 3.3 MB (814 pages) and stay in the lookup connections' page caches, so a lookup
//! reads exactly one page that is not cached (its leaf). Keyed by the 16-byte hash
//! (`WITHOUT ROWID`, migration 1), interior cells held whole rows: 15 MB of interior
//! pages that competed with the leaves for the cache, 1.28 page reads per lookup and a
//! blob comparison at every step of the descent (issue 6: lookups flat as the registry
//! grows).
//!
//! A card's *home* is the top 58 bits of its keyed hash; its row takes the first free
//! of the home's [`SLOTS_PER_HOME`] slots (`home * 16 + probe`), so two cards whose
//! hashes share 58 bits (at 10M rows, the chance that any two do is about 1 in 6,000)
//! both have a place. Rows are never deleted, so probe 0 of an occupied home is always
//! taken; a lookup reads the home's slot range and compares the full 16-byte hash. Slots sort as the hashes
//! do, so the bulk import, which writes in hash order, appends at the tree's right edge.

use rusqlite::{Connection, params};

use crate::StoreError;
use crate::secrets::KeyedHash;

/// Slots per home: how many cards whose keyed hashes share their top 58 bits fit.
const SLOTS_PER_HOME: i64 = 16;

/// The first slot of a card's home range. `>> 6` keeps 58 bits, `* 16` makes room for
/// the probe: the home range ends below 2^62, so no slot arithmetic can overflow a
/// positive SQLite integer.
pub(super) fn home_slot(card_hash: &KeyedHash) -> i64 {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&card_hash[..8]);
    ((u64::from_be_bytes(prefix) >> 6) as i64) * SLOTS_PER_HOME
}

/// The lookup a verification makes: `?1` the home slot, `?2` the last slot of the home,
/// `?3` the card hash. `LIMIT 1` ends the scan at the match, so a hit reads no row
/// after it (which could be on the next leaf).
pub(super) const LOOKUP_SQL: &str = "SELECT name_hash, status FROM registry \
     WHERE slot BETWEEN ?1 AND ?2 AND card_hash = ?3 LIMIT 1";

/// [`LOOKUP_SQL`]'s parameters for a card hash.
pub(super) fn lookup_range(card_hash: &KeyedHash) -> (i64, i64) {
    let home = home_slot(card_hash);
    (home, home + SLOTS_PER_HOME - 1)
}

/// One registry row as stored.
#[derive(Debug, Clone, Copy)]
pub(super) struct RegistryRow<'a> {
    pub card_hash: &'a [u8],
    pub name_hash: &'a [u8],
    pub masked: &'a str,
    pub status: &'a str,
    pub updated_at: i64,
}

/// What [`RowWriter::put`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PutOutcome {
    Inserted,
    Updated,
    Unchanged,
}

/// Writes registry rows (upsert by card hash) on one connection, inside the caller's
/// transaction: the only code that decides a row's slot.
pub(super) struct RowWriter<'c> {
    insert: rusqlite::CachedStatement<'c>,
    holder: rusqlite::CachedStatement<'c>,
    update: rusqlite::CachedStatement<'c>,
}

/// Whose row a slot holds, seen from the row being written.
enum Holder {
    OtherCard,
    SameRow,
    SameCardChanged,
}

impl<'c> RowWriter<'c> {
    pub(super) fn new(conn: &'c Connection) -> rusqlite::Result<RowWriter<'c>> {
        Ok(RowWriter {
            insert: conn.prepare_cached(
                "INSERT OR IGNORE INTO registry \
                 (slot, card_hash, name_hash, masked, status, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?,
            holder: conn.prepare_cached(
                "SELECT card_hash, name_hash, masked, status FROM registry WHERE slot = ?1",
            )?,
            update: conn.prepare_cached(
                "UPDATE registry SET name_hash = ?2, masked = ?3, status = ?4, updated_at = ?5 \
                 WHERE slot = ?1",
            )?,
        })
    }

    /// Inserts the row at the first free slot of its home, or updates the card's row
    /// where it already is (a row that would not change is left alone). A new card
    /// takes one statement, a known one two (three when it changes).
    pub(super) fn put(&mut self, row: &RegistryRow<'_>) -> Result<PutOutcome, StoreError> {
        let hash: &KeyedHash = row.card_hash.try_into().map_err(|_| {
            StoreError::Io(format!(
                "registry: a card hash of {} bytes",
                row.card_hash.len()
            ))
        })?;
        let home = home_slot(hash);
        for slot in home..home + SLOTS_PER_HOME {
            let inserted = self
                .insert
                .execute(params![
                    slot,
                    row.card_hash,
                    row.name_hash,
                    row.masked,
                    row.status,
                    row.updated_at
                ])
                .map_err(super::db_err)?;
            if inserted == 1 {
                return Ok(PutOutcome::Inserted);
            }
            let holder = self
                .holder
                .query_row([slot], |r| {
                    if r.get_ref(0)?.as_blob()? != row.card_hash {
                        return Ok(Holder::OtherCard);
                    }
                    let same = r.get_ref(1)?.as_blob()? == row.name_hash
                        && r.get_ref(2)?.as_str()? == row.masked
                        && r.get_ref(3)?.as_str()? == row.status;
                    Ok(if same {
                        Holder::SameRow
                    } else {
                        Holder::SameCardChanged
                    })
                })
                .map_err(super::db_err)?;
            match holder {
                Holder::OtherCard => continue,
                Holder::SameRow => return Ok(PutOutcome::Unchanged),
                Holder::SameCardChanged => {
                    self.update
                        .execute(params![
                            slot,
                            row.name_hash,
                            row.masked,
                            row.status,
                            row.updated_at
                        ])
                        .map_err(super::db_err)?;
                    return Ok(PutOutcome::Updated);
                }
            }
        }
        // 17 cards whose keyed hashes share 58 bits: practically impossible, but
        // refused rather than written over another card.
        Err(StoreError::Io(format!(
            "registry: all {SLOTS_PER_HOME} slots of a card's hash prefix are taken (card {})",
            row.masked
        )))
    }
}

/// Schema migration 3: the registry keyed by slot instead of by card hash. Rows are
/// copied in hash order (the old primary key), i.e. in slot order: about 2 s per
/// million rows, once (the store then reclaims the old copy's space).
pub(super) fn migrate_to_slots(tx: &rusqlite::Transaction<'_>) -> Result<(), String> {
    let err = |e: rusqlite::Error| format!("registry migration: {e}");
    tx.execute_batch(
        "ALTER TABLE registry RENAME TO registry_by_hash;
         CREATE TABLE registry (
             slot       INTEGER PRIMARY KEY,
             card_hash  BLOB NOT NULL,
             name_hash  BLOB NOT NULL,
             masked     TEXT NOT NULL,
             status     TEXT NOT NULL,
             updated_at INTEGER NOT NULL
         );",
    )
    .map_err(err)?;
    let has_rows: bool = tx
        .query_row("SELECT EXISTS (SELECT 1 FROM registry_by_hash)", [], |r| {
            r.get(0)
        })
        .map_err(err)?;
    if has_rows {
        check_space_for_conversion(tx)?;
        // A warning so that it shows at the CLI's default level: the operator should
        // know the file changed (and that an older build no longer opens it).
        tracing::warn!(
            "converting the registry to this build's layout (schema 3, once; about 2 s per \
             million rows; older builds cannot open the directory afterwards)"
        );
    }
    {
        let mut read = tx
            .prepare(
                "SELECT card_hash, name_hash, masked, status, updated_at \
                 FROM registry_by_hash ORDER BY card_hash",
            )
            .map_err(err)?;
        let mut writer = RowWriter::new(tx).map_err(err)?;
        let mut rows = read.query([]).map_err(err)?;
        while let Some(r) = rows.next().map_err(err)? {
            let row = RegistryRow {
                card_hash: r.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(err)?,
                name_hash: r.get_ref(1).and_then(|v| Ok(v.as_blob()?)).map_err(err)?,
                masked: r.get_ref(2).and_then(|v| Ok(v.as_str()?)).map_err(err)?,
                status: r.get_ref(3).and_then(|v| Ok(v.as_str()?)).map_err(err)?,
                updated_at: r.get(4).map_err(err)?,
            };
            writer
                .put(&row)
                .map_err(|e| format!("registry migration: {e}"))?;
        }
    }
    tx.execute_batch("DROP TABLE registry_by_hash")
        .map_err(err)?;
    if has_rows {
        // The old copy's pages are now free inside the file: give them back at the
        // next chance outside this transaction ([`reclaim_after_conversion`]).
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, x'01')",
            [RECLAIM_PENDING],
        )
        .map_err(err)?;
    }
    Ok(())
}

/// The conversion writes a second copy of the registry into the WAL and then into the
/// file (which grows by as much before the old copy's pages can be freed): about twice
/// the database's size must be free on its volume. Refused up front, with nothing
/// changed, rather than failing half-way with the disk full and the WAL too large to
/// fold back (the store could then not even open its ledger).
fn check_space_for_conversion(tx: &rusqlite::Transaction<'_>) -> Result<(), String> {
    let Some(dir) = tx.path().filter(|p| !p.is_empty()).and_then(|p| {
        std::path::Path::new(p)
            .parent()
            .map(std::path::Path::to_path_buf)
    }) else {
        return Ok(());
    };
    let pages = PageCounts::read(tx).map_err(|e| format!("registry migration: {e}"))?;
    conversion_space_check(pages.total_bytes(), free_bytes_at(&dir))
}

/// [`check_space_for_conversion`]'s rule: about 2.1 times the database free.
fn conversion_space_check(database_bytes: u64, free: Option<u64>) -> Result<(), String> {
    require_free(database_bytes.saturating_mul(21) / 10, free).map_err(|shortfall| {
        format!(
            "converting the registry to this build's layout {shortfall} on the data \
             directory's volume; nothing was changed (an older build still opens it): free \
             some space and run again (docs/operations.md, Upgrading)"
        )
    })
}

/// `Err("needs about N MB free and M MB are free")` when `free` (if known) is short of
/// `needed`: the one space rule of the conversion and of its VACUUM.
fn require_free(needed: u64, free: Option<u64>) -> Result<(), String> {
    match free {
        Some(free) if free < needed => Err(format!(
            "needs about {} MB free and {} MB are free",
            needed.div_ceil(1 << 20),
            free >> 20
        )),
        _ => Ok(()),
    }
}

/// Bytes this process may still write on the volume holding `dir`, where known.
fn free_bytes_at(dir: &std::path::Path) -> Option<u64> {
    #[cfg(unix)]
    {
        let stats = rustix::fs::statvfs(dir).ok()?;
        Some(stats.f_bavail.saturating_mul(stats.f_frsize))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// The database file's pages, as SQLite counts them.
struct PageCounts {
    total: u64,
    free: u64,
    size: u64,
}

impl PageCounts {
    fn read(conn: &Connection) -> rusqlite::Result<PageCounts> {
        conn.query_row(
            "SELECT page_count, freelist_count, page_size \
             FROM pragma_page_count, pragma_freelist_count, pragma_page_size",
            [],
            |r| {
                let n = |i| r.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0));
                Ok(PageCounts {
                    total: n(0)?,
                    free: n(1)?,
                    size: n(2)?,
                })
            },
        )
    }

    fn total_bytes(&self) -> u64 {
        self.total.saturating_mul(self.size)
    }

    fn free_bytes(&self) -> u64 {
        self.free.saturating_mul(self.size)
    }

    fn live_bytes(&self) -> u64 {
        self.total_bytes().saturating_sub(self.free_bytes())
    }
}

/// `meta` key set by [`migrate_to_slots`] in the conversion's own transaction, so that a
/// process stopped after it still reclaims the space on the next open.
const RECLAIM_PENDING: &str = "registry_reclaim_pending";

/// Runs `VACUUM` once after a conversion: the registry never deletes rows, so the old
/// copy's pages (half of a large file) would otherwise stay free for good. Best
/// effort: it needs about the database's live size free on its volume (the pages go
/// through the WAL once more) and as much in the temporary directory, and a failure
/// (disk full) only costs space, so it is logged and not retried — the store opens
/// either way. The marker goes first, so that a failure cannot leave it behind to be
/// retried (and fail) at every open; the WAL is truncated before and after, so that a
/// failed attempt does not keep the disk full.
pub(super) fn reclaim_after_conversion(conn: &Connection, path: &std::path::Path) {
    let pending = conn
        .query_row(
            "SELECT 1 FROM meta WHERE key = ?1",
            [RECLAIM_PENDING],
            |_| Ok(()),
        )
        .is_ok();
    if !pending {
        return;
    }
    // The conversion's pages are in the WAL, as large as the registry: fold them into
    // the database and give the WAL's space back before anything else is written.
    let truncate_wal = || conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    let _ = truncate_wal();
    if let Err(e) = conn.execute("DELETE FROM meta WHERE key = ?1", [RECLAIM_PENDING]) {
        tracing::warn!(database = %path.display(), error = %e, "cannot reclaim the space of the registry's old layout");
        return;
    }
    let vacuumed = PageCounts::read(conn)
        .map_err(|e| e.to_string())
        .and_then(|pages| {
            tracing::warn!(
                free_bytes = pages.free_bytes(),
                "reclaiming the space of the registry's old layout (VACUUM, once)"
            );
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            require_free(
                pages.live_bytes().saturating_mul(11) / 10,
                free_bytes_at(dir),
            )
            .map_err(|shortfall| format!("it {shortfall} on the volume"))?;
            conn.execute_batch("VACUUM").map_err(|e| e.to_string())
        });
    let _ = truncate_wal();
    if let Err(e) = vacuumed {
        tracing::warn!(
            database = %path.display(),
            error = %e,
            "could not reclaim the space of the registry's old layout; the store works as it \
             is. To reclaim it later, stop the server and run `sqlite3 cardcheck.db VACUUM` \
             with about the database's size free on its volume and as much in the temporary \
             directory"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rusqlite::OptionalExtension;

    fn table() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE registry (slot INTEGER PRIMARY KEY, card_hash BLOB NOT NULL, \
             name_hash BLOB NOT NULL, masked TEXT NOT NULL, status TEXT NOT NULL, \
             updated_at INTEGER NOT NULL)",
        )
        .unwrap();
        conn
    }

    fn lookup(conn: &Connection, hash: &KeyedHash) -> Option<(Vec<u8>, String)> {
        let (lo, hi) = lookup_range(hash);
        conn.query_row(LOOKUP_SQL, params![lo, hi, hash.as_slice()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .unwrap()
    }

    fn row<'a>(hash: &'a KeyedHash, name: &'a KeyedHash, status: &'a str) -> RegistryRow<'a> {
        RegistryRow {
            card_hash: hash,
            name_hash: name,
            masked: "622576******8888",
            status,
            updated_at: 1,
        }
    }

    /// With 59 bits the last home's range ended at 2^63 - 1 and `home + 16` overflowed
    /// (a panic in debug builds, a wrapped negative slot in release).
    #[test]
    fn the_highest_card_hash_is_written_and_found_without_overflow() {
        let conn = table();
        let mut writer = RowWriter::new(&conn).unwrap();
        let name = [4u8; 16];
        for last in [0xfe, 0xff] {
            let mut h = [0xff; 16];
            h[15] = last;
            assert_eq!(
                writer.put(&row(&h, &name, "active")).unwrap(),
                PutOutcome::Inserted
            );
            assert_eq!(lookup(&conn, &h).unwrap().0, name.to_vec());
        }
        let (first, last) = lookup_range(&[0xff; 16]);
        assert!(
            first > 0 && last < i64::MAX - SLOTS_PER_HOME,
            "{first}..{last}"
        );
    }

    /// Measured on tmpfs with a 23 MB old-layout registry: the conversion filled 60 MB
    /// and failed half-way; it needs about twice the database free.
    #[test]
    fn the_conversion_is_refused_without_twice_the_database_free() {
        let mb = 1u64 << 20;
        let err = conversion_space_check(23 * mb, Some(37 * mb)).unwrap_err();
        assert!(err.contains("needs about 49 MB free"), "{err}");
        assert!(err.contains("37 MB are free"), "{err}");
        assert!(err.contains("nothing was changed"), "{err}");
        assert!(conversion_space_check(23 * mb, Some(49 * mb)).is_ok());
        assert!(conversion_space_check(0, Some(0)).is_ok());
        assert!(conversion_space_check(u64::MAX, Some(u64::MAX)).is_ok());
        // Unknown free space (no statvfs): attempted, as before the check existed.
        assert!(conversion_space_check(23 * mb, None).is_ok());
    }

    #[test]
    fn slots_sort_as_the_hashes_do_and_stay_positive() {
        let low = [0u8; 16];
        let high = [0xff; 16];
        let mut mid = [0x80; 16];
        assert_eq!(home_slot(&low), 0);
        assert!(home_slot(&high) > 0);
        assert!(home_slot(&high) + SLOTS_PER_HOME - 1 > home_slot(&mid));
        mid[0] = 0x7f;
        assert!(home_slot(&mid) < home_slot(&[0x80; 16]));
    }

    #[test]
    fn cards_sharing_a_hash_prefix_take_the_next_slots_and_are_found_by_their_full_hash() {
        let conn = table();
        let mut writer = RowWriter::new(&conn).unwrap();
        // Three hashes with the same top 58 bits, one that differs only after them.
        let hashes: Vec<KeyedHash> = (0..3u8)
            .map(|i| {
                let mut h = [7u8; 16];
                h[15] = i;
                h
            })
            .collect();
        let names = [[1u8; 16], [2u8; 16], [3u8; 16]];
        for (h, n) in hashes.iter().zip(&names) {
            assert_eq!(
                writer.put(&row(h, n, "active")).unwrap(),
                PutOutcome::Inserted
            );
        }
        let slots: Vec<i64> = conn
            .prepare("SELECT slot FROM registry ORDER BY slot")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let home = home_slot(&hashes[0]);
        assert_eq!(slots, vec![home, home + 1, home + 2]);
        for (h, n) in hashes.iter().zip(&names) {
            assert_eq!(lookup(&conn, h).unwrap().0, n.to_vec());
        }
        let mut absent = [7u8; 16];
        absent[15] = 9;
        assert_eq!(lookup(&conn, &absent), None);

        // An update lands on the card's own slot, whichever probe it took.
        assert_eq!(
            writer.put(&row(&hashes[1], &names[1], "lost")).unwrap(),
            PutOutcome::Updated
        );
        assert_eq!(
            writer.put(&row(&hashes[1], &names[1], "lost")).unwrap(),
            PutOutcome::Unchanged
        );
        assert_eq!(lookup(&conn, &hashes[1]).unwrap().1, "lost");
        assert_eq!(lookup(&conn, &hashes[0]).unwrap().1, "active");
        let count: i64 = conn
            .query_row("SELECT count(*) FROM registry", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 3);
    }

    #[test]
    fn a_full_home_is_refused_not_overwritten() {
        let conn = table();
        let mut writer = RowWriter::new(&conn).unwrap();
        let name = [1u8; 16];
        for i in 0..SLOTS_PER_HOME as u8 {
            let mut h = [9u8; 16];
            h[15] = i;
            assert_eq!(
                writer.put(&row(&h, &name, "active")).unwrap(),
                PutOutcome::Inserted
            );
        }
        let mut h = [9u8; 16];
        h[15] = 200;
        let err = writer
            .put(&row(&h, &name, "active"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("slots"), "{err}");
        assert!(err.contains("622576******8888"), "{err}");
    }
}
