//! The resolver room: the iterative state machine (sans-IO) and the driver that runs it.

mod outcome;

pub use outcome::{Failure, Outcome, Question};
