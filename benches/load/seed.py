#!/usr/bin/env python3
"""Seeds a batlehub local npm registry for the load benchmark.

Publishes, through the npm publish API (what `npm publish` sends):
  - `bench-many`: 200 versions with small tarballs and realistic manifests,
  - `bench-100k`: one version whose tarball is 100 KiB,
  - `bench-10m`: one version whose tarball is 10 MiB.
Usage: seed.py REGISTRY_URL TOKEN
"""
import base64, gzip, hashlib, io, json, os, sys, tarfile, urllib.request

registry, token = sys.argv[1].rstrip("/"), sys.argv[2]

def tgz(name, version, payload):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in (("package/package.json", json.dumps({"name": name, "version": version}).encode()),
                           ("package/blob.bin", payload)):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), compresslevel=1, mtime=0)

def publish(name, version, payload):
    data = tgz(name, version, payload)
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
    req = urllib.request.Request(f"{registry}/{name}", data=body, method="PUT",
                                 headers={"content-type": "application/json", "authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200, resp.status

for i in range(200):
    publish("bench-many", f"1.{i}.0", os.urandom(256))
publish("bench-100k", "1.0.0", os.urandom(100 * 1024))
publish("bench-10m", "1.0.0", os.urandom(10 * 1024 * 1024))
print("seeded")
