use super::*;

fn n(number: &str, ctx: Option<&str>) -> NumberUri {
    NumberUri {
        number: number.into(),
        phone_context: ctx.map(Into::into),
        params: String::new(),
    }
}

fn e164(cc: &str) -> UriPolicy {
    UriPolicy {
        number: NumberFormat::E164,
        country_code: Some(cc.into()),
        ..UriPolicy::default()
    }
}

/// A number local to a domain (a private extension) is not made a national number.
#[test]
fn a_number_local_to_a_domain_is_not_made_national() {
    let p = e164("86");
    assert_eq!(
        normalise_number(&n("1234", Some("pbx.example.com")), &p),
        "1234"
    );
    assert_eq!(normalise_number(&n("12345", Some("+86")), &p), "+8612345");
    assert_eq!(normalise_number(&n("12345", None), &p), "+8612345");
    // A name keeps its dots and dashes; a number loses them.
    assert_eq!(normalise_number(&n("sales-team", None), &p), "sales-team");
    assert_eq!(normalise_number(&n("010-1234", None), &p), "+86101234");
}

/// Numbers as the peer's callers dial them: North America dials `011` abroad and `1` before
/// a national number (`12125550100` was `+112125550100`, `011…` `+1011…`); a short code is
/// not completed with the country code (`911` was `+1911`, `112` `+86112`); a national
/// number in a `phone-context` loses its trunk prefix (`+8601012345678` before).
#[test]
fn numbers_are_read_as_their_callers_dial_them() {
    let nanp = UriPolicy {
        international_prefix: "011".into(),
        national_prefix: "1".into(),
        ..e164("1")
    };
    assert_eq!(
        normalise_number(&n("12125550100", None), &nanp),
        "+12125550100"
    );
    assert_eq!(
        normalise_number(&n("011442079460000", None), &nanp),
        "+442079460000"
    );
    assert_eq!(
        normalise_number(&n("2125550100", None), &nanp),
        "+12125550100"
    );
    assert_eq!(normalise_number(&n("911", None), &nanp), "911");
    assert_eq!(normalise_number(&n("112", None), &e164("86")), "112");
    assert_eq!(normalise_number(&n("1471", None), &e164("44")), "1471");
    // A phone-context toward a peer of that country: dialled with the peer's prefixes.
    let china = e164("86");
    assert_eq!(
        normalise_number(&n("010-1234-5678", Some("+86")), &china),
        "+861012345678"
    );
    assert_eq!(
        normalise_number(&n("0044 20 7946 0000", Some("+86")), &china),
        "+442079460000"
    );
    assert_eq!(
        normalise_number(&n("12125550100", Some("+1")), &nanp),
        "+12125550100"
    );
    // Elsewhere (and for routing, which knows no country) the digits follow the place:
    // a `0` is not everywhere a trunk prefix (Italy keeps it).
    let keep = UriPolicy::default();
    assert_eq!(
        normalise_number(&n("5550100", Some("+1-212")), &keep),
        "+12125550100"
    );
    assert_eq!(
        normalise_number(&n("06-1234-5678", Some("+39")), &keep),
        "+390612345678"
    );
    let italy = UriPolicy {
        national_prefix: String::new(),
        ..e164("39")
    };
    assert_eq!(
        normalise_number(&n("06-1234-5678", Some("+39")), &italy),
        "+390612345678"
    );
}

