//! The scheduling core: realizes a vertex of a DAG on demand, generic over
//! what a vertex does ([`Vertices`]), so that ordering, sharing, caching
//! and failure are tested with fake vertices, without root or a sandbox.
//!
//! A vertex with a cached result is done without touching its inputs;
//! otherwise its inputs are realized concurrently, then it runs. Vertices
//! with equal keys share one realization. The first failure cancels every
//! vertex that has not started yet, and is what the solve reports (not the
//! cancellations it caused). A cancellation from outside ([`Dag::cancel`],
//! a build's cancel token) stops it the same way, and is what the solve
//! reports then, whatever the vertices it interrupted said.
//!
//! The DAG is the frontend's graph as it is: vertices in topological order
//! with their ordered inputs, so no graph library is needed (see
//! docs/ARCHITECTURE.md).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, try_join_all};
use tokio::sync::{Notify, OnceCell};

use crate::error::StepFailure;
use crate::run_gate::RunGate;

/// A vertex's failure, shared by everything that waited on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The vertex that failed (or was cancelled).
    pub node: usize,
    /// What went wrong (an empty message for a cancellation).
    pub cause: StepFailure,
    /// Not run because the solve was cancelled (by another failure).
    pub cancelled: bool,
}

impl Failure {
    /// Vertex `node` failed with `cause`.
    pub fn of(node: usize, cause: impl Into<StepFailure>) -> Self {
        Failure {
            node,
            cause: cause.into(),
            cancelled: false,
        }
    }

    /// Vertex `node` was not run because the solve was cancelled.
    pub fn cancelled(node: usize) -> Self {
        Failure {
            node,
            cause: StepFailure::from(String::new()),
            cancelled: true,
        }
    }
}

/// A vertex's result, or why there is none.
pub type Outcome<T> = Result<T, Failure>;

/// What the scheduler asks of the vertices it realizes.
pub trait Vertices: Send + Sync + Sized + 'static {
    /// A vertex's result.
    type Output: Clone + Send + Sync + 'static;

    /// A result of vertex `i` found without running it (a cache hit), or
    /// `None`. `dag` realizes what a hit needs besides (a linked copy's
    /// base); the other inputs are not realized for a hit.
    fn recorded(
        self: Arc<Self>,
        dag: Arc<Dag<Self>>,
        i: usize,
    ) -> BoxFuture<'static, Outcome<Option<Self::Output>>>;

    /// Makes vertex `i`'s result from its inputs' results, in input order.
    fn run(
        self: Arc<Self>,
        i: usize,
        inputs: Vec<Self::Output>,
    ) -> BoxFuture<'static, Result<Self::Output, StepFailure>>;

    /// The gate that starts the vertices' RUN steps in order, if any: the
    /// DAG tells it which vertex waits for which inputs (each the first
    /// vertex with its key), each vertex made before anything waiting for
    /// it is woken, and each waiting vertex that ran or will not run.
    fn gate(&self) -> Option<&RunGate> {
        None
    }
}

/// Tells `.0` that vertex `.1` no longer waits, however its computation
/// ends (it ran, failed, an input failed, the solve stopped or was
/// dropped).
struct Leaves<'a>(&'a RunGate, usize);

impl Drop for Leaves<'_> {
    fn drop(&mut self) {
        self.0.left(self.1);
    }
}

/// Realizes the vertices of one DAG, each at most once.
pub struct Dag<V: Vertices> {
    vertices: Arc<V>,
    /// Each vertex's inputs, by position; always smaller indices.
    inputs: Vec<Vec<usize>>,
    /// For each vertex, the first vertex with the same key.
    canonical: Vec<usize>,
    cells: Vec<OnceCell<Outcome<V::Output>>>,
    /// Set when the solve stops (a failure or [`Dag::cancel`]): no vertex
    /// starts after it. Shared with the vertices, so that one waiting
    /// inside its run (for a RUN slot) sees it too.
    stop: Arc<AtomicBool>,
    /// Whether [`Dag::cancel`] stopped it.
    cancelled: AtomicBool,
    /// The first failure that was not a cancellation.
    first_failure: Mutex<Option<Failure>>,
    /// Woken whenever a vertex is realized (see [`Dag::realized`]).
    made: Notify,
}

