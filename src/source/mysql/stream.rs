//! Streaming the binary log: event groups (GTID, BEGIN .. XID / COMMIT / ROLLBACK / XA PREPARE,
//! or one standalone statement), table maps, row events and DDL become envelopes. Each group's
//! end position is committed through the emitter, so the checkpoint covers every transaction in
//! the binlog, captured or not, and never lands inside one: statements within a transaction
//! (SAVEPOINT, ROLLBACK TO SAVEPOINT) do not end it.

use std::collections::HashMap;

use futures_util::StreamExt;
use mysql_async::binlog::events::EventData;
use mysql_async::prelude::*;
use mysql_async::BinlogStreamRequest;
use tokio::sync::watch;

use super::gtid_set::MysqlGtidSet;
use super::live::LiveTables;
use super::mariadb_events::{self, MariaGtidPos};
use super::snapshot::Snapshotter;
use super::statements::{classify_query, truncated_table, QueryKind};
use super::table::{self, table_from_information_schema, Context, Table};
use super::values::{Identity, Key, Reshaped, Row};
use super::xa::{self, Held, PreparedSet, XaStatement, Xid};
use super::{connect, included, my_err, ServerInfo, TableName};
use super::{guard, rows};
use crate::config::{MysqlSourceConfig, SnapshotMode};
use crate::core::envelope::{now_us, write_times, Change, Op, WriteJson};
use crate::core::json;
use crate::core::position::{binlog_u64, event_position, BinlogPosition, Lsn, Position};
use crate::core::snapshot::SnapshotMarker;
use crate::emit::Emitter;
use crate::error::{SessionError, SourceError};

/// The `source` block of a MySQL / MariaDB event (Debezium's MySQL field names).
pub struct SourceBlock<'a> {
    pub table: &'a Table,
    pub ts_us: i64,
    pub snapshot: SnapshotMarker,
    pub server_id: u32,
    pub gtid: Option<&'a str>,
    pub file: &'a str,
    pub pos: u64,
    /// Row number within the rows event.
    pub row: u64,
    /// The session that wrote the transaction (MySQL's BEGIN carries it; MariaDB's GTID
    /// framing does not).
    pub thread: Option<u32>,
    /// The transaction's start as one number ([`BinlogPosition::as_u64`]), for `position`.
    pub txn_start: u64,
    pub index: u64,
}

/// In the order of [`table::source_schema`]; cdcd's `position` has no Debezium field.
impl crate::core::connect::WriteTyped for SourceBlock<'_> {
    fn write_typed(&self, w: &mut dyn crate::core::connect::ValueWriter) {
        let t = self.table;
        let Some(typed) = &t.typed else {
            return w.fail("the table has no Debezium schema (the sink's encoding is cdcd's JSON)");
        };
        w.begin();
        w.string(env!("CARGO_PKG_VERSION"));
        w.string(typed.flavor);
        w.string(&typed.connector);
        w.int(self.ts_us.div_euclid(1000));
        w.string(self.snapshot.as_str());
        w.string(&t.db);
        w.null(); // sequence: Debezium's MySQL connector leaves it null
        w.int(self.ts_us);
        w.int(self.ts_us.saturating_mul(1000));
        w.string(&t.name);
        // Debezium's initial-snapshot rows carry no binlog origin: server 0, no GTID. (cdcd's
        // own JSON gives them the GTID set the snapshot was read at.)
        let initial = self.snapshot.is_snapshot() && self.snapshot != SnapshotMarker::Incremental;
        w.int(if initial { 0 } else { self.server_id.into() });
        match self.gtid.filter(|_| !initial) {
            Some(g) => w.string(g),
            None => w.null(),
        }
        w.string(self.file);
        w.int(i64::try_from(self.pos).unwrap_or(i64::MAX));
        w.int(i64::try_from(self.row).unwrap_or(i64::MAX));
        match self.thread {
            Some(t) => w.int(t.into()),
            None => w.null(),
        }
        w.null(); // query
        w.end();
    }
}

impl WriteJson for SourceBlock<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.table.source_prefix);
        write_times(out, self.ts_us);
        out.extend_from_slice(b",\"snapshot\":\"");
        out.extend_from_slice(self.snapshot.as_str().as_bytes());
        out.push(b'"');
        out.extend_from_slice(b",\"server_id\":");
        json::write_u64(out, self.server_id as u64);
        out.extend_from_slice(b",\"gtid\":");
        match self.gtid {
            Some(g) => json::write_str(out, g),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"file\":");
        json::write_str(out, self.file);
        out.extend_from_slice(b",\"pos\":");
        json::write_u64(out, self.pos);
        out.extend_from_slice(b",\"row\":");
        json::write_u64(out, self.row);
        out.extend_from_slice(b",\"thread\":");
        match self.thread {
            Some(t) => json::write_u64(out, t.into()),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"query\":null,\"position\":\"");
        event_position(out, Lsn(self.txn_start), self.snapshot.is_snapshot(), self.index);
        out.extend_from_slice(b"\"}");
    }
}

/// The server's GTID state after everything delivered so far.
enum GtidState {
    Maria(MariaGtidPos),
    Mysql(MysqlGtidSet),
}

impl GtidState {
    fn text(&self) -> Option<String> {
        let s = match self {
            GtidState::Maria(p) => p.to_string(),
            GtidState::Mysql(s) => s.to_string(),
        };
        (!s.is_empty()).then_some(s)
    }

    /// The state before the group whose GTID is `gtid` (MySQL; MariaDB's is taken before its
    /// GTID event is applied).
    fn text_without(&self, gtid: Option<&str>) -> Option<String> {
        match (self, gtid) {
            (GtidState::Mysql(set), Some(g)) => {
                let s = set.without(g).to_string();
                (!s.is_empty()).then_some(s)
            }
            _ => self.text(),
        }
    }
}

