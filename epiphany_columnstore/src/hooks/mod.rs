//! Hooks the preloaded library installs: the utility hook with the table options
//! (reloptions, `order_by`, ALTER … SET/RESET), the object access hook (drops, column
//! changes), and the executor-start pass that tells fetches which columns to decode.

pub(crate) mod needed_columns;
pub(crate) mod object_access;
pub(crate) mod options;
pub(crate) mod utility;
