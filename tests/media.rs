//! Media anchoring with the real binary: SIP and RTP from raw sockets on the phone's and the
//! carrier's addresses. Each side's SDP must name only the gateway, and RTP must flow both
//! ways through it.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::anchored::*;
use common::*;
use trunkgate::sip::{Hdr, Message, Response};

#[test]
fn anchored_call_relays_rtp_both_ways_and_hides_both_sides() {
    let gw = Gateway::start(Ports::new(), GwOpts::carrier_a("[media]\nanchor = true\n"));
    let e = establish(&gw, "media-1");
    let mut buf = [0u8; 2048];
    for i in 0..5u8 {
        let pkt = [0x80, 0x00, 0, i, 0, 0, 0, 160, 1, 2, 3, 4, 0xff, 0xfe];
        e.phone_rtp.send_to(&pkt, e.gw_a).unwrap();
        let (n, from) = e
            .carrier_rtp
            .recv_from(&mut buf)
            .expect("phone's RTP reaches the carrier");
        assert_eq!(&buf[..n], &pkt);
        assert_eq!(from, e.gw_b);
        let back = [0x80, 0x00, 1, i, 0, 0, 1, 64, 5, 6, 7, 8, 0x7f];
        e.carrier_rtp.send_to(&back, e.gw_b).unwrap();
        let (n, from) = e
            .phone_rtp
            .recv_from(&mut buf)
            .expect("carrier's RTP reaches the phone");
        assert_eq!(&buf[..n], &back);
        assert_eq!(from, e.gw_a);
    }
    hang_up(&gw, &e, "media-1");
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["call_tag"], "caller_bye");
    assert!(cdr["recording"].is_null());
    std::thread::sleep(Duration::from_millis(200));
    e.carrier_rtp
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // The stream's next packet, which the relay would pass while the call was up (a packet
    // too short to be RTP would be dropped whatever became of the relay).
    let next = [0x80, 0x00, 0, 5, 0, 0, 0, 160, 1, 2, 3, 4, 0xff, 0xfe];
    e.phone_rtp.send_to(&next, e.gw_a).unwrap();
    assert!(
        e.carrier_rtp.recv_from(&mut buf).is_err(),
        "relay closed with the call"
    );
}

#[test]
fn injected_rtp_never_takes_a_leg_but_a_nat_rebinding_does() {
    let gw = Gateway::start(Ports::new(), GwOpts::carrier_a("[media]\nanchor = true\n"));
    let e = establish(&gw, "media-latch");
    let stranger = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    stranger
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 2048];
    let pkt = |seq: u8, ssrc: u8| [0x80, 0x00, 0, seq, 0, 0, 0, seq, 0, 0, 0, ssrc, 0xff];
    // The phone's first packet latches its leg.
    e.phone_rtp.send_to(&pkt(1, 1), e.gw_a).unwrap();
    let (n, _) = e.carrier_rtp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &pkt(1, 1));
    // The audit's attack: packets with a new SSRC from elsewhere, three at once and then
    // more, interleaved with the phone's own. None is relayed; the phone's all are.
    for seq in 10..20 {
        stranger.send_to(&pkt(seq, 9), e.gw_a).unwrap();
        if seq % 3 == 0 {
            e.phone_rtp.send_to(&pkt(seq, 1), e.gw_a).unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    e.carrier_rtp
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut relayed = Vec::new();
    while let Ok((n, _)) = e.carrier_rtp.recv_from(&mut buf) {
        relayed.push(buf[..n].to_vec());
    }
    let want: Vec<Vec<u8>> = [12u8, 15, 18].iter().map(|s| pkt(*s, 1).to_vec()).collect();
    assert_eq!(relayed, want, "only the phone's packets reach the carrier");
    // The carrier's answer goes to the phone, never to the stranger.
    e.carrier_rtp.send_to(&pkt(1, 5), e.gw_b).unwrap();
    e.phone_rtp.recv_from(&mut buf).unwrap();
    assert!(stranger.recv_from(&mut buf).is_err());
    // A NAT rebinding: the phone falls silent, then its stream (same SSRC, sequence a little
    // ahead) comes from a new port. After the silence the leg follows it.
    std::thread::sleep(trunkgate::media::MOVE_AFTER_SILENCE + Duration::from_millis(200));
    let rebound = UdpSocket::bind((PHONE_IP, 0)).unwrap();
    rebound
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    rebound.send_to(&pkt(21, 1), e.gw_a).unwrap();
    let (n, _) = e.carrier_rtp.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &pkt(21, 1));
    e.carrier_rtp.send_to(&pkt(2, 5), e.gw_b).unwrap();
    let (n, _) = rebound
        .recv_from(&mut buf)
        .expect("answer follows the rebinding");
    assert_eq!(&buf[..n], &pkt(2, 5));
    hang_up(&gw, &e, "media-latch");
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
}

