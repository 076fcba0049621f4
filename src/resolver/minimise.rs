//! QNAME minimisation (RFC 9156): how much of the name each zone's servers are told, and what
//! a reply to a minimised question says about zone cuts.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::classify::Reply;
use super::machine::Settings;
use super::Question;

/// QNAME minimisation mode (RFC 9156 §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MinimiseMode {
    /// Minimise, and send the full name to a zone whose servers answer a minimised query
    /// wrongly (NXDOMAIN for an empty non-terminal, FORMERR, REFUSED, SERVFAIL, NOTIMP).
    #[default]
    Relaxed,
    /// Minimise and believe the answers: NXDOMAIN for a minimised name is NXDOMAIN for every
    /// name below it (RFC 8020), errors make the server lame.
    Strict,
    /// Always send the full name.
    Off,
}

/// RFC 9156 §2.3: at most this many minimised queries per name (a name with 40 labels must
/// not cost 40 queries) ...
pub const MAX_MINIMISE_COUNT: usize = 10;
/// ... of which the first this many add one label each; later ones add several.
pub const MINIMISE_ONE_LAB: usize = 4;

/// Where QNAME minimisation stands for one frame (RFC 9156 §3 algorithm).
#[derive(Clone, Debug, Default)]
pub(super) struct Minimise {
    /// Labels of the deepest name known to sit in the current cut's zone (no cut above it):
    /// the cut's own labels, or a name a minimised query showed to exist.
    pub(super) known: usize,
    /// Minimised queries sent for this frame's name.
    pub(super) count: usize,
    /// Send the full name from now on: the relaxed fallback after a wrong answer.
    pub(super) off: bool,
}

impl Minimise {
    /// The question to send for `full`: itself, or its minimised form (RFC 9156 §3): the
    /// cut's zone plus one more label of the name (several after [`MINIMISE_ONE_LAB`]
    /// steps, so that at most [`MAX_MINIMISE_COUNT`] are sent), asked with the minimised
    /// QTYPE.
    pub(super) fn question(&self, full: Question, settings: &Settings) -> Question {
        if settings.minimise == MinimiseMode::Off || self.off {
            return full;
        }
        let total = full.name.iter().len();
        let known = self.known;
        if known + 1 >= total {
            return full;
        }
        let left = total - known;
        let step = if self.count < MINIMISE_ONE_LAB {
            1
        } else if self.count >= MAX_MINIMISE_COUNT {
            left
        } else {
            left.div_ceil(MAX_MINIMISE_COUNT - self.count)
        };
        let labels = (known + step).min(total);
        if labels >= total {
            return full;
        }
        let name = full.name.trim_to(labels);
        Question::with_class(name, settings.minimise_qtype, full.qclass)
    }
}

/// What QNAME minimisation makes of a reply to a minimised question (RFC 9156 §3).
pub(super) enum Verdict {
    /// The name exists and no cut lies between: ask the same servers one label deeper.
    Deeper,
    /// Ask the same server the full name (relaxed mode's fallback).
    FullName,
    /// Act on the reply as on any other (a referral, TC, a lame server...).
    Act,
}

pub(super) fn minimised_verdict(
    reply: &Reply,
    msg: &Message,
    zone: &Name,
    mode: MinimiseMode,
) -> Verdict {
    let strict = mode == MinimiseMode::Strict;
    let rcode = msg.metadata.response_code;
    match reply {
        // Data, no data or an alias at the minimised name: it exists and no cut lies between.
        Reply::Answer { .. } | Reply::NoData { .. } | Reply::Cname { .. } => Verdict::Deeper,
        // RFC 9156 §2.3 and its note on RFC 8020: NXDOMAIN for a minimised name (AA or not,
        // SOA or not) may be a broken server's answer for an empty non-terminal; relaxed
        // mode asks the full name, and the server is not lame for it. Strict mode believes it.
        Reply::NxDomain { .. } if strict => Verdict::Act,
        _ if rcode == ResponseCode::NXDomain && !strict => Verdict::FullName,
        // An empty reply, or the zone's own NS set again: no cut here.
        Reply::Provisional { reply, .. } => match **reply {
            Reply::NxDomain { .. } => Verdict::Act,
            _ => Verdict::Deeper,
        },
        Reply::Lame(_) if rcode == ResponseCode::NoError && repeats_own_ns(msg, zone) => {
            Verdict::Deeper
        }
        // Some servers fail on names they do not expect (RFC 9156 §4).
        Reply::Lame(_)
            if !strict
                && matches!(
                    rcode,
                    ResponseCode::FormErr
                        | ResponseCode::Refused
                        | ResponseCode::ServFail
                        | ResponseCode::NotImp
                ) =>
        {
            Verdict::FullName
        }
        _ => Verdict::Act,
    }
}

/// A reply with no answer whose authority section repeats the zone's own NS set.
fn repeats_own_ns(msg: &Message, zone: &Name) -> bool {
    msg.answers.is_empty()
        && msg
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NS && r.name == *zone)
}
