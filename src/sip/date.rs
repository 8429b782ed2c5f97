/// Whether a Date header value is an RFC 1123 date in GMT, as RFC 3261 §20.17 requires:
/// `Sat, 13 Nov 2010 23:29:00 GMT`. Its literal words in any case, as ABNF reads quoted
/// strings (RFC 5234 §2.3).
pub fn is_sip_date(value: &str) -> bool {
    const DAYS: [&str; 7] = ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t: Vec<&str> = value.split_whitespace().collect();
    let [wkday, day, month, year, time, zone] = t.as_slice() else {
        return false;
    };
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    let hms: Vec<&str> = time.split(':').collect();
    let one_of = |set: &[&str], s: &str| set.iter().any(|w| w.eq_ignore_ascii_case(s));
    one_of(&DAYS, wkday)
        && (digits(day, 2) || digits(day, 1))
        && one_of(&MONTHS, month)
        && digits(year, 4)
        && hms.len() == 3
        && hms.iter().all(|p| digits(p, 2))
        && zone.eq_ignore_ascii_case("GMT")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gmt_only() {
        assert!(is_sip_date("Sat, 15 Oct 2005 04:44:56 GMT"));
        assert!(!is_sip_date("Fri, 01 Jan 2010 16:00:00 EST"));
        assert!(!is_sip_date("yesterday"));
        assert!(!is_sip_date("Sat, 15 Oct 2005 4:44:56 GMT"));
        assert!(is_sip_date("SAT, 15 oct 2005 04:44:56 gmt"));
        assert!(!is_sip_date("Sat, 15 Oct 2005 04:44:56 +0000"));
    }
}