/// The binlog event group (transaction) being read. Its framing lives in the emitter; this is
/// what the `source` blocks of its events need, and how the group ends.
struct Group {
    /// The group's first event as one number ([`BinlogPosition::as_u64`]), for `position`.
    start: u64,
    gtid: Option<String>,
    /// A BEGIN (or a GTID that promises one) was seen: only XID, COMMIT, ROLLBACK or XA
    /// PREPARE ends the group. Statements inside it (SAVEPOINT, ROLLBACK TO SAVEPOINT, the
    /// CREATE of a CREATE ... SELECT) do not.
    explicit: bool,
    /// The group's first event's offset in its file.
    pos: u64,
    /// The writing session's id, from the group's BEGIN (or other first statement).
    thread: Option<u32>,
    /// An XA transaction's group: its changes are held until the outcome ([`xa`]).
    xa: Option<XaGroup>,
}

/// What an XA group keeps while it is read.
struct XaGroup {
    xid: Xid,
    /// Where the log stood before the group: the checkpoint stays there until the outcome.
    before: BinlogPosition,
    held: Vec<Held>,
    bytes: usize,
}

/// Where in the binlog an event sits: the parts of its `source` block that are not the table's.
struct At<'a> {
    file: &'a str,
    pos: u64,
    ts_us: i64,
    server_id: u32,
}

impl Group {
    /// Opens the group whose first event starts at `file`:`pos`.
    fn open(
        emitter: &mut Emitter,
        file: &str,
        pos: u64,
        ts_us: i64,
        gtid: Option<String>,
        explicit: bool,
    ) -> Result<Group, SourceError> {
        match &gtid {
            Some(g) => emitter.begin_at(format_args!("{file}:{pos} (gtid {g})"), ts_us)?,
            None => emitter.begin_at(format_args!("{file}:{pos}"), ts_us)?,
        }
        // Transaction metadata's id: the GTID, else where the transaction starts in the binlog
        // (Debezium names the BEGIN event after the anonymous GTID event; the same transaction).
        emitter.name_transaction(|| match &gtid {
            Some(g) => g.clone(),
            None => format!("file={file},pos={pos}"),
        });
        Ok(Group { start: binlog_u64(file, pos), gtid, explicit, pos, thread: None, xa: None })
    }

    /// The `source` block for the group's next event (row `row` of its rows event).
    fn source<'a>(&'a self, table: &'a Table, at: &At<'a>, row: u64, index: u64) -> SourceBlock<'a> {
        SourceBlock {
            table,
            ts_us: at.ts_us,
            snapshot: SnapshotMarker::No,
            server_id: at.server_id,
            gtid: self.gtid.as_deref(),
            file: at.file,
            pos: at.pos,
            row,
            thread: self.thread,
            txn_start: self.start,
            index,
        }
    }
}

/// How often a running snapshot looks for chunks it may emit when no event arrives.
const SNAPSHOT_TICK: std::time::Duration = std::time::Duration::from_millis(10);

const HEARTBEAT_EVENT: u8 = 27;
const MYSQL_GTID_EVENT: u8 = 33;
const MYSQL_ANONYMOUS_GTID_EVENT: u8 = 34;
const MYSQL_GTID_TAGGED_EVENT: u8 = 42;

