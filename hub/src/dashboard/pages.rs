//! The dashboard's HTML, made on the server: plain functions from values to strings. Every
//! text that came from a person or a store goes through [`esc`]; plots are inline SVG.

use std::fmt::Write;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::{Health, RoomView};
use crate::live::EmotionPoint;
use crate::memory::profile::Profile;
use crate::memory::retrieval::{Hit, Signals};
use crate::memory::{Memory, Tier};
use crate::pixie::reminders::{Kind, Reminder};
use crate::pixie::tasks::{Task, Work};
use crate::pixie::Decided;

/// How many memories the "all memories" table shows, newest first.
const NEWEST: usize = 50;

/// `text` safe inside HTML text and quoted attributes.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `at_ms` as "2026-12-04 09:30" in the household's zone.
pub fn at(at_ms: u64, tz: &TimeZone) -> String {
    Timestamp::from_millisecond(at_ms as i64)
        .map(|t| {
            t.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| "?".to_string())
}

/// A whole page: the title, the navigation (with `active` marked) and `body`.
fn page(title: &str, active: &str, body: &str) -> String {
    let mut nav = String::new();
    for (href, name) in [
        ("/", "Rooms"),
        ("/memories", "Memories"),
        ("/mind", "Mind"),
        ("/reminders", "Reminders"),
        ("/emotion", "Emotion"),
        ("/pixie", "Pixie"),
        ("/health", "Health"),
    ] {
        let class = if name == active { " class=\"on\"" } else { "" };
        let _ = write!(nav, "<a href=\"{href}\"{class}>{name}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · hearth</title><link rel=\"stylesheet\" href=\"/assets/app.css\">\
         <script src=\"/assets/app.js\" defer></script></head>\
         <body data-page=\"{}\"><header><b>hearth</b><nav>{nav}</nav>\
         <form method=\"post\" action=\"/logout\"><button id=\"logout\">Log out</button></form>\
         </header><main>{body}<p id=\"status\" role=\"status\"></p></main></body></html>",
        esc(title),
        esc(&active.to_lowercase()),
    )
}

/// The login form, with `error` when the last try failed.
pub fn login(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", esc(e)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Log in · hearth</title>\
         <link rel=\"stylesheet\" href=\"/assets/app.css\"></head><body><main class=\"login\">\
         <h1>hearth</h1>{error}<form method=\"post\" action=\"/login\">\
         <label>Admin secret <input type=\"password\" name=\"password\" id=\"password\" autofocus></label>\
         <button id=\"login\">Log in</button></form></main></body></html>"
    )
}

/// Rooms: each terminal online or not, when the room last heard the user, its persona, a
/// box to ask or announce; and the live conversation.
pub(super) fn rooms(rooms: &[RoomView], now_ms: u64, tz: &TimeZone) -> String {
    let mut rows = String::new();
    for r in rooms {
        let terminals: Vec<String> = r
            .terminals
            .iter()
            .map(|(t, online)| {
                let (class, word) = if *online {
                    ("on", "online")
                } else {
                    ("off", "offline")
                };
                format!(
                    "<span class=\"terminal {class}\" data-terminal=\"{}\">{} · <i>{word}</i></span>",
                    esc(t),
                    esc(t)
                )
            })
            .collect();
        let heard = r
            .heard_ms
            .map(|ms| {
                format!(
                    "{} ({} ago)",
                    at(ms, tz),
                    crate::pixie::reminders::spoken_duration(now_ms.saturating_sub(ms))
                )
            })
            .unwrap_or_else(|| "not yet".to_string());
        let _ = write!(
            rows,
            "<tr data-room=\"{room}\"><td>{room}</td><td>{}</td><td class=\"heard\">{}</td><td>{}</td>\
             <td><form class=\"act\" method=\"post\" action=\"/rooms/ask\">\
             <input type=\"hidden\" name=\"room\" value=\"{room}\">\
             <input name=\"text\" class=\"say\" placeholder=\"Ask or announce\" aria-label=\"What to say in the {room}\">\
             <button class=\"ask\">Ask</button><button class=\"announce\" formaction=\"/rooms/announce\">Announce</button>\
             </form></td></tr>",
            terminals.join(" "),
            esc(&heard),
            esc(r.persona.as_deref().unwrap_or("Hearth")),
            room = esc(&r.room),
        );
    }
    if rooms.is_empty() {
        rows.push_str(
            "<tr class=\"empty\"><td colspan=\"5\">No terminal has come online yet.</td></tr>",
        );
    }
    let mut earlier = String::new();
    for r in rooms {
        for (said, answered) in &r.recent {
            let _ = write!(
                earlier,
                "<li class=\"heard earlier\"><b>{room} · you: </b><span class=\"text\">{}</span></li>\
                 <li class=\"reply done earlier\"><b>{room} · hearth: </b><span class=\"text\">{}</span></li>",
                esc(said),
                esc(answered),
                room = esc(&r.room),
            );
        }
    }
    page(
        "Rooms",
        "Rooms",
        &format!(
            "<h1>Rooms</h1><table id=\"rooms\"><thead><tr><th>Room</th><th>Terminals</th>\
             <th>Last heard</th><th>Persona</th><th>Say</th></tr></thead><tbody>{rows}</tbody></table>\
             <h2>Conversation</h2><p class=\"hint\">The latest exchanges of each room, then what is said as it happens.</p>\
             <ol id=\"convo\">{earlier}</ol>"
        ),
    )
}

/// A memory's lifecycle state in words: current, superseded, expired, archived, or a
/// question in the question log.
pub(super) fn state(m: &Memory, now_ms: u64, tz: &TimeZone) -> String {
    if m.asked {
        return "asked (question log)".to_string();
    }
    let tier = match m.tier {
        Tier::ShortTerm => "short-term",
        Tier::LongTerm => "long-term",
        Tier::Archived => "archived",
    };
    let mut s = tier.to_string();
    if let Some(by) = m.superseded_by {
        let _ = write!(s, ", superseded by #{by}");
    }
    if m.valid_from_ms != m.created_at_ms {
        let _ = write!(s, ", valid from {}", at(m.valid_from_ms, tz));
    }
    if let Some(until) = m.valid_until_ms {
        let word = if until <= now_ms {
            "was valid"
        } else {
            "valid"
        };
        let _ = write!(s, ", {word} until {}", at(until, tz));
    }
    s
}

/// The signals behind a hit's score, in words.
pub(super) fn signals(s: &Signals) -> String {
    let mut out = format!(
        "words {:.2} · meaning {:.2} · letters {:.2} · passage {:.2} · recency {:.2} · salience {:.2} · strength {:.2}",
        s.bm25, s.cosine, s.grams, s.passage, s.recency, s.importance, s.strength
    );
    for (on, what) in [
        (s.speaker, "names the speaker"),
        (s.period, "names its period"),
        (s.tells_when, "tells when"),
    ] {
        if on {
            let _ = write!(out, " · {what}");
        }
    }
    if s.neighbour > 0.0 {
        let _ = write!(out, " · neighbours {:.2}", s.neighbour);
    }
    out
}

/// The form that corrects memory `m`; none for a superseded one (correct its successor).
fn correct_form(m: &Memory) -> String {
    if m.superseded_by.is_some() {
        return String::new();
    }
    let id = m.id;
    format!(
        "<form class=\"act\" data-reload method=\"post\" action=\"/memories/{id}/correct\">\
         <input name=\"text\" class=\"correct-text\" placeholder=\"what it should say\" aria-label=\"Corrected text of #{id}\">\
         <button class=\"correct\">Correct</button></form>"
    )
}

fn forget_button(id: u64) -> String {
    format!(
        "<form class=\"act\" data-reload method=\"post\" action=\"/memories/{id}/forget\">\
         <button class=\"forget\" data-id=\"{id}\">Forget</button></form>"
    )
}

/// Memories: search with each hit's signals, the newest memories with their state, and a
/// timeline of memories made and recalled.
pub fn memories(query: &str, hits: &[Hit], all: &[Memory], now_ms: u64, tz: &TimeZone) -> String {
    let mut body = format!(
        "<h1>Memories</h1><p>{} memories stored.</p>\
         <form method=\"get\" action=\"/memories\" id=\"search\"><input name=\"q\" id=\"q\" value=\"{}\" \
         placeholder=\"Search as a turn recalls\" aria-label=\"Search memories\"><button>Search</button></form>",
        all.len(),
        esc(query)
    );
    if !query.is_empty() {
        body.push_str(
            "<h2>Found</h2><table id=\"hits\"><thead><tr><th>#</th><th>Memory</th><th>Room</th><th>State</th>\
             <th>Score</th><th>Signals</th><th></th></tr></thead><tbody>",
        );
        for h in hits {
            let m = &h.memory;
            let _ = write!(
                body,
                "<tr class=\"hit\" data-id=\"{}\"><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td>\
                 <td>{:.3}</td><td class=\"signals\">{}</td><td>{}{}</td></tr>",
                m.id,
                m.id,
                esc(&m.text),
                esc(&m.room),
                esc(&state(m, now_ms, tz)),
                h.score,
                esc(&signals(&h.signals)),
                forget_button(m.id),
                correct_form(m),
            );
        }
        if hits.is_empty() {
            body.push_str("<tr class=\"empty\"><td colspan=\"7\">Nothing found.</td></tr>");
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("<h2>Over time</h2>");
    body.push_str(&timeline(all, now_ms));
    body.push_str(
        "<h2>Newest</h2><table id=\"newest\"><thead><tr><th>#</th><th>Memory</th><th>Room</th>\
         <th>Made</th><th>State</th><th>Recalled</th><th></th></tr></thead><tbody>",
    );
    let mut newest: Vec<&Memory> = all.iter().collect();
    newest.sort_by_key(|m| std::cmp::Reverse(m.created_at_ms));
    for m in newest.into_iter().take(NEWEST) {
        let _ = write!(
            body,
            "<tr class=\"memory\" data-id=\"{}\"><td>{}</td><td class=\"text\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td></tr>",
            m.id,
            m.id,
            esc(&m.text),
            esc(&m.room),
            at(m.created_at_ms, tz),
            esc(&state(m, now_ms, tz)),
            m.recalls,
            format_args!("{}{}", forget_button(m.id), correct_form(m)),
        );
    }
    body.push_str("</tbody></table>");
    page("Memories", "Memories", &body)
}

/// Bars per day over the last 30 days: memories made, and memories last recalled that day.
fn timeline(all: &[Memory], now_ms: u64) -> String {
    const DAYS: usize = 30;
    const DAY_MS: u64 = 86_400_000;
    let mut made = [0u32; DAYS];
    let mut recalled = [0u32; DAYS];
    let day = |ms: u64| {
        let ago = now_ms.saturating_sub(ms) / DAY_MS;
        (ago < DAYS as u64).then(|| DAYS - 1 - ago as usize)
    };
    for m in all {
        if let Some(d) = day(m.created_at_ms) {
            made[d] += 1;
        }
        if m.recalls > 0 {
            if let Some(d) = day(m.last_access_ms) {
                recalled[d] += 1;
            }
        }
    }
    let top = made
        .iter()
        .chain(recalled.iter())
        .copied()
        .max()
        .unwrap_or(0)
        .max(1) as f32;
    let (w, h) = (600.0, 120.0);
    let step = w / DAYS as f32;
    let mut svg = format!(
        "<svg id=\"timeline\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"Memories made and recalled per day, last 30 days\">",
        h + 16.0
    );
    for d in 0..DAYS {
        let x = d as f32 * step;
        for (series, n, dx) in [
            ("made", made[d], 1.0),
            ("recalled", recalled[d], step / 2.0),
        ] {
            if n == 0 {
                continue;
            }
            let bh = h * n as f32 / top;
            let _ = write!(
                svg,
                "<rect class=\"{series}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\"><title>{n} {series}, {} days ago</title></rect>",
                x + dx,
                h - bh,
                step / 2.0 - 1.0,
                DAYS - 1 - d
            );
        }
    }
    let _ = write!(
        svg,
        "<text x=\"0\" y=\"{}\">30 days ago</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">today</text></svg>\
         <p class=\"legend\"><span class=\"made\">■</span> made <span class=\"recalled\">■</span> last recalled</p>",
        h + 14.0,
        w,
        h + 14.0
    );
    svg
}

/// The mind: the memory graph as a tree to open and close (from its indented rendering, two
/// spaces a level), and the profile's five dimensions with what each rests on.
pub fn mind(tree: &str, profile: Option<&Profile>, tz: &TimeZone) -> String {
    let mut body = String::from("<h1>Mind</h1><h2>Memory graph</h2><div id=\"graph\">");
    if tree.trim().is_empty() {
        body.push_str("<p class=\"empty\">The graph is empty.</p>");
    }
    // Each node opens a <details> that its deeper lines nest in; a stack of the open
    // nodes' indents closes them however the indentation steps.
    let lines: Vec<(usize, &str)> = tree
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| (l.len() - l.trim_start().len(), l.trim()))
        .collect();
    let mut open: Vec<usize> = Vec::new();
    for (i, (indent, text)) in lines.iter().enumerate() {
        while open.last().is_some_and(|o| o >= indent) {
            body.push_str("</details>");
            open.pop();
        }
        let has_children = lines.get(i + 1).is_some_and(|(next, _)| next > indent);
        if has_children {
            let _ = write!(
                body,
                "<details open class=\"node\"><summary>{}</summary>",
                esc(text)
            );
            open.push(*indent);
        } else {
            let _ = write!(body, "<div class=\"node leaf\">{}</div>", esc(text));
        }
    }
    body.push_str(&"</details>".repeat(open.len()));
    body.push_str("</div><h2>Profile</h2>");
    match profile {
        None => body
            .push_str("<p class=\"empty\">No profile yet: the first lifecycle sweep makes it.</p>"),
        Some(p) => {
            let _ = write!(
                body,
                "<p>From {} memories, {}.</p><table id=\"profile\"><thead><tr><th>Dimension</th><th>Lean</th>\
                 <th>Rests on</th><th>In words</th></tr></thead><tbody>",
                p.memories,
                at(p.updated_at_ms, tz)
            );
            for d in &p.dimensions {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{:+.2}</td><td>{} memories</td><td>{}</td></tr>",
                    esc(&d.name),
                    d.score,
                    d.evidence,
                    esc(&d.summary)
                );
            }
            body.push_str("</tbody></table>");
        }
    }
    page("Mind", "Mind", &body)
}

/// Reminders and timers: the pending ones with their next time, cancel, and a form to set
/// one in words.
pub fn reminders(pending: &[Reminder], rooms: &[String], now_ms: u64, tz: &TimeZone) -> String {
    let mut body = String::from(
        "<h1>Reminders and timers</h1><table id=\"reminders\"><thead><tr><th>#</th><th>What</th>\
         <th>Next</th><th>Repeats</th><th>Rooms</th><th></th></tr></thead><tbody>",
    );
    for r in pending {
        let kind = match r.kind {
            Kind::Timer => "timer: ",
            Kind::Reminder => "",
        };
        let _ = write!(
            body,
            "<tr class=\"reminder\" data-id=\"{}\"><td>{}</td><td class=\"what\">{kind}{}</td><td>{} ({})</td>\
             <td>{}</td><td>{}</td><td><form class=\"act\" data-reload method=\"post\" action=\"/reminders/{}/cancel\">\
             <button class=\"cancel\">Cancel</button></form></td></tr>",
            r.id,
            r.id,
            esc(&r.what),
            at(r.due_ms, tz),
            esc(&crate::pixie::spoken::describe(r.due_ms, now_ms, tz)),
            esc(&r.repeat.map(|p| p.describe()).unwrap_or_default()),
            esc(&if r.rooms.is_empty() {
                "where you are".to_string()
            } else {
                r.rooms.join(", ")
            }),
            r.id,
        );
    }
    if pending.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"6\">Nothing pending.</td></tr>");
    }
    let mut options = String::from("<option value=\"\">where I am</option>");
    for room in rooms {
        let _ = write!(options, "<option>{}</option>", esc(room));
    }
    let _ = write!(
        body,
        "</tbody></table><h2>Set one</h2><form class=\"act\" data-reload method=\"post\" action=\"/reminders\" id=\"set\">\
         <input name=\"what\" id=\"what\" placeholder=\"water the plants\" aria-label=\"What\">\
         <input name=\"when\" id=\"when\" placeholder=\"tomorrow at 8\" aria-label=\"When\">\
         <select name=\"room\" aria-label=\"Room\">{options}</select>\
         <label><input type=\"checkbox\" name=\"timer\" value=\"1\"> timer</label>\
         <button id=\"set-reminder\">Set</button></form>"
    );
    page("Reminders", "Reminders", &body)
}

