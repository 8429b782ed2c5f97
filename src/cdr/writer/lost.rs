//! Where a record that cannot reach the CDR file goes: standard error (the log), whole, one
//! line each, so it can still be billed. Written directly, as at exit, not through the log's
//! queue, which drops lines when full (a peer's refusals can fill it).

use std::io::Write;

/// Standard error; in the library's own tests a buffer they read.
#[derive(Debug)]
pub(super) struct LostLines {
    #[cfg(test)]
    buffer: std::sync::Mutex<Vec<u8>>,
}

impl LostLines {
    pub(super) fn new() -> LostLines {
        LostLines {
            #[cfg(test)]
            buffer: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Each of `lines` (a record's JSON line), after `trunkgate: CDR not written{why}: `.
    pub(super) fn write<'a>(&self, why: &str, lines: impl IntoIterator<Item = &'a str>) {
        #[cfg(test)]
        if let Ok(mut b) = self.buffer.lock() {
            return say(&mut *b, why, lines);
        }
        say(&mut std::io::stderr().lock(), why, lines);
    }

    /// What was written so far.
    #[cfg(test)]
    pub(super) fn written(&self) -> String {
        self.buffer
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

fn say<'a>(to: &mut dyn Write, why: &str, lines: impl IntoIterator<Item = &'a str>) {
    for line in lines {
        let _ = writeln!(to, "trunkgate: CDR not written{why}: {}", line.trim_end());
    }
}
