//! A queue of jobs served by at most a fixed number of threads: a thread
//! is started when a job arrives and fewer than the bound are running, and
//! ends when it finds the queue empty. So jobs start as soon as they
//! arrive (up to the bound), and an idle pool holds no thread.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Jobs of type `J`, each given to one call of the pool's work, on at most
/// `bound` threads at once, in the order they were submitted.
pub(crate) struct BoundedPool<J> {
    shared: Arc<Shared<J>>,
    bound: usize,
    /// The threads started and not yet joined.
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// What the pool's threads share.
struct Shared<J> {
    queue: Mutex<Queue<J>>,
    work: Box<dyn Fn(J) + Send + Sync>,
}

/// The jobs waiting and how many threads serve them.
struct Queue<J> {
    waiting: VecDeque<J>,
    threads: usize,
}

impl<J: Send + 'static> BoundedPool<J> {
    /// A pool that runs `work` on each job, on at most `bound` (at least
    /// one) threads at once.
    pub(crate) fn new(bound: usize, work: impl Fn(J) + Send + Sync + 'static) -> Self {
        BoundedPool {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    waiting: VecDeque::new(),
                    threads: 0,
                }),
                work: Box::new(work),
            }),
            bound: bound.max(1),
            threads: Mutex::default(),
        }
    }

    /// Queues `job`; starts a thread for it if fewer than the bound run.
    pub(crate) fn submit(&self, job: J) {
        // The threads' list first: a `finish` that finds it empty comes
        // before this job, one that comes after finds its thread there.
        let mut threads = self.threads.lock().expect("poisoned");
        let mut queue = self.shared.queue.lock().expect("poisoned");
        queue.waiting.push_back(job);
        if queue.threads >= self.bound {
            return;
        }
        queue.threads += 1;
        drop(queue);
        let shared = Arc::clone(&self.shared);
        threads.retain(|t| !t.is_finished());
        threads.push(std::thread::spawn(move || shared.serve()));
    }
}

impl<J> BoundedPool<J> {
    /// Waits until every job submitted so far is done.
    pub(crate) fn finish(&self) {
        loop {
            let threads = std::mem::take(&mut *self.threads.lock().expect("poisoned"));
            if threads.is_empty() {
                return;
            }
            for thread in threads {
                // A job's panic is caught in `serve`; nothing else panics.
                drop(thread.join());
            }
        }
    }
}

impl<J> Shared<J> {
    /// Runs waiting jobs until there are none; a job that panics is
    /// dropped and the thread goes on.
    fn serve(&self) {
        loop {
            let job = {
                let mut queue = self.queue.lock().expect("poisoned");
                match queue.waiting.pop_front() {
                    Some(job) => job,
                    None => {
                        queue.threads -= 1;
                        return;
                    }
                }
            };
            drop(std::panic::catch_unwind(AssertUnwindSafe(|| {
                (self.work)(job)
            })));
        }
    }
}

impl<J> Drop for BoundedPool<J> {
    /// No job outlives the pool.
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// How many jobs ran, and the most that ran at once.
    #[derive(Default)]
    struct Counts {
        running: AtomicUsize,
        most: AtomicUsize,
        done: AtomicUsize,
    }

    /// A pool of `bound` whose jobs take a few milliseconds each and
    /// count themselves in the returned counts.
    fn counting_pool(bound: usize) -> (BoundedPool<u32>, Arc<Counts>) {
        let counts = Arc::new(Counts::default());
        let seen = Arc::clone(&counts);
        let pool = BoundedPool::new(bound, move |_job: u32| {
            let now = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
            seen.most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            seen.running.fetch_sub(1, Ordering::SeqCst);
            seen.done.fetch_add(1, Ordering::SeqCst);
        });
        (pool, counts)
    }

    #[test]
    fn never_runs_more_jobs_at_once_than_its_bound_and_reaches_it() {
        let (pool, counts) = counting_pool(3);
        for job in 0..40 {
            pool.submit(job);
        }
        pool.finish();
        assert_eq!(counts.done.load(Ordering::SeqCst), 40);
        assert_eq!(counts.most.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn jobs_submitted_from_many_threads_stay_within_the_bound() {
        let (pool, counts) = counting_pool(2);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| (0..5).for_each(|job| pool.submit(job)));
            }
        });
        pool.finish();
        assert_eq!(counts.done.load(Ordering::SeqCst), 40);
        assert!(counts.most.load(Ordering::SeqCst) <= 2);
    }

    #[test]
    fn a_job_after_the_threads_ended_starts_a_new_one() {
        let (pool, counts) = counting_pool(4);
        pool.submit(1);
        pool.finish();
        pool.submit(2);
        pool.finish();
        assert_eq!(counts.done.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_panicking_job_leaves_the_others_to_run() {
        let done = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&done);
        let pool = BoundedPool::new(1, move |job: u32| {
            assert_ne!(job, 0, "job 0 panics");
            seen.fetch_add(1, Ordering::SeqCst);
        });
        for job in 0..5 {
            pool.submit(job);
        }
        pool.finish();
        assert_eq!(done.load(Ordering::SeqCst), 4);
    }
}
