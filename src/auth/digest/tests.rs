use super::*;
use sha2::Digest as _;

fn ch(alg: Algorithm, realm: &str, nonce: &str, qop: Vec<Qop>) -> Challenge {
    Challenge {
        realm: realm.into(),
        nonce: nonce.into(),
        opaque: None,
        algorithm: alg,
        qop,
        stale: false,
    }
}

const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

fn rfc7616_input() -> DigestInput<'static> {
    DigestInput {
        username: "Mufasa",
        password: "Circle of Life",
        method: "GET",
        uri: "/dir/index.html",
        body: b"",
        nc: 1,
        cnonce: RFC7616_CNONCE,
    }
}

/// RFC 7616 §3.9.1, MD5.
#[test]
fn rfc7616_md5_example() {
    let c = ch(
        Algorithm::Md5,
        "http-auth@example.org",
        RFC7616_NONCE,
        vec![Qop::Auth, Qop::AuthInt],
    );
    assert_eq!(
        response(&c, Some(Qop::Auth), &rfc7616_input()),
        "8ca523f5e9506fed4657c9700eebdbec"
    );
}

/// RFC 7616 §3.9.1, SHA-256.
#[test]
fn rfc7616_sha256_example() {
    let c = ch(
        Algorithm::Sha256,
        "http-auth@example.org",
        RFC7616_NONCE,
        vec![Qop::Auth, Qop::AuthInt],
    );
    assert_eq!(
        response(&c, Some(Qop::Auth), &rfc7616_input()),
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    );
}

/// RFC 2617 §3.5.
#[test]
fn rfc2617_example() {
    let c = ch(
        Algorithm::Md5,
        "testrealm@host.com",
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        vec![Qop::Auth, Qop::AuthInt],
    );
    let input = DigestInput {
        username: "Mufasa",
        password: "Circle Of Life",
        method: "GET",
        uri: "/dir/index.html",
        body: b"",
        nc: 1,
        cnonce: "0a4f113b",
    };
    assert_eq!(
        response(&c, Some(Qop::Auth), &input),
        "6629fae49393a05397450978507c4ef1"
    );
}

/// RFC 2617 §3.2.2.1 with no qop: H(H(A1):nonce:H(A2)), computed independently here.
#[test]
fn no_qop_and_sess_and_auth_int_follow_the_formulas() {
    let h = |s: &str| crate::hex::encode(&Md5::digest(s.as_bytes()));
    let c = ch(Algorithm::Md5, "r", "n", vec![]);
    let i = DigestInput {
        username: "u",
        password: "p",
        method: "INVITE",
        uri: "sip:1@h",
        body: b"v=0\r\n",
        nc: 1,
        cnonce: "cn",
    };
    let ha1 = h("u:r:p");
    let ha2 = h("INVITE:sip:1@h");
    assert_eq!(response(&c, None, &i), h(&format!("{ha1}:n:{ha2}")));

    let sess = ch(Algorithm::Md5Sess, "r", "n", vec![Qop::Auth]);
    let ha1s = h(&format!("{ha1}:n:cn"));
    assert_eq!(
        response(&sess, Some(Qop::Auth), &i),
        h(&format!("{ha1s}:n:00000001:cn:auth:{ha2}"))
    );

    let int = ch(Algorithm::Md5, "r", "n", vec![Qop::AuthInt]);
    let ha2i = h(&format!("INVITE:sip:1@h:{}", h("v=0\r\n")));
    assert_eq!(
        response(&int, Some(Qop::AuthInt), &i),
        h(&format!("{ha1}:n:00000001:cn:auth-int:{ha2i}"))
    );

    let sha_sess = ch(Algorithm::Sha256Sess, "r", "n", vec![Qop::Auth]);
    let hs = |s: &str| crate::hex::encode(&Sha256::digest(s.as_bytes()));
    let ha1 = hs(&format!("{}:n:cn", hs("u:r:p")));
    assert_eq!(
        response(&sha_sess, Some(Qop::Auth), &i),
        hs(&format!(
            "{ha1}:n:00000001:cn:auth:{}",
            hs("INVITE:sip:1@h")
        ))
    );
}

#[test]
fn parses_a_typical_sip_challenge() {
    let v = r#"Digest realm="sip.carrier.example", nonce="abc,def", qop="auth,auth-int", algorithm=MD5, opaque="xyz""#;
    let got = parse_header_lines(&[v.into()]);
    assert_eq!(got.len(), 1);
    let c = got[0].clone().unwrap();
    assert_eq!(c.realm, "sip.carrier.example");
    assert_eq!(c.nonce, "abc,def", "comma inside quotes stays in the value");
    assert_eq!(c.qop, vec![Qop::Auth, Qop::AuthInt]);
    assert_eq!(c.opaque.as_deref(), Some("xyz"));
    assert_eq!(c.algorithm, Algorithm::Md5);
    assert!(!c.stale);
    assert_eq!(c.chosen_qop(), Some(Qop::Auth));
}

