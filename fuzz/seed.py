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

    for name, records in dialog_scenarios().items():
        write("core_dialog", name, b"".join(records))


# core_dialog records (fuzz/src/lib.rs): peers, and what a record's payload is.
PBX, CARRIER_A, CARRIER_B = 0, 1, 2
RAW, ANSWER, IN_DIALOG, AGAIN = 0, 1, 2, 3


def rec(peer, mode, payload=b"", wait=0):
    """One record; `wait` is the nibble whose square is the seconds waited first."""
    return bytes([peer | mode << 2 | wait << 4, len(payload) >> 8, len(payload) & 255]) + payload


def answer(peer, status, extra=b"", wait=0, back=0):
    """`back`: answer the request the gateway sent before the latest (1), …"""
    return rec(peer, ANSWER, (status | back << 12).to_bytes(2, "big") + extra, wait)


def request(peer, method, extra=b"", wait=0):
    return rec(peer, IN_DIALOG, method + b"\n" + extra, wait)


STRANGER = 3
MEDIA_TIMEOUT, MEDIA_FAILED, SEND_FAILED, CDR_DOWN, CDR_UP, RELOAD, DRAIN, HANG_UP_ALL = range(8)


def shell(event, wait=0, arg=b""):
    """One of the shell's own inputs (the stranger's records in modes 1-3)."""
    return rec(STRANGER, ANSWER, bytes([event]) + arg, wait)


def sdp(ip, port, version=1, direction=b"sendrecv"):
    return (b"v=0\r\no=- 1 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
            b"m=audio %d RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
            b"a=ptime:20\r\na=%s\r\n" % (version, ip, ip, port, direction))


def with_sdp(body, headers=b""):
    return headers + b"\r\n" + body if headers else b"\r\n\r\n" + body


def pbx_invite(sdp_body=True, supported=b"timer", call=1):
    body = sdp(b"127.0.0.2", 6000) if sdp_body else b""
    ct = b"Content-Type: application/sdp\r\n" if sdp_body else b""
    return rec(PBX, RAW, b"INVITE sip:+8610123@127.0.0.1:5060 SIP/2.0\r\n"
               b"Via: SIP/2.0/UDP 127.0.0.2:5060;branch=z9hG4bKpbx%d\r\nMax-Forwards: 70\r\n"
               b"From: <sip:1000@127.0.0.2>;tag=pbx%d\r\nTo: <sip:+8610123@127.0.0.1>\r\n"
               b"Call-ID: fz-call-%d@127.0.0.2\r\nCSeq: 1 INVITE\r\n"
               b"Contact: <sip:1000@127.0.0.2:5060>\r\nSupported: %s\r\n%s"
               b"Content-Length: %d\r\n\r\n%s"
               % (call, call, call, supported, ct, len(body), body))


