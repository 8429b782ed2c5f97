use super::*;
use crate::media::relay::Dir;
use crate::media::{Latch, RelayPair};

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// A stream on a fresh relay thread between two peer sockets: what it needs to be
/// opened, and the peers (A, B) with the relay's ports they send to.
struct Rig {
    thread: RelayThread,
    a: std::net::UdpSocket,
    b: std::net::UdpSocket,
    a_port: u16,
    b_port: u16,
}

fn rig() -> (Rig, StreamIo) {
    rig_with(|_| {})
}

/// [`rig`] with the stream's pair as `edit` leaves it.
fn rig_with(edit: impl FnOnce(&mut RelayPair)) -> (Rig, StreamIo) {
    let ip = "127.0.0.1".parse().unwrap();
    // Four relay sockets on whatever ports the system gives; the pair's ports are only
    // names here.
    let sockets: [UdpSocket; 4] =
        std::array::from_fn(|_| super::super::relay_socket::bind(ip, 0).unwrap());
    let a_port = sockets[A_RTP].local_addr().unwrap().port();
    let b_port = sockets[B_RTP].local_addr().unwrap().port();
    let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for s in [&a, &b] {
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
    }
    let remotes = (Some(a.local_addr().unwrap()), Some(b.local_addr().unwrap()));
    let mut pair = RelayPair::plain(a_port, b_port, remotes, Latch::SdpIp);
    edit(&mut pair);
    let mut dirs: [Option<Direction>; 4] = Default::default();
    let route = StreamRoute::new(&pair, std::time::Instant::now());
    dirs[A_RTP] = Some(Direction::rtp(Dir::AtoB, &route, None, None, "t"));
    dirs[B_RTP] = Some(Direction::rtp(Dir::BtoA, &route, None, None, "t"));
    let io = StreamIo {
        sockets,
        route: Arc::new(Mutex::new(route)),
        dirs,
        dead: Arc::new(AtomicBool::new(false)),
        taken: false,
        left: [false; 4],
        holding: false,
    };
    let thread = RelayThread::start(9).unwrap();
    (
        Rig {
            thread,
            a,
            b,
            a_port,
            b_port,
        },
        io,
    )
}

fn recv(s: &std::net::UdpSocket) -> Option<Vec<u8>> {
    let mut buf = [0u8; 2048];
    s.recv(&mut buf).ok().map(|n| buf[..n].to_vec())
}

/// Packets go both ways through the thread, whole; after `close` the ports are free
/// again and nothing more is relayed.
#[test]
fn a_stream_relays_both_ways_until_closed() {
    let (r, io) = rig();
    let dead = io.dead.clone();
    r.thread.open(7, io).unwrap();
    for seq in 0..5u16 {
        let p = rtp(seq, 1);
        r.a.send_to(&p, ("127.0.0.1", r.a_port)).unwrap();
        assert_eq!(recv(&r.b).as_deref(), Some(&p[..]), "A to B, packet {seq}");
        let q = rtp(seq, 2);
        r.b.send_to(&q, ("127.0.0.1", r.b_port)).unwrap();
        assert_eq!(recv(&r.a).as_deref(), Some(&q[..]), "B to A, packet {seq}");
    }
    r.thread.close(7);
    // The close is the thread's to do: wait until the port binds again.
    let freed = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        std::net::UdpSocket::bind(("127.0.0.1", r.a_port)).is_ok()
    });
    assert!(freed, "the closed stream's port is free again");
    assert!(
        !dead.load(Ordering::Relaxed),
        "a closed stream is not a failed one"
    );
}

/// A socket gets a bounded number of reads per turn and says when packets are left, so
/// the thread comes back to it after the others instead of staying on a flooded port.
#[test]
fn a_flooded_socket_yields_after_its_reads_and_is_read_again() {
    let (r, mut io) = rig();
    for seq in 0..60u16 {
        r.a.send_to(&rtp(seq, 1), ("127.0.0.1", r.a_port)).unwrap();
    }
    let mut batch = Batch::new();
    let flow = drain(&mut io, A_RTP, &mut batch, Instant::now(), 2);
    assert_eq!(flow, ControlFlow::Continue(Queue::Left));
    let relayed = |n: usize| (0..n).filter(|_| recv(&r.b).is_some()).count();
    assert_eq!(relayed(2 * BATCH), 2 * BATCH, "two reads' worth relayed");
    let flow = drain(&mut io, A_RTP, &mut batch, Instant::now(), READS_PER_TURN);
    assert_eq!(flow, ControlFlow::Continue(Queue::Empty));
    assert_eq!(
        relayed(60 - 2 * BATCH),
        60 - 2 * BATCH,
        "the rest next turn"
    );
    assert_eq!(recv(&r.b), None);
}