#[test]
fn parameter_names_and_values_are_case_insensitive() {
    let v = r#"DIGEST REALM="r", Nonce="n", ALGORITHM=sha-256-SESS, STALE=TRUE, QOP="AUTH-INT""#;
    let c = parse_header_lines(&[v.into()])[0].clone().unwrap();
    assert_eq!(c.realm, "r");
    assert_eq!(c.algorithm, Algorithm::Sha256Sess);
    assert!(c.stale);
    assert_eq!(c.qop, vec![Qop::AuthInt]);
    assert_eq!(c.chosen_qop(), Some(Qop::AuthInt));
}

#[test]
fn several_challenges_in_one_header_and_across_lines() {
    let v = r#"Digest realm="a", nonce="1", algorithm=SHA-256, qop="auth", Digest realm="a", nonce="2", algorithm=MD5, qop="auth""#;
    let lines = vec![
        v.to_string(),
        r#"Basic realm="b""#.to_string(),
        r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Digest realm="c", nonce="3""#
            .to_string(),
    ];
    let got = parse_header_lines(&lines);
    let ok: Vec<Challenge> = got.iter().filter_map(|r| r.clone().ok()).collect();
    assert_eq!(ok.len(), 3);
    assert_eq!(
        (ok[0].nonce.as_str(), ok[0].algorithm),
        ("1", Algorithm::Sha256)
    );
    assert_eq!(
        (ok[1].nonce.as_str(), ok[1].algorithm),
        ("2", Algorithm::Md5)
    );
    assert_eq!((ok[2].realm.as_str(), ok[2].nonce.as_str()), ("c", "3"));
    assert_eq!(got.len(), 5, "Basic and Newauth are reported, not answered");
    assert!(matches!(got[2], Err(ChallengeError::NotDigest(_))));
}

#[test]
fn escaped_quotes_and_whitespace_around_equals() {
    let v = "Digest realm = \"a \\\"quoted\\\" realm\" ,\tnonce=\"n\\\\x\"";
    let c = parse_header_lines(&[v.into()])[0].clone().unwrap();
    assert_eq!(c.realm, "a \"quoted\" realm");
    assert_eq!(c.nonce, "n\\x");
}

