//! A small streaming `multipart/form-data` reader (RFC 7578) for twine uploads.
//!
//! Parts are read one after another from the request body; a part's bytes can be pulled as
//! chunks ([`Multipart::chunk`]) so the uploaded file streams to storage without being
//! buffered, while small text fields are collected with a size limit.

use batlehub_core::body::BoxError;
use batlehub_core::{Error, Result};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt as _;

/// The largest header block of one part.
const MAX_PART_HEADERS: usize = 16 * 1024;
/// The most bytes skipped before the first boundary.
const MAX_PREAMBLE: usize = 64 * 1024;

fn bad(why: &str) -> Error {
    Error::BadRequest(format!("malformed multipart/form-data upload: {why}"))
}

/// Extracts the boundary from a `multipart/form-data; boundary=...` content type.
///
/// # Errors
/// [`Error::BadRequest`] when the type is not multipart/form-data or the boundary is
/// missing or invalid (RFC 2046: 1 to 70 characters from a restricted set).
pub(crate) fn boundary(content_type: Option<&str>) -> Result<String> {
    let ct = content_type.ok_or_else(|| {
        Error::BadRequest("uploads must be multipart/form-data (no Content-Type sent)".into())
    })?;
    let mut parts = ct.split(';');
    let mime = parts.next().unwrap_or_default().trim();
    if !mime.eq_ignore_ascii_case("multipart/form-data") {
        return Err(Error::BadRequest(format!(
            "uploads must be multipart/form-data, not `{}`",
            mime.escape_default()
        )));
    }
    let value = parts
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .ok_or_else(|| bad("no boundary in Content-Type"))?;
    let ok = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
    if value.is_empty() || value.len() > 70 || !value.chars().all(ok) || value.ends_with(' ') {
        return Err(bad("invalid boundary"));
    }
    Ok(value.to_owned())
}

/// The headers of one part that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartHeader {
    /// The form field name.
    pub(crate) name: String,
    /// The file name, for file fields.
    pub(crate) filename: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first boundary.
    Start,
    /// Inside a part's body.
    Body,
    /// At a delimiter (`\r\n--boundary`), before the headers of the next part.
    Delimiter,
    /// After the closing delimiter.
    Done,
}

/// Reads a multipart body part by part.
#[derive(Debug)]
pub(crate) struct Multipart<B> {
    body: B,
    buf: BytesMut,
    /// `\r\n--boundary`.
    delimiter: Vec<u8>,
    state: State,
    eof: bool,
}

