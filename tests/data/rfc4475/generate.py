#!/usr/bin/env python3
"""Writes the RFC 4475 section 3.1.1 (valid) and 3.1.2 (invalid) torture messages as wire bytes.

Provenance: the RFC text could not be fetched from this workplace, so these messages were
written by hand from our knowledge of RFC 4475. Each keeps, exactly, the feature or defect its
section tests (folding, compact forms, escapes, NUL/BEL/DEL in quoted-pairs, UTF-8, lengths,
versions, ...); incidental bytes (some header values, the binary part of 3.1.1.11, the SDP
bodies) may differ from the RFC's. Compare against the RFC text when it is at hand.
Lines end in CRLF. Run from anywhere; it rewrites valid/, invalid/ and MANIFEST.tsv next to it.
"""
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def sdp(ip_o="192.0.2.3", ip_c="192.0.2.4", user="mhandley", sess="29739 7272939", name="-"):
    return (f"v=0\r\no={user} {sess} IN IP4 {ip_o}\r\ns={name}\r\nc=IN IP4 {ip_c}\r\nt=0 0\r\n"
            "m=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n").encode()


def msg(head, body=b"", length=None, length_name="Content-Length"):
    """head: header lines joined by \\n (folding lines keep their leading whitespace).
    A line `@LEN@` is replaced by the Content-Length header (computed unless given)."""
    n = len(body) if length is None else length
    lines = []
    for line in head.strip("\n").split("\n"):
        if line == "@LEN@":
            line = f"{length_name}: {n}"
        lines.append(line)
    raw = "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n"
    return raw + body


M = []  # (section, tag, valid, kind, description, bytes)


def add(section, tag, valid, kind, desc, data):
    M.append((section, tag, valid, kind, desc, data))


# ---------------------------------------------------------------- 3.1.1 valid
add("3.1.1.1", "wsinv", True, "request",
    "Short tortuous INVITE: folding, odd LWS, compact forms, escaped quotes, unknown headers; must be processed",
    msg("""INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0
TO :
 sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n
from   : "J Rosenberg \\\\\\""       <sip:jdrosen@example.com>
  ;
  tag = 98asjd8
MaX-fOrWaRdS: 0068
Call-ID: wsinv.ndaksdj@192.0.2.1
@LEN@
cseq: 0009
  INVITE
Via  : SIP  /   2.0
 /UDP
    192.0.2.2;branch=390skdjuw
s :
NewFangledHeader:   newfangled value
 continued newfangled value
UnknownHeaderWithUnusualValue: ;;,,;;,;
Content-Type: application/sdp
Route:
 <sip:services.example.com;lr;unknownwith=value;unknown-no-value>
v:  SIP  / 2.0  / TCP     spindle.example.com   ;
  branch  =   z9hG4bK9ikj8  ,
 SIP  /    2.0   / UDP  192.168.255.111   ; branch=
 z9hG4bK30239
m:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =
      newvalue ;
  secondparam ; q = 0.33""", sdp("192.0.2.3", "192.0.2.4"), length_name="Content-Length   "))

intmeth_head = ("!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\n"
                "Via: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\n"
                "To: \"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\n"
                "From: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u0440\u0430\u0431\u043e\u0442\u0430\u044e\u0449\u0438\u0439\";tag=_token~1'+`*%!-.\n"
                "Call-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\n"
                "CSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\n"
                "Max-Forwards: 255\n"
                "extensionHeader-!.%*+_`'~:\ufeff\u5927\u505c\u96fb\n"
                "Content-Length: 0")
add("3.1.1.2", "intmeth", True, "request",
    "Wide range of valid characters in method, URI, tokens, quoted strings (incl. escaped NUL/BEL/DEL, UTF-8); unknown method answered",
    msg(intmeth_head))

add("3.1.1.3", "esc01", True, "request",
    "Valid %-escapes in Request-URI, To, From, Contact and URI parameters; escaped and unescaped forms are equivalent",
    msg("""INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0
To: sip:%75se%72@example.com
From: <sip:I%20have%20spaces@example.net>;tag=938
Max-Forwards: 87
i: esc01.239409asdfakjkn23onasd0-3234
CSeq: 234234 INVITE
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw
C: application/sdp
Contact:
  <sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31>
@LEN@""", sdp("192.0.2.1", "192.0.2.1")))

