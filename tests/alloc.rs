//! The fast hit path allocates nothing: counted by a global allocator that tallies the
//! allocations of the calling thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hopdns::resolver::{Question, Resolver, ResolverConfig};
use hopdns::server::fast::reply_from_cache;
use hopdns::transport::scripted::{self as s, Scripted};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: defers to the system allocator; the counter is a const-initialised thread local,
// which itself never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: the caller upholds GlobalAlloc::alloc's contract; passed on to System.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from System.alloc with this layout (we allocate nothing else).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        // SAFETY: as dealloc; the caller upholds realloc's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

#[test]
fn a_cache_hit_on_the_fast_path_allocates_nothing() {
    let resolver = Resolver::new(
        ResolverConfig::new(s::root_hints("10.0.0.1")),
        Arc::new(Scripted::new()),
    );
    let name = Name::from_ascii("www.example.com.").unwrap();
    let q = Question::new(name.clone(), RecordType::A);
    let rs = vec![Record::from_rdata(
        name,
        300,
        RData::A(A::new(192, 0, 2, 1)),
    )];
    resolver.cache().messages.insert(
        &q,
        ResponseCode::NoError,
        &rs,
        None,
        300,
        hopdns::dns::Clock::system().unix_secs(),
        false,
    );
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(
        Name::from_ascii("WWW.example.COM.").unwrap(),
        RecordType::A,
    ));
    m.set_edns(Edns::new());
    let query = m.to_vec().unwrap();
    let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut out = vec![0u8; 1232];

    assert!(reply_from_cache(resolver.cache(), &resolver, &query, client, &mut out).is_some());
    let before = allocations();
    for _ in 0..1000 {
        let len = reply_from_cache(resolver.cache(), &resolver, &query, client, &mut out);
        assert!(len.is_some());
    }
    assert_eq!(allocations() - before, 0, "allocations in 1000 hits");
}
