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
