//! A profile's `[uri]`, `[prack]` and `[headers]` sections, each validated into the policy
//! the interop layer applies, problems reported at their file:line:col.

use std::path::Path;

use toml::Spanned;

use crate::config::ConfigError;
use crate::config::error::one_of;
use crate::config::file;
use crate::interop::headers::HeaderPolicy;
use crate::interop::prack::{On405, PrackMode, PrackPolicy};
use crate::interop::uri::{NumberFormat, UriPolicy, UriScheme, uri_params_refusal};
use crate::sip::Hdr;

/// `request_uri_params` without its `user=phone` (any case), and whether it had one.
fn without_user_phone(params: &str) -> (String, bool) {
    let is_user_phone = |p: &str| {
        p.split_once('=').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("user") && v.trim().eq_ignore_ascii_case("phone")
        })
    };
    if !params.split(';').any(is_user_phone) {
        return (params.to_string(), false);
    }
    let kept: Vec<&str> = params.split(';').filter(|p| !is_user_phone(p)).collect();
    (kept.join(";"), true)
}

pub(super) fn uri_policy(
    u: &file::UriSection,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
) -> UriPolicy {
    let at = |s: &Spanned<String>, msg: String| ConfigError::at(path, text, s.span().start, msg);
    let mut p = UriPolicy {
        user_phone: u.user_phone,
        number_params: u.number_params.unwrap_or(true),
        ..UriPolicy::default()
    };
    if let Some(s) = &u.scheme {
        p.scheme = match s.get_ref().as_str() {
            "sip" => UriScheme::Sip,
            "tel" => UriScheme::Tel,
            "keep" => UriScheme::Keep,
            other => {
                errs.push(at(
                    s,
                    format!("[uri] scheme {other:?} must be \"sip\", \"tel\" or \"keep\""),
                ));
                UriScheme::Sip
            }
        };
    }
    if let Some(s) = &u.request_uri_params {
        // `user=phone` here is `user_phone = true`: written as a parameter it would follow
        // the host while the number's own parameters stayed out of the user part, which is
        // where `;user=phone` has them read.
        let (params, user_phone) = without_user_phone(s.get_ref());
        p.user_phone |= user_phone;
        match uri_params_refusal(&params, p.user_phone) {
            None => p.request_uri_params = params.trim().trim_start_matches(';').to_string(),
            Some(why) => errs.push(at(
                s,
                format!(
                    "[uri] request_uri_params {:?}: {why}; it must be name=value pairs separated by ';'",
                    s.get_ref()
                ),
            )),
        }
    }
    if let Some(t) = &u.tgrp_in_user {
        p.tgrp_in_user = *t.get_ref();
        if p.tgrp_in_user && !p.user_phone {
            errs.push(ConfigError::at(
                path,
                text,
                t.span().start,
                "[uri] tgrp_in_user needs user_phone = true: a SIP URI's user part is a number, \
                 with its parameters, only with ;user=phone (RFC 4904 §5)",
            ));
        }
    }
    if let Some(s) = &u.country_code {
        let cc = s.get_ref().trim_start_matches('+');
        if (1..=3).contains(&cc.len()) && cc.bytes().all(|b| b.is_ascii_digit()) {
            p.country_code = Some(cc.to_string());
        } else {
            errs.push(at(
                s,
                format!("[uri] country_code {:?} must be 1 to 3 digits", s.get_ref()),
            ));
        }
    }
    // What this peer's callers dial abroad and before a national number: at most 4 digits,
    // the national one possibly none (Italy). The international one is tried first, so it
    // may begin with the national one (`00` and `0`), not the other way round (the
    // national one would never be reached).
    let mut prefix = |s: &Option<Spanned<String>>, key: &str, empty_ok: bool, into: &mut String| {
        let Some(s) = s else {
            return;
        };
        let v = s.get_ref().trim();
        if (v.len() <= 4 && (empty_ok || !v.is_empty())) && v.bytes().all(|b| b.is_ascii_digit()) {
            *into = v.to_string();
        } else {
            let size = if empty_ok { "0 to 4" } else { "1 to 4" };
            errs.push(at(
                s,
                format!("[uri] {key} {:?} must be {size} digits", s.get_ref()),
            ));
        }
    };
    prefix(
        &u.international_prefix,
        "international_prefix",
        false,
        &mut p.international_prefix,
    );
    prefix(
        &u.national_prefix,
        "national_prefix",
        true,
        &mut p.national_prefix,
    );
    if let Some(s) = &u.short_code_digits {
        match u8::try_from(*s.get_ref()) {
            Ok(n @ 3..=8) => p.short_code_digits = n,
            _ => errs.push(ConfigError::at(
                path,
                text,
                s.span().start,
                format!(
                    "[uri] short_code_digits {} must be 3 to 8 (the longest service number \
                     this peer's callers dial: 4 for 112, 911 and 1471; 5 for China's 10086)",
                    s.get_ref()
                ),
            )),
        }
    }
    if !p.national_prefix.is_empty()
        && p.national_prefix.starts_with(&p.international_prefix)
        && let Some(s) = u
            .national_prefix
            .as_ref()
            .or(u.international_prefix.as_ref())
    {
        errs.push(at(
            s,
            format!(
                "[uri] international_prefix {:?} and national_prefix {:?} overlap: a number \
                 would read as both",
                p.international_prefix, p.national_prefix
            ),
        ));
    }
    if let Some(s) = &u.number {
        p.number = match s.get_ref().as_str() {
            "keep" => NumberFormat::Keep,
            "e164" => {
                if p.country_code.is_none() && u.country_code.is_none() {
                    errs.push(at(s, "[uri] number = \"e164\" needs country_code".into()));
                }
                NumberFormat::E164
            }
            other => {
                errs.push(at(
                    s,
                    format!("[uri] number {other:?} must be \"e164\" or \"keep\""),
                ));
                NumberFormat::Keep
            }
        };
    }
    p
}

