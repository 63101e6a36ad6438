#!/usr/bin/env python3
"""Seeds the local registries of a batlehub server for the load benchmark.

Publishes through each protocol's own publish API, as its client sends it:
  - npm (`PUT /{name}`, what `npm publish` sends): `bench-many` (200 versions, small
    tarballs, realistic manifests), `bench-100k` (a 100 KiB tarball), `bench-50k` (50 KiB), `bench-10m` (10 MiB);
  - cargo (`PUT /api/v1/crates/new`, what `cargo publish` sends): `bench-many` (200
    versions, so its index file has 200 lines) and `bench-100k` (a ~100 KiB .crate);
  - pypi (`POST /legacy/`, what twine sends): `bench-many` (200 versions, one small wheel
    each) and `bench-100k` (a ~100 KiB wheel);
  - maven (`PUT` of jar, pom and their .sha1, what `mvn deploy` sends):
    `com.example.bench:bench-many` (200 versions) and `com.example.bench:bench-100k:1.0.0`
    (a ~100 KiB jar);
  - go (`PUT /{module}/@v/{version}.zip`, a module zip as an uploader sends it):
    `example.com/bench-many` (200 versions), `example.com/bench-100k` (a ~100 KiB zip),
    `example.com/bench-50k` (~50 KiB) and `example.com/bench-10m` (~10 MiB);
  - rubygems (`POST /api/v1/gems` with the raw key, what `gem push` sends): `bench-many`
    (200 versions), `bench-100k`, `bench-50k` and `bench-10m` (.gem files of that size).
Payloads are random bytes (incompressible), stored uncompressed inside the archives.
Each registry gets one keep-alive connection; any non-2xx answer stops the script with the
request and the server's answer.

Usage: seed.py BASE_URL TOKEN [REGISTRY...]  (BASE_URL = http://host:port/proxy; registries
                                   npm, cargo, pypi, maven, go, rubygems under it)
"""
import base64, gzip, hashlib, http.client, io, json, os, struct, sys, tarfile, urllib.parse, zipfile

base, token = sys.argv[1].rstrip("/"), sys.argv[2]
MANY = 200
BASIC = "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode()


class Client:
    """One keep-alive HTTP/1.1 connection to the server."""

    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.prefix = u.hostname, u.port or 80, u.path.rstrip("/")
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)

    def send(self, method, path, body, headers):
        url = self.prefix + path
        for attempt in (0, 1):
            try:
                self.conn.request(method, url, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
                if attempt:
                    raise
        if not 200 <= resp.status < 300:
            sys.exit(f"seed: {method} http://{self.host}:{self.port}{url} -> {resp.status} "
                     f"{resp.reason}: {data[:500]!r}")
        return data


# ---------------------------------------------------------------------------------- npm

def npm_tgz(name, version, payload):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in (("package/package.json", json.dumps({"name": name, "version": version}).encode()),
                           ("package/blob.bin", payload)):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=1, mtime=0)


def npm_publish(c, name, version, payload):
    data = npm_tgz(name, version, payload)
    sri = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
    manifest = {
        "name": name, "version": version, "description": f"load benchmark package {name}",
        "main": "index.js", "license": "MIT",
        "dependencies": {"left": "^1.0.0", "right": "~2.3.0", "middle": ">=0.4.0 <1"},
        "scripts": {"test": "node test.js"},
        "repository": {"type": "git", "url": "git+https://git.example.com/bench.git"},
        "dist": {"integrity": sri, "shasum": hashlib.sha1(data).hexdigest()},
    }
    body = json.dumps({
        "name": name, "dist-tags": {"latest": version}, "versions": {version: manifest},
        "_attachments": {f"{name}-{version}.tgz": {"data": base64.b64encode(data).decode(), "length": len(data)}},
    }).encode()
    c.send("PUT", f"/{name}", body, {"content-type": "application/json", "authorization": f"Bearer {token}"})


def seed_npm():
    c = Client(f"{base}/npm")
    for i in range(MANY):
        npm_publish(c, "bench-many", f"1.{i}.0", os.urandom(256))
    npm_publish(c, "bench-100k", "1.0.0", os.urandom(100 * 1024))
    npm_publish(c, "bench-50k", "1.0.0", os.urandom(50 * 1024))
    npm_publish(c, "bench-10m", "1.0.0", os.urandom(10 * 1024 * 1024))


# -------------------------------------------------------------------------------- cargo

def targz(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=6, mtime=0)


