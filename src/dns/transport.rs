//! The transport a client's message came in on: shared by the front end (reply size,
//! padding), the query log and the metrics.

/// The transport a message came in on: decides the size limit of its reply (UDP's, or
/// 65535 bytes on the stream transports) and whether it is padded (the encrypted ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    Udp,
    Tcp,
    /// DNS over TLS (RFC 7858).
    Tls,
    /// DNS over HTTPS (RFC 8484).
    Https,
}

impl Proto {
    /// Every transport, in the order the metrics list them.
    pub const ALL: [Proto; 4] = [Proto::Udp, Proto::Tcp, Proto::Tls, Proto::Https];

    /// The name in metrics labels and the query log.
    pub fn name(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Tls => "tls",
            Proto::Https => "https",
        }
    }

    /// Its index in [`Proto::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// DoT or DoH: replies are padded when the query asked for it (RFC 8467).
    pub fn encrypted(self) -> bool {
        matches!(self, Proto::Tls | Proto::Https)
    }
}
