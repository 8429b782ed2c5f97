use super::*;

/// The connections' writers share one budget: what one queues, another cannot, and a
/// writer that ends (here its task dropped with its queue full) gives its bytes back.
/// Before, each connection could queue its megabyte whatever the others held: a
/// gigabyte over the default 1,024 connections.
#[test]
fn the_writers_share_one_budget_and_an_ended_one_gives_its_bytes_back() {
    let all = SharedBudget::new(3 * 60 * 1024);
    let (a, a_drain) = Writer::new((all.clone(), None));
    let (b, _b_drain) = Writer::new((all.clone(), None));
    let big = Bytes::from(vec![b'x'; 60 * 1024]);
    assert!(a.send(big.clone()) && a.send(big.clone()));
    assert!(b.send(big.clone()), "what is left of the budget");
    assert!(
        !b.send(big.clone()),
        "the budget is spent, by the two together"
    );
    assert!(!a.send(Bytes::from_static(b"x")));
    assert_eq!(all.used(), 3 * 60 * 1024);
    drop(a_drain);
    assert_eq!(
        all.used(),
        60 * 1024,
        "the ended writer's two messages are given back"
    );
    assert!(b.send(big.clone()));
    assert!(!a.send(big), "an ended writer takes nothing");
    assert_eq!(all.used(), 2 * 60 * 1024);
}

/// The room a connection tells is what takes it to half its queue, in messages or in
/// bytes, whichever comes first; an ended writer's is what it had.
#[test]
fn the_room_left_is_counted_to_half_the_queue_in_messages_and_bytes() {
    let (w, _drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    let by_bytes = WRITE_BUDGET / 2 / ROOM_MESSAGE;
    assert_eq!(w.room(), by_bytes.min(WRITE_QUEUE / 2));
    for _ in 0..100 {
        assert!(w.send(Bytes::from_static(b"\r\n")));
    }
    assert_eq!(w.room(), by_bytes.min(WRITE_QUEUE / 2 - 100));
    let big = Bytes::from(vec![b'x'; WRITE_BUDGET / 2]);
    assert!(w.send(big));
    assert_eq!(w.room(), 0, "half the bytes queued");
    let (w, _drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    while w.send(Bytes::from_static(b"\r\n")) {}
    assert_eq!(w.room(), 0, "the queue full in messages");
}

#[test]
fn the_queue_is_bounded_in_bytes_as_well_as_in_messages() {
    let (w, drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    let big = Bytes::from(vec![b'x'; 60 * 1024]);
    let taken = (0..WRITE_QUEUE).take_while(|_| w.send(big.clone())).count();
    assert_eq!(
        taken,
        WRITE_BUDGET / big.len(),
        "60 KB answers, a 1 MiB budget"
    );
    assert!(w.queued() <= WRITE_BUDGET);
    // A short message still fits in what is left.
    assert!(w.send(Bytes::from_static(b"SIP/2.0 100 Trying\r\n\r\n")));
    drop(drain);
    assert!(!w.send(Bytes::from_static(b"\r\n")), "its writer has ended");
    assert!(w.queued() <= WRITE_BUDGET);
}

/// A writer over a connection to a listener here: the writer, its task's end, the write
/// half it writes to, the peer's end of the connection (accepted, reading nothing until
/// a test reads it) and the listener's address.
async fn connected() -> (
    Writer,
    Drain,
    tokio::net::tcp::OwnedWriteHalf,
    tokio::net::TcpStream,
    SocketAddr,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (peer, _) = listener.accept().await.unwrap();
    let (_rd, wr) = client.into_split();
    let (w, drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    (w, drain, wr, peer, addr)
}

/// A close ordered while the queue is full ends the writer all the same: before, the
/// empty message that orders it was dropped with the full queue, and the connection
/// stayed open.
#[tokio::test]
async fn a_close_ordered_on_a_full_queue_still_closes() {
    // The peer accepts and reads nothing.
    let (w, drain, wr, _peer, addr) = connected().await;
    // Pings fill its queue in messages while it writes nothing yet.
    while w.send(Bytes::from_static(b"\r\n")) {}
    w.close();
    let task = tokio::spawn(drain.run(wr, addr));
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the writer ended at once")
        .unwrap();
}

/// A close ordered while the queue holds half its byte budget or more, toward a peer
/// that reads nothing, ends the writer at once. Before, it waited behind what was
/// queued: up to the write timeout for each message a slow reader took.
#[tokio::test]
async fn a_close_behind_a_full_byte_budget_does_not_wait_for_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_send_buffer_size(4096).unwrap();
    let client = sock.connect(addr).await.unwrap();
    let (_peer, _) = listener.accept().await.unwrap();
    let (_rd, wr) = client.into_split();
    let (w, drain) = Writer::new((SharedBudget::new(ALL_WRITES_BUDGET), None));
    let task = tokio::spawn(drain.run(wr, addr));
    let msg = Bytes::from(vec![b'x'; 60 * 1024]);
    while w.send(msg.clone()) {}
    assert!(w.queued() >= WRITE_BUDGET / 2);
    w.close();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the writer ended at once")
        .unwrap();
}

/// A message that waited in the queue past [`STALE_QUEUE`] behind slow writes (a peer
/// reading so slowly that it would come after its transaction gave up) is not written: the
/// connection is closed, so its transactions fail now and the next message opens a new
/// one. Before, it was written however late (an INVITE ringing a callee minutes after the
/// call failed over). One that waited as long through a stall of the process (no writing
/// meanwhile) is written.
#[tokio::test(start_paused = true)]
async fn a_message_queued_too_long_closes_the_connection_unwritten() {
    use tokio::io::AsyncReadExt;
    let (w, drain, wr, mut peer, addr) = connected().await;
    assert!(w.send(Bytes::from_static(b"INVITE late\r\n\r\n")));
    // (The writes ahead of it took that long: as the drain counts them.)
    let slow = STALE_QUEUE.as_millis() as u64 + 1000;
    w.writing.fetch_add(slow, Ordering::AcqRel);
    let task = tokio::spawn(drain.run(wr, addr));
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the writer ended")
        .unwrap();
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(2), peer.read_to_end(&mut got)).await;
    assert!(matches!(read, Ok(Ok(0))), "{read:?}");
    assert!(got.is_empty(), "nothing written: {got:?}");
    // One queued as long through a stall, nothing written meanwhile, is written.
    let (w, drain, wr, mut peer, addr) = connected().await;
    assert!(w.send(Bytes::from_static(b"OPTIONS soon\r\n\r\n")));
    tokio::time::advance(STALE_QUEUE * 2).await;
    tokio::spawn(drain.run(wr, addr));
    let mut b = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), peer.read(&mut b)).await;
    assert!(matches!(n, Ok(Ok(n)) if n > 0), "{n:?}");
    drop(w);
}

