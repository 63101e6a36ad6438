//! Property-based fuzzing: random edits of valid inputs, and whole requests thrown at a
//! protocol's service.
//!
//! Protocol crates fuzz their own parsers with [`mutated`] (structure-aware: edits of a
//! valid archive, manifest or document reach much deeper than random bytes), and run
//! [`fuzz_suite!`](crate::fuzz_suite) for requests. The number of cases comes from
//! `PROPTEST_CASES` (256 by default; the README gives the longer run).

use std::time::Duration;

use bytes::Bytes;
use http::{Method, header};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};

use crate::TestApp;
use crate::conformance::Conformance;

/// Byte strings that parsers tend to get wrong, spliced into inputs.
const TOKENS: &[&[u8]] = &[
    b"..",
    b"/",
    b"\\",
    b"%2e%2e",
    b"%2F",
    b"%00",
    b"%ff",
    b"\0",
    b"\xff\xfe",
    b"\xc3\xa9",
    b"\xe2\x80\xae",
    b"\"",
    b"'",
    b"<",
    b"&",
    b"@",
    b":",
    b"\r\n",
    b"\r\n\r\n",
    b"--",
    b"{",
    b"}",
    b"[",
    b"]",
    b"-1",
    b"4294967295",
    b"18446744073709551616",
    b"1e999",
    b"v",
    b"+",
    b"~",
];

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(Index, u8),
    Set(Index, u8),
    Truncate(Index),
    Delete(Index, u8),
    Insert(Index, Vec<u8>),
    Token(Index, Index),
    Duplicate(Index, Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), 0u8..8).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        any::<Index>().prop_map(Edit::Truncate),
        (any::<Index>(), any::<u8>()).prop_map(|(i, n)| Edit::Delete(i, n)),
        (
            any::<Index>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Edit::Token(i, t)),
        (any::<Index>(), any::<Index>()).prop_map(|(i, j)| Edit::Duplicate(i, j)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        let at = |i: &Index| if len == 0 { 0 } else { i.index(len + 1) };
        match e {
            Edit::Flip(i, bit) if len > 0 => {
                let i = i.index(len);
                bytes[i] ^= 1 << bit;
            }
            Edit::Set(i, b) if len > 0 => {
                let i = i.index(len);
                bytes[i] = *b;
            }
            Edit::Truncate(i) => bytes.truncate(at(i)),
            Edit::Delete(i, n) => {
                let start = at(i).min(len);
                let end = (start + usize::from(*n)).min(len);
                bytes.drain(start..end);
            }
            Edit::Insert(i, b) => {
                let i = at(i).min(len);
                bytes.splice(i..i, b.iter().copied());
            }
            Edit::Token(i, t) => {
                let i = at(i).min(len);
                let token = TOKENS[t.index(TOKENS.len())];
                bytes.splice(i..i, token.iter().copied());
            }
            Edit::Duplicate(i, j) if len > 0 => {
                let start = i.index(len);
                let end = (start + 1 + j.index(64)).min(len);
                let copy = bytes[start..end].to_vec();
                bytes.splice(end..end, copy);
            }
            _ => {}
        }
    }
    bytes
}

/// `seed` after up to eight random edits (bit flips, overwrites, truncation, deletions,
/// insertions of random bytes or of tricky tokens, duplicated runs); sometimes unchanged.
pub fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(edit(), 0..8).prop_map(move |edits| apply(seed.clone(), &edits))
}

/// Like [`mutated`], picking the seed from `seeds` first.
pub fn mutated_any(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (0..n, proptest::collection::vec(edit(), 0..8))
        .prop_map(move |(i, edits)| apply(seeds[i].clone(), &edits))
}

