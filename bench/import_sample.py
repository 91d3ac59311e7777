#!/usr/bin/env python3
"""Writes import folders (docs/import.md) for bench/import.sh.

    import_sample.py big DIR DRAFTS PHOTOS_PER_DRAFT   a clean folder of real JPEGs
    import_sample.py bad DIR                           a few records, some of them bad

The JPEGs are real baseline JPEGs (grayscale, 320x240, one flat tone per 8x8 block,
every photo its own pattern), encoded here so the bench needs nothing installed.
"""
import hashlib
import json
import os
import random
import struct
import sys

DC_BITS = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0]
DC_VALS = list(range(12))
# Only end-of-block is ever coded: a one-symbol AC table.
AC_BITS = [1] + [0] * 15
AC_VALS = [0]


def codes(bits, vals):
    table, code, k = {}, 0, 0
    for length in range(1, 17):
        for _ in range(bits[length - 1]):
            table[vals[k]] = (code, length)
            code += 1
            k += 1
        code <<= 1
    return table


DC, AC = codes(DC_BITS, DC_VALS), codes(AC_BITS, AC_VALS)


def segment(marker, body):
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def jpeg(seed, width=320, height=240):
    rng = random.Random(seed)
    out, acc, n = bytearray(), 0, 0

    def put(value, length):
        nonlocal acc, n
        acc, n = (acc << length) | value, n + length
        while n >= 8:
            byte = (acc >> (n - 8)) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0)
            n -= 8

    prev = 0
    for _ in range((width // 8) * (height // 8)):
        dc = rng.randint(-120, 120)
        diff, prev = dc - prev, dc
        size = abs(diff).bit_length()
        put(*DC[size])
        if size:
            put(diff if diff > 0 else diff + (1 << size) - 1, size)
        put(*AC[0])
    if n:
        put((1 << (8 - n)) - 1, 8 - n)
    head = b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    head += segment(0xDB, b"\x00" + bytes([8] * 64))
    head += segment(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    head += segment(0xC4, b"\x00" + bytes(DC_BITS) + bytes(DC_VALS))
    head += segment(0xC4, b"\x10" + bytes(AC_BITS) + bytes(AC_VALS))
    head += segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    return head + bytes(out) + b"\xff\xd9"


def draft(i):
    return {"id": f"draft-{i}", "title": f"Item {i}", "description": "Imported from the single-user version",
            "priceCents": 100 * (i % 500), "currency": "EUR", "condition": "GOOD", "status": "READY",
            "createdAt": "2025-06-01T10:00:00Z", "updatedAt": "2025-06-02T10:00:00Z"}


def photo(i, j, name, data):
    return {"id": f"photo-{i}-{j}", "draftId": f"draft-{i}", "position": j, "contentType": "image/jpeg",
            "byteSize": len(data), "sha256": hashlib.sha256(data).hexdigest(), "status": "READY",
            "createdAt": "2025-06-01T10:00:00Z", "file": f"photos/{name}"}


def lines(path, records):
    with open(path, "w") as f:
        for r in records:
            f.write(r if isinstance(r, str) else json.dumps(r))
            f.write("\n")


def big(root, drafts, per):
    os.makedirs(os.path.join(root, "photos"), exist_ok=True)
    photos = []
    for i in range(drafts):
        for j in range(per):
            data = jpeg(i * per + j)
            name = f"{i}-{j}.jpg"
            with open(os.path.join(root, "photos", name), "wb") as f:
                f.write(data)
            photos.append(photo(i, j, name, data))
    lines(os.path.join(root, "drafts.jsonl"), [draft(i) for i in range(drafts)])
    lines(os.path.join(root, "photos.jsonl"), photos)


def bad(root):
    os.makedirs(os.path.join(root, "photos"), exist_ok=True)
    good = jpeg(1)
    with open(os.path.join(root, "photos", "good.jpg"), "wb") as f:
        f.write(good)
    with open(os.path.join(root, "photos", "notes.jpg"), "wb") as f:
        f.write(b"shopping list, not a photo\n")
    lines(os.path.join(root, "drafts.jsonl"), [
        draft(0),
        draft(1),
        '{"id": "draft-2", "title": "Cut off',
        dict(draft(3), status="SOLD"),
        dict(draft(4), title="Twin of draft 0", id="draft-0"),
        dict(draft(5), createdAt="2099-01-01T00:00:00Z"),
        dict(draft(6), title="Bell\u0007 in the title"),
    ])
    lines(os.path.join(root, "photos.jsonl"), [
        photo(0, 0, "good.jpg", good),
        photo(1, 0, "gone.jpg", good),
        photo(1, 1, "notes.jpg", good),
        photo(3, 0, "good.jpg", good),
    ])
    lines(os.path.join(root, "marketplace_accounts.jsonl"), [
        {"id": "acct-1", "platform": "VINTED", "displayName": "My shop", "status": "DISCONNECTED",
         "createdAt": "2025-01-01T00:00:00Z"},
    ])
    lines(os.path.join(root, "jobs.jsonl"), [
        {"id": "job-1", "kind": "PUBLISH", "status": "SUCCEEDED", "draftId": "draft-0", "progress": 1,
         "createdAt": "2025-06-03T10:00:00Z", "finishedAt": "2025-06-03T10:01:00Z"},
        {"id": "job-2", "kind": "PREPARE", "status": "LOST", "draftId": "draft-1", "createdAt": "2025-06-03T10:00:00Z"},
    ])
    lines(os.path.join(root, "job_logs.jsonl"), [
        {"id": "log-1", "jobId": "job-1", "level": "info", "message": "published", "createdAt": "2025-06-03T10:01:00Z"},
        {"id": "log-2", "jobId": "job-2", "level": "info", "message": "never ran", "createdAt": "2025-06-03T10:01:00Z"},
    ])


if __name__ == "__main__":
    if sys.argv[1] == "big":
        big(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        bad(sys.argv[2])