/// Emotion: the plot, refreshed live by the script.
pub fn emotion(points: &[EmotionPoint], tz: &TimeZone) -> String {
    page(
        "Emotion",
        "Emotion",
        &format!(
            "<h1>Emotion</h1><p class=\"hint\">Each turn's valence, arousal and engagement (dots, by room) and \
             Hearth's own mood (line). Hover a dot for the signals behind it.</p>\
             <div id=\"plot\">{}</div>",
            emotion_plot(points, tz)
        ),
    )
}

/// The emotion plot alone (the script swaps it in when a turn is scored).
pub fn emotion_plot(points: &[EmotionPoint], tz: &TimeZone) -> String {
    if points.is_empty() {
        return "<p class=\"empty\">No turn scored since the hub started.</p>".to_string();
    }
    let (w, h, pad) = (640.0f32, 300.0f32, 30.0f32);
    // Turns are scored in the order they finish feeling, not always that of their times.
    let mut points = points.to_vec();
    points.sort_by_key(|p| p.at_ms);
    let points = &points[..];
    let first = points.first().map_or(0, |p| p.at_ms);
    let last = points.last().map_or(0, |p| p.at_ms).max(first + 1);
    let x =
        |ms: u64| pad + (w - 2.0 * pad) * ms.saturating_sub(first) as f32 / (last - first) as f32;
    let y = |v: f32| h / 2.0 - v.clamp(-1.0, 1.0) * (h / 2.0 - pad);
    let mut rooms: Vec<&str> = points.iter().map(|p| p.room.as_str()).collect();
    rooms.sort();
    rooms.dedup();
    let mut svg = format!(
        "<svg id=\"emotion-plot\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Emotion over time\">\
         <line class=\"axis\" x1=\"{pad}\" x2=\"{}\" y1=\"{}\" y2=\"{}\"/>\
         <text x=\"2\" y=\"{}\">+1</text><text x=\"2\" y=\"{}\">0</text><text x=\"2\" y=\"{}\">-1</text>",
        w - pad,
        h / 2.0,
        h / 2.0,
        pad + 4.0,
        h / 2.0 + 4.0,
        h - pad + 4.0
    );
    let mood: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.at_ms), y(p.mood_valence)))
        .collect();
    let _ = write!(
        svg,
        "<polyline class=\"mood\" points=\"{}\"><title>Hearth's mood (valence)</title></polyline>",
        mood.join(" ")
    );
    for p in points {
        let hue = rooms.iter().position(|r| *r == p.room).unwrap_or(0) * 137 % 360;
        let title = format!(
            "{} in the {}: {} ({}); Hearth's mood {:+.2} / {:+.2}",
            at(p.at_ms, tz),
            p.room,
            p.label,
            p.why,
            p.mood_valence,
            p.mood_arousal
        );
        for (series, v, r) in [
            ("valence", p.valence, 5.0),
            ("arousal", p.arousal, 3.5),
            ("engagement", p.engagement, 2.5),
        ] {
            let _ = write!(
                svg,
                "<circle class=\"pt {series}\" data-room=\"{}\" data-at=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"{r}\" \
                 style=\"fill:hsl({hue},60%,45%)\"><title>{series} {v:+.2} · {}</title></circle>",
                esc(&p.room),
                p.at_ms,
                x(p.at_ms),
                y(v),
                esc(&title),
            );
        }
    }
    svg.push_str("</svg><p class=\"legend\">large dot: valence · middle: arousal · small: engagement · line: Hearth's mood</p>");
    svg
}

