//! The compact index: `/versions`, `/info/{gem}` and `/names`, and the source's root.
//!
//! A local source writes `/versions` whole (gems sorted by name, each once, versions in
//! push order); a proxy passes the upstream's through byte for byte, so clients that kept
//! a copy fetch only what was appended; a hybrid one appends its local gems' lines after
//! the upstream's (clients keep the last line's checksum for a name, and `/info` of a local
//! gem never falls through to the upstream). Lines of local gems list only what policy lets
//! the caller see, with the MD5 of the `/info` that caller is served. Upstream gems are
//! listed as the upstream lists them: their `/info` leaves out what policy refuses, and a
//! client whose copy differs from the listed MD5 asks `/info` again (a `304` when nothing
//! changed).

use batlehub_core::body::Body;
use batlehub_core::protocol::{self, Cx};
use batlehub_core::{Error, Permission, Result};
use bytes::{BufMut as _, BytesMut};
use http::{Response, StatusCode};

use crate::handlers::compact::{self, CompactDoc};
use crate::handlers::{local, proxy, view};

/// `HEAD`/`GET /`: `gem` uses a source only when its root answers `200`.
pub(crate) fn root(cx: &Cx) -> Result<Response<Body>> {
    cx.registry
        .authorize(cx.identity(), Permission::ReleasesRead, None)?;
    Ok(protocol::text(
        StatusCode::OK,
        format!("batlehub RubyGems source `{}`\n", cx.registry.name()),
    ))
}

/// The `/versions` lines of the local gems this caller may see.
async fn local_lines(cx: &Cx) -> Result<String> {
    let mut out = String::new();
    for (name, view) in view::local_views(cx).await? {
        let versions = view.versions_field();
        if versions.is_empty() {
            continue;
        }
        out.push_str(&name);
        out.push(' ');
        out.push_str(&versions);
        out.push(' ');
        out.push_str(&view.info(cx.registry.memo()).md5);
        out.push('\n');
    }
    Ok(out)
}

/// `GET /versions`.
pub(crate) async fn versions(cx: &Cx) -> Result<Response<Body>> {
    cx.registry
        .authorize(cx.identity(), Permission::ReleasesRead, None)?;
    let upstream = match cx.registry.upstream() {
        Some(_) => proxy::compact(cx, "versions").await?,
        None => None,
    };
    let has_local = cx.registry.mode() != batlehub_core::Mode::Proxy;
    let lines = if has_local {
        local_lines(cx).await?
    } else {
        String::new()
    };
    let (doc, stale) = match upstream {
        Some((doc, stale)) if lines.is_empty() => return Ok(respond(cx, &doc, stale)),
        Some((doc, stale)) => {
            // Joined once per upstream document and set of local lines (the upstream's
            // can be tens of megabytes).
            let key = format!(
                "gem-versions-hybrid:{}:{}:{}",
                cx.registry.name(),
                doc.md5,
                compact::md5_hex(lines.as_bytes())
            );
            let joined = cx
                .registry
                .memo()
                .get_or_load(&key, async {
                    let mut body = BytesMut::with_capacity(doc.body.len() + lines.len() + 1);
                    body.put_slice(&doc.body);
                    if !doc.body.is_empty() && !doc.body.ends_with(b"\n") {
                        body.put_u8(b'\n');
                    }
                    body.put_slice(lines.as_bytes());
                    let joined = CompactDoc::new(body.freeze());
                    let weight = joined.weight();
                    Ok((joined, weight))
                })
                .await?;
            return Ok(respond(cx, &joined, stale));
        }
        None => (CompactDoc::new(format!("---\n{lines}")), false),
    };
    Ok(respond(cx, &doc, stale))
}

fn respond(cx: &Cx, doc: &CompactDoc, stale: bool) -> Response<Body> {
    let mut resp = doc.respond(&cx.parts, cx.registry.memo());
    protocol::mark_stale(&mut resp, stale);
    resp
}

/// `GET /info/{gem}`.
pub(crate) async fn info(cx: &Cx, name: &str) -> Result<Response<Body>> {
    if name.starts_with(view::REFUSED_PREFIX) {
        // The gem a refused version depends on: it has no versions, so a resolver skips
        // the refused version (and names the marker when it was pinned).
        cx.registry
            .authorize(cx.identity(), Permission::ReleasesRead, None)?;
        return Ok(respond(cx, &CompactDoc::new("---\n"), false));
    }
    let view = view::require(cx, name).await?;
    Ok(respond(cx, &view.info(cx.registry.memo()), view.stale))
}

/// `GET /names`.
pub(crate) async fn names(cx: &Cx) -> Result<Response<Body>> {
    cx.registry
        .authorize(cx.identity(), Permission::ReleasesRead, None)?;
    let upstream = match cx.registry.upstream() {
        Some(_) => proxy::compact(cx, "names").await?,
        None => None,
    };
    if cx.registry.mode() == batlehub_core::Mode::Proxy {
        return match upstream {
            Some((doc, stale)) => Ok(respond(cx, &doc, stale)),
            None => Ok(respond(cx, &CompactDoc::new("---\n"), false)),
        };
    }
    let mut names = Vec::new();
    for name in local::names(cx).await? {
        match cx
            .registry
            .check_package(&cx.caller, Permission::ReleasesRead, &name)
            .await
        {
            Ok(()) => names.push(name),
            Err(
                Error::NotFound(_)
                | Error::Denied(_)
                | Error::Forbidden(_)
                | Error::Unauthorized(_),
            ) => {}
            Err(e) => return Err(e),
        }
    }
    let render = |mut names: Vec<String>| {
        names.sort();
        names.dedup();
        let mut body = String::from("---\n");
        for n in names {
            body.push_str(&n);
            body.push('\n');
        }
        CompactDoc::new(body)
    };
    let Some((doc, stale)) = upstream else {
        return Ok(respond(cx, &render(names), false));
    };
    // Merged once per upstream document and set of local names.
    let key = format!(
        "gem-names-hybrid:{}:{}:{}",
        cx.registry.name(),
        doc.md5,
        compact::md5_hex(names.join("\n").as_bytes())
    );
    let merged = cx
        .registry
        .memo()
        .get_or_load(&key, async {
            let text = String::from_utf8_lossy(&doc.body);
            let body = text.split_once("---\n").map_or(text.as_ref(), |(_, b)| b);
            names.extend(body.lines().filter(|l| !l.is_empty()).map(str::to_owned));
            let merged = render(names);
            let weight = merged.weight();
            Ok((merged, weight))
        })
        .await?;
    Ok(respond(cx, &merged, stale))
}
