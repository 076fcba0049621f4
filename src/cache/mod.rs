//! cache room.
