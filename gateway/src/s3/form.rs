//! Browser form uploads (POST object), where S3 reads the form more strictly or
//! more kindly than s3s: `${filename}` in the form's `key` field is replaced by the
//! name of the file the form carries (s3s keeps the key as sent), and a policy whose
//! `expiration` is not an ISO 8601 UTC time (`2030-01-01T00:00:00.000Z`) is refused
//! (s3s takes any RFC 3339 time). The form's fields come before its file, so the body
//! is read up to the file's part headers — at most [`MAX_FIELDS`] — then passes on
//! unchanged.

use bytes::Bytes;
use futures::StreamExt as _;
use http::Request;

/// Most bytes read ahead for the fields and the file's part headers.
const MAX_FIELDS: usize = 1 << 20;

/// `req` with `${filename}` of its key field substituted (unchanged if it has no
/// such field, no file part within [`MAX_FIELDS`], or is not a form), or the
/// refusal of its policy's expiration.
pub(super) async fn prepare(req: Request<s3s::Body>) -> Result<Request<s3s::Body>, http::Response<s3s::Body>> {
    let (mut parts, mut body) = req.into_parts();
    let Some(boundary) = boundary(&parts.headers) else { return Ok(Request::from_parts(parts, body)) };
    let mut head = Vec::new();
    let mut failed = None;
    let filename = loop {
        if let Some(name) = file_name(&head, &boundary) {
            break Some(name);
        }
        if head.len() > MAX_FIELDS {
            break None;
        }
        match body.next().await {
            Some(Ok(b)) => head.extend_from_slice(&b),
            Some(Err(e)) => {
                failed = Some(e);
                break None;
            }
            None => break None,
        }
    };
    let read = head.len();
    if let Some(expiration) = policy_expiration(&head, &boundary)
        && !iso_utc(&expiration)
    {
        return Err(super::limits::xml_error(
            http::StatusCode::BAD_REQUEST,
            "InvalidPolicyDocument",
            "Invalid Policy: Invalid 'expiration' value: it must be an ISO 8601 UTC time, 2030-01-01T00:00:00.000Z.",
        ));
    }
    if let Some(name) = filename
        && let Some(changed) = substitute(&head, &boundary, &name)
    {
        head = changed;
        let length = parts.headers.get(http::header::CONTENT_LENGTH).and_then(|v| v.to_str().ok());
        if let Some(n) = length.and_then(|v| v.parse::<usize>().ok())
            && let Ok(v) = http::HeaderValue::from_str(&(n - read + head.len()).to_string())
        {
            parts.headers.insert(http::header::CONTENT_LENGTH, v);
        }
    }
    let first = futures::stream::iter([Ok(Bytes::from(head))]);
    let rest = match failed {
        Some(e) => futures::stream::iter([Err(e)]).boxed(),
        None => body.boxed(),
    };
    let frames = first.chain(rest).map(|r| r.map(http_body::Frame::data));
    Ok(Request::from_parts(parts, s3s::Body::http_body_unsync(http_body_util::StreamBody::new(frames))))
}

/// The `expiration` of the form's policy, if the policy field was read whole and
/// is readable (s3s refuses one that is not).
fn policy_expiration(body: &[u8], boundary: &str) -> Option<String> {
    use base64::Engine as _;
    let (_, start, end) = parts(body, boundary).into_iter().find(|(h, ..)| h.contains("name=\"policy\""))?;
    let raw = base64::engine::general_purpose::STANDARD.decode(body[start..end?].trim_ascii()).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&raw).ok()?;
    doc.get("expiration")?.as_str().map(str::to_string)
}

/// `YYYY-MM-DDThh:mm:ss[.fff]Z`, a real time.
fn iso_utc(s: &str) -> bool {
    let shape = s.len() >= 20
        && s.ends_with('Z')
        && s.as_bytes().get(10) == Some(&b'T')
        && s[..19].bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            _ => b.is_ascii_digit(),
        })
        && (s.len() == 20 || (s.as_bytes()[19] == b'.' && s[20..s.len() - 1].bytes().all(|b| b.is_ascii_digit())));
    shape && time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
}

/// The boundary of a `multipart/form-data` body.
fn boundary(headers: &http::HeaderMap) -> Option<String> {
    let ct = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    let b = ct.split(';').find_map(|p| p.trim().strip_prefix("boundary="))?;
    Some(b.trim_matches('"').to_string())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// The parts seen so far: (headers, where the value starts, where it ends if seen).
fn parts(body: &[u8], boundary: &str) -> Vec<(String, usize, Option<usize>)> {
    let delimiter = format!("--{boundary}\r\n");
    let next = format!("\r\n--{boundary}");
    let mut out = Vec::new();
    let mut at = find(body, delimiter.as_bytes(), 0);
    while let Some(start) = at {
        let headers_at = start + delimiter.len();
        let Some(end) = find(body, b"\r\n\r\n", headers_at) else { break };
        let headers = String::from_utf8_lossy(&body[headers_at..end]).into_owned();
        let value = end + 4;
        let value_end = find(body, next.as_bytes(), value);
        out.push((headers, value, value_end));
        at = value_end.map(|e| e + 2);
    }
    out
}

/// The `filename` of the file part, once its headers are whole.
fn file_name(body: &[u8], boundary: &str) -> Option<String> {
    parts(body, boundary)
        .into_iter()
        .find(|(h, ..)| h.contains("name=\"file\""))
        .map(|(h, ..)| h.split("filename=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or_default().to_string())
}

/// `body` with `${filename}` in the key field's value replaced by `name`; `None`
/// if the key field has none.
fn substitute(body: &[u8], boundary: &str, name: &str) -> Option<Vec<u8>> {
    let (_, start, end) = parts(body, boundary).into_iter().find(|(h, ..)| h.contains("name=\"key\""))?;
    let value = &body[start..end?];
    let text = std::str::from_utf8(value).ok()?;
    if !text.contains("${filename}") {
        return None;
    }
    let replaced = text.replace("${filename}", name);
    Some([&body[..start], replaced.as_bytes(), &body[start + value.len()..]].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_takes_the_files_name() {
        let form = "--XyZ\r\nContent-Disposition: form-data; name=\"key\"\r\n\r\nuploads/${filename}\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"policy\"\r\n\r\nabc\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cat.jpg\"\r\n\
                    Content-Type: image/jpeg\r\n\r\nJPEGDATA";
        let name = file_name(form.as_bytes(), "XyZ").expect("the file part's headers");
        assert_eq!(name, "cat.jpg");
        let out = substitute(form.as_bytes(), "XyZ", &name).expect("substituted");
        let out = String::from_utf8(out).expect("utf-8");
        assert!(out.contains("\r\n\r\nuploads/cat.jpg\r\n--XyZ"), "{out}");
        assert!(out.ends_with("JPEGDATA"));
        assert_eq!(file_name(&form.as_bytes()[..60], "XyZ"), None, "not yet read");
        let plain = form.replace("${filename}", "fixed.bin");
        assert_eq!(substitute(plain.as_bytes(), "XyZ", "cat.jpg"), None);
    }

    #[test]
    fn policy_expirations_are_iso_8601_utc() {
        for good in ["2030-01-01T00:00:00.000Z", "2030-01-01T00:00:00Z", "2030-12-31T23:59:59.5Z"] {
            assert!(iso_utc(good), "{good}");
        }
        for bad in ["2030-01-01 00:00:00Z", "2030-01-01T00:00:00+01:00", "2030-13-01T00:00:00Z", "tomorrow", ""] {
            assert!(!iso_utc(bad), "{bad}");
        }
    }
}