/// A string after random edits, kept valid UTF-8 (invalid bytes replaced).
pub fn mutated_str(seed: &str) -> impl Strategy<Value = String> {
    mutated(seed.as_bytes().to_vec()).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// A request path from `seed`'s path after edits, percent-encoded where it must be so
/// that it is a valid URI (the edits still reach the router as `%xx`, `..` and `/`).
fn path_strategy(seeds: Vec<String>) -> impl Strategy<Value = String> {
    mutated_any(seeds.into_iter().map(String::into_bytes).collect()).prop_map(|b| {
        let mut out = String::from("/");
        for &c in b.strip_prefix(b"/").unwrap_or(&b) {
            if c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/%".contains(&c) {
                out.push(char::from(c));
            } else {
                out.push_str(&format!("%{c:02X}"));
            }
        }
        out
    })
}

/// The statuses answered during a run, by code.
#[derive(Default)]
struct Seen(std::sync::Mutex<std::collections::BTreeMap<u16, usize>>);

impl Seen {
    fn record(&self, status: http::StatusCode) {
        *self
            .0
            .lock()
            .expect("lock")
            .entry(status.as_u16())
            .or_default() += 1;
    }

    /// Panics with the shrunk input when the run failed, and when no answer was a success
    /// or none was `refused` (inputs that never reach past the router prove nothing).
    fn finish<E: std::fmt::Display>(
        self,
        result: Result<(), E>,
        what: &str,
        refused: impl Fn(u16) -> bool,
    ) {
        if let Err(e) = result {
            panic!("{e}");
        }
        let seen = self.0.into_inner().expect("lock");
        eprintln!("statuses: {seen:?}");
        assert!(
            seen.keys().any(|s| (200..300).contains(s)) && seen.keys().any(|s| refused(*s)),
            "the fuzzed {what} were all answered alike: {seen:?}"
        );
    }
}

/// A random request against `C`'s local registry.
#[derive(Debug, Clone)]
struct FuzzRequest {
    method: Method,
    path: String,
    body: Vec<u8>,
    keep_content_type: bool,
    who: Option<&'static str>,
}

fn request_strategy<C: Conformance>() -> impl Strategy<Value = FuzzRequest> {
    let name = C::package();
    let publish = C::publish_request(name, "1.0.0", Some("alice"));
    let publish_path = publish.uri().path().to_owned();
    let paths = vec![
        publish_path,
        C::metadata_path(name),
        C::artifact_path(name, "1.0.0"),
        C::artifact_path("@scope/a-b_c.d", "1.0.0-rc.1+build.5"),
    ];
    let seed_body = block_on(crate::collect(publish.into_body())).unwrap_or_default();
    (
        prop_oneof![
            3 => Just(Method::GET),
            3 => Just(Method::PUT),
            2 => Just(Method::POST),
            1 => Just(Method::DELETE),
            1 => Just(Method::HEAD),
            1 => Just(Method::PATCH),
        ],
        path_strategy(paths),
        mutated(seed_body.to_vec()),
        any::<bool>(),
        prop_oneof![Just(Some("alice")), Just(Some("admin")), Just(None)],
    )
        .prop_map(|(method, path, body, keep_content_type, who)| FuzzRequest {
            method,
            path,
            body,
            keep_content_type,
            who,
        })
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// Random requests (edited paths of every route, edited publish bodies, any method, with
/// and without credentials) against a local registry of `C`: no panic, no `5xx`, an answer
/// within ten seconds, and the registry still serves a clean publish and read afterwards.
///
/// # Panics
/// With the failing request, shrunk, when a property does not hold.
pub fn requests<C: Conformance>() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let app = runtime.block_on(async {
        let app = TestApp::<C::Service>::local().build().await;
        // Published first, so that unedited reads find something.
        let status = C::publish(&app, C::package(), "1.0.0", "alice").await;
        assert!(status.is_success(), "seed publish: {status}");
        app
    });
    let content_type = C::publish_request(C::package(), "1.0.0", Some("alice"))
        .headers()
        .get(header::CONTENT_TYPE)
        .cloned();
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let seen = Seen::default();
    let result = runner.run(&request_strategy::<C>(), |r| {
        let mut req = crate::request(
            r.method.clone(),
            &r.path,
            Bytes::from(r.body.clone()),
            r.who,
        );
        if r.keep_content_type
            && let Some(ct) = &content_type
        {
            req.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
        }
        let got = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(10), app.call(req)).await })
            .map_err(|_| TestCaseError::fail("no answer within 10 s"))?;
        seen.record(got.status);
        prop_assert!(
            !got.status.is_server_error(),
            "{} {} answered {}: {}",
            r.method,
            r.path,
            got.status,
            got.text()
        );
        Ok(())
    });
    // The inputs reach past the router: some requests succeed, some are refused.
    seen.finish(result, "requests", |s| (400..500).contains(&s));
    // Still healthy: a clean publish of a fresh name works and is served.
    runtime.block_on(async {
        let status = C::publish(&app, "after-the-fuzz", "1.0.0", "alice").await;
        assert!(status.is_success(), "publish after fuzzing: {status}");
        let got = app
            .call(crate::get(
                &C::metadata_path("after-the-fuzz"),
                Some("alice"),
            ))
            .await;
        assert!(
            got.status.is_success(),
            "read after fuzzing: {}",
            got.status
        );
    });
}