/// The WAV named by a CDR's `recording`, once the writer has finalised it (right after the
/// call's release).
fn finalised_recording(
    cdr: &serde_json::Value,
) -> hound::WavReader<std::io::BufReader<std::fs::File>> {
    let path = cdr["recording"]
        .as_str()
        .expect("recording path in the CDR")
        .to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(r) = hound::WavReader::open(&path)
            && r.duration() > 0
        {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no finalised recording at {path}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The recording a CDR names is complete the moment the CDR is in the file: its header
/// gives the file's own size (before, the file was finished only once the call was
/// forgotten, after the CDR, and a CDR reader found the header's last update).
fn complete_when_its_cdr_is_written(cdr: &serde_json::Value) {
    let path = cdr["recording"]
        .as_str()
        .expect("recording path in the CDR");
    let bytes = std::fs::read(path).expect("the recording, there when its CDR is");
    let le = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
    assert!(bytes.len() > 44, "{path}: {} bytes", bytes.len());
    assert_eq!(
        (le(4), le(40)),
        (bytes.len() - 8, bytes.len() - 44),
        "{path}: the header's sizes (RIFF, data) are not the file's"
    );
}

/// A deterministic μ-law stream without silence codes, so lost spans are recognisable.
fn stream(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let b = (x & 0xff) as u8;
            if b == 0xff || b == 0x7f { 0x80 } else { b }
        })
        .collect()
}

fn ulaw(b: u8) -> i16 {
    trunkgate::media::record::ulaw_to_linear(b)
}

/// Send `data` from `sock` to `to` as real-time RTP with `ptime` ms packets, ±20 ms of jitter
/// (neighbours reordered) and every 100th packet lost, the first RTP timestamp `ts0` (to
/// cross the 32-bit wrap). Returns the lost sample spans.
fn send_stream_from(
    sock: UdpSocket,
    to: SocketAddr,
    data: Vec<u8>,
    ptime_ms: u64,
    ssrc: u32,
    ts0: u32,
) -> std::thread::JoinHandle<Vec<std::ops::Range<usize>>> {
    send_stream_at(
        sock,
        to,
        data,
        ptime_ms,
        ssrc,
        ts0,
        std::time::Instant::now(),
    )
}

/// The phone's stream `a` (20 ms packets) and the carrier's `b` (`carrier_ptime`), sent
/// through the gateway from one start; what each lost on the way.
fn both_ways(
    e: &Established,
    (a, b): (Vec<u8>, Vec<u8>),
    carrier_ptime: u64,
) -> (Vec<std::ops::Range<usize>>, Vec<std::ops::Range<usize>>) {
    let start = std::time::Instant::now() + Duration::from_millis(20);
    let phone = e.phone_rtp.try_clone().unwrap();
    let pa = send_stream_at(phone, e.gw_a, a, 20, 0x1111, 1000, start);
    let carrier = e.carrier_rtp.try_clone().unwrap();
    let pb = send_stream_at(carrier, e.gw_b, b, carrier_ptime, 0x2222, 1000, start);
    (pa.join().unwrap(), pb.join().unwrap())
}

