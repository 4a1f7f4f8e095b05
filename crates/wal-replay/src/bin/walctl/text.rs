//! The text of `dump`'s frequent lines (a frame, a transaction and its records), written as
//! bytes straight into the output buffer: a text dump writes one or two lines per frame, and
//! going through `fmt` (a `write_str` per piece, a UTF-8 check per chunk of hex, a copy from
//! a formatting buffer) cost more than reading and checking the log.

use std::fmt;

/// A value whose text is written as bytes: what `Display` prints, without the formatter.
pub(crate) trait Text {
    /// Appends the text to `out`.
    fn text(&self, out: &mut Vec<u8>);
}

/// `Display` for a [`Text`] value: its bytes, as a `str` (the rare path: tests, `to_string`).
pub(crate) fn fmt(value: &impl Text, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let mut out = Vec::new();
    value.text(&mut out);
    f.write_str(&String::from_utf8_lossy(&out))
}

/// `n` in decimal, right-aligned in `width` columns (at most 20).
pub(crate) fn num(out: &mut Vec<u8>, n: u64, width: usize) {
    let mut buf = [b' '; 20];
    let (mut i, mut n) = (buf.len(), n);
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let start = i.min(buf.len().saturating_sub(width));
    out.extend_from_slice(&buf[start..]);
}

/// Each byte's two lower-case hex digits.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [[0u8; 2]; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = [DIGITS[b >> 4], DIGITS[b & 0xf]];
        b += 1;
    }
    t
};

/// `bytes` as lower-case hex, two digits a byte: a table lookup and a two-byte copy each.
pub(crate) fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    let start = out.len();
    out.resize(start + bytes.len() * 2, 0);
    let digits = out.get_mut(start..).unwrap_or_default();
    for (pair, &b) in digits.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(b)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_hex_read_as_formatted_text_would() {
        for (n, width) in [(0, 0), (7, 10), (8180, 10), (u64::MAX, 10), (12345, 3)] {
            let mut out = Vec::new();
            num(&mut out, n, width);
            assert_eq!(String::from_utf8(out).ok(), Some(format!("{n:>width$}")));
        }
        let bytes: Vec<u8> = (0..=255).collect();
        let mut out = b"x".to_vec();
        hex(&mut out, &bytes);
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(String::from_utf8(out).ok(), Some(format!("x{expected}")));
    }
}