def cargo_publish(c, name, vers, payload):
    toml = (f'[package]\nname = "{name}"\nversion = "{vers}"\nedition = "2021"\n'
            'description = "load benchmark crate"\nlicense = "MIT"\n\n'
            '[dependencies]\nserde = { version = "1", features = ["derive"] }\nlibc = "0.2"\n').encode()
    files = [(f"{name}-{vers}/Cargo.toml", toml),
             (f"{name}-{vers}/src/lib.rs", b"pub fn answer() -> u32 { 42 }\n")]
    if payload:
        files.append((f"{name}-{vers}/blob.bin", payload))
    crate = targz(files)
    dep = {"optional": False, "default_features": True, "target": None, "kind": "normal",
           "registry": None, "explicit_name_in_toml": None}
    meta = {
        "name": name, "vers": vers,
        "deps": [dict(dep, name="serde", version_req="^1", features=["derive"]),
                 dict(dep, name="libc", version_req="^0.2", features=[])],
        "features": {"default": ["std"], "std": []}, "authors": [],
        "description": "load benchmark crate", "documentation": None, "homepage": None,
        "readme": None, "readme_file": None, "keywords": ["bench"], "categories": [],
        "license": "MIT", "license_file": None, "repository": "https://git.example.com/bench",
        "badges": {}, "links": None, "rust_version": "1.70",
    }
    js = json.dumps(meta).encode()
    body = struct.pack("<I", len(js)) + js + struct.pack("<I", len(crate)) + crate
    c.send("PUT", "/api/v1/crates/new", body, {"authorization": token, "content-type": "application/octet-stream"})


def seed_cargo():
    c = Client(f"{base}/cargo")
    for i in range(MANY):
        cargo_publish(c, "bench-many", f"1.{i}.0", b"")
    cargo_publish(c, "bench-100k", "1.0.0", os.urandom(100 * 1024))
    cargo_publish(c, "bench-50k", "1.0.0", os.urandom(50 * 1024))


# --------------------------------------------------------------------------------- pypi

def wheel(name, version, payload):
    prefix = name.replace("-", "_")
    dist_info = f"{prefix}-{version}.dist-info"
    metadata = (f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                "Summary: load benchmark project\nLicense: MIT\nRequires-Python: >=3.8\n"
                "Requires-Dist: requests>=2\nRequires-Dist: attrs\n"
                "Classifier: Programming Language :: Python :: 3\n\n# bench\n").encode()
    files = [(f"{prefix}/__init__.py", b"VALUE = 1\n")]
    if payload:
        files.append((f"{prefix}/blob.bin", payload))
    files += [(f"{dist_info}/METADATA", metadata),
              (f"{dist_info}/WHEEL", b"Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n")]
    record = "".join(f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}\n"
                     for p, d in files) + f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for p, d in files:
            # The random payload is stored (it does not compress); the rest deflated.
            z.writestr(zipfile.ZipInfo(p, (1980, 1, 1, 0, 0, 0)), d,
                       compress_type=zipfile.ZIP_STORED if p.endswith(".bin") else zipfile.ZIP_DEFLATED)
    return f"{prefix}-{version}-py3-none-any.whl", buf.getvalue()


def pypi_upload(c, name, version, payload):
    filename, data = wheel(name, version, payload)
    fields = [(":action", "file_upload"), ("protocol_version", "1"), ("metadata_version", "2.1"),
              ("name", name), ("version", version), ("filetype", "bdist_wheel"), ("pyversion", "py3"),
              ("summary", "load benchmark project"), ("license", "MIT"), ("requires_python", ">=3.8"),
              ("md5_digest", hashlib.md5(data).hexdigest()),
              ("sha256_digest", hashlib.sha256(data).hexdigest()),
              ("blake2_256_digest", hashlib.blake2b(data, digest_size=32).hexdigest())]
    boundary = "----bench" + os.urandom(8).hex()
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="content"; filename="{filename}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    c.send("POST", "/legacy/", b"".join(parts),
           {"content-type": f"multipart/form-data; boundary={boundary}", "authorization": BASIC})


def seed_pypi():
    c = Client(f"{base}/pypi")
    for i in range(MANY):
        pypi_upload(c, "bench-many", f"1.{i}.0", b"")
    pypi_upload(c, "bench-100k", "1.0.0", os.urandom(100 * 1024))
    pypi_upload(c, "bench-50k", "1.0.0", os.urandom(50 * 1024))


# -------------------------------------------------------------------------------- maven

GROUP = "com.example.bench"