/// Upstream metadata documents after random edits, served to a proxy of `C` (re-read on
/// every request): reading the metadata and an artifact never panics and never answers
/// `500` (a document that cannot be understood is the upstream's fault: `502`), within ten
/// seconds each.
///
/// # Panics
/// With the failing document, shrunk, when a property does not hold.
pub fn upstream_documents<C: Conformance>() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let name = C::package();
    let (server, app, honest) = runtime.block_on(async {
        let server = wiremock::MockServer::start().await;
        C::mount_upstream(&server, name, &["1.0.0", "1.1.0-beta.1"]).await;
        let app = TestApp::<C::Service>::proxy(&C::upstream_url(&server))
            .ttl(0)
            .build()
            .await;
        let url = url::Url::parse(&format!(
            "{}{}",
            server.uri(),
            C::upstream_metadata_path(name)
        ))
        .expect("url");
        let client = app.registry.upstream().expect("a proxy has an upstream");
        let resp = client
            .get(url, http::HeaderMap::new())
            .await
            .expect("the honest upstream answers");
        let honest = resp.bytes().await.expect("the honest document").to_vec();
        (server, app, honest)
    });
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::default()
    });
    let seen = Seen::default();
    let result = runner.run(&mutated(honest), |doc| {
        runtime.block_on(async {
            server.reset().await;
            C::mount_upstream(&server, name, &["1.0.0", "1.1.0-beta.1"]).await;
            wiremock::Mock::given(wiremock::matchers::path(C::upstream_metadata_path(name)))
                .respond_with(wiremock::ResponseTemplate::new(200).set_body_bytes(doc.clone()))
                .with_priority(1)
                .mount(&server)
                .await;
        });
        for path in [C::metadata_path(name), C::artifact_path(name, "1.0.0")] {
            let got = runtime
                .block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(10),
                        app.call(crate::get(&path, Some("alice"))),
                    )
                    .await
                })
                .map_err(|_| TestCaseError::fail("no answer within 10 s"))?;
            seen.record(got.status);
            prop_assert!(
                got.status != http::StatusCode::INTERNAL_SERVER_ERROR,
                "{path} answered {}: {}",
                got.status,
                got.text()
            );
        }
        Ok(())
    });
    // Both honest documents and broken ones were served.
    seen.finish(result, "documents", |s| s >= 400);
}

/// Runs the request and upstream-document fuzzers for a protocol:
/// `batlehub_test::fuzz_suite!(MyProtocol);` in its `tests/conformance.rs`.
#[macro_export]
macro_rules! fuzz_suite {
    ($c:ty) => {
        mod fuzz_suite {
            use super::*;
            #[test]
            fn requests() {
                $crate::fuzz::requests::<$c>();
            }
            #[test]
            fn upstream_documents() {
                $crate::fuzz::upstream_documents::<$c>();
            }
        }
    };
}
