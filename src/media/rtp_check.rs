//! RTP and RTCP header checks, done by us before any crate parses a packet.
//!
//! Media ports face the internet, so a packet is hostile until proven otherwise. A parser
//! that trusts a length field inside the packet can read past its end (the `rtp` crate
//! panics on a truncated header extension), and a panic in a relay ends that direction of
//! the call. Everything here is checked arithmetic on slices: no panics, no allocation.
//!
//! What a packet must satisfy (RFC 3550 §5.1, §6.4, RFC 8285):
//! - at most [`MAX_PACKET`] bytes, version 2;
//! - the CSRC list and the header extension (its declared word length) fit in the packet;
//! - in a one-byte (`0xBEDE`) or two-byte (`0x100x`) extension, every element fits inside the
//!   extension block, and the reserved one-byte ID 15 does not appear (parsers disagree on
//!   where such a packet's payload starts);
//! - with the P bit set, the last byte (the padding count) is non-zero and no larger than
//!   what follows the header;
//! - RTCP: every packet of a compound has version 2 and a length field that stays inside the
//!   datagram, and the lengths add up to the datagram exactly.

/// The largest datagram accepted as RTP or RTCP, 1,500 bytes (an Ethernet MTU's worth of
/// payload; with its IP and UDP headers even that is fragmented on such a link). G.711 fills
/// it at 186 ms per packet; anything larger is not real telephony.
pub const MAX_PACKET: usize = 1500;

/// Fixed RTP header: V/P/X/CC, M/PT, sequence number, timestamp, SSRC.
const RTP_FIXED: usize = 12;
/// RTCP common header: V/P/count, packet type, length (in 32-bit words minus one).
const RTCP_HEADER: usize = 4;
/// RFC 8285 one-byte header extension profile.
const ONE_BYTE_PROFILE: u16 = 0xBEDE;
/// RFC 8285 two-byte header extension profiles: 0x100 followed by 4 application bits.
const TWO_BYTE_PROFILE_MASK: u16 = 0xFFF0;
const TWO_BYTE_PROFILE: u16 = 0x1000;

/// Why a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet larger than {MAX_PACKET} bytes")]
    TooLarge,
    #[error("packet shorter than its fixed header")]
    Short,
    #[error("version is not 2")]
    Version,
    #[error("CSRC list runs past the end of the packet")]
    Csrc,
    #[error("header extension runs past the end of the packet")]
    Extension,
    #[error("header extension element runs past the extension or uses the reserved ID 15")]
    ExtensionElement,
    #[error("padding count is zero or larger than the payload")]
    Padding,
    #[error("RTCP length field does not match the datagram")]
    RtcpLength,
    #[error("payload type 72-76: RTCP's packet types, not RTP's (RFC 3551 section 3)")]
    RtcpType,
}

/// A checked RTP packet: header fields and the payload (padding removed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

fn u16_at(p: &[u8], at: usize) -> Option<u16> {
    let b = p.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
}

fn u32_at(p: &[u8], at: usize) -> Option<u32> {
    let b = p.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([
        *b.first()?,
        *b.get(1)?,
        *b.get(2)?,
        *b.get(3)?,
    ]))
}

/// The sender SSRC of an RTCP (or SRTCP) packet: the four bytes after its first header,
/// whatever its type (SR, RR, the feedback types, and the first chunk of an SDES or BYE),
/// in the clear in SRTCP too. The packet passed the RTCP checks, so they are there.
pub(crate) fn rtcp_sender(packet: &[u8]) -> Option<u32> {
    let b = packet.get(4..8)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// RFC 5761 §4: on a port that carries RTP and RTCP, a packet whose second byte (marker bit
/// and payload type) is 192–223 is RTCP (SR 200, RR 201, SDES 202, BYE 203, APP 204, and the
/// feedback types); RTP on such a port does not use payload types 64–95.
pub(crate) fn muxed_rtcp(packet: &[u8]) -> bool {
    matches!(packet.get(1), Some(192..=223))
}

/// Check one RTP packet; on success, its header fields and payload.
pub fn check_rtp(packet: &[u8]) -> Result<RtpView<'_>, PacketError> {
    check_header(packet, true)
}

/// Check one SRTP packet (RFC 3711 §3.1): its header as an RTP one's. What follows it (the
/// encrypted payload with its padding, the authentication tag) is the endpoints' and is not
/// read: the padding count of an encrypted packet is ciphertext. `payload` is all of it.
pub fn check_srtp(packet: &[u8]) -> Result<RtpView<'_>, PacketError> {
    check_header(packet, false)
}

/// Check an SRTCP datagram (RFC 3711 §3.4): the first packet's header and sender SSRC are in
/// the clear, then the encrypted rest of the compound, the E flag with the SRTCP index
/// (4 bytes) and the authentication tag. So only the first header is checked: version 2, and
/// a length that ends before the index.
pub fn check_srtcp(datagram: &[u8]) -> Result<(), PacketError> {
    const INDEX: usize = 4;
    if datagram.len() > MAX_PACKET {
        return Err(PacketError::TooLarge);
    }
    let (Some(&b0), Some(words)) = (datagram.first(), u16_at(datagram, 2)) else {
        return Err(PacketError::Short);
    };
    if datagram.len() < RTCP_HEADER + 4 + INDEX {
        return Err(PacketError::Short);
    }
    if b0 >> 6 != 2 {
        return Err(PacketError::Version);
    }
    if (usize::from(words) + 1) * 4 > datagram.len() - INDEX {
        return Err(PacketError::RtcpLength);
    }
    Ok(())
}

