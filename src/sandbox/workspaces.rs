//! The sandbox's workspaces: creation order, lookup by name, deletion that keeps the
//! others' order, and pages of that order, each cheap with a million workspaces.
//!
//! A deleted workspace leaves a tombstone in its slot, so nothing moves and the index of
//! names to slots stays true. A Fenwick tree over the slots (1 for a live one, 0 for a
//! tombstone) finds the k-th live workspace in O(log n), so a page costs the same wherever
//! it is. Once tombstones are at least as many as the living (and enough to matter), the
//! slots are compacted and the index and tree rebuilt: O(n), paid for by the n/2 deletes
//! since the last time. Every operation is O(log n) amortised or better.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::ops::Range;

use crate::api::workspace::WorkspaceRequest;

/// Workspaces in one page of a paginated list.
pub const PAGE_SIZE: usize = 10;

/// Fewer tombstones than this are never worth a compaction.
const COMPACT_AT_LEAST: usize = 64;

/// Workspaces that exist, in creation order (an update keeps a workspace's place).
#[derive(Default)]
pub struct Workspaces {
    /// Every workspace created since the last compaction; `None` once deleted.
    slots: Vec<Option<WorkspaceRequest>>,
    /// The slot of each live workspace, by name.
    index: HashMap<String, usize>,
    /// Which slots are live, for finding the k-th live one.
    live: Fenwick,
    /// Tombstones among the slots.
    dead: usize,
}

impl Workspaces {
    /// No workspaces.
    pub fn new() -> Workspaces {
        Workspaces::default()
    }

    /// How many exist.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether a workspace of this exact name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// Adds a workspace after all the others, unless its name is taken (then returns
    /// false and changes nothing).
    pub fn insert(&mut self, workspace: WorkspaceRequest) -> bool {
        if self.contains(&workspace.name) {
            return false;
        }
        self.index.insert(workspace.name.clone(), self.slots.len());
        self.slots.push(Some(workspace));
        self.live.push_one();
        true
    }

    /// The workspace of this name, if there is one.
    pub fn get(&self, name: &str) -> Option<&WorkspaceRequest> {
        self.index
            .get(name)
            .and_then(|&slot| self.slots[slot].as_ref())
    }

    /// Replaces the workspace of the same name in its place, if there is one (else returns
    /// false).
    pub fn replace(&mut self, workspace: WorkspaceRequest) -> bool {
        match self.index.get(&workspace.name) {
            Some(&slot) => {
                self.slots[slot] = Some(workspace);
                true
            }
            None => false,
        }
    }

    /// Deletes the workspace of this name, if it exists, and returns it.
    pub fn remove(&mut self, name: &str) -> Option<WorkspaceRequest> {
        let slot = self.index.remove(name)?;
        let removed = self.slots[slot].take();
        self.live.clear(slot);
        self.dead += 1;
        if self.dead >= COMPACT_AT_LEAST && self.dead >= self.len() {
            self.compact();
        }
        removed
    }

    /// The live workspaces, in creation order.
    pub fn iter(&self) -> impl Iterator<Item = &WorkspaceRequest> {
        self.slots.iter().flatten()
    }

    /// Page `number` (1-based) of [`PAGE_SIZE`] workspaces in creation order; empty past
    /// the end.
    pub fn page(&self, number: NonZeroU64) -> impl Iterator<Item = &WorkspaceRequest> {
        page_range(number, self.len()).map(|k| {
            let slot = if self.dead == 0 {
                k
            } else {
                self.live.select(k)
            };
            self.slots[slot]
                .as_ref()
                .expect("the tree counts only live slots")
        })
    }

    /// Drops the tombstones; the living keep their order.
    fn compact(&mut self) {
        self.slots.retain(Option::is_some);
        for (slot, workspace) in self.slots.iter().flatten().enumerate() {
            if let Some(at) = self.index.get_mut(&workspace.name) {
                *at = slot;
            }
        }
        self.live = Fenwick::ones(self.slots.len());
        self.dead = 0;
    }
}

/// The positions in the list of `len` workspaces that page `number` (1-based) holds:
/// [`PAGE_SIZE`] of them, fewer on the last page, none past the end.
pub fn page_range(number: NonZeroU64, len: usize) -> Range<usize> {
    let skipped = (number.get() - 1).saturating_mul(PAGE_SIZE as u64);
    let start = usize::try_from(skipped).unwrap_or(usize::MAX).min(len);
    start..start.saturating_add(PAGE_SIZE).min(len)
}

