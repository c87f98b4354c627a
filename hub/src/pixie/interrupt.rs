//! "Worth interrupting?": whether the hub may speak first now, and if not, until when it
//! waits. Every answer carries the reason in words, for the log.
//!
//! The rules, in order:
//! 1. Never into a conversation: not while the hub answers in that room, nor within
//!    `conversation_grace_s` of the user speaking there.
//! 2. Quiet hours hold speech below `quiet_hours_min_urgency` until they end.
//! 3. The cooldown spaces speech below `cooldown_min_urgency`: `cooldown_s` after the last.
//! 4. The user's state: while they sound stressed, speech below `stressed_min_urgency` waits.
//! 5. Recency of contact: speech below `contact_min_urgency` waits until the user was heard
//!    within `contact_window_minutes`.

use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::PixieConfig;

/// Quiet hours: a daily window of wall-clock time, possibly wrapping past midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: Time,
    end: Time,
}

impl QuietHours {
    /// Parses "22:30-07:00"; `None` for an empty string (no quiet hours).
    pub fn parse(text: &str) -> Result<Option<QuietHours>, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let bad = || format!("{text:?} is not \"HH:MM-HH:MM\"");
        let (a, b) = text.split_once('-').ok_or_else(bad)?;
        let time = |s: &str| -> Result<Time, String> {
            let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
            let (h, m) = (
                h.parse::<i8>().map_err(|_| bad())?,
                m.parse::<i8>().map_err(|_| bad())?,
            );
            Time::new(h, m, 0, 0).map_err(|_| bad())
        };
        let (start, end) = (time(a)?, time(b)?);
        if start == end {
            return Err(format!("{text:?} is empty: start and end are the same"));
        }
        Ok(Some(QuietHours { start, end }))
    }

    /// When the quiet hours around `now_ms` end, or `None` when it is not quiet now.
    pub fn until(&self, now_ms: u64, tz: &TimeZone) -> Option<u64> {
        let now = Timestamp::from_millisecond(now_ms as i64)
            .ok()?
            .to_zoned(tz.clone());
        let t = now.time();
        let quiet = if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        };
        if !quiet {
            return None;
        }
        let mut date = now.date();
        if t >= self.end {
            date = date.tomorrow().ok()?;
        }
        let end = date.to_datetime(self.end).to_zoned(tz.clone()).ok()?;
        Some(end.timestamp().as_millisecond() as u64)
    }
}

/// What the decision looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Situation {
    /// Now, in ms since the epoch.
    pub now_ms: u64,
    /// When the target room is free of conversation, if it is not now.
    pub busy_until_ms: Option<u64>,
    /// When the quiet hours end, if it is quiet now.
    pub quiet_until_ms: Option<u64>,
    /// When the hub last spoke first, anywhere.
    pub last_spoke_ms: Option<u64>,
    /// Whether the user sounded stressed in their last turn (within the last half hour).
    pub user_stressed: bool,
    /// When the user was last heard, anywhere.
    pub last_heard_ms: Option<u64>,
}

/// Speak now, or wait.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Speak now.
    Speak {
        /// Why, for the log.
        why: String,
    },
    /// Not before `until_ms`.
    Wait {
        /// The earliest time to look again.
        until_ms: u64,
        /// Why, for the log.
        why: String,
    },
}