def jar(artifact, version, payload):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: bench\n")
        z.writestr(f"com/example/bench/{artifact.replace('-', '_')}/Version.class", f"{artifact} {version}\n")
        if payload:
            z.writestr(zipfile.ZipInfo("blob.bin", (1980, 1, 1, 0, 0, 0)), payload, compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


def pom(artifact, version):
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<project>
  <modelVersion>4.0.0</modelVersion>
  <groupId>{GROUP}</groupId>
  <artifactId>{artifact}</artifactId>
  <version>{version}</version>
  <packaging>jar</packaging>
  <dependencies>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>2.0.9</version></dependency>
  </dependencies>
</project>
""".encode()


def maven_deploy(c, artifact, version, payload):
    d = f"/maven2/{GROUP.replace('.', '/')}/{artifact}/{version}/{artifact}-{version}"
    hdrs = {"authorization": BASIC, "content-type": "application/octet-stream"}
    # mvn deploy order: the jar and its checksum, then the POM and its checksum.
    for ext, data in (("jar", jar(artifact, version, payload)), ("pom", pom(artifact, version))):
        c.send("PUT", f"{d}.{ext}", data, hdrs)
        c.send("PUT", f"{d}.{ext}.sha1", hashlib.sha1(data).hexdigest().encode(), hdrs)


def seed_maven():
    c = Client(f"{base}/maven")
    for i in range(MANY):
        maven_deploy(c, "bench-many", f"1.{i}.0", b"")
    maven_deploy(c, "bench-100k", "1.0.0", os.urandom(100 * 1024))
    maven_deploy(c, "bench-50k", "1.0.0", os.urandom(50 * 1024))


# ----------------------------------------------------------------------------------- go

def go_zip(module, version, payload):
    """A module zip: go.mod, a Go file, and the payload stored (incompressible)."""
    buf = io.BytesIO()
    prefix = f"{module}@{version}/"
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(prefix + "go.mod", f"module {module}\n\ngo 1.19\n")
        z.writestr(prefix + "bench.go", "package bench\n\n// Version is the version.\n"
                   f"const Version = \"{version}\"\n")
        if payload:
            z.writestr(zipfile.ZipInfo(prefix + "payload.bin"), payload, zipfile.ZIP_STORED)
    return buf.getvalue()


def go_upload(c, name, version, payload):
    module = f"example.com/{name}"
    c.send("PUT", f"/{module}/@v/{version}.zip", go_zip(module, version, payload),
           {"Authorization": BASIC, "Content-Type": "application/zip"})


def seed_go():
    c = Client(f"{base}/go")
    for i in range(MANY):
        go_upload(c, "bench-many", f"v1.{i}.0", b"")
    go_upload(c, "bench-100k", "v1.0.0", os.urandom(100 * 1024))
    go_upload(c, "bench-50k", "v1.0.0", os.urandom(50 * 1024))
    go_upload(c, "bench-10m", "v1.0.0", os.urandom(10 * 1024 * 1024))


# ----------------------------------------------------------------------------- rubygems

GEMSPEC = """--- !ruby/object:Gem::Specification
name: {name}
version: !ruby/object:Gem::Version
  version: {version}
platform: ruby
authors:
- bench
date: 2026-01-02 00:00:00.000000000 Z
dependencies:
- !ruby/object:Gem::Dependency
  name: rack
  requirement: !ruby/object:Gem::Requirement
    requirements:
    - - ">="
      - !ruby/object:Gem::Version
        version: '2.0'
  type: :runtime
  prerelease: false
  version_requirements: !ruby/object:Gem::Requirement
    requirements:
    - - ">="
      - !ruby/object:Gem::Version
        version: '2.0'
files:
- lib/{name}.rb
licenses:
- MIT
metadata: {{}}
require_paths:
- lib
required_ruby_version: !ruby/object:Gem::Requirement
  requirements:
  - - ">="
    - !ruby/object:Gem::Version
      version: '2.7'
required_rubygems_version: !ruby/object:Gem::Requirement
  requirements:
  - - ">="
    - !ruby/object:Gem::Version
      version: '0'
rubygems_version: 3.3.15
specification_version: 4
summary: The {name} bench gem.
"""


def tar_bytes(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o444
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def gem_file(name, version, payload):
    """A .gem: metadata.gz, data.tar.gz (the payload stored in it, incompressible) and
    checksums.yaml.gz, as `gem build` writes them."""
    metadata = gzip.compress(GEMSPEC.format(name=name, version=version).encode(), mtime=0)
    files = [(f"lib/{name}.rb", b"module Bench; end\n")]
    if payload:
        files.append(("data/payload.bin", payload))
    data = gzip.compress(tar_bytes(files), compresslevel=1, mtime=0)
    sums = "---\nSHA256:\n" + "".join(
        f"  {n}: {hashlib.sha256(b).hexdigest()}\n" for n, b in (("metadata.gz", metadata), ("data.tar.gz", data)))
    return tar_bytes([("metadata.gz", metadata), ("data.tar.gz", data),
                      ("checksums.yaml.gz", gzip.compress(sums.encode(), mtime=0))])


def gem_push(c, name, version, payload):
    c.send("POST", "/api/v1/gems", gem_file(name, version, payload),
           {"Authorization": token, "Content-Type": "application/octet-stream"})


def seed_rubygems():
    c = Client(f"{base}/rubygems")
    for i in range(MANY):
        gem_push(c, "bench-many", f"1.{i}.0", b"")
    gem_push(c, "bench-100k", "1.0.0", os.urandom(100 * 1024))
    gem_push(c, "bench-50k", "1.0.0", os.urandom(50 * 1024))
    gem_push(c, "bench-10m", "1.0.0", os.urandom(10 * 1024 * 1024))


only = set(sys.argv[3:]) or {"npm", "cargo", "pypi", "maven", "go", "rubygems"}
for reg, seed in (("npm", seed_npm), ("cargo", seed_cargo), ("pypi", seed_pypi), ("maven", seed_maven),
                  ("go", seed_go), ("rubygems", seed_rubygems)):
    if reg in only:
        seed()
print("seeded")
