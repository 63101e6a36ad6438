//! The Simple repository API's documents: project pages and the project list, in PEP 503
//! HTML and PEP 691 JSON (with PEP 592 yanking, PEP 658/714 core metadata and PEP 700
//! `versions`, `size`, `upload-time`), rendered for clients and parsed from upstreams.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

/// The Simple API version served (PEP 700 is 1.1).
pub(crate) const API_VERSION: &str = "1.1";
/// PEP 691's JSON content type.
pub(crate) const JSON_V1: &str = "application/vnd.pypi.simple.v1+json";
/// PEP 691's HTML content type.
pub(crate) const HTML_V1: &str = "application/vnd.pypi.simple.v1+html";
/// What this registry sends upstream: JSON preferred, HTML accepted (as pip asks).
pub(crate) const UPSTREAM_ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01";

/// One distribution file on a project page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DistFile {
    /// The file name (the last path segment of its URL).
    pub(crate) filename: String,
    /// Its URL, without fragment (relative URLs are allowed in upstream pages).
    pub(crate) url: String,
    /// Hex digests by algorithm (`sha256`, ...); rendered as the `#sha256=` fragment in HTML.
    pub(crate) hashes: BTreeMap<String, String>,
    /// `Requires-Python` (`data-requires-python`, `requires-python`).
    pub(crate) requires_python: Option<String>,
    /// `None` when not yanked, else the reason (possibly empty), PEP 592.
    pub(crate) yanked: Option<String>,
    /// The PEP 658 metadata file's hashes when it exists (possibly none known), PEP 714.
    pub(crate) core_metadata: Option<BTreeMap<String, String>>,
    /// Size in bytes (PEP 700).
    pub(crate) size: Option<u64>,
    /// Upload time (PEP 700).
    pub(crate) upload_time: Option<DateTime<Utc>>,
}

/// A project page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProjectPage {
    /// The (normalized) project name.
    pub(crate) name: String,
    /// The files.
    pub(crate) files: Vec<DistFile>,
    /// Every version of the project, files or not (PEP 700).
    pub(crate) versions: Vec<String>,
}

/// The representation a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// `application/vnd.pypi.simple.v1+json`.
    Json,
    /// `application/vnd.pypi.simple.v1+html`.
    Html,
    /// `text/html` (PEP 503), the default.
    TextHtml,
}

impl Format {
    /// The `Content-Type` to answer with.
    #[must_use]
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON_V1,
            Format::Html => HTML_V1,
            Format::TextHtml => "text/html; charset=utf-8",
        }
    }
}

/// Chooses the representation from an `Accept` header (PEP 691): the acceptable type with
/// the highest q-value, ties going to the order JSON, v1 HTML, `text/html`; HTML when the
/// header is absent or nothing in it is served here.
#[must_use]
pub(crate) fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::TextHtml;
    };
    let mut best: Option<(f32, u8, Format)> = None;
    for item in accept.split(',') {
        let mut params = item.split(';');
        let mime = params
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
            .and_then(|(_, v)| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if q.is_nan() || q <= 0.0 {
            continue;
        }
        let candidates: &[(u8, Format)] =
            match mime.as_str() {
                "application/vnd.pypi.simple.v1+json"
                | "application/vnd.pypi.simple.latest+json" => &[(3, Format::Json)],
                "application/vnd.pypi.simple.v1+html"
                | "application/vnd.pypi.simple.latest+html" => &[(2, Format::Html)],
                "text/html" | "text/*" => &[(1, Format::TextHtml)],
                // A wildcard accepts the default, not JSON: old clients send `*/*`.
                "*/*" => &[(0, Format::TextHtml)],
                _ => &[],
            };
        for &(rank, format) in candidates {
            if best.is_none_or(|(bq, br, _)| q > bq || (q == bq && rank > br)) {
                best = Some((q, rank, format));
            }
        }
    }
    best.map_or(Format::TextHtml, |(_, _, f)| f)
}

