use super::*;
use crate::sip::{Message, parse_datagram};
use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::SmallRng;

const PASSWORD: &str = "Tr0ub4dor&3";

fn creds(realm: Option<&str>, algs: &[Algorithm]) -> Arc<Credentials> {
    Arc::new(Credentials {
        username: "trunkuser".into(),
        password: Secret::new(PASSWORD),
        realm: realm.map(str::to_string),
        algorithms: algs.to_vec(),
        in_dialog: Default::default(),
    })
}

fn invite(cseq: u32) -> Request {
    let raw = format!(
        "INVITE sip:+8610123@carrier.example;user=phone SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfirst\r\nMax-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag=ft\r\nTo: <sip:+8610123@carrier.example>\r\nCall-ID: cid@127.0.0.1\r\nCSeq: {cseq} INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n"
    );
    match parse_datagram(Bytes::from(raw), 65535).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => panic!("request expected"),
    }
}

fn challenge_to(req: &Request, status: u16, challenges: &[&str]) -> Response {
    let mut r = Response::to_request(req, status, "Unauthorized", Some("tt")).unwrap();
    let name = if status == 401 {
        "WWW-Authenticate"
    } else {
        "Proxy-Authenticate"
    };
    for c in challenges {
        r.push_header(&Hdr::named(name), c.to_string()).unwrap();
    }
    r
}

fn retry(cseq: u32) -> Retry {
    Retry {
        cseq,
        via: format!("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKretry{cseq}"),
    }
}

fn creds_of(req: &Request, h: &'static str) -> Vec<super::super::digest::RawChallenge> {
    req.header_lines(&Hdr::named(h))
        .iter()
        .flat_map(|l| split_challenges(l))
        .collect()
}

/// What a server would compute from the request as received, to check our answer.
fn server_accepts(req: &Request, h: &'static str, realm: &str) -> bool {
    let c = creds_of(req, h)
        .into_iter()
        .find(|c| c.param("realm") == Some(realm))
        .unwrap();
    let ch = Challenge {
        realm: realm.into(),
        nonce: c.param("nonce").unwrap().into(),
        opaque: c.param("opaque").map(str::to_string),
        algorithm: Algorithm::parse(c.param("algorithm").unwrap()).unwrap(),
        qop: vec![super::super::digest::Qop::Auth],
        stale: false,
    };
    let nc = u32::from_str_radix(c.param("nc").unwrap(), 16).unwrap();
    let expected = digest::response(
        &ch,
        Some(super::super::digest::Qop::Auth),
        &DigestInput {
            username: "trunkuser",
            password: PASSWORD,
            method: req.method().as_str(),
            uri: c.param("uri").unwrap(),
            body: req.body(),
            nc,
            cnonce: c.param("cnonce").unwrap(),
        },
    );
    c.param("uri") == Some(req.uri().as_str()) && c.param("response") == Some(&expected)
}

#[test]
fn answers_a_407_with_new_cseq_and_via_and_keeps_the_dialog_identity() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(1);
    let sent = invite(1);
    let resp = challenge_to(
        &sent,
        407,
        &[r#"Digest realm="carrier", nonce="n1", qop="auth", algorithm=MD5"#],
    );
    let again = s.on_challenge(&sent, &resp, retry(2), &mut rng).unwrap();
    assert_eq!(again.cseq().unwrap().0, 2);
    assert_eq!(again.method(), crate::sip::Method::Invite);
    assert_eq!(
        again.top_via().unwrap().branch.as_deref(),
        Some("z9hG4bKretry2")
    );
    assert_eq!(again.header_lines(&Hdr::VIA).len(), 1);
    assert_eq!(again.call_id(), sent.call_id());
    assert_eq!(again.from_tag(), sent.from_tag());
    assert_eq!(again.uri(), sent.uri());
    assert_eq!(again.body(), sent.body());
    assert!(!again.has_header(&Hdr::AUTHORIZATION));
    assert!(server_accepts(&again, "Proxy-Authorization", "carrier"));
    let c = &creds_of(&again, "Proxy-Authorization")[0];
    assert_eq!(c.param("nc"), Some("00000001"));
    assert!(
        !again
            .to_bytes()
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes())
    );
    assert!(s.has_cached());
}