/// What a `PUT` makes of a workspace: its connection (type, datasource, datamart) is the
/// PUT's, as the vendor documents an update to replace it (a `MULTI_` type clears the
/// single links); the LLM, copilot, metric and theme settings it does not name stay (the
/// vendor calls them optional in an update).
pub fn updated(current: &WorkspaceRequest, put: WorkspaceRequest) -> WorkspaceRequest {
    WorkspaceRequest {
        llm_name: put.llm_name.or_else(|| current.llm_name.clone()),
        ai_copilot_llms: put
            .ai_copilot_llms
            .or_else(|| current.ai_copilot_llms.clone()),
        is_enable_metric_suggestions: put
            .is_enable_metric_suggestions
            .or(current.is_enable_metric_suggestions),
        is_enable_metric_summary: put
            .is_enable_metric_summary
            .or(current.is_enable_metric_summary),
        summary_type: put.summary_type.or(current.summary_type),
        custom_summary_prompt: put
            .custom_summary_prompt
            .or_else(|| current.custom_summary_prompt.clone()),
        theme_name: put.theme_name.or_else(|| current.theme_name.clone()),
        ..put
    }
}

/// The id the API gives a workspace: its name in lower case, each run of anything but
/// letters and digits made one `-`, with none at either end (`Sales Analytics` →
/// `sales-analytics`). Letters and digits are Unicode ones (`Café` → `café`).
pub fn slug(name: &str) -> String {
    let mut id = String::with_capacity(name.len());
    let mut gap = false;
    for c in name.chars() {
        if c.is_alphanumeric() {
            if gap && !id.is_empty() {
                id.push('-');
            }
            gap = false;
            id.extend(c.to_lowercase());
        } else {
            gap = true;
        }
    }
    id
}

/// A Fenwick (binary indexed) tree over slots holding 0 or 1: prefix counts and "the k-th
/// 1" in O(log n). `tree[i - 1]` holds the sum of the slots `i - lowbit(i) .. i`.
#[derive(Default)]
struct Fenwick {
    tree: Vec<usize>,
}

/// The lowest set bit of `i`.
fn lowbit(i: usize) -> usize {
    i & i.wrapping_neg()
}

impl Fenwick {
    /// `n` slots, all 1: O(n).
    fn ones(n: usize) -> Fenwick {
        Fenwick {
            tree: (1..=n).map(lowbit).collect(),
        }
    }

    /// Appends a slot holding 1.
    fn push_one(&mut self) {
        let i = self.tree.len() + 1;
        // The new node covers the slots `i - lowbit(i) .. i`: the new one and those before.
        let covered = 1 + self.prefix(i - 1) - self.prefix(i - lowbit(i));
        self.tree.push(covered);
    }

    /// The sum of the first `n` slots.
    fn prefix(&self, mut n: usize) -> usize {
        let mut sum = 0;
        while n > 0 {
            sum += self.tree[n - 1];
            n -= lowbit(n);
        }
        sum
    }

    /// Sets slot `slot` (0-based), which holds 1, to 0.
    fn clear(&mut self, slot: usize) {
        let mut i = slot + 1;
        while i <= self.tree.len() {
            self.tree[i - 1] -= 1;
            i += lowbit(i);
        }
    }

    /// The slot (0-based) of the `k`-th 1 (0-based); there must be more than `k`.
    fn select(&self, k: usize) -> usize {
        let n = self.tree.len();
        // The longest prefix holding at most k ones ends just before the slot sought.
        let (mut end, mut wanted) = (0, k + 1);
        let mut step = if n == 0 { 0 } else { 1 << n.ilog2() };
        while step > 0 {
            if end + step <= n && self.tree[end + step - 1] < wanted {
                end += step;
                wanted -= self.tree[end - 1];
            }
            step >>= 1;
        }
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::workspace::ConnectionType;

    fn named(name: &str) -> WorkspaceRequest {
        serde_json::from_value(serde_json::json!({
            "name": name, "connectionType": ConnectionType::MultiDatamart.as_str()
        }))
        .unwrap()
    }

    fn names<'a>(workspaces: impl Iterator<Item = &'a WorkspaceRequest>) -> Vec<String> {
        workspaces.map(|w| w.name.clone()).collect()
    }

