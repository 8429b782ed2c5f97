#!/usr/bin/env python3
"""Recreates valid/ and invalid/ from RFC 4475's own bit-exact archive and checks them.

RFC 4475 Appendix A carries every test message as a base64-encoded, gzipped tar archive
between "-- BEGIN MESSAGE ARCHIVE --" and "-- END MESSAGE ARCHIVE --". The RFC text holds
that marker pair twice: first inside the Perl decoder it lists, then around the archive;
the archive is the last pair.

    generate.py --rfc rfc4475.txt     decode Appendix A of the RFC text
    generate.py --dat DIR             take already-decoded <name>.dat files from DIR
                                      (for example resiprocate's resip/stack/test/)
    generate.py --check               only verify the files here against SHA256SUMS

Either way the bytes are written unchanged (CRLF, NUL, UTF-8 and the binary MIME part
stay as they are) and every file must match SHA256SUMS, so a bad decode cannot slip in.
Only sections 3.1.1 (valid) and 3.1.2 (invalid) are used; the rest of the archive
(transaction-layer and application-layer tests) is ignored. MANIFEST.tsv, which holds
the gateway's expected answer per message, is maintained by hand. errata/ holds the
one message whose archive copy differs from the RFC's printed text (3.1.2.15 lacks its
final CRLF); it is derived from the archive copy here.
"""
import argparse
import base64
import hashlib
import io
import os
import re
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))

# (section, archive name, folder)
MESSAGES = [
    ("3.1.1.1", "wsinv", "valid"),
    ("3.1.1.2", "intmeth", "valid"),
    ("3.1.1.3", "esc01", "valid"),
    ("3.1.1.4", "escnull", "valid"),
    ("3.1.1.5", "esc02", "valid"),
    ("3.1.1.6", "lwsdisp", "valid"),
    ("3.1.1.7", "longreq", "valid"),
    ("3.1.1.8", "dblreq", "valid"),
    ("3.1.1.9", "semiuri", "valid"),
    ("3.1.1.10", "transports", "valid"),
    ("3.1.1.11", "mpart01", "valid"),
    ("3.1.1.12", "unreason", "valid"),
    ("3.1.1.13", "noreason", "valid"),
    ("3.1.2.1", "badinv01", "invalid"),
    ("3.1.2.2", "clerr", "invalid"),
    ("3.1.2.3", "ncl", "invalid"),
    ("3.1.2.4", "scalar02", "invalid"),
    ("3.1.2.5", "scalarlg", "invalid"),
    ("3.1.2.6", "quotbal", "invalid"),
    ("3.1.2.7", "ltgtruri", "invalid"),
    ("3.1.2.8", "lwsruri", "invalid"),
    ("3.1.2.9", "lwsstart", "invalid"),
    ("3.1.2.10", "trws", "invalid"),
    ("3.1.2.11", "escruri", "invalid"),
    ("3.1.2.12", "baddate", "invalid"),
    ("3.1.2.13", "regbadct", "invalid"),
    ("3.1.2.14", "badaspec", "invalid"),
    ("3.1.2.15", "baddn", "invalid"),
    ("3.1.2.16", "badvers", "invalid"),
    ("3.1.2.17", "mismatch01", "invalid"),
    ("3.1.2.18", "mismatch02", "invalid"),
    ("3.1.2.19", "bigcode", "invalid"),
]


def rel_path(section, name, folder):
    return f"{folder}/{section}-{name}.sip"


def from_rfc(path):
    """name -> bytes, from the last message archive in the RFC text."""
    text = open(path, encoding="ascii", errors="replace").read()
    blocks = re.findall(r"-- BEGIN MESSAGE ARCHIVE --(.*?)-- END MESSAGE ARCHIVE --", text, re.S)
    if not blocks:
        sys.exit("no message archive in " + path)
    # Base64 lines are single tokens; page headers and footers have spaces in them.
    b64 = "".join(l.strip() for l in blocks[-1].splitlines()
                  if re.fullmatch(r"\s*\S+\s*", l))
    tar = tarfile.open(fileobj=io.BytesIO(base64.b64decode(b64)), mode="r:gz")
    out = {}
    for m in tar.getmembers():
        f = tar.extractfile(m) if m.isfile() else None
        if f is not None:
            out[os.path.basename(m.name).removesuffix(".dat")] = f.read()
    return out


def from_dat(folder):
    out = {}
    for _, name, _ in MESSAGES:
        with open(os.path.join(folder, name + ".dat"), "rb") as f:
            out[name] = f.read()
    return out


def expected_sums():
    sums = {}
    with open(os.path.join(HERE, "SHA256SUMS")) as f:
        for line in f:
            digest, path = line.split()
            sums[path] = digest
    return sums


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--rfc", help="RFC 4475 plain text")
    g.add_argument("--dat", help="folder of decoded <name>.dat files")
    g.add_argument("--check", action="store_true", help="verify the files here")
    args = ap.parse_args()
    sums = expected_sums()
    source = None
    if args.rfc:
        source = from_rfc(args.rfc)
    elif args.dat:
        source = from_dat(args.dat)
    checked = []
    for section, name, folder in MESSAGES:
        path = rel_path(section, name, folder)
        if source is None:
            with open(os.path.join(HERE, path), "rb") as f:
                data = f.read()
        else:
            data = source[name]
        digest = hashlib.sha256(data).hexdigest()
        if digest != sums.get(path):
            print(f"MISMATCH {path}: {digest}", file=sys.stderr)
        checked.append((path, folder, data, digest == sums.get(path)))
    bad = sum(1 for c in checked if not c[3])
    if bad:
        sys.exit(f"{bad} message(s) do not match SHA256SUMS; nothing was written")
    if source is not None:
        for path, folder, data, _ in checked:
            os.makedirs(os.path.join(HERE, folder), exist_ok=True)
            with open(os.path.join(HERE, path), "wb") as f:
                f.write(data)
        # Not an archive file: 3.1.2.15 as the RFC prints it. The archive's copy lacks the
        # blank line that ends the headers (sipping list msg06711).
        baddn = dict((c[0], c[2]) for c in checked)["invalid/3.1.2.15-baddn.sip"]
        os.makedirs(os.path.join(HERE, "errata"), exist_ok=True)
        with open(os.path.join(HERE, "errata/3.1.2.15-baddn-crlf.sip"), "wb") as f:
            f.write(baddn + b"\r\n")
    print(f"{len(MESSAGES)} messages match SHA256SUMS")


if __name__ == "__main__":
    main()
