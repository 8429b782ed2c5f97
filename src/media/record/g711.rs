//! G.711 decoding (ITU-T G.711): μ-law (PCMU, payload type 0) and A-law (PCMA, 8) to 16-bit
//! linear PCM.

/// A decoder's 256 outputs, computed at compile time (a `const fn` cannot call through a
/// function pointer, hence a macro).
macro_rules! table {
    ($decode:ident) => {{
        let mut t = [0i16; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = $decode(i as u8);
            i += 1;
        }
        t
    }};
}

/// Every μ-law byte decoded, for the recorder's per-sample loop (a lookup, no branches).
pub static ULAW: [i16; 256] = table!(ulaw_to_linear);
/// Every A-law byte decoded.
pub static ALAW: [i16; 256] = table!(alaw_to_linear);

/// One μ-law byte to linear PCM.
pub const fn ulaw_to_linear(u: u8) -> i16 {
    let u = !u;
    let sign = u & 0x80;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0f) as i32;
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    (if sign != 0 { -magnitude } else { magnitude }) as i16
}

/// One A-law byte to linear PCM.
pub const fn alaw_to_linear(a: u8) -> i16 {
    let a = a ^ 0x55;
    let sign = a & 0x80;
    let exponent = ((a >> 4) & 0x07) as i32;
    let mantissa = (a & 0x0f) as i32;
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    (if sign != 0 { magnitude } else { -magnitude }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // μ-law: 0xFF and 0x7F are the two zeros, 0x00 is the most negative value.
        assert_eq!(ulaw_to_linear(0xff), 0);
        assert_eq!(ulaw_to_linear(0x7f), 0);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        // A-law: 0xD5 is the smallest positive step, 0x2A the most negative value.
        assert_eq!(alaw_to_linear(0xd5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xaa), 32256);
        assert_eq!(alaw_to_linear(0x2a), -32256);
    }

    #[test]
    fn monotonic_over_each_half() {
        // μ-law: 0x00..=0x7F climbs from the most negative value to zero, 0x80..=0xFF falls
        // from the most positive value to zero; every step is a different level.
        for b in 0x00..0x7fu8 {
            assert!(ulaw_to_linear(b) < ulaw_to_linear(b + 1), "μ-law {b:#04x}");
            assert!(
                ulaw_to_linear(b | 0x80) > ulaw_to_linear((b + 1) | 0x80),
                "μ-law {:#04x}",
                b | 0x80
            );
        }
        // A-law: with the even bits restored (XOR 0x55), the code's low 7 bits grow with the
        // magnitude; bit 7 set is the positive half.
        for x in 0x00..0x7fu8 {
            let pos = |x: u8| alaw_to_linear((x | 0x80) ^ 0x55);
            let neg = |x: u8| alaw_to_linear(x ^ 0x55);
            assert!(pos(x) > 0 && pos(x) < pos(x + 1), "A-law +{x:#04x}");
            assert!(neg(x) < 0 && neg(x) > neg(x + 1), "A-law -{x:#04x}");
        }
    }

    #[test]
    fn tables_are_the_decoders() {
        for b in 0..=255u8 {
            assert_eq!(ULAW[usize::from(b)], ulaw_to_linear(b), "μ-law {b:#04x}");
            assert_eq!(ALAW[usize::from(b)], alaw_to_linear(b), "A-law {b:#04x}");
        }
    }

    #[test]
    fn symmetric_around_zero() {
        for b in 0..=255u8 {
            assert_eq!(ulaw_to_linear(b), -ulaw_to_linear(b ^ 0x80));
            assert_eq!(alaw_to_linear(b), -alaw_to_linear(b ^ 0x80));
        }
    }
}