/// PEP 700's time format: `yyyy-mm-ddThh:mm:ss.ffffffZ`.
#[must_use]
pub(crate) fn upload_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Escapes text for HTML content and attribute values.
#[must_use]
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn hash_attr(hashes: &BTreeMap<String, String>) -> String {
    hashes
        .get("sha256")
        .map(|h| ("sha256", h))
        .or_else(|| hashes.iter().next().map(|(k, v)| (k.as_str(), v)))
        .map_or_else(|| "true".to_owned(), |(k, v)| format!("{k}={v}"))
}

/// A project page as PEP 503 HTML (with the PEP 592/658/714 `data-` attributes).
#[must_use]
pub(crate) fn render_html(page: &ProjectPage) -> String {
    let name = escape(&page.name);
    let mut out = format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    <title>Links for {name}</title>\n  </head>\n  <body>\n    <h1>Links for {name}</h1>\n"
    );
    for f in &page.files {
        let mut href = f.url.clone();
        if let Some((alg, h)) = f
            .hashes
            .get("sha256")
            .map(|h| ("sha256", h))
            .or_else(|| f.hashes.iter().next().map(|(k, v)| (k.as_str(), v)))
        {
            href.push_str(&format!("#{alg}={h}"));
        }
        out.push_str(&format!("    <a href=\"{}\"", escape(&href)));
        if let Some(rp) = &f.requires_python {
            out.push_str(&format!(" data-requires-python=\"{}\"", escape(rp)));
        }
        if let Some(reason) = &f.yanked {
            out.push_str(&format!(" data-yanked=\"{}\"", escape(reason)));
        }
        if let Some(meta) = &f.core_metadata {
            let v = escape(&hash_attr(meta));
            out.push_str(&format!(
                " data-dist-info-metadata=\"{v}\" data-core-metadata=\"{v}\""
            ));
        }
        out.push_str(&format!(">{}</a><br />\n", escape(&f.filename)));
    }
    out.push_str("  </body>\n</html>\n");
    out
}

/// A project page as PEP 691 JSON (API version 1.1: `versions`, `size`, `upload-time`).
#[must_use]
pub(crate) fn render_json(page: &ProjectPage) -> Vec<u8> {
    /// `true` for "known to exist, no hashes known", else the hashes (PEP 714).
    #[derive(serde::Serialize)]
    #[serde(untagged)]
    enum Flag<'a> {
        Bool(bool),
        Text(&'a str),
        Hashes(&'a BTreeMap<String, String>),
    }
    #[derive(serde::Serialize)]
    struct File<'a> {
        filename: &'a str,
        url: &'a str,
        hashes: &'a BTreeMap<String, String>,
        #[serde(rename = "requires-python", skip_serializing_if = "Option::is_none")]
        requires_python: Option<&'a str>,
        yanked: Flag<'a>,
        #[serde(rename = "core-metadata", skip_serializing_if = "Option::is_none")]
        core_metadata: Option<Flag<'a>>,
        #[serde(rename = "dist-info-metadata", skip_serializing_if = "Option::is_none")]
        dist_info_metadata: Option<Flag<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        #[serde(rename = "upload-time", skip_serializing_if = "Option::is_none")]
        upload_time: Option<String>,
    }
    #[derive(serde::Serialize)]
    struct Meta {
        #[serde(rename = "api-version")]
        api_version: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Page<'a> {
        meta: Meta,
        name: &'a str,
        files: Vec<File<'a>>,
        versions: &'a [String],
    }
    fn metadata(m: &BTreeMap<String, String>) -> Flag<'_> {
        if m.is_empty() {
            Flag::Bool(true)
        } else {
            Flag::Hashes(m)
        }
    }
    let files = page
        .files
        .iter()
        .map(|f| File {
            filename: &f.filename,
            url: &f.url,
            hashes: &f.hashes,
            requires_python: f.requires_python.as_deref(),
            yanked: match f.yanked.as_deref() {
                None => Flag::Bool(false),
                Some("") => Flag::Bool(true),
                Some(r) => Flag::Text(r),
            },
            core_metadata: f.core_metadata.as_ref().map(metadata),
            dist_info_metadata: f.core_metadata.as_ref().map(metadata),
            size: f.size,
            upload_time: f.upload_time.map(upload_time),
        })
        .collect();
    let page = Page {
        meta: Meta {
            api_version: API_VERSION,
        },
        name: &page.name,
        files,
        versions: &page.versions,
    };
    // Serializing plain structs into a Vec cannot fail.
    serde_json::to_vec(&page).unwrap_or_default()
}

