//! Rust state owned by a Postgres memory context.
//!
//! A scan's state hangs off a descriptor Postgres allocates and frees; when an ERROR
//! unwinds the query, Postgres deletes the memory and never calls the scan's end. State
//! made with [`ContextOwned::new`] is dropped by a reset callback of the memory context
//! current at creation (the descriptor's), so nothing leaks; [`ContextOwned::drop_now`]
//! drops it at the scan's end, leaving the callback nothing to do.

use pgrx::PgMemoryContexts;

/// A pointer to a context-owned value; null (all zero, as in a `palloc0`'d struct) until
/// made. Copying it copies the pointer, not the value.
#[repr(transparent)]
pub struct ContextOwned<T>(*mut Option<T>);

impl<T> Clone for ContextOwned<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for ContextOwned<T> {}

impl<T> ContextOwned<T> {
    /// `value`, owned by the current memory context.
    ///
    /// # Safety
    /// Main thread; the pointer is not used after that context is reset or deleted.
    pub unsafe fn new(value: T) -> Self {
        ContextOwned(PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(Some(value)))
    }

    pub const fn null() -> Self {
        ContextOwned(std::ptr::null_mut())
    }

    /// The value, if made and not dropped yet.
    ///
    /// # Safety
    /// As for [`ContextOwned::new`]; no other reference to the value is live.
    pub unsafe fn get<'a>(self) -> Option<&'a mut T> {
        // SAFETY: per the contract: the allocation lives while its context does.
        unsafe { self.0.as_mut().and_then(|v| v.as_mut()) }
    }

    /// Drops the value now (the context's callback then finds nothing to drop).
    ///
    /// # Safety
    /// As for [`ContextOwned::get`].
    pub unsafe fn drop_now(self) {
        // SAFETY: per the contract.
        if let Some(v) = unsafe { self.0.as_mut() } {
            v.take();
        }
    }
}

/// Registers `func(arg)` to run when `context` is next reset or deleted (once; a reset
/// forgets its callbacks). The callback record is allocated in `context` itself.
///
/// # Safety
/// Main thread; `context` is alive; `arg` stays valid until the callback has run or
/// `context` is gone.
pub unsafe fn on_reset(
    context: pgrx::pg_sys::MemoryContext,
    func: unsafe extern "C-unwind" fn(*mut std::ffi::c_void),
    arg: *mut std::ffi::c_void,
) {
    use pgrx::pg_sys;
    // SAFETY: per the contract; the record lives exactly as long as the registration.
    unsafe {
        let callback = pg_sys::MemoryContextAlloc(
            context,
            std::mem::size_of::<pg_sys::MemoryContextCallback>(),
        ) as *mut pg_sys::MemoryContextCallback;
        std::ptr::write(
            callback,
            pg_sys::MemoryContextCallback {
                func: Some(func),
                arg,
                next: std::ptr::null_mut(),
            },
        );
        pg_sys::MemoryContextRegisterResetCallback(context, callback);
    }
}
