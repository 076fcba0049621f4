//! transport room.
