//! G.711 repacketisation: re-chunk a stream toward a leg into packets of the ptime that leg's
//! profile asks for (`[media] repacketize` with `[sdp] ptime`). Payload bytes are carried over
//! one for one (G.711 is one byte per sample), so content is identical; the outgoing stream
//! gets its own continuous sequence numbers, and timestamps that follow the samples.

use bytes::{BufMut, Bytes, BytesMut};
use webrtc_util::marshal::Unmarshal;

/// Re-chunks one direction of one stream.
#[derive(Debug)]
pub struct Repacketizer {
    /// Payload bytes per outgoing packet (8 per ms).
    size: usize,
    buf: Vec<u8>,
    /// RTP timestamp of `buf[0]`.
    ts: u32,
    pt: u8,
    ssrc: u32,
    marker: bool,
    seq: u16,
}

impl Repacketizer {
    pub fn new(ptime_ms: u16) -> Self {
        Repacketizer {
            size: usize::from(ptime_ms) * 8,
            buf: Vec::new(),
            ts: 0,
            pt: 0,
            ssrc: 0,
            marker: false,
            seq: 0,
        }
    }

    /// One incoming packet; returns the packets to send now (possibly none).
    pub fn push(&mut self, packet: &[u8]) -> Vec<Bytes> {
        let Ok(p) = rtp::packet::Packet::unmarshal(&mut Bytes::copy_from_slice(packet)) else {
            return Vec::new();
        };
        let h = &p.header;
        let mut out = Vec::new();
        if !matches!(h.payload_type, 0 | 8) {
            // Not G.711 (telephone-events, comfort noise): flush what we hold, pass it
            // through renumbered so the sequence toward the leg stays continuous.
            self.flush(&mut out);
            out.push(self.packet(h.payload_type, h.marker, h.ssrc, h.timestamp, &p.payload));
            return out;
        }
        let contiguous = self.buf.is_empty()
            || (h.ssrc == self.ssrc
                && h.payload_type == self.pt
                && h.timestamp == self.ts.wrapping_add(self.buf.len() as u32));
        if !contiguous {
            // Loss, a new stream or a codec switch: send what we hold as it is.
            self.flush(&mut out);
        }
        if self.buf.is_empty() {
            self.ts = h.timestamp;
            self.pt = h.payload_type;
            self.ssrc = h.ssrc;
            self.marker = h.marker;
        }
        self.buf.extend_from_slice(&p.payload);
        while self.buf.len() >= self.size {
            let chunk: Vec<u8> = self.buf.drain(..self.size).collect();
            let (pt, marker, ssrc, ts) = (self.pt, self.marker, self.ssrc, self.ts);
            out.push(self.packet(pt, marker, ssrc, ts, &chunk));
            self.marker = false;
            self.ts = self.ts.wrapping_add(self.size as u32);
        }
        out
    }

    fn flush(&mut self, out: &mut Vec<Bytes>) {
        if !self.buf.is_empty() {
            let chunk = std::mem::take(&mut self.buf);
            let (pt, marker, ssrc, ts) = (self.pt, self.marker, self.ssrc, self.ts);
            out.push(self.packet(pt, marker, ssrc, ts, &chunk));
            self.marker = false;
        }
    }

    fn packet(&mut self, pt: u8, marker: bool, ssrc: u32, ts: u32, payload: &[u8]) -> Bytes {
        let mut b = BytesMut::with_capacity(12 + payload.len());
        b.put_u8(0x80);
        b.put_u8(if marker { 0x80 } else { 0 } | (pt & 0x7f));
        b.put_u16(self.seq);
        b.put_u32(ts);
        b.put_u32(ssrc);
        b.put_slice(payload);
        self.seq = self.seq.wrapping_add(1);
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rtp(pt: u8, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&7u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn parse(b: &Bytes) -> rtp::packet::Packet {
        rtp::packet::Packet::unmarshal(&mut b.clone()).unwrap()
    }

    #[test]
    fn thirty_in_twenty_out_with_identical_content() {
        let data: Vec<u8> = (0..4800u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut r = Repacketizer::new(20);
        let mut out = Vec::new();
        for (i, chunk) in data.chunks(240).enumerate() {
            out.extend(r.push(&rtp(0, 100 + i as u16, 5000 + (i * 240) as u32, chunk)));
        }
        let pkts: Vec<_> = out.iter().map(parse).collect();
        assert!(
            pkts.iter().all(|p| p.payload.len() == 160),
            "every packet 20 ms"
        );
        let joined: Vec<u8> = pkts.iter().flat_map(|p| p.payload.to_vec()).collect();
        assert_eq!(joined, data, "content identical");
        for (i, p) in pkts.iter().enumerate() {
            assert_eq!(p.header.sequence_number, i as u16);
            assert_eq!(p.header.timestamp, 5000 + 160 * i as u32);
        }
    }

    #[test]
    fn loss_and_events_flush_and_keep_numbering_continuous() {
        let mut r = Repacketizer::new(20);
        let mut out = Vec::new();
        out.extend(r.push(&rtp(0, 1, 0, &[1; 240])));
        // 240 samples lost, then the stream goes on, then a telephone-event.
        out.extend(r.push(&rtp(0, 3, 480, &[2; 240])));
        out.extend(r.push(&rtp(101, 4, 720, &[5, 0x80, 0, 160])));
        let pkts: Vec<_> = out.iter().map(parse).collect();
        let sizes: Vec<usize> = pkts.iter().map(|p| p.payload.len()).collect();
        assert_eq!(sizes, vec![160, 80, 160, 80, 4]);
        let ts: Vec<u32> = pkts.iter().map(|p| p.header.timestamp).collect();
        assert_eq!(ts, vec![0, 160, 480, 640, 720]);
        let seqs: Vec<u16> = pkts.iter().map(|p| p.header.sequence_number).collect();
        assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
        assert_eq!(pkts[4].header.payload_type, 101);
    }
}