impl<B> Multipart<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    /// Starts reading `body`, whose parts are separated by `boundary`.
    pub(crate) fn new(body: B, boundary: &str) -> Self {
        Self {
            body,
            buf: BytesMut::new(),
            delimiter: format!("\r\n--{boundary}").into_bytes(),
            state: State::Start,
            eof: false,
        }
    }

    /// Reads more of the body into the buffer; `false` at its end.
    async fn fill(&mut self) -> Result<bool> {
        if self.eof {
            return Ok(false);
        }
        loop {
            match self.body.frame().await {
                None => {
                    self.eof = true;
                    return Ok(false);
                }
                Some(Err(e)) => {
                    let e: BoxError = e.into();
                    return Err(Error::BadRequest(format!("upload interrupted: {e}")));
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data()
                        && !data.is_empty()
                    {
                        self.buf.extend_from_slice(&data);
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Ensures at least `n` bytes are buffered; `false` when the body ends first.
    async fn want(&mut self, n: usize) -> Result<bool> {
        while self.buf.len() < n {
            if !self.fill().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Moves to the next part and returns its headers; `None` after the last part.
    ///
    /// Whatever is left of the current part is skipped.
    pub(crate) async fn next_part(&mut self) -> Result<Option<PartHeader>> {
        match self.state {
            State::Done => return Ok(None),
            State::Body => while self.chunk().await?.is_some() {},
            State::Start => {
                // The first boundary may come without the leading CRLF.
                let dash = self.delimiter[2..].to_vec();
                loop {
                    if let Some(pos) = find(&self.buf, &dash)
                        && (pos == 0 || self.buf[..pos].ends_with(b"\r\n"))
                    {
                        let _ = self.buf.split_to(pos + dash.len());
                        break;
                    }
                    if self.buf.len() > MAX_PREAMBLE {
                        return Err(bad("no opening boundary"));
                    }
                    if !self.fill().await? {
                        return Err(bad("no opening boundary"));
                    }
                }
                self.state = State::Delimiter;
            }
            State::Delimiter => {}
        }
        if self.state == State::Body {
            // `chunk` stopped at a delimiter; consume it.
            let _ = self.buf.split_to(self.delimiter.len());
            self.state = State::Delimiter;
        }
        if !self.want(2).await? {
            return Err(bad("the body ends after a boundary"));
        }
        if &self.buf[..2] == b"--" {
            self.state = State::Done;
            return Ok(None);
        }
        // Transport padding after the boundary, then CRLF.
        loop {
            if let Some(pos) = find(&self.buf, b"\r\n") {
                if !self.buf[..pos].iter().all(|b| *b == b' ' || *b == b'\t') {
                    return Err(bad("garbage after a boundary"));
                }
                let _ = self.buf.split_to(pos + 2);
                break;
            }
            if self.buf.len() > 1024 || !self.fill().await? {
                return Err(bad("garbage after a boundary"));
            }
        }
        let (block, consumed) = loop {
            if self.buf.starts_with(b"\r\n") {
                break (0, 2);
            }
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break (pos, pos + 4);
            }
            if self.buf.len() > MAX_PART_HEADERS {
                return Err(bad("part headers are too large"));
            }
            if !self.fill().await? {
                return Err(bad("the body ends inside part headers"));
            }
        };
        let head = self.buf.split_to(consumed);
        let header = parse_part_headers(&head[..block])?;
        self.state = State::Body;
        Ok(Some(header))
    }

    /// The next chunk of the current part's body; `None` at its end.
    pub(crate) async fn chunk(&mut self) -> Result<Option<Bytes>> {
        if self.state != State::Body {
            return Ok(None);
        }
        loop {
            if let Some(pos) = find(&self.buf, &self.delimiter) {
                if pos > 0 {
                    return Ok(Some(self.buf.split_to(pos).freeze()));
                }
                return Ok(None);
            }
            // Everything but a possible delimiter prefix at the end is part data.
            let keep = self.delimiter.len() - 1;
            if self.buf.len() > keep {
                let n = self.buf.len() - keep;
                return Ok(Some(self.buf.split_to(n).freeze()));
            }
            if !self.fill().await? {
                return Err(bad("the body ends inside a part (truncated upload?)"));
            }
        }
    }

    /// Reads the rest of the current part as UTF-8 text of at most `limit` bytes.
    pub(crate) async fn text(&mut self, name: &str, limit: usize) -> Result<String> {
        let mut out = Vec::new();
        while let Some(c) = self.chunk().await? {
            if out.len() + c.len() > limit {
                return Err(Error::BadRequest(format!(
                    "form field `{}` is larger than {limit} bytes",
                    name.escape_default()
                )));
            }
            out.extend_from_slice(&c);
        }
        String::from_utf8(out).map_err(|_| {
            Error::BadRequest(format!(
                "form field `{}` is not UTF-8",
                name.escape_default()
            ))
        })
    }
}

/// Parses the header block of a part (`Content-Disposition: form-data; name="x"; filename="y"`).
fn parse_part_headers(raw: &[u8]) -> Result<PartHeader> {
    let text = std::str::from_utf8(raw).map_err(|_| bad("part headers are not UTF-8"))?;
    let mut header = None;
    for line in text.split("\r\n") {
        let Some((key, value)) = line.split_once(':') else {
            return Err(bad("a part header line has no `:`"));
        };
        if key.trim().eq_ignore_ascii_case("content-disposition") {
            header = Some(parse_disposition(value.trim())?);
        }
    }
    header.ok_or_else(|| bad("a part has no Content-Disposition"))
}

fn parse_disposition(value: &str) -> Result<PartHeader> {
    let (kind, mut rest) = value.split_once(';').unwrap_or((value, ""));
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(bad("a part is not form-data"));
    }
    let (mut name, mut filename) = (None, None);
    loop {
        rest = rest.trim_start_matches([';', ' ', '\t']);
        if rest.is_empty() {
            break;
        }
        let Some((key, after)) = rest.split_once('=') else {
            return Err(bad("bad Content-Disposition parameter"));
        };
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (val, next) = if let Some(q) = after.strip_prefix('"') {
            let mut out = String::new();
            let mut chars = q.char_indices();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            out.push(e);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    c => out.push(c),
                }
            }
            let end = end.ok_or_else(|| bad("unterminated quoted parameter"))?;
            (out, &q[end..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        match key.as_str() {
            "name" => name = Some(val),
            "filename" => filename = Some(val),
            _ => {}
        }
        rest = next;
    }
    Ok(PartHeader {
        name: name.ok_or_else(|| bad("a part has no name"))?,
        filename,
    })
}

/// The first position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, _) = needle.split_first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let last_start = hay.len() - needle.len();
        let pos = hay[from..=last_start].iter().position(|&b| b == first)? + from;
        if hay[pos..pos + needle.len()] == *needle {
            return Some(pos);
        }
        from = pos + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    type Frames = std::vec::IntoIter<std::result::Result<http_body::Frame<Bytes>, std::io::Error>>;

    /// A body delivered in chunks of `size` bytes (to cross delimiters mid-chunk).
    fn chunked(data: &[u8], size: usize) -> StreamBody<futures::stream::Iter<Frames>> {
        let frames: Vec<_> = data
            .chunks(size)
            .map(|c| Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        StreamBody::new(futures::stream::iter(frames))
    }

    const BODY: &[u8] = b"preamble\r\n--XyZ\r\nContent-Disposition: form-data; name=\":action\"\r\n\r\nfile_upload\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"content\"; filename=\"a-1.0.tar.gz\"\r\nContent-Type: application/octet-stream\r\n\r\n\
\r\n--Xy not a boundary \r\n--XyZ\r\nContent-Disposition: form-data; name=\"sha256_digest\"\r\n\r\nabc\r\n--XyZ--\r\n";

    #[tokio::test]
    async fn parses_parts_in_any_chunking() {
        for size in [1, 2, 3, 7, 16, 1000] {
            let mut mp = Multipart::new(chunked(BODY, size), "XyZ");
            let h = mp.next_part().await.expect("ok").expect("part");
            assert_eq!(h.name, ":action");
            assert_eq!(mp.text(":action", 100).await.expect("text"), "file_upload");
            let h = mp.next_part().await.expect("ok").expect("part");
            assert_eq!(h.filename.as_deref(), Some("a-1.0.tar.gz"));
            let mut content = Vec::new();
            while let Some(c) = mp.chunk().await.expect("chunk") {
                content.extend_from_slice(&c);
            }
            assert_eq!(content, b"\r\n--Xy not a boundary ");
            let h = mp.next_part().await.expect("ok").expect("part");
            assert_eq!(h.name, "sha256_digest");
            // Skipped without reading.
            assert_eq!(mp.next_part().await.expect("ok"), None);
            assert_eq!(mp.next_part().await.expect("ok"), None);
        }
    }

    #[tokio::test]
    async fn refuses_garbage() {
        for body in [
            &b"no boundary at all"[..],
            b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--",
            b"--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\ntruncated",
            b"--XyZ\r\nContent-Disposition: attachment; name=\"a\"\r\n\r\nx\r\n--XyZ--",
            b"--XyZ junk\r\n",
        ] {
            let mut mp = Multipart::new(chunked(body, 4), "XyZ");
            let out = async {
                while mp.next_part().await?.is_some() {
                    while mp.chunk().await?.is_some() {}
                }
                Ok::<_, Error>(())
            }
            .await;
            assert!(out.is_err(), "{}", String::from_utf8_lossy(body));
        }
        let mut mp = Multipart::new(chunked(BODY, 5), "XyZ");
        mp.next_part().await.expect("ok");
        assert!(mp.text(":action", 3).await.is_err(), "limit");
    }

    #[test]
    fn boundaries() {
        assert_eq!(
            boundary(Some("multipart/form-data; boundary=\"a b\"")).expect("ok"),
            "a b"
        );
        assert_eq!(
            boundary(Some("Multipart/Form-Data;charset=utf-8; boundary=abc")).expect("ok"),
            "abc"
        );
        for bad in [
            None,
            Some("application/json"),
            Some("multipart/form-data"),
            Some("multipart/form-data; boundary="),
            Some("multipart/form-data; boundary=a\u{7f}"),
        ] {
            assert!(boundary(bad).is_err(), "{bad:?}");
        }
        let long = format!("multipart/form-data; boundary={}", "x".repeat(71));
        assert!(boundary(Some(&long)).is_err());
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
    }
}
