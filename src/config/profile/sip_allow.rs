//! A profile's `[sip] allow`: the methods its peer takes within a call, each one the
//! gateway knows by name (a misspelt one would silently turn that method off for the peer).

use std::path::Path;

use toml::Spanned;

use crate::config::ConfigError;

/// The methods `list` names, upper case, each once; problems reported at their place.
pub(super) fn allowed_methods(
    list: Option<&[Spanned<String>]>,
    path: &Path,
    text: &str,
    (errs, warns): (&mut Vec<ConfigError>, &mut Vec<ConfigError>),
) -> Option<Vec<String>> {
    let list = list?;
    let mut out: Vec<String> = Vec::new();
    for m in list {
        let method = m.get_ref().trim().to_ascii_uppercase();
        // RFC 3261 §25.1: a method is a token; ours are letters.
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            errs.push(ConfigError::at(
                path,
                text,
                m.span().start,
                format!("[sip] allow: {:?} is not a SIP method", m.get_ref()),
            ));
        } else if !crate::sip::Method::is_known(&method) {
            // Left out silently, a misspelt UPDATE would turn UPDATE off for the peer,
            // a misspelt OPTIONS its `probe_s`.
            errs.push(ConfigError::at(
                path,
                text,
                m.span().start,
                format!(
                    "[sip] allow: {:?} is no method the gateway knows (INVITE, ACK, BYE, \
                     CANCEL, OPTIONS, INFO, PRACK, UPDATE, REGISTER, SUBSCRIBE, NOTIFY, \
                     REFER, MESSAGE, PUBLISH)",
                    m.get_ref()
                ),
            ));
        } else if !out.contains(&method) {
            out.push(method);
        }
    }
    if list.is_empty() {
        warns.push(ConfigError::file(
            path,
            "warning: [sip] allow = []: the peer is taken to accept no method within a call \
             (no UPDATE, INFO or OPTIONS probe); leave `allow` out to go by its own Allow",
        ));
    }
    Some(out)
}