/// As `send_stream_from`, its schedule counted from `start`: two streams given one start
/// begin together however late each thread is scheduled.
fn send_stream_at(
    sock: UdpSocket,
    to: SocketAddr,
    data: Vec<u8>,
    ptime_ms: u64,
    ssrc: u32,
    ts0: u32,
    start: std::time::Instant,
) -> std::thread::JoinHandle<Vec<std::ops::Range<usize>>> {
    std::thread::spawn(move || {
        let n = (ptime_ms * 8) as usize;
        let jitter = [0i64, 20, -15, 10, -20, 5, 18, -8, 12, -3];
        let mut plan = Vec::new();
        let mut lost = Vec::new();
        for (i, chunk) in data.chunks(n).enumerate() {
            let off = i * n;
            if i % 100 == 50 {
                lost.push(off..off + chunk.len());
                continue;
            }
            let at = (i as i64) * ptime_ms as i64 + 40 + jitter[i % jitter.len()];
            let mut p = vec![0x80, 0x00];
            p.extend_from_slice(&(i as u16).to_be_bytes());
            p.extend_from_slice(&ts0.wrapping_add(off as u32).to_be_bytes());
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(chunk);
            plan.push((at.max(0) as u64, p));
        }
        plan.sort_by_key(|(t, _)| *t);
        for (t, p) in plan {
            let due = start + Duration::from_millis(t);
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            sock.send_to(&p, to).unwrap();
        }
        lost
    })
}

fn check_channel(got: &[i16], sent: &[u8], lost: &[std::ops::Range<usize>], what: &str) -> usize {
    let first: Vec<i16> = sent[..160].iter().map(|&b| ulaw(b)).collect();
    let start = got
        .windows(160)
        .position(|w| w == first.as_slice())
        .unwrap_or_else(|| panic!("{what}: stream not found in the recording"));
    for (i, &b) in sent.iter().enumerate() {
        let want = if lost.iter().any(|r| r.contains(&i)) {
            0
        } else {
            ulaw(b)
        };
        assert_eq!(
            got.get(start + i).copied(),
            Some(want),
            "{what}: sample {i}"
        );
    }
    start
}

fn recorded_call(carrier_ptime: u64) {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            // A deep buffer: a sender thread the machine is slow to schedule must not
            // make its packets late (what the jitter placement does with late packets is
            // the recorder's unit tests' business).
            gateway_extra: "[recording]\nformat = \"stereo\"\njitter_ms = 400\n".into(),
            ..GwOpts::carrier_a("[media]\nrecord = true\n")
        },
    );
    let id = format!("rec-{carrier_ptime}");
    let e = establish(&gw, &id);
    let a = stream(8000 * 3, 7);
    let b = stream(8000 * 3, 9);
    // One start for both streams: their alignment in the file is checked below.
    let (lost_a, lost_b) = both_ways(&e, (a.clone(), b.clone()), carrier_ptime);
    std::thread::sleep(Duration::from_millis(600));
    hang_up(&gw, &e, &id);
    let cdr = &gw.wait_cdrs(1)[0];
    complete_when_its_cdr_is_written(cdr);
    let reader = finalised_recording(cdr);
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let samples: Vec<i16> = reader.into_samples::<i16>().map(|s| s.unwrap()).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let sa = check_channel(&left, &a, &lost_a, "caller (left)");
    let sb = check_channel(&right, &b, &lost_b, "callee (right)");
    // Both started together: within the scheduling slack of two sender threads on a loaded
    // machine (each channel's own placement is checked sample for sample above).
    assert!(
        sa.abs_diff(sb) < 8 * 100,
        "channels misaligned: {sa} vs {sb}"
    );
    // The file is the media, within one frame.
    let media_end = (sa + a.len()).max(sb + b.len());
    assert!(
        left.len().abs_diff(media_end) <= 160,
        "file {} frames, media ends at {media_end}",
        left.len()
    );
    // And the metric counts what the file holds: 2 channels of 16-bit samples.
    let written = metric(&gw.metrics(), "trunkgate_recording_bytes_total");
    assert_eq!(written as usize, samples.len() * 2);
}