def dialog_scenarios():
    """Whole call flows through the shipped gateway.toml: the PBX calls out via carrier-a
    (carrier-b on failover), a carrier calls in to the PBX."""
    carrier_sdp = sdp(b"127.0.0.3", 7000)
    up = [pbx_invite(), answer(CARRIER_A, 100), answer(CARRIER_A, 180),
          answer(CARRIER_A, 200, with_sdp(carrier_sdp)), request(PBX, b"ACK")]
    hold = sdp(b"127.0.0.2", 6000, 2, b"sendonly")
    return {
        "call-bye-from-pbx": up + [request(PBX, b"BYE", wait=2), answer(CARRIER_A, 200)],
        "call-bye-from-carrier": up + [request(CARRIER_A, b"BYE"), answer(PBX, 200)],
        "call-bye-crossing": up + [request(PBX, b"BYE"), request(CARRIER_A, b"BYE"),
                                   answer(CARRIER_A, 200), answer(PBX, 200)],
        "cancel-while-ringing": [pbx_invite(), answer(CARRIER_A, 180),
                                 request(PBX, b"CANCEL"), answer(CARRIER_A, 200),
                                 answer(CARRIER_A, 487)],
        "cancel-unanswered": [pbx_invite(), answer(CARRIER_A, 180), request(PBX, b"CANCEL"),
                              rec(PBX, AGAIN, wait=4)],
        "failover-to-carrier-b": [pbx_invite(), answer(CARRIER_A, 503),
                                  answer(CARRIER_B, 200, with_sdp(sdp(b"127.0.0.4", 7100))),
                                  request(PBX, b"ACK"), request(CARRIER_B, b"BYE", wait=3)],
        "ring-timeout": [pbx_invite(), answer(CARRIER_A, 180, wait=0), rec(PBX, AGAIN, wait=11)],
        "reliable-183-prack-405": [pbx_invite(),
                                   answer(CARRIER_A, 183, with_sdp(carrier_sdp, b"Require: 100rel\r\nRSeq: 1\r\n")),
                                   answer(CARRIER_A, 405), answer(CARRIER_A, 200, with_sdp(carrier_sdp), back=1),
                                   request(PBX, b"ACK")],
        "reliable-183-prack-200": [pbx_invite(),
                                   answer(CARRIER_A, 183, with_sdp(carrier_sdp, b"Require: 100rel\r\nRSeq: 7\r\n")),
                                   answer(CARRIER_A, 200), answer(CARRIER_A, 200, with_sdp(carrier_sdp), back=1),
                                   request(PBX, b"ACK"), request(PBX, b"BYE")],
        "reliable-both-legs": [pbx_invite(supported=b"100rel, timer"),
                               answer(CARRIER_A, 183, with_sdp(carrier_sdp, b"Require: 100rel\r\nRSeq: 1\r\n")),
                               answer(CARRIER_A, 200), request(PBX, b"PRACK"), answer(CARRIER_A, 180),
                               answer(CARRIER_A, 200, back=1), request(PBX, b"ACK"),
                               request(CARRIER_A, b"BYE"), answer(PBX, 200)],
        "prack-offer-in-update": [pbx_invite(supported=b"100rel, timer"),
                                  answer(CARRIER_A, 183, with_sdp(carrier_sdp, b"Require: 100rel\r\nRSeq: 1\r\n"
                                                                  b"Allow: INVITE, ACK, CANCEL, BYE, PRACK, UPDATE\r\n")),
                                  answer(CARRIER_A, 200),
                                  request(PBX, b"PRACK", with_sdp(sdp(b"127.0.0.2", 6002, 2))),
                                  answer(CARRIER_A, 200, with_sdp(sdp(b"127.0.0.3", 7002, 2))),
                                  answer(CARRIER_A, 200, back=2), request(PBX, b"ACK"),
                                  request(PBX, b"BYE"), answer(CARRIER_A, 200)],
        "reinvite-hold-from-pbx": up + [request(PBX, b"INVITE", with_sdp(hold)),
                                        answer(CARRIER_A, 200, with_sdp(sdp(b"127.0.0.3", 7000, 2, b"recvonly"))),
                                        request(PBX, b"ACK")],
        "reinvite-ringing-then-timer-c": up + [request(PBX, b"INVITE", with_sdp(hold)),
                                               answer(CARRIER_A, 180),
                                               answer(CARRIER_A, 487, wait=14),
                                               request(PBX, b"ACK")],
        "reinvite-cancelled": up + [request(PBX, b"INVITE", with_sdp(hold)), answer(CARRIER_A, 180),
                                    request(PBX, b"CANCEL"), answer(CARRIER_A, 200),
                                    answer(CARRIER_A, 487)],
        "reinvite-late-offer-from-carrier": up + [request(CARRIER_A, b"INVITE"),
                                                  answer(PBX, 200, with_sdp(hold)),
                                                  request(CARRIER_A, b"ACK", with_sdp(carrier_sdp))],
        "reinvite-glare": up + [request(PBX, b"INVITE", with_sdp(hold)),
                                request(CARRIER_A, b"INVITE", with_sdp(carrier_sdp)),
                                answer(CARRIER_A, 491), answer(PBX, 491)],
        "update-and-info": up + [request(CARRIER_A, b"UPDATE", with_sdp(carrier_sdp)),
                                 answer(PBX, 200, with_sdp(hold)),
                                 request(PBX, b"INFO", b"Content-Type: application/dtmf-relay\r\n\r\nSignal=5\r\n"),
                                 answer(CARRIER_A, 200)],
        "session-refresh-wait": up + [rec(PBX, AGAIN, wait=15), answer(CARRIER_A, 200),
                                      answer(PBX, 200)],
        "call-from-carrier": [rec(CARRIER_A, RAW,
                                  b"INVITE sip:1000@127.0.0.1:5060;user=phone SIP/2.0\r\n"
                                  b"Via: SIP/2.0/UDP 127.0.0.3:5060;branch=z9hG4bKca1\r\n"
                                  b"Max-Forwards: 70\r\nFrom: <sip:+8610123@127.0.0.3>;tag=ca1\r\n"
                                  b"To: <sip:1000@127.0.0.1>\r\nCall-ID: fz-in-1@127.0.0.3\r\n"
                                  b"CSeq: 1 INVITE\r\nContact: <sip:+8610123@127.0.0.3:5060>\r\n"
                                  b"Content-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s"
                                  % (len(carrier_sdp), carrier_sdp)),
                              answer(PBX, 180), answer(PBX, 200, with_sdp(sdp(b"127.0.0.2", 6000))),
                              request(CARRIER_A, b"ACK"), request(PBX, b"BYE"), answer(CARRIER_A, 200)],
        "two-calls": up + [pbx_invite(call=2), answer(CARRIER_A, 486), request(PBX, b"BYE")],
        "shell-media-timeout": up + [shell(MEDIA_TIMEOUT, wait=3), answer(PBX, 200), answer(CARRIER_A, 200)],
        "shell-media-failed-while-held": [pbx_invite(supported=b"100rel, timer"),
                                          answer(CARRIER_A, 183, with_sdp(carrier_sdp, b"Require: 100rel\r\nRSeq: 1\r\n")),
                                          answer(CARRIER_A, 200), answer(CARRIER_A, 200, with_sdp(carrier_sdp), back=1),
                                          shell(MEDIA_FAILED)],
        "shell-send-failed-fails-over": [pbx_invite(), shell(SEND_FAILED),
                                         answer(CARRIER_B, 200, with_sdp(sdp(b"127.0.0.4", 7100))),
                                         request(PBX, b"ACK"), request(PBX, b"BYE")],
        "shell-reload-without-carrier-a": up + [shell(RELOAD, arg=b"\x01"), pbx_invite(call=2),
                                                answer(CARRIER_B, 180), pbx_invite(call=3),
                                                request(CARRIER_A, b"BYE"), answer(PBX, 200),
                                                answer(CARRIER_B, 200, with_sdp(sdp(b"127.0.0.4", 7100))),
                                                request(PBX, b"ACK")],
        "shell-cdr-down-then-drain": [shell(CDR_DOWN), pbx_invite(), shell(CDR_UP), pbx_invite(call=2),
                                      answer(CARRIER_A, 180), shell(RELOAD), shell(DRAIN),
                                      pbx_invite(call=3), shell(HANG_UP_ALL, wait=2)],
    }


if __name__ == "__main__":
    main()
