//! The `hopdns` binary: parse the command line, run the subcommand, exit with its code.

use std::process::ExitCode;

/// jemalloc rather than glibc malloc: the cache is millions of small long-lived objects
/// interleaved with short-lived resolution state, and jemalloc's size-class slabs keep that
/// mix compact (no per-object header, little fragmentation; see docs/performance.md).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    hopdns::cli::main()
}
