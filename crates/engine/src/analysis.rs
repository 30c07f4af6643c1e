//! Planning: the shortest and longest planned way to success from a state, and the forecast of a project.

use chrono::{DateTime, Utc};
use petgraph::algo::{astar, toposort};
use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use serde::Serialize;

use crate::definition::{Planned, Workflow};
use crate::duration::CalendarDuration;
use crate::runtime::Instance;

/// Simple paths explored at most when looking for the longest one in a cyclic workflow.
const LONGEST_SEARCH_BUDGET: usize = 100_000;

/// A way from a state to a success state, with its planned duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedPath {
    /// State ids, from the starting state to the success state.
    pub states: Vec<String>,
    pub total: CalendarDuration,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CriticalPath {
    /// The quickest way, counting each state's planned minimum.
    pub shortest: PlannedPath,
    /// The slowest way, counting each state's planned maximum (the critical path).
    pub longest: PlannedPath,
    /// False when a cyclic workflow had too many simple paths to explore them all.
    pub exhaustive: bool,
}

/// When a project should reach success, and whether it meets the programme's goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forecast {
    pub earliest: DateTime<Utc>,
    pub latest: DateTime<Utc>,
    pub goal: Option<GoalVerdict>,
    /// The states of the critical path with their entry dates.
    pub timeline: Vec<StagePlan>,
    pub critical_path: CriticalPath,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GoalVerdict {
    pub goal: String,
    pub due: DateTime<Utc>,
    /// The earliest forecast is on time.
    pub can_make_it: bool,
    /// Even the latest forecast is on time.
    pub on_time_at_latest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StagePlan {
    pub state: String,
    pub earliest_entry: DateTime<Utc>,
    pub latest_entry: DateTime<Utc>,
}

impl Workflow {
    /// The shortest and longest planned ways from `from` to a success state; `None` for an unknown state or
    /// one from which success cannot be reached.
    pub fn critical_path(&self, from: &str) -> Option<CriticalPath> {
        self.critical_path_from(self.state_ix(from)?)
    }

    /// When the project should reach success: counted from when it entered its state, or from `now` when the
    /// time planned for that state is already exceeded. `None` once success is out of reach.
    pub fn forecast(&self, instance: &Instance, now: DateTime<Utc>) -> Option<Forecast> {
        self.project(self.state_ix(&instance.state)?, instance.entered_at, now)
    }

    /// The planned timeline of a project entering `from` at `start`.
    pub fn plan(&self, from: &str, start: DateTime<Utc>) -> Option<Forecast> {
        self.project(self.state_ix(from)?, start, start)
    }

    fn project(
        &self,
        state: usize,
        entered_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Forecast> {
        let critical_path = self.critical_path_from(state)?;
        let shortest = self.indices(&critical_path.shortest);
        let longest = self.indices(&critical_path.longest);
        let earliest = self.entries(&shortest, entered_at, now, |p| p.min);
        let (earliest_entries, latest_entries) = (
            self.entries(&longest, entered_at, now, |p| p.min),
            self.entries(&longest, entered_at, now, |p| p.max),
        );
        let latest = *latest_entries.last()?;
        let earliest = *earliest.last()?;
        let goal = self
            .goals
            .iter()
            .min_by_key(|g| g.due)
            .map(|g| GoalVerdict {
                goal: g.id.clone(),
                due: g.due,
                can_make_it: earliest <= g.due,
                on_time_at_latest: latest <= g.due,
            });
        let timeline = longest
            .iter()
            .zip(earliest_entries.iter().zip(&latest_entries))
            .map(|(&s, (&earliest_entry, &latest_entry))| StagePlan {
                state: self.states[s].id.clone(),
                earliest_entry,
                latest_entry,
            })
            .collect();
        Some(Forecast {
            earliest,
            latest,
            goal,
            timeline,
            critical_path,
        })
    }

    fn indices(&self, path: &PlannedPath) -> Vec<usize> {
        path.states
            .iter()
            .filter_map(|s| self.state_ix(s))
            .collect()
    }

    /// Entry instants along `path`; the first state ends no earlier than `now`, since it is not left yet.
    fn entries(
        &self,
        path: &[usize],
        entered_at: DateTime<Utc>,
        now: DateTime<Utc>,
        pick: fn(Planned) -> CalendarDuration,
    ) -> Vec<DateTime<Utc>> {
        let mut entries = vec![entered_at];
        for (i, &s) in path.iter().enumerate().take(path.len().saturating_sub(1)) {
            let mut end = pick(self.states[s].planned).after(entries[i], self.timezone);
            if i == 0 {
                end = end.max(now);
            }
            entries.push(end);
        }
        entries
    }

    fn critical_path_from(&self, from: usize) -> Option<CriticalPath> {
        let start = NodeIndex::new(from);
        let (_, shortest) = astar(
            &self.graph,
            start,
            |n| self.states[n.index()].is_success(),
            |e| {
                self.states[e.source().index()]
                    .planned
                    .min
                    .nominal_seconds()
            },
            |_| 0,
        )?;
        let shortest: Vec<usize> = shortest.into_iter().map(NodeIndex::index).collect();
        let (longest, exhaustive) = match toposort(&self.graph, None) {
            Ok(order) => (self.longest_in_dag(from, &order)?, true),
            Err(_) => self.longest_bounded(from)?,
        };
        Some(CriticalPath {
            shortest: self.planned_path(&shortest, |p| p.min),
            longest: self.planned_path(&longest, |p| p.max),
            exhaustive,
        })
    }

    fn planned_path(&self, path: &[usize], pick: fn(Planned) -> CalendarDuration) -> PlannedPath {
        PlannedPath {
            states: path.iter().map(|&s| self.states[s].id.clone()).collect(),
            total: path.iter().map(|&s| pick(self.states[s].planned)).sum(),
        }
    }

    fn max_secs(&self, state: usize) -> u64 {
        self.states[state].planned.max.nominal_seconds()
    }

    /// Longest path to success in an acyclic graph, by dynamic programming in reverse topological order.
    fn longest_in_dag(&self, from: usize, order: &[NodeIndex]) -> Option<Vec<usize>> {
        // best[s] = (planned seconds from s to success, next state on that way)
        let mut best: Vec<Option<(u64, Option<usize>)>> = vec![None; self.states.len()];
        for node in order.iter().rev() {
            let s = node.index();
            best[s] = if self.states[s].is_success() {
                Some((0, None))
            } else {
                self.graph
                    .neighbors(*node)
                    .filter_map(|n| {
                        best[n.index()].map(|(cost, _)| (cost + self.max_secs(s), Some(n.index())))
                    })
                    .max_by_key(|&(cost, next)| (cost, std::cmp::Reverse(next)))
            };
        }
        let mut path = vec![from];
        let mut current = best[from]?;
        while let (_, Some(next)) = current {
            path.push(next);
            current = best[next]?;
        }
        Some(path)
    }

    /// Longest simple path to success in a cyclic graph, exploring at most [`LONGEST_SEARCH_BUDGET`] steps.
    fn longest_bounded(&self, from: usize) -> Option<(Vec<usize>, bool)> {
        struct Search {
            on_path: Vec<bool>,
            path: Vec<usize>,
            best: Option<(u64, Vec<usize>)>,
            budget: usize,
        }
        fn visit(w: &Workflow, s: usize, cost: u64, search: &mut Search) {
            if search.budget == 0 {
                return;
            }
            search.budget -= 1;
            search.path.push(s);
            search.on_path[s] = true;
            if w.states[s].is_success() {
                if search.best.as_ref().is_none_or(|(best, _)| cost > *best) {
                    search.best = Some((cost, search.path.clone()));
                }
            } else {
                for n in w.graph.neighbors(NodeIndex::new(s)) {
                    if !search.on_path[n.index()] {
                        visit(w, n.index(), cost + w.max_secs(s), search);
                    }
                }
            }
            search.on_path[s] = false;
            search.path.pop();
        }
        let mut search = Search {
            on_path: vec![false; self.states.len()],
            path: Vec::new(),
            best: None,
            budget: LONGEST_SEARCH_BUDGET,
        };
        visit(self, from, 0, &mut search);
        let exhaustive = search.budget > 0;
        search.best.map(|(_, path)| (path, exhaustive))
    }
}