/// A callee that never answers the BYE keeps its call's last transaction open for 32 s; the
/// recording is finished at the call's end all the same, before its CDR is written (it was
/// finished only when the call was forgotten: its CDR named a file without its last audio
/// and with a header seconds old).
#[test]
fn a_recording_is_complete_when_its_cdr_is_written_though_the_bye_goes_unanswered() {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            gateway_extra: "[recording]\nformat = \"stereo\"\n".into(),
            ..GwOpts::carrier_a("[media]\nrecord = true\n")
        },
    );
    let id = "rec-unanswered-bye";
    let e = establish(&gw, id);
    both_ways(&e, (stream(8000, 3), stream(8000, 5)), 20);
    let bye = format!(
        "BYE sip:127.0.0.1:{} SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{};branch=z9hG4bK{id}3;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: {}\r\nCall-ID: {id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        gw.ports.gw, gw.ports.phone, e.to
    );
    e.phone.send_to(bye.as_bytes(), gw.addr()).unwrap();
    // The carrier reads the BYE and says nothing.
    recv_sip(
        &e.carrier,
        |m| matches!(m, Message::Request(r) if r.method() == trunkgate::sip::Method::Bye),
    );
    let cdr = &gw.wait_cdrs(1)[0];
    complete_when_its_cdr_is_written(cdr);
    let frames = finalised_recording(cdr).duration();
    assert!(
        frames >= 7000,
        "the call's second of audio: {frames} frames"
    );
}

#[test]
fn recording_is_sample_exact_with_20_and_30_ms_packets_jitter_and_loss() {
    recorded_call(30);
}

#[test]
fn recording_is_sample_exact_with_20_and_40_ms_packets_jitter_and_loss() {
    recorded_call(40);
}

#[test]
fn no_rtp_for_the_timeout_releases_the_call() {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts::carrier_a("[media]\nanchor = true\nrtp_timeout_s = 1\n"),
    );
    let e = establish(&gw, "silent-1");
    // RTP for a moment, then silence.
    e.phone_rtp
        .send_to(&[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xd5], e.gw_a)
        .unwrap();
    let is_bye =
        |m: &Message| matches!(m, Message::Request(r) if r.method() == trunkgate::sip::Method::Bye);
    let Message::Request(to_phone) = recv_sip(&e.phone, is_bye) else {
        unreachable!()
    };
    let Message::Request(to_carrier) = recv_sip(&e.carrier, is_bye) else {
        unreachable!()
    };
    assert_eq!(
        to_phone.header(&Hdr::REASON).as_deref(),
        Some("Q.850;cause=102")
    );
    for (sock, bye) in [(&e.phone, to_phone), (&e.carrier, to_carrier)] {
        let ok = Response::to_request(&bye, 200, "OK", None).unwrap();
        sock.send_to(&ok.to_bytes(), gw.addr()).unwrap();
    }
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["call_tag"], "rtp_timeout");
    assert_eq!(cdr["cause"], 102);
}

#[test]
fn a_call_that_rang_longer_than_the_timeout_is_not_released_while_rtp_flows() {
    // Audit H3: the timeout ran out during ringing, and the relay went on refreshing a clock
    // nobody read; the call was hung up one timeout after answer with audio flowing.
    let gw = Gateway::start(
        Ports::new(),
        GwOpts::carrier_a("[media]\nanchor = true\nrtp_timeout_s = 1\n"),
    );
    let e = establish_with(&gw, "ring-long", Duration::from_millis(1600), |ip, port| {
        sdp(ip, port).into_bytes()
    });
    // RTP from the phone every 100 ms for 2.5 s: more than twice the timeout.
    e.phone
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 65536];
    for i in 0..25u8 {
        e.phone_rtp
            .send_to(&[0x80, 0, 0, i, 0, 0, 0, i, 0, 0, 0, 1, 0xd5], e.gw_a)
            .unwrap();
        if let Ok((n, _)) = e.phone.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]);
            assert!(
                !text.starts_with("BYE"),
                "released with RTP flowing:\n{text}"
            );
        }
    }
    assert!(gw.cdrs().is_empty(), "the call is still up");
    e.phone
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    hang_up(&gw, &e, "ring-long");
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
}

