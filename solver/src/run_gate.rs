//! Which RUN steps run: at most `--jobs` at once, and of those ready, the
//! first in the Dockerfile first.
//!
//! A FIFO semaphore hands its permits to whichever step asks first, and
//! steps that become ready together (a multi-stage build's stages, when
//! their common base's RUN ends) ask in the order their tasks happen to
//! be polled and their sandboxes set up, on whichever thread: a race,
//! which decides whether a long RUN starts at once or waits for a short
//! one, and so the build's time. Here the scheduler (`Vertices::gate`)
//! tells the gate which steps wait for which inputs ([`RunGate::waiting`])
//! and each vertex it makes ([`RunGate::made`]) before anything waiting
//! for that vertex sees it, so a step is queued as ready the moment its last input is made,
//! together with every other step that input made ready. A step then
//! starts ([`RunGate::start`], after its set-up) only while fewer steps
//! run than permitted and fewer ready steps come before it (an earlier
//! [`Place`]) than permits are free: steps ready together start in
//! Dockerfile order, whichever is set up first. A ready step whose
//! set-up takes long holds up only the steps after it, and only while
//! permits are short.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::Notify;

/// Where a step is in the Dockerfile: its instruction's line, then its
/// node (the same line in two platforms' graphs, or an image's ONBUILD
/// step, which has no line: last).
pub(crate) type Place = (usize, usize);

/// At most `jobs` steps at once, the earliest ready first.
pub(crate) struct RunGate {
    jobs: usize,
    /// Each node's place if it is a step the gate orders, by node.
    places: Vec<Option<Place>>,
    state: Mutex<GateState>,
    /// Woken whenever a step leaves the queue or ends.
    changed: Notify,
}

#[derive(Default)]
struct GateState {
    /// Whether each node is made.
    made: Vec<bool>,
    /// Ordered steps that wait for inputs, with the inputs not made yet.
    waiting: HashMap<usize, Vec<usize>>,
    /// Ordered steps whose inputs are made, not started.
    ready: BTreeSet<Place>,
    /// Steps running.
    running: usize,
}

/// A running step's permit; frees it when dropped.
pub(crate) struct Running<'a> {
    gate: &'a RunGate,
}

impl RunGate {
    /// A gate letting `jobs` steps run at once (at least one), ordering
    /// the nodes that have a place in `places`.
    pub(crate) fn new(jobs: usize, places: Vec<Option<Place>>) -> Self {
        let state = GateState {
            made: vec![false; places.len()],
            ..GateState::default()
        };
        RunGate {
            jobs: jobs.max(1),
            places,
            state: Mutex::new(state),
            changed: Notify::new(),
        }
    }

    /// Node `node` is to run once `inputs` are made; ready at once if
    /// they are. Followed by [`Self::left`] when it no longer waits.
    pub(crate) fn waiting(&self, node: usize, inputs: &[usize]) {
        let Some(place) = self.places[node] else {
            return;
        };
        let mut state = self.lock();
        let unmade: Vec<usize> = (inputs.iter().copied())
            .filter(|&n| !state.made[n])
            .collect();
        match unmade.is_empty() {
            true => drop(state.ready.insert(place)),
            false => drop(state.waiting.insert(node, unmade)),
        }
    }

    /// Node `node` is made: the steps that waited for it alone are ready.
    pub(crate) fn made(&self, node: usize) {
        let mut state = self.lock();
        state.made[node] = true;
        let mut now_ready = Vec::new();
        state.waiting.retain(|&step, unmade| {
            unmade.retain(|&n| n != node);
            if unmade.is_empty() {
                now_ready.push(step);
            }
            !unmade.is_empty()
        });
        for step in now_ready {
            let place = self.places[step].expect("only ordered steps wait");
            state.ready.insert(place);
        }
    }

    /// Node `node` ran, or will not (an input failed, the solve stopped):
    /// it holds no other step up.
    pub(crate) fn left(&self, node: usize) {
        let Some(place) = self.places[node] else {
            return;
        };
        let mut state = self.lock();
        state.waiting.remove(&node);
        if state.ready.remove(&place) {
            drop(state);
            self.changed.notify_waiters();
        }
    }

