//! Request bodies as the protocols send them: identity, gzip, deflate (zlib) or snappy (the
//! block format Loki's clients use), decompressed into at most `limit` bytes. A body that would
//! grow past the limit is refused as soon as it does, so a decompression bomb costs no more
//! memory than the limit.

use std::io::Read;

use axum::http::{header, HeaderMap};

use super::reply::Reject;

/// The body's bytes after its `Content-Encoding` (and, for `application/x-protobuf` pushes that
/// Loki's clients snappy-compress without saying so, the snappy block format).
pub fn decode(headers: &HeaderMap, body: &[u8], limit: usize) -> Result<Vec<u8>, Reject> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "" | "identity" => {
            if body.len() > limit {
                return Err(too_large(limit));
            }
            Ok(body.to_vec())
        }
        "gzip" | "x-gzip" => read_limited(flate2::read::MultiGzDecoder::new(body), limit, "gzip"),
        "deflate" => read_limited(flate2::read::ZlibDecoder::new(body), limit, "deflate"),
        "snappy" => snappy(body, limit),
        other => Err(Reject::Unsupported(format!(
            "Content-Encoding {other:?} is not supported (gzip, deflate, snappy)"
        ))),
    }
}

/// Snappy's block format: the decompressed length is in the header, so a bomb is refused before
/// any memory is taken for it.
pub fn snappy(body: &[u8], limit: usize) -> Result<Vec<u8>, Reject> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| Reject::BadRequest(format!("snappy body: {e}")))?;
    if len > limit {
        return Err(too_large(limit));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| Reject::BadRequest(format!("snappy body: {e}")))
}

fn read_limited(reader: impl Read, limit: usize, what: &str) -> Result<Vec<u8>, Reject> {
    let mut out = Vec::new();
    // One byte more than allowed tells "over the limit" from "exactly the limit".
    reader
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| Reject::BadRequest(format!("{what} body: {e}")))?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

fn too_large(limit: usize) -> Reject {
    Reject::TooLarge(format!(
        "body larger than {limit} bytes once decompressed (server.decompressed_limit)"
    ))
}

/// The media type of the request without its parameters, lower case.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use std::io::Write;

    fn with_encoding(enc: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_str(enc).unwrap(),
        );
        h
    }

    #[test]
    fn gzip_round_trip_and_bomb() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![b'a'; 1 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 10_000);
        let h = with_encoding("gzip");
        assert_eq!(decode(&h, &bomb, 1 << 20).unwrap().len(), 1 << 20);
        assert!(matches!(
            decode(&h, &bomb, (1 << 20) - 1),
            Err(Reject::TooLarge(_))
        ));
        assert!(matches!(
            decode(&h, b"not gzip", 100),
            Err(Reject::BadRequest(_))
        ));
    }

    #[test]
    fn snappy_bomb_refused_from_its_header() {
        let data = vec![b'x'; 100_000];
        let packed = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let h = with_encoding("snappy");
        assert_eq!(decode(&h, &packed, 100_000).unwrap(), data);
        assert!(matches!(
            decode(&h, &packed, 99_999),
            Err(Reject::TooLarge(_))
        ));
    }

    #[test]
    fn unknown_encoding_and_plain_limit() {
        assert!(matches!(
            decode(&with_encoding("br"), b"x", 10),
            Err(Reject::Unsupported(_))
        ));
        assert!(matches!(
            decode(&HeaderMap::new(), b"0123456789A", 10),
            Err(Reject::TooLarge(_))
        ));
    }
}