#[test]
fn thirty_ms_in_twenty_ms_out_for_a_repacketizing_peer() {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts::carrier_a("[sdp]\nptime = 20\n\n[media]\nrepacketize = true\n"),
    );
    let e = establish(&gw, "repack-1");
    let data = stream(2400, 21);
    for (i, chunk) in data.chunks(240).enumerate() {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&(i as u16 + 500).to_be_bytes());
        p.extend_from_slice(&(9000u32 + (i * 240) as u32).to_be_bytes());
        p.extend_from_slice(&0xabcdu32.to_be_bytes());
        p.extend_from_slice(chunk);
        e.phone_rtp.send_to(&p, e.gw_a).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut buf = [0u8; 2048];
    let mut got = Vec::new();
    let mut seqs = Vec::new();
    let mut stamps = Vec::new();
    while got.len() < data.len() {
        let (n, _) = e
            .carrier_rtp
            .recv_from(&mut buf)
            .expect("20 ms packets reach the carrier");
        assert_eq!(n - 12, 160, "20 ms of G.711 per packet");
        seqs.push(u16::from_be_bytes([buf[2], buf[3]]));
        stamps.push(u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]));
        got.extend_from_slice(&buf[12..n]);
    }
    assert_eq!(got, data, "content identical");
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    assert!(stamps.windows(2).all(|w| w[1] == w[0] + 160), "{stamps:?}");
    assert_eq!(stamps[0], 9000);
    hang_up(&gw, &e, "repack-1");
    gw.wait_cdrs(1);
}

#[test]
fn recording_survives_ptime_change_timestamp_wrap_and_ssrc_change() {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            gateway_extra: "[recording]\njitter_ms = 100\n".into(),
            ..GwOpts::carrier_a("[media]\nrecord = true\n")
        },
    );
    let e = establish(&gw, "rec-change");
    // Phone: 1.2 s of 40 ms packets across the timestamp wrap, then 1.2 s of 20 ms packets
    // continuing the same timestamps. Carrier: a stream, then a new SSRC (a transfer).
    let a1 = stream(9600, 31);
    let a2 = stream(9600, 33);
    let b1 = stream(9600, 35);
    let b2 = stream(9600, 37);
    let ts0 = u32::MAX - 4000;
    let pa1 = send_stream_from(
        e.phone_rtp.try_clone().unwrap(),
        e.gw_a,
        a1.clone(),
        40,
        0x3333,
        ts0,
    );
    let pb1 = send_stream_from(
        e.carrier_rtp.try_clone().unwrap(),
        e.gw_b,
        b1.clone(),
        20,
        0x4444,
        77,
    );
    let (la1, lb1) = (pa1.join().unwrap(), pb1.join().unwrap());
    let pa2 = send_stream_from(
        e.phone_rtp.try_clone().unwrap(),
        e.gw_a,
        a2.clone(),
        20,
        0x3333,
        ts0.wrapping_add(9600),
    );
    let pb2 = send_stream_from(
        e.carrier_rtp.try_clone().unwrap(),
        e.gw_b,
        b2.clone(),
        20,
        0x5555,
        123_456_789,
    );
    let (la2, lb2) = (pa2.join().unwrap(), pb2.join().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    hang_up(&gw, &e, "rec-change");
    let cdr = &gw.wait_cdrs(1)[0];
    let reader = finalised_recording(cdr);
    let samples: Vec<i16> = reader.into_samples::<i16>().map(|s| s.unwrap()).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    let s1 = check_channel(&left, &a1, &la1, "caller before the ptime change");
    let s2 = check_channel(&left, &a2, &la2, "caller after the ptime change");
    assert_eq!(
        s2,
        s1 + 9600,
        "the second half follows the first sample for sample"
    );
    check_channel(&right, &b1, &lb1, "callee first SSRC");
    check_channel(&right, &b2, &lb2, "callee second SSRC");
}

/// The metric value of one labelled series, or 0.
fn metric(text: &str, series: &str) -> f64 {
    Gateway::metric_value(text, series).unwrap_or(0.0)
}

#[test]
fn sipp_phone_and_echoing_carrier_exchange_rtp_through_the_gateway() {
    let gw = Gateway::start(Ports::new(), GwOpts::carrier_a("[media]\nanchor = true\n"));
    let tmp = tempfile::tempdir().unwrap();
    let carrier = Sipp::uas_with(
        "anchor/carrier.xml",
        CARRIER_A_IP,
        gw.ports.carrier_a,
        tmp.path(),
        &["-rtp_echo"],
    );
    let phone = Sipp::uac(
        "anchor/phone.xml",
        PHONE_IP,
        gw.ports.phone,
        tmp.path(),
        gw.addr(),
        "+8610123",
    );
    phone.expect_success(&gw);
    carrier.expect_success(&gw);
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
    let m = gw.metrics();
    let to_callee = metric(&m, "trunkgate_rtp_packets_total{toward=\"callee\"}");
    let to_caller = metric(&m, "trunkgate_rtp_packets_total{toward=\"caller\"}");
    assert!(
        to_callee >= 20.0,
        "the phone's audio reached the carrier: {m}"
    );
    assert!(to_caller >= 20.0, "the echo came back to the phone: {m}");
    // Bytes with the packets: at least the 12-byte RTP header of each.
    let bytes = metric(&m, "trunkgate_rtp_bytes_total{toward=\"callee\"}");
    assert!(
        bytes >= 12.0 * to_callee,
        "{bytes} bytes for {to_callee} packets: {m}"
    );
}

