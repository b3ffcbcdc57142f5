//! Read and reply buffers lent per worker: a connection takes one when bytes arrive or a
//! reply is owed and gives it back once it is empty, so an idle connection holds no buffer
//! (twemproxy and PgBouncer do the same with their free lists of mbufs / packet buffers).
//! Each worker is one thread, so the free list is thread-local: taking and giving back is
//! a `Vec` pop and push, no lock and no allocation on the request path.
//!
//! A buffer given back may still share its allocation with frames split off it and not yet
//! written upstream; `BytesMut` keeps using the part after them and only allocates again
//! when that part is too small and the frames are still alive, as with a buffer of its own.

use std::cell::RefCell;

use bytes::BytesMut;

/// Capacity of a pooled buffer: one read's worth of requests.
pub const CHUNK: usize = 16 * 1024;

/// Buffers kept per worker (2 MiB of chunks at most): enough for the connections that go
/// idle at once; more are freed.
const KEEP: usize = 128;

/// A per-worker free list of values a connection needs only while it is busy (buffers
/// here, the Redis session's reply queues): a `thread_local!` list with a bound.
pub struct FreeList<T: 'static> {
    list: &'static std::thread::LocalKey<RefCell<Vec<T>>>,
    keep: usize,
}

impl<T> FreeList<T> {
    pub const fn new(list: &'static std::thread::LocalKey<RefCell<Vec<T>>>, keep: usize) -> Self {
        FreeList { list, keep }
    }

    pub fn take(&self) -> Option<T> {
        self.list.with(|f| f.borrow_mut().pop())
    }

    /// Frees everything this worker's list keeps.
    pub fn clear(&self) {
        self.list.with(|f| *f.borrow_mut() = Vec::new());
    }

    /// Keeps `value` for the next taker on this worker, or drops it past the bound.
    pub fn give(&self, value: T) {
        self.list.with(|f| {
            let mut free = f.borrow_mut();
            if free.len() < self.keep {
                free.push(value);
            }
        });
    }
}

thread_local! {
    static FREE: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

static BUFFERS: FreeList<BytesMut> = FreeList::new(&FREE, KEEP);

/// A buffer with at least `CHUNK / 4` bytes of room.
pub fn take() -> BytesMut {
    match BUFFERS.take() {
        Some(mut b) => {
            if b.capacity() < CHUNK / 4 {
                b.reserve(CHUNK);
            }
            b
        }
        None => BytesMut::with_capacity(CHUNK),
    }
}

/// Gives `buf` back if it is empty (leaving an empty, unallocated buffer in its place);
/// a buffer that still holds bytes stays where it is.
pub fn give(buf: &mut BytesMut) {
    if !buf.is_empty() || buf.capacity() == 0 {
        return;
    }
    let b = std::mem::take(buf);
    // A buffer grown far past a chunk (one huge request) is freed rather than kept, and so
    // is a small one (allocated on its own for a reply) the next taker would have to grow.
    if !(CHUNK / 4..=4 * CHUNK).contains(&b.capacity()) {
        return;
    }
    BUFFERS.give(b);
}

/// Frees the calling worker's kept buffers: once many clients have gone, the next ones can
/// take fresh memory, and what was kept can go back to the system (`crate::memtrim`).
pub fn release() {
    BUFFERS.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_buffer_goes_back_and_is_lent_again() {
        let mut b = take();
        assert!(b.capacity() >= CHUNK);
        let ptr = b.as_ptr();
        give(&mut b);
        assert_eq!(b.capacity(), 0, "the connection holds no buffer");
        let again = take();
        assert_eq!(again.as_ptr(), ptr, "the same allocation");
    }

    #[test]
    fn a_buffer_with_bytes_or_grown_huge_is_not_pooled() {
        let mut b = take();
        b.extend_from_slice(b"*1\r\n");
        give(&mut b);
        assert_eq!(&b[..], b"*1\r\n");
        let mut huge = BytesMut::with_capacity(8 * CHUNK);
        give(&mut huge);
        assert_eq!(huge.capacity(), 0);
        assert!(take().capacity() <= 4 * CHUNK);
    }
}