#[test]
fn e164_normalisation() {
    let p = e164("86");
    assert_eq!(
        normalise_number(&n("13812345678", None), &p),
        "+8613812345678"
    );
    assert_eq!(
        normalise_number(&n("010-1234-5678", None), &p),
        "+861012345678"
    );
    assert_eq!(
        normalise_number(&n("0044 20 7946 0000", None), &p),
        "+442079460000"
    );
    assert_eq!(
        normalise_number(&n("+1 (212) 555-0100", None), &p),
        "+12125550100"
    );
    assert_eq!(
        normalise_number(&n("12345", Some("+86")), &UriPolicy::default()),
        "+8612345"
    );
    // A short code with a global context stays local there: `+1911` is no number (RFC
    // 3966 §5.1.5). Before, it was completed with the context's digits.
    for (code, ctx) in [("911", "+1"), ("112", "+44"), ("1471", "+44")] {
        let local = n(code, Some(ctx));
        assert_eq!(normalise_number(&local, &UriPolicy::default()), code);
        assert_eq!(normalise_number(&local, &e164(&ctx[1..])), code);
    }
    // Under an area's context too (no length tells an area code from a number block).
    assert_eq!(
        normalise_number(&n("911", Some("+1-212")), &UriPolicy::default()),
        "911"
    );
    assert_eq!(
        normalise_number(&n("5550100", Some("+1-212")), &UriPolicy::default()),
        "+12125550100"
    );
    assert_eq!(normalise_number(&n("alice", None), &p), "alice");
    // A service code stays local: a global number is digits (RFC 3966).
    assert_eq!(
        normalise_number(&n("*21#", Some("+86")), &UriPolicy::default()),
        "*21#"
    );
    assert_eq!(
        normalise_number(&n("0123", None), &UriPolicy::default()),
        "0123"
    );
}

#[test]
fn ims_trunk_form() {
    let p = UriPolicy {
        user_phone: true,
        request_uri_params: "trunk-context=+86;tgrp=abc".into(),
        ..UriPolicy::default()
    };
    assert_eq!(
        request_uri("+8610123", false, &p, "ims.example.com"),
        "sip:+8610123@ims.example.com;user=phone;trunk-context=+86;tgrp=abc"
    );
    assert_eq!(
        peer_uri("+8610123", false, &p, "ims.example.com"),
        "sip:+8610123@ims.example.com;user=phone"
    );
    // user=phone only for telephone numbers.
    assert_eq!(peer_uri("alice", false, &p, "d"), "sip:alice@d");
}

/// A local number in a `user=phone` SIP URI gets a phone-context (RFC 3966 §5.1.5), as in
/// a tel: URI: the country's `+CC`, else the peer's domain name; one private to a domain
/// never the country's. Toward a peer known only by its IP address without a country code
/// it goes as dialled, its parameters kept. Before, `sip:10123@d;user=phone` claimed a
/// number no RFC 3966 parser may read.
#[test]
fn a_local_number_with_user_phone_has_a_phone_context() {
    let phone = UriPolicy {
        user_phone: true,
        ..UriPolicy::default()
    };
    assert_eq!(
        peer_uri("10123", false, &phone, "ims.example.com:5080"),
        "sip:10123;phone-context=ims.example.com@ims.example.com:5080;user=phone"
    );
    assert_eq!(
        peer_uri_in("2001", None, ";ext=22", false, &phone, "192.0.2.7"),
        "sip:2001;ext=22@192.0.2.7;user=phone"
    );
    let cc = UriPolicy {
        country_code: Some("86".into()),
        ..phone.clone()
    };
    assert_eq!(
        peer_uri_in("10123", None, ";ext=5", false, &cc, "192.0.2.7"),
        "sip:10123;ext=5;phone-context=+86@192.0.2.7;user=phone"
    );
    // A number private to a context that is no domain name (the sender's address) gets
    // the peer's address, never the +86, never the sender's.
    assert_eq!(
        peer_uri_in("1234", Some("10.0.0.7"), "", false, &cc, "192.0.2.7"),
        "sip:1234;phone-context=192.0.2.7@192.0.2.7;user=phone"
    );
    // A global number needs none.
    assert_eq!(
        peer_uri("+8610123", false, &cc, "192.0.2.7"),
        "sip:+8610123@192.0.2.7;user=phone"
    );
}