#[allow(clippy::too_many_arguments)]
pub async fn run(
    my: &MysqlSourceConfig,
    info: &ServerInfo,
    ctx: Context,
    start: BinlogPosition,
    use_gtid: bool,
    emitter: &mut Emitter,
    mut shutdown: watch::Receiver<bool>,
    mut snapshot: Snapshotter,
    mut live: LiveTables,
) -> Result<(), SessionError> {
    let mut conn = connect(my).await?;
    let q = |e| my_err("binlog stream", e);
    // The server sends a heartbeat when it has nothing else to send, so silence longer than the
    // timeout means the connection or the server is gone, not that the tables are idle.
    let timeout = std::time::Duration::from_secs(my.timeout_secs);
    let heartbeat_ns = (timeout / 3).as_nanos();
    conn.query_drop(format!("SET @master_heartbeat_period = {heartbeat_ns}")).await.map_err(q)?;
    conn.query_drop("SET @master_binlog_checksum = @@global.binlog_checksum").await.map_err(q)?;
    // The GTID state after everything delivered: MariaDB positions or a MySQL GTID set.
    let start_gtid = start.gtid.as_deref().unwrap_or("");
    let mut gtid = if info.mariadb {
        GtidState::Maria(MariaGtidPos::parse(start_gtid).map_err(SourceError::Fatal)?)
    } else {
        GtidState::Mysql(MysqlGtidSet::parse(start_gtid).map_err(SourceError::Fatal)?)
    };
    let mut request = BinlogStreamRequest::new(my.server_id);
    if info.mariadb {
        conn.query_drop("SET @mariadb_slave_capability = 4").await.map_err(q)?;
    }
    match (&gtid, use_gtid) {
        (GtidState::Maria(pos), true) => {
            conn.query_drop(format!("SET @slave_connect_state = '{pos}'")).await.map_err(q)?;
        }
        (GtidState::Mysql(set), true) => {
            let sids = set
                .sid_strings()
                .iter()
                .map(|s| s.parse::<mysql_async::Sid<'static>>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SourceError::Fatal(format!("checkpoint GTID set: {e}")))?;
            request = request.with_gtid().with_gtid_set(sids);
        }
        (_, false) => request = request.with_filename(start.file.as_bytes()).with_pos(start.pos),
    }
    let mut stream = conn.get_binlog_stream(request).await.map_err(q)?;
    tracing::info!(position = %Position::Mysql(start.clone()), by = if use_gtid { "gtid" } else { "file" }, "streaming binlog");
    emitter.set_state(if snapshot.is_running() {
        crate::core::status::State::Snapshotting
    } else {
        crate::core::status::State::Streaming
    });
    // While a snapshot runs, chunks may wait for the stream or for earlier chunks to be
    // checkpointed; on a quiet server no event would come to emit them, so look on a short tick.
    let mut snapshot_tick = tokio::time::interval(SNAPSHOT_TICK);
    snapshot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let mut file = start.file.clone();
    // Where the last event ended, to name the place if the next one cannot be decoded.
    let mut last_end = start.pos;
    let mut fde_seen = false;
    let mut tables: HashMap<u64, Option<Table>> = HashMap::new();
    let mut group: Option<Group> = None;
    let mut payload: Option<(u64, u64)> = None;
    // MINIMAL row metadata only: columns from information_schema, per table, until the next DDL.
    let mut schemas: HashMap<TableName, Table> = HashMap::new();
    let mut schema_conn: Option<mysql_async::Conn> = None;
    let mut prepared = PreparedSet::new((my.xa_max_prepared_mb as usize) << 20);
    let initial_only = my.snapshot == SnapshotMode::InitialOnly;
    loop {
        if initial_only && group.is_none() && snapshot.taken_and_checkpointed(emitter) {
            tracing::info!("snapshot = \"initial_only\": every table was read and checkpointed; stopping");
            return Ok(());
        }
        if group.is_none() && snapshot.is_running() {
            // Between event groups: a chunk the stream has passed goes out here.
            // By GTID, the server skips the transactions the start set holds without sending
            // them (Oracle MySQL sends nothing at all before the next new one), so the stream is
            // at `start` from the outset even while the last event it saw lies before it.
            let here = BinlogPosition { file: file.clone(), pos: last_end, gtid: gtid.text() };
            let here = not_before_start(here, &start, use_gtid);
            snapshot.emit_ready(emitter, &here).await?;
        }
        let ev = tokio::select! {
            biased;
            _ = shutdown.changed() => return Ok(()),
            // Waiting for the next event is cancel-safe (the stream keeps its state).
            _ = snapshot_tick.tick(), if snapshot.is_running() || initial_only => continue,
            ev = tokio::time::timeout(timeout, guard::decode_async(|| format!("the event after {file}:{last_end}"), stream.next())) => ev.map_err(|_| SourceError::Transient(format!(
                "the server sent nothing for {} s, not even a replication heartbeat: the connection or the server is unresponsive (source.timeout_secs); reconnecting",
                timeout.as_secs()
            )))?.map_err(SourceError::Fatal)?,
        };
        if *shutdown.borrow() {
            return Ok(());
        }
        let ev = match ev {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => return Err(q(e).into()),
            None => return Err(SourceError::Transient("the server ended the binlog stream".into()).into()),
        };
        let header = ev.header();
        let raw_pos = header.log_pos() as u64;
        let kind = header.event_type_raw();
        // Events unpacked from a compressed TRANSACTION_PAYLOAD (MySQL 8) carry no position of
        // their own: they sit at the payload event's place in the binlog.
        let (log_pos, event_start) = match payload {
            Some((start, end)) if raw_pos == 0 => (end, start),
            _ => {
                payload = None;
                (raw_pos, raw_pos.saturating_sub(header.event_size() as u64))
            }
        };
        // A heartbeat is not part of the binlog: its position says nothing about where we are.
        if kind != HEARTBEAT_EVENT {
            last_end = log_pos;
        }
        let ts_us = header.timestamp() as i64 * 1_000_000;
        // The end of the current group, checkpointable once it is delivered.
        let end = |gtid: &GtidState| {
            let at = BinlogPosition { file: file.clone(), pos: log_pos, gtid: gtid.text() };
            Position::Mysql(not_before_start(at, &start, use_gtid))
        };
        match kind {
            mariadb_events::GTID => {
                let g = mariadb_events::parse_gtid(ev.data()).map_err(|e| SourceError::Fatal(e.to_string()))?;
                let xa = xa::maria_prepared_xid(ev.data()).map(|xid| XaGroup {
                    xid,
                    before: BinlogPosition { file: file.clone(), pos: event_start, gtid: gtid.text() },
                    held: Vec::new(),
                    bytes: 0,
                });
                if let GtidState::Maria(pos) = &mut gtid {
                    pos.update(g.domain_id, header.server_id(), g.seq_no);
                }
                let text = format!("{}-{}-{}", g.domain_id, header.server_id(), g.seq_no);
                // A standalone GTID (DDL) has no BEGIN/COMMIT: its one statement ends it.
                let mut opened = Group::open(emitter, &file, event_start, ts_us, Some(text), !g.standalone())?;
                opened.xa = xa;
                group = Some(opened);
                continue;
            }
            mariadb_events::GTID_LIST | mariadb_events::BINLOG_CHECKPOINT => {
                mark_between_groups(emitter, &group, &start, (&file, last_end, &gtid))?;
                continue;
            }
            mariadb_events::ANNOTATE_ROWS => continue,
            _ => {}
        }
        let data =
            match guard::decode(|| format!("{file}:{event_start}"), || ev.read_data()).map_err(SourceError::Fatal)? {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    return Err(SourceError::Fatal(format!(
                        "cannot decode binlog event type {kind} at {file}:{event_start}: {e}"
                    ))
                    .into())
                }
            };
        match data {
            EventData::FormatDescriptionEvent(_) => {
                fde_seen = true;
                mark_between_groups(emitter, &group, &start, (&file, last_end, &gtid))?;
            }
            EventData::RotateEvent(r) => {
                // The driver strips checksums once it has seen the format description; only a
                // rotate before it (the fake one that opens a dump) may still carry its CRC32:
                // MariaDB's does, Oracle MySQL 9's does not (it sends it unchecksummed to a
                // client that asked for 'ALL'). So the bytes decide: a CRC32 of the event itself.
                file = binlog_file_name(r.name_raw(), !fde_seen && ends_with_own_crc32(header, ev.data()));
                // The rotate's own position is in the file before; reading goes on here.
                last_end = r.position();
                mark_between_groups(emitter, &group, &start, (&file, last_end, &gtid))?;
            }
            EventData::GtidEvent(g)
                if matches!(kind, MYSQL_GTID_EVENT | MYSQL_GTID_TAGGED_EVENT | MYSQL_ANONYMOUS_GTID_EVENT) =>
            {
                let text = (kind != MYSQL_ANONYMOUS_GTID_EVENT).then(|| mysql_gtid_text(&g));
                if let (GtidState::Mysql(set), true) = (&mut gtid, kind != MYSQL_ANONYMOUS_GTID_EVENT) {
                    let tag = g.tag().map(|t| t.to_string()).unwrap_or_default();
                    set.add(&uuid_text(&g.sid()), &tag, g.gno());
                }
                // MySQL does not say whether a BEGIN follows; the next QUERY event tells.
                group = Some(Group::open(emitter, &file, event_start, ts_us, text, false)?);
            }
            EventData::TableMapEvent(tme) => {
                let db = tme.database_name();
                let name = tme.table_name();
                let t = if !included(&my.tables, &db, &name) && !live.is_signal(&db, &name) {
                    None
                } else if info.full_metadata() {
                    let previous = tables.get(&tme.table_id()).and_then(Option::as_ref);
                    let built = guard::decode(
                        || format!("{file}:{event_start}"),
                        || table::from_table_map(&tme, &ctx, previous),
                    );
                    Some(built.map_err(SourceError::Fatal)?.map_err(|e| SourceError::Fatal(e.to_string()))?)
                } else {
                    let key = TableName { db: db.to_string(), name: name.to_string() };
                    if !schemas.contains_key(&key) {
                        let conn = match &mut schema_conn {
                            Some(c) => c,
                            None => schema_conn.insert(connect(my).await?),
                        };
                        let t = table_from_information_schema(conn, &key, &ctx).await?;
                        schemas.insert(key.clone(), t);
                    }
                    let schema = &schemas[&key];
                    Some(table::from_table_map_minimal(&tme, schema).map_err(|e| SourceError::Fatal(e.to_string()))?)
                };
                tables.insert(tme.table_id(), t);
            }
            EventData::RowsEvent(rows) => {
                let Some(Some(table)) = tables.get(&rows.table_id()) else { continue };
                let Some(tme) = stream.get_tme(rows.table_id()) else {
                    return Err(SourceError::Transient(format!(
                        "rows for table id {} before its table map",
                        rows.table_id()
                    ))
                    .into());
                };
                if group.is_none() {
                    // Row events always follow a BEGIN; tolerate a server that omits it.
                    group = Some(Group::open(emitter, &file, event_start, ts_us, None, true)?);
                }
                let Some(g) = group.as_mut() else { continue };
                let changes =
                    guard::decode(|| format!("{file}:{event_start}"), || rows::row_changes(table, tme, &rows))
                        .and_then(|r| r)
                        .map_err(|e| SourceError::Fatal(format!("{e} (at {file}:{event_start})")))?;
                if live.is_signal(&table.db, &table.name) {
                    // Signals act at the group's end and are not published.
                    let inserted = changes.iter().filter(|c| c.op == Op::Create).filter_map(|c| c.after.as_ref());
                    live.signal_rows(table, inserted);
                    continue;
                }
                let at = At { file: &file, pos: event_start, ts_us, server_id: header.server_id() };
                if let Some(mut x) = g.xa.take() {
                    // Held until the outcome; numbered within the group, as sent ones are.
                    for c in changes {
                        if emitter.skips(c.op) {
                            continue;
                        }
                        let source = g.source(table, &at, c.row_no, x.held.len() as u64);
                        let change = change(table, c.op, c.before.as_ref(), c.after.as_ref(), &source);
                        let record = emitter.render_held(&table.topic, &change.change()).await?;
                        x.bytes += record.size();
                        // Whether chunks will match this table by key or by whole row is only
                        // known at COMMIT (a snapshot may start in between): keep both.
                        let image = image_of(table, c.before.as_ref(), table);
                        x.bytes += image.as_ref().map_or(0, Vec::len);
                        let identity = if table.identity == table.key && table.key_is_raw() {
                            record.key_identity().map(<[u8]>::to_vec)
                        } else {
                            identity_of(table, c.after.as_ref().or(c.before.as_ref()))
                        };
                        let table = TableName { db: table.db.clone(), name: table.name.clone() };
                        x.held.push(Held { record, table, identity, image });
                    }
                    prepared.reserve(x.bytes)?;
                    g.xa = Some(x);
                    continue;
                }
                let watched = snapshot.watched(&table.db, &table.name);
                let shape = watched.and_then(|_| snapshot.image_shape(&table.db, &table.name));
                for c in changes {
                    if emitter.skips(c.op) {
                        continue;
                    }
                    let source = g.source(table, &at, c.row_no, emitter.next_index());
                    emit(emitter, table, c.op, c.before.as_ref(), c.after.as_ref(), &source).await?;
                    if let Some(id) = watched {
                        let gtid = g.gtid.as_deref();
                        if let Some(shape) = &shape {
                            // No unique key to match chunk rows by: the row the change replaced
                            // or removed, whole, in the columns the chunks are read with.
                            let image = image_of(table, c.before.as_ref(), shape);
                            snapshot.record(id, g.start, gtid, image.as_deref());
                        } else if table.identity == table.key && table.key_is_raw() {
                            // Snapshot chunks are told apart by identity, which is the message
                            // key unless `key_columns` replaced a primary key.
                            snapshot.record(id, g.start, gtid, emitter.last_key());
                        } else {
                            let identity = identity_of(table, c.after.as_ref().or(c.before.as_ref()));
                            snapshot.record(id, g.start, gtid, identity.as_deref());
                        }
                    }
                }
            }
            EventData::XaPrepareLogEvent(body) if group.as_ref().is_some_and(|g| g.xa.is_some()) => {
                let Some((start, gtid_of_group, XaGroup { xid, before, held, .. })) =
                    group.take().and_then(|g| Some((g.start, g.gtid, g.xa?)))
                else {
                    continue;
                };
                // MySQL logs `XA COMMIT ... ONE PHASE` as this event with its first byte set
                // (one_phase), and no XA COMMIT after it: the outcome is here.
                if <[u8]>::first(&body) == Some(&1) {
                    publish_held(emitter, &mut snapshot, held, start, gtid_of_group.as_deref()).await?;
                    end_group(emitter, &mut live, &mut snapshot, end(&gtid)).await?;
                    continue;
                }
                // Taken before the group's end is marked, so the checkpoint never passes it; a
                // transaction that changed no captured table holds nothing back.
                let hold = (!held.is_empty()).then(|| emitter.hold(Position::Mysql(before)));
                tracing::debug!(%xid, changes = held.len(), "XA transaction prepared; its changes wait for XA COMMIT");
                if let Some(stale) = prepared.prepare(xid, held, hold) {
                    emitter.release(stale);
                }
                end_group(emitter, &mut live, &mut snapshot, end(&gtid)).await?;
            }
            EventData::XidEvent(_) | EventData::XaPrepareLogEvent(_) => match group.take() {
                Some(_) => end_group(emitter, &mut live, &mut snapshot, end(&gtid)).await?,
                None => {
                    tracing::warn!(at = %format_args!("{file}:{event_start}"), "transaction end without a transaction start in the binlog; ignored")
                }
            },
            EventData::QueryEvent(qe) => {
                let sql = qe.query();
                let trimmed = sql.trim();
                // The group's first statement names the session (a GTID event opened it).
                let thread = Some(qe.thread_id());
                if let Some(statement) = xa::statement(trimmed) {
                    let before = |g: &Group| BinlogPosition {
                        file: file.clone(),
                        pos: g.pos,
                        gtid: gtid.text_without(g.gtid.as_deref()),
                    };
                    match statement {
                        // MySQL opens an XA transaction's group with XA START.
                        XaStatement::Start(xid) => match &mut group {
                            Some(g) => {
                                g.explicit = true;
                                g.thread = g.thread.or(thread);
                                g.xa = Some(XaGroup { before: before(g), xid, held: Vec::new(), bytes: 0 });
                            }
                            None => {
                                let mut g = Group::open(emitter, &file, event_start, ts_us, None, true)?;
                                g.thread = thread;
                                g.xa = Some(XaGroup { before: before(&g), xid, held: Vec::new(), bytes: 0 });
                                group = Some(g);
                            }
                        },
                        XaStatement::Commit { xid, one_phase } => {
                            let Some(g) = group.as_mut() else { continue };
                            let (held, hold) = match g.xa.take() {
                                // ONE PHASE ends the group that holds the changes.
                                Some(x) if one_phase && x.xid == xid => (Some(x.held), None),
                                other => {
                                    g.xa = other;
                                    match prepared.take(&xid) {
                                        Some((held, hold)) => (Some(held), hold),
                                        None => (None, None),
                                    }
                                }
                            };
                            // The hold keeps the checkpoint before the PREPARE until the changes
                            // published here are delivered, not merely sent.
                            if let Some(h) = hold {
                                emitter.release_after(h, end(&gtid));
                            }
                            match held {
                                Some(held) => {
                                    publish_held(emitter, &mut snapshot, held, g.start, g.gtid.as_deref()).await?;
                                    snapshot.note_xa(g.start, g.gtid.as_deref(), &xid);
                                }
                                None => {
                                    tracing::warn!(%xid, at = %format_args!("{file}:{event_start}"), "XA COMMIT of a transaction whose XA PREPARE lies before where cdcd started reading: its changes were not captured. Re-snapshot the tables it changed (cdcd snapshot)")
                                }
                            }
                            if !g.explicit || one_phase {
                                group = None;
                                end_group(emitter, &mut live, &mut snapshot, end(&gtid)).await?;
                            }
                        }
                        XaStatement::Rollback(xid) => {
                            if let Some((held, hold)) = prepared.take(&xid) {
                                tracing::debug!(%xid, changes = held.len(), "XA transaction rolled back; its changes are dropped");
                                if let Some(h) = hold {
                                    emitter.release(h);
                                }
                            }
                            if let Some(g) = group.take() {
                                if g.explicit && g.xa.is_none() {
                                    group = Some(g);
                                } else {
                                    end_group(emitter, &mut live, &mut snapshot, end(&gtid)).await?;
                                }
                            }
                        }
                    }
                    continue;
                }
                let kind = classify_query(trimmed);
                match kind {
                    QueryKind::Begin => {
                        match &mut group {
                            Some(g) => g.explicit = true,
                            None => group = Some(Group::open(emitter, &file, event_start, ts_us, None, true)?),
                        }
                        if let Some(g) = &mut group {
                            g.thread = g.thread.or(thread);
                        }
                        continue;
                    }
                    QueryKind::Commit | QueryKind::Rollback => {
                        if kind == QueryKind::Rollback && emitter.next_index() > 0 {
                            tracing::warn!(at = %format_args!("{file}:{event_start}"), "a ROLLBACK in the binlog after row changes: the transaction mixed non-transactional tables (their changes stay and are emitted) with transactional ones (whose row events, if any, were emitted too)");
                        }
                        if group.take().is_some() {
                            end_group(emitter, &mut live, &mut snapshot, end(&gtid)).await?;
                        }
                        continue;
                    }
                    QueryKind::RollbackToSavepoint | QueryKind::InTransaction
                        if group.as_ref().is_some_and(|g| g.explicit) =>
                    {
                        if kind == QueryKind::RollbackToSavepoint {
                            tracing::warn!(at = %format_args!("{file}:{event_start}"), "ROLLBACK TO SAVEPOINT in the binlog: the transaction changed non-transactional tables; row events of transactional tables rolled back to the savepoint were already emitted");
                        }
                        continue;
                    }
                    _ => {}
                }
                // DDL may change any table's columns: with MINIMAL metadata, read them again.
                schemas.clear();
                if group.is_none() {
                    group = Some(Group::open(emitter, &file, event_start, ts_us, None, false)?);
                }
                if let Some(g) = &mut group {
                    g.thread = g.thread.or(thread);
                }
                let Some(g) = group.as_ref() else { continue };
                if let Some((db, name)) = truncated_table(trimmed, &qe.schema()) {
                    if included(&my.tables, &db, &name) {
                        let table = Table::new(&db, &name, Vec::new(), Vec::new(), &ctx);
                        let at = At { file: &file, pos: event_start, ts_us, server_id: header.server_id() };
                        let source = g.source(&table, &at, 0, emitter.next_index());
                        emit(
                            emitter,
                            &table,
                            Op::Truncate,
                            None::<&mysql_async::binlog::row::BinlogRow>,
                            None,
                            &source,
                        )
                        .await?;
                        // A skipped TRUNCATE must not empty a snapshot chunk either: its rows
                        // would then reach nobody.
                        if let Some(id) = snapshot.watched(&db, &name).filter(|_| !emitter.skips(Op::Truncate)) {
                            snapshot.record_truncate(id, g.start, g.gtid.as_deref());
                        }
                    }
                } else {
                    tracing::debug!(query = %trimmed.chars().take(200).collect::<String>(), "DDL or statement in the binlog");
                    live.ddl(trimmed, &qe.schema());
                }
                // A statement on its own (DDL) is a whole group; inside BEGIN .. COMMIT it is not.
                if !g.explicit {
                    group = None;
                    end_group(emitter, &mut live, &mut snapshot, end(&gtid)).await?;
                }
            }
            EventData::IncidentEvent(ie) => {
                return Err(SourceError::Fatal(format!(
                    "the server wrote an INCIDENT event at {file}:{event_start} ({}): changes around it may be missing from the binlog, as a replica would also report. Check the source server's error log, then re-snapshot: stop cdcd, move the checkpoint directory away, start again",
                    ie.message()
                ))
                .into());
            }
            EventData::TransactionPayloadEvent(_) => {
                // The driver decompresses the payload and yields its events next.
                payload = Some((event_start, log_pos));
            }
            _ => {}
        }
    }
}

