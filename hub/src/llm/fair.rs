//! Round-robin over lanes (rooms): each lane is first-in first-out, and the lanes take turns,
//! so a room that sends many requests cannot starve another that sends one.

use std::collections::VecDeque;

/// Items in lanes, served one lane at a time in turn.
#[derive(Debug)]
pub(crate) struct Lanes<T> {
    /// Lanes with waiting items, the next to serve first.
    lanes: VecDeque<(String, VecDeque<T>)>,
}

impl<T> Default for Lanes<T> {
    fn default() -> Self {
        Lanes {
            lanes: VecDeque::new(),
        }
    }
}

impl<T> Lanes<T> {
    /// Adds `item` at the back of `lane`; a new lane joins the end of the turn order.
    pub(crate) fn push(&mut self, lane: &str, item: T) {
        match self.lanes.iter_mut().find(|(name, _)| name == lane) {
            Some((_, items)) => items.push_back(item),
            None => self
                .lanes
                .push_back((lane.to_string(), VecDeque::from([item]))),
        }
    }

    /// Puts `item` back at the front of `lane`, whose turn it is next.
    pub(crate) fn push_front(&mut self, lane: &str, item: T) {
        match self.lanes.iter().position(|(name, _)| name == lane) {
            Some(i) => {
                let (name, mut items) = self.lanes.remove(i).expect("the lane just found");
                items.push_front(item);
                self.lanes.push_front((name, items));
            }
            None => self
                .lanes
                .push_front((lane.to_string(), VecDeque::from([item]))),
        }
    }

    /// The oldest item of the lane whose turn it is; that lane then goes to the end.
    pub(crate) fn pop(&mut self) -> Option<T> {
        let (lane, mut items) = self.lanes.pop_front()?;
        let item = items.pop_front();
        if !items.is_empty() {
            self.lanes.push_back((lane, items));
        }
        item
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.lanes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_take_turns_and_each_keeps_its_order() {
        let mut q = Lanes::default();
        for i in 0..4 {
            q.push("kitchen", format!("k{i}"));
        }
        q.push("study", "s0".to_string());
        q.push("hall", "h0".to_string());
        q.push("study", "s1".to_string());
        let order: Vec<String> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["k0", "s0", "h0", "k1", "s1", "k2", "k3"]);
        assert!(q.is_empty());
    }

    #[test]
    fn an_item_put_back_is_next() {
        let mut q = Lanes::default();
        q.push("kitchen", "k0");
        q.push("study", "s0");
        q.push("kitchen", "k1");
        let first = q.pop().unwrap();
        q.push_front("kitchen", first);
        q.push_front("hall", "h0");
        let order: Vec<&str> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, ["h0", "k0", "s0", "k1"]);
    }
}