/// The project list (`/simple/`) as PEP 503 HTML; `projects` are `(normalized, display)`.
#[must_use]
pub(crate) fn render_index_html(projects: &[(String, String)]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"{API_VERSION}\">\n    <title>Simple index</title>\n  </head>\n  <body>\n"
    );
    for (normalized, display) in projects {
        out.push_str(&format!(
            "    <a href=\"{}/\">{}</a><br />\n",
            escape(normalized),
            escape(display)
        ));
    }
    out.push_str("  </body>\n</html>\n");
    out
}

/// The project list as PEP 691 JSON.
#[must_use]
pub(crate) fn render_index_json(projects: &[(String, String)]) -> Value {
    let list: Vec<Value> = projects.iter().map(|(_, d)| json!({ "name": d })).collect();
    json!({ "meta": { "api-version": API_VERSION }, "projects": list })
}

/// Whether an upstream response is PEP 691 JSON (by its content type, else by sniffing).
#[must_use]
pub(crate) fn is_json(content_type: Option<&str>, body: &[u8]) -> bool {
    match content_type {
        Some(ct) => {
            let ct = ct.to_ascii_lowercase();
            ct.contains("json")
        }
        None => body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{'),
    }
}

#[derive(Deserialize)]
struct JsonPage {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    files: Vec<JsonFile>,
    #[serde(default)]
    versions: Vec<String>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: BTreeMap<String, String>,
    #[serde(default, rename = "requires-python")]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: Option<Value>,
    #[serde(default, rename = "core-metadata")]
    core_metadata: Option<Value>,
    #[serde(default, rename = "dist-info-metadata")]
    dist_info_metadata: Option<Value>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "upload-time")]
    upload_time: Option<String>,
}

fn metadata_flag(v: Option<&Value>) -> Option<BTreeMap<String, String>> {
    match v? {
        Value::Bool(true) => Some(BTreeMap::new()),
        Value::Object(m) => Some(
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_ascii_lowercase())))
                .collect(),
        ),
        _ => None,
    }
}

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Parses an upstream PEP 691 JSON project page (URLs left as sent).
///
/// # Errors
/// A message when the body is not a PEP 691 project page.
pub(crate) fn parse_json(body: &[u8]) -> Result<ProjectPage, String> {
    // Straight into the page's types (a tree of a 10,000-file page weighs ~15x its text);
    // serde would also read a struct from an array.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err("not a JSON object".into());
    }
    let page: JsonPage = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    Ok(ProjectPage {
        name: page.name.unwrap_or_default(),
        files: page
            .files
            .into_iter()
            .map(|f| DistFile {
                yanked: match f.yanked {
                    Some(Value::Bool(true)) => Some(String::new()),
                    Some(Value::String(s)) => Some(s),
                    _ => None,
                },
                core_metadata: metadata_flag(f.core_metadata.as_ref())
                    .or_else(|| metadata_flag(f.dist_info_metadata.as_ref())),
                filename: f.filename,
                url: f.url,
                hashes: f
                    .hashes
                    .into_iter()
                    .map(|(k, v)| (k, v.to_ascii_lowercase()))
                    .collect(),
                requires_python: f.requires_python.filter(|s| !s.is_empty()),
                size: f.size,
                upload_time: f.upload_time.as_deref().and_then(parse_time),
            })
            .collect(),
        versions: page.versions,
    })
}