add("3.1.1.4", "escnull", True, "request",
    "Escaped NUL (%00) in URI user parts; must not truncate strings",
    msg("""REGISTER sip:example.com SIP/2.0
To: sip:null-%00-null@example.com
From: sip:null-%00-null@example.com;tag=839923423
Max-Forwards: 70
Call-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd
CSeq: 14398234 REGISTER
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw
Contact: <sip:%00@host5.example.com>
Contact: <sip:%00%00@host5.example.com>
L:0"""))

add("3.1.1.5", "esc02", True, "request",
    "% that is not an escape: method RE%47IST%45R is an unknown method, not REGISTER; quoted %Z%45",
    msg("""RE%47IST%45R sip:registrar.example.com SIP/2.0
To: "%Z%45" <sip:resource@example.com>
From: "%Z%45" <sip:resource@example.com>;tag=f232jadfj23
Call-ID: esc02.asdfnqwo34rq23i34jrjasdcnl23nrlknsdf
Via: SIP/2.0/TCP host.example.com;branch=z9hG4bK209793
Contact: <sip:alias1@host1.example.com>
Contact: <sip:alias2@host2.example.com>
Contact: <sip:alias3@host3.example.com>
Max-Forwards: 70
CSeq: 29344 RE%47IST%45R
Content-Length: 0"""))

add("3.1.1.6", "lwsdisp", True, "request",
    "No LWS between display name and <",
    msg("""OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: caller<sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID: lwsdisp.1234abcd@funky.example.com
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw
l: 0"""))

vias = "\n".join(
    (["Via: SIP/2.0/TCP sip33.example.com"] +
     [f"{'v' if i % 3 == 0 else ('V' if i % 3 == 1 else 'Via')}: SIP/2.0/TCP sip{i}.example.com" for i in range(32, 1, -1)] +
     ["Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK" + "longbranch" * 5]))