#[test]
fn tel_and_keep() {
    let tel = UriPolicy {
        scheme: UriScheme::Tel,
        country_code: Some("86".into()),
        ..UriPolicy::default()
    };
    assert_eq!(peer_uri("+8610123", false, &tel, "d"), "tel:+8610123");
    assert_eq!(
        peer_uri("10123", false, &tel, "d"),
        "tel:10123;phone-context=+86"
    );
    // A number private to a domain keeps that domain as its context, in a tel: URI
    // and in a `user=phone` SIP URI's user part; a context that is no host name is not
    // copied.
    assert_eq!(
        peer_uri_in("10123", Some("pbx.example.com"), "", false, &tel, "d"),
        "tel:10123;phone-context=pbx.example.com"
    );
    let phone = UriPolicy {
        user_phone: true,
        ..UriPolicy::default()
    };
    assert_eq!(
        peer_uri_in("10123", Some("pbx.example.com"), "", false, &phone, "d"),
        "sip:10123;phone-context=pbx.example.com@d;user=phone"
    );
    // A context that is no domain name (an IP address, an underscore) is not copied,
    // and the number stays local: the peer's domain, never its +86.
    for odd in ["a;b=c", "10.0.0.1", "pbx_1.example"] {
        assert_eq!(
            peer_uri_in("10123", Some(odd), "", false, &tel, "ims.example.com:5080"),
            "tel:10123;phone-context=ims.example.com",
            "{odd}"
        );
    }
    // A peer known by its IP address (the default domain): the number's own context if
    // it is a domain name, else the peer's IP (never the sender's, which would name its
    // host to the other side); still never +86.
    assert_eq!(
        peer_uri_in("10123", Some("10.0.0.1"), "", false, &tel, "192.0.2.5"),
        "tel:10123;phone-context=192.0.2.5"
    );
    assert_eq!(
        peer_uri_in(
            "10123",
            Some("pbx_1.example"),
            "",
            false,
            &tel,
            "192.0.2.5:5060"
        ),
        "tel:10123;phone-context=192.0.2.5"
    );
    // A domain's port is no part of a phone-context (RFC 3966 §3).
    let tel_domain = UriPolicy {
        scheme: UriScheme::Tel,
        ..UriPolicy::default()
    };
    assert_eq!(
        peer_uri("10123", false, &tel_domain, "ims.example.com:5080"),
        "tel:10123;phone-context=ims.example.com"
    );
    let keep = UriPolicy {
        scheme: UriScheme::Keep,
        ..UriPolicy::default()
    };
    assert_eq!(peer_uri("+1", true, &keep, "d"), "tel:+1");
    assert_eq!(peer_uri("+1", false, &keep, "d"), "sip:+1@d");
}

#[test]
fn uri_param_validation() {
    let ok = |s: &str| uri_params_refusal(s, true).is_none();
    assert!(ok("trunk-context=+86;tgrp=abc"));
    assert!(ok(""));
    assert!(ok("tgrp=a%2Fb;transport=udp"));
    assert!(uri_params_refusal("user=phone", false).is_none());
    assert!(!ok("a b"));
    assert!(!ok("x=1\r\nVia: evil"));
    for bad in [
        "tgrp=a%",
        "tgrp=a%zz",
        "tgrp=a;TGRP=b",
        "user=phone",
        "maddr=10.0.0.1",
        "lr",
        // The number's own: written twice beside its own, or on a global number.
        "phone-context=+86",
        "tgrp=a;ISUB=1",
        "ext=7",
    ] {
        assert!(!ok(bad), "{bad}");
    }
}

#[test]
fn host_validation() {
    for good in [
        "ims.example.com:5080",
        "10.0.0.1:5060",
        "[2001:db8::1]:5060",
        "ims.example.com",
        "ims.example.com.",
        "10.0.0.1",
        "[2001:db8::1]",
        "2001:db8::1",
        "a-b.c",
        // A container's host name, a name starting with a digit.
        "3f2a9c1b7d4e",
        "1pbx.example.com",
    ] {
        assert!(valid_host(good), "{good}");
    }
    for bad in [
        "",
        "a>b",
        "h;x",
        "a\0b",
        "a..b",
        "-a.b",
        "a b",
        "[10.0.0.1",
        "[10.0.0.1]",
        "h:0",
        "h:70000",
        "h:",
        // No name either: a mistyped address, a name whose last label is a number.
        "999.1.1.1",
        "10.0.0.256",
        "1.2.3",
        "x.123",
    ] {
        assert!(!valid_host(bad), "{bad}");
    }
}