pub(super) fn prack_policy(
    pr: &file::PrackSection,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
) -> PrackPolicy {
    let mut p = PrackPolicy::default();
    let modes = [
        ("supported", PrackMode::Supported),
        ("disabled", PrackMode::Disabled),
        ("required", PrackMode::Required),
    ];
    if let Some(m) = pr
        .mode
        .as_ref()
        .and_then(|s| one_of(s, "[prack] mode", &modes, (path, text), errs))
    {
        p.mode = m;
    }
    let on_405 = [("continue", On405::Continue), ("fail", On405::Fail)];
    if let Some(o) = pr
        .on_405
        .as_ref()
        .and_then(|s| one_of(s, "[prack] on_405", &on_405, (path, text), errs))
    {
        p.on_405 = o;
    }
    p
}

pub(super) fn header_policy(
    h: &file::HeadersSection,
    role: crate::config::Role,
    path: &Path,
    text: &str,
    errs: &mut Vec<ConfigError>,
) -> HeaderPolicy {
    let mut names = |list: &[Spanned<String>], key: &str, pass: bool| -> Vec<Hdr> {
        let mut out = Vec::new();
        for n in list {
            let at = |msg: String| ConfigError::at(path, text, n.span().start, msg);
            match Hdr::from_config(n.get_ref().trim()) {
                None => errs.push(at(format!(
                    "[headers] {key}: {:?} is not a header name",
                    n.get_ref()
                ))),
                Some(hdr) if pass => match crate::interop::headers::pass_refusal(&hdr) {
                    Some(why) => errs.push(at(format!(
                        "[headers] pass: {} cannot be passed: {why}",
                        n.get_ref()
                    ))),
                    None => out.push(hdr),
                },
                Some(hdr) => match crate::interop::headers::strip_refusal(&hdr) {
                    Some(why) => errs.push(at(format!(
                        "[headers] strip: {} cannot be stripped: {why}",
                        n.get_ref()
                    ))),
                    None => out.push(hdr),
                },
            }
        }
        out
    };
    let pass = names(&h.pass, "pass", true);
    let strip = names(&h.strip, "strip", false);
    let user_agent = h.user_agent.as_ref().and_then(|ua| {
        let v = ua.get_ref().trim();
        // "" is none (the design's CONFIG.md); otherwise one header value: printable, no
        // line breaks.
        if v.is_empty() {
            return None;
        }
        if v.len() > 128 || v.chars().any(|c| c.is_control()) {
            errs.push(ConfigError::at(
                path,
                text,
                ua.span().start,
                "[headers] user_agent must be 1..=128 printable characters",
            ));
            None
        } else {
            Some(v.to_string())
        }
    });
    let trust_identity = h
        .trust_identity
        .unwrap_or(role == crate::config::Role::Trunk);
    HeaderPolicy {
        pass,
        strip,
        user_agent,
        trust_identity,
        trust_asserted: h.trust_asserted.unwrap_or(trust_identity),
    }
}