/// A flooded socket that the poll reports every turn (its readiness is edge-triggered, and
/// packets keep coming) is read once a turn, its reads bounded, and listed once as left with
/// packets. Before, each turn listed it once more and read it once more per listing: the
/// turn grew without bound, and every other stream on the thread waited longer each turn.
#[test]
fn a_flooded_socket_is_read_once_a_turn_however_often_it_is_reported() {
    let (r, io) = rig();
    let mut relay = Relay::new(Poll::new().unwrap());
    relay.open(1, Box::new(io));
    r.b.set_nonblocking(true).unwrap();
    let relayed = || std::iter::from_fn(|| recv(&r.b)).count();
    let mut left = Vec::new();
    for turn in 0..3u16 {
        // More than a turn's reads arrive each turn (what a socket buffer holds, not more).
        for seq in 0..150u16 {
            r.a.send_to(&rtp(turn * 150 + seq, 1), ("127.0.0.1", r.a_port))
                .unwrap();
        }
        relay.turn([(0, A_RTP)].into_iter(), &mut left);
        assert_eq!(relay.again.len(), 1, "turn {turn}: listed once");
        assert_eq!(relayed(), READS_PER_TURN * BATCH, "turn {turn}");
    }
}

/// A stream closed while its socket was listed as left with packets takes its place in the
/// list with it: the next stream in its slot, flooded too, is read once a turn, not twice.
#[test]
fn a_closed_streams_place_in_the_left_list_goes_with_it() {
    let (r1, io1) = rig();
    let (r2, io2) = rig();
    let mut relay = Relay::new(Poll::new().unwrap());
    let mut left = Vec::new();
    relay.open(1, Box::new(io1));
    for seq in 0..150u16 {
        r1.a.send_to(&rtp(seq, 1), ("127.0.0.1", r1.a_port))
            .unwrap();
    }
    relay.turn([(0, A_RTP)].into_iter(), &mut left);
    assert_eq!(relay.again.len(), 1);
    relay.close(1);
    relay.open(2, Box::new(io2));
    r2.b.set_nonblocking(true).unwrap();
    for seq in 0..150u16 {
        r2.a.send_to(&rtp(seq, 2), ("127.0.0.1", r2.a_port))
            .unwrap();
    }
    relay.turn([(0, A_RTP)].into_iter(), &mut left);
    let relayed = std::iter::from_fn(|| recv(&r2.b)).count();
    assert_eq!(relayed, READS_PER_TURN * BATCH, "read once");
    assert_eq!(relay.again.len(), 1);
}

/// A stream whose shared state is gone (its lock poisoned) stops and says so, and the
/// thread goes on relaying its other streams.
#[test]
fn a_stream_that_fails_is_marked_dead_and_the_others_go_on() {
    let (r, broken) = rig();
    let (r2, healthy) = rig();
    let route = broken.route.clone();
    let dead = broken.dead.clone();
    let _ = std::thread::spawn(move || {
        let _guard = route.lock().unwrap();
        panic!("poison the stream's lock");
    })
    .join();
    // Both streams on the first rig's thread.
    r.thread.open(1, broken).unwrap();
    r.thread.open(2, healthy).unwrap();
    r.a.send_to(&rtp(0, 1), ("127.0.0.1", r.a_port)).unwrap();
    let died = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(10));
        dead.load(Ordering::Relaxed)
    });
    assert!(died, "the broken stream is reported dead");
    assert_eq!(recv(&r.b), None, "nothing relayed from the broken stream");
    let p = rtp(0, 3);
    r2.a.send_to(&p, ("127.0.0.1", r2.a_port)).unwrap();
    assert_eq!(
        recv(&r2.b).as_deref(),
        Some(&p[..]),
        "the other stream relays"
    );
}

/// A relay thread that ends with an open still queued (its poll failed, or it panicked
/// before taking it): the channel drops that stream untaken, and it is reported dead, so
/// its call ends rather than staying up without audio. Before, only the streams already
/// taken were.
#[test]
fn an_open_still_queued_when_the_thread_ends_is_reported_dead() {
    let (_rig, io) = rig();
    let dead = io.dead.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    tx.send(Command::Open(1, Box::new(io))).unwrap();
    drop(rx);
    assert!(dead.load(Ordering::Relaxed));
}