/// The audit's packet: X=1, one-byte extension profile, one word, and an element that claims
/// 16 bytes of it. It used to panic the `rtp` crate inside the relay, ending that direction.
fn hostile_packet(seq: u16, ts: u32, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x90, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x1F, 0x00, 0x00, 0x00]);
    p
}

/// 50 packets of 20 ms G.711 from the phone, with the hostile packet (same source, same
/// SSRC) after the third. Returns the audio sent and the payloads the carrier received
/// (20 ms each), in order.
fn stream_with_hostile_packet(e: &Established) -> (Vec<u8>, Vec<Vec<u8>>) {
    let data = stream(50 * 160, 51);
    let ssrc = 0x5151u32;
    let receiver = {
        let sock = e.carrier_rtp.try_clone().unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            // At most the 51 datagrams sent: the loop ends on them or on a quiet 1.5 s.
            while got.len() < 51 {
                let Ok((n, _)) = sock.recv_from(&mut buf) else {
                    break;
                };
                got.push(buf[..n].to_vec());
            }
            got
        })
    };
    for (i, chunk) in data.chunks(160).enumerate() {
        let ts = 1000 + (i as u32) * 160;
        if i == 3 {
            e.phone_rtp
                .send_to(&hostile_packet(i as u16 + 100, ts, ssrc), e.gw_a)
                .unwrap();
        }
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&(i as u16 + 101).to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend_from_slice(chunk);
        e.phone_rtp.send_to(&p, e.gw_a).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let got = receiver.join().unwrap();
    // Audio packets only (the relay may pass the hostile datagram on as bytes).
    let audio = got
        .into_iter()
        .filter(|p| p.len() == 12 + 160 && p[0] == 0x80)
        .map(|p| p[12..].to_vec())
        .collect();
    (data, audio)
}

/// How many of the 47 packets sent after the hostile one reached the carrier.
fn delivered_after_hostile(data: &[u8], audio: &[Vec<u8>]) -> usize {
    data.chunks(160)
        .skip(3)
        .filter(|chunk| audio.iter().any(|p| p == chunk))
        .count()
}

#[test]
fn a_malformed_header_extension_does_not_stop_a_recorded_stream() {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts {
            gateway_extra: "[recording]\njitter_ms = 60\n".into(),
            ..GwOpts::carrier_a("[media]\nrecord = true\n")
        },
    );
    let e = establish(&gw, "hostile-rec");
    let (data, audio) = stream_with_hostile_packet(&e);
    assert_eq!(delivered_after_hostile(&data, &audio), 47);
    std::thread::sleep(Duration::from_millis(300));
    hang_up(&gw, &e, "hostile-rec");
    let cdr = &gw.wait_cdrs(1)[0];
    // The recording goes on after the packet: the caller's audio from the fourth packet to
    // the last is in the file, sample for sample.
    let reader = finalised_recording(cdr);
    let samples: Vec<i16> = reader.into_samples::<i16>().map(|s| s.unwrap()).collect();
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    check_channel(
        &left,
        &data[480..],
        &[],
        "caller after the malformed packet",
    );
}