/// Ends the open group at `position`, with what its signals and DDL did to the snapshots.
async fn end_group(
    emitter: &mut Emitter,
    live: &mut LiveTables,
    snapshot: &mut Snapshotter,
    position: Position,
) -> Result<(), SessionError> {
    let progress = if live.has_work() { live.apply(snapshot, emitter).await? } else { None };
    emitter.commit_with(position, progress)
}

/// A place in a binlog read by GTID (where the stream stands, or where a transaction ends, as
/// a checkpoint may record it). MySQL's status row can
/// count in its offset a transaction that its GTID set does not hold yet (binary-log group
/// commit writes the binlog before the engine commits and the GTID joins the set), so streaming
/// by that set sends such a transaction from before the start offset. Its place is then the
/// start's, with its GTID added: positions never move backward, and the GTID set, which a
/// resume by GTID goes by, is exact.
fn not_before_start(at: BinlogPosition, start: &BinlogPosition, use_gtid: bool) -> BinlogPosition {
    if use_gtid && at.as_u64() < start.as_u64() {
        BinlogPosition { file: start.file.clone(), pos: start.pos, gtid: at.gtid }
    } else {
        at
    }
}

/// Events outside any transaction (a rotation, a file's header events) move the stream along
/// too: marking their place lets an idle checkpoint, and so the lag in bytes, follow the binlog
/// into a new file instead of staying at the end of the last file that held a transaction.
fn mark_between_groups(
    emitter: &mut Emitter,
    group: &Option<Group>,
    start: &BinlogPosition,
    (file, pos, gtid): (&str, u64, &GtidState),
) -> Result<(), SourceError> {
    let here = BinlogPosition { file: file.to_string(), pos, gtid: gtid.text() };
    // The events that open a session (the server's fake rotate, the file's header) may name
    // places before the resume point: only a place past it is news.
    if group.is_some() || here.partial_cmp(start) != Some(std::cmp::Ordering::Greater) {
        return Ok(());
    }
    emitter.mark_if_ahead(Position::Mysql(here))
}

