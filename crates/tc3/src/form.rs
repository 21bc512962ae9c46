//! `application/x-www-form-urlencoded` / query strings: strict decoding for the
//! server, Python-`urlencode` encoding for the signer (protocol.md §1.1, §2.2).

use crate::error::ApiError;

/// One decoded pair. Bytes, not `str`: the v1 string to sign is built from decoded
/// bytes (§2.2 step 1), and UTF-8 is checked only where a value is used.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Tencent's own message for a `key` without `=` (§5, real example).
const NO_EQUALS: &str = "Url key and value should be splited by `=`.";

/// Splits on `&`, skips empty segments, form-decodes keys and values (`+` = space,
/// `%XX`; a `%` not followed by two hex digits stays literal). A segment without `=`
/// is `InvalidParameter`; with `reject_duplicates`, so is a repeated key.
pub fn decode_pairs(src: &[u8], reject_duplicates: bool) -> Result<Vec<Pair>, ApiError> {
    let mut out: Vec<Pair> = Vec::new();
    for seg in src.split(|&b| b == b'&') {
        if seg.is_empty() {
            continue;
        }
        let Some(eq) = seg.iter().position(|&b| b == b'=') else {
            return Err(ApiError::invalid_parameter(NO_EQUALS));
        };
        let (k, v) = seg.split_at(eq);
        let key = decode_component(k);
        let value = decode_component(v.get(1..).unwrap_or_default());
        if reject_duplicates && out.iter().any(|(ek, _)| *ek == key) {
            return Err(ApiError::invalid_parameter(format!(
                "The parameter `{}` is duplicated.",
                crate::error::sanitize_name(&String::from_utf8_lossy(&key))
            )));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Whether the form/query source contains a `Signature` key (lenient scan used for
/// mode selection only; §1.6).
pub fn has_key(src: &[u8], name: &[u8]) -> bool {
    src.split(|&b| b == b'&').any(|seg| {
        let k = seg.split(|&b| b == b'=').next().unwrap_or_default();
        decode_component(k) == name
    })
}

/// Form-decodes one component.
pub fn decode_component(src: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(src.len());
    let mut i = 0;
    while let Some(&b) = src.get(i) {
        match b {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => match (
                src.get(i + 1).and_then(hex_val),
                src.get(i + 2).and_then(hex_val),
            ) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn hex_val(b: &u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Python's `urllib.parse.quote_plus(s, safe='')`: unreserved `A-Za-z0-9_.-~` kept,
/// space → `+`, everything else `%XX` (upper-case hex) of its UTF-8 bytes.
pub fn quote_plus(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 15)]));
            }
        }
    }
}

/// Python's `urlencode(pairs)`: `quote_plus(k)=quote_plus(v)` joined by `&`, in order.
pub fn urlencode<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        quote_plus(k.as_ref(), &mut out);
        out.push('=');
        quote_plus(v.as_ref(), &mut out);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decode_and_encode() {
        let p = decode_pairs(b"Name=%E5%BC%A0%E4%B8%89&&A=b+c%2B%zz&E=", true).unwrap();
        assert_eq!(p[0], (b"Name".to_vec(), "张三".as_bytes().to_vec()));
        assert_eq!(p[1], (b"A".to_vec(), b"b c+%zz".to_vec()));
        assert_eq!(p[2], (b"E".to_vec(), b"".to_vec()));
        assert!(decode_pairs(b"A=1&A=2", true).is_err());
        assert!(decode_pairs(b"A=1&A=2", false).is_ok());
        assert!(decode_pairs(b"A", false).is_err());
        assert_eq!(
            urlencode(&[("Name", "张三 x/=+")]),
            "Name=%E5%BC%A0%E4%B8%89+x%2F%3D%2B"
        );
        assert!(has_key(b"a=1&Signature=x", b"Signature"));
        assert!(!has_key(b"a=1&Signatur=x", b"Signature"));
    }
}