/// Parses an upstream PEP 503 HTML project page (URLs left as sent, fragments split off).
#[must_use]
pub(crate) fn parse_html(body: &str) -> ProjectPage {
    let mut page = ProjectPage::default();
    for (attrs, text) in anchors(body) {
        let Some(href) = attrs.get("href") else {
            continue;
        };
        let (url, fragment) = href.split_once('#').unwrap_or((href.as_str(), ""));
        let mut hashes = BTreeMap::new();
        if let Some((alg, h)) = fragment.split_once('=')
            && !alg.is_empty()
            && !h.is_empty()
        {
            hashes.insert(alg.to_ascii_lowercase(), h.to_ascii_lowercase());
        }
        let filename = {
            let t = text.trim();
            if t.is_empty() {
                url.rsplit('/').next().unwrap_or_default().to_owned()
            } else {
                t.to_owned()
            }
        };
        let meta_attr = attrs
            .get("data-core-metadata")
            .or_else(|| attrs.get("data-dist-info-metadata"));
        let core_metadata = meta_attr.and_then(|v| match v.split_once('=') {
            Some((alg, h)) => Some(BTreeMap::from([(
                alg.to_ascii_lowercase(),
                h.to_ascii_lowercase(),
            )])),
            None if v == "true" => Some(BTreeMap::new()),
            None => None,
        });
        page.files.push(DistFile {
            filename,
            url: url.to_owned(),
            hashes,
            requires_python: attrs
                .get("data-requires-python")
                .filter(|s| !s.is_empty())
                .cloned(),
            yanked: attrs.get("data-yanked").cloned(),
            core_metadata,
            size: None,
            upload_time: None,
        });
    }
    page
}

/// The project names of an upstream project list (JSON or HTML).
#[must_use]
pub(crate) fn parse_index(content_type: Option<&str>, body: &[u8]) -> Vec<String> {
    if is_json(content_type, body) {
        #[derive(Deserialize)]
        struct Index {
            #[serde(default)]
            projects: Vec<Name>,
        }
        #[derive(Deserialize)]
        struct Name {
            name: String,
        }
        return serde_json::from_slice::<Index>(body)
            .map(|i| i.projects.into_iter().map(|p| p.name).collect())
            .unwrap_or_default();
    }
    anchors(&String::from_utf8_lossy(body))
        .into_iter()
        .map(|(_, text)| text.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Every `<a ...>text</a>` of an HTML document: attributes (names lowercased, values
/// unescaped) and text (unescaped, tags removed).
fn anchors(html: &str) -> Vec<(BTreeMap<String, String>, String)> {
    let lower = html.to_ascii_lowercase();
    let bytes = html.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("<a") {
        let start = pos + found + 2;
        pos = start;
        if !bytes
            .get(start)
            .is_some_and(|b| b.is_ascii_whitespace() || *b == b'>')
        {
            continue;
        }
        let (attrs, after) = parse_attrs(html, start);
        let end = lower[after..].find("</a").map_or(html.len(), |e| after + e);
        let text = strip_tags(&html[after..end]);
        out.push((attrs, unescape(&text)));
        pos = end;
    }
    out
}

/// Parses attributes from `start` up to the tag's `>`; returns them and the index after `>`.
fn parse_attrs(html: &str, start: usize) -> (BTreeMap<String, String>, usize) {
    let b = html.as_bytes();
    let mut i = start;
    let mut attrs = BTreeMap::new();
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return (attrs, b.len());
        }
        if b[i] == b'>' {
            return (attrs, i + 1);
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = html[name_start..i].to_ascii_lowercase();
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut value = String::new();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let q = b[i];
                let vs = i + 1;
                let ve = html[vs..]
                    .bytes()
                    .position(|c| c == q)
                    .map_or(b.len(), |p| vs + p);
                value = unescape(&html[vs..ve]);
                i = (ve + 1).min(b.len());
            } else {
                let vs = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                value = unescape(&html[vs..i]);
            }
        }
        if !name.is_empty() {
            attrs.entry(name).or_insert(value);
        }
    }
}

fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Decodes the HTML character references upstream pages use.
#[must_use]
pub(crate) fn unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest.find(';').filter(|&semi| semi <= 10).and_then(|semi| {
            let entity = &rest[1..semi];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, semi + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values() {
        let pip = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
        assert_eq!(negotiate(Some(pip)), Format::Json);
        assert_eq!(negotiate(None), Format::TextHtml);
        assert_eq!(negotiate(Some("*/*")), Format::TextHtml);
        assert_eq!(negotiate(Some("text/html")), Format::TextHtml);
        assert_eq!(
            negotiate(Some("application/vnd.pypi.simple.v1+json;q=0.5, text/html")),
            Format::TextHtml
        );
        assert_eq!(
            negotiate(Some(
                "application/vnd.pypi.simple.v1+html, application/vnd.pypi.simple.v1+json"
            )),
            Format::Json,
            "ties go to JSON"
        );
        assert_eq!(
            negotiate(Some("application/vnd.pypi.simple.v1+json;q=0")),
            Format::TextHtml
        );
        assert_eq!(
            negotiate(Some("application/vnd.pypi.simple.latest+html")),
            Format::Html
        );
        assert_eq!(negotiate(Some("image/png")), Format::TextHtml);
    }

    #[test]
    fn html_round_trip() {
        let page = ProjectPage {
            name: "demo".into(),
            files: vec![DistFile {
                filename: "demo-1.0-py3-none-any.whl".into(),
                url: "https://files.example.invalid/x/demo-1.0-py3-none-any.whl".into(),
                hashes: BTreeMap::from([("sha256".into(), "ab".repeat(32))]),
                requires_python: Some(">=3.8,<4".into()),
                yanked: Some("bad \"build\"".into()),
                core_metadata: Some(BTreeMap::from([("sha256".into(), "cd".repeat(32))])),
                size: None,
                upload_time: None,
            }],
            versions: vec![],
        };
        let html = render_html(&page);
        assert!(
            html.contains("data-requires-python=\"&gt;=3.8,&lt;4\""),
            "{html}"
        );
        let back = parse_html(&html);
        assert_eq!(back.files, page.files);
    }

    #[test]
    fn parses_messy_html() {
        let html = "<html><body><A HREF='../../packages/a-1.0.tar.gz#SHA256=AB' data-yanked>a-1.0.tar.gz</A>\n\
            <a href=a-2.0.whl data-dist-info-metadata=true><b>a-2.0.whl</b></a><abbr>x</abbr><a name=x>no href</a>";
        let page = parse_html(html);
        assert_eq!(page.files.len(), 2);
        assert_eq!(page.files[0].url, "../../packages/a-1.0.tar.gz");
        assert_eq!(page.files[0].hashes["sha256"], "ab");
        assert_eq!(page.files[0].yanked.as_deref(), Some(""));
        assert_eq!(page.files[1].filename, "a-2.0.whl");
        assert_eq!(page.files[1].core_metadata, Some(BTreeMap::new()));
        assert_eq!(unescape("a&amp;b&#60;&#x3e;&bogus;"), "a&b<>&bogus;");
        assert_eq!(
            parse_index(None, b"<a href=\"/x/\">X_y</a><a href=\"/z/\">z</a>"),
            ["X_y", "z"]
        );
        assert_eq!(
            parse_index(Some(JSON_V1), br#"{"projects":[{"name":"A"}]}"#),
            ["A"]
        );
    }

    #[test]
    fn parses_json_pages() {
        let body = br#"{"meta":{"api-version":"1.1"},"name":"a","files":[
            {"filename":"a-1.0.tar.gz","url":"a-1.0.tar.gz","hashes":{"sha256":"AB"},"yanked":"oops",
             "core-metadata":{"sha256":"cd"},"size":3,"upload-time":"2025-01-02T03:04:05.123456Z"},
            {"filename":"a-1.1.tar.gz","url":"/x","hashes":{},"dist-info-metadata":true,"yanked":false}],
            "versions":["1.0","1.1"]}"#;
        let page = parse_json(body).expect("page");
        assert_eq!(page.files[0].yanked.as_deref(), Some("oops"));
        assert_eq!(page.files[0].hashes["sha256"], "ab");
        assert_eq!(page.files[0].size, Some(3));
        assert_eq!(
            page.files[0].upload_time.map(upload_time).as_deref(),
            Some("2025-01-02T03:04:05.123456Z")
        );
        assert_eq!(page.files[1].core_metadata, Some(BTreeMap::new()));
        assert_eq!(page.files[1].yanked, None);
        assert_eq!(page.versions, ["1.0", "1.1"]);
        assert!(parse_json(b"[]").is_err());
    }
}