    /// Waits until node `node`, whose inputs are made, may run: a permit
    /// is free for it once every ready step before it has one.
    pub(crate) async fn start(&self, node: usize) -> Running<'_> {
        let place = self.places[node].unwrap_or((usize::MAX, node));
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let mut state = self.lock();
                let before = state.ready.range(..place).count();
                if state.running + before < self.jobs {
                    state.ready.remove(&place);
                    state.running += 1;
                    return Running { gate: self };
                }
            }
            changed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().expect("run gate poisoned")
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.gate.lock().running -= 1;
        self.gate.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::future::{BoxFuture, FutureExt};

    use super::*;
    use crate::dag::{Dag, Outcome, Vertices};
    use crate::error::StepFailure;

    /// Vertices whose ordered steps take `setup` to set up, then start
    /// on `gate`, log their node and run for a while.
    struct Steps {
        gate: RunGate,
        setup: Vec<Duration>,
        log: Mutex<Vec<usize>>,
    }

    impl Vertices for Steps {
        type Output = ();

        fn recorded(
            self: Arc<Self>,
            _: Arc<Dag<Self>>,
            _: usize,
        ) -> BoxFuture<'static, Outcome<Option<()>>> {
            async { Ok(None) }.boxed()
        }

        fn run(
            self: Arc<Self>,
            i: usize,
            _: Vec<()>,
        ) -> BoxFuture<'static, Result<(), StepFailure>> {
            async move {
                tokio::time::sleep(self.setup[i]).await;
                let _running = self.gate.start(i).await;
                self.log.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(())
            }
            .boxed()
        }

        fn gate(&self) -> Option<&RunGate> {
            Some(&self.gate)
        }
    }

    /// Solves a DAG of `inputs` whose nodes are at `places` with `jobs`
    /// permits and the given set-up times; the order steps started in.
    async fn started(
        jobs: usize,
        inputs: Vec<Vec<usize>>,
        places: Vec<Option<Place>>,
        setup_ms: &[u64],
    ) -> Vec<usize> {
        let steps = Arc::new(Steps {
            gate: RunGate::new(jobs, places),
            setup: setup_ms
                .iter()
                .map(|&ms| Duration::from_millis(ms))
                .collect(),
            log: Mutex::default(),
        });
        let keys: Vec<usize> = (0..inputs.len()).collect();
        let target = inputs.len() - 1;
        let dag = Arc::new(Dag::new(steps.clone(), inputs, &keys, Arc::default()));
        dag.solve(target).await.unwrap();
        let log = steps.log.lock().unwrap().clone();
        assert_eq!(steps.gate.lock().running, 0);
        log
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn steps_ready_together_start_in_dockerfile_order_whatever_their_set_up_takes() {
        // 0 is the base; 1-4 read it, on lines 5, 4, 3, 2 (node 4 first
        // in the file), and the set-up of the first in the file takes
        // longest; 5, the target, reads them all.
        let inputs = vec![vec![], vec![0], vec![0], vec![0], vec![0], vec![1, 2, 3, 4]];
        let places = [None, Some(5), Some(4), Some(3), Some(2), None];
        let places = places
            .iter()
            .enumerate()
            .map(|(i, p)| p.map(|l| (l, i)))
            .collect();
        let log = started(1, inputs, places, &[0, 0, 10, 20, 40, 0]).await;
        assert_eq!(log, [0, 4, 3, 2, 1, 5]);
        // Two permits, 4 first in the file and slow to set up: 3 starts,
        // one permit is kept for 4, and 1, the last, waits for both.
        let inputs = vec![vec![], vec![0], vec![0], vec![0], vec![0], vec![1, 2, 3, 4]];
        let places = (0..6).map(|i| Some((10 - i, i))).collect();
        let log = started(2, inputs, places, &[0, 0, 0, 0, 30, 0]).await;
        assert_eq!((log[0], log[1], log[4], log[5]), (0, 3, 1, 5), "{log:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_step_whose_input_fails_holds_no_later_step_up() {
        let gate = RunGate::new(1, vec![None, Some((1, 1)), Some((2, 2))]);
        gate.waiting(1, &[0]);
        gate.waiting(2, &[]);
        gate.made(0);
        // 1 is ready and first: 2 may not start until 1 leaves.
        let two = gate.start(2);
        tokio::pin!(two);
        assert!(futures::poll!(two.as_mut()).is_pending());
        gate.left(1);
        let running = two.await;
        drop(running);
        let state = gate.lock();
        assert!(state.waiting.is_empty() && state.ready.is_empty());
        assert_eq!(state.running, 0);
    }

    #[test]
    fn unordered_nodes_are_only_counted_as_made() {
        let gate = RunGate::new(1, vec![None, None, Some((3, 2))]);
        gate.waiting(1, &[0]);
        gate.waiting(2, &[0, 1]);
        gate.made(0);
        assert!(gate.lock().ready.is_empty(), "2 still waits for 1");
        gate.made(1);
        assert!(gate.lock().ready.contains(&(3, 2)));
        assert!(gate.lock().waiting.is_empty());
    }
}