async fn emit<C: super::values::Cells>(
    emitter: &mut Emitter,
    table: &Table,
    op: Op,
    before: Option<&C>,
    after: Option<&C>,
    source: &SourceBlock<'_>,
) -> Result<(), SessionError> {
    emitter.emit(&table.topic, &change(table, op, before, after, source).change()).await
}

/// Sends the changes of a committed XA transaction, held since its PREPARE; `start` and `gtid`
/// are those of the group that published them (for snapshot deduplication).
async fn publish_held(
    emitter: &mut Emitter,
    snapshot: &mut Snapshotter,
    held: Vec<Held>,
    start: u64,
    gtid: Option<&str>,
) -> Result<(), SessionError> {
    for h in held {
        emitter.send_held(&h.record).await?;
        if let Some(id) = snapshot.watched(&h.table.db, &h.table.name) {
            let by_image = snapshot.image_shape(&h.table.db, &h.table.name).is_some();
            let key = if by_image { &h.image } else { &h.identity };
            snapshot.record(id, start, gtid, key.as_deref());
        }
    }
    Ok(())
}

/// The whole row a change replaced or removed, in the columns of `shape`, as snapshot chunks of
/// a table with no unique key are matched by.
fn image_of<C: super::values::Cells>(table: &Table, before: Option<&C>, shape: &Table) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    Reshaped(Row { table, cells: before? }, shape).write_json(&mut out);
    Some(out)
}

