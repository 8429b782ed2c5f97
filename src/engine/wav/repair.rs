//! A WAV file whose last header update failed (a full disk fails the flush that hound's
//! finalize does before it seeks back): its header still gives the sizes of its last
//! checkpoint, up to 5 s old, or none at all for a short call, and a player stops there. The
//! sizes are written again from the file's length, in place: overwriting four bytes twice
//! needs no new block, so it works on a full disk (not on a copy-on-write one). A partial
//! frame at the end (a write cut short) is cut off.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Set the RIFF and `data` chunk sizes of the WAV file at `path` to what the file holds.
pub fn fix_sizes(path: &Path) -> io::Result<()> {
    // Never through a symbolic link put where the recording was.
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut head = [0u8; 256];
    let n = read_up_to(&mut f, &mut head)?;
    let head = &head[..n];
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "not a WAV header we wrote");
    if head.len() < 12 || &head[0..4] != b"RIFF" || &head[8..12] != b"WAVE" {
        return Err(bad());
    }
    // Walk the chunks to `fmt ` (for the frame size) and `data`.
    let mut at = 12;
    let mut frame = None;
    let data_at = loop {
        let (Some(id), Some(size)) = (head.get(at..at + 4), head.get(at + 4..at + 8)) else {
            return Err(bad());
        };
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        if id == b"data" {
            break at;
        }
        if id == b"fmt " {
            // Block align: bytes per frame (all channels).
            frame = head
                .get(at + 8 + 12..at + 8 + 14)
                .map(|b| u16::from_le_bytes([b[0], b[1]]).max(1) as u64);
        }
        at += 8 + size + (size & 1);
    };
    let frame = frame.ok_or_else(bad)?;
    let audio_from = data_at as u64 + 8;
    let len = f.metadata()?.len();
    let audio = len.saturating_sub(audio_from);
    let whole = (audio - audio % frame).min(u64::from(u32::MAX) - audio_from);
    if whole != audio {
        f.set_len(audio_from + whole)?;
    }
    let data_size = u32::try_from(whole).unwrap_or(u32::MAX);
    let riff_size = u32::try_from(audio_from + whole - 8).unwrap_or(u32::MAX);
    f.seek(SeekFrom::Start(4))?;
    f.write_all(&riff_size.to_le_bytes())?;
    f.seek(SeekFrom::Start(data_at as u64 + 4))?;
    f.write_all(&data_size.to_le_bytes())?;
    f.sync_data()
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stereo file whose header says 4 frames, holding 100 and half of one more: after
    /// the repair the header says 100, and hound reads exactly them.
    #[test]
    fn a_stale_header_is_set_to_what_the_file_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..8i16 {
            w.write_sample(i).unwrap();
        }
        w.finalize().unwrap();
        // 96 more frames and half a frame, appended after the header was last written.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        for i in 0..(96 * 2) {
            f.write_all(&(i as i16).to_le_bytes()).unwrap();
        }
        f.write_all(&[1, 2]).unwrap();
        drop(f);
        assert_eq!(hound::WavReader::open(&path).unwrap().duration(), 4);
        fix_sizes(&path).unwrap();
        let r = hound::WavReader::open(&path).unwrap();
        assert_eq!(r.duration(), 100);
        assert_eq!(r.into_samples::<i16>().count(), 200);
    }

    #[test]
    fn a_symbolic_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        hound::WavWriter::create(&target, spec)
            .unwrap()
            .finalize()
            .unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&target)
            .unwrap()
            .write_all(&[0; 10])
            .unwrap();
        let before = std::fs::read(&target).unwrap();
        let link = dir.path().join("link.wav");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(fix_sizes(&link).is_err());
        assert_eq!(std::fs::read(&target).unwrap(), before);
    }

    #[test]
    fn a_file_that_is_not_a_wav_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.wav");
        std::fs::write(&path, b"not a wav at all").unwrap();
        assert!(fix_sizes(&path).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"not a wav at all");
    }
}
