//! Pieces several reports share: the scan of the log (with a progress bar), and the rows that
//! describe a segment, a scan's end, the log's verdict, bytes moved aside and a snapshot file.

use serde::ser::{Error as _, SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use serde_json::{Value, to_value};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use wal_format::scan::ScanEnd;
use wal_log::inspect::{SegmentScan, Verdict};
use wal_log::{MovedAside, Vfs};
use wal_replay::DataDir;
use wal_replay::snapshot::{SnapshotFile, SnapshotStore};

use crate::exit::Failure;
use crate::human;
use crate::output::Progress;

/// The read-only scan of the log directory, with a progress bar for a long one.
pub(crate) fn inspect(
    data: &DataDir,
    vfs: &Arc<dyn Vfs>,
) -> Result<wal_log::inspect::Inspection, Failure> {
    let mut progress = Progress::new("scanning");
    let r = wal_log::inspect::inspect(&**vfs, &data.log_dir(), &mut |d, t| progress.update(d, t));
    progress.finish();
    Ok(r?)
}

/// How a segment's scan ended: wal-format's own [`ScanEnd`], and whether its frames were read
/// (a segment after the damage, or one `stat` reads only the header of, was not). In walctl's
/// JSON, `kind` with the end's fields: `clean` (`offset`, `sealed_next`), `torn_tail` and
/// `corrupt` (`offset`, `reason`), or `not_examined` (`reason`) for a segment nobody read.
#[derive(Clone)]
pub(crate) struct SegmentEnd {
    pub(crate) end: ScanEnd,
    pub(crate) examined: bool,
}

impl Serialize for SegmentEnd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match (&self.end, self.examined) {
            // Not `corrupt` in the JSON for a segment nobody read.
            (ScanEnd::Corrupt { reason, .. }, false) => {
                let mut m = s.serialize_struct("ScanEnd", 2)?;
                m.serialize_field("kind", "not_examined")?;
                m.serialize_field("reason", reason)?;
                m.end()
            }
            (ScanEnd::Clean { offset, sealed }, _) => {
                let mut m = s.serialize_struct("ScanEnd", 3)?;
                m.serialize_field("kind", "clean")?;
                m.serialize_field("offset", offset)?;
                m.serialize_field("sealed_next", &sealed.map(|n| n.0))?;
                m.end()
            }
            (ScanEnd::TornTail { offset, reason }, _) => {
                damage_fields(s, "torn_tail", *offset, reason)
            }
            (ScanEnd::Corrupt { offset, reason }, true) => {
                damage_fields(s, "corrupt", *offset, reason)
            }
        }
    }
}

/// `kind`, `offset`, `reason`: an end at damage.
fn damage_fields<S: Serializer>(
    s: S,
    kind: &'static str,
    offset: usize,
    reason: &str,
) -> Result<S::Ok, S::Error> {
    let mut m = s.serialize_struct("ScanEnd", 3)?;
    m.serialize_field("kind", kind)?;
    m.serialize_field("offset", &offset)?;
    m.serialize_field("reason", reason)?;
    m.end()
}

impl fmt::Display for SegmentEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.end, self.examined) {
            (ScanEnd::Corrupt { reason, .. }, false) => write!(f, "not examined: {reason}"),
            (
                ScanEnd::Clean {
                    sealed: Some(n), ..
                },
                _,
            ) => write!(f, "sealed (next {})", n.0),
            (ScanEnd::Clean { .. }, _) => write!(f, "open"),
            (ScanEnd::TornTail { offset, reason }, _) => {
                write!(f, "torn tail at byte {offset}: {reason}")
            }
            (ScanEnd::Corrupt { offset, reason }, true) => {
                write!(f, "CORRUPT at byte {offset}: {reason}")
            }
        }
    }
}

/// One segment of the log as a scan found it.
#[derive(Serialize)]
pub(crate) struct SegmentRow {
    pub(crate) seq: u64,
    pub(crate) file: PathBuf,
    pub(crate) file_len: u64,
    pub(crate) data_end: u64,
    pub(crate) torn_end: u64,
    pub(crate) first_lsn: u64,
    pub(crate) last_lsn: u64,
    pub(crate) frames: u64,
    pub(crate) transactions: u64,
    pub(crate) end: SegmentEnd,
    /// False for a segment whose frames were not read (it follows the damage).
    pub(crate) examined: bool,
    pub(crate) header_error: Option<String>,
    pub(crate) payload_schema: Option<u32>,
    /// The highest LSN the segment's frames claim durable (docs/format.md 3.3); 0 for none.
    pub(crate) watermark: u64,
}

impl SegmentRow {
    /// How its scan ended, or `not examined` for a segment after the damage.
    pub(crate) fn status(&self) -> String {
        if self.examined {
            self.end.to_string()
        } else {
            "not examined (follows the damage)".to_owned()
        }
    }