/// Pixie: its queue (tasks and the reminders waiting), and each decision to speak first or
/// to hold back, with the reason.
pub fn pixie(
    tasks: &[Task],
    reminders: &[Reminder],
    decisions: &[Decided],
    now_ms: u64,
    tz: &TimeZone,
) -> String {
    let mut body = String::from(
        "<h1>Pixie</h1><h2>Queue</h2><table id=\"queue\"><thead><tr><th>Work</th><th>Due</th></tr></thead><tbody>",
    );
    let mut rows: Vec<(u64, String)> = tasks
        .iter()
        .map(|t| {
            let what = match &t.work {
                Work::Sweep => "memory sweep".to_string(),
                Work::Reflect { room } => format!("reflect on the conversation in the {room}"),
                Work::FollowUp { room, question, .. } => {
                    format!("ask in the {room}: {question}")
                }
            };
            (t.due_ms, what)
        })
        .chain(reminders.iter().map(|r| {
            let what = match r.kind {
                Kind::Timer => format!("timer: {}", r.what),
                Kind::Reminder => format!("remind: {}", r.what),
            };
            (r.due_ms, what)
        }))
        .collect();
    rows.sort();
    for (due, what) in &rows {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{} ({})</td></tr>",
            esc(what),
            at(*due, tz),
            esc(&crate::pixie::spoken::describe(*due, now_ms, tz))
        );
    }
    if rows.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"2\">Nothing queued.</td></tr>");
    }
    body.push_str(
        "</tbody></table><h2>Decisions</h2><table id=\"decisions\"><thead><tr><th>When</th><th>What</th>\
         <th>Decided</th><th>Why</th></tr></thead><tbody>",
    );
    for d in decisions {
        let _ = write!(
            body,
            "<tr class=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            if d.spoke { "spoke" } else { "held" },
            at(d.at_ms, tz),
            esc(&d.what),
            if d.spoke { "spoke" } else { "held back" },
            esc(&d.why)
        );
    }
    if decisions.is_empty() {
        body.push_str(
            "<tr class=\"empty\"><td colspan=\"4\">No decision since the hub started.</td></tr>",
        );
    }
    body.push_str("</tbody></table>");
    page("Pixie", "Pixie", &body)
}