/// A number's parameters: after ext/isub comes the phone-context, then the others; in a SIP
/// user part what it may not carry literally is escaped.
#[test]
fn a_numbers_parameters_are_written_where_they_belong() {
    let tel = UriPolicy {
        scheme: UriScheme::Tel,
        country_code: Some("1".into()),
        ..UriPolicy::default()
    };
    assert_eq!(
        peer_uri_in("5550100", None, ";ext=7;rn=+1999", false, &tel, "d"),
        "tel:5550100;ext=7;phone-context=+1;rn=+1999"
    );
    let phone = UriPolicy {
        user_phone: true,
        ..UriPolicy::default()
    };
    assert_eq!(
        peer_uri_in(
            "100",
            Some("pbx.example.com"),
            ";isub=2;rn=a:[b]",
            false,
            &phone,
            "d"
        ),
        "sip:100;isub=2;phone-context=pbx.example.com;rn=a%3A%5Bb%5D@d;user=phone"
    );
    // A name is no number and has none.
    assert_eq!(
        peer_uri_in("bob", None, ";npdi", false, &phone, "d"),
        "sip:bob@d"
    );
}

/// In a tel: Request-URI the operator's `request_uri_params` are the number's parameters
/// too: merged into RFC 3966 §3's order (`isub`/`ext`, `phone-context`, the rest by name),
/// not appended after them. In a SIP URI they are the URI's own, after the host.
#[test]
fn request_uri_params_take_their_place_among_a_tel_numbers() {
    let tel = UriPolicy {
        scheme: UriScheme::Tel,
        country_code: Some("1".into()),
        request_uri_params: "cpc=ordinary;Npdi".into(),
        ..UriPolicy::default()
    };
    assert_eq!(
        request_uri_in("5550100", None, ";ext=7;rn=+1999", false, &tel, "d"),
        "tel:5550100;ext=7;phone-context=+1;cpc=ordinary;Npdi;rn=+1999"
    );
    assert_eq!(
        request_uri_in("+15550100", None, ";oli=62", false, &tel, "d"),
        "tel:+15550100;cpc=ordinary;Npdi;oli=62"
    );
    // A peer that takes no number parameters still gets the operator's.
    let bare = UriPolicy {
        number_params: false,
        ..tel.clone()
    };
    assert_eq!(
        request_uri_in("+15550100", None, ";ext=7", false, &bare, "d"),
        "tel:+15550100;cpc=ordinary;Npdi"
    );
    let sip = UriPolicy {
        scheme: UriScheme::Sip,
        user_phone: true,
        ..tel
    };
    assert_eq!(
        request_uri_in("+15550100", None, ";ext=7", false, &sip, "d"),
        "sip:+15550100;ext=7@d;user=phone;cpc=ordinary;Npdi"
    );
}

/// RFC 4904 §5: in a SIP URI the trunk group is the number's, in the user part with
/// `;user=phone`; a peer that wants it there (`tgrp_in_user`) gets it there, beside the
/// number's own parameters in RFC 3966's order, and the other parameters stay after the
/// host. Before, they all followed the host.
#[test]
fn the_trunk_group_goes_into_the_user_part_when_the_peer_wants_it_there() {
    let rfc4904 = UriPolicy {
        user_phone: true,
        tgrp_in_user: true,
        request_uri_params: "tgrp=TG-1;trunk-context=example.com;transport=udp".into(),
        ..UriPolicy::default()
    };
    assert_eq!(
        request_uri("+16305550100", false, &rfc4904, "isp.example.net"),
        "sip:+16305550100;tgrp=TG-1;trunk-context=example.com@isp.example.net;user=phone;transport=udp"
    );
    assert_eq!(
        request_uri_in(
            "+16305550100",
            None,
            ";rn=+16305550199;npdi",
            false,
            &rfc4904,
            "isp.example.net"
        ),
        "sip:+16305550100;npdi;rn=+16305550199;tgrp=TG-1;trunk-context=example.com@isp.example.net;user=phone;transport=udp"
    );
    // A name is no number: nothing goes into its user part.
    assert_eq!(
        request_uri("alice", false, &rfc4904, "isp.example.net"),
        "sip:alice@isp.example.net;tgrp=TG-1;trunk-context=example.com;transport=udp"
    );
    // Without it, after the host as before.
    let after_host = UriPolicy {
        tgrp_in_user: false,
        ..rfc4904.clone()
    };
    assert_eq!(
        request_uri("+16305550100", false, &after_host, "isp.example.net"),
        "sip:+16305550100@isp.example.net;user=phone;tgrp=TG-1;trunk-context=example.com;transport=udp"
    );
    // A tel: URI has them among the number's, whatever the setting.
    let tel = UriPolicy {
        scheme: UriScheme::Tel,
        ..after_host
    };
    assert_eq!(
        request_uri("+16305550100", false, &tel, "isp.example.net"),
        "tel:+16305550100;tgrp=TG-1;transport=udp;trunk-context=example.com"
    );
}