#[test]
fn refuses_what_cannot_be_answered() {
    let cases = [
        (r#"Digest nonce="n""#, ChallengeError::Missing("realm")),
        (r#"Digest realm="r""#, ChallengeError::Missing("nonce")),
        (
            r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#,
            ChallengeError::UnsupportedAlgorithm("SHA-512-256".into()),
        ),
        (
            r#"Digest realm="r", nonce="n", qop="auth-conf""#,
            ChallengeError::UnsupportedQop("auth-conf".into()),
        ),
        (
            r#"Digest realm="r", nonce="unterminated"#,
            ChallengeError::Malformed,
        ),
    ];
    for (v, want) in cases {
        let got = parse_header_lines(&[v.into()]);
        assert_eq!(got, vec![Err(want)], "{v}");
    }
    // A peer's long value is shown cut (the error becomes a log line, one per call).
    let long = format!(
        r#"Digest realm="r", nonce="n", algorithm={}"#,
        "A".repeat(60_000)
    );
    let got = parse_header_lines(&[long]);
    let want = format!("{}…", "A".repeat(64));
    assert_eq!(got, vec![Err(ChallengeError::UnsupportedAlgorithm(want))]);
}

/// The byte soup a hostile peer might send never panics and never loops.
#[test]
fn garbage_and_non_ascii_do_not_panic() {
    let samples = [
        "",
        ",,,",
        "Digest",
        "Digest ==,=\"",
        "Digest a=\"é\",éb=1, realm=\"x\", nonce=\"n\"",
        "Digest éé=1, ébc=2",
        "Digest realm=\"x\", nonce=\"n\", é=\"1\"",
        "Digest realm=\"\\",
        "Basic dXNlcjpwYXNz==, Digest realm=\"r\", nonce=\"n\"",
        "\"\"\"\"",
        "Digest realm=\"r\",nonce=\"n\"\u{0}",
    ];
    for s in samples {
        let _ = parse_header_lines(&[s.to_string()]);
    }
    // Quoted values keep non-ASCII text intact.
    let c = parse_header_lines(&["Digest realm=\"é\", nonce=\"n\"".into()])[0]
        .clone()
        .unwrap();
    assert_eq!(c.realm, "é");
    // A token68 before a Digest challenge does not hide it.
    let got = parse_header_lines(&["Basic dXNlcjpwYXNz==, Digest realm=\"r\", nonce=\"n\"".into()]);
    assert!(got.iter().any(|r| r.as_ref().is_ok_and(|c| c.realm == "r")));
    // Exhaustive short inputs over the interesting bytes.
    let alphabet = [b'D', b'=', b'"', b'\\', b',', b' ', b'a', 0xc3, 0xa9];
    let mut buf = Vec::new();
    for n in 0..(9usize.pow(5)) {
        buf.clear();
        let mut k = n;
        for _ in 0..5 {
            buf.push(alphabet[k % 9]);
            k /= 9;
        }
        let s = String::from_utf8_lossy(&buf).into_owned();
        let _ = split_challenges(&s);
    }
}

#[test]
fn too_many_challenges_are_capped() {
    let one = r#"Digest realm="r", nonce="n""#;
    let v = vec![one; 100].join(", ");
    assert_eq!(parse_header_lines(&[v]).len(), MAX_CHALLENGES);
}

#[test]
fn credentials_value_carries_every_field_and_never_the_password() {
    let mut c = ch(
        Algorithm::Sha256,
        "r\"x",
        "n1",
        vec![Qop::Auth, Qop::AuthInt],
    );
    c.opaque = Some("op".into());
    let i = DigestInput {
        username: "alice",
        password: "s3cret-Passw0rd",
        method: "INVITE",
        uri: "sip:+861012@carrier.example;user=phone",
        body: b"",
        nc: 10,
        cnonce: "0123abcd",
    };
    let v = credentials_value(&c, &i);
    assert!(!v.contains("s3cret"), "{v}");
    let back = &split_challenges(&v)[0];
    assert_eq!(back.scheme, "Digest");
    assert_eq!(back.param("username"), Some("alice"));
    assert_eq!(back.param("realm"), Some("r\"x"));
    assert_eq!(back.param("nonce"), Some("n1"));
    assert_eq!(back.param("uri"), Some(i.uri));
    assert_eq!(back.param("algorithm"), Some("SHA-256"));
    assert_eq!(back.param("qop"), Some("auth"));
    assert_eq!(back.param("nc"), Some("0000000a"));
    assert_eq!(back.param("cnonce"), Some("0123abcd"));
    assert_eq!(back.param("opaque"), Some("op"));
    assert_eq!(
        back.param("response").map(str::to_string),
        Some(response(&c, Some(Qop::Auth), &i))
    );
    assert!(!format!("{i:?}").contains("s3cret"));
}

#[test]
fn no_qop_challenge_is_answered_without_nc_and_cnonce() {
    let c = ch(Algorithm::Md5, "r", "n", vec![]);
    let i = DigestInput {
        username: "u",
        password: "p",
        method: "BYE",
        uri: "sip:x@y",
        body: b"",
        nc: 1,
        cnonce: "c",
    };
    let v = credentials_value(&c, &i);
    let back = &split_challenges(&v)[0];
    assert_eq!(back.param("qop"), None);
    assert_eq!(back.param("nc"), None);
    assert_eq!(back.param("cnonce"), None);
}

#[test]
fn cnonce_comes_from_the_given_rng() {
    use rand::SeedableRng;
    let mut a = rand::rngs::SmallRng::seed_from_u64(7);
    let mut b = rand::rngs::SmallRng::seed_from_u64(7);
    let x = cnonce(&mut a);
    assert_eq!(x.len(), 32);
    assert_eq!(x, cnonce(&mut b));
    assert_ne!(x, cnonce(&mut a));
}

/// A stray quoted string where a parameter should be spoils its own challenge only: the
/// skip past it starts at its opening quote. Before, it started after the quote, took the
/// closing one for an opening one, and swallowed the challenges behind it.
#[test]
fn a_stray_quoted_element_does_not_swallow_the_next_challenge() {
    let v = r#"Digest realm="a", nonce="1", "x, y", Digest realm="b", nonce="2""#;
    let got = parse_header_lines(&[v.to_string()]);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], Err(ChallengeError::Malformed));
    let second = got[1].clone().unwrap();
    assert_eq!((second.realm.as_str(), second.nonce.as_str()), ("b", "2"));
}

/// A server that writes its qop list unquoted (`qop=auth,auth-int`; RFC 7616 quotes it)
/// has it read whole, and the parameters after it stay the digest challenge's: before,
/// `auth-int` began a challenge of its own with `algorithm=SHA-256`, and the answer went in
/// MD5, refused.
#[test]
fn an_unquoted_qop_list_is_read_whole() {
    let v = r#"Digest realm="r", nonce="n1", qop=auth,auth-int, algorithm=SHA-256, opaque="o""#;
    let got = parse_header_lines(&[v.into()]);
    assert_eq!(got.len(), 1, "{got:?}");
    let c = got[0].clone().expect("a digest challenge");
    assert_eq!(c.algorithm, Algorithm::Sha256);
    assert_eq!(c.qop, vec![Qop::Auth, Qop::AuthInt]);
    // A token after the list that is no qop option is the next challenge, as before.
    let two = r#"Digest realm="r", nonce="n1", qop=auth, Basic realm="b""#;
    assert_eq!(split_challenges(two).len(), 2);
}