/// A recording folder that can no longer be written (here made a file after start-up): the
/// call goes on, and its CDR names no file but says the recording never started. A gateway
/// started with such a folder is refused at once, saying why (before, it started, and only
/// each recorded call said so).
#[test]
fn a_recording_that_cannot_start_is_not_named_by_the_cdr() {
    let mut gw = Gateway::start(
        Ports::new(),
        GwOpts {
            gateway_extra: "[recording]\ndir = \"rec\"\n".into(),
            ..GwOpts::carrier_a("[media]\nrecord = true\n")
        },
    );
    let folder = gw.dir.path().join("rec");
    std::fs::remove_dir_all(&folder).unwrap();
    std::fs::write(&folder, b"not a folder").unwrap();
    let e = establish(&gw, "rec-refused");
    let failures = r#"trunkgate_recording_failures_total{stage="open"}"#;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while metric(&gw.metrics(), failures) < 1.0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(metric(&gw.metrics(), failures), 1.0);
    // The news reaches the call at the shell's next once-a-second pass.
    std::thread::sleep(Duration::from_millis(2500));
    hang_up(&gw, &e, "rec-refused");
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["call_tag"], "caller_bye");
    assert!(cdr["recording"].is_null(), "{cdr}");
    assert_eq!(cdr["events"], serde_json::json!(["recording_not_started"]));
    gw.kill9();
    let (status, log) = gw.start_again_expecting_exit();
    let status = status.unwrap_or_else(|| panic!("started with the folder a file:\n{log}"));
    assert!(!status.success(), "{status}\n{log}");
    assert!(log.contains("[recording] dir"), "{log}");
}

#[test]
fn a_malformed_header_extension_does_not_stop_a_repacketized_stream() {
    let gw = Gateway::start(
        Ports::new(),
        GwOpts::carrier_a("[sdp]\nptime = 20\n\n[media]\nrepacketize = true\n"),
    );
    let e = establish(&gw, "hostile-repack");
    let (data, audio) = stream_with_hostile_packet(&e);
    assert_eq!(delivered_after_hostile(&data, &audio), 47);
    hang_up(&gw, &e, "hostile-repack");
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
}

#[test]
fn latin1_sdp_with_mixed_line_ends_and_ice_is_anchored_without_leaks() {
    let gw = Gateway::start(Ports::new(), GwOpts::carrier_a("[media]\nanchor = true\n"));
    // A Latin-1 session name, the audio section in bare LF, ICE candidates naming the phone.
    let e = establish_with(&gw, "sdp-latin1", Duration::ZERO, |ip, port| {
        let mut b = format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=").into_bytes();
        b.extend_from_slice(b"Caf\xe9");
        b.extend_from_slice(
            format!(
                "\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\nc=IN IP4 {ip}\na=rtcp:{} IN IP4 {ip}\na=ice-ufrag:x1y2\na=candidate:1 1 UDP 2130706431 {ip} {port} typ host\na=sendrecv\n",
                port + 1
            )
            .as_bytes(),
        );
        b
    });
    // establish checked that the carrier's SDP names only the gateway; the ICE lines are
    // gone, the session name is `-` (it names the creator), and the other lines came
    // through byte for byte with their own line ends.
    let offer = &e.b_offer[..];
    let has = |s: &[u8]| offer.windows(s.len()).any(|w| w == s);
    assert!(
        has(b"\r\ns=-\r\n") && !has(b"Caf"),
        "{}",
        String::from_utf8_lossy(offer)
    );
    assert!(
        has(b"\nc=IN IP4 127.0.0.1\na=rtcp:"),
        "{}",
        String::from_utf8_lossy(offer)
    );
    assert!(!has(b"candidate") && !has(b"ice-ufrag") && !has(PHONE_IP.as_bytes()));
    let mut buf = [0u8; 2048];
    for i in 0..3u8 {
        let pkt = [0x80, 0x00, 0, i, 0, 0, 0, 160, 1, 2, 3, 4, 0xff];
        e.phone_rtp.send_to(&pkt, e.gw_a).unwrap();
        let (n, _) = e
            .carrier_rtp
            .recv_from(&mut buf)
            .expect("RTP reaches the carrier");
        assert_eq!(&buf[..n], &pkt);
        e.carrier_rtp.send_to(&pkt, e.gw_b).unwrap();
        let (n, _) = e
            .phone_rtp
            .recv_from(&mut buf)
            .expect("RTP reaches the phone");
        assert_eq!(&buf[..n], &pkt);
    }
    hang_up(&gw, &e, "sdp-latin1");
    assert_eq!(gw.wait_cdrs(1)[0]["call_tag"], "caller_bye");
}

