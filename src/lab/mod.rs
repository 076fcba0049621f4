//! lab room.
