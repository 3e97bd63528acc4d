//! An mmapable BPF array mapped into the agent: the flow table and the shared
//! state are read and written through memory, with no syscall per entry.

use anyhow::{Context, Result, bail};
use aya::maps::{Map, MapData};
use std::os::fd::{AsFd, AsRawFd};
use std::ptr::NonNull;

pub struct SharedArray<T> {
    // Keeps the map (and so the mapping's fd) alive.
    _map: MapData,
    base: NonNull<T>,
    len: usize,
    bytes: usize,
}

// SAFETY: the mapping is plain shared memory; element access goes through
// volatile or atomic operations chosen by the callers.
unsafe impl<T> Send for SharedArray<T> {}
unsafe impl<T> Sync for SharedArray<T> {}

impl<T: Copy> SharedArray<T> {
    /// Maps `len` elements of the array map `map` (created with BPF_F_MMAPABLE).
    pub fn map(map: Map, len: usize) -> Result<SharedArray<T>> {
        let Map::Array(data) = map else {
            bail!("expected an array map")
        };
        // Array elements are laid out every round_up(value_size, 8) bytes.
        assert_eq!(
            std::mem::size_of::<T>() % 8,
            0,
            "element size must be a multiple of 8"
        );
        let bytes = (len * std::mem::size_of::<T>()).next_multiple_of(page_size());
        // SAFETY: mapping a BPF array fd shared and read-write, the length
        // within the map's size; checked for MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                data.fd().as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .context("mmap of a BPF array (needs BPF_F_MMAPABLE)");
        }
        Ok(SharedArray {
            _map: data,
            base: NonNull::new(ptr.cast()).expect("mmap returned null"),
            len,
            bytes,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Raw pointer to element `index` (bounds-checked).
    pub fn element(&self, index: usize) -> *mut T {
        assert!(index < self.len, "index {index} out of {}", self.len);
        // SAFETY: index is within the mapped elements.
        unsafe { self.base.as_ptr().add(index) }
    }
}

impl<T> Drop for SharedArray<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.bytes) };
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}
