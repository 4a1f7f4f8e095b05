use thiserror::Error;

/// An event could not be encoded or decoded.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// Decodes events from a payload: the half of a [`Codec`] that replay needs. Read-only tools
/// and recovery ask only for this, so an event type that is only ever read back (a tool that
/// inspects a log written by an engine) needs no encoder.
pub trait Decoder<E>: Send + Sync {
    /// Decodes one event from the start of `input`, returning it and the bytes consumed.
    ///
    /// # Errors
    /// When `input` does not start with a valid encoding.
    fn decode(&self, input: &[u8]) -> Result<(E, usize), CodecError>;
}

/// Encodes a transaction's events into a payload, and (as a [`Decoder`]) back.
///
/// A payload is the concatenation of the encoded events; each encoding must be
/// self-delimiting, so [`Decoder::decode`] reports how many bytes it consumed.
pub trait Codec<E>: Decoder<E> {
    /// Appends the encoding of `event` to `out`.
    ///
    /// # Errors
    /// When the event cannot be represented by this codec.
    fn encode(&self, event: &E, out: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// Decodes every event of a payload written by [`Codec::encode`] calls.
///
/// # Errors
/// The first decoding error, or a codec that consumed zero bytes (which would loop forever).
pub fn decode_all<E, C: Decoder<E> + ?Sized>(
    codec: &C,
    input: &[u8],
) -> Result<Vec<E>, CodecError> {
    let mut events = Vec::new();
    decode_into(codec, input, &mut events)?;
    Ok(events)
}

/// [`decode_all`], appending the events to `out`: several payloads (the records of a batch)
/// decode into one vector without a temporary one each.
///
/// # Errors
/// As [`decode_all`]; the events decoded before the error stay in `out`.
pub fn decode_into<E, C: Decoder<E> + ?Sized>(
    codec: &C,
    mut input: &[u8],
    out: &mut Vec<E>,
) -> Result<(), CodecError> {
    while !input.is_empty() {
        let (e, used) = codec.decode(input)?;
        if used == 0 || used > input.len() {
            return Err(CodecError(format!(
                "codec consumed {used} of {} bytes",
                input.len()
            )));
        }
        out.push(e);
        input = &input[used..];
    }
    Ok(())
}

/// The default codec: bincode 2 in its standard configuration (little-endian, variable-length
/// integers) through serde. Any `serde` type is an event.
///
/// Decoding is bounded: a length prefix in hostile input cannot make it allocate more than a
/// small multiple of the input's size (see [`Decoder::decode`] on this type). Valid encodings
/// are never refused by that bound. Types with zero-sized elements in sequences (`Vec<()>`)
/// can still be made to loop for a long time by a huge length prefix; do not use them in
/// events.
///
/// ```
/// use wal_format::{Bincode, Codec, decode_all};
/// let mut payload = Vec::new();
/// Bincode.encode(&("put".to_string(), 7u32), &mut payload).unwrap();
/// Bincode.encode(&("del".to_string(), 9u32), &mut payload).unwrap();
/// let events: Vec<(String, u32)> = decode_all(&Bincode, &payload).unwrap();
/// assert_eq!(events, [("put".to_string(), 7), ("del".to_string(), 9)]);
/// ```
#[cfg(feature = "bincode")]
#[derive(Clone, Copy, Debug, Default)]
pub struct Bincode;

#[cfg(feature = "bincode")]
impl<E: serde::Serialize + serde::de::DeserializeOwned> Codec<E> for Bincode {
    fn encode(&self, event: &E, out: &mut Vec<u8>) -> Result<(), CodecError> {
        bincode::serde::encode_into_std_write(event, out, bincode::config::standard())
            .map(|_| ())
            .map_err(|e| CodecError(e.to_string()))
    }
}

#[cfg(feature = "bincode")]
impl<E: serde::de::DeserializeOwned> Decoder<E> for Bincode {
    /// Decodes one event with a bincode byte limit chosen from `input.len()`.
    ///
    /// Without a limit, bincode allocates a string's or byte buffer's length as read from the
    /// input before checking that the input holds that many bytes, so nine bytes of junk can
    /// ask for an exabyte (a capacity-overflow panic or an allocation-failure abort).
    ///
    /// bincode charges its limit with the in-memory size of what it decodes: at most 16 bytes
    /// (a `u128` from a one-byte varint) per input byte consumed. A limit of at least
    /// `16 * input.len()` therefore never refuses a valid encoding, while bounding what junk
    /// can allocate to 256 times the input's size.
    fn decode(&self, input: &[u8]) -> Result<(E, usize), CodecError> {
        const KIB64: usize = 1 << 16;
        let n = input.len();
        let r = if n <= KIB64 {
            decode_limited::<E, { KIB64 * 16 }>(input)
        } else if n <= KIB64 << 4 {
            decode_limited::<E, { KIB64 << 8 }>(input)
        } else if n <= KIB64 << 8 {
            decode_limited::<E, { KIB64 << 12 }>(input)
        } else if n <= KIB64 << 12 {
            decode_limited::<E, { (KIB64 << 12).saturating_mul(16) }>(input)
        } else if n <= (KIB64 << 12).saturating_mul(16) {
            decode_limited::<E, { (KIB64 << 12).saturating_mul(256) }>(input)
        } else {
            // Inputs above 4 GiB: no allocation larger than `isize::MAX` is ever attempted.
            decode_limited::<E, { isize::MAX as usize }>(input)
        };
        r.map_err(|e| CodecError(describe(&e)))
    }
}

/// bincode's decode error in words (its `Display` is its `Debug`); the common cases of a
/// payload that does not match the type it is decoded as.
#[cfg(feature = "bincode")]
fn describe(e: &bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as D;
    match e {
        D::UnexpectedEnd { additional } => format!(
            "the payload ends before the event does (at least {additional} more byte(s) needed)"
        ),
        D::LimitExceeded => "a length in the payload is larger than the payload could hold".into(),
        D::UnexpectedVariant {
            type_name, found, ..
        } => format!("variant number {found} is not a variant of enum `{type_name}`"),
        D::Utf8 { inner } => format!("a string is not valid UTF-8 ({inner})"),
        D::InvalidBooleanValue(v) => format!("{v} is not a boolean (0 or 1)"),
        D::InvalidCharEncoding(b) => format!("bytes {b:02x?} are not a char"),
        D::ArrayLengthMismatch { required, found } => {
            format!("an array of {found} elements where the type has {required}")
        }
        D::OutsideUsizeRange(v) => format!("{v} does not fit a usize"),
        D::OtherString(s) => s.clone(),
        D::Other(s) => (*s).to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(feature = "bincode")]
fn decode_limited<E: serde::de::DeserializeOwned, const LIMIT: usize>(
    input: &[u8],
) -> Result<(E, usize), bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(input, bincode::config::standard().with_limit::<LIMIT>())
}

#[cfg(all(test, feature = "bincode"))]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    enum Ev {
        Put { key: String, value: Vec<u8> },
        Del(String),
    }

