//! Shards: which instance of a deployment owns which check. Every check is owned by exactly
//! one member, chosen by rendezvous (highest-random-weight) hashing of the check's name
//! with each member's name, so a member leaving moves only its own checks (about 1/N of
//! them) and every instance computes the same owners from the same member set, whatever
//! order it learnt the members in. The hash is FNV-1a with a 64-bit finalizer: stable
//! across processes, builds and versions (an instance mid-upgrade agrees with the others).
//! Pure: the members come from `--shard` or from DNS (wired in `app`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use serde::Serialize;

use crate::config::Check;

/// Who this instance is among whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Members {
    /// Sorted and without duplicates.
    list: Vec<String>,
    me: String,
}

impl Members {
    pub fn new(mut list: Vec<String>, me: impl Into<String>) -> Members {
        list.sort();
        list.dedup();
        Members {
            list,
            me: me.into(),
        }
    }

    /// `--shard INDEX/COUNT`: fixed members `shard-0` .. `shard-(COUNT-1)`.
    pub fn shard(index: usize, count: usize) -> Members {
        Members::new(
            (0..count).map(|i| format!("shard-{i}")).collect(),
            format!("shard-{index}"),
        )
    }

    pub fn list(&self) -> &[String] {
        &self.list
    }

    pub fn me(&self) -> &str {
        &self.me
    }

    /// Whether this instance is among the members (a pod not yet ready is not, and owns
    /// nothing until it is).
    pub fn includes_me(&self) -> bool {
        self.list.contains(&self.me)
    }

    /// The member that owns `check`; None without members.
    pub fn owner(&self, check: &str) -> Option<&str> {
        self.list
            .iter()
            .max_by_key(|m| (score(m, check), std::cmp::Reverse(m.as_str())))
            .map(String::as_str)
    }

    pub fn owns(&self, check: &str) -> bool {
        self.owner(check) == Some(self.me.as_str())
    }

    /// The checks this instance owns, in their config order.
    pub fn owned(&self, checks: &[Arc<Check>]) -> Vec<Arc<Check>> {
        checks
            .iter()
            .filter(|c| self.owns(&c.name))
            .cloned()
            .collect()
    }
}

/// The members as this instance knows them now, and how it learnt them: what
/// `/api/v1/cluster` and the `pathwatch_cluster_*` metrics show.
pub struct State {
    /// `--shard 1/3`, `dns:NAME:PORT` or `fixed`.
    pub source: String,
    members: RwLock<Members>,
    /// Every check of the deployment, by name (to count what each member owns).
    checks: RwLock<Vec<String>>,
    last_refresh_ms: AtomicI64,
    refresh_errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

#[derive(Debug, Serialize)]
pub struct View {
    pub source: String,
    #[serde(rename = "self")]
    pub me: String,
    pub members: Vec<MemberView>,
    pub checks: usize,
    pub owned_here: usize,
    /// Unix milliseconds of the last successful refresh (DNS), or of the start.
    pub last_refresh_ms: i64,
    pub refresh_errors: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MemberView {
    pub name: String,
    pub checks: usize,
    #[serde(rename = "self")]
    pub is_self: bool,
}

impl State {
    pub fn new(source: impl Into<String>, members: Members, now_ms: i64) -> State {
        State {
            source: source.into(),
            members: RwLock::new(members),
            checks: RwLock::default(),
            last_refresh_ms: AtomicI64::new(now_ms),
            refresh_errors: AtomicU64::new(0),
            last_error: Mutex::default(),
        }
    }