/// A service code dialled with a global context (`*21#` in the United Kingdom) keeps that
/// context toward a peer of another country: it is where the code means something (RFC
/// 3966 §5.1.5). A number made global by its context needs none; one private to a domain
/// keeps the domain. Before, the code took the receiving peer's `+86`.
#[test]
fn a_local_number_keeps_the_global_context_it_was_dialled_in() {
    let tel = UriPolicy {
        scheme: UriScheme::Tel,
        country_code: Some("86".into()),
        ..UriPolicy::default()
    };
    let code = n("*21#", Some("+44"));
    let written = normalise_number(&code, &tel);
    assert_eq!(kept_context(&code, &written), Some("+44"));
    assert_eq!(
        peer_uri_in(&written, kept_context(&code, &written), "", true, &tel, "d"),
        "tel:*21#;phone-context=+44"
    );
    let number = n("2079460000", Some("+44"));
    let written = normalise_number(&number, &tel);
    assert_eq!(
        (written.as_str(), kept_context(&number, &written)),
        ("+442079460000", None)
    );
    let private = n("1234", Some("pbx.example.com"));
    assert_eq!(kept_context(&private, "1234"), Some("pbx.example.com"));
}

/// `+` then `*` or `#` is no telephone number (a global one is digits only, RFC 3966 §3):
/// not written as a tel: URI that would not parse (the call failed with an internal
/// error), but as a SIP URI of that user. A local service code still is a number.
#[test]
fn a_plus_before_a_service_code_is_no_telephone_number() {
    let tel = UriPolicy {
        scheme: UriScheme::Tel,
        country_code: Some("86".into()),
        ..UriPolicy::default()
    };
    assert!(!is_telephone_number("+*21#"));
    assert!(is_telephone_number("*21#") && is_telephone_number("+8610123"));
    let uri = peer_uri("+*21#", false, &tel, "d");
    assert!(!uri.starts_with("tel:"), "{uri}");
    assert!(crate::sip::dialled_number(&uri).is_some(), "{uri}");
}

/// A prefix dialled alone is no number: left as dialled. Before, Australia's international
/// prefix `0011` alone became `sip:+@peer`, and a national prefix alone the country code.
#[test]
fn a_prefix_dialled_alone_is_left_as_dialled() {
    let au = UriPolicy {
        international_prefix: "0011".into(),
        national_prefix: "0".into(),
        short_code_digits: 0,
        ..e164("61")
    };
    assert_eq!(normalise_number(&n("0011", None), &au), "0011");
    assert_eq!(normalise_number(&n("0", None), &au), "0");
    assert_eq!(normalise_number(&n("001144", None), &au), "+44");
}

/// A local number toward a `scheme = "tel"` (or `"keep"`) peer with no country code and
/// known by its address has no phone-context that fits (an IP address is no domain name,
/// RFC 3966 §3): it goes as a SIP URI at that address. Before, the address itself was
/// written as the context (`tel:3000;phone-context=127.0.0.1`, or a bracketed IPv6
/// address), which a strict peer refuses; for an internal peer's callers it named the
/// gateway's own address. A review found it.
#[test]
fn a_local_number_with_no_context_that_fits_goes_as_a_sip_uri() {
    let tel = UriPolicy {
        scheme: UriScheme::Tel,
        ..UriPolicy::default()
    };
    assert_eq!(
        peer_uri("3000", false, &tel, "127.0.0.1"),
        "sip:3000@127.0.0.1"
    );
    assert_eq!(
        peer_uri("5550100", false, &tel, "[2001:db8::1]"),
        "sip:5550100@[2001:db8::1]"
    );
    let keep = UriPolicy {
        scheme: UriScheme::Keep,
        ..UriPolicy::default()
    };
    assert_eq!(
        peer_uri("3000", true, &keep, "10.0.0.5:5070"),
        "sip:3000@10.0.0.5:5070"
    );
    // A domain name still fits: a tel: URI in it.
    assert_eq!(
        peer_uri("3000", false, &tel, "pbx.example.com"),
        "tel:3000;phone-context=pbx.example.com"
    );
}