#[test]
fn prefers_the_configured_algorithm_among_several_challenges() {
    let sent = invite(1);
    let resp = challenge_to(
        &sent,
        401,
        &[
            r#"Digest realm="r", nonce="md5", qop="auth", algorithm=MD5"#,
            r#"Digest realm="r", nonce="sha", qop="auth", algorithm=SHA-256"#,
        ],
    );
    let mut rng = SmallRng::seed_from_u64(1);
    for (pref, want) in [
        (vec![Algorithm::Sha256, Algorithm::Md5], "SHA-256"),
        (vec![Algorithm::Md5, Algorithm::Sha256], "MD5"),
    ] {
        let mut s = AuthSession::new(Some(creds(None, &pref)));
        let again = s.on_challenge(&sent, &resp, retry(2), &mut rng).unwrap();
        let c = &creds_of(&again, "Authorization")[0];
        assert_eq!(c.param("algorithm"), Some(want));
        assert!(server_accepts(&again, "Authorization", "r"));
    }
    let mut s = AuthSession::new(Some(creds(None, &[Algorithm::Sha256Sess])));
    assert_eq!(
        s.on_challenge(&sent, &resp, retry(2), &mut rng).err(),
        Some(AuthFailure::AlgorithmNotAllowed("MD5, SHA-256".into()))
    );
}