    fn page(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).unwrap()
    }

    #[test]
    fn slugs_are_lower_case_with_one_dash_per_gap_and_none_at_the_ends() {
        assert_eq!(slug("Sales Analytics"), "sales-analytics");
        assert_eq!(slug("  R&D -- EMEA (2026)!  "), "r-d-emea-2026");
        assert_eq!(slug("acme_corp.io"), "acme-corp-io");
        assert_eq!(slug("already-a-slug"), "already-a-slug");
        assert_eq!(slug("Café Zürich"), "café-zürich");
        assert_eq!(slug("!!!"), "");
    }

    #[test]
    fn pages_hold_ten_the_last_fewer_and_past_the_end_none() {
        assert_eq!(page_range(page(1), 25), 0..10);
        assert_eq!(page_range(page(2), 25), 10..20);
        assert_eq!(page_range(page(3), 25), 20..25);
        assert_eq!(page_range(page(4), 25), 25..25);
        assert_eq!(page_range(page(1), 0), 0..0);
        assert_eq!(page_range(page(2), 20), 10..20);
        assert_eq!(page_range(page(3), 20), 20..20);
        assert_eq!(page_range(page(u64::MAX), 25), 25..25);
    }

    #[test]
    fn fenwick_prefix_and_select_agree_with_a_plain_vector() {
        let mut tree = Fenwick::default();
        (0..300).for_each(|_| tree.push_one());
        let mut plain = vec![1; 300];
        for slot in (0..300).filter(|s| s % 3 == 0 || s % 7 == 0) {
            tree.clear(slot);
            plain[slot] = 0;
        }
        for n in 0..=300 {
            assert_eq!(
                tree.prefix(n),
                plain[..n].iter().sum::<usize>(),
                "prefix {n}"
            );
        }
        let ones: Vec<usize> = (0..300).filter(|s| plain[*s] == 1).collect();
        for (k, slot) in ones.iter().enumerate() {
            assert_eq!(tree.select(k), *slot, "select {k}");
        }
        assert_eq!(Fenwick::ones(37).tree, {
            let mut pushed = Fenwick::default();
            (0..37).for_each(|_| pushed.push_one());
            pushed.tree
        });
    }

    #[test]
    fn deletes_keep_the_order_of_the_others_and_pages_skip_them() {
        let mut w = Workspaces::new();
        for i in 0..25 {
            assert!(w.insert(named(&format!("w{i:02}"))));
        }
        assert!(!w.insert(named("w03")), "a taken name");
        for gone in ["w00", "w05", "w11", "w24"] {
            assert_eq!(w.remove(gone).unwrap().name, gone);
        }
        assert!(w.remove("w05").is_none(), "already gone");
        assert_eq!(w.len(), 21);
        let expected: Vec<String> = (0..25)
            .filter(|i| ![0, 5, 11, 24].contains(i))
            .map(|i| format!("w{i:02}"))
            .collect();
        assert_eq!(names(w.iter()), expected);
        assert_eq!(names(w.page(page(1))), expected[..10]);
        assert_eq!(names(w.page(page(2))), expected[10..20]);
        assert_eq!(names(w.page(page(3))), expected[20..]);
        assert_eq!(names(w.page(page(4))), Vec::<String>::new());
        // An update keeps the place; a name can come back, at the end.
        let mut changed = named("w01");
        changed.connection_type = ConnectionType::MultiDatasource;
        assert!(w.replace(changed.clone()));
        assert!(!w.replace(named("w05")));
        assert!(w.insert(named("w05")));
        assert_eq!(w.iter().next(), Some(&changed));
        assert_eq!(names(w.iter()).last().unwrap(), "w05");
    }

    #[test]
    fn compaction_keeps_order_index_and_pages() {
        let mut w = Workspaces::new();
        for i in 0..1000 {
            assert!(w.insert(named(&format!("w{i:04}"))));
        }
        // Deleting all but every fourth compacts at least once on the way.
        for i in (0..1000).filter(|i| i % 4 != 0) {
            w.remove(&format!("w{i:04}")).unwrap();
        }
        assert!(w.slots.len() < 1000, "compacted: {} slots", w.slots.len());
        let expected: Vec<String> = (0..1000).step_by(4).map(|i| format!("w{i:04}")).collect();
        assert_eq!(names(w.iter()), expected);
        for p in 1..=26 {
            let range = page_range(page(p), expected.len());
            assert_eq!(names(w.page(page(p))), expected[range], "page {p}");
        }
        // The index still finds each one where it now is.
        w.remove("w0500").unwrap();
        let mut changed = named("w0504");
        changed.connection_type = ConnectionType::MultiDatasource;
        assert!(w.replace(changed.clone()));
        assert_eq!(w.iter().find(|x| x.name == "w0504"), Some(&changed));
        assert!(!w.contains("w0500"));
        assert_eq!(w.len(), 249);
    }
}
