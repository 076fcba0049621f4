//! config room.