/// Health: the model, speed, queue, jobs by role, terminals and disk.
pub(super) fn health(h: &Health) -> String {
    page(
        "Health",
        "Health",
        &format!(
            "<h1>Health</h1><div id=\"health\">{}</div>",
            health_table(h)
        ),
    )
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// The health table alone (the script refreshes it).
pub(super) fn health_table(h: &Health) -> String {
    let jobs: Vec<String> = h.jobs.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let disk: Vec<String> = h
        .disk
        .iter()
        .map(|(store, n)| format!("{store} {}", bytes(*n)))
        .collect();
    let rows = [
        ("Model", h.model.clone()),
        (
            "Runs on",
            format!("{} (layers on a GPU: {})", h.backend, h.gpu_layers),
        ),
        ("Context", format!("{} tokens", h.context_tokens)),
        (
            "Speed",
            if h.tokens_per_s > 0.0 {
                format!("{:.1} tokens/s (last answer)", h.tokens_per_s)
            } else {
                "no answer yet".to_string()
            },
        ),
        ("Answer tokens", h.answer_tokens.to_string()),
        ("Queue", format!("{} waiting of {}", h.queue.0, h.queue.1)),
        (
            "Jobs by role",
            if jobs.is_empty() {
                "none yet".to_string()
            } else {
                jobs.join(" · ")
            },
        ),
        ("Refused (queue full)", h.refused.to_string()),
        ("Turns in flight", h.turns_in_flight.to_string()),
        (
            "Terminals",
            format!(
                "{} online of {} known",
                h.terminals_online, h.terminals_known
            ),
        ),
        ("Memories", h.memories.to_string()),
        ("Disk", disk.join(" · ")),
    ];
    let mut table = String::from("<table id=\"health-table\"><tbody>");
    for (name, value) in rows {
        let _ = write!(table, "<tr><th>{name}</th><td>{}</td></tr>", esc(&value));
    }
    table.push_str("</tbody></table>");
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_people_typed_cannot_become_markup() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        let page = login(Some("<b>"));
        assert!(page.contains("&lt;b&gt;") && !page.contains("<b>"));
    }

    #[test]
    fn the_graph_tree_nests_by_indent_whatever_the_steps() {
        let tz = TimeZone::UTC;
        let page = mind("a\n    b\n      c\n    d\n  e\nf\n", None, &tz);
        let body = &page[page.find("id=\"graph\"").unwrap()..page.find("<h2>Profile").unwrap()];
        // a holds b (holding c), d and e; f is a's sibling.
        assert_eq!(
            body.matches("<details").count(),
            body.matches("</details>").count()
        );
        let a = body.find("<summary>a</summary>").unwrap();
        let f = body.find(">f</div>").unwrap();
        let closes_before_f = body[a..f].matches("</details>").count();
        assert_eq!(closes_before_f, 2, "{body}");
        assert!(body.find(">d</div>").unwrap() > body.find(">c</div>").unwrap());
        assert!(page.contains("No profile yet"));
    }

    #[test]
    fn the_emotion_plot_has_a_point_per_turn_and_series_with_its_signals() {
        let tz = TimeZone::UTC;
        assert!(emotion_plot(&[], &tz).contains("No turn scored"));
        let point = |at_ms, room: &str| EmotionPoint {
            at_ms,
            room: room.into(),
            valence: -0.5,
            arousal: 0.4,
            engagement: 0.8,
            label: "Stressed".into(),
            why: "lexicon: stressed -0.48".into(),
            mood_valence: 0.1,
            mood_arousal: 0.0,
        };
        let svg = emotion_plot(&[point(1_000, "kitchen"), point(61_000, "study<")], &tz);
        assert_eq!(svg.matches("class=\"pt valence\"").count(), 2);
        assert_eq!(svg.matches("class=\"pt engagement\"").count(), 2);
        assert!(svg.contains("data-room=\"study&lt;\""));
        assert!(svg.contains("lexicon: stressed -0.48"));
        assert!(svg.contains("class=\"mood\""));
    }
}