/// A fault while sending a stream's held audio fails that stream, as one on a packet it
/// reads does: the thread goes on. Before, it unwound the thread, and every call on it
/// ended.
#[test]
fn a_fault_sending_held_audio_fails_only_its_stream() {
    let (r, io) = rig_with(|p| {
        p.b_ptime = Some(30);
        p.g711 = true;
    });
    let dead = io.dead.clone();
    let mut relay = Relay::new(Poll::new().unwrap());
    let mut left = Vec::new();
    relay.open(1, Box::new(io));
    r.a.send_to(&rtp(0, 1), ("127.0.0.1", r.a_port)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    relay.turn([(0, A_RTP)].into_iter(), &mut left);
    assert_eq!(relay.holding.len(), 1, "20 ms held short of a 30 ms packet");
    held::FAULT.with(|f| f.set(true));
    relay.send_held(std::time::Instant::now() + Duration::from_secs(1));
    held::FAULT.with(|f| f.set(false));
    assert!(dead.load(Ordering::Relaxed), "the stream is reported dead");
    assert!(relay.holding.is_empty());
    // The thread's loop goes on: another stream opens in its place and relays.
    let (r2, io2) = rig();
    relay.open(2, Box::new(io2));
    let p = rtp(0, 2);
    r2.a.send_to(&p, ("127.0.0.1", r2.a_port)).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    relay.turn([(0, A_RTP)].into_iter(), &mut left);
    assert_eq!(recv(&r2.b).as_deref(), Some(&p[..]));
}

/// A talkspurt of five 20 ms packets toward a leg repacketised to 30 ms, then nothing: the
/// three full packets go as the audio comes, and the last 10 ms goes on its own a little
/// after two ptimes, with no packet after it to push it out. Before, it waited for the
/// sender's next packet.
#[test]
fn the_end_of_a_talkspurt_goes_out_though_no_packet_follows() {
    let (r, io) = rig_with(|p| {
        p.b_ptime = Some(30);
        p.g711 = true;
    });
    r.thread.open(8, io).unwrap();
    let start = std::time::Instant::now();
    for seq in 0..5u16 {
        r.a.send_to(&rtp(seq, 1), ("127.0.0.1", r.a_port)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut sizes: Vec<usize> = Vec::new();
    while sizes.iter().sum::<usize>() < 800 {
        match recv(&r.b) {
            Some(p) => sizes.push(p.len() - 12),
            None => break,
        }
    }
    // Every sample, the last 10 ms too (due 60 ms after it came, sent at the thread's next
    // look), in packets of at most 30 ms. (A stall of this thread longer than two ptimes
    // between the sender's packets flushes a shorter one early: the sizes are exact only
    // on an idle machine, [240, 240, 240, 80].)
    assert_eq!(
        sizes.iter().sum::<usize>(),
        800,
        "{sizes:?} {:?}",
        start.elapsed()
    );
    assert!(sizes.iter().all(|&s| s <= 240 && s % 80 == 0), "{sizes:?}");
    r.thread.close(8);
}

/// A leg repacketised to 10 ms gets two packets for each 20 ms one; when a re-INVITE takes
/// repacketising off, what comes next is numbered on from the packets it got, not sent
/// with the sender's own numbers (which lag by one per packet the cutting added: a jump
/// back that a receiver takes for late packets). Before, the sender's own.
#[test]
fn packets_after_repacketising_stops_are_numbered_on_from_those_sent() {
    let (r, io) = rig_with(|p| {
        p.b_ptime = Some(10);
        p.g711 = true;
    });
    let route = io.route.clone();
    r.thread.open(8, io).unwrap();
    let seq_of = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
    for seq in 100..103u16 {
        r.a.send_to(&rtp(seq, 1), ("127.0.0.1", r.a_port)).unwrap();
    }
    let cut: Vec<u16> = (0..6)
        .filter_map(|_| recv(&r.b))
        .map(|p| seq_of(&p))
        .collect();
    assert_eq!(cut, (100..106).collect::<Vec<_>>());
    let remotes = (
        Some(r.a.local_addr().unwrap()),
        Some(r.b.local_addr().unwrap()),
    );
    let plain = RelayPair::plain(r.a_port, r.b_port, remotes, Latch::SdpIp);
    route
        .lock()
        .unwrap()
        .update(&plain, std::time::Instant::now());
    for seq in 103..105u16 {
        r.a.send_to(&rtp(seq, 1), ("127.0.0.1", r.a_port)).unwrap();
    }
    let after: Vec<Vec<u8>> = (0..2).filter_map(|_| recv(&r.b)).collect();
    assert_eq!(
        after.iter().map(|p| seq_of(p)).collect::<Vec<_>>(),
        [106, 107]
    );
    // Whole but for its number: 160 bytes of audio as sent.
    assert_eq!(after[0].len(), 12 + 160);
    r.thread.close(8);
}
