//! Pixie: what the hub does between conversations. Reminders and timers, the
//! "worth interrupting?" decision, and the scheduler that speaks first in the right room.

pub mod phrase;
pub mod reminders;