    /// `0000...42.wal`: the file name without the directory.
    pub(crate) fn name(&self) -> String {
        self.file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// `first..=last`, or `first.. (empty)` for a segment without frames.
    pub(crate) fn lsn_range(&self) -> String {
        if self.last_lsn < self.first_lsn {
            format!("{}.. (empty)", self.first_lsn)
        } else {
            format!("{}..={}", self.first_lsn, self.last_lsn)
        }
    }
}

impl From<&SegmentScan> for SegmentRow {
    fn from(s: &SegmentScan) -> Self {
        SegmentRow {
            seq: s.seq.0,
            file: s.path.clone(),
            file_len: s.file_len,
            data_end: s.data_end,
            torn_end: s.torn_end,
            first_lsn: s.first_lsn.0,
            last_lsn: s.last_lsn.0,
            frames: s.frames,
            transactions: s.transactions,
            end: SegmentEnd {
                end: s.end.clone(),
                examined: s.examined,
            },
            examined: s.examined,
            header_error: s.header_error.as_ref().map(ToString::to_string),
            payload_schema: s.header.map(|h| h.payload_schema),
            watermark: s.watermark.0,
        }
    }
}

/// The log's verdict in walctl's JSON: `{"kind": "sound"}`, or `{"kind": "torn_tail"}` /
/// `{"kind": "corrupt"}` with the [`Damage`](wal_log::Damage)'s `segment`, `offset` and
/// `reason`. For `#[serde(serialize_with)]`: the reports carry wal-log's own [`Verdict`].
pub(crate) fn verdict_json<S: Serializer>(v: &Verdict, s: S) -> Result<S::Ok, S::Error> {
    let kind = match v {
        Verdict::Sound => "sound",
        Verdict::TornTail(_) => "torn_tail",
        Verdict::Corrupt(_) => "corrupt",
    };
    let damage = v.damage();
    let mut m = s.serialize_struct("Verdict", if damage.is_some() { 4 } else { 1 })?;
    m.serialize_field("kind", kind)?;
    if let Some(d) = damage {
        m.serialize_field("segment", &d.segment)?;
        m.serialize_field("offset", &d.offset)?;
        m.serialize_field("reason", &d.reason)?;
    }
    m.end()
}

/// Bytes moved aside (or to be moved aside) in walctl's JSON: a list of `from`, `offset`,
/// `bytes`, `to`, `reason`. For `#[serde(serialize_with)]`: the reports carry wal-log's own
/// [`MovedAside`].
pub(crate) fn moved_json<S: Serializer>(moved: &[MovedAside], s: S) -> Result<S::Ok, S::Error> {
    list_json(moved, s, |m| {
        Ok(vec![
            ("from", to_value(&m.from)?),
            ("offset", to_value(m.offset)?),
            ("bytes", to_value(m.bytes)?),
            ("to", to_value(&m.to)?),
            ("reason", to_value(&m.reason)?),
        ])
    })
}

/// Bytes moved aside in walctl's text, one line each, the twin of [`moved_json`]: `verb`
/// says whether they were (`moved`) or would be (`would move`).
pub(crate) fn moved_text(
    f: &mut fmt::Formatter<'_>,
    verb: &str,
    moved: &[MovedAside],
) -> fmt::Result {
    for m in moved {
        writeln!(
            f,
            "{verb} {} bytes at offset {} of {} to {} ({})",
            m.bytes,
            m.offset,
            m.from.display(),
            m.to.display(),
            m.reason
        )?;
    }
    Ok(())
}

/// A list in walctl's JSON whose items are another crate's values, each shown as the fields
/// `fields` names, in that order (a value that JSON cannot hold, such as a path that is not
/// UTF-8, is the serialiser's error): what the `serialize_with` functions that show those types
/// without copying them share.
pub(crate) fn list_json<T, S: Serializer>(
    items: &[T],
    s: S,
    fields: impl Fn(&T) -> serde_json::Result<Vec<(&'static str, Value)>>,
) -> Result<S::Ok, S::Error> {
    struct Fields(Vec<(&'static str, Value)>);
    impl Serialize for Fields {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut m = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in &self.0 {
                m.serialize_entry(k, v)?;
            }
            m.end()
        }
    }
    let items = (items.iter().map(fields))
        .collect::<serde_json::Result<Vec<_>>>()
        .map_err(S::Error::custom)?;
    s.collect_seq(items.into_iter().map(Fields))
}

/// A snapshot file and what its header says (headers only: `snapshot verify` reads bodies).
#[derive(Serialize)]
pub(crate) struct SnapshotRow {
    pub(crate) file: PathBuf,
    pub(crate) fence: u64,
    pub(crate) file_len: u64,
    pub(crate) log_id: Option<String>,
    pub(crate) created_unix_ms: Option<u64>,
    /// The same time as RFC 3339 UTC text.
    pub(crate) created: Option<String>,
    pub(crate) event_schema: Option<u32>,
    pub(crate) header_error: Option<String>,
}

impl SnapshotRow {
    pub(crate) fn read(store: &SnapshotStore, f: &SnapshotFile) -> SnapshotRow {
        let h = store.read_header(f);
        SnapshotRow {
            file: f.path.clone(),
            fence: f.fence.0,
            file_len: f.file_len,
            log_id: h.as_ref().ok().map(|h| h.log_id.to_string()),
            created_unix_ms: h.as_ref().ok().map(|h| h.created_unix_ms),
            created: h
                .as_ref()
                .ok()
                .map(|h| human::rfc3339_ms(h.created_unix_ms)),
            event_schema: h.as_ref().ok().map(|h| h.event_schema),
            header_error: h.as_ref().err().map(ToString::to_string),
        }
    }

    /// `log L created 2026-12-07T13:36:16.327Z event schema E`, or `BAD HEADER: why`.
    pub(crate) fn header_text(&self) -> String {
        match (&self.log_id, &self.header_error) {
            (_, Some(e)) => format!("BAD HEADER: {e}"),
            (id, None) => format!(
                "log {} created {} event schema {}",
                id.as_deref().unwrap_or("-"),
                self.created.as_deref().unwrap_or("-"),
                self.event_schema.unwrap_or_default()
            ),
        }
    }
}