/// What we write counts as the connection's activity for the reader's idle timeout:
/// asked, the writer says whether it wrote since it was last asked. Before, only what
/// the peer sent kept a connection, and a quiet call's lost it after five minutes.
#[tokio::test]
async fn the_reader_learns_whether_anything_was_written_lately() {
    use tokio::io::AsyncReadExt;
    let (w, drain, wr, mut peer, addr) = connected().await;
    tokio::spawn(drain.run(wr, addr));
    assert!(!w.wrote_lately());
    assert!(w.send(Bytes::from_static(b"OPTIONS\r\n")));
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(2), peer.read(&mut buf))
        .await
        .expect("written")
        .unwrap();
    assert_eq!(&buf[..n], b"OPTIONS\r\n");
    // (The flag is set just after the write returns.)
    let mut seen = false;
    for _ in 0..100 {
        if w.wrote_lately() {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(seen, "the write is seen");
    assert!(!w.wrote_lately(), "once");
}

/// What a stop waits for before the process ends: a writer's queue written out.
#[tokio::test]
async fn a_writer_is_written_once_its_queue_is_on_the_wire() {
    use tokio::io::AsyncReadExt;
    let (w, drain, wr, mut peer, addr) = connected().await;
    assert!(w.is_written(), "nothing queued");
    let bye = Bytes::from_static(b"BYE sip:x SIP/2.0\r\n\r\n");
    for _ in 0..50 {
        assert!(w.send(bye.clone()));
    }
    assert!(!w.is_written());
    tokio::spawn(drain.run(wr, addr));
    let mut waited = 0;
    while !w.is_written() && waited < 200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        waited += 1;
    }
    assert!(w.is_written());
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < 50 * bye.len() {
        let n = tokio::time::timeout(Duration::from_secs(2), peer.read(&mut buf))
            .await
            .expect("written")
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got.len(), 50 * bye.len());
}
