//! The few C library calls the ring needs, declared here because the crate depends on nothing but `std`
//! (which links the C library anyway): `mmap`/`munmap`, the futex system call, `sched_yield`, `kill`.

use std::ffi::{c_int, c_long, c_void};
use std::sync::atomic::AtomicU32;
use std::time::Duration;

#[cfg(target_arch = "x86_64")]
const SYS_FUTEX: c_long = 202;
#[cfg(target_arch = "aarch64")]
const SYS_FUTEX: c_long = 98;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("flowc-ring knows the futex system call number of x86_64 and aarch64 Linux only");

// Not FUTEX_*_PRIVATE: the word is shared between processes.
const FUTEX_WAIT: c_int = 0;
const FUTEX_WAKE: c_int = 1;
const PROT_READ: c_int = 1;
const PROT_WRITE: c_int = 2;
const MAP_SHARED: c_int = 1;
const MAP_FAILED: *mut c_void = !0usize as *mut c_void;

#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

extern "C" {
    fn mmap(addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, offset: i64) -> *mut c_void;
    fn munmap(addr: *mut c_void, len: usize) -> c_int;
    fn syscall(number: c_long, ...) -> c_long;
    fn sched_yield() -> c_int;
    fn kill(pid: i32, sig: c_int) -> c_int;
}

/// Maps `len` bytes of `fd` shared and writable; the page-aligned address, or the OS error.
pub(crate) fn map_shared(fd: c_int, len: usize) -> std::io::Result<*mut u8> {
    // SAFETY: a fresh mapping chosen by the kernel aliases nothing of this process.
    let p = unsafe { mmap(std::ptr::null_mut(), len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) };
    if p == MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    Ok(p as *mut u8)
}

/// Unmaps what [`map_shared`] returned.
///
/// # Safety
/// Nothing may use the mapping afterwards.
pub(crate) unsafe fn unmap(p: *mut u8, len: usize) {
    munmap(p as *mut c_void, len);
}

/// Sleeps on `word` while it holds `expected`, for at most `timeout` (spurious and early wake-ups are normal).
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = Timespec { tv_sec: timeout.as_secs() as i64, tv_nsec: i64::from(timeout.subsec_nanos()) };
    // SAFETY: `word` is a live, aligned u32; the kernel only reads it and `ts`.
    unsafe {
        syscall(SYS_FUTEX, word.as_ptr(), FUTEX_WAIT, expected, &ts as *const Timespec, 0usize, 0 as c_int);
    }
}

/// Wakes every process sleeping on `word`.
pub(crate) fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: as futex_wait; FUTEX_WAKE does not touch the word.
    unsafe {
        syscall(SYS_FUTEX, word.as_ptr(), FUTEX_WAKE, c_int::MAX, 0usize, 0usize, 0 as c_int);
    }
}

/// Lets another thread on this core run.
pub(crate) fn yield_now() {
    // SAFETY: no arguments, no memory.
    unsafe {
        sched_yield();
    }
}

/// Whether `pid` may still publish (or, on a shared ring, release what it took): false for no process, a zombie,
/// or `pid <= 0` (which `kill` would take for a process group); true otherwise, also for another user's process.
/// Slow path only (a syscall and a read).
pub(crate) fn pid_alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only asks whether the process exists.
    if unsafe { kill(pid, 0) } != 0 && std::io::Error::last_os_error().raw_os_error() == Some(3) {
        return false; // ESRCH
    }
    let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // the command name may contain spaces and parentheses: the state follows the last ')'
    match stat.iter().rposition(|&b| b == b')') {
        Some(i) if stat.get(i + 1) == Some(&b' ') => !matches!(stat.get(i + 2), Some(b'Z' | b'X')),
        _ => true,
    }
}
