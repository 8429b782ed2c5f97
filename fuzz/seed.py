#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/corpus/<target>/seed-*.

Sources: the RFC 4475 messages (tests/data/rfc4475), every <send> of the SIPp scenarios in
conformance/ (SIPp keywords replaced by fixed values, [len] computed), the SDP bodies of
both, and gateway.toml with each example profile. Seeds are deterministic: rerunning
rewrites the same files. Inputs the fuzzer adds (cmin-ed) and crash regressions live
beside them under other names and are left alone.
"""
import hashlib
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")

# Values for SIPp keywords: a phone at 127.0.0.2 talking to the gateway at 127.0.0.1.
KEYWORDS = {
    "local_ip": "127.0.0.2",
    "local_port": "5062",
    "remote_ip": "127.0.0.1",
    "remote_port": "5060",
    "transport": "UDP",
    "local_ip_type": "4",
    "media_ip": "127.0.0.2",
    "media_ip_type": "4",
    "media_port": "6000",
    "pid": "4242",
    "call_number": "1",
    "service": "+8610123",
    "call_id": "1-4242@127.0.0.2",
    "branch": "z9hG4bK-4242-1-0",
}
LAST = {
    "Via:": "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-gw-1;rport=5060;received=127.0.0.1",
    "From:": "From: <sip:+8610123@127.0.0.1>;tag=gw-from-1",
    "To:": "To: <sip:+8610123@127.0.0.3;user=phone>",
    "Call-ID:": "Call-ID: gw-call-1@127.0.0.1",
    "CSeq:": "CSeq: 1 INVITE",
    "Record-Route:": "Record-Route: <sip:127.0.0.1;lr>",
    "Contact:": "Contact: <sip:gw@127.0.0.1:5060>",
    "RSeq:": "RSeq: 1",
}


def sipp_messages(path):
    text = open(path, encoding="utf-8").read()
    for block in re.findall(r"<send[^>]*>\s*<!\[CDATA\[(.*?)\]\]>", text, re.S):
        lines = [l.strip() for l in block.strip("\n").split("\n")]
        while lines and not lines[0]:
            lines.pop(0)
        while lines and not lines[-1]:
            lines.pop()
        if not lines:
            continue
        try:
            blank = lines.index("")
            head, body = lines[:blank], lines[blank + 1:]
        except ValueError:
            head, body = lines, []
        body_text = "".join(l + "\r\n" for l in body)

        def sub(line):
            def key(m):
                k = m.group(1)
                if k.startswith("last_"):
                    return LAST.get(k[5:], "X-Last: none")
                if k == "len":
                    return str(len(body_text.encode()))
                return KEYWORDS.get(k, "x")
            return re.sub(r"\[([A-Za-z_:0-9+-]+)\]", key, line)

        head = [sub(l) for l in head]
        body_text = sub(body_text)
        # [len] was computed before substitution inside the body; recompute.
        n = len(body_text.encode())
        head = [re.sub(r"^(Content-Length:\s*)\d+$", lambda m: m.group(1) + str(n), l, flags=re.I)
                for l in head]
        yield ("\r\n".join(head) + "\r\n\r\n" + body_text).encode(), body_text.encode()


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def sdp_body(msg):
    i = msg.find(b"\r\n\r\n")
    return msg[i + 4:] if i >= 0 and b"v=0" in msg[i:] else None


def main():
    messages = []
    rfc = os.path.join(ROOT, "tests/data/rfc4475")
    for sub in ("valid", "invalid", "errata"):
        for f in sorted(os.listdir(os.path.join(rfc, sub))):
            messages.append(("rfc4475-" + f.removesuffix(".sip"),
                             open(os.path.join(rfc, sub, f), "rb").read()))
    conf = os.path.join(ROOT, "conformance")
    for folder in sorted(os.listdir(conf)):
        p = os.path.join(conf, folder)
        if not os.path.isdir(p):
            continue
        for f in sorted(os.listdir(p)):
            if f.endswith(".xml"):
                for i, (msg, _) in enumerate(sipp_messages(os.path.join(p, f))):
                    messages.append((f"sipp-{folder}-{f[:-4]}-{i}", msg))
    messages.append(("explain-pbx-invite",
                     open(os.path.join(ROOT, "profiles/examples/pbx-invite.txt"), "rb").read()))

    sdps = {}
    for name, msg in messages:
        write("sip_datagram", name, msg)
        # Stream seeds: a chunk-size byte, then the message twice (two on one connection).
        write("sip_stream", name, bytes([len(msg) % 64]) + msg + msg)
        body = sdp_body(msg)
        if body:
            sdps[hashlib.sha1(body).hexdigest()[:12]] = (name, body)
    for h, (name, body) in sorted(sdps.items()):
        # Two control bytes: ptime 20 (19 + 1) and two anchor ports.
        write("sdp", f"{name}-{h}", bytes([19, 2]) + body)
    extra = {
        "session-c-rtcp-ipv6": b"v=0\r\no=- 1 1 IN IP6 2001:db8::1\r\ns=-\r\nc=IN IP6 2001:db8::2\r\n"
                               b"t=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtcp:4001 IN IP6 2001:db8::2\r\n"
                               b"a=ptime:30\r\nm=video 0 RTP/AVP 31\r\n",
        "media-c-lf-only": b"v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\na=ptime:10\n"
                           b"m=audio 4000/2 RTP/AVP 0\nc=IN IP4 192.0.2.9/127\na=rtcp:4001\n"
                           b"m=audio 5000 RTP/AVP 8\nc=IN IP4 192.0.2.10\n",
    }
    for name, body in extra.items():
        write("sdp", name, bytes([29, 3]) + body)

    gateway = open(os.path.join(ROOT, "gateway.toml"), "rb").read()
    # The harness skips a gateway part that names `profiles` (see src/lib.rs).
    gateway = b"\n".join(l for l in gateway.split(b"\n") if not l.startswith(b"profiles"))
    pdir = os.path.join(ROOT, "profiles")
    for f in sorted(os.listdir(pdir)):
        if f.endswith(".toml"):
            write("config_toml", "example-" + f[:-5], gateway + b"\0" + open(os.path.join(pdir, f), "rb").read())
    write("config_toml", "gateway-only", gateway)
    # A configuration that loads: one peer, one route.
    write("config_toml", "minimal-valid",
          b'[sip]\nlisten = ["udp:127.0.0.1:5060"]\nadvertise = "127.0.0.1"\n\n'
          b'[[route]]\nfrom = "*"\nprefix = "+86"\nto = ["peer"]\n'
          b'\0'
          b'name = "peer"\nrole = "trunk"\naddress = "udp:127.0.0.3:5060"\n'
          b'match = ["127.0.0.3/32"]\ndomain = "peer.example"\n\n[sdp]\nptime = 20\n')


if __name__ == "__main__":
    main()
