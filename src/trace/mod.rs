//! trace room.
