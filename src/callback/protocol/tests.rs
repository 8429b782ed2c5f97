use super::*;

fn id(s: &str) -> CallbackId {
    CallbackId::parse(s).unwrap()
}

fn num(s: &str) -> Number {
    Number::parse(s).unwrap()
}

#[test]
fn well_formed_messages_parse() {
    assert_eq!(
        parse(b"REQUEST: id=abc-1;user1=+8610123;user2=2001"),
        Ok(Inbound::Request(Request {
            id: id("abc-1"),
            user1: num("+8610123"),
            user2: num("2001"),
            caller: None,
            max_duration: None,
        }))
    );
    // Optional keys, any order, spaces around separators, the line end nc adds.
    assert_eq!(
        parse(b"REQUEST: max_duration=60; caller=*31#100 ;user2=2001;user1=1001;id=x\r\n"),
        Ok(Inbound::Request(Request {
            id: id("x"),
            user1: num("1001"),
            user2: num("2001"),
            caller: Some(num("*31#100")),
            max_duration: Some(60),
        }))
    );
    assert_eq!(parse(b"CANCEL: id=a\n"), Ok(Inbound::Cancel(id("a"))));
    assert_eq!(parse(b"STATUS:id=a"), Ok(Inbound::Status(id("a"))));
    assert_eq!(parse(b"ACK: id=a"), Ok(Inbound::Ack(id("a"))));
    let longest = format!("STATUS: id={}", "x".repeat(MAX_ID));
    assert!(parse(longest.as_bytes()).is_ok());
    // `=` inside a value is part of it.
    assert_eq!(parse(b"STATUS: id=a=b"), Ok(Inbound::Status(id("a=b"))));
}

/// A datagram, its error, the verb still known, the id still readable.
type Case<'a> = (&'a [u8], ParseError, Option<Verb>, Option<&'a str>);