/// A changed row's identity (see [`Table::identity`]) in JSON, `None` without one.
fn identity_of<C: super::values::Cells>(table: &Table, row: Option<&C>) -> Option<Vec<u8>> {
    let cells = row.filter(|_| !table.identity.is_empty())?;
    let mut out = Vec::new();
    Identity(Row { table, cells }).write_json(&mut out);
    Some(out)
}

/// One change's rows and key, which its [`Change`] borrows.
struct Parts<'a, C: super::values::Cells> {
    table: &'a Table,
    op: Op,
    before: Option<Row<'a, C>>,
    after: Option<Row<'a, C>>,
    key: Option<Key<'a, C>>,
    source: &'a SourceBlock<'a>,
}

fn change<'a, C: super::values::Cells>(
    table: &'a Table,
    op: Op,
    before: Option<&'a C>,
    after: Option<&'a C>,
    source: &'a SourceBlock<'a>,
) -> Parts<'a, C> {
    let key = match after.or(before) {
        Some(cells) if table.has_key() && op != Op::Truncate => Some(Key(Row { table, cells })),
        _ => None,
    };
    Parts {
        table,
        op,
        before: before.map(|cells| Row { table, cells }),
        after: after.map(|cells| Row { table, cells }),
        key,
        source,
    }
}