impl<V: Vertices> Dag<V> {
    /// A DAG of `vertices` whose vertex `i` reads `inputs[i]` and is
    /// identified by `keys[i]` (equal keys, one realization); `stop` is set
    /// when the solve stops.
    pub fn new<K: Hash + Eq>(
        vertices: Arc<V>,
        inputs: Vec<Vec<usize>>,
        keys: &[K],
        stop: Arc<AtomicBool>,
    ) -> Self {
        let mut first: HashMap<&K, usize> = HashMap::new();
        let canonical = keys
            .iter()
            .enumerate()
            .map(|(i, k)| *first.entry(k).or_insert(i))
            .collect();
        Dag {
            vertices,
            cells: (0..inputs.len()).map(|_| OnceCell::new()).collect(),
            inputs,
            canonical,
            stop,
            cancelled: AtomicBool::new(false),
            first_failure: Mutex::new(None),
            made: Notify::new(),
        }
    }

    /// Realizes `target` (and what it needs). The error is a cancellation
    /// when [`Dag::cancel`] was called, else the solve's first real failure.
    pub async fn solve(self: Arc<Self>, target: usize) -> Outcome<V::Output> {
        let outcome = self.clone().realize(target).await;
        outcome.map_err(|f| {
            if self.cancelled.load(Ordering::SeqCst) {
                return Failure::cancelled(target);
            }
            let first = self.first_failure.lock().expect("poisoned").clone();
            first.unwrap_or(f)
        })
    }

    /// Cancels the solve from outside: no vertex starts after this; those
    /// running finish (a build's cancel token kills their sandboxes), and
    /// the solve ends with a cancellation.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// The outcome of vertex `i` (or of the vertex with its key), if it
    /// was realized.
    pub fn outcome(&self, i: usize) -> Option<&Outcome<V::Output>> {
        self.cells[self.canonical[i]].get()
    }

