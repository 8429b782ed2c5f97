//! The relay told of the answer, and whether the call stays recorded.

use super::super::cx::Cx;
use super::super::state::Call;
use super::super::{Output, Side};
use crate::media::MediaAction;

impl Call {
    /// Tell the relay the call was answered: its media clock starts now (the answer may
    /// carry no SDP, and so no new streams to tell it of). The call stays recorded only when
    /// the caller's peer or the callee that answered records (`record`): another peer of
    /// its route (one that failed, one never tried) does not make it so.
    pub(in crate::call) fn media_answered(&mut self, cx: &mut Cx) {
        let records = [Side::A, Side::B]
            .into_iter()
            .any(|s| self.profile(s).is_some_and(|p| p.record));
        if let Some(m) = self.media.as_mut() {
            if !records {
                m.recording = None;
            }
            let record = m.recording.is_some();
            cx.emit(Output::Media(MediaAction::Answered { call: cx.r, record }));
            // Media may be told to flow only now (the answer came in a provisional, and
            // the 2xx has no SDP to tell it with): else the next update, a refresh say,
            // would turn it on, which opens silent legs as a resume does.
            self.emit_relay(cx, None);
        }
    }
}