#[test]
fn every_malformed_form_is_a_typed_error() {
    use ParseError::*;
    let long_id = format!("STATUS: id={}", "x".repeat(MAX_ID + 1));
    let long_number = format!("REQUEST: id=a;user1={};user2=2", "1".repeat(MAX_NUMBER + 1));
    let over_long = format!("STATUS: id=a;{}", " ".repeat(MAX_DATAGRAM));
    let many_fields = format!("STATUS: id=a{}", ";x=1".repeat(20));
    #[rustfmt::skip]
        let table: Vec<Case> = vec![
            (over_long.as_bytes(), TooLong, Some(Verb::Status), None),
            ("STATUS: id=é".as_bytes(), NotAscii, Some(Verb::Status), None),
            (b"STATUS: id=a\xff", NotAscii, Some(Verb::Status), None),
            (b"STATUS: id=a\0", BadSyntax, Some(Verb::Status), None),
            (b"STATUS: id=a\tb", BadSyntax, Some(Verb::Status), None),
            (b"STATUS: id=a\nCANCEL: id=b", BadSyntax, Some(Verb::Status), None),
            (b"", BadSyntax, None, None),
            (b"ACK: id=\0a", BadSyntax, Some(Verb::Ack), None),
            (b"ACK:\xff", NotAscii, Some(Verb::Ack), None),
            (b"\xffACK: id=a", NotAscii, None, None),
            (b"\r\n", BadSyntax, None, None),
            (b"STATUS id=a", BadSyntax, None, None),
            (b"STATUS: id=a;", BadSyntax, Some(Verb::Status), Some("a")),
            (b"STATUS: id=a;;", BadSyntax, Some(Verb::Status), Some("a")),
            (b"STATUS: id=a;junk", BadSyntax, Some(Verb::Status), Some("a")),
            (b"STATUS: id=a;=1", BadSyntax, Some(Verb::Status), Some("a")),
            (b"STATUS: ", BadSyntax, Some(Verb::Status), None),
            (many_fields.as_bytes(), BadSyntax, Some(Verb::Status), Some("a")),
            (b"HELLO: id=a", UnknownVerb, None, Some("a")),
            (b"status: id=a", UnknownVerb, None, Some("a")),
            (b"RESPONSE: id=a;result=connected", UnknownVerb, None, Some("a")),
            (b"STATUS: id=a;state=ended", UnknownKey, Some(Verb::Status), Some("a")),
            (b"CANCEL: id=a;user1=1", UnknownKey, Some(Verb::Cancel), Some("a")),
            (b"ACK: id=a;result=ok", UnknownKey, Some(Verb::Ack), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;User1=3", UnknownKey, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;user1=3", DuplicateKey, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;caller=3;caller=3", DuplicateKey, Some(Verb::Request), Some("a")),
            // Two ids: neither is trusted enough to be echoed.
            (b"STATUS: id=a;id=b", DuplicateKey, Some(Verb::Status), None),
            (b"REQUEST: id=a;user1=1", MissingKey, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user2=1", MissingKey, Some(Verb::Request), Some("a")),
            (b"REQUEST: user1=1;user2=2", MissingKey, Some(Verb::Request), None),
            (b"CANCEL: ", BadSyntax, Some(Verb::Cancel), None),
            (b"ACK: x=1", UnknownKey, Some(Verb::Ack), None),
            (b"STATUS: id=", BadId, Some(Verb::Status), None),
            (long_id.as_bytes(), BadId, Some(Verb::Status), None),
            (b"STATUS: id=a b", BadId, Some(Verb::Status), None),
            (b"REQUEST: id=a;user1=;user2=2", BadNumber, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=+;user2=2", BadNumber, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=12a;user2=2", BadNumber, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=++2", BadNumber, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2 3", BadNumber, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1-2;user2=2", BadNumber, Some(Verb::Request), Some("a")),
            (long_number.as_bytes(), BadNumber, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;caller=", BadNumber, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;caller=bob", BadNumber, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;max_duration=0", BadDuration, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;max_duration=-5", BadDuration, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;max_duration=+5", BadDuration, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;max_duration=1.5", BadDuration, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;max_duration=86401", BadDuration, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;max_duration=99999999999999999999", BadDuration, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;max_duration=", BadDuration, Some(Verb::Request), Some("a")),
            (b"REQUEST: id=a;user1=1;user2=2;max_duration=1e3", BadDuration, Some(Verb::Request), Some("a")),
        ];
    for (bytes, error, verb, id) in table {
        let got = parse(bytes);
        let want = Rejected {
            error,
            verb,
            id: id.map(|s| CallbackId::parse(s).unwrap()),
        };
        assert_eq!(got, Err(want), "{:?}", String::from_utf8_lossy(bytes));
    }
}

#[test]
fn reasons_are_tokens() {
    use ParseError::*;
    for e in [
        TooLong,
        NotAscii,
        BadSyntax,
        UnknownVerb,
        UnknownKey,
        DuplicateKey,
        MissingKey,
        BadId,
        BadNumber,
        BadDuration,
    ] {
        assert!(is_token(e.reason()), "{e:?}");
    }
}

#[test]
fn outbound_messages_encode() {
    let a = id("cb-7");
    let text = |o: Outbound| String::from_utf8(o.encode()).unwrap();
    assert_eq!(
        text(Outbound::Ok {
            id: &a,
            state: None
        }),
        "ACK: id=cb-7;result=ok\n"
    );
    assert_eq!(
        text(Outbound::Ok {
            id: &a,
            state: Some(State::Calling2)
        }),
        "ACK: id=cb-7;result=ok;state=calling2\n"
    );
    assert_eq!(
        text(Outbound::Error {
            id: Some(&a),
            reason: "over_rate"
        }),
        "ACK: id=cb-7;result=error;reason=over_rate\n"
    );
    assert_eq!(
        text(Outbound::Error {
            id: None,
            reason: "bad_id"
        }),
        "ACK: result=error;reason=bad_id\n"
    );
    assert_eq!(
        text(Outbound::Response {
            id: &a,
            outcome: Outcome::User2Failed,
            duration_s: 0,
            call_tag: "callee_reject",
            cause: 17
        }),
        "RESPONSE: id=cb-7;result=user2_failed;duration=0;call_tag=callee_reject;cause=17\n"
    );
    assert_eq!(
        text(Outbound::Response {
            id: &a,
            outcome: Outcome::Connected,
            duration_s: 12,
            call_tag: "caller bye;x=1",
            cause: 16
        }),
        "RESPONSE: id=cb-7;result=connected;duration=12;call_tag=unknown;cause=16\n"
    );
}

#[test]
fn the_longest_response_fits_a_datagram() {
    let a = id(&"~".repeat(MAX_ID));
    let r = Outbound::Response {
        id: &a,
        outcome: Outcome::User1Failed,
        duration_s: u64::MAX,
        call_tag: &"a".repeat(40),
        cause: u16::MAX,
    };
    assert!(r.encode().len() <= MAX_DATAGRAM);
}

#[test]
fn our_own_messages_are_never_taken_for_requests() {
    // A gateway that hears its own ACK (a loop through a misconfigured AS address) must
    // not answer it, or two gateways would ping-pong forever.
    let a = id("loop");
    for o in [
        Outbound::Ok {
            id: &a,
            state: Some(State::Ended),
        },
        Outbound::Error {
            id: Some(&a),
            reason: "bad_syntax",
        },
    ] {
        let r = parse(&o.encode()).unwrap_err();
        assert_eq!(r.verb, Some(Verb::Ack));
    }
}
