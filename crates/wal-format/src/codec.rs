use thiserror::Error;

/// An event could not be encoded or decoded.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct CodecError(pub String);

/// Encodes a transaction's events into a payload and back.
///
/// A payload is the concatenation of the encoded events; each encoding must be
/// self-delimiting, so [`Codec::decode`] reports how many bytes it consumed.
pub trait Codec<E>: Send + Sync {
    /// Appends the encoding of `event` to `out`.
    ///
    /// # Errors
    /// When the event cannot be represented by this codec.
    fn encode(&self, event: &E, out: &mut Vec<u8>) -> Result<(), CodecError>;

    /// Decodes one event from the start of `input`, returning it and the bytes consumed.
    ///
    /// # Errors
    /// When `input` does not start with a valid encoding.
    fn decode(&self, input: &[u8]) -> Result<(E, usize), CodecError>;
}

/// Decodes every event of a payload written by [`Codec::encode`] calls.
///
/// # Errors
/// The first decoding error, or a codec that consumed zero bytes (which would loop forever).
pub fn decode_all<E, C: Codec<E> + ?Sized>(codec: &C, mut input: &[u8]) -> Result<Vec<E>, CodecError> {
    let mut events = Vec::new();
    while !input.is_empty() {
        let (e, used) = codec.decode(input)?;
        if used == 0 || used > input.len() {
            return Err(CodecError(format!("codec consumed {used} of {} bytes", input.len())));
        }
        events.push(e);
        input = &input[used..];
    }
    Ok(events)
}

/// The default codec: bincode 2 in its standard configuration (little-endian, variable-length
/// integers) through serde. Any `serde` type is an event.
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

    fn decode(&self, input: &[u8]) -> Result<(E, usize), CodecError> {
        bincode::serde::decode_from_slice(input, bincode::config::standard())
            .map_err(|e| CodecError(e.to_string()))
    }
}

#[cfg(all(test, feature = "bincode"))]
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
        Bincode.encode(&Ev::Put { key: "k".into(), value: vec![1, 2] }, &mut p).unwrap();
        Bincode.encode(&Ev::Del("k".into()), &mut p).unwrap();
        let evs: Vec<Ev> = decode_all(&Bincode, &p).unwrap();
        assert_eq!(evs, [Ev::Put { key: "k".into(), value: vec![1, 2] }, Ev::Del("k".into())]);
        assert!(decode_all::<Ev, _>(&Bincode, &[0xff, 0xff, 0xff]).is_err());
    }
}
