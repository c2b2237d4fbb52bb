//! vistaflow's engine: workflow file -> checked plan -> dagrs graph -> run.