    pub fn members(&self) -> Members {
        self.members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// A refresh answered: the new members (true when they changed).
    pub fn refreshed(&self, list: Vec<String>, now_ms: i64) -> bool {
        self.last_refresh_ms.store(now_ms, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let mut members = self.members.write().unwrap_or_else(PoisonError::into_inner);
        let next = Members::new(list, members.me.clone());
        let changed = next != *members;
        *members = next;
        changed
    }

    /// A refresh failed: the members stay as they were.
    pub fn refresh_failed(&self, error: String) {
        self.refresh_errors.fetch_add(1, Ordering::Relaxed);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }

    pub fn refresh_errors(&self) -> u64 {
        self.refresh_errors.load(Ordering::Relaxed)
    }

    /// The deployment's checks (all of them, not only this instance's).
    pub fn set_checks(&self, checks: &[Arc<Check>]) {
        *self.checks.write().unwrap_or_else(PoisonError::into_inner) =
            checks.iter().map(|c| c.name.clone()).collect();
    }

    pub fn view(&self) -> View {
        let members = self.members();
        let checks = self.checks.read().unwrap_or_else(PoisonError::into_inner);
        let mut counts = vec![0usize; members.list.len()];
        for c in checks.iter() {
            if let Some(owner) = members.owner(c)
                && let Some(i) = members.list.iter().position(|m| m == owner)
            {
                counts[i] += 1;
            }
        }
        let list: Vec<MemberView> = members
            .list
            .iter()
            .zip(counts)
            .map(|(name, checks)| MemberView {
                is_self: *name == members.me,
                name: name.clone(),
                checks,
            })
            .collect();
        View {
            source: self.source.clone(),
            me: members.me.clone(),
            owned_here: list.iter().find(|m| m.is_self).map_or(0, |m| m.checks),
            members: list,
            checks: checks.len(),
            last_refresh_ms: self.last_refresh_ms.load(Ordering::Relaxed),
            refresh_errors: self.refresh_errors(),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// `--shard 1/3`: the index (from 0) and the count.
pub fn parse_shard(text: &str) -> Result<(usize, usize), String> {
    let bad =
        || format!("--shard takes INDEX/COUNT with INDEX below COUNT (e.g. 0/3), not `{text}`");
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn score(member: &str, check: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for b in member.bytes().chain([0xff]).chain(check.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    }
    // splitmix64's finalizer: FNV alone leaves the high bits of similar inputs alike.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The score of one pair as this build computes it: a change of hash moves every check.
    const PINNED: u64 = 6_650_569_475_714_768_506;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("check-{i}")).collect()
    }

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{}:9115", i + 1)).collect()
    }

    #[test]
    fn every_check_has_exactly_one_owner() {
        let list = members(5);
        let views: Vec<Members> = list
            .iter()
            .map(|me| Members::new(list.clone(), me.clone()))
            .collect();
        for check in names(2_000) {
            let owners = views.iter().filter(|m| m.owns(&check)).count();
            assert_eq!(owners, 1, "{check}");
        }
        assert_eq!(Members::new(Vec::new(), "x").owner("a"), None);
    }

    #[test]
    fn removing_one_of_ten_moves_only_its_checks() {
        let all = members(10);
        let before = Members::new(all.clone(), "");
        let gone = &all[3];
        let after = Members::new(all.iter().filter(|m| *m != gone).cloned().collect(), "");
        let checks = names(10_000);
        let mut moved = 0;
        for c in &checks {
            let (b, a) = (before.owner(c).unwrap(), after.owner(c).unwrap());
            if b != a {
                assert_eq!(b, gone, "{c} moved from a member that stayed");
                moved += 1;
            }
        }
        let fraction = moved as f64 / checks.len() as f64;
        println!(
            "1 of 10 members left: {moved} of {} checks moved ({:.2}%)",
            checks.len(),
            fraction * 100.0
        );
        assert!((fraction - 0.10).abs() < 0.02, "moved {fraction}");
    }

    #[test]
    fn owners_do_not_depend_on_order_or_duplicates() {
        let mut list = members(7);
        let a = Members::new(list.clone(), "");
        list.reverse();
        list.push(list[0].clone());
        let b = Members::new(list, "");
        for c in names(1_000) {
            assert_eq!(a.owner(&c), b.owner(&c));
        }
        // Fixed across builds: a known answer.
        assert_eq!(score("10.0.0.1:9115", "golden-path"), PINNED);
        let shards = Members::shard(1, 3);
        assert_eq!(shards.list(), ["shard-0", "shard-1", "shard-2"]);
        assert!(shards.includes_me());
    }

    #[test]
    fn shard_flags_are_checked() {
        assert_eq!(parse_shard("1/3"), Ok((1, 3)));
        assert!(parse_shard("3/3").is_err());
        assert!(parse_shard("0/0").is_err());
        assert!(parse_shard("a/3").unwrap_err().contains("INDEX/COUNT"));
    }
}