impl<C: super::values::Cells> Parts<'_, C> {
    fn change(&self) -> Change<'_> {
        Change {
            op: self.op,
            key: self.key.as_ref().map(|k| k as _),
            before: self.before.as_ref().map(|r| r as _),
            after: self.after.as_ref().map(|r| r as _),
            source: self.source,
            collection: &self.table.collection,
            schema: self.table.typed.as_ref().map(|t| &t.schema),
            ts_us: now_us(),
        }
    }
}

/// The fake ROTATE event that opens a stream (log position 0) arrives before the format
/// description, so its 4-byte CRC32 is still attached to the file name: strip it.
/// Whether the event's last four bytes are the CRC32 of its header and the bytes before them.
fn ends_with_own_crc32(header: mysql_common::binlog::events::BinlogEventHeader, data: &[u8]) -> bool {
    use mysql_common::proto::MySerialize;
    let Some((body, crc)) = data.split_last_chunk::<4>() else { return false };
    let mut head = Vec::with_capacity(19);
    header.serialize(&mut head);
    let mut h = crc32fast::Hasher::new();
    h.update(&head);
    h.update(body);
    h.finalize() == u32::from_le_bytes(*crc)
}

pub fn binlog_file_name(raw: &[u8], strip_checksum: bool) -> String {
    let name = if strip_checksum && raw.len() > 4 { &raw[..raw.len() - 4] } else { raw };
    String::from_utf8_lossy(name).into_owned()
}

/// `uuid:gno`, or `uuid:tag:gno` for MySQL 8.4 tagged GTIDs.
pub fn mysql_gtid_text(g: &mysql_async::binlog::events::GtidEvent) -> String {
    match g.tag() {
        Some(tag) => format!("{}:{tag}:{}", uuid_text(&g.sid()), g.gno()),
        None => format!("{}:{}", uuid_text(&g.sid()), g.gno()),
    }
}

