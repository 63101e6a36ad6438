#!/usr/bin/env python3
"""Writes big upstream documents for the load benchmark under a static upstream root.

    bigdocs.py ROOT BASE_URL

ROOT/npm/big-many is an npm packument as large as the biggest real ones (3,000 versions,
each with the dependency lists and metadata a popular framework carries: about 15 MB
abbreviated, more in full), with tarball URLs under BASE_URL/npm/. ROOT/pypi/simple/big-many/
index.json is a PEP 691 project page with 10,000 files. nginx serves ROOT as the upstream of
the `npm-big` and `pypi-big` proxies, so the documents are generated, not seeded through
publish APIs (which would take minutes). Deterministic: the same bytes on every run.
"""
import hashlib
import json
import os
import sys

root, base = sys.argv[1], sys.argv[2].rstrip("/")


def digest(*parts):
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def npm():
    versions, times = {}, {"created": "2015-01-01T00:00:00.000Z"}
    for i in range(3000):
        v = f"{i // 100}.{(i // 10) % 10}.{i % 10}"
        deps = {f"dep-{j:03d}-{digest(i, j)[:6]}": f"^{j % 9}.{j % 5}.0" for j in range(72)}
        dev = {f"@types/dev-{j:03d}": f"~{j % 7}.0.{j % 3}" for j in range(90)}
        peer = {f"peer-{j}": ">=1" for j in range(5)}
        versions[v] = {
            "name": "big-many",
            "version": v,
            "description": "A generated package as large as the biggest real ones " * 2,
            "license": "MIT",
            "main": "index.js",
            "scripts": {"test": "node test.js", "build": "tsc -p .", "lint": "eslint ."},
            "repository": {"type": "git", "url": "git+https://git.example.test/big/many.git"},
            "dependencies": deps,
            "devDependencies": dev,
            "peerDependencies": peer,
            "peerDependenciesMeta": {"peer-0": {"optional": True}},
            "engines": {"node": ">=18"},
            "dist": {
                "tarball": f"{base}/npm/big-many/-/big-many-{v}.tgz",
                "shasum": digest("sha1", i)[:40],
                "integrity": "sha512-" + digest("sri", i) + digest("sri2", i)[:22] + "==",
                "fileCount": 120 + i % 17,
                "unpackedSize": 1_000_000 + i,
            },
            "_npmUser": {"name": "bench", "email": "bench@example.test"},
            "gitHead": digest("git", i)[:40],
        }
        times[v] = f"20{15 + i // 400:02d}-{1 + i % 12:02d}-{1 + i % 28:02d}T00:00:00.000Z"
    times["modified"] = "2025-01-01T00:00:00.000Z"
    doc = {
        "_id": "big-many",
        "name": "big-many",
        "dist-tags": {"latest": "29.9.9", "next": "29.9.8"},
        "versions": versions,
        "time": times,
        "readme": "# big-many\n" + "Generated.\n" * 200,
    }
    os.makedirs(f"{root}/npm", exist_ok=True)
    with open(f"{root}/npm/big-many", "w") as f:
        json.dump(doc, f, separators=(",", ":"))


def pypi():
    files = []
    for i in range(10_000):
        release = f"{i // 100}.{i % 100}"
        name = (
            f"big_many-{release}.tar.gz"
            if i % 5 == 0
            else f"big_many-{release}-cp3{i % 5 + 8}-cp3{i % 5 + 8}-manylinux_2_17_x86_64.whl"
        )
        files.append(
            {
                "filename": name,
                "url": f"{base}/pypi/files/{name}",
                "hashes": {"sha256": digest("whl", i)},
                "requires-python": ">=3.8",
                "core-metadata": {"sha256": digest("meta", i)},
                "size": 100_000 + i,
                "upload-time": f"20{15 + i // 1000:02d}-01-01T00:00:00.000000Z",
                "yanked": False,
            }
        )
    doc = {
        "meta": {"api-version": "1.1"},
        "name": "big-many",
        "versions": sorted({f["filename"].split("-")[1] for f in files}),
        "files": files,
    }
    os.makedirs(f"{root}/pypi/simple/big-many", exist_ok=True)
    with open(f"{root}/pypi/simple/big-many/index.json", "w") as f:
        json.dump(doc, f, separators=(",", ":"))


npm()
pypi()