#[test]
fn a_relay_that_cannot_open_its_ports_ends_the_call_instead_of_leaving_it_silent() {
    let gw = Gateway::start(Ports::new(), GwOpts::carrier_a("[media]\nanchor = true\n"));
    // Another process holds every relay port (a port not yet closed after a release, a
    // stray program): the gateway cannot bind the call's relay.
    let _squatters: Vec<UdpSocket> = (gw.ports.rtp..gw.ports.rtp + 20)
        .map(|p| UdpSocket::bind(("127.0.0.1", p)).unwrap())
        .collect();
    let t = Some(Duration::from_secs(5));
    let phone = UdpSocket::bind((PHONE_IP, gw.ports.phone)).unwrap();
    let carrier = UdpSocket::bind((CARRIER_A_IP, gw.ports.carrier_a)).unwrap();
    phone.set_read_timeout(t).unwrap();
    carrier.set_read_timeout(t).unwrap();
    let body = sdp(PHONE_IP, 40000);
    let invite = format!(
        "INVITE sip:+8610123@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {PHONE_IP}:{p};branch=z9hG4bKsq1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:1000@{PHONE_IP}>;tag=p1\r\nTo: <sip:+8610123@127.0.0.1>\r\nCall-ID: squat-1\r\nCSeq: 1 INVITE\r\nContact: <sip:1000@{PHONE_IP}:{p}>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        body.len(),
        p = gw.ports.phone
    );
    phone.send_to(invite.as_bytes(), gw.addr()).unwrap();
    let Message::Request(inv) = recv_sip(&carrier, |m| matches!(m, Message::Request(_))) else {
        unreachable!()
    };
    // Ringing (a CANCEL needs a provisional response first).
    let ringing = Response::to_request(&inv, 180, "Ringing", Some("c1")).unwrap();
    carrier.send_to(&ringing.to_bytes(), gw.addr()).unwrap();
    // The caller is told within a second (503), the carrier's INVITE is cancelled.
    let refusal = recv_sip(
        &phone,
        |m| matches!(m, Message::Response(r) if r.status() >= 200),
    );
    let Message::Response(refusal) = refusal else {
        unreachable!()
    };
    assert_eq!(refusal.status(), 503);
    let Message::Request(cancel) = recv_sip(
        &carrier,
        |m| matches!(m, Message::Request(r) if r.method() == trunkgate::sip::Method::Cancel),
    ) else {
        unreachable!()
    };
    let ok = Response::to_request(&cancel, 200, "OK", None).unwrap();
    carrier.send_to(&ok.to_bytes(), gw.addr()).unwrap();
    let terminated = Response::to_request(&inv, 487, "Request Terminated", Some("c1")).unwrap();
    carrier.send_to(&terminated.to_bytes(), gw.addr()).unwrap();
    let cdr = &gw.wait_cdrs(1)[0];
    assert_eq!(cdr["call_tag"], "media_unavailable");
    assert_eq!(cdr["cause"], 41);
}

#[test]
fn rtcp_source_descriptions_reach_the_other_side_as_the_gateways() {
    let gw = Gateway::start(Ports::new(), GwOpts::carrier_a("[media]\nanchor = true\n"));
    let e = establish(&gw, "media-rtcp");
    let rtcp_of = |s: &UdpSocket| s.local_addr().unwrap().port() + 1;
    let carrier_rtcp = UdpSocket::bind((CARRIER_A_IP, rtcp_of(&e.carrier_rtp)))
        .expect("the port after the carrier's RTP port is free");
    carrier_rtcp
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let phone_rtcp = UdpSocket::bind((PHONE_IP, rtcp_of(&e.phone_rtp))).unwrap();
    let compound = rtcp_naming_the_phone();
    let gw_a_rtcp = SocketAddr::new(e.gw_a.ip(), e.gw_a.port() + 1);
    phone_rtcp.send_to(&compound, gw_a_rtcp).unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = carrier_rtcp
        .recv_from(&mut buf)
        .expect("the phone's RTCP reaches the carrier");
    let got = &buf[..n];
    assert_eq!(&got[..8], &compound[..8], "the report passes as it was");
    let text = String::from_utf8_lossy(got);
    assert!(text.contains("trunkgate@127.0.0.1"), "{text:?}");
    assert!(
        !text.contains("Linphonec") && !text.contains("1000@"),
        "{text:?}"
    );
    hang_up(&gw, &e, "media-rtcp");
}