#[test]
fn nonce_count_increments_per_nonce_and_resets_with_a_new_one() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(2);
    let sent = invite(1);
    let resp = challenge_to(&sent, 401, &[r#"Digest realm="r", nonce="n1", qop="auth""#]);
    let first = s.on_challenge(&sent, &resp, retry(2), &mut rng).unwrap();
    let nc = |r: &Request| {
        creds_of(r, "Authorization")[0]
            .param("nc")
            .unwrap()
            .to_string()
    };
    let cn = |r: &Request| {
        creds_of(r, "Authorization")[0]
            .param("cnonce")
            .unwrap()
            .to_string()
    };
    assert_eq!(nc(&first), "00000001");
    // Later requests in the dialog carry credentials up front, counting on.
    let mut bye = invite(3);
    s.authorize(&mut bye, &mut rng).unwrap();
    assert_eq!(nc(&bye), "00000002");
    let mut reinvite = invite(4);
    s.authorize(&mut reinvite, &mut rng).unwrap();
    assert_eq!(nc(&reinvite), "00000003");
    assert_ne!(cn(&bye), cn(&reinvite), "a fresh cnonce every time");
    assert!(server_accepts(&reinvite, "Authorization", "r"));
    // The server moves to a new nonce (stale): the count starts again.
    let resp = challenge_to(
        &reinvite,
        401,
        &[r#"Digest realm="r", nonce="n2", qop="auth", stale=true"#],
    );
    let again = s
        .on_challenge(&reinvite, &resp, retry(5), &mut rng)
        .unwrap();
    assert_eq!(nc(&again), "00000001");
    assert_eq!(
        creds_of(&again, "Authorization")[0].param("nonce"),
        Some("n2")
    );
}

#[test]
fn stale_nonce_is_retried_with_the_fresh_one() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(3);
    let sent = invite(1);
    let r1 = challenge_to(&sent, 401, &[r#"Digest realm="r", nonce="n1", qop="auth""#]);
    let a1 = s.on_challenge(&sent, &r1, retry(2), &mut rng).unwrap();
    let r2 = challenge_to(
        &a1,
        401,
        &[r#"Digest realm="r", nonce="n2", qop="auth", stale=TRUE"#],
    );
    let a2 = s.on_challenge(&a1, &r2, retry(3), &mut rng).unwrap();
    assert_eq!(creds_of(&a2, "Authorization").len(), 1);
    assert_eq!(creds_of(&a2, "Authorization")[0].param("nonce"), Some("n2"));
    assert!(server_accepts(&a2, "Authorization", "r"));
}

#[test]
fn the_same_nonce_twice_gives_up() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(4);
    let sent = invite(1);
    let ch = r#"Digest realm="r", nonce="n1", qop="auth""#;
    let a1 = s
        .on_challenge(&sent, &challenge_to(&sent, 401, &[ch]), retry(2), &mut rng)
        .unwrap();
    assert_eq!(
        s.on_challenge(&a1, &challenge_to(&a1, 401, &[ch]), retry(3), &mut rng)
            .err(),
        Some(AuthFailure::SameNonce)
    );
    // Even when it claims to be stale.
    let stale = r#"Digest realm="r", nonce="n1", qop="auth", stale=true"#;
    assert_eq!(
        s.on_challenge(&a1, &challenge_to(&a1, 401, &[stale]), retry(3), &mut rng)
            .err(),
        Some(AuthFailure::SameNonce)
    );
}

#[test]
fn a_fresh_nonce_without_stale_after_an_answer_is_a_refusal() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(5);
    let sent = invite(1);
    let a1 = s
        .on_challenge(
            &sent,
            &challenge_to(&sent, 401, &[r#"Digest realm="r", nonce="n1""#]),
            retry(2),
            &mut rng,
        )
        .unwrap();
    assert_eq!(
        s.on_challenge(
            &a1,
            &challenge_to(&a1, 401, &[r#"Digest realm="r", nonce="n2""#]),
            retry(3),
            &mut rng
        )
        .err(),
        Some(AuthFailure::Rejected)
    );
}

/// A burst of requests in flight at once, each challenged with a nonce of its own and each
/// answer refused: every refusal is known for one, none answered again. Before, past eight
/// answers the first ones were forgotten, their refusals taken for first challenges and
/// answered again, round after round.
#[test]
fn a_burst_of_refused_answers_is_refused_every_one() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(6);
    let burst = 20u32;
    let answers: Vec<Request> = (1..=burst)
        .map(|n| {
            let sent = invite(n);
            let nonce = format!(r#"Digest realm="r", nonce="a{n}""#);
            s.on_challenge(
                &sent,
                &challenge_to(&sent, 401, &[&nonce]),
                retry(100 + n),
                &mut rng,
            )
            .unwrap()
        })
        .collect();
    for (n, a) in answers.iter().enumerate() {
        let nonce = format!(r#"Digest realm="r", nonce="b{n}""#);
        assert_eq!(
            s.on_challenge(a, &challenge_to(a, 401, &[&nonce]), retry(200), &mut rng)
                .err(),
            Some(AuthFailure::Rejected),
            "answer {n}"
        );
    }
}

#[test]
fn up_front_credentials_with_an_old_nonce_are_refreshed() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(6);
    let sent = invite(1);
    s.on_challenge(
        &sent,
        &challenge_to(&sent, 401, &[r#"Digest realm="r", nonce="n1""#]),
        retry(2),
        &mut rng,
    )
    .unwrap();
    let mut bye = invite(3);
    s.authorize(&mut bye, &mut rng).unwrap();
    let again = s
        .on_challenge(
            &bye,
            &challenge_to(&bye, 401, &[r#"Digest realm="r", nonce="n9""#]),
            retry(4),
            &mut rng,
        )
        .unwrap();
    assert_eq!(
        creds_of(&again, "Authorization")[0].param("nonce"),
        Some("n9")
    );
}

/// A forking proxy merged two branches' challenges (two realms) into one 401: both are
/// answered in the one retry (RFC 3261 §22.3), the best algorithm of each realm. Before,
/// only one realm was, and the other branch challenged again.
#[test]
fn every_realm_of_a_merged_challenge_is_answered() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(9);
    let sent = invite(1);
    let again = s
        .on_challenge(
            &sent,
            &challenge_to(
                &sent,
                401,
                &[
                    r#"Digest realm="east", nonce="e1", qop="auth", algorithm=MD5"#,
                    r#"Digest realm="west", nonce="w1", qop="auth", algorithm=MD5"#,
                    r#"Digest realm="east", nonce="e2", qop="auth", algorithm=SHA-256"#,
                ],
            ),
            retry(2),
            &mut rng,
        )
        .unwrap();
    let answered = creds_of(&again, "Authorization");
    let realms: Vec<_> = answered
        .iter()
        .map(|c| {
            (
                c.param("realm").unwrap().to_string(),
                c.param("algorithm").unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        realms,
        vec![
            ("east".to_string(), "SHA-256".to_string()),
            ("west".to_string(), "MD5".to_string())
        ]
    );
    assert!(server_accepts(&again, "Authorization", "west"));
}

/// A forking proxy's 407 that carries a branch's WWW-Authenticate beside its own challenge
/// (RFC 3261 §16.7 step 6) is answered for both in one retry (§22.3); the session knows
/// both realms after. Before, the WWW challenge was left for a round of its own. One of the
/// other kind that cannot be answered (another realm than configured) is left out.
#[test]
fn a_merged_407_with_a_www_challenge_is_answered_for_both_at_once() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(11);
    let sent = invite(1);
    let mut resp = challenge_to(
        &sent,
        407,
        &[r#"Digest realm="proxy", nonce="p1", qop="auth", algorithm=MD5"#],
    );
    resp.push_header(
        &Hdr::named("WWW-Authenticate"),
        r#"Digest realm="callee", nonce="c1", qop="auth", algorithm=MD5"#.to_string(),
    )
    .unwrap();
    let again = s.on_challenge(&sent, &resp, retry(2), &mut rng).unwrap();
    assert!(server_accepts(&again, "Proxy-Authorization", "proxy"));
    assert!(server_accepts(&again, "Authorization", "callee"));
    assert!(s.realms_known(&resp));
    // With a realm configured, a WWW challenge of another realm is left out; the 407 is
    // still answered.
    let mut s = AuthSession::new(Some(creds(Some("proxy"), &Algorithm::ALL)));
    let again = s.on_challenge(&sent, &resp, retry(2), &mut rng).unwrap();
    assert!(server_accepts(&again, "Proxy-Authorization", "proxy"));
    assert!(again.header(&Hdr::AUTHORIZATION).is_none());
}

/// A proxy's 407, then a 401 naming four realms: the proxy's credentials stay (the 401's
/// realms make room among themselves), so the retry still satisfies the proxy.
#[test]
fn a_many_realm_challenge_does_not_push_out_the_proxys_credentials() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(11);
    let sent = invite(1);
    let a1 = s
        .on_challenge(
            &sent,
            &challenge_to(
                &sent,
                407,
                &[r#"Digest realm="proxy", nonce="p1", qop="auth""#],
            ),
            retry(2),
            &mut rng,
        )
        .unwrap();
    let realms: Vec<String> = ["e", "w", "x", "y"]
        .iter()
        .map(|r| format!(r#"Digest realm="{r}", nonce="{r}1", qop="auth""#))
        .collect();
    let refs: Vec<&str> = realms.iter().map(String::as_str).collect();
    let a2 = s
        .on_challenge(&a1, &challenge_to(&a1, 401, &refs), retry(3), &mut rng)
        .unwrap();
    assert!(server_accepts(&a2, "Proxy-Authorization", "proxy"));
    assert_eq!(
        creds_of(&a2, "Authorization").len(),
        3,
        "the latest three realms"
    );
}

#[test]
fn proxy_then_server_challenge_carries_both_credentials_and_rounds_are_bounded() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(7);
    let sent = invite(1);
    let a1 = s
        .on_challenge(
            &sent,
            &challenge_to(
                &sent,
                407,
                &[r#"Digest realm="proxy", nonce="p1", qop="auth""#],
            ),
            retry(2),
            &mut rng,
        )
        .unwrap();
    let a2 = s
        .on_challenge(
            &a1,
            &challenge_to(
                &a1,
                401,
                &[r#"Digest realm="server", nonce="s1", qop="auth""#],
            ),
            retry(3),
            &mut rng,
        )
        .unwrap();
    assert!(server_accepts(&a2, "Proxy-Authorization", "proxy"));
    assert!(server_accepts(&a2, "Authorization", "server"));
    assert_eq!(
        creds_of(&a2, "Proxy-Authorization")[0].param("nc"),
        Some("00000002")
    );
    let a3 = s
        .on_challenge(
            &a2,
            &challenge_to(
                &a2,
                401,
                &[r#"Digest realm="server", nonce="s2", qop="auth", stale=true"#],
            ),
            retry(4),
            &mut rng,
        )
        .unwrap();
    // A fourth challenge, however stale, is one too many.
    assert_eq!(
        s.on_challenge(
            &a3,
            &challenge_to(
                &a3,
                401,
                &[r#"Digest realm="server", nonce="s3", qop="auth", stale=true"#],
            ),
            retry(5),
            &mut rng
        )
        .err(),
        Some(AuthFailure::TooManyRounds(MAX_ROUNDS))
    );
}

#[test]
fn realm_mismatch_and_missing_credentials_give_up() {
    let mut rng = SmallRng::seed_from_u64(8);
    let sent = invite(1);
    let resp = challenge_to(&sent, 401, &[r#"Digest realm="evil", nonce="n""#]);
    let mut s = AuthSession::new(Some(creds(Some("carrier"), &Algorithm::ALL)));
    assert_eq!(
        s.on_challenge(&sent, &resp, retry(2), &mut rng).err(),
        Some(AuthFailure::RealmMismatch {
            offered: "evil".into(),
            configured: "carrier".into()
        })
    );
    assert!(!s.has_cached());
    let mut none = AuthSession::new(None);
    assert_eq!(
        none.on_challenge(&sent, &resp, retry(2), &mut rng).err(),
        Some(AuthFailure::NoCredentials)
    );
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let basic = challenge_to(&sent, 401, &[r#"Basic realm="x""#]);
    assert!(matches!(
        s.on_challenge(&sent, &basic, retry(2), &mut rng),
        Err(AuthFailure::NoUsableChallenge(_))
    ));
    let bare = challenge_to(&sent, 401, &[]);
    assert!(matches!(
        s.on_challenge(&sent, &bare, retry(2), &mut rng),
        Err(AuthFailure::NoUsableChallenge(_))
    ));
    let not = Response::to_request(&sent, 403, "Forbidden", None).unwrap();
    assert_eq!(
        s.on_challenge(&sent, &not, retry(2), &mut rng).err(),
        Some(AuthFailure::NotAChallenge(403))
    );
}

#[test]
fn the_password_appears_in_no_debug_or_error_text() {
    let c = creds(Some("r"), &Algorithm::ALL);
    let mut s = AuthSession::new(Some(c.clone()));
    let mut rng = SmallRng::seed_from_u64(9);
    let sent = invite(1);
    let a1 = s
        .on_challenge(
            &sent,
            &challenge_to(&sent, 401, &[r#"Digest realm="r", nonce="n""#]),
            retry(2),
            &mut rng,
        )
        .unwrap();
    let err = s
        .on_challenge(
            &a1,
            &challenge_to(&a1, 401, &[r#"Digest realm="r", nonce="n""#]),
            retry(3),
            &mut rng,
        )
        .unwrap_err();
    for text in [
        format!("{c:?}"),
        format!("{s:?}"),
        format!("{err} {err:?}"),
        format!("{:?}", Secret::new(PASSWORD)),
        String::from_utf8_lossy(&a1.to_bytes()).into_owned(),
    ] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
    assert!(format!("{c:?}").contains("trunkuser"));
}

/// MD5-sess: the session key (A1) is made of the nonce and our first cnonce (RFC 7616
/// §3.4.2), so later requests on that nonce answer with that cnonce; a server that keeps the
/// key refused them when each request drew a new one. A new nonce starts a new session.
#[test]
fn a_sess_challenge_keeps_its_first_cnonce_for_the_session() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(9);
    let sent = invite(1);
    let ch = r#"Digest realm="r", nonce="n1", qop="auth", algorithm=MD5-sess"#;
    let first = s
        .on_challenge(&sent, &challenge_to(&sent, 401, &[ch]), retry(2), &mut rng)
        .unwrap();
    let cn = |r: &Request| {
        creds_of(r, "Authorization")[0]
            .param("cnonce")
            .unwrap()
            .to_string()
    };
    let session = cn(&first);
    let mut bye = invite(3);
    s.authorize(&mut bye, &mut rng).unwrap();
    assert_eq!(cn(&bye), session, "one session key per nonce");
    assert_eq!(
        creds_of(&bye, "Authorization")[0].param("nc"),
        Some("00000002")
    );
    assert!(server_accepts(&bye, "Authorization", "r"));
    // A new nonce: a new session, with a cnonce of its own.
    let stale = r#"Digest realm="r", nonce="n2", qop="auth", algorithm=MD5-sess, stale=true"#;
    let again = s
        .on_challenge(&bye, &challenge_to(&bye, 401, &[stale]), retry(4), &mut rng)
        .unwrap();
    assert_ne!(cn(&again), session);
    assert!(server_accepts(&again, "Authorization", "r"));
}

/// A request carrying credentials up front for a server's realm and, after a proxy's 407,
/// answering the proxy with its fresh nonce: the server's 401 with a new nonce (and no
/// `stale`, which many servers never send) is a newer nonce for credentials sent up front,
/// not a refusal of our answer, and is answered. A new nonce for the realm the request
/// answered fresh is still a refusal.
#[test]
fn a_new_nonce_for_credentials_sent_up_front_in_an_answer_is_no_refusal() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(12);
    // Earlier in the dialog: the proxy's and the server's challenges, both answered.
    let first = invite(1);
    let proxy = |req: &Request, n: &str| {
        let c = format!(r#"Digest realm="proxy", nonce="{n}", qop="auth""#);
        challenge_to(req, 407, &[c.as_str()])
    };
    let server = |req: &Request, n: &str| {
        let c = format!(r#"Digest realm="server", nonce="{n}", qop="auth""#);
        challenge_to(req, 401, &[c.as_str()])
    };
    let second = s
        .on_challenge(&first, &proxy(&first, "p1"), retry(2), &mut rng)
        .unwrap();
    let third = s
        .on_challenge(&second, &server(&second, "s1"), retry(3), &mut rng)
        .unwrap();
    assert!(server_accepts(&third, "Authorization", "server"));
    // A later request carries both up front; the proxy's nonce has expired.
    let mut later = invite(10);
    s.authorize(&mut later, &mut rng).unwrap();
    let answered = s
        .on_challenge(&later, &proxy(&later, "p2"), retry(11), &mut rng)
        .unwrap();
    // The server's nonce has expired too: it challenges the answer to the proxy.
    let again = s.on_challenge(&answered, &server(&answered, "s2"), retry(12), &mut rng);
    let again = again.expect("a newer nonce for credentials sent up front");
    assert!(server_accepts(&again, "Authorization", "server"));
    assert!(server_accepts(&again, "Proxy-Authorization", "proxy"));
    // The proxy refusing the answer it was just given (request 11 answered its p2): a
    // refusal.
    let refused = s.on_challenge(&answered, &proxy(&answered, "p3"), retry(13), &mut rng);
    assert_eq!(refused.unwrap_err(), AuthFailure::Rejected);
    // A peer renewing nonces without end is bounded all the same: three rounds a request.
    let third_round = s.on_challenge(&again, &proxy(&again, "p4"), retry(14), &mut rng);
    let third_round = third_round.expect("the third round");
    let fourth = s.on_challenge(
        &third_round,
        &server(&third_round, "s3"),
        retry(15),
        &mut rng,
    );
    assert_eq!(fourth.unwrap_err(), AuthFailure::TooManyRounds(MAX_ROUNDS));
}

/// A request sent without credentials while another was challenged gets the same nonce:
/// its answer counts on from the first's (nc 2), rather than sending nc 1 on that nonce
/// again, which a server that checks nc refuses as a replay.
#[test]
fn the_same_nonce_again_counts_on() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(3);
    let nc = |r: &Request| {
        creds_of(r, "Authorization")[0]
            .param("nc")
            .unwrap()
            .to_string()
    };
    let first = invite(1);
    let resp = challenge_to(
        &first,
        401,
        &[r#"Digest realm="r", nonce="n1", qop="auth""#],
    );
    assert_eq!(
        nc(&s.on_challenge(&first, &resp, retry(2), &mut rng).unwrap()),
        "00000001"
    );
    let other = invite(5);
    let resp = challenge_to(
        &other,
        401,
        &[r#"Digest realm="r", nonce="n1", qop="auth""#],
    );
    let again = s.on_challenge(&other, &resp, retry(6), &mut rng).unwrap();
    assert_eq!(nc(&again), "00000002");
    assert!(server_accepts(&again, "Authorization", "r"));
}

/// A nonce, realm or opaque past 1 KB is not taken: each would ride in every later
/// request of the leg, pushing them past what UDP carries.
#[test]
fn an_oversized_challenge_is_not_answered() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(4);
    let sent = invite(1);
    let long = "n".repeat(40_000);
    let resp = challenge_to(
        &sent,
        401,
        &[&format!(r#"Digest realm="r", nonce="{long}""#)],
    );
    assert!(s.on_challenge(&sent, &resp, retry(2), &mut rng).is_err());
    let opaque = "o".repeat(2_000);
    let resp = challenge_to(
        &sent,
        401,
        &[&format!(
            r#"Digest realm="r", nonce="n1", opaque="{opaque}""#
        )],
    );
    assert!(s.on_challenge(&sent, &resp, retry(2), &mut rng).is_err());
}

/// `realms_known` judges what `on_challenge` would answer, each kind on its own: a 401 in
/// a call whose INVITE was challenged for realm "carrier", its WWW-Authenticate for that
/// realm padded with 15 junk challenges, and a Proxy-Authenticate for a realm the far end
/// chose. Before, both kinds were read as one list capped at 16 challenges: the proxy's was
/// never looked at, the realm check passed, and it was answered with the trunk's password.
#[test]
fn a_challenge_hidden_behind_junk_of_the_other_kind_is_not_of_a_known_realm() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(5);
    let sent = invite(1);
    let first = challenge_to(&sent, 401, &[r#"Digest realm="carrier", nonce="n0""#]);
    s.on_challenge(&sent, &first, retry(2), &mut rng).unwrap();
    let bye = invite(3);
    let mut resp = challenge_to(
        &bye,
        401,
        &[r#"Digest realm="carrier", nonce="n1", a, b, c, d, e, f, g, h, i, j, k, l, m, n, o"#],
    );
    assert!(s.realms_known(&resp), "the carrier's own realm");
    resp.push_header(
        &Hdr::named("Proxy-Authenticate"),
        r#"Digest realm="evil", nonce="chosen""#.to_string(),
    )
    .unwrap();
    assert!(!s.realms_known(&resp));
}

/// Credentials a reload changed keep the challenges seen so far only where the new settings
/// would answer them: a `realm` set, or an `algorithm` no longer allowed, stops the
/// credentials sent up front for the others. Before, every cached challenge went on being
/// answered, with the new password.
#[test]
fn new_credentials_drop_the_challenges_they_would_not_answer() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(6);
    let sent = invite(1);
    let ch = challenge_to(
        &sent,
        407,
        &[r#"Digest realm="x", nonce="n0", algorithm=MD5"#],
    );
    s.on_challenge(&sent, &ch, retry(2), &mut rng).unwrap();
    assert!(s.has_cached());
    s.use_credentials(Some(creds(None, &Algorithm::ALL)));
    assert!(s.has_cached(), "the same settings answer it still");
    s.use_credentials(Some(creds(Some("carrier.example"), &Algorithm::ALL)));
    assert!(!s.has_cached(), "another realm now");
}

/// A request of another dialog with the same CSeq number as one answered before (a second
/// branch's BYE and the main dialog's next request: their numbers are counted apart) is no
/// retry of it: a new nonce for its credentials sent up front is answered, not taken as a
/// refusal. Before, the answered request was found by its CSeq number alone.
#[test]
fn a_request_of_another_dialog_with_the_same_number_is_not_a_retry() {
    let mut s = AuthSession::new(Some(creds(None, &Algorithm::ALL)));
    let mut rng = SmallRng::seed_from_u64(8);
    let in_dialog = |cseq: u32, tag: &str| {
        let text = format!(
            "BYE sip:+8610123@carrier.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKb{cseq}{tag}\r\nMax-Forwards: 70\r\nFrom: <sip:100@127.0.0.1>;tag=ft\r\nTo: <sip:+8610123@carrier.example>;tag={tag}\r\nCall-ID: cid@127.0.0.1\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n"
        );
        match parse_datagram(Bytes::from(text), 65535).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    };
    // The second branch's BYE at 2, challenged, answered at 3.
    let branch_bye = in_dialog(2, "second");
    let ch = challenge_to(&branch_bye, 407, &[r#"Digest realm="carrier", nonce="n1""#]);
    s.on_challenge(&branch_bye, &ch, retry(3), &mut rng)
        .unwrap();
    // The main dialog's request at 3, with credentials up front, meets a new nonce.
    let mut main = in_dialog(3, "main");
    s.authorize(&mut main, &mut rng).unwrap();
    let ch = challenge_to(&main, 407, &[r#"Digest realm="carrier", nonce="n2""#]);
    assert!(s.on_challenge(&main, &ch, retry(4), &mut rng).is_ok());
}
