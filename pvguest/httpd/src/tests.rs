//! Host tests: the connection state machine alone, then the whole service over smoltcp with a
//! smoltcp client across an in-memory link.

mod conn;
mod dhcp;
mod fake;
mod http;
mod link;
mod pressure;
mod service;
mod stalled;
mod storage;