/// Check a datagram of a stream the relay does not read (T.38's UDPTL, DTLS): it must hold
/// something and fit [`MAX_PACKET`].
pub fn check_datagram(datagram: &[u8]) -> Result<(), PacketError> {
    match datagram.len() {
        0 => Err(PacketError::Short),
        n if n > MAX_PACKET => Err(PacketError::TooLarge),
        _ => Ok(()),
    }
}

/// RTP's header checks; the padding too when `padding_readable` (not in SRTP).
fn check_header(packet: &[u8], padding_readable: bool) -> Result<RtpView<'_>, PacketError> {
    if packet.len() > MAX_PACKET {
        return Err(PacketError::TooLarge);
    }
    let (&b0, &b1) = match (packet.first(), packet.get(1)) {
        (Some(b0), Some(b1)) if packet.len() >= RTP_FIXED => (b0, b1),
        _ => return Err(PacketError::Short),
    };
    if b0 >> 6 != 2 {
        return Err(PacketError::Version);
    }
    // RFC 3551 reserves these so that RTP and RTCP can be told apart: this is RTCP (an SR is
    // `80 C8`) sent to the RTP port without rtcp-mux agreed. Read as RTP, its fields would
    // become the stream's SSRC and sequence, and the far end would get it as media.
    if (72..=76).contains(&(b1 & 0x7f)) {
        return Err(PacketError::RtcpType);
    }
    let padded = b0 & 0x20 != 0;
    let extended = b0 & 0x10 != 0;
    let csrc_count = usize::from(b0 & 0x0f);
    let mut at = RTP_FIXED + 4 * csrc_count;
    if at > packet.len() {
        return Err(PacketError::Csrc);
    }
    if extended {
        let profile = u16_at(packet, at).ok_or(PacketError::Extension)?;
        let words = u16_at(packet, at + 2).ok_or(PacketError::Extension)?;
        let start = at + 4;
        let end = start
            .checked_add(4 * usize::from(words))
            .filter(|&e| e <= packet.len())
            .ok_or(PacketError::Extension)?;
        let block = packet.get(start..end).ok_or(PacketError::Extension)?;
        if profile == ONE_BYTE_PROFILE {
            check_one_byte_elements(block)?;
        } else if profile & TWO_BYTE_PROFILE_MASK == TWO_BYTE_PROFILE {
            check_two_byte_elements(block)?;
        }
        at = end;
    }
    let mut rest = packet.get(at..).ok_or(PacketError::Short)?;
    if padded && padding_readable {
        let count = usize::from(*rest.last().ok_or(PacketError::Padding)?);
        if count == 0 || count > rest.len() {
            return Err(PacketError::Padding);
        }
        rest = rest.get(..rest.len() - count).ok_or(PacketError::Padding)?;
    }
    Ok(RtpView {
        marker: b1 & 0x80 != 0,
        payload_type: b1 & 0x7f,
        sequence: u16_at(packet, 2).ok_or(PacketError::Short)?,
        timestamp: u32_at(packet, 4).ok_or(PacketError::Short)?,
        ssrc: u32_at(packet, 8).ok_or(PacketError::Short)?,
        payload: rest,
    })
}

/// RFC 8285 §4.2: each element is one byte (ID, length - 1) and its data; zero bytes pad.
fn check_one_byte_elements(block: &[u8]) -> Result<(), PacketError> {
    let mut i = 0usize;
    // Each round consumes at least one byte, so this ends within block.len() rounds.
    while let Some(&b) = block.get(i) {
        i += 1;
        if b == 0 {
            continue;
        }
        if b >> 4 == 0x0f {
            return Err(PacketError::ExtensionElement);
        }
        i += usize::from(b & 0x0f) + 1;
        if i > block.len() {
            return Err(PacketError::ExtensionElement);
        }
    }
    Ok(())
}

/// RFC 8285 §4.3: each element is an ID byte, a length byte and its data; zero bytes pad.
fn check_two_byte_elements(block: &[u8]) -> Result<(), PacketError> {
    let mut i = 0usize;
    while let Some(&id) = block.get(i) {
        i += 1;
        if id == 0 {
            continue;
        }
        let len = *block.get(i).ok_or(PacketError::ExtensionElement)?;
        i += 1 + usize::from(len);
        if i > block.len() {
            return Err(PacketError::ExtensionElement);
        }
    }
    Ok(())
}

/// Check an RTCP datagram (a compound of one or more packets); returns how many packets it
/// holds.
pub fn check_rtcp(datagram: &[u8]) -> Result<usize, PacketError> {
    if datagram.len() > MAX_PACKET {
        return Err(PacketError::TooLarge);
    }
    if datagram.len() < RTCP_HEADER {
        return Err(PacketError::Short);
    }
    let mut at = 0usize;
    let mut count = 0usize;
    // Each packet is at least 4 bytes, so this runs at most MAX_PACKET / 4 rounds.
    while at < datagram.len() {
        let b0 = *datagram.get(at).ok_or(PacketError::Short)?;
        if b0 >> 6 != 2 {
            return Err(PacketError::Version);
        }
        let words = u16_at(datagram, at + 2).ok_or(PacketError::RtcpLength)?;
        let len = (usize::from(words) + 1) * 4;
        let end = at.checked_add(len).ok_or(PacketError::RtcpLength)?;
        if end > datagram.len() {
            return Err(PacketError::RtcpLength);
        }
        if b0 & 0x20 != 0 {
            // Padding only on the last packet of a compound (RFC 3550 §6.4.1), counted in
            // its length and covering at most the packet's body.
            let count = usize::from(*datagram.get(end - 1).ok_or(PacketError::Padding)?);
            if end != datagram.len() || count == 0 || count > len - RTCP_HEADER {
                return Err(PacketError::Padding);
            }
        }
        at = end;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests;
