//! How a peer's callers dial (`[uri] country_code`, `international_prefix`,
//! `national_prefix`, `short_code_digits`), carried with what the gateway knows of a
//! message's sender: a number is read as its sender dialled or presented it, then written
//! as the peer it goes to takes it. Read with the receiving peer's prefixes, `011 44…` from
//! a North American PBX became `+1 11 44…` toward a trunk whose national prefix is `0`, and
//! a US trunk's `212…` toward a Chinese one `+86 212…`.

use std::borrow::Cow;

use super::{UriPolicy, normalise_number};
use crate::sip::{NumberUri, strip_visual_separators};

/// A dialling plan, by value (each part at most 4 digits, as the configuration checks), so
/// that the sender it belongs to stays `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialPlan {
    country_code: Digits,
    international_prefix: Digits,
    national_prefix: Digits,
    short_code_digits: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digits {
    len: u8,
    d: [u8; 4],
}

impl Digits {
    fn new(s: &str) -> Option<Digits> {
        if s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let mut d = [0; 4];
        d[..s.len()].copy_from_slice(s.as_bytes());
        Some(Digits {
            len: s.len() as u8,
            d,
        })
    }

    fn as_str(&self) -> &str {
        // ASCII digits only (`new`): always UTF-8.
        std::str::from_utf8(&self.d[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl DialPlan {
    /// The country code it is for.
    pub fn country_code(&self) -> &str {
        self.country_code.as_str()
    }

    /// Its longest service number.
    pub fn short_code_digits(&self) -> u8 {
        self.short_code_digits
    }

    /// `number`, dialled under this plan, in E.164.
    pub fn in_e164(&self, number: &str) -> String {
        super::in_e164(
            number,
            self.country_code.as_str(),
            self.international_prefix.as_str(),
            self.national_prefix.as_str(),
        )
    }
}

impl UriPolicy {
    /// How callers dial in country `cc`, when a profile says ([`UriPolicy::places`]).
    pub fn place_plan(&self, cc: &str) -> Option<DialPlan> {
        self.places
            .iter()
            .find(|p| p.country_code.as_str() == cc)
            .copied()
    }

    /// How this peer's callers dial, when its `country_code` says where they are.
    pub fn dial_plan(&self) -> Option<DialPlan> {
        Some(DialPlan {
            country_code: Digits::new(self.country_code.as_deref()?)?,
            international_prefix: Digits::new(&self.international_prefix)?,
            national_prefix: Digits::new(&self.national_prefix)?,
            short_code_digits: self.short_code_digits,
        })
    }

    /// `n` as this peer takes it, read as dialled under `plan` (its sender's). A local number
    /// whose global `phone-context` names another country than the sender's is that
    /// place's: read with this peer's own prefixes when the place is its country, else as
    /// the place's digits (`normalise_number`).
    pub fn written_from(&self, n: &NumberUri, plan: Option<DialPlan>) -> String {
        let place = (n.phone_context.as_deref())
            .filter(|c| c.starts_with('+'))
            .map(strip_visual_separators);
        let senders =
            |p: &DialPlan| place.as_deref() == Some(&format!("+{}", p.country_code.as_str())[..]);
        match (&place, plan) {
            (Some(_), Some(p)) if !senders(&p) => normalise_number(n, self),
            _ => normalise_number(n, &self.reading_under(plan)),
        }
    }

    /// This policy reading numbers as dialled under `plan` (their sender's), or under its
    /// own prefixes when the sender's plan is not known: how numbers are written (their
    /// format, scheme, parameters) stays this peer's.
    pub fn reading_under(&self, plan: Option<DialPlan>) -> Cow<'_, UriPolicy> {
        match plan {
            Some(p) if self.dial_plan() != Some(p) => Cow::Owned(UriPolicy {
                country_code: Some(p.country_code.as_str().to_string()),
                international_prefix: p.international_prefix.as_str().to_string(),
                national_prefix: p.national_prefix.as_str().to_string(),
                // A service number's length is known to either side: a trunk that says its
                // country's run to 5 digits keeps them so whoever dials them.
                short_code_digits: p.short_code_digits.max(self.short_code_digits),
                ..self.clone()
            }),
            _ => Cow::Borrowed(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interop::uri::{NumberFormat, normalise_number};
    use crate::sip::NumberUri;

    fn plan(cc: &str, intl: &str, national: &str) -> UriPolicy {
        UriPolicy {
            country_code: Some(cc.into()),
            international_prefix: intl.into(),
            national_prefix: national.into(),
            number: NumberFormat::E164,
            ..UriPolicy::default()
        }
    }

    fn number(n: &str) -> NumberUri {
        NumberUri {
            number: n.into(),
            phone_context: None,
            params: String::new(),
        }
    }

    /// A number is made E.164 as its sender dialled it: a North American PBX's `011…` is
    /// international toward a trunk whose prefixes are `00` and `0`, and a US trunk's
    /// national number stays American toward a Chinese trunk. Without a sender's plan, the
    /// receiving peer's own prefixes read it, as before.
    #[test]
    fn a_number_is_read_under_its_senders_plan() {
        let toward = plan("1", "00", "0");
        let pbx = plan("1", "011", "1").dial_plan();
        let read = |p: &UriPolicy, n: &str, under| p.written_from(&number(n), under);
        assert_eq!(read(&toward, "011442079460000", pbx), "+442079460000");
        assert_eq!(read(&toward, "011442079460000", None), "+111442079460000");
        assert_eq!(read(&toward, "12125550100", pbx), "+12125550100");
        let china = plan("86", "00", "0");
        let us_trunk = plan("1", "011", "1").dial_plan();
        assert_eq!(read(&china, "2125550100", us_trunk), "+12125550100");
        assert_eq!(read(&china, "01012345678", None), "+861012345678");
        // A local number in the receiving peer's country (its phone-context) is read with
        // that country's prefixes, whoever sent it: not `+86 010…`.
        let beijing = NumberUri {
            phone_context: Some("+86".into()),
            ..number("010-1234-5678")
        };
        assert_eq!(china.written_from(&beijing, us_trunk), "+861012345678");
        let new_york = NumberUri {
            phone_context: Some("+1".into()),
            ..number("1-212-555-0100")
        };
        assert_eq!(china.written_from(&new_york, us_trunk), "+12125550100");
        // The receiving peer's own plan: borrowed, nothing copied.
        assert!(matches!(
            china.reading_under(china.dial_plan()),
            Cow::Borrowed(_)
        ));
        // No country code: no plan.
        assert_eq!(UriPolicy::default().dial_plan(), None);
    }

    /// A service number as long as its plan's `short_code_digits` stays as dialled, under
    /// the sender's plan too: China's 10086 is no Beijing number `+86 10 086`. Before, at
    /// most 4 digits were, whatever the country.
    #[test]
    fn a_service_number_within_the_plans_short_code_length_stays_as_dialled() {
        let mut china = plan("86", "00", "0");
        assert_eq!(normalise_number(&number("10086"), &china), "+8610086");
        china.short_code_digits = 5;
        assert_eq!(normalise_number(&number("10086"), &china), "10086");
        assert_eq!(normalise_number(&number("112"), &china), "112");
        assert_eq!(
            normalise_number(&number("01012345678"), &china),
            "+861012345678"
        );
        let toward = plan("86", "00", "0");
        let read = normalise_number(&number("95588"), &toward.reading_under(china.dial_plan()));
        assert_eq!(read, "95588");
        // The receiving trunk's length holds under a sender's plan that says less.
        let pbx = plan("86", "00", "0").dial_plan();
        assert_eq!(china.written_from(&number("10086"), pbx), "10086");
    }
}