add("3.1.1.7", "longreq", True, "request",
    "Very long header values, parameters, Call-ID, unknown header and many Via hops; no fixed-size buffers",
    msg(f"""INVITE sip:user@example.com SIP/2.0
To: "I have a user name of {'extreme' * 10} proportion"<sip:user@example.com:6000;unknownparam1=very{'long' * 20}value;longparam{'name' * 25}=shortvalue;very{'long' * 25}ParameterNameWithNoValue>
F: sip:{'amazinglylongcallername' * 5}@example.net;tag=12{'982' * 50}424;unknownheaderparam{'name' * 20}=unknowheaderparam{'value' * 15};unknownValueless{'paramname' * 10}
Call-ID: longreq.one{'really' * 20}longcallid
CSeq: 3882340 INVITE
Unknown-{'Long' * 20}-Name: unknown-{'long' * 20}-value; unknown-{'long' * 20}-parameter-name = unknown-{'long' * 20}-parameter-value
{vias}
Max-Forwards: 68
Contact: <sip:{'amazinglylongcallername' * 5}@host5.example.net>
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.1", "192.0.2.1"), length_name="l"))

add("3.1.1.8", "dblreq", True, "request",
    "UDP datagram with trailing octets (a second message): process the first (REGISTER), ignore the rest",
    msg("""REGISTER sip:example.com SIP/2.0
To: sip:j.user@example.com
From: sip:j.user@example.com;tag=43251j3j324
Max-Forwards: 8
I: dblreq.0ha0isndaksdj99sdfafnl3lk233412
Contact: sip:j.user@host.example.com
CSeq: 8 REGISTER
Via: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492
Content-Length: 0""") + msg("""INVITE sip:joe@example.com SIP/2.0
t: sip:joe@example.com
From: sip:caller@example.net;tag=141334
Max-Forwards: 8
Call-ID: dblreq.0ha0isnda977644900765@192.0.2.15
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw380234
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.15", "192.0.2.15")))

add("3.1.1.9", "semiuri", True, "request",
    "Semicolon-separated parameters in the Request-URI user part; folded Accept",
    msg("""OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0
To: sip:j_user@example.com
From: sip:caller@example.org;tag=33242
Max-Forwards: 3
Call-ID: semiuri.0ha0isndaksdj
CSeq: 8 OPTIONS
Accept: application/sdp, application/pkcs7-mime,
        multipart/mixed, multipart/signed,
        message/sip, message/sipfrag
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw
l: 0"""))

add("3.1.1.10", "transports", True, "request",
    "Varied and unknown transports in Via (SCTP, TLS, UNKNOWN); only the top one matters",
    msg("""OPTIONS sip:user@example.com SIP/2.0
To: sip:user@example.com
From: <sip:caller@example.com>;tag=323
Max-Forwards: 70
Call-ID:  transports.kijh4akdnaqjkwendsasfdj
Accept: application/sdp
CSeq: 60 OPTIONS
Via: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw
Via: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf
Via: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj
Via: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en
Via: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee
l: 0"""))

boundary = "7a9cbec02ceef655"
binary = bytes([0x30, 0x82, 0x01, 0x52, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02, 0xa0,
                0x82, 0x01, 0x43, 0x00, 0x00, 0x0d, 0x0a, 0x0d, 0x0a, 0x2d, 0x2d, 0xff, 0xfe, 0x00, 0x01, 0x80])
mpart_body = (f"--{boundary}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n\r\nHello\r\n"
              f"--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n").encode() \
    + binary + f"\r\n--{boundary}--\r\n".encode()
add("3.1.1.11", "mpart01", True, "request",
    "Multipart MIME body with binary content (NUL, CRLF inside); body length is by Content-Length only",
    msg(f"""MESSAGE sip:kumiko@example.org SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-d87543-4dade06d0bdb11ee-1--d87543-;rport
Max-Forwards: 70
Route: <sip:127.0.0.1:5080>
Contact: <sip:fluffy@127.0.0.1:5070>
To: <sip:kumiko@example.org>
From: <sip:fluffy@example.com>;tag=2fb0dcc9
Call-ID: 3d9485ad0c49859b@Zmx1ZmZ5LW1hYy0xNi5sb2NhbA..
CSeq: 1 MESSAGE
Content-Transfer-Encoding: binary
Content-Type: multipart/mixed;boundary={boundary}
Date: Sat, 15 Oct 2005 04:44:56 GMT
User-Agent: SIPimp.org/0.2.5 (curses)
@LEN@""", mpart_body))

add("3.1.1.12", "unreason", True, "response",
    "Response with an unusual reason phrase (spaces, symbols, UTF-8); a stray response is absorbed",
    msg("""SIP/2.0 200 = 2**3 * 5**2 \u043d\u043e \u0441\u0442\u043e \u0434\u0435\u0432\u044f\u043d\u043e\u0441\u0442\u043e \u0434\u0435\u0432\u044f\u0442\u044c - \u043f\u0440\u043e\u0441\u0442\u043e\u0435
Via: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923
Call-ID: unreason.1234ksdfak3j2erwedfsASdf
CSeq: 35 INVITE
From: sip:user@example.com;tag=11141343
To: sip:user@example.edu;tag=2229
@LEN@
Content-Type: application/sdp
Contact: <sip:user@host198.example.com>""", sdp("192.0.2.198", "192.0.2.198")))

add("3.1.1.13", "noreason", True, "response",
    "Response with an empty reason phrase (status code followed by SP CRLF)",
    msg("""SIP/2.0 100 
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: noreason.asndj203insdf99223ndf
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>"""))

# ---------------------------------------------------------------- 3.1.2 invalid
add("3.1.2.1", "badinv01", False, "request",
    "Extraneous header field separators in Via (;;,;,,) and Contact: 400 or discard",
    msg("""INVITE sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=134161461246
Max-Forwards: 7
Call-ID: badinv01.0ha0isndaksdjasdf3234nas
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.15;;,;,,
Contact: "Joe" <sip:joe@example.org>;;;;
@LEN@
Content-Type: application/sdp""", sdp("192.0.2.15", "192.0.2.15", "assistant", "971731711378798081 0", "Live video feed")))

add("3.1.2.2", "clerr", False, "request",
    "Content-Length larger than the datagram: 400",
    msg("""INVITE sip:user@example.com SIP/2.0
Max-Forwards: 80
To: sip:j.user@example.com
From: sip:caller@example.net;tag=93942939o2
Contact: <sip:caller@hungry.example.net>
Call-ID: clerr.0ha0isndaksdjweiafasdk3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.155", "192.0.2.155"), length=9999))

add("3.1.2.3", "ncl", False, "request",
    "Negative Content-Length: 400",
    msg("""INVITE sip:user@example.com SIP/2.0
Max-Forwards: 254
To: sip:j.user@example.com
From: sip:caller@example.net;tag=32394234
Call-ID: ncl.0ha0isndaksdj2193423r542w35
CSeq: 0 INVITE
Via: SIP/2.0/UDP 192.0.2.53;branch=z9hG4bKkdjuw
Contact: <sip:caller@example53.example.net>
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.53", "192.0.2.53"), length=-999))

add("3.1.2.4", "scalar02", False, "request",
    "Request scalar fields with overlarge values (CSeq, Max-Forwards, Expires): 400",
    msg(f"""REGISTER sip:example.com SIP/2.0
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3
To: <sip:user@example.com>
From: <sip:user@example.com>;tag=239232jh3
CSeq: 36893488147419103232 REGISTER
Call-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32
Max-Forwards: 300
Expires: 1{'0' * 100}
Contact: <sip:user@host129.example.com>
  ;expires=280297596632815
Content-Length: 0"""))

add("3.1.2.5", "scalarlg", False, "response",
    "Response scalar fields with overlarge values (CSeq, Retry-After, Warning code): discard",
    msg("""SIP/2.0 503 Service Unavailable
Via: SIP/2.0/TCP host129.example.com;branch=z9hG4bKzzxdiwo34sw;received=192.0.2.129
To: <sip:user@example.com>
From: <sip:other@example.net>;tag=2easdjfejw
CSeq: 9292394834772304023312 OPTIONS
Call-ID: scalarlg.noase0of0234hn2qofoaf0232aewf2394r
Retry-After: 949302838503028349304023988
Warning: 1812 overture "In Progress"
Content-Length: 0"""))

add("3.1.2.6", "quotbal", False, "request",
    "Unterminated quoted string in the To display name: 400",
    msg("""INVITE sip:user@example.com SIP/2.0
To: "Mr. J. User <sip:j.user@example.com>
From: sip:caller@example.net;tag=93334
Max-Forwards: 10
Call-ID: quotbal.aksdj
Contact: <sip:caller@host59.example.net>
CSeq: 8 INVITE
Via: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.15", "192.0.2.15")))

add("3.1.2.7", "ltgtruri", False, "request",
    "Request-URI enclosed in <>: 400",
    msg("""INVITE <sip:user@example.com> SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=39291
Max-Forwards: 23
Call-ID: ltgtruri.1@192.0.2.5
CSeq: 1 INVITE
Via: SIP/2.0/UDP 192.0.2.5
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.5", "192.0.2.5")))

add("3.1.2.8", "lwsruri", False, "request",
    "Embedded LWS in the Request-URI: 400",
    msg("""INVITE sip:user@example.com; lr SIP/2.0
To: sip:user@example.com;tag=3xfe-9921883-z9f
From: sip:caller@example.net;tag=231413434
Max-Forwards: 5
Call-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423
CSeq: 2130706432 INVITE
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKkdjuw2395
Contact: <sip:caller@host1.example.net>
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.1", "192.0.2.1")))

add("3.1.2.9", "lwsstart", False, "request",
    "Multiple SP separating Request-Line elements: 400",
    msg("""INVITE  sip:user@example.com  SIP/2.0
Max-Forwards: 8
To: sip:user@example.com
From: sip:caller@example.net;tag=8814
Call-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com
CSeq: 1893884 INVITE
Via: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923
Contact: <sip:caller@host1.example.net>
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.1", "192.0.2.1")))

add("3.1.2.10", "trws", False, "request",
    "SP characters at the end of the Request-Line: 400",
    msg("""OPTIONS sip:remote-target@example.com SIP/2.0  
Via: SIP/2.0/TCP host1.examle.com;branch=z9hG4bK299342093
To: <sip:remote-target@example.com>
From: <sip:local-resource@example.com>;tag=329429089
Call-ID: trws.oicu34958239neffasdhr2345r
Accept: application/sdp
CSeq: 238923 OPTIONS
Max-Forwards: 70
Content-Length: 0"""))

add("3.1.2.11", "escruri", False, "request",
    "Escaped headers in the Request-URI (?Route=...): 400",
    msg("""INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=341518
Max-Forwards: 7
Contact: <sip:caller@host39923.example.net>
Call-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5
CSeq: 149209342 INVITE
Via: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.1", "192.0.2.1")))

add("3.1.2.12", "baddate", False, "request",
    "Date with a time zone other than GMT: 400 (or ignore the Date)",
    msg("""INVITE sip:user@example.com SIP/2.0
To: sip:user@example.com
From: sip:caller@example.net;tag=2234923
Max-Forwards: 70
Call-ID: baddate.239423mnsadf3j23lj42--sedfnm234
CSeq: 1392934 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
Date: Fri, 01 Jan 2010 16:00:00 EST
Contact: <sip:caller@host5.example.net>
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.5", "192.0.2.5")))

add("3.1.2.13", "regbadct", False, "request",
    "Contact URI with headers (?) not enclosed in <>: 400",
    msg("""REGISTER sip:example.com SIP/2.0
To: sip:user@example.com
From: sip:user@example.com;tag=998332
Max-Forwards: 70
Call-ID: regbadct.k345asrl3fdbv@192.0.2.1
CSeq: 1 REGISTER
Via: SIP/2.0/UDP 135.180.130.133:5060;branch=z9hG4bKkdjuw
Contact: sip:user@example.com?Route=%3Csip:sip.example.com%3E
l: 0"""))

add("3.1.2.14", "badaspec", False, "request",
    "Spaces inside the <> of an addr-spec (To): 400",
    msg("""OPTIONS sip:user@example.org SIP/2.0
Via: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234
Max-Forwards: 70
From: "Bell, Alexander" <sip:a.g.bell@example.com>;tag=433423
To: "Watson, Thomas" < sip:t.watson@example.org >
Call-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3
Accept: application/sdp
CSeq: 3923239 OPTIONS
l: 0"""))

add("3.1.2.15", "baddn", False, "request",
    "Non-token characters (comma) in an unquoted display name: 400",
    msg("""OPTIONS sip:t.watson@example.org SIP/2.0
Via:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjw
Max-Forwards:      70
From:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43
To:      Watson, Thomas <sip:t.watson@example.org>
Call-ID: baddn.31415@c.example.com
Accept: application/sdp
CSeq:    3923239 OPTIONS
l: 0"""))

add("3.1.2.16", "badvers", False, "request",
    "Unknown protocol version SIP/7.0: 505 Version Not Supported",
    msg("""OPTIONS sip:t.watson@example.org SIP/7.0
Via:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjw
Max-Forwards:     70
From:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe
To:      T. Watson <sip:t.watson@example.org>
Call-ID: badvers.31417@c.example.com
CSeq:    1 OPTIONS
l: 0"""))

add("3.1.2.17", "mismatch01", False, "request",
    "Start-line method OPTIONS with CSeq method INVITE: 400",
    msg("""OPTIONS sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch01.dj0234sxdfl3
CSeq: 8 INVITE
Via: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw
l: 0"""))

add("3.1.2.18", "mismatch02", False, "request",
    "Unknown method NEWMETHOD with CSeq method INVITE: 400",
    msg("""NEWMETHOD sip:user@example.com SIP/2.0
To: sip:j.user@example.com
From: sip:caller@example.net;tag=34525
Max-Forwards: 6
Call-ID: mismatch02.dj0234sxdfl3
CSeq: 8 INVITE
Contact: <sip:caller@host.example.net>
Via: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw
Content-Type: application/sdp
@LEN@""", sdp("192.0.2.1", "192.0.2.1", "assistant", "971731711378798081 0", "Live video feed"), length_name="l"))

add("3.1.2.19", "bigcode", False, "response",
    "Response code 4294967301 (overflows 32 bits): discard",
    msg("""SIP/2.0 4294967301 better not break the receiver
Via: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe
Call-ID: bigcode.asdof3uj203asdnf3429uasdhfas3
CSeq: 35 INVITE
From: <sip:user@example.com>;tag=39ansfi3
To: <sip:user@example.edu>;tag=902jndnke3
Content-Length: 0
Contact: <sip:user@host105.example.com>"""))


def main():
    manifest = []
    for sub in ("valid", "invalid"):
        os.makedirs(os.path.join(HERE, sub), exist_ok=True)
        for f in os.listdir(os.path.join(HERE, sub)):
            os.remove(os.path.join(HERE, sub, f))
    for section, tag, valid, kind, desc, data in M:
        rel = f"{'valid' if valid else 'invalid'}/{section}-{tag}.sip"
        with open(os.path.join(HERE, rel), "wb") as f:
            f.write(data)
        manifest.append(f"{rel}\t{'valid' if valid else 'invalid'}\t{kind}\t{desc}")
    with open(os.path.join(HERE, "MANIFEST.tsv"), "w") as f:
        f.write("\n".join(manifest) + "\n")
    v = sum(1 for m in M if m[2])
    print(f"wrote {v} valid and {len(M) - v} invalid messages")


if __name__ == "__main__":
    main()