    /// Realizes vertex `i`, once per key.
    pub fn realize(self: Arc<Self>, i: usize) -> BoxFuture<'static, Outcome<V::Output>> {
        let i = self.canonical[i];
        async move {
            let me = self.clone();
            let outcome = self.cells[i].get_or_init(|| me.compute(i)).await.clone();
            self.made.notify_waiters();
            outcome
        }
        .boxed()
    }

    /// Waits until vertex `i` is realized by whatever needs it, without
    /// realizing it: a vertex nothing needs (its user was cached) is
    /// waited for for ever, so this is raced against what does end.
    pub async fn realized(&self, i: usize) -> Outcome<V::Output> {
        loop {
            let woken = self.made.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(outcome) = self.outcome(i) {
                return outcome.clone();
            }
            woken.await;
        }
    }

    async fn compute(self: Arc<Self>, i: usize) -> Outcome<V::Output> {
        let gate = self.vertices.gate();
        if let Some(hit) = self.vertices.clone().recorded(self.clone(), i).await? {
            if let Some(gate) = gate {
                gate.made(i);
            }
            return Ok(hit);
        }
        if self.stopped() {
            return Err(Failure::cancelled(i));
        }
        let firsts: Vec<usize> = self.inputs[i].iter().map(|&n| self.canonical[n]).collect();
        if let Some(gate) = gate {
            gate.waiting(i, &firsts);
        }
        let _leaves = gate.map(|gate| Leaves(gate, i));
        let inputs = firsts.iter().map(|&n| self.clone().realize(n));
        let inputs = try_join_all(inputs).await?;
        if self.stopped() {
            return Err(Failure::cancelled(i));
        }
        let made = self
            .vertices
            .clone()
            .run(i, inputs)
            .await
            .map_err(|cause| {
                let failure = Failure::of(i, cause);
                self.first_failure
                    .lock()
                    .expect("poisoned")
                    .get_or_insert_with(|| failure.clone());
                self.stop.store(true, Ordering::SeqCst);
                failure
            })?;
        if let Some(gate) = gate {
            gate.made(i);
        }
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use super::*;

    /// Fake vertices: each result is the list of vertices realized under
    /// it; some are cached, some fail, all may take a while, and one that
    /// ends after the solve stopped fails as a killed sandbox would.
    #[derive(Default)]
    struct Fake {
        cached: HashSet<usize>,
        failing: HashSet<usize>,
        /// How long each run takes.
        delay: Duration,
        /// What happened, in order: ("start" | "end", vertex).
        log: Mutex<Vec<(&'static str, usize)>>,
        running: AtomicUsize,
        most_running: AtomicUsize,
        /// The DAG's stop flag.
        stop: Arc<AtomicBool>,
    }

    impl Vertices for Fake {
        type Output = Vec<usize>;

        fn recorded(
            self: Arc<Self>,
            _: Arc<Dag<Self>>,
            i: usize,
        ) -> BoxFuture<'static, Outcome<Option<Vec<usize>>>> {
            async move { Ok(self.cached.contains(&i).then(|| vec![i])) }.boxed()
        }

        fn run(
            self: Arc<Self>,
            i: usize,
            inputs: Vec<Vec<usize>>,
        ) -> BoxFuture<'static, Result<Vec<usize>, StepFailure>> {
            async move {
                self.log.lock().unwrap().push(("start", i));
                let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
                self.most_running.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(self.delay).await;
                self.running.fetch_sub(1, Ordering::SeqCst);
                self.log.lock().unwrap().push(("end", i));
                if self.failing.contains(&i) {
                    return Err(format!("vertex {i} failed").into());
                }
                if self.stop.load(Ordering::SeqCst) {
                    return Err(format!("vertex {i} killed").into());
                }
                let mut out: Vec<usize> = inputs.concat();
                out.push(i);
                Ok(out)
            }
            .boxed()
        }
    }

    impl Fake {
        fn started(&self) -> Vec<usize> {
            let log = self.log.lock().unwrap();
            log.iter()
                .filter(|(e, _)| *e == "start")
                .map(|(_, i)| *i)
                .collect()
        }

        fn position(&self, event: &str, i: usize) -> usize {
            let log = self.log.lock().unwrap();
            log.iter().position(|&(e, n)| e == event && n == i).unwrap()
        }
    }

    /// A DAG over `fake` with `inputs`, every vertex its own key.
    fn dag_of(fake: Fake, inputs: Vec<Vec<usize>>) -> (Arc<Fake>, Arc<Dag<Fake>>) {
        let keys: Vec<usize> = (0..inputs.len()).collect();
        dag_keyed(fake, inputs, &keys)
    }

    fn dag_keyed(
        fake: Fake,
        inputs: Vec<Vec<usize>>,
        keys: &[usize],
    ) -> (Arc<Fake>, Arc<Dag<Fake>>) {
        let fake = Arc::new(fake);
        let dag = Arc::new(Dag::new(fake.clone(), inputs, keys, fake.stop.clone()));
        (fake, dag)
    }

    #[tokio::test]
    async fn inputs_run_before_their_users() {
        // 0 → 1 → 3, 0 → 2 → 3
        let (fake, dag) = dag_of(Fake::default(), vec![vec![], vec![0], vec![0], vec![1, 2]]);
        assert_eq!(dag.solve(3).await.unwrap(), [0, 1, 0, 2, 3]);
        for (input, user) in [(0, 1), (0, 2), (1, 3), (2, 3)] {
            assert!(fake.position("end", input) < fake.position("start", user));
        }
        let mut started = fake.started();
        started.sort_unstable();
        assert_eq!(started, [0, 1, 2, 3], "the shared input ran once");
    }

    #[tokio::test]
    async fn independent_stages_run_at_once() {
        let fake = Fake {
            delay: Duration::from_millis(50),
            ..Fake::default()
        };
        // Two stages (0 → 1, 2 → 3) joined by 4.
        let (fake, dag) = dag_of(fake, vec![vec![], vec![0], vec![], vec![2], vec![1, 3]]);
        dag.solve(4).await.unwrap();
        assert_eq!(fake.most_running.load(Ordering::SeqCst), 2);
        assert!(fake.position("start", 2) < fake.position("end", 0));
    }

    #[tokio::test]
    async fn a_hit_runs_nothing_below_it_and_a_miss_runs_its_inputs() {
        let chain = || vec![vec![], vec![0], vec![1]];
        let all_cached = Fake {
            cached: HashSet::from([2]),
            ..Fake::default()
        };
        let (fake, dag) = dag_of(all_cached, chain());
        assert_eq!(dag.solve(2).await.unwrap(), [2]);
        assert!(fake.started().is_empty(), "a hit realizes no input");

        let middle_cached = Fake {
            cached: HashSet::from([0, 1]),
            ..Fake::default()
        };
        let (fake, dag) = dag_of(middle_cached, chain());
        assert_eq!(dag.clone().solve(2).await.unwrap(), [1, 2]);
        assert_eq!(fake.started(), [2], "only the miss ran");
        assert!(dag.outcome(0).is_none(), "the hit's input was not realized");
    }

    #[tokio::test]
    async fn vertices_with_equal_keys_are_realized_once() {
        // 1 and 2 do the same to 0.
        let keys = [10, 11, 11, 12];
        let (fake, dag) = dag_keyed(
            Fake::default(),
            vec![vec![], vec![0], vec![0], vec![1, 2]],
            &keys,
        );
        assert_eq!(dag.solve(3).await.unwrap(), [0, 1, 0, 1, 3]);
        assert_eq!(fake.started(), [0, 1, 3]);
    }

    #[tokio::test]
    async fn a_failure_is_reported_and_cancels_what_has_not_started() {
        let fake = Fake {
            failing: HashSet::from([1]),
            ..Fake::default()
        };
        // 1 fails; 3 (after 2) is left when the solve of 4 ends.
        let (fake, dag) = dag_of(fake, vec![vec![], vec![0], vec![0], vec![2], vec![1, 3]]);
        let failure = dag.clone().solve(4).await.unwrap_err();
        assert_eq!(failure, Failure::of(1, String::from("vertex 1 failed")));
        let later = dag.clone().realize(3).await.unwrap_err();
        assert!(later.cancelled, "{later:?}");
        assert!(!fake.started().contains(&3), "{:?}", fake.started());
    }

    #[tokio::test]
    async fn waiting_for_a_vertex_realizes_nothing_and_ends_when_it_is_made() {
        let fake = Fake {
            delay: Duration::from_millis(20),
            ..Fake::default()
        };
        let (fake, dag) = dag_of(fake, vec![vec![], vec![0], vec![1]]);
        let waiting = tokio::spawn({
            let dag = dag.clone();
            async move { dag.realized(1).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(fake.started().is_empty(), "waiting started nothing");
        assert!(!waiting.is_finished());
        dag.clone().solve(2).await.unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), [0, 1]);
    }

    #[tokio::test]
    async fn a_cancelled_solve_starts_nothing() {
        let (fake, dag) = dag_of(Fake::default(), vec![vec![], vec![0]]);
        dag.cancel();
        let failure = dag.solve(1).await.unwrap_err();
        assert!(failure.cancelled);
        assert!(fake.started().is_empty());
    }

    #[tokio::test]
    async fn a_cancel_from_outside_lets_running_vertices_end_and_starts_no_more() {
        let fake = Fake {
            delay: Duration::from_millis(100),
            ..Fake::default()
        };
        // 0 → 1 → 2 → 3; cancelled while 1 runs.
        let (fake, dag) = dag_of(fake, vec![vec![], vec![0], vec![1], vec![2]]);
        let solve = tokio::spawn(dag.clone().solve(3));
        while !fake.started().contains(&1) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        dag.cancel();
        let failure = solve.await.unwrap().unwrap_err();
        assert_eq!(failure, Failure::cancelled(3), "not 1's 'killed'");
        assert_eq!(fake.started(), [0, 1], "nothing started after the cancel");
        assert!(fake.position("end", 1) > 0, "the running vertex ended");
        assert!(
            fake.stop.load(Ordering::SeqCst),
            "the vertices saw the stop"
        );
    }
}
