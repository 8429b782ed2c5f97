//! What a `488` says of an offer the gateway refused for its SDP: a `Warning` header (RFC
//! 3261 §20.43, §21.4.26), so the peer's engineer reads why without our logs. Its code is
//! one of the SDP warnings of §20.43 where one fits, else 399 (miscellaneous); its text is
//! our own words, never the peer's bytes.

use super::SdpError;

/// A `Warning`'s code and text (said of `topic`: the SDP, or the multipart body around it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdpWarning {
    pub code: u16,
    pub topic: &'static str,
    pub text: &'static str,
}

impl SdpWarning {
    /// A stream's address is of an IP family the relay does not reach: 301, incompatible
    /// network address formats.
    pub const OTHER_FAMILY: SdpWarning = SdpWarning {
        code: 301,
        topic: "SDP",
        text: "media address of an IP family the gateway does not relay",
    };

    /// The header's value, `agent` (the gateway's host) warning. (The text is a
    /// quoted-string's content: a quote or backslash, which none of ours has, would become
    /// `'`.)
    pub fn value(&self, agent: &str) -> String {
        let text = format!("{}: {}", self.topic, self.text).replace(['"', '\\'], "'");
        format!("{} {agent} \"{text}\"", self.code)
    }
}

impl SdpError {
    /// The warning a refusal for this error gives.
    pub fn warning(&self) -> SdpWarning {
        let (code, text) = match self {
            SdpError::NoVersion => (399, "does not start with v=0"),
            SdpError::Syntax { what, .. } => (399, *what),
            // 304: media type not available.
            SdpError::NoMedia => (304, "no media stream"),
            SdpError::TooManyStreams { .. } | SdpError::TooManySections { .. } => {
                (304, "too many media streams")
            }
            SdpError::Multipart(what) => {
                let topic = "multipart body";
                return SdpWarning {
                    code: 399,
                    topic,
                    text: what,
                };
            }
            SdpError::Untyped => (399, "body without a readable Content-Type"),
            // 301: incompatible network address formats (no address until candidates trickle).
            SdpError::IceWithoutCandidates { .. } => {
                (301, "trickle ICE without candidates cannot be relayed")
            }
        };
        SdpWarning {
            code,
            topic: "SDP",
            text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every text is a quoted-string's content as is: no control character (the `Syntax`
    /// and `Multipart` texts are our own constants too); a quote would not end it.
    #[test]
    fn warnings_are_well_formed() {
        let errors = [
            SdpError::NoVersion,
            SdpError::Syntax {
                line: 3,
                what: "bad m= line",
            },
            SdpError::NoMedia,
            SdpError::TooManyStreams { found: 9, max: 4 },
            SdpError::Untyped,
            SdpError::IceWithoutCandidates { stream: 1 },
        ];
        for w in errors
            .iter()
            .map(SdpError::warning)
            .chain([SdpWarning::OTHER_FAMILY])
        {
            assert!((300..400).contains(&w.code));
            assert!(!w.text.chars().any(char::is_control));
        }
        let quoted = SdpWarning {
            code: 399,
            topic: "SDP",
            text: "a \"b\" \\c",
        };
        assert_eq!(quoted.value("gw"), "399 gw \"SDP: a 'b' 'c\"");
        assert_eq!(
            SdpError::NoMedia.warning().value("gw.example.net"),
            "304 gw.example.net \"SDP: no media stream\""
        );
    }
}
