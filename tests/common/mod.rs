#![allow(dead_code)]
pub mod pgbouncer;
pub mod procs;
pub mod receiver;
pub mod roles;
pub mod serve;
pub mod smtp;
pub mod tmux;
pub mod tui;