/// Decides whether speech of `urgency` may start now.
pub fn decide(urgency: f32, s: &Situation, c: &PixieConfig) -> Decision {
    if let Some(until_ms) = s.busy_until_ms.filter(|u| *u > s.now_ms) {
        return Decision::Wait {
            until_ms,
            why: "a conversation is going on in that room".into(),
        };
    }
    if let Some(until_ms) = s.quiet_until_ms {
        if urgency < c.quiet_hours_min_urgency {
            return Decision::Wait {
                until_ms,
                why: format!(
                    "quiet hours, and urgency {urgency:.2} is below {:.2}",
                    c.quiet_hours_min_urgency
                ),
            };
        }
    }
    if let Some(last) = s.last_spoke_ms {
        let free_at = last + c.cooldown_s * 1000;
        if free_at > s.now_ms && urgency < c.cooldown_min_urgency {
            return Decision::Wait {
                until_ms: free_at,
                why: format!(
                    "cooldown: spoke {} s ago, urgency {urgency:.2} is below {:.2}",
                    (s.now_ms - last) / 1000,
                    c.cooldown_min_urgency
                ),
            };
        }
    }
    if s.user_stressed && urgency < c.stressed_min_urgency {
        return Decision::Wait {
            until_ms: s.now_ms + 600_000,
            why: format!(
                "the user sounds stressed, and urgency {urgency:.2} is below {:.2}",
                c.stressed_min_urgency
            ),
        };
    }
    let window_ms = c.contact_window_minutes * 60_000;
    let out_of_contact = s
        .last_heard_ms
        .is_none_or(|heard| s.now_ms.saturating_sub(heard) > window_ms);
    if out_of_contact && urgency < c.contact_min_urgency {
        return Decision::Wait {
            until_ms: s.now_ms + 60_000,
            why: format!(
                "the user has not been heard for {} minutes, and urgency {urgency:.2} is below {:.2}",
                c.contact_window_minutes, c.contact_min_urgency
            ),
        };
    }
    let why = match (s.quiet_until_ms, s.last_spoke_ms) {
        (Some(_), _) => format!("urgent enough for quiet hours ({urgency:.2})"),
        _ => format!("free to speak (urgency {urgency:.2})"),
    };
    Decision::Speak { why }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(local: &str) -> u64 {
        let dt: jiff::civil::DateTime = local.parse().unwrap();
        dt.to_zoned(TimeZone::get("Europe/Berlin").unwrap())
            .unwrap()
            .timestamp()
            .as_millisecond() as u64
    }

    #[test]
    fn quiet_hours_wrap_past_midnight() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        let q = QuietHours::parse("22:30-07:00").unwrap().unwrap();
        assert_eq!(q.until(at("2026-11-25T21:00"), &tz), None);
        assert_eq!(
            q.until(at("2026-11-25T23:00"), &tz),
            Some(at("2026-11-26T07:00"))
        );
        assert_eq!(
            q.until(at("2026-11-26T03:00"), &tz),
            Some(at("2026-11-26T07:00"))
        );
        assert_eq!(q.until(at("2026-11-26T07:00"), &tz), None);
        let day = QuietHours::parse("13:00-15:00").unwrap().unwrap();
        assert_eq!(
            day.until(at("2026-11-25T14:00"), &tz),
            Some(at("2026-11-25T15:00"))
        );
        assert_eq!(QuietHours::parse("").unwrap(), None);
        for bad in ["late", "22-7", "25:00-07:00", "07:00-07:00"] {
            assert!(QuietHours::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn conversation_quiet_hours_and_cooldown_each_hold_speech() {
        let c = PixieConfig::default();
        let calm = Situation {
            now_ms: 100_000,
            busy_until_ms: None,
            quiet_until_ms: None,
            last_spoke_ms: None,
            user_stressed: false,
            last_heard_ms: Some(90_000),
        };
        assert!(matches!(decide(0.7, &calm, &c), Decision::Speak { .. }));
        assert!(matches!(decide(0.3, &calm, &c), Decision::Speak { .. }));
        let stressed = Situation {
            user_stressed: true,
            ..calm
        };
        assert!(matches!(decide(0.3, &stressed, &c), Decision::Wait { .. }));
        assert!(matches!(decide(0.7, &stressed, &c), Decision::Speak { .. }));
        let away = Situation {
            last_heard_ms: None,
            ..calm
        };
        assert!(matches!(decide(0.3, &away, &c), Decision::Wait { .. }));
        assert!(matches!(decide(0.7, &away, &c), Decision::Speak { .. }));
        let talking = Situation {
            busy_until_ms: Some(105_000),
            ..calm
        };
        assert!(matches!(
            decide(1.0, &talking, &c),
            Decision::Wait {
                until_ms: 105_000,
                ..
            }
        ));
        let quiet = Situation {
            quiet_until_ms: Some(900_000),
            ..calm
        };
        assert!(matches!(
            decide(0.7, &quiet, &c),
            Decision::Wait {
                until_ms: 900_000,
                ..
            }
        ));
        assert!(matches!(decide(1.0, &quiet, &c), Decision::Speak { .. }));
        let just_spoke = Situation {
            last_spoke_ms: Some(90_000),
            ..calm
        };
        assert!(matches!(
            decide(0.7, &just_spoke, &c),
            Decision::Wait {
                until_ms: 150_000,
                ..
            }
        ));
        assert!(matches!(
            decide(1.0, &just_spoke, &c),
            Decision::Speak { .. }
        ));
    }
}
