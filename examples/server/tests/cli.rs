//! The `batlehub-server` binary: zero-config start, graceful shutdown on SIGTERM,
//! configuration errors naming the key, `hash-token`.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_batlehub-server");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn zero_config_serves_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = Command::new(BIN)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .current_dir(dir.path())
        .env_remove("BATLEHUB_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = String::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        printed.push_str(&line);
        printed.push('\n');
        if line.contains("listening on") {
            break;
        }
    }
    let token =
        std::fs::read_to_string(dir.path().join("batlehub-data/admin-token")).expect("token file");
    assert!(
        printed.contains(token.trim()),
        "token printed on first start:\n{printed}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        if let Some(r) = http_get(port, "/healthz") {
            break r;
        }
        assert!(Instant::now() < deadline, "server did not answer");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    let ping = http_get(port, "/proxy/npm/-/ping").expect("ping");
    assert!(ping.starts_with("HTTP/1.1 200"), "{ping}");

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful exit: {exit:?}");
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("shutting down")), "{rest:?}");
    assert!(std::fs::metadata(dir.path().join("batlehub-data/batlehub.db")).is_ok());
}

#[test]
fn bad_config_names_the_key_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nbogus_key = 1\n",
            "bogus_key",
        ),
        (
            "[[registries]]\nname = \"npm\"\ntype = \"npm\"\nmode = \"proxy\"\n",
            "registries[0] (npm).upstreams",
        ),
        (
            "[[registries]]\nname = \"x\"\ntype = \"pip\"\n",
            "registries[0] (x).type",
        ),
        (
            "[[auth.tokens]]\nname = \"a\"\nhash = \"not-a-hash\"\n",
            "auth.tokens[0] (a)",
        ),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&path, text).expect("write");
        let out = Command::new(BIN)
            .env("BATLEHUB_CONFIG", &path)
            .env("RUST_LOG", "off")
            .current_dir(dir.path())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{text}: expected `{needle}` in: {stderr}"
        );
    }
    let out = Command::new(BIN)
        .args(["--config", "/nonexistent/x.toml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x.toml"));
}

#[test]
fn hash_token_prints_a_verifiable_argon2id_hash() {
    let out = Command::new(BIN)
        .args(["hash-token", "a-long-secret-token"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let mut child = Command::new(BIN)
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"from-stdin-token\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("$argon2id$"));
    // The hash works in a config: the token authenticates.
    let cfg = format!("[[auth.tokens]]\nname = \"h\"\nhash = \"{hash}\"\n");
    assert!(batlehub_server::Config::parse(&cfg).is_ok());
}
