//! Handing a hook's call on to the next hook, or to Postgres's standard implementation,
//! with its errors untouched.
//!
//! pgrx wraps every `pg_sys` function in a guard that turns a Postgres ERROR into a Rust
//! panic and raises it again at the `#[pg_guard]` boundary — as a new error that has lost
//! the original's cursor position (`LINE 1: … ^`), its CONTEXT lines and its internal
//! query. Our hooks sit on the path of every statement, on heap tables too, so they call
//! on through the raw bindings below: an ERROR then unwinds (longjmps) straight through
//! the hook to Postgres's own handler, exactly as through a hook written in C. A hook
//! frame must therefore hold nothing that needs dropping across these calls (the error
//! skips it like a C frame): do the hook's own work before, or after, in scopes of its
//! own.

// The calls below are the point of this module: unguarded on purpose (see above).
#![allow(ffi_unwind_calls)]

use pgrx::pg_sys;

mod raw {
    use pgrx::pg_sys;

    // The same symbols pgrx binds, without its error-catching wrapper.
    unsafe extern "C-unwind" {
        pub fn standard_ExecutorStart(query: *mut pg_sys::QueryDesc, eflags: std::ffi::c_int);
        pub fn standard_ExecutorEnd(query: *mut pg_sys::QueryDesc);
        pub fn standard_planner(
            parse: *mut pg_sys::Query,
            query: *const std::ffi::c_char,
            cursor_options: std::ffi::c_int,
            params: pg_sys::ParamListInfo,
        ) -> *mut pg_sys::PlannedStmt;
        #[allow(clippy::too_many_arguments)]
        pub fn standard_ProcessUtility(
            pstmt: *mut pg_sys::PlannedStmt,
            query: *const std::ffi::c_char,
            read_only_tree: bool,
            context: pg_sys::ProcessUtilityContext::Type,
            params: pg_sys::ParamListInfo,
            env: *mut pg_sys::QueryEnvironment,
            dest: *mut pg_sys::DestReceiver,
            qc: *mut pg_sys::QueryCompletion,
        );
    }
}

/// Calls `previous` (the hook installed before ours) or `standard_ExecutorStart`.
///
/// # Safety
/// Main thread; Postgres's arguments to the hook; nothing in the caller's frame needs
/// dropping (see the module header).
pub unsafe fn executor_start(
    previous: pg_sys::ExecutorStart_hook_type,
    query: *mut pg_sys::QueryDesc,
    eflags: i32,
) {
    // SAFETY: per the contract.
    unsafe {
        match previous {
            Some(previous) => previous(query, eflags),
            None => raw::standard_ExecutorStart(query, eflags),
        }
    }
}

/// Calls `previous` or `standard_ExecutorEnd`.
///
/// # Safety
/// As [`executor_start`].
pub unsafe fn executor_end(previous: pg_sys::ExecutorEnd_hook_type, query: *mut pg_sys::QueryDesc) {
    // SAFETY: per the contract.
    unsafe {
        match previous {
            Some(previous) => previous(query),
            None => raw::standard_ExecutorEnd(query),
        }
    }
}

/// Calls `previous` (the `planner_hook` installed before ours) or `standard_planner`.
///
/// # Safety
/// As [`executor_start`].
pub unsafe fn planner(
    previous: pg_sys::planner_hook_type,
    parse: *mut pg_sys::Query,
    query: *const std::ffi::c_char,
    cursor_options: i32,
    params: pg_sys::ParamListInfo,
) -> *mut pg_sys::PlannedStmt {
    // SAFETY: per the contract.
    unsafe {
        match previous {
            Some(previous) => previous(parse, query, cursor_options, params),
            None => raw::standard_planner(parse, query, cursor_options, params),
        }
    }
}

/// Calls `previous`, the `set_rel_pathlist_hook` installed before ours, if any.
///
/// # Safety
/// As [`executor_start`].
pub unsafe fn set_rel_pathlist(
    previous: pg_sys::set_rel_pathlist_hook_type,
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rti: pg_sys::Index,
    rte: *mut pg_sys::RangeTblEntry,
) {
    if let Some(previous) = previous {
        // SAFETY: per the contract.
        unsafe { previous(root, rel, rti, rte) }
    }
}

/// Calls `previous`, the `set_join_pathlist_hook` installed before ours, if any.
///
/// # Safety
/// As [`executor_start`].
pub unsafe fn set_join_pathlist(
    previous: pg_sys::set_join_pathlist_hook_type,
    root: *mut pg_sys::PlannerInfo,
    joinrel: *mut pg_sys::RelOptInfo,
    outerrel: *mut pg_sys::RelOptInfo,
    innerrel: *mut pg_sys::RelOptInfo,
    jointype: pg_sys::JoinType::Type,
    extra: *mut pg_sys::JoinPathExtraData,
) {
    if let Some(previous) = previous {
        // SAFETY: per the contract.
        unsafe { previous(root, joinrel, outerrel, innerrel, jointype, extra) }
    }
}

/// Calls `previous`, the `object_access_hook` installed before ours, if any.
///
/// # Safety
/// As [`executor_start`].
pub unsafe fn object_access(
    previous: pg_sys::object_access_hook_type,
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: i32,
    arg: *mut std::ffi::c_void,
) {
    if let Some(previous) = previous {
        // SAFETY: per the contract.
        unsafe { previous(access, class_id, object_id, sub_id, arg) }
    }
}

/// Calls `previous` or `standard_ProcessUtility`.
///
/// # Safety
/// As [`executor_start`].
#[allow(clippy::too_many_arguments)]
pub unsafe fn process_utility(
    previous: pg_sys::ProcessUtility_hook_type,
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    // SAFETY: per the contract.
    unsafe {
        match previous {
            Some(previous) => {
                previous(pstmt, query, read_only_tree, context, params, env, dest, qc)
            }
            None => raw::standard_ProcessUtility(
                pstmt,
                query,
                read_only_tree,
                context,
                params,
                env,
                dest,
                qc,
            ),
        }
    }
}