fn uuid_text(sid: &[u8; 16]) -> String {
    let h = crate::core::text_forms::hex(sid);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_gtid_text_untagged_and_tagged() {
        use mysql_async::binlog::events::GtidEvent;
        // Server UUID b5cd1624-5f30-11e4-b4e9-1051721bd241, from a MySQL PREVIOUS_GTIDS payload
        // published in MySqlCdc's parser tests.
        let sid = [0xb5, 0xcd, 0x16, 0x24, 0x5f, 0x30, 0x11, 0xe4, 0xb4, 0xe9, 0x10, 0x51, 0x72, 0x1b, 0xd2, 0x41];
        assert_eq!(mysql_gtid_text(&GtidEvent::new(sid, 42)), "b5cd1624-5f30-11e4-b4e9-1051721bd241:42");
        let tag = mysql_common::packets::Tag::new("orders").expect("valid tag");
        assert_eq!(
            mysql_gtid_text(&GtidEvent::new_tagged(sid, tag, 7)),
            "b5cd1624-5f30-11e4-b4e9-1051721bd241:orders:7"
        );
    }

    #[test]
    fn rotate_names_lose_trailing_checksum_bytes() {
        // As received from MariaDB 10.11 in the stream's first (fake) ROTATE event.
        // As received from MariaDB 10.11 (name + CRC32).
        assert_eq!(binlog_file_name(b"binlog.000001\xe9\xd2\xca\x6e", true), "binlog.000001");
        // Constructed: a CRC32 whose first byte is printable ('S'), which a real stream produced
        // and a "keep the printable prefix" rule got wrong.
        assert_eq!(binlog_file_name(b"binlog.000002S\x01\x9c\x8a", true), "binlog.000002");
        assert_eq!(binlog_file_name(b"mysql-bin.000042", false), "mysql-bin.000042");
    }

    /// Oracle MySQL 9.7 opens a dump with a fake ROTATE without a checksum, MariaDB with one;
    /// stripping four bytes from MySQL's cut `binlog.000001` to `binlog.00` (issue 21).
    #[test]
    fn a_rotate_is_stripped_only_of_a_checksum_it_really_carries() {
        use mysql_common::binlog::consts::{EventFlags, EventType};
        use mysql_common::binlog::events::BinlogEventHeader;
        let mut body = 4u64.to_le_bytes().to_vec();
        body.extend_from_slice(b"binlog.000001");
        let size = (19 + body.len() + 4) as u32;
        let header = BinlogEventHeader::new(0, EventType::ROTATE_EVENT, 1, size, 0, EventFlags::LOG_EVENT_ARTIFICIAL_F);
        let mut head = Vec::new();
        mysql_common::proto::MySerialize::serialize(&header, &mut head);
        let crc = crc32fast::hash(&[head.as_slice(), &body].concat());
        let with_crc = [body.as_slice(), &crc.to_le_bytes()].concat();
        assert!(ends_with_own_crc32(header, &with_crc));
        assert_eq!(binlog_file_name(&with_crc[8..], ends_with_own_crc32(header, &with_crc)), "binlog.000001");
        assert!(!ends_with_own_crc32(header, &body), "no checksum: the name's last bytes are not one");
        assert_eq!(binlog_file_name(&body[8..], ends_with_own_crc32(header, &body)), "binlog.000001");
    }
}

#[cfg(test)]
mod mysql8_bytes {
    use super::super::values::Cells;
    use super::*;
    use mysql_async::binlog::events::{Event, GtidEvent, TransactionPayloadEvent};
    use mysql_common::binlog::consts::{BinlogChecksumAlg, BinlogVersion};
    use mysql_common::binlog::events::{BinlogEventFooter, FormatDescriptionEvent};
    use mysql_common::binlog::EventStreamReader;

    use crate::source::mysql::mysql8_events::*;

    #[test]
    fn real_mysql_gtid_event_gives_uuid_gno_text() {
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4)
            .with_footer(BinlogEventFooter::new(BinlogChecksumAlg::BINLOG_CHECKSUM_ALG_CRC32));
        let ev = Event::read(&fde, GTID_EVENT_WITH_CRC32).expect("GTID event");
        assert_eq!(ev.header().event_type_raw(), MYSQL_GTID_EVENT);
        let g: GtidEvent = ev.read_event().expect("GTID body");
        assert_eq!(mysql_gtid_text(&g), "439192bd-f37c-11e4-bbeb-0242ac11035a:4");
    }

    #[test]
    fn real_compressed_transaction_payload_unpacks_to_its_events() {
        // The fixture was stored without its 4-byte CRC32 although the header's event_size
        // counts it: set event_size to the bytes present, and read without checksums.
        let mut bytes = TRANSACTION_PAYLOAD_EVENT.to_vec();
        let size = bytes.len() as u32;
        bytes[9..13].copy_from_slice(&size.to_le_bytes());
        let fde = FormatDescriptionEvent::new(BinlogVersion::Version4);
        let ev = Event::read(&fde, &bytes[..]).expect("payload event");
        assert_eq!(ev.header().event_type_raw(), 40);
        let tpe: TransactionPayloadEvent<'_> = ev.read_event().expect("payload body");
        // What mysql_async does before handing the inner events to cdcd's stream loop.
        let mut inner = std::io::Cursor::new(tpe.danger_decompress());
        let mut esr = EventStreamReader::new(BinlogVersion::Version4);
        let mut seen = Vec::new();
        while let Some(e) = esr.read_decompressed(&mut inner).expect("inner event") {
            // Inner events carry no position of their own: cdcd positions them at the payload.
            assert_eq!(e.header().log_pos(), 0);
            match e.read_data().expect("decodable") {
                Some(EventData::QueryEvent(q)) => seen.push(q.query().into_owned()),
                Some(EventData::TableMapEvent(t)) => seen.push(format!("{}.{}", t.database_name(), t.table_name())),
                Some(EventData::RowsEvent(r)) => {
                    let tme = esr.get_tme(r.table_id()).expect("table map first");
                    for row in r.rows(tme) {
                        let (_, after) = row.expect("row");
                        let after = after.expect("after image");
                        let mut id = Vec::new();
                        after.write_cell(0, &table::Kind::Int { unsigned: false, bits: 64 }, &mut id);
                        let mut email = Vec::new();
                        after.write_cell(1, &table::Kind::Text { latin1: false }, &mut email);
                        seen.push(format!("{} {}", String::from_utf8_lossy(&id), String::from_utf8_lossy(&email)));
                    }
                }
                Some(EventData::XidEvent(_)) => seen.push("XID".into()),
                _ => {}
            }
        }
        assert_eq!(
            seen,
            ["BEGIN", "vt_commerce.customer", "1 \"mlord@planetscale.com\"", "2 \"sup@planetscale.com\"", "XID"]
        );
    }
}