    #[test]
    fn bincode_round_trips_and_rejects_garbage() {
        let mut p = Vec::new();
        Bincode
            .encode(
                &Ev::Put {
                    key: "k".into(),
                    value: vec![1, 2],
                },
                &mut p,
            )
            .unwrap();
        Bincode.encode(&Ev::Del("k".into()), &mut p).unwrap();
        let evs: Vec<Ev> = decode_all(&Bincode, &p).unwrap();
        assert_eq!(
            evs,
            [
                Ev::Put {
                    key: "k".into(),
                    value: vec![1, 2]
                },
                Ev::Del("k".into())
            ]
        );
        assert!(decode_all::<Ev, _>(&Bincode, &[0xff, 0xff, 0xff]).is_err());
    }

    /// Decoding errors are words, not bincode's `Debug` text.
    #[test]
    fn decode_errors_read_as_words() {
        let mut p = Vec::new();
        Bincode.encode(&Ev::Del("key".into()), &mut p).unwrap();
        let short = decode_all::<Ev, _>(&Bincode, &p[..p.len() - 1]).unwrap_err();
        assert!(short.0.contains("ends before the event does"), "{short}");
        let unknown = decode_all::<Ev, _>(&Bincode, &[7]).unwrap_err();
        assert!(unknown.0.contains("variant index"), "{unknown}");
        let bad_utf8 = decode_all::<String, _>(&Bincode, &[1, 0xff]).unwrap_err();
        assert!(bad_utf8.0.contains("not valid UTF-8"), "{bad_utf8}");
        for e in [short, unknown, bad_utf8] {
            assert!(!e.0.contains('{') && !e.0.contains("Unexpected"), "{e}");
        }
    }

    #[test]
    fn huge_length_prefixes_are_refused_not_allocated() {
        // A string whose varint length (0xfd: a u64 follows) is near u64::MAX or 2^60 used to
        // panic with "capacity overflow" or abort on allocation failure.
        let mut junk = vec![0xfd];
        junk.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_all::<String, _>(&Bincode, &junk).is_err());
        junk[8] = 0x0f;
        assert!(decode_all::<String, _>(&Bincode, &junk).is_err());
        assert!(decode_all::<Ev, _>(&Bincode, &[0, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10]).is_err());
    }

    #[test]
    fn limit_never_refuses_valid_encodings_at_tier_edges() {
        // u128 zeros are the densest claim: 16 bytes of limit per encoded byte.
        for n in [0usize, 1, 65_532, 65_533, 65_534, 65_540, 300_000] {
            let v = vec![0u128; n];
            let mut p = Vec::new();
            Bincode.encode(&v, &mut p).unwrap();
            let (back, used): (Vec<u128>, usize) = Bincode.decode(&p).unwrap();
            assert_eq!((back.len(), used), (n, p.len()));
        }
        let big = "x".repeat((1 << 20) + 3);
        let mut p = Vec::new();
        Bincode.encode(&big, &mut p).unwrap();
        assert_eq!(decode_all::<String, _>(&Bincode, &p).unwrap(), [big]);
    }
}
