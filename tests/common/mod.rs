#![allow(dead_code)]
pub mod receiver;
pub mod smtp;
pub mod tmux;
