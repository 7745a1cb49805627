//! Executes the op graph: every vertex runs as soon as its inputs are ready,
//! identical vertices run once, and a vertex whose cache key is known is not
//! run at all.
